//! Helpers shared by the integration tests (the library's, and the CLI's through
//! tools/cookiestore/tests/common).
#![allow(dead_code)]

pub mod redis_server;
pub mod tls;
pub mod tmpfs;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cookiestore::{Cookie, CookieStore, ManualClock, StoreOptions};
use serde_json::Value;

/// 2026-11-22T00:00:00Z, the day the fixtures were made, in ns.
pub const FIXTURE_DAY_NS: u64 = 1_763_769_600_000_000_000;

/// A file of the test fixtures (`tests/fixtures` at the workspace's root, whichever crate's
/// tests ask: the CLI's tests include this module too).
pub fn fixture(name: &str) -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .map(|dir| dir.join("tests/fixtures"))
        .find(|dir| dir.is_dir())
        .unwrap_or_else(|| panic!("no tests/fixtures above {}", manifest.display()))
        .join(name)
}

/// A writable copy of the cfxdb fixture database in a fresh temporary directory.
pub fn cfxdb_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(fixture("cfxdb-db/data.mdb"), dir.path().join("data.mdb")).unwrap();
    dir
}

pub fn expected_cfxdb() -> Vec<Value> {
    std::fs::read_to_string(fixture("cfxdb-db.expected.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Options with a pinned clock.
pub fn options_at(now_ns: u64) -> (StoreOptions, ManualClock) {
    let clock = ManualClock::new(now_ns);
    let options = StoreOptions::default().clock(Arc::new(clock.clone()));
    (options, clock)
}

pub fn open_at(path: &Path, now_ns: u64) -> (CookieStore, ManualClock) {
    let (options, clock) = options_at(now_ns);
    (CookieStore::open(path, options).unwrap(), clock)
}

/// A cookie's JSON with cfxdb's reading rules applied: an empty CBOR map reads as absent.
pub fn normalized(v: &Value) -> Value {
    let mut v = v.clone();
    if let Value::Object(m) = &mut v {
        m.retain(|_, x| !matches!(x, Value::Object(o) if o.is_empty()));
    }
    v
}

pub fn json(c: &Cookie) -> Value {
    normalized(&serde_json::to_value(c).unwrap())
}

// ---- multi-process and stress helpers (workers, crash, growth, readers, bad_input, files) ----

/// Scale of the long test variants, from `COOKIESTORE_STRESS`: unset or empty → 1 (the quick
/// default of `cargo test`), `ci` → [`CI_STRESS`] (what `.ci/run` sets), a number → that.
pub fn stress() -> u64 {
    match std::env::var("COOKIESTORE_STRESS").as_deref() {
        Err(_) | Ok("") => 1,
        Ok("ci") => CI_STRESS,
        Ok(n) => n
            .parse()
            .unwrap_or_else(|_| panic!("COOKIESTORE_STRESS={n:?}: use `ci` or a number")),
    }
}

/// The scale `COOKIESTORE_STRESS=ci` stands for.
pub const CI_STRESS: u64 = 10;

/// Environment variable that turns a test into a child role (see [`child_command`]).
pub const CHILD_ROLE: &str = "COOKIESTORE_TEST_CHILD";

/// Prefix of the lines a child reports on stdout (libtest writes its own lines there too).
pub const CHILD_LINE: &str = "@@child ";

/// The role this process was started in by [`child_command`], if any.
pub fn child_role() -> Option<String> {
    std::env::var(CHILD_ROLE).ok()
}

/// A command that runs this test binary again, executing only `test` in role `role`: the
/// test function sees [`child_role`] and runs the child's part instead of the parent's.
/// Its stdout is piped (read it with [`ChildLines`]); stderr goes to the test's output.
pub fn child_command(test: &str, role: &str) -> std::process::Command {
    use std::process::{Command, Stdio};
    let mut cmd = Command::new(std::env::current_exe().expect("current_exe"));
    // --include-ignored: a test marked #[ignore] still runs its child role.
    cmd.args([
        "--exact",
        test,
        "--include-ignored",
        "--nocapture",
        "--test-threads=1",
        "--quiet",
    ])
    .env(CHILD_ROLE, role)
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::inherit());
    cmd
}

/// Reports one JSON value to the parent, flushed at once (so it survives a SIGKILL that
/// comes right after). The line goes out in one write, so that the lines of processes sharing
/// one pipe (forked children) do not interleave, as long as each stays under PIPE_BUF (4 KiB).
pub fn report(value: &Value) {
    use std::io::Write;
    let line = format!("{CHILD_LINE}{value}\n");
    let mut out = std::io::stdout().lock();
    out.write_all(line.as_bytes()).expect("report to parent");
    out.flush().expect("flush report");
}

/// The reports of a child, read on a thread as they come.
pub struct ChildLines {
    rx: std::sync::mpsc::Receiver<Value>,
}

impl ChildLines {
    /// Starts reading `child`'s stdout (takes it).
    pub fn new(child: &mut std::process::Child) -> ChildLines {
        use std::io::BufRead;
        let stdout = child.stdout.take().expect("child stdout is piped");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(json) = line.strip_prefix(CHILD_LINE) {
                    let value = serde_json::from_str(json)
                        .unwrap_or_else(|e| panic!("bad child report {json:?}: {e}"));
                    if tx.send(value).is_err() {
                        break;
                    }
                }
            }
        });
        ChildLines { rx }
    }

    /// The next report, waiting at most `timeout`; `None` at the end of the output or on
    /// timeout.
    pub fn next_timeout(&self, timeout: std::time::Duration) -> Option<Value> {
        self.rx.recv_timeout(timeout).ok()
    }

    /// Waits for a report whose `"ev"` is `ev`, returning it (and dropping others).
    pub fn wait_for(&self, ev: &str, timeout: std::time::Duration) -> Value {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(v) if v["ev"] == ev => return v,
                Ok(_) => {}
                Err(e) => panic!("no {ev:?} report from the child within {timeout:?}: {e}"),
            }
        }
    }

    /// Every report until the child's stdout closes.
    pub fn rest(self) -> Vec<Value> {
        self.rx.iter().collect()
    }
}

