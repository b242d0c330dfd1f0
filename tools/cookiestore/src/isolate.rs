//! Walking a store in a child process, so that damage LMDB cannot survive costs the child,
//! not the command.
//!
//! LMDB trusts the pages of data.mdb: flipped bits in a branch or leaf page can make its C
//! code read outside the map (SIGSEGV), corrupt the heap (an abort), or walk in circles. No
//! check made before or beside LMDB can rule that out, short of re-implementing it. So `check`
//! and `repair` do their work in a copy of this program started for it ([`CHILD_ENV`] set),
//! with a time limit, and report a child that died of a signal or did not finish as a damaged
//! data.mdb, with what to do.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::Failure;
use crate::output::stdout;

/// Set (to `1`) in the environment of the child that does the walk itself.
pub const CHILD_ENV: &str = "COOKIESTORE_WALK_CHILD";

/// Whether this process is the child that walks the store.
pub fn is_child() -> bool {
    std::env::var_os(CHILD_ENV).is_some_and(|v| v == "1")
}

/// The time limit for walking the store at `path`: `--timeout SECS` when given (0: none),
/// else 60 s plus 60 s per GiB of data.mdb (a walk reads every page once; a sound store of
/// a GiB is checked in well under a minute).
pub fn time_limit(path: &Path, timeout: Option<u64>) -> Option<Duration> {
    match timeout {
        Some(0) => None,
        Some(secs) => Some(Duration::from_secs(secs)),
        None => {
            let len = std::fs::metadata(path.join("data.mdb")).map_or(0, |m| m.len());
            Some(Duration::from_secs(60 + 60 * len.div_ceil(1 << 30)))
        }
    }
}

/// How a child that walked the store ended.
pub enum Walk {
    /// It exited by itself: its exit code and what it wrote.
    Exited {
        code: u8,
        stdout: Vec<u8>,
        stderr: Vec<u8>,
    },
    /// It died of a signal or ran out of time: data.mdb is damaged beyond what LMDB survives.
    Crashed(String),
}

/// Runs this program again with `args` and [`CHILD_ENV`] set, waits up to `limit` (`None`:
/// no limit), and says how it ended. `None` when no child could be started (the caller then
/// walks in this process).
pub fn walk_in_child(args: &[OsString], limit: Option<Duration>) -> Option<Walk> {
    let exe = std::env::current_exe().ok()?;
    let mut child = Command::new(exe)
        .args(args)
        .env(CHILD_ENV, "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .ok()?;
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            bytes
        })
    };
    let out = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let err = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if limit.is_some_and(|l| started.elapsed() >= l) => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(_) => {
                let _ = child.kill();
                break child.wait().ok();
            }
        }
    };
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    let Some(status) = status else {
        let secs = limit.map_or(0, |l| l.as_secs());
        return Some(Walk::Crashed(format!(
            "did not finish within {secs} s (damaged pages can send LMDB in circles; \
             `--timeout SECS` sets the limit, e.g. for a very large store on a slow disk)"
        )));
    };
    match status.code() {
        Some(code) => Some(Walk::Exited {
            code: u8::try_from(code).unwrap_or(2),
            stdout,
            stderr,
        }),
        None => Some(Walk::Crashed(crash_text(status, &stderr))),
    }
}

/// "crashed with SIGSEGV (...)", and the last thing LMDB or the C library said, if anything.
fn crash_text(status: ExitStatus, stderr: &[u8]) -> String {
    #[cfg(unix)]
    let signal = {
        use std::os::unix::process::ExitStatusExt;
        status.signal()
    };
    #[cfg(not(unix))]
    let signal: Option<i32> = {
        let _ = status;
        None
    };
    let name = match signal {
        Some(11) => "SIGSEGV: LMDB read outside the store's pages".to_string(),
        Some(7) => "SIGBUS: LMDB read past the end of data.mdb".to_string(),
        Some(6) => "SIGABRT: LMDB's own checks or the C library stopped it".to_string(),
        Some(9) => "SIGKILL: killed, perhaps by the system for lack of memory".to_string(),
        Some(n) => format!("signal {n}"),
        None => "an unknown cause".to_string(),
    };
    let said = String::from_utf8_lossy(stderr);
    let last = said.lines().rev().map(str::trim).find(|l| !l.is_empty());
    match last {
        Some(line) => {
            let line: String = line.chars().take(200).collect();
            format!("crashed with {name}; it said: {line}")
        }
        None => format!("crashed with {name}"),
    }
}

/// The error for a store whose walk (`what`: "walking it") crashed or hung (`how`), with
/// what to do.
pub fn damaged(path: &Path, what: &str, how: &str) -> Failure {
    Failure::Error(format!(
        "{}: the store is damaged: {what} {how}. Every process that reads the damaged \
         pages (router workers too) can crash or hang the same way. Restore the store from an \
         export (`cookiestore restore`) or a copy, or copy out what can still be read \
         (`cookiestore export --skip-corrupt`, which may stop at the same damage) and restore \
         that into a new store; `cookiestore repair` cannot fix pages LMDB cannot read. \
         Moving the store aside and starting with an empty one logs every user out, which \
         is safe",
        path.join("data.mdb").display()
    ))
}

/// Relays what a child that exited wrote, and ends with its exit code.
pub fn relay(code: u8, out: &[u8], err: &[u8]) -> crate::output::Outcome {
    let _ = std::io::stderr().write_all(err);
    let mut w = stdout();
    w.write_all(out)?;
    w.flush()?;
    match code {
        0 => Ok(()),
        1 => Err(Failure::Found(None)),
        _ => Err(Failure::Reported),
    }
}
