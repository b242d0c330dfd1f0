//! The harness: the Python scripts and their venvs, the Rust CLI, and records as JSON.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::common::normalized;
use cookiestore::maintenance::check;
use cookiestore::{Auth, Cookie, CookieStore, StoreOptions};
use serde_json::{Value, json};

use crate::json_exact::parse_json_exact;

pub(crate) const NS: u64 = 1_000_000_000;
pub(crate) const DAY_NS: u64 = 86_400 * NS;
/// `BASE_NS` of cfxdb_write.py: 2026-11-22T00:00:00Z; its cookies are created within ±2 days.
pub(crate) const WRITE_BASE_NS: u64 = 1_795_305_600 * NS;
/// Longest a single script may run before the test gives up on it.
pub(crate) const SCRIPT_TIMEOUT: Duration = Duration::from_secs(180);

// ---- the Python side -----------------------------------------------------------------------

pub(crate) fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Venv {
    /// cfxdb 25.12.2, zlmdb 25.12.3, crossbar 25.12.1.
    Main,
    /// zlmdb 26.10.1 (LMDB 0.9.36 and 1.0.2 engines), cfxdb 25.12.2.
    Z26,
}

pub(crate) fn venv_dir(which: Venv) -> PathBuf {
    let main = std::env::var_os("COOKIESTORE_INTEROP_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/interop-venv"));
    match which {
        Venv::Main => main,
        Venv::Z26 => {
            let mut s = main.into_os_string();
            s.push("-z26");
            s.into()
        }
    }
}

/// The venv's interpreter; `None` (the test returns) when it is missing and `CI` is not set
/// (see `crate::common::need`).
pub(crate) fn python(which: Venv) -> Option<Py> {
    let dir = venv_dir(which);
    let python = dir.join("bin/python");
    let ready = python.is_file() && dir.join(".ready").is_file();
    let why = format!(
        "the interop venv {} is missing or incomplete (no bin/python or .ready); create it \
         with tools/interop/setup.sh",
        dir.display()
    );
    crate::common::need(ready, &why).then_some(Py { python, which })
}

/// Both venvs, or `None` (skip; see [`python`]).
pub(crate) fn pythons() -> Option<(Py, Py)> {
    Some((python(Venv::Main)?, python(Venv::Z26)?))
}

pub(crate) struct Py {
    pub(crate) python: PathBuf,
    pub(crate) which: Venv,
}

