//! `copy`: a consistent copy of a live store, into a new directory or an empty Redis store.
//!
//! LMDB to LMDB is LMDB's own copy (`CookieStore::copy_to`). A copy from or to Redis is an
//! export of the source streamed into a restore into the destination (the library's
//! `export` and `restore`, through a pipe, never held in memory or written to a file): the
//! destination must hold no cookie, as `restore` requires. Nothing is created before the
//! source opened, read whole (an LMDB source is exported once to nowhere first, so that a
//! record that cannot be decoded stops the copy before anything is written), and the
//! destination was found new or empty; a directory the copy created is removed when it
//! fails.

use std::fs;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Instant;

use cookiestore::maintenance::{self as migrate, ExportOptions, ExportSummary, RestoreSummary};
use cookiestore::{CookieStore, Error, Location};

use crate::Failure;
use crate::context::{Ctx, location};
use crate::format::size;
use crate::output::{Outcome, plural, progress, secs, stdout, warn};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The store: a directory, or a Redis URL (redis://HOST:PORT/DB?prefix=P, redis+unix://...).
    pub path: PathBuf,
    /// Where the copy goes: a directory that does not exist yet (created, private), or a
    /// Redis URL whose store holds no cookie.
    pub dest: PathBuf,
    /// Leave free pages out (smaller copy; LMDB to LMDB: a copy through Redis is rebuilt
    /// record by record, and so compact anyway).
    #[arg(long)]
    pub compact: bool,
}

pub fn run(ctx: &Ctx, a: Args) -> Outcome {
    let started = Instant::now();
    let source = location(&a.path)?;
    let dest = location(&a.dest)?;
    match (source, dest) {
        (Location::Lmdb(source), Location::Lmdb(dest)) => copy_lmdb(ctx, &source, &dest, &a),
        (source, dest) => copy_records(ctx, source, dest, started),
    }
}

/// LMDB's own copy of one snapshot, into a new directory.
fn copy_lmdb(ctx: &Ctx, source: &Path, dest: &Path, a: &Args) -> Outcome {
    let started = Instant::now();
    let store = ctx.open_read(source)?;
    let bar = progress(None, "{spinner} copying {elapsed}");
    store.lmdb("copy")?.copy_to(dest, a.compact)?;
    bar.finish_and_clear();
    let copied = fs::metadata(dest.join("data.mdb"))
        .map(|m| m.len())
        .unwrap_or(0);
    let original = store
        .path()
        .and_then(|p| fs::metadata(p.join("data.mdb")).ok())
        .map_or(0, |m| m.len());
    let mut out = stdout();
    writeln!(
        out,
        "copied {} ({}) to {} ({}{}) in {}",
        store.location(),
        size(original),
        dest.display(),
        size(copied),
        if a.compact { ", compacted" } else { "" },
        secs(started.elapsed())
    )?;
    out.flush()?;
    Ok(())
}

/// A copy from or to Redis: the source's export restored into the destination.
fn copy_records(ctx: &Ctx, source: Location, dest: Location, started: Instant) -> Outcome {
    let from = CookieStore::open(source, ctx.options(true))?;
    if from.backend() == "lmdb" {
        // Every record must decode before anything is written: an export that fails half-way
        // would leave part of the source in a Redis destination. (From Redis, the export
        // reads every record before it writes a line.)
        migrate::export(
            &from,
            &mut io::sink(),
            ExportOptions::default(),
            &mut |_| {},
        )
        .map_err(|e| {
            Failure::Error(format!(
                "cannot copy {}: {e}; nothing was copied",
                from.location()
            ))
        })?;
    }
    let created = match &dest {
        Location::Lmdb(dir) => {
            create_new_dir(dir)?;
            Some(dir.clone())
        }
        _ => None,
    };
    let outcome = (|| {
        let to = CookieStore::open(&dest, ctx.options(false))?;
        let held = to.count()?;
        if held > 0 {
            return Err(Failure::Error(format!(
                "{dest} already holds {}: a copy goes into an empty store (restore an export \
                 with `cookiestore restore --merge` to merge on purpose)",
                plural(held as usize, "cookie")
            )));
        }
        transfer(&from, &to).map_err(|e| match &created {
            Some(_) => Failure::Error(e),
            None => Failure::Error(format!(
                "{e}; the copy is incomplete: {dest} may hold part of the source's cookies \
                 (it held none before)"
            )),
        })
    })();
    let (exported, restored) = match outcome {
        Ok(done) => done,
        Err(e) => {
            if let Some(dir) = created {
                remove_created(&dir);
            }
            return Err(e);
        }
    };
    for (line, problem) in &restored.bad_lines {
        warn(&format!(
            "record on line {line} of the export: {problem}; skipped"
        ));
    }
    for (line, value, oid) in &restored.conflicts {
        warn(&format!(
            "record on line {line} of the export: value {value:?} belongs to cookie {oid} in \
             the destination; skipped"
        ));
    }
    let mut out = stdout();
    writeln!(
        out,
        "copied {} to {} in {}: {} exported ({} expired, not yet purged), {} restored, {}",
        from.location(),
        dest,
        secs(started.elapsed()),
        plural(exported.cookies as usize, "cookie"),
        exported.expired,
        restored.restored,
        plural(restored.import_marks as usize, "import mark"),
    )?;
    out.flush()?;
    if restored.bad_lines.is_empty() && restored.conflicts.is_empty() {
        Ok(())
    } else {
        Err(Failure::Found(None))
    }
}