/// Waits for a child and asserts that it exited successfully.
pub fn wait_success(child: &mut std::process::Child, what: &str) {
    let status = child.wait().expect("wait for child");
    assert!(status.success(), "{what} failed: {status}");
}

/// Asserts that the store is consistent, from one snapshot: every record decodes, every
/// live one is found by its value and equals its record, and the value and expiry indexes
/// hold exactly one entry per record. Returns the stats.
///
/// Runs the library's own `check` first (it must find no problem), then these checks of its
/// own through the public API, so a bug in `check` cannot hide damage.
pub fn assert_clean(store: &CookieStore) -> cookiestore::Stats {
    let report = cookiestore::maintenance::check(store.as_lmdb().unwrap()).expect("check runs");
    assert!(
        report.is_clean(),
        "check finds problems: {:?}",
        report.problems
    );
    let stats = store
        .as_lmdb()
        .unwrap()
        .snapshot(|s| {
            let stats = s.stats()?;
            let mut records = 0u64;
            for cookie in s.records()? {
                let cookie = cookie?;
                records += 1;
                if !cookie.is_expired(s.now_ns()) {
                    let found = s.get(&cookie.value)?;
                    assert_eq!(
                        found.as_ref(),
                        Some(&cookie),
                        "cookie {} is not found by its value",
                        cookie.oid
                    );
                }
            }
            assert_eq!(records, stats.records);
            Ok(stats)
        })
        .unwrap_or_else(|e| panic!("store is not clean: {e}"));
    assert_eq!(stats.corrupt, 0, "corrupt records: {stats:?}");
    let lmdb = stats.lmdb.as_ref().expect("LMDB's figures");
    assert_eq!(
        lmdb.value_index_entries, stats.records,
        "value index entries vs records: {stats:?}"
    );
    assert_eq!(
        lmdb.expiry_index_entries, stats.records,
        "expiry index entries vs records: {stats:?}"
    );
    stats
}

