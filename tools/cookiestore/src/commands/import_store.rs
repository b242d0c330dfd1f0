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

use std::ffi::OsString;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Instant;

use cookiestore::maintenance::{self, ImportOptions, StoreImportSummary};
use cookiestore::{Cookie, CookieStore, Error, format_rfc3339_ns};
use serde_json::json;
use uuid::Uuid;

use super::import::Args;
use crate::Failure;
use crate::context::{self, Ctx};
use crate::output::{Outcome, json_line, progress, secs, stdout, warn};

/// The environment variable naming the helper, overriding the file next to `cookiestore`.
pub const HELPER_ENV: &str = "COOKIESTORE_FORMAT3";
/// The helper's file name.
const HELPER: &str = "cookiestore-format3";
/// The output version of the helper that this build reads.
const PROTOCOL: u64 = 1;
/// Longest helper line: a record of 16 MiB in hex, and the rest. (The library refuses records
/// over 1 MiB; a longer one is reported as such, not as a broken helper.)
const MAX_HELPER_LINE: u64 = 32 << 20;

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

/// The helper: `$COOKIESTORE_FORMAT3`, or `cookiestore-format3` next to this executable.
fn helper_path(source: &Path) -> Result<PathBuf, Failure> {
    let missing = |what: String| {
        Failure::Error(format!(
            "{}: the store is in LMDB data format 3 (written by zlmdb 26, e.g. by Crossbar.io \
             25.12 installed with pip today); reading it needs the helper program {HELPER}, \
             {what}: build it with `cargo build --release` at the root of the cookiestore \
             workspace (it puts target/release/{HELPER} next to target/release/cookiestore) and \
             keep the two side by side, or set {HELPER_ENV} to its path",
            source.display()
        ))
    };
    if let Some(path) = std::env::var_os(HELPER_ENV).filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(missing(format!(
                "but {HELPER_ENV} names {}, which is not a file",
                path.display()
            )))
        };
    }
    let exe = std::env::current_exe()
        .map_err(|e| Failure::Error(format!("cannot find this executable's path: {e}")))?;
    let mut name = OsString::from(HELPER);
    name.push(std::env::consts::EXE_SUFFIX);
    let path = exe.with_file_name(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(missing(format!("which is not at {}", path.display())))
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

/// The records the helper prints, decoded by the library. A broken helper (it failed, printed
/// something unexpected, or stopped before its `end` line) ends the iteration with an error
/// item, and `failure` says what happened.
struct HelperRecords {
    helper: PathBuf,
    child: Child,
    stdout: BufReader<ChildStdout>,
    stderr: Option<std::thread::JoinHandle<Vec<u8>>>,
    line: Vec<u8>,
    header: bool,
    ended: bool,
    records: u64,
    done: bool,
    failure: Option<String>,
}

#[derive(serde::Deserialize)]
struct HelperLine {
    cookiestore_format3: Option<u64>,
    oid: Option<String>,
    key: Option<String>,
    hex: Option<String>,
    end: Option<bool>,
    records: Option<u64>,
}

impl HelperRecords {
    fn start(helper: &Path, dir: &Path) -> Result<HelperRecords, Failure> {
        let mut command = Command::new(helper);
        command
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // A helper file that was just written can be "busy" for a moment (a process forked
        // while it was open for writing holds it until it execs): try again, briefly.
        let mut tries = 0;
        let mut child = loop {
            match command.spawn() {
                Err(e) if e.kind() == io::ErrorKind::ExecutableFileBusy && tries < 50 => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                other => {
                    break other.map_err(|e| {
                        Failure::Error(format!("cannot run {}: {e}", helper.display()))
                    })?;
                }
            }
        };
        let stdout = child.stdout.take().expect("piped");
        let mut stderr = child.stderr.take().expect("piped");
        let stderr = std::thread::spawn(move || {
            let mut text = Vec::new();
            let _ = (&mut stderr).take(64 << 10).read_to_end(&mut text);
            let _ = io::copy(&mut stderr, &mut io::sink());
            text
        });
        Ok(HelperRecords {
            helper: helper.to_path_buf(),
            child,
            stdout: BufReader::with_capacity(1 << 16, stdout),
            stderr: Some(stderr),
            line: Vec::new(),
            header: false,
            ended: false,
            records: 0,
            done: false,
            failure: None,
        })
    }

    /// Ends the iteration with `message` as the failure.
    fn fail(&mut self, message: String) -> Option<cookiestore::Result<Cookie>> {
        self.done = true;
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.failure = Some(message.clone());
        Some(Err(Error::Io(io::Error::other(message))))
    }

    /// The helper's exit, once its stdout is closed: `None` when it succeeded.
    fn finish(&mut self) -> Option<String> {
        let status = self.child.wait();
        let stderr = self
            .stderr
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default();
        let stderr = String::from_utf8_lossy(&stderr);
        let stderr = stderr.trim();
        let said = if stderr.is_empty() {
            String::new()
        } else {
            format!(": {stderr}")
        };
        let helper = self.helper.display();
        match status {
            Err(e) => Some(format!("{helper}: cannot wait for it: {e}")),
            Ok(s) if !s.success() => {
                #[cfg(unix)]
                if let Some(signal) = std::os::unix::process::ExitStatusExt::signal(&s) {
                    return Some(format!(
                        "{helper} was killed by signal {signal}{}{said}",
                        if signal == 7 {
                            " (SIGBUS: the store's data.mdb may be damaged or truncated)"
                        } else {
                            ""
                        }
                    ));
                }
                // Its own message already starts with its name.
                Some(if stderr.is_empty() {
                    format!("{helper} failed ({s})")
                } else {
                    stderr.to_string()
                })
            }
            Ok(_) if !self.ended => Some(format!(
                "{helper} stopped before the end of its output (it exited 0 without its last \
                 line){said}"
            )),
            Ok(_) => None,
        }
    }
}

impl Drop for HelperRecords {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    let digit = |c: u8| (c as char).to_digit(16);
    let bytes = text.as_bytes();
    if !bytes.len().is_multiple_of(2) {
        return None;
    }
    bytes
        .chunks_exact(2)
        .map(|p| Some((digit(p[0])? * 16 + digit(p[1])?) as u8))
        .collect()
}

impl Iterator for HelperRecords {
    type Item = cookiestore::Result<Cookie>;

    fn next(&mut self) -> Option<Self::Item> {
        let helper = self.helper.display().to_string();
        loop {
            if self.done {
                return None;
            }
            self.line.clear();
            let read = (&mut self.stdout)
                .take(MAX_HELPER_LINE)
                .read_until(b'\n', &mut self.line);
            match read {
                Err(e) => return self.fail(format!("reading the output of {helper}: {e}")),
                Ok(0) => {
                    self.done = true;
                    return match self.finish() {
                        Some(problem) => {
                            self.done = false;
                            self.fail(problem)
                        }
                        None => None,
                    };
                }
                Ok(_) if self.line.last() != Some(&b'\n') => {
                    if self.line.len() as u64 >= MAX_HELPER_LINE {
                        return self.fail(format!(
                            "{helper} printed a line over {MAX_HELPER_LINE} bytes: a record \
                             over 16 MiB cannot be imported"
                        ));
                    }
                    continue; // the end of output without a newline: EOF comes next
                }
                Ok(_) => {}
            }
            if self.ended {
                return self.fail(format!("{helper} printed more after its last line"));
            }
            let parsed: HelperLine = match serde_json::from_slice(&self.line) {
                Ok(p) => p,
                Err(e) => return self.fail(format!("{helper} printed an unexpected line: {e}")),
            };
            if !self.header {
                match parsed.cookiestore_format3 {
                    Some(PROTOCOL) => {
                        self.header = true;
                        continue;
                    }
                    Some(other) => {
                        return self.fail(format!(
                            "{helper} speaks output version {other}, this cookiestore reads \
                             version {PROTOCOL}: build both from the same workspace (`cargo \
                             build --release`)"
                        ));
                    }
                    None => {
                        return self.fail(format!(
                            "{helper} did not start with its header line: is it really \
                             {HELPER}?"
                        ));
                    }
                }
            }
            if parsed.end == Some(true) {
                if parsed.records != Some(self.records) {
                    return self.fail(format!(
                        "{helper} says it printed {:?} records, {} were read",
                        parsed.records, self.records
                    ));
                }
                self.ended = true;
                continue;
            }
            let Some(bytes) = parsed.hex.as_deref().and_then(unhex) else {
                return self.fail(format!("{helper} printed a record without its bytes"));
            };
            self.records += 1;
            match (parsed.oid, parsed.key) {
                (Some(oid), _) => match Uuid::parse_str(&oid) {
                    Ok(oid) => return Some(maintenance::decode_record(oid, &bytes)),
                    Err(e) => return self.fail(format!("{helper} printed a bad oid {oid:?}: {e}")),
                },
                (None, Some(key)) => {
                    return Some(Err(Error::CorruptRecord {
                        oid: Uuid::nil(),
                        problem: format!(
                            "its key in the Cookies table is {key} ({} bytes), not an oid (16 bytes)",
                            key.len() / 2
                        ),
                    }));
                }
                (None, None) => {
                    return self.fail(format!("{helper} printed a record without oid or key"));
                }
            }
        }
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
