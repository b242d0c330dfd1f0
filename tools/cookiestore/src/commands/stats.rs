//! `stats`: figures about one snapshot of the store.

use std::io::Write;
use std::path::PathBuf;

use cookiestore::Stats;
use cookiestore::format_rfc3339_ns;
use serde::Serialize;

use crate::context::Ctx;
use crate::format::{relative, size, table};
use crate::output::{Outcome, json_line, stdout};
use cookiestore::maintenance::{ReaderSlots, reader_slots};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The store directory, or a Redis URL (redis://HOST:PORT/DB?prefix=P, redis+unix://...).
    pub path: PathBuf,
    /// One JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

pub fn run(ctx: &Ctx, a: Args) -> Outcome {
    // Read lock.mdb before the store is open in this process: closing a descriptor of the
    // lock file would drop the process's own POSIX locks on it.
    let redis = crate::context::location(&a.path)?.kind() == "redis";
    let readers = if redis { None } else { reader_slots(&a.path) };
    let store = ctx.open_read(&a.path)?;
    let s = store.stats()?;
    let now = store.now_ns();
    let mut out = stdout();
    if a.json {
        let json = StatsJson {
            path: store.location().to_string(),
            now,
            stats: &s,
            reader_slots: readers,
        };
        json_line(&mut out, &json)?;
        out.flush()?;
        return Ok(());
    }
    let when = |t: Option<u64>| t.map_or_else(|| "-".to_string(), format_rfc3339_ns);
    let mut text = String::new();
    let mut line = |k: &str, v: String| {
        text.push_str(format!("{k:<16}{v}").trim_end());
        text.push('\n');
    };
    match &s.lmdb {
        Some(l) => line(
            "store",
            format!("{} (snapshot txn {})", store.location(), l.txn_id),
        ),
        None => line("store", format!("{} (Redis)", store.location())),
    }
    line("now", format_rfc3339_ns(now));
    line(
        "cookies",
        format!(
            "{} live, {} expired not yet purged, {} authenticated",
            s.live, s.expired, s.authenticated
        ),
    );
    if s.corrupt > 0 {
        line(
            "undecodable",
            format!("{} records (run `cookiestore check`)", s.corrupt),
        );
    }
    line("oldest", when(s.oldest_created));
    line("newest", when(s.newest_created));
    line(
        "next expiry",
        match s.next_expiry {
            Some(t) => format!("{} ({})", format_rfc3339_ns(t), relative(t, now)),
            None => "-".into(),
        },
    );
    let Some(l) = &s.lmdb else {
        // No map, pages, indexes, reader slots or tables: Redis keeps one key per cookie.
        line("records", format!("{} cookie keys", s.records));
        if let Some(r) = &s.redis {
            line(
                "feed",
                format!(
                    "{} entries, the last numbered {}",
                    r.feed_entries, r.last_revocation
                ),
            );
            line(
                "eviction",
                r.maxmemory_policy.as_ref().map_or_else(
                    || "maxmemory-policy unknown (CONFIG and INFO refused)".to_string(),
                    |p| format!("maxmemory-policy {p}"),
                ),
            );
        }
        out.write_all(text.as_bytes())?;
        out.flush()?;
        return Ok(());
    };
    line(
        "map",
        format!(
            "{} used of {} ({:.1}%)",
            size(l.map_used),
            size(l.map_size),
            l.map_used as f64 * 100.0 / l.map_size.max(1) as f64
        ),
    );
    line(
        "pages",
        format!(
            "{} bytes each; depth {}, {} branch, {} leaf, {} overflow; {} entries",
            l.page_size, l.depth, l.branch_pages, l.leaf_pages, l.overflow_pages, l.entries
        ),
    );
    line(
        "indexes",
        format!(
            "{} by value, {} by expiry{}",
            l.value_index_entries,
            l.expiry_index_entries,
            if l.foreign_writes {
                " (another program wrote since cookiestore: the expiry index is reconciled at \
                 the next writable open)"
            } else {
                ""
            }
        ),
    );
    line(
        "reader slots",
        match readers {
            Some(r) => format!(
                "{} of {} used: {} reading, {} idle, {} stale (this command holds one)",
                l.readers_used, l.readers_max, r.reading, r.idle, r.stale
            ),
            None => format!("{} of {} used", l.readers_used, l.readers_max),
        },
    );
    line("tables", String::new());
    let rows: Vec<Vec<String>> = l
        .tables
        .iter()
        .map(|t| vec![t.slot.to_string(), t.oid.clone(), t.name.clone()])
        .collect();
    for row in table(&["SLOT", "OID", "NAME"], &rows).lines() {
        text.push_str(&format!("  {row}\n"));
    }
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

/// `stats --json`: the library's [`Stats`] (times in ns), with the store path, the instant
/// expiry was evaluated at (ns) and the reader slots read from `lock.mdb` (null when its
/// layout is not the one expected).
#[derive(Serialize)]
struct StatsJson<'a> {
    path: String,
    now: u64,
    #[serde(flatten)]
    stats: &'a Stats,
    reader_slots: Option<ReaderSlots>,
}
