//! `export`: every record as JSON lines.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use cookiestore::Error;
use cookiestore::maintenance::{self as migrate, ExportOptions};

use crate::Failure;
use crate::context::Ctx;
use crate::output::{Outcome, progress, secs, stdout, warn};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The store directory, or a Redis URL (redis://HOST:PORT/DB?prefix=P, redis+unix://...).
    pub path: PathBuf,
    /// Write to FILE (atomically, via a new temporary file beside it) instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Leave out expired cookies (and expired import marks).
    #[arg(long)]
    pub live_only: bool,
    /// Skip records that cannot be decoded (listed on stderr) instead of failing.
    #[arg(long)]
    pub skip_corrupt: bool,
}

pub fn run(ctx: &Ctx, a: Args) -> Outcome {
    let started = Instant::now();
    let store = ctx.open_read(&a.path)?;
    let options = ExportOptions::default()
        .live_only(a.live_only)
        .skip_corrupt(a.skip_corrupt);
    let bar = progress(None, "{spinner} exporting: {pos} cookies ({per_sec})");
    let mut tick = |n| bar.set_position(n);
    let hint = |e: Error| -> Failure {
        match e {
            e @ Error::CorruptRecord { .. } => {
                Failure::Error(format!("{e}; or export the rest with --skip-corrupt"))
            }
            other => other.into(),
        }
    };
    let summary = match &a.output {
        None => {
            let mut out = stdout();
            migrate::export(&store, &mut out, options, &mut tick).map_err(hint)?
        }
        Some(path) => {
            let tmp = tmp_path(path);
            let result = (|| -> Result<migrate::ExportSummary, Failure> {
                let file = create_private(&tmp).map_err(|e| {
                    Failure::Error(format!("{}: cannot create: {e}", tmp.display()))
                })?;
                let mut w = BufWriter::with_capacity(1 << 16, file);
                let summary =
                    migrate::export(&store, &mut w, options, &mut tick).map_err(|e| match e {
                        // Reading the store goes through LMDB: an I/O error is the file's.
                        Error::Io(e) => write_failed(path, e),
                        other => hint(other),
                    })?;
                let file = w
                    .into_inner()
                    .map_err(|e| write_failed(path, e.into_error()))?;
                file.sync_all().map_err(|e| write_failed(path, e))?;
                fs::rename(&tmp, path).map_err(|e| {
                    Failure::Error(format!("{}: cannot rename into place: {e}", path.display()))
                })?;
                Ok(summary)
            })();
            if result.is_err() {
                let _ = fs::remove_file(&tmp);
            }
            result?
        }
    };
    bar.finish_and_clear();
    for (oid, problem) in &summary.corrupt {
        warn(&format!(
            "record {oid} cannot be decoded ({problem}); skipped"
        ));
    }
    if let Some(path) = &a.output {
        let mut out = stdout();
        writeln!(
            out,
            "exported {} cookies ({} expired, not yet purged) and {} import marks from \
             snapshot txn {} to {} in {}",
            summary.cookies,
            summary.expired,
            summary.import_marks,
            summary.txn_id,
            path.display(),
            secs(started.elapsed())
        )?;
        out.flush()?;
    }
    if summary.corrupt.is_empty() {
        Ok(())
    } else {
        Err(Failure::Found(None))
    }
}

/// Writing the export to `path` failed (its temporary file is removed).
fn write_failed(path: &Path, e: io::Error) -> Failure {
    let full = matches!(
        e.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
    );
    Failure::Error(format!(
        "{}: cannot write the export: {e}{}",
        path.display(),
        if full {
            "; the file system holding it is full: free space there, or write the export \
             elsewhere (`-o` on another file system); nothing was left behind"
        } else {
            "; nothing was left behind"
        }
    ))
}

/// A fresh, unguessable name next to `path` (so that the rename stays in one directory).
fn tmp_path(path: &Path) -> PathBuf {
    let mut name = std::ffi::OsString::from(".");
    name.push(path.file_name().unwrap_or_default());
    name.push(format!(".{}.tmp", uuid::Uuid::new_v4().simple()));
    path.with_file_name(name)
}

/// Creates a new file (never an existing one, never through a symlink), readable by the
/// owner only: an export holds every cookie.
fn create_private(path: &Path) -> io::Result<File> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NOFOLLOW).mode(0o600);
    }
    options.open(path)
}