/// The source's export streamed into a restore into `to` (a pipe between two threads).
fn transfer(
    from: &CookieStore,
    to: &CookieStore,
) -> Result<(ExportSummary, RestoreSummary), String> {
    let (reader, writer) = io::pipe().map_err(|e| format!("cannot make a pipe: {e}"))?;
    let (done_tx, done_rx) = mpsc::channel();
    let bar = progress(None, "{spinner} copying: {pos} records ({per_sec})");
    std::thread::scope(|scope| {
        let exporter = scope.spawn(move || {
            let mut w = BufWriter::with_capacity(1 << 16, writer);
            let result = migrate::export(from, &mut w, ExportOptions::default(), &mut |_| {})
                .and_then(|summary| Ok(w.flush().map(|()| summary)?));
            // Said before the pipe closes, so that the reader knows an end from a failure.
            let _ = done_tx.send(result.is_ok());
            drop(w);
            result
        });
        let mut input = BufReader::with_capacity(
            1 << 16,
            Export {
                pipe: reader,
                done: done_rx,
                succeeded: None,
            },
        );
        let restored = migrate::restore(to, &mut input, false, &mut |n| bar.set_position(n));
        // A restore that stopped early closes the pipe: the export then ends too.
        drop(input);
        let exported = exporter
            .join()
            .unwrap_or_else(|_| Err(Error::Io(io::Error::other("the export thread panicked"))));
        bar.finish_and_clear();
        match (exported, restored) {
            (Ok(exported), Ok(restored)) => Ok((exported, restored)),
            // The restore failed first (the export then met a closed pipe).
            (_, Err(e)) if !is_export_failure(&e) => Err(e.to_string()),
            (Err(e), _) => Err(format!("cannot read {}: {e}", from.location())),
            (Ok(_), Err(e)) => Err(e.to_string()),
        }
    })
}

/// The reading end of the export: at the end of the pipe, the export must have succeeded;
/// otherwise the restore gets an error ([`ExportFailed`]) instead of the end of its input,
/// and never takes a cut export for a whole one.
struct Export {
    pipe: io::PipeReader,
    done: mpsc::Receiver<bool>,
    /// Whether the export succeeded, once known (it is said once).
    succeeded: Option<bool>,
}

impl Read for Export {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.pipe.read(buf)?;
        if n == 0 && !buf.is_empty() {
            let succeeded = *self
                .succeeded
                .get_or_insert_with(|| self.done.recv().unwrap_or(false));
            if !succeeded {
                return Err(io::Error::other(ExportFailed));
            }
        }
        Ok(n)
    }
}

/// The export of the source failed (its own error says why).
#[derive(Debug)]
struct ExportFailed;

impl std::fmt::Display for ExportFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the export of the source failed")
    }
}

impl std::error::Error for ExportFailed {}

fn is_export_failure(e: &Error) -> bool {
    matches!(e, Error::Io(io) if io.get_ref().is_some_and(|inner| inner.is::<ExportFailed>()))
}

/// Creates the destination directory of a copy: it must not exist (an existing directory,
/// even an empty one, or a symbolic link is refused), and is readable by its owner only.
fn create_new_dir(dir: &Path) -> Result<(), Failure> {
    if fs::symlink_metadata(dir).is_ok() {
        return Err(Error::DestinationExists {
            path: dir.to_path_buf(),
        }
        .into());
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        let mut parents = fs::DirBuilder::new();
        parents.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            parents.mode(0o700);
        }
        parents.create(parent).map_err(|e| {
            Failure::Error(format!(
                "{}: cannot create the destination's parent directory: {e}",
                parent.display()
            ))
        })?;
    }
    let mut builder = fs::DirBuilder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    match builder.create(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(Error::DestinationExists {
            path: dir.to_path_buf(),
        }
        .into()),
        Err(e) => Err(Failure::Error(format!(
            "{}: cannot create the destination directory: {e}",
            dir.display()
        ))),
    }
}

/// Removes what a failed copy created in `dir` (the store's two files, then the directory,
/// if nothing else is in it).
fn remove_created(dir: &Path) {
    for name in ["data.mdb", "lock.mdb"] {
        let _ = fs::remove_file(dir.join(name));
    }
    let _ = fs::remove_dir(dir);
}
