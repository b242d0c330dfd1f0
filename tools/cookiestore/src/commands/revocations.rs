//! `revocations`: the recent revocation feed, one JSON object per line (with `--all`, the
//! entries that only keep caches exact too).

use std::io::Write;
use std::path::PathBuf;

use crate::context::Ctx;
use crate::output::{Outcome, json_line, stdout, warn};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The store directory, or a Redis URL (redis://HOST:PORT/DB?prefix=P, redis+unix://...).
    pub path: PathBuf,
    /// Only the entries with a sequence number greater than this.
    #[arg(long, default_value_t = 0)]
    pub since: u64,
    /// Also list the entries that are not revocations: auth changes, replaced records,
    /// purges and flushes (they keep the workers' caches exact; no connection is closed).
    #[arg(long)]
    pub all: bool,
}

pub fn run(ctx: &Ctx, a: Args) -> Outcome {
    let store = ctx.open_read(&a.path)?;
    let feed = store.revocations_since(a.since)?;
    if feed.missed {
        warn(&format!(
            "entries after {} were already trimmed (older than the retention window), or \
             the feed is shorter than that (a Redis that lost or went back in its history)",
            a.since
        ));
    }
    let mut out = stdout();
    for entry in feed.entries.iter().filter(|e| a.all || e.kind.revokes()) {
        json_line(&mut out, entry)?;
    }
    out.flush()?;
    Ok(())
}
