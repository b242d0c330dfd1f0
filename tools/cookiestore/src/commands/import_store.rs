//! `import DEST SOURCE` where SOURCE is a directory: the cookies of Crossbar.io's database
//! cookie store (or any cfxdb store), into a store.
//!
//! - LMDB format 1 (Crossbar.io 25.12 with zlmdb 25.12): read with the library, read-only.
//! - LMDB format 3 (zlmdb 26, what `pip install crossbar==25.12.1` installs today): the
//!   library refuses it ([`cookiestore::Error::UnsupportedFormat`] `found: 3`), so the helper
//!   program `cookiestore-format3` (tools/format3-export, built on heed3) reads it and prints
//!   each record's oid and bytes; the library decodes them ([`maintenance::decode_record`]).
//!   The helper is the file next to this executable, or `$COOKIESTORE_FORMAT3`.
//!
//! Either way the records go through [`maintenance::import_records`]: expired cookies dropped
//! and counted, identical ones unchanged, conflicts listed, logged-out ones not brought back.
//! The source is read twice: once to plan (a dry run on the destination, or only a full read
//! when the destination is new), so that nothing is written unless the whole source reads,
//! and nothing at all when nothing differs; then to write.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use cookiestore::maintenance::{self, ImportOptions, StoreImportSummary};
use cookiestore::{Cookie, CookieStore, Error, format_rfc3339_ns};
use serde_json::json;
use uuid::Uuid;

use super::format3_helper::{HelperRecords, helper_path};
use super::import::Args;
use crate::Failure;
use crate::context::{self, Ctx};
use crate::output::{Outcome, json_line, progress, secs, stdout, warn};

/// The environment variable naming the helper, overriding the file next to `cookiestore`.
pub const HELPER_ENV: &str = "COOKIESTORE_FORMAT3";

/// The records of a source, as [`maintenance::import_records`] takes them.
type Records<'a> = dyn Iterator<Item = cookiestore::Result<Cookie>> + 'a;

/// Where the cookies come from.
enum Source {
    /// A store the library reads (LMDB format 1).
    Library(CookieStore),
    /// An LMDB format-3 store, read by the helper at this path.
    Format3(PathBuf),
}

impl Source {
    fn describe(&self) -> String {
        match self {
            Source::Library(_) => "LMDB format 1".to_string(),
            Source::Format3(helper) => {
                format!("LMDB format 3, read by {}", helper.display())
            }
        }
    }

