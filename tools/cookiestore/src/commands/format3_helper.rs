//! The helper program `cookiestore-format3` (tools/format3-export, built on heed3) as `import`
//! runs it on an LMDB format-3 store: where it is, and the records it prints (each record's
//! oid and bytes in hex, one per line, then an `end` line), decoded by the library.

use std::ffi::OsString;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};

use cookiestore::maintenance;
use cookiestore::{Cookie, Error};
use uuid::Uuid;

use super::import_store::HELPER_ENV;
use crate::Failure;

/// The helper's file name.
const HELPER: &str = "cookiestore-format3";
/// The output version of the helper that this build reads.
const PROTOCOL: u64 = 1;
/// Longest helper line: a record of 16 MiB in hex, and the rest. (The library refuses records
/// over 1 MiB; a longer one is reported as such, not as a broken helper.)
const MAX_HELPER_LINE: u64 = 32 << 20;

/// The helper: `$COOKIESTORE_FORMAT3`, or `cookiestore-format3` next to this executable.
pub(super) fn helper_path(source: &Path) -> Result<PathBuf, Failure> {
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

/// The records the helper prints, decoded by the library. A broken helper (it failed, printed
/// something unexpected, or stopped before its `end` line) ends the iteration with an error
/// item, and `failure` says what happened.
pub(super) struct HelperRecords {
    helper: PathBuf,
    child: Child,
    stdout: BufReader<ChildStdout>,
    stderr: Option<std::thread::JoinHandle<Vec<u8>>>,
    line: Vec<u8>,
    header: bool,
    ended: bool,
    records: u64,
    done: bool,
    pub(super) failure: Option<String>,
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
    pub(super) fn start(helper: &Path, dir: &Path) -> Result<HelperRecords, Failure> {
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
