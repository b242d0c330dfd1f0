//! `copy`: a consistent copy of a live store.

use std::fs;
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use crate::context::Ctx;
use crate::format::size;
use crate::output::{Outcome, progress, secs, stdout};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The store directory (LMDB stores only).
    pub path: PathBuf,
    /// Destination directory (new, or without data.mdb).
    pub dest: PathBuf,
    /// Leave free pages out (smaller copy).
    #[arg(long)]
    pub compact: bool,
}

pub fn run(ctx: &Ctx, a: Args) -> Outcome {
    let started = Instant::now();
    ctx.lmdb_only(&a.path, "copy")?;
    let store = ctx.open_read(&a.path)?;
    let bar = progress(None, "{spinner} copying {elapsed}");
    store.copy_to(&a.dest, a.compact)?;
    bar.finish_and_clear();
    let copied = fs::metadata(a.dest.join("data.mdb"))
        .map(|m| m.len())
        .unwrap_or(0);
    let original = fs::metadata(store.path().join("data.mdb"))
        .map(|m| m.len())
        .unwrap_or(0);
    let mut out = stdout();
    writeln!(
        out,
        "copied {} ({}) to {} ({}{}) in {}",
        store.path().display(),
        size(original),
        a.dest.display(),
        size(copied),
        if a.compact { ", compacted" } else { "" },
        secs(started.elapsed())
    )?;
    out.flush()?;
    Ok(())
}