pub(crate) struct Out {
    pub(crate) status: ExitStatus,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Out {
    pub(crate) fn records(&self) -> Vec<Value> {
        json_lines(&self.stdout)
    }
}

impl Py {
    pub(crate) fn command(&self, script: &str, args: &[OsString]) -> Command {
        let mut cmd = Command::new(&self.python);
        cmd.arg(repo().join("tools/interop").join(script))
            .args(args)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("PYTHONIOENCODING", "utf-8")
            .env_remove("LMDB_DEFAULT_LIB_VERSION")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    pub(crate) fn spawn(&self, script: &str, args: &[OsString]) -> Child {
        self.command(script, args)
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {script}: {e}"))
    }

    pub(crate) fn run_with_input(&self, script: &str, args: &[OsString], input: &str) -> Out {
        let mut child = self
            .command(script, args)
            .stdin(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {script}: {e}"));
        let mut stdin = child.stdin.take().expect("piped");
        stdin.write_all(input.as_bytes()).unwrap();
        drop(stdin);
        wait_for(child, script, SCRIPT_TIMEOUT)
    }

    pub(crate) fn run(&self, script: &str, args: &[OsString]) -> Out {
        let child = self.spawn(script, args);
        wait_for(child, script, SCRIPT_TIMEOUT)
    }

    /// Runs a script that must succeed.
    pub(crate) fn ok(&self, script: &str, args: &[OsString]) -> Out {
        let out = self.run(script, args);
        assert!(
            out.status.success(),
            "{script} ({:?} venv) failed with {}:\n{}",
            self.which,
            out.status,
            out.stderr
        );
        out
    }

    /// cfxdb's view of a store: record JSON of every cookie (exit 0 = its value index is
    /// consistent both ways), and `{slot_cookies, slot_index, cookies, index_entries}`.
    pub(crate) fn cfxdb_read(&self, db: &Path) -> (BTreeMap<String, Value>, Value) {
        cfxdb_read_result(self.start_cfxdb_read(db))
    }

    /// [`Py::cfxdb_read`] in the background: finish it with [`cfxdb_read_result`].
    pub(crate) fn start_cfxdb_read(&self, db: &Path) -> Running {
        Running::new(
            self.spawn("cfxdb_read.py", &args![db, "-v"]),
            "cfxdb_read.py",
        )
    }

    /// What Crossbar's `CookieStoreDatabaseBacked` says about each value: (exists, auth tuple).
    pub(crate) fn crossbar_getauth(
        &self,
        db: &Path,
        values: &[String],
    ) -> BTreeMap<String, (bool, Value)> {
        let mut a = args![db].to_vec();
        a.extend(values.iter().map(OsString::from));
        let out = self.ok("crossbar_getauth.py", &a);
        let answers: BTreeMap<String, (bool, Value)> = out
            .records()
            .into_iter()
            .map(|v| {
                (
                    v["value"].as_str().expect("value").to_string(),
                    (v["exists"].as_bool().expect("exists"), v["auth"].clone()),
                )
            })
            .collect();
        assert_eq!(answers.len(), values.iter().collect::<BTreeSet<_>>().len());
        answers
    }
}

/// The result of [`Py::start_cfxdb_read`]: records by oid and the `-v` counts.
pub(crate) fn cfxdb_read_result(running: Running) -> (BTreeMap<String, Value>, Value) {
    let out = running.finish(SCRIPT_TIMEOUT);
    assert!(
        out.status.success(),
        "cfxdb_read.py failed with {}:\n{}",
        out.status,
        out.stderr
    );
    let counts = out
        .stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v.get("slot_cookies").is_some())
        .unwrap_or_else(|| panic!("cfxdb_read.py -v printed no counts: {}", out.stderr));
    assert_eq!(
        counts["cookies"], counts["index_entries"],
        "cfxdb: one value-index entry per cookie"
    );
    (keyed(out.records()), counts)
}

/// A started child whose output is being read.
pub(crate) struct Running {
    pub(crate) child: Child,
    pub(crate) what: String,
    pub(crate) stdout: std::thread::JoinHandle<std::io::Result<Vec<u8>>>,
    pub(crate) stderr: std::thread::JoinHandle<std::io::Result<Vec<u8>>>,
}

impl Running {
    pub(crate) fn new(mut child: Child, what: &str) -> Running {
        let mut stdout = child.stdout.take().expect("piped");
        let mut stderr = child.stderr.take().expect("piped");
        Running {
            child,
            what: what.to_string(),
            stdout: std::thread::spawn(move || {
                let mut s = Vec::new();
                stdout.read_to_end(&mut s).map(|_| s)
            }),
            stderr: std::thread::spawn(move || {
                let mut s = Vec::new();
                stderr.read_to_end(&mut s).map(|_| s)
            }),
        }
    }

    pub(crate) fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Waits for the child; kills it after `timeout`.
    pub(crate) fn finish(mut self, timeout: Duration) -> Out {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("{} did not finish within {timeout:?}: killed", self.what);
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let text = |r: std::thread::JoinHandle<std::io::Result<Vec<u8>>>| {
            String::from_utf8(r.join().unwrap().unwrap()).expect("UTF-8 output")
        };
        Out {
            status,
            stdout: text(self.stdout),
            stderr: text(self.stderr),
        }
    }
}

pub(crate) fn wait_for(child: Child, what: &str, timeout: Duration) -> Out {
    Running::new(child, what).finish(timeout)
}

// ---- the Rust CLI --------------------------------------------------------------------------

/// The `cookiestore` binary of the workspace's CLI crate (tools/cookiestore): `cargo test` at
/// the root builds it (a default member) into the directory above this test's `deps`.
pub(crate) fn cli_path() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test executable is in target/<profile>/deps");
    let bin = dir.join(format!("cookiestore{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.is_file(),
        "{} is missing: build the CLI first (`cargo build -p cookiestore-cli`), or run \
         `cargo test` at the workspace root",
        bin.display()
    );
    bin
}

pub(crate) fn cli() -> Command {
    let mut cmd = Command::new(cli_path());
    cmd.stdin(Stdio::null());
    cmd
}

pub(crate) fn cli_run(args: &[OsString]) -> Out {
    let child = cli()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start cookiestore");
    wait_for(child, "cookiestore", SCRIPT_TIMEOUT)
}

/// Runs `cookiestore` and asserts exit 0.
pub(crate) fn cli_ok(args: &[OsString]) -> Out {
    let out = cli_run(args);
    assert!(
        out.status.success(),
        "cookiestore {args:?}: exit {}\n{}{}",
        out.status,
        out.stdout,
        out.stderr
    );
    out
}

// ---- records ---------------------------------------------------------------------------------

pub(crate) fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| parse_json_exact(l).unwrap_or_else(|e| panic!("bad JSON line ({e}): {l}")))
        .collect()
}