/// Whether a test may run the part that needs `cond` (root, mount privileges, a Python
/// venv, ...). When `cond` holds: `true`. Otherwise the test is skipped: the answer is
/// `false` (the caller returns), and the test's name and `why` go to the process's stderr
/// itself, not through `eprintln!`, which the test harness captures and shows only for a
/// failed test: a plain `cargo test` says what it skipped and why. When the environment
/// variable `CI` is set to any non-empty value, nothing may be skipped: this panics with `why`.
pub fn need(cond: bool, why: &str) -> bool {
    if cond {
        return true;
    }
    match std::env::var_os("CI") {
        Some(ci) if !ci.is_empty() => {
            panic!("{why}; CI={ci:?} is set, so this test must run, not be skipped")
        }
        _ => {
            use std::io::Write;
            let thread = std::thread::current();
            let test = thread.name().unwrap_or("a test");
            let _ = writeln!(std::io::stderr().lock(), "skipping {test}: {why}");
            false
        }
    }
}

/// Whether this process can make a private mount namespace and bind-mount in it (root with
/// CAP_SYS_ADMIN): tried with `unshare --mount --propagation private -- true`.
pub fn can_mount() -> bool {
    running_as_root()
        && std::process::Command::new("unshare")
            .args(["--mount", "--propagation", "private", "--", "true"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
}

/// Whether this process runs as root (which ignores permission bits).
pub fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|euid| euid == "0"))
        })
        .unwrap_or(false)
}

/// The environment at `dir` opened with plain heed (another program's view), and its
/// unnamed database. Only while no store handle of `dir` is open in this process.
pub fn raw_env(
    dir: &Path,
    map_size: usize,
) -> (
    heed::Env,
    heed::Database<'static, heed::types::Bytes, heed::types::Bytes>,
) {
    use heed::types::Bytes;
    // SAFETY: the caller opens no other handle of this environment in this process.
    let env = unsafe {
        heed::EnvOpenOptions::new()
            .map_size(map_size)
            .open(dir)
            .unwrap()
    };
    let wtxn = env.write_txn().unwrap();
    let db = env
        .create_databases_and_commit(wtxn, |o, w| {
            o.create_database::<Bytes, Bytes>(w, None)
                .map(heed::CommitOrAbort::<_, ()>::Commit)
        })
        .unwrap()
        .unwrap_commit();
    (env, db)
}

/// Opens the environment at `dir` with plain heed, while no store handle is open in this
/// process, and runs `f` in one write transaction on the unnamed database.
pub fn with_raw_env(
    dir: &Path,
    f: impl FnOnce(&mut heed::RwTxn, heed::Database<heed::types::Bytes, heed::types::Bytes>),
) {
    let (env, db) = raw_env(dir, 1 << 26);
    let mut wtxn = env.write_txn().unwrap();
    f(&mut wtxn, db);
    wtxn.commit().unwrap();
}

/// Overwrites `key` with `value` through plain heed, while no store handle is open.
pub fn raw_put(dir: &Path, key: &[u8], value: &[u8]) {
    with_raw_env(dir, |txn, db| db.put(txn, key, value).unwrap());
}

/// cfxdb's Cookies table, as zlmdb records it in the metadata.
pub const COOKIES_OID: &str = "62f8c8c9-c50b-4686-bafe-38b221c64a0c";

/// The slot of the table with `oid`, from the store's metadata (the tests damage records
/// byte by byte under their raw keys).
pub fn table_slot(store: &CookieStore, oid: &str) -> u16 {
    store
        .stats()
        .unwrap()
        .lmdb
        .expect("LMDB's figures")
        .tables
        .iter()
        .find(|t| t.oid == oid)
        .unwrap_or_else(|| panic!("no table {oid} in the metadata"))
        .slot
}

/// Kills the children if the test fails before stopping them (they would run on).
pub struct KillOnDrop(pub Vec<std::process::Child>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
