//! `purge`: delete (or count) expired cookies.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use cookiestore::{Clock, SystemClock, format_rfc3339_ns};
use serde_json::json;

use crate::Failure;
use crate::context::Ctx;
use crate::output::{Outcome, json_line, secs, stdout};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The store directory, or a Redis URL (redis://HOST:PORT/DB?prefix=P, redis+unix://...).
    pub path: PathBuf,
    /// Only count the expired cookies (read-only).
    #[arg(long)]
    pub dry_run: bool,
    /// Allow a --now later than the system clock (deletes cookies that are still valid).
    #[arg(long)]
    pub force: bool,
    /// One JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

pub fn run(ctx: &Ctx, a: Args) -> Outcome {
    let started = Instant::now();
    let (n, at, store_path) = if a.dry_run {
        let store = ctx.open_read(&a.path)?;
        let stats = store.stats()?;
        (stats.expired, store.now_ns(), store.location().to_string())
    } else {
        if let Some(now) = ctx.now
            && now > SystemClock.now_ns()
            && !a.force
        {
            return Err(Failure::Error(format!(
                "--now {} is later than the system clock: purging would delete cookies that are \
                 still valid; use --dry-run to count them, or add --force",
                format_rfc3339_ns(now)
            )));
        }
        let store = ctx.open_existing(&a.path)?;
        let n = store.purge_expired()?;
        (n, store.now_ns(), store.location().to_string())
    };
    let took = started.elapsed();
    let mut out = stdout();
    if a.json {
        json_line(
            &mut out,
            &json!({
                "path": store_path,
                "dry_run": a.dry_run,
                "expired_at": format_rfc3339_ns(at),
                "purged": if a.dry_run { 0 } else { n },
                "would_purge": if a.dry_run { n } else { 0 },
                "seconds": took.as_secs_f64(),
            }),
        )?;
    } else if a.dry_run {
        writeln!(
            out,
            "{n} expired cookies would be purged (expiry at {}); nothing was deleted ({})",
            format_rfc3339_ns(at),
            secs(took)
        )?;
    } else {
        writeln!(out, "purged {n} expired cookies in {}", secs(took))?;
    }
    out.flush()?;
    Ok(())
}