/// Records by oid, with cfxdb's reading rules applied (an empty map is absent).
pub(crate) fn keyed(records: impl IntoIterator<Item = Value>) -> BTreeMap<String, Value> {
    let mut map = BTreeMap::new();
    for r in records {
        let oid = r["oid"].as_str().expect("record has an oid").to_string();
        let previous = map.insert(oid.clone(), normalized(&r));
        assert!(previous.is_none(), "two records with oid {oid}");
    }
    map
}

/// Every record of our store (expired ones too), as JSON by oid.
pub(crate) fn ours(store: &CookieStore) -> BTreeMap<String, Value> {
    let cookies: Vec<Cookie> = store
        .as_lmdb()
        .unwrap()
        .snapshot(|s| s.records()?.collect::<Result<Vec<_>, _>>())
        .unwrap();
    keyed(cookies.iter().map(|c| serde_json::to_value(c).unwrap()))
}

pub(crate) fn open_ro(db: &Path) -> CookieStore {
    CookieStore::open(db, StoreOptions::default().readonly(true))
        .unwrap_or_else(|e| panic!("open {} read-only: {e}", db.display()))
}

pub(crate) fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

pub(crate) fn expires_at(rec: &Value) -> u64 {
    let created = rec.get("created").and_then(Value::as_u64).unwrap_or(0);
    let max_age = rec.get("max_age").and_then(Value::as_u64).unwrap_or(0);
    created.saturating_add(max_age.saturating_mul(NS))
}

/// Asserts two record sets are equal, naming the first differences.
pub(crate) fn assert_same(
    got: &BTreeMap<String, Value>,
    want: &BTreeMap<String, Value>,
    what: &str,
) {
    let missing: Vec<_> = want.keys().filter(|k| !got.contains_key(*k)).collect();
    let extra: Vec<_> = got.keys().filter(|k| !want.contains_key(*k)).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{what}: {} records missing (first: {:?}), {} unexpected (first: {:?})",
        missing.len(),
        missing.iter().take(3).collect::<Vec<_>>(),
        extra.len(),
        extra.iter().take(3).collect::<Vec<_>>()
    );
    let mut diffs = Vec::new();
    for (oid, w) in want {
        let g = &got[oid];
        if g != w {
            let fields: BTreeSet<&String> = g
                .as_object()
                .into_iter()
                .chain(w.as_object())
                .flat_map(|m| m.keys())
                .filter(|k| g.get(*k) != w.get(*k))
                .collect();
            diffs.push(format!(
                "{oid}: fields {fields:?} differ\n  got:  {g}\n  want: {w}"
            ));
        }
    }
    assert!(
        diffs.is_empty(),
        "{what}: {} of {} records differ:\n{}",
        diffs.len(),
        want.len(),
        diffs.iter().take(5).cloned().collect::<Vec<_>>().join("\n")
    );
}

/// The auth tuple Crossbar's getAuth returns for a record: `[authid, authrole, authmethod,
/// authrealm, authextra]`, absent strings null, absent authextra `{}`.
pub(crate) fn auth_tuple(rec: &Value) -> Value {
    let s = |k: &str| rec.get(k).cloned().unwrap_or(Value::Null);
    json!([
        s("authid"),
        s("authrole"),
        s("authmethod"),
        s("authrealm"),
        rec.get("authextra").cloned().unwrap_or_else(|| json!({}))
    ])
}

pub(crate) fn unknown_tuple() -> Value {
    json!([null, null, null, null, null])
}

pub(crate) fn auth_of(rec: &Value) -> Option<Auth> {
    Some(Auth {
        authid: rec.get("authid")?.as_str()?.to_string(),
        authrole: rec
            .get("authrole")
            .and_then(Value::as_str)
            .map(str::to_string),
        authmethod: rec
            .get("authmethod")
            .and_then(Value::as_str)
            .map(str::to_string),
        authrealm: rec
            .get("authrealm")
            .and_then(Value::as_str)
            .map(str::to_string),
        authextra: rec.get("authextra").cloned().unwrap_or_else(|| json!({})),
    })
}