    /// Runs `f` on an iterator over every record of the source. Helper failures are returned
    /// as the `Failure` they are, whatever `f` made of the error item that ended its input.
    fn with_records<T>(
        &self,
        dir: &Path,
        f: &mut dyn FnMut(&mut Records<'_>) -> cookiestore::Result<T>,
    ) -> Result<T, Failure> {
        match self {
            // The records of one snapshot, read on a thread of their own: a store's calls
            // cannot be made inside another store's snapshot closure on the same thread. An
            // error that ends the snapshot is passed on as the last item, so the importer
            // never takes an early end for the end of the store.
            Source::Library(store) => std::thread::scope(|scope| {
                let (tx, rx) = std::sync::mpsc::sync_channel::<cookiestore::Result<Cookie>>(1024);
                let reader = scope.spawn(move || {
                    let read = store.lmdb("import").and_then(|lmdb| {
                        lmdb.snapshot(|s| {
                            for item in s.records()? {
                                if tx.send(item).is_err() {
                                    break; // the importer stopped
                                }
                            }
                            Ok(())
                        })
                    });
                    if let Err(e) = read {
                        let _ = tx.send(Err(e));
                    }
                });
                let result = f(&mut rx.iter());
                drop(rx);
                reader
                    .join()
                    .map_err(|_| Failure::Error("reading the source store failed".into()))?;
                Ok(result?)
            }),
            Source::Format3(helper) => {
                let mut records = HelperRecords::start(helper, dir)?;
                let result = f(&mut records);
                if let Some(failure) = records.failure.take() {
                    return Err(Failure::Error(failure));
                }
                Ok(result?)
            }
        }
    }
}

fn open_source(ctx: &Ctx, dir: &Path) -> Result<Source, Failure> {
    match CookieStore::open(dir, ctx.options(true)) {
        Ok(store) => Ok(Source::Library(store)),
        // Refused before anything was mapped or written.
        Err(Error::UnsupportedFormat { found: 3, .. }) => Ok(Source::Format3(helper_path(dir)?)),
        Err(e) => Err(e.into()),
    }
}

/// The same directory, when both exist.
fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

pub fn run(ctx: &Ctx, a: Args) -> Outcome {
    let started = Instant::now();
    let dir = &a.file;
    let on_redis = context::location(&a.path)?.as_path().is_none();
    if !on_redis && same_dir(&a.path, dir) {
        return Err(Failure::Error(format!(
            "{}: the source and the destination are the same store; import into a new directory",
            dir.display()
        )));
    }
    let source = open_source(ctx, dir)?;
    let options = ImportOptions::default().force(a.force);
    let existing = on_redis || a.path.join("data.mdb").exists();

    // Pass 1, the plan: a dry run against the destination, read-only; against an empty
    // scratch store when the destination does not exist yet. It reads the whole source, so
    // that a source that cannot be read to the end leaves the destination as it was.
    let plan = {
        let scratch;
        let dest = if existing {
            ctx.open_read(&a.path)?
        } else {
            scratch = ScratchDir::new()?;
            ctx.open_write(&scratch.0)?
        };
        let now = dest.now_ns();
        let bar = progress(None, "{spinner} planning: {pos} records ({per_sec})");
        let plan_options = options.clone().dry_run(true);
        let plan = source
            .with_records(dir, &mut |records| {
                maintenance::import_records(&dest, records, now, &plan_options, &mut |n| {
                    bar.set_position(n)
                })
            })
            .map_err(|e| context(e, "nothing was imported"))?;
        bar.finish_and_clear();
        (plan, now)
    };
    let (summary, now, dest_path) = match plan {
        (plan, now) if a.dry_run || (existing && plan.imported + plan.updated == 0) => {
            (plan, now, display_dest(&a.path))
        }
        _ => {
            // Pass 2: the import.
            let dest = ctx.open_write(&a.path)?;
            let now = dest.now_ns();
            let bar = progress(None, "{spinner} importing: {pos} records ({per_sec})");
            let summary = source
                .with_records(dir, &mut |records| {
                    maintenance::import_records(&dest, records, now, &options, &mut |n| {
                        bar.set_position(n)
                    })
                })
                .map_err(|e| {
                    context(
                        e,
                        "the batches of 2,000 cookies before it stay imported; run the same \
                         import again once this is fixed",
                    )
                })?;
            bar.finish_and_clear();
            (summary, now, dest.location().to_string())
        }
    };
    report(&a, &source, &summary, now, &dest_path, started)
}

/// `failure`, saying what it means for the destination.
fn context(failure: Failure, what: &str) -> Failure {
    match failure {
        Failure::Error(message) => Failure::Error(format!("{message} ({what})")),
        other => other,
    }
}

/// A private, empty directory, removed on drop: an empty store for the plan of an import into
/// a store that does not exist yet (every cookie is new to it).
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new() -> Result<ScratchDir, Failure> {
        let path = std::env::temp_dir().join(format!(
            "cookiestore-import-plan-{}",
            Uuid::new_v4().simple()
        ));
        let mut builder = std::fs::DirBuilder::new();
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder
            .create(&path)
            .map_err(|e| Failure::Error(format!("{}: cannot create: {e}", path.display())))?;
        Ok(ScratchDir(path))
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The destination as the summary names it: a store's canonical directory, or a Redis URL
/// with its password masked.
fn display_dest(path: &Path) -> String {
    match context::location(path) {
        Ok(location) => match location.as_path() {
            Some(dir) => dir
                .canonicalize()
                .unwrap_or_else(|_| dir.to_path_buf())
                .display()
                .to_string(),
            None => location.to_string(),
        },
        Err(_) => cookiestore::Location::mask(&path.to_string_lossy()),
    }
}

fn report(
    a: &Args,
    source: &Source,
    summary: &StoreImportSummary,
    now: u64,
    dest: &str,
    started: Instant,
) -> Outcome {
    let took = started.elapsed();
    let src = a.file.display();
    for (oid, problem) in &summary.corrupt {
        warn(&format!(
            "{src}: record {oid} cannot be decoded ({problem}); skipped"
        ));
    }
    for (oid, problem) in &summary.rejected {
        warn(&format!("{src}: cookie {oid} rejected: {problem}; skipped"));
    }
    for (oid, holder) in &summary.conflicts {
        warn(&format!(
            "{src}: cookie {oid}: its value belongs to cookie {holder} in the store; skipped \
             (the store's cookie is kept)"
        ));
    }
    if summary.skipped_logged_out > 0 {
        warn(&format!(
            "skipped {} cookies logged out since an earlier import; --force brings them back",
            summary.skipped_logged_out
        ));
    }
    let mut out = stdout();
    if a.json {
        let mut v = serde_json::to_value(summary).map_err(io::Error::from)?;
        v["source"] = json!(source.describe());
        v["seconds"] = json!(took.as_secs_f64());
        v["expired_at"] = json!(format_rfc3339_ns(now));
        v["dry_run"] = json!(a.dry_run);
        json_line(&mut out, &v)?;
    } else {
        let text = format!(
            "{}imported {src} ({}) into {} in {} ({} records)\n\
             {:<11}{:>8}  new cookies\n\
             {:<11}{:>8}  existing cookies whose fields changed\n\
             {:<11}{:>8}  existing cookies already identical\n\
             {:<11}{:>8}  dropped (expired at {})\n\
             {}\
             {:<11}{:>8}  skipped (their value belongs to another cookie of the store)\n\
             {:<11}{:>8}  skipped{}\n",
            if a.dry_run {
                "dry run, nothing written: would have "
            } else {
                ""
            },
            source.describe(),
            dest,
            secs(took),
            summary.records,
            "imported",
            summary.imported,
            "updated",
            summary.updated,
            "unchanged",
            summary.unchanged,
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
            "conflicts",
            summary.conflicts.len(),
            "bad records",
            summary.corrupt.len(),
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
    if summary.corrupt.is_empty() && summary.rejected.is_empty() && summary.conflicts.is_empty() {
        Ok(())
    } else {
        Err(Failure::Found(None))
    }
}
