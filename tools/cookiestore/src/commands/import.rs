//! `import`: Crossbar.io's `cookies.dat`, or its database cookie store (a directory, LMDB
//! format 1 or 3: see `import_store`), into a store.

use std::fs;
use std::io::{self, Write};
use std::path::PathBuf;
use std::time::Instant;

use cookiestore::format_rfc3339_ns;
use cookiestore::maintenance::{self as migrate, ImportOptions};
use serde_json::json;

use crate::Failure;
use crate::context::Ctx;
use crate::output::{Outcome, json_line, progress, secs, stdout, warn};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The store directory (created if missing), or a Redis URL.
    pub path: PathBuf,
    /// Crossbar.io's cookies.dat (file store), or the directory of its database cookie store
    /// (LMDB format 1, or format 3 as zlmdb 26 writes it).
    #[arg(value_name = "SOURCE")]
    pub file: PathBuf,
    /// Cookie name for the imported cookies (cookies.dat does not record it; a database
    /// store's records carry theirs).
    #[arg(long, default_value = "cbtid")]
    pub name: String,
    /// Only say what the import would do; the store is opened read-only (a new store is not
    /// created).
    #[arg(long)]
    pub dry_run: bool,
    /// One JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// Also import cookies that an earlier import brought in and that were logged out
    /// (deleted from the store) since; without it they are skipped, so re-running an import
    /// never logs them back in.
    #[arg(long)]
    pub force: bool,
}

pub fn run(ctx: &Ctx, a: Args) -> Outcome {
    if a.file.is_dir() {
        return super::import_store::run(ctx, a);
    }
    let started = Instant::now();
    let len = fs::metadata(&a.file)
        .map_err(|e| {
            Failure::Error(format!(
                "{}: cannot read the cookies file: {e}",
                a.file.display()
            ))
        })?
        .len();
    // The file is streamed (read twice per run, never held in memory).
    // Work out the changes on a read-only handle first: an import that changes nothing
    // writes nothing (not even a transaction), and --dry-run stops there.
    let plan_options = ImportOptions::default()
        .name(a.name.clone())
        .dry_run(true)
        .force(a.force);
    let existing = match crate::context::location(&a.path)? {
        cookiestore::Location::Lmdb(dir) => dir.join("data.mdb").exists(),
        _ => true,
    };
    let plan = if a.dry_run || existing {
        let store = ctx.open_read(&a.path)?;
        let now = store.now_ns();
        let bar = progress(
            Some(2 * len),
            "planning {bar:30} {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
        );
        let plan = migrate::import_file(&store, &a.file, now, &plan_options, &mut |n| {
            bar.set_position(n)
        })?;
        bar.finish_and_clear();
        Some((plan, now, store.location().to_string()))
    } else {
        None
    };
    let (summary, now, store_path) = match plan {
        Some((plan, now, path))
            if a.dry_run
                || plan.imported + plan.updated + plan.removed_from_store + plan.marked == 0 =>
        {
            (plan, now, path)
        }
        _ => {
            let store = ctx.open_write(&a.path)?;
            let now = store.now_ns();
            let bar = progress(
                Some(2 * len),
                "importing {bar:30} {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
            );
            let options = ImportOptions::default().name(a.name).force(a.force);
            let summary =
                migrate::import_file(&store, &a.file, now, &options, &mut |n| bar.set_position(n))?;
            bar.finish_and_clear();
            (summary, now, store.location().to_string())
        }
    };
    let took = started.elapsed();
    let file = a.file.display();
    for (line, problem) in &summary.bad_lines {
        warn(&format!("{file} line {line}: {problem}; skipped"));
    }
    if summary.skipped_logged_out > 0 {
        warn(&format!(
            "skipped {} cookies logged out since an earlier import; --force brings them back",
            summary.skipped_logged_out
        ));
    }
    for (value, problem) in &summary.rejected {
        warn(&format!("cookie {value:?} rejected: {problem}; skipped"));
    }
    let mut out = stdout();
    if a.json {
        let mut v = serde_json::to_value(&summary).map_err(io::Error::from)?;
        v["seconds"] = json!(took.as_secs_f64());
        v["expired_at"] = json!(format_rfc3339_ns(now));
        v["dry_run"] = json!(a.dry_run);
        json_line(&mut out, &v)?;
    } else {
        let text = format!(
            "{}imported {file} into {} in {} ({} lines)\n\
             {:<11}{:>8}  new cookies\n\
             {:<11}{:>8}  existing cookies whose fields changed\n\
             {:<11}{:>8}  existing cookies already identical\n\
             {:<11}{:>8}  logged out in the file ({} of them removed from the store)\n\
             {:<11}{:>8}  dropped (expired at {})\n\
             {}{}\
             {:<11}{:>8}  skipped{}\n",
            if a.dry_run {
                "dry run, nothing written: would have "
            } else {
                ""
            },
            store_path,
            secs(took),
            summary.lines,
            "imported",
            summary.imported,
            "updated",
            summary.updated,
            "unchanged",
            summary.unchanged,
            "deleted",
            summary.deleted,
            summary.removed_from_store,
            "expired",
            summary.expired,
            format_rfc3339_ns(now),
            if summary.skipped_logged_out == 0 {
                String::new()
            } else {
                format!(
                    "{:<11}{:>8}  skipped (logged out since an earlier import; --force brings \
                     them back)\n",
                    "logged out", summary.skipped_logged_out
                )
            },
            if summary.marked == 0 {
                String::new()
            } else {
                format!(
                    "{:<11}{:>8}  unchanged ones imported by an older cookiestore, marked as \
                     imported now (once logged out, a re-import skips them)\n",
                    "marked", summary.marked
                )
            },
            "bad lines",
            summary.bad_lines.len(),
            if summary.rejected.is_empty() {
                String::new()
            } else {
                format!(
                    " (and {} cookies rejected by the store)",
                    summary.rejected.len()
                )
            },
        );
        out.write_all(text.as_bytes())?;
    }
    out.flush()?;
    if summary.bad_lines.is_empty() && summary.rejected.is_empty() {
        Ok(())
    } else {
        Err(Failure::Found(None))
    }
}