/// The LMDB data format in data.mdb's first meta page (magic at 16 in format 1, 24 in 3).
pub(crate) fn data_format(db: &Path) -> u32 {
    let head = std::fs::read(db.join("data.mdb")).unwrap();
    let u32_at = |o: usize| u32::from_le_bytes(head[o..o + 4].try_into().unwrap());
    match (u32_at(16), u32_at(24)) {
        (0xBEEF_C0DE, _) => u32_at(20),
        (_, 0xBEEF_C0DE) => u32_at(28),
        _ => panic!("{}: no LMDB magic", db.display()),
    }
}

/// The lock file's header: (magic, lock format), read by another process.
///
/// Never open lock.mdb in a process that has the store open: LMDB marks a live environment
/// with an fcntl lock on lock.mdb, and POSIX drops all of a process's fcntl locks on a file
/// when the process closes *any* descriptor of it. Reading lock.mdb in this process would
/// make the next opener (zlmdb) believe it is alone: it re-initialises lock.mdb and writes
/// concurrently. So a Python child reads it.
pub(crate) fn lock_format(py: &Py, db: &Path) -> (u32, u32) {
    let out = Command::new(&py.python)
        .args(["-c", "import struct, sys; print(*struct.unpack_from('<II', open(sys.argv[1], 'rb').read(8)))"])
        .arg(db.join("lock.mdb"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut it = text.split_whitespace().map(|n| n.parse::<u32>().unwrap());
    (it.next().unwrap(), it.next().unwrap())
}

/// `cookiestore check` through the library: clean, and whether foreign writes are pending.
pub(crate) fn assert_check_clean(db: &Path, expect_foreign: bool, what: &str) {
    let store = open_ro(db);
    let report = check(store.as_lmdb().unwrap()).unwrap();
    assert!(
        report.is_clean(),
        "{what}: check found problems: {:#?}",
        report.problems
    );
    assert_eq!(
        report.foreign_writes, expect_foreign,
        "{what}: foreign writes"
    );
    if !expect_foreign {
        assert!(report.deferred.is_empty(), "{what}: {:?}", report.deferred);
        assert_eq!(
            report.expiry_index_entries, report.records,
            "{what}: one expiry-index entry per record"
        );
    }
    assert_eq!(
        report.value_index_entries, report.records,
        "{what}: one value-index entry per record"
    );
    drop(store);
    let out = cli_run(&args!["check", db]);
    assert!(
        out.status.success(),
        "{what}: `cookiestore check` exit {}: {}{}",
        out.status,
        out.stdout,
        out.stderr
    );
}

// ---- both sides after a turn ----------------------------------------------------------------

/// After a turn: cfxdb and we see the same records, cfxdb's value index is consistent both
/// ways (`cfxdb_read.py` exit 0), and `check` (library and CLI) is clean. Returns the records.
pub(crate) fn verify_turn(
    py: &Py,
    db: &Path,
    foreign: bool,
    what: &str,
) -> BTreeMap<String, Value> {
    let (theirs, counts) = py.cfxdb_read(db);
    let store = open_ro(db);
    let mine = ours(&store);
    drop(store);
    assert_same(&mine, &theirs, what);
    assert_eq!(
        counts["cookies"].as_u64(),
        Some(mine.len() as u64),
        "{what}"
    );
    assert_check_clean(db, foreign, what);
    mine
}

pub(crate) fn value_of(rec: &Value) -> String {
    rec["value"].as_str().expect("value").to_string()
}

pub(crate) fn values(records: &BTreeMap<String, Value>) -> BTreeSet<String> {
    records.values().map(value_of).collect()
}

/// Our side of a turn's end: every record (read-only open) and `check` (library and CLI)
/// clean; `foreign`: whether another program wrote last.
pub(crate) fn verify_ours(db: &Path, foreign: bool, what: &str) -> BTreeMap<String, Value> {
    let store = open_ro(db);
    let mine = ours(&store);
    drop(store);
    assert_check_clean(db, foreign, what);
    mine
}

/// A `{"op": "scan"}` line of cfxdb_ops.py: cfxdb saw `want`, and its value index agrees
/// with its records both ways.
pub(crate) fn assert_scan_agrees(scan: &Value, want: &BTreeMap<String, Value>, what: &str) {
    assert_eq!(scan["problems"], json!([]), "{what}: cfxdb's index check");
    assert_eq!(
        scan["index_entries"].as_u64(),
        Some(want.len() as u64),
        "{what}: cfxdb's value index entries"
    );
    assert_eq!(scan["slots"], json!([1, 2]), "{what}");
    let theirs = keyed(scan["scan"].as_array().expect("records").iter().cloned());
    assert_same(&theirs, want, &format!("{what}: cfxdb's reading vs ours"));
}
