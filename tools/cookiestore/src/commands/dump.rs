//! `dump`: every live cookie, one JSON object per line (or a table).

use std::io::Write;
use std::path::PathBuf;

use cookiestore::{Cookie, Error};

use crate::Failure;
use crate::context::Ctx;
use crate::format::{DumpCookie, printable, relative, short_time, shorten, table};
use crate::output::{Outcome, json_line, stdout, warn};

/// How `dump` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DumpFormat {
    /// One JSON object per line.
    Json,
    /// A table for people.
    Table,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The store directory, or a Redis URL (redis://HOST:PORT/DB?prefix=P, redis+unix://...).
    pub path: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = DumpFormat::Json)]
    pub format: DumpFormat,
    /// Only cookies with an authid.
    #[arg(long)]
    pub authenticated: bool,
    /// Only cookies with this authid.
    #[arg(long, value_name = "AUTHID")]
    pub authid: Option<String>,
    /// Only cookies of this realm (authrealm).
    #[arg(long, value_name = "REALM")]
    pub realm: Option<String>,
    /// Expired cookies not yet purged too.
    #[arg(long)]
    pub include_expired: bool,
    /// At most N cookies.
    #[arg(long, value_name = "N")]
    pub limit: Option<u64>,
}

pub fn run(ctx: &Ctx, a: Args) -> Outcome {
    let store = ctx.open_read(&a.path)?;
    let mut out = stdout();
    let mut corrupt = 0u64;
    let mut rows: Vec<Vec<String>> = Vec::new();
    // LMDB: one snapshot, in oid order (with --authid, through the authid index); Redis: a
    // SCAN walk.
    let now = store.now_ns();
    let mut n = 0u64;
    let each = |item: cookiestore::Result<cookiestore::Cookie>| -> cookiestore::Result<bool> {
        if a.limit.is_some_and(|limit| n >= limit) {
            return Ok(false);
        }
        let c = match item {
            Ok(c) => c,
            Err(e @ Error::CorruptRecord { .. }) => {
                warn(&e.to_string());
                corrupt += 1;
                return Ok(true);
            }
            Err(e) => return Err(e),
        };
        if (!a.include_expired && c.is_expired(now))
            || (a.authenticated && c.authid.is_none())
            || a.authid
                .as_ref()
                .is_some_and(|x| c.authid.as_ref() != Some(x))
            || a.realm
                .as_ref()
                .is_some_and(|x| c.authrealm.as_ref() != Some(x))
        {
            return Ok(true);
        }
        n += 1;
        match a.format {
            DumpFormat::Json => json_line(&mut out, &DumpCookie::new(&c))?,
            DumpFormat::Table => rows.push(table_row(&c, now)),
        }
        Ok(true)
    };
    match &a.authid {
        Some(authid) if store.backend() == "lmdb" => {
            store.lmdb("dump --authid")?.snapshot(|s| {
                let mut each = each;
                for item in s.records_of_authid(authid)? {
                    if !each(item)? {
                        break;
                    }
                }
                Ok(())
            })?
        }
        _ => store.for_each_record(each)?,
    }
    if a.format == DumpFormat::Table {
        let header = ["VALUE", "AUTHID", "AUTHROLE", "REALM", "CREATED", "EXPIRES"];
        out.write_all(table(&header, &rows).as_bytes())?;
    }
    out.flush()?;
    if corrupt > 0 {
        return Err(Failure::Reported);
    }
    Ok(())
}

fn table_row(c: &Cookie, now: u64) -> Vec<String> {
    let opt = |v: &Option<String>, max| {
        v.as_deref()
            .map_or_else(|| "-".to_string(), |s| shorten(&printable(s), max))
    };
    vec![
        shorten(&printable(&c.value), 12),
        opt(&c.authid, 24),
        opt(&c.authrole, 16),
        opt(&c.authrealm, 16),
        short_time(c.created),
        relative(c.expires_at(), now),
    ]
}
