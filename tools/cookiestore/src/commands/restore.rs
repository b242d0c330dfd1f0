//! `restore`: rebuild a store from an export.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::path::PathBuf;
use std::time::Instant;

use cookiestore::maintenance as migrate;
use serde_json::json;

use crate::Failure;
use crate::context::Ctx;
use crate::output::{Outcome, json_line, progress, secs, stdout, warn};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The store directory (created if missing), or a Redis URL.
    pub path: PathBuf,
    /// An export (JSON lines); `-` reads stdin.
    pub file: PathBuf,
    /// Merge into a store that already holds cookies.
    #[arg(long)]
    pub merge: bool,
    /// One JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

pub fn run(ctx: &Ctx, a: Args) -> Outcome {
    let started = Instant::now();
    let mut input: Box<dyn BufRead> = if a.file.as_os_str() == "-" {
        Box::new(BufReader::new(io::stdin().lock()))
    } else {
        let file = File::open(&a.file).map_err(|e| {
            Failure::Error(format!("{}: cannot read the export: {e}", a.file.display()))
        })?;
        Box::new(BufReader::with_capacity(1 << 16, file))
    };
    let store = ctx.open_write(&a.path)?;
    let bar = progress(None, "{spinner} restoring: line {pos} ({per_sec})");
    let summary = migrate::restore(&store, &mut input, a.merge, &mut |n| bar.set_position(n))?;
    bar.finish_and_clear();
    let file = a.file.display();
    for (line, problem) in &summary.bad_lines {
        warn(&format!("{file} line {line}: {problem}; skipped"));
    }
    for (line, value, oid) in &summary.conflicts {
        warn(&format!(
            "{file} line {line}: value {value:?} belongs to cookie {oid} in the store; skipped"
        ));
    }
    let mut out = stdout();
    if a.json {
        let mut v = serde_json::to_value(&summary).map_err(io::Error::from)?;
        v["seconds"] = json!(started.elapsed().as_secs_f64());
        json_line(&mut out, &v)?;
    } else {
        writeln!(
            out,
            "restored {file} into {} in {} ({} lines): {} new, {} replaced, {} unchanged, {} \
             conflicts, {} bad lines, {} import marks",
            store.location(),
            secs(started.elapsed()),
            summary.lines,
            summary.restored,
            summary.replaced,
            summary.unchanged,
            summary.conflicts.len(),
            summary.bad_lines.len(),
            summary.import_marks
        )?;
    }
    out.flush()?;
    if summary.bad_lines.is_empty() && summary.conflicts.is_empty() {
        Ok(())
    } else {
        Err(Failure::Found(None))
    }
}
