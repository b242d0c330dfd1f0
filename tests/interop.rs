//! Interoperability with the real Python implementations (issue 5): cfxdb 25.12.2 and
//! zlmdb 25.12.3 (LMDB 0.9.33), Crossbar.io 25.12.1, and zlmdb 26.10.1 (LMDB 1.0.2).
//!
//! The Python side is `tools/interop/*.py`, run with the virtualenvs `tools/interop/setup.sh`
//! creates (`target/interop-venv`, or `$COOKIESTORE_INTEROP_VENV`, and the same path with
//! `-z26`). When `CI` is set (to anything non-empty) a missing venv fails the tests; otherwise
//! they are skipped with a message on stderr.
//!
//! Records are compared as parsed JSON (the scripts' record JSON and our `Cookie`'s serde form
//! use the same field names, ns integers and uuid strings). Python's JSON is parsed here with
//! an exact number parser: serde_json without its `float_roundtrip` feature can be one ULP off.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::{OsStr, OsString};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::normalized;
use cookiestore::check::check;
use cookiestore::legacy::replay;
use cookiestore::timefmt::parse_rfc3339_ns;
use cookiestore::{
    Auth, AuthContext, AuthUpdate, Cookie, CookieStore, Error, ManualClock, StoreOptions, Tracker,
    TrackerConfig,
};
use serde_json::{Map, Value, json};
use uuid::Uuid;

const NS: u64 = 1_000_000_000;
const DAY_NS: u64 = 86_400 * NS;
/// `BASE_NS` of cfxdb_write.py: 2026-11-22T00:00:00Z; its cookies are created within ±2 days.
const WRITE_BASE_NS: u64 = 1_795_305_600 * NS;
/// Longest a single script may run before the test gives up on it.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(180);

// ---- the Python side -----------------------------------------------------------------------

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Venv {
    /// cfxdb 25.12.2, zlmdb 25.12.3, crossbar 25.12.1.
    Main,
    /// zlmdb 26.10.1 (LMDB 0.9.36 and 1.0.2 engines), cfxdb 25.12.2.
    Z26,
}

fn venv_dir(which: Venv) -> PathBuf {
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
/// (see `common::need`).
fn python(which: Venv) -> Option<Py> {
    let dir = venv_dir(which);
    let python = dir.join("bin/python");
    let ready = python.is_file() && dir.join(".ready").is_file();
    let why = format!(
        "the interop venv {} is missing or incomplete (no bin/python or .ready); create it \
         with tools/interop/setup.sh",
        dir.display()
    );
    common::need(ready, &why).then_some(Py { python, which })
}

/// Both venvs, or `None` (skip; see [`python`]).
fn pythons() -> Option<(Py, Py)> {
    Some((python(Venv::Main)?, python(Venv::Z26)?))
}

macro_rules! args {
    ($($a:expr),* $(,)?) => {
        [$(OsString::from(AsRef::<OsStr>::as_ref(&$a))),*]
    };
}

struct Py {
    python: PathBuf,
    which: Venv,
}

struct Out {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl Out {
    fn records(&self) -> Vec<Value> {
        json_lines(&self.stdout)
    }
}

impl Py {
    fn command(&self, script: &str, args: &[OsString]) -> Command {
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

    fn spawn(&self, script: &str, args: &[OsString]) -> Child {
        self.command(script, args)
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {script}: {e}"))
    }

    fn run_with_input(&self, script: &str, args: &[OsString], input: &str) -> Out {
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

    fn run(&self, script: &str, args: &[OsString]) -> Out {
        let child = self.spawn(script, args);
        wait_for(child, script, SCRIPT_TIMEOUT)
    }

    /// Runs a script that must succeed.
    fn ok(&self, script: &str, args: &[OsString]) -> Out {
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
    fn cfxdb_read(&self, db: &Path) -> (BTreeMap<String, Value>, Value) {
        cfxdb_read_result(self.start_cfxdb_read(db))
    }

    /// [`Py::cfxdb_read`] in the background: finish it with [`cfxdb_read_result`].
    fn start_cfxdb_read(&self, db: &Path) -> Running {
        Running::new(
            self.spawn("cfxdb_read.py", &args![db, "-v"]),
            "cfxdb_read.py",
        )
    }

    /// What Crossbar's `CookieStoreDatabaseBacked` says about each value: (exists, auth tuple).
    fn crossbar_getauth(&self, db: &Path, values: &[String]) -> BTreeMap<String, (bool, Value)> {
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
fn cfxdb_read_result(running: Running) -> (BTreeMap<String, Value>, Value) {
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
struct Running {
    child: Child,
    what: String,
    stdout: std::thread::JoinHandle<std::io::Result<Vec<u8>>>,
    stderr: std::thread::JoinHandle<std::io::Result<Vec<u8>>>,
}

impl Running {
    fn new(mut child: Child, what: &str) -> Running {
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

    fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Waits for the child; kills it after `timeout`.
    fn finish(mut self, timeout: Duration) -> Out {
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

fn wait_for(child: Child, what: &str, timeout: Duration) -> Out {
    Running::new(child, what).finish(timeout)
}

// ---- the Rust CLI --------------------------------------------------------------------------

fn cli() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cookiestore"));
    cmd.stdin(Stdio::null());
    cmd
}

fn cli_run(args: &[OsString]) -> Out {
    let child = cli()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start cookiestore");
    wait_for(child, "cookiestore", SCRIPT_TIMEOUT)
}

/// Runs `cookiestore` and asserts exit 0.
fn cli_ok(args: &[OsString]) -> Out {
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

fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| parse_json_exact(l).unwrap_or_else(|e| panic!("bad JSON line ({e}): {l}")))
        .collect()
}

/// Records by oid, with cfxdb's reading rules applied (an empty map is absent).
fn keyed(records: impl IntoIterator<Item = Value>) -> BTreeMap<String, Value> {
    let mut map = BTreeMap::new();
    for r in records {
        let oid = r["oid"].as_str().expect("record has an oid").to_string();
        let previous = map.insert(oid.clone(), normalized(&r));
        assert!(previous.is_none(), "two records with oid {oid}");
    }
    map
}

/// Every record of our store (expired ones too), as JSON by oid.
fn ours(store: &CookieStore) -> BTreeMap<String, Value> {
    let cookies: Vec<Cookie> = store
        .snapshot(|s| s.records()?.collect::<Result<Vec<_>, _>>())
        .unwrap();
    keyed(cookies.iter().map(|c| serde_json::to_value(c).unwrap()))
}

fn open_ro(db: &Path) -> CookieStore {
    CookieStore::open(
        db,
        StoreOptions {
            readonly: true,
            ..StoreOptions::default()
        },
    )
    .unwrap_or_else(|e| panic!("open {} read-only: {e}", db.display()))
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

fn expires_at(rec: &Value) -> u64 {
    let created = rec.get("created").and_then(Value::as_u64).unwrap_or(0);
    let max_age = rec.get("max_age").and_then(Value::as_u64).unwrap_or(0);
    created.saturating_add(max_age.saturating_mul(NS))
}

/// Asserts two record sets are equal, naming the first differences.
fn assert_same(got: &BTreeMap<String, Value>, want: &BTreeMap<String, Value>, what: &str) {
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
fn auth_tuple(rec: &Value) -> Value {
    let s = |k: &str| rec.get(k).cloned().unwrap_or(Value::Null);
    json!([
        s("authid"),
        s("authrole"),
        s("authmethod"),
        s("authrealm"),
        rec.get("authextra").cloned().unwrap_or_else(|| json!({}))
    ])
}

fn unknown_tuple() -> Value {
    json!([null, null, null, null, null])
}

fn auth_of(rec: &Value) -> Option<Auth> {
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
fn data_format(db: &Path) -> u32 {
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
/// when the process closes *any* descriptor of it. Reading lock.mdb here once made the next
/// opener (zlmdb) believe it was alone: it re-initialised lock.mdb and wrote concurrently.
fn lock_format(py: &Py, db: &Path) -> (u32, u32) {
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
fn assert_check_clean(db: &Path, expect_foreign: bool, what: &str) {
    let store = open_ro(db);
    let report = check(&store).unwrap();
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

// ---- case 1: cfxdb writes, we read --------------------------------------------------------------

#[test]
fn case1_cfxdb_writes_we_read_every_field() {
    let Some(py) = python(Venv::Main) else { return };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let t0 = Instant::now();
    let written = py
        .ok(
            "cfxdb_write.py",
            &args![db, "--count", "400", "--seed", "5101", "--batch", "150"],
        )
        .records();
    assert_eq!(written.len(), 400);
    assert_eq!(data_format(&db), 1, "zlmdb 25.12 writes LMDB data format 1");
    assert_varied(&written);
    let written = keyed(written);
    let (cfxdb_view, counts) = py.cfxdb_read(&db);
    assert_eq!(counts["cookies"], 400);
    assert_eq!(
        (
            counts["slot_cookies"].as_u64(),
            counts["slot_index"].as_u64()
        ),
        (Some(1), Some(2))
    );

    // Read-only: data.mdb is not written; every record, expired or not.
    let data_before = std::fs::read(db.join("data.mdb")).unwrap();
    let (options, _) = common::options_at(WRITE_BASE_NS);
    let store = CookieStore::open(
        &db,
        StoreOptions {
            readonly: true,
            ..options
        },
    )
    .unwrap();
    let all = ours(&store);
    assert_same(&all, &written, "our reading vs what cfxdb wrote");
    assert_same(&all, &cfxdb_view, "our reading vs cfxdb's reading");

    // Lookups by value, with expiry at the pinned clock.
    let (mut live, mut expired, mut authenticated) = (0, 0, 0);
    for rec in written.values() {
        let value = rec["value"].as_str().unwrap();
        let is_live = WRITE_BASE_NS < expires_at(rec);
        assert_eq!(store.exists(value).unwrap(), is_live, "exists({value})");
        match store.get(value).unwrap() {
            Some(c) => {
                assert!(is_live, "{value} is expired but get found it");
                assert_eq!(common::json(&c), *rec, "get({value})");
                live += 1;
            }
            None => {
                assert!(!is_live, "live cookie {value} not found");
                expired += 1;
            }
        }
        let want_auth = if is_live { auth_of(rec) } else { None };
        authenticated += usize::from(want_auth.is_some());
        assert_eq!(
            store.get_auth(value).unwrap(),
            want_auth,
            "get_auth({value})"
        );
        let lookup = store.lookup(value).unwrap();
        assert_eq!(lookup.is_some(), is_live);
        if let Some(l) = lookup {
            assert_eq!(l.oid.to_string(), rec["oid"].as_str().unwrap());
            assert_eq!(l.expires_at, expires_at(rec));
        }
    }
    assert!(
        live > 100 && expired > 10 && authenticated > 100,
        "{live} {expired} {authenticated}"
    );
    drop(store);
    assert_eq!(
        std::fs::read(db.join("data.mdb")).unwrap(),
        data_before,
        "a read-only open must not write data.mdb"
    );

    // `cookiestore dump` (and `export`) read every field too.
    let dumped = cli_ok(&args![
        "--now",
        "2026-11-22T00:00:00Z",
        "dump",
        &db,
        "--include-expired"
    ]);
    let dumped = keyed(json_lines(&dumped.stdout).into_iter().map(dump_to_record));
    assert_same(
        &dumped,
        &written,
        "`cookiestore dump --include-expired` vs what cfxdb wrote",
    );
    let live_dump = cli_ok(&args!["--now", "2026-11-22T00:00:00Z", "dump", &db]);
    assert_eq!(
        json_lines(&live_dump.stdout).len(),
        live,
        "`cookiestore dump`: live cookies"
    );
    let exported = cli_ok(&args!["export", &db]);
    assert_same(
        &keyed(json_lines(&exported.stdout)),
        &written,
        "`cookiestore export` vs what cfxdb wrote",
    );
    eprintln!("case 1: {:.1?}", t0.elapsed());
}

/// The generator covered what the issue asks: every field set somewhere and absent somewhere,
/// non-ASCII text, values of 6 and 64 characters, nested CBOR, 0 values.
fn assert_varied(records: &[Value]) {
    const FIELDS: [&str; 17] = [
        "oid",
        "created",
        "max_age",
        "name",
        "value",
        "authenticated",
        "authenticated_on_node",
        "authenticated_on_worker",
        "authenticated_transport_info",
        "authenticated_session",
        "authenticated_joined_at",
        "authenticated_authmethod",
        "authid",
        "authrole",
        "authmethod",
        "authrealm",
        "authextra",
    ];
    for f in FIELDS {
        let n = records.iter().filter(|r| r.get(f).is_some()).count();
        assert!(n > 0, "no record has {f}");
        if !matches!(f, "oid" | "value") {
            assert!(
                n < records.len(),
                "every record has {f}: no absent/0/empty case"
            );
        }
    }
    let lens: BTreeSet<usize> = records
        .iter()
        .map(|r| r["value"].as_str().unwrap().len())
        .collect();
    assert!(
        lens.contains(&6) && lens.contains(&64),
        "value lengths {lens:?}"
    );
    let text = |r: &Value| r.to_string();
    assert!(
        records
            .iter()
            .any(|r| text(r).contains('🍪') || text(r).contains('😀'))
    );
    assert!(records.iter().any(|r| text(r).contains("\\u0000")));
    let nested = |v: Option<&Value>| {
        v.and_then(Value::as_object)
            .is_some_and(|m| m.values().any(|x| x.is_object() || x.is_array()))
    };
    assert!(records.iter().any(|r| nested(r.get("authextra"))));
    assert!(
        records
            .iter()
            .any(|r| nested(r.get("authenticated_transport_info")))
    );
    assert!(
        records
            .iter()
            .any(|r| r.get("max_age").and_then(Value::as_u64) == Some(u64::MAX))
    );
}

/// A `cookiestore dump` line (RFC 3339 timestamps, nulls) as record JSON (ns, absent).
fn dump_to_record(v: Value) -> Value {
    let Value::Object(m) = v else {
        panic!("dump line is not an object: {v}")
    };
    let mut out = Map::new();
    for (k, v) in m {
        let v = match (k.as_str(), v) {
            (_, Value::Null) => continue,
            ("created" | "authenticated" | "authenticated_joined_at", Value::String(s)) => {
                json!(parse_rfc3339_ns(&s).unwrap_or_else(|e| panic!("{k}: {s}: {e}")))
            }
            (_, Value::Number(n)) if n.as_u64() == Some(0) => continue,
            (_, Value::String(s)) if s.is_empty() => continue,
            (_, v) => v,
        };
        out.insert(k, v);
    }
    Value::Object(out)
}

// ---- case 2: we write, cfxdb and Crossbar read --------------------------------------------------

/// A small deterministic generator (xorshift64*), so that failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn text(&mut self, max: u64) -> String {
        const POOLS: [&str; 6] = [
            "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
            "äöüßéñçøåŁœ",
            "漢字テストユーザー管理者한국어",
            "😀🍪🚀🔐✅👍🏽",
            "שלוםمرحبا",
            "\"\\'\t\n\r{}[]<>;,\u{0}\u{7}\u{7f}\u{2028}\u{feff}",
        ];
        let n = self.below(max + 1);
        (0..n)
            .map(|_| {
                let pool: Vec<char> = self.pick(&POOLS).chars().collect();
                *self.pick(&pool)
            })
            .collect()
    }
    fn opt_text(&mut self, max: u64) -> Option<String> {
        self.chance(80).then(|| self.text(max))
    }
    fn float(&mut self) -> f64 {
        let uniform = (self.next() >> 11) as f64 / (1u64 << 53) as f64 * 2e6 - 1e6;
        *self.pick(&[
            0.0,
            -0.0,
            1.5,
            1e-300,
            f64::MAX,
            f64::MIN_POSITIVE,
            std::f64::consts::PI,
            uniform,
            uniform,
        ])
    }
    fn json(&mut self, depth: u32) -> Value {
        match self.below(if depth < 3 { 8 } else { 6 }) {
            0 => json!(*self.pick(&[0u64, 1, 23, 24, 255, 256, 65_536, 1 << 53, u64::MAX])),
            1 => json!(*self.pick(&[-1i64, -24, -25, -65_537, i64::MIN, i64::MIN + 1])),
            2 => json!(self.float()),
            3 => json!(self.chance(50)),
            4 => Value::Null,
            5 => json!(self.text(16)),
            6 => Value::Array((0..self.below(4)).map(|_| self.json(depth + 1)).collect()),
            _ => self.map(depth + 1),
        }
    }
    fn map(&mut self, depth: u32) -> Value {
        let n = self.below(5);
        Value::Object((0..n).map(|_| (self.text(10), self.json(depth))).collect())
    }
    fn auth(&mut self, i: usize) -> Auth {
        Auth {
            authid: format!("{}-{i}", self.text(12)),
            authrole: self.opt_text(12),
            authmethod: self
                .chance(80)
                .then(|| self.pick(&["cookie", "ticket", "wampcra"]).to_string()),
            authrealm: self.opt_text(16),
            authextra: if self.chance(75) {
                self.map(0)
            } else {
                json!({})
            },
        }
    }
    fn context(&mut self) -> AuthContext {
        if self.chance(20) {
            return AuthContext::default();
        }
        AuthContext {
            node: self
                .chance(80)
                .then(|| Uuid::from_u128(u128::from(self.next()) << 64 | u128::from(self.next()))),
            worker: self.opt_text(16),
            transport_info: if self.chance(80) {
                json!({"type": "websocket", "peer": "tcp4:127.0.0.1:4711", "http_headers_received": self.map(1), "x": self.json(1)})
            } else {
                Value::Null
            },
            session: {
                let random = self.next();
                *self.pick(&[0, 1, 1 << 53, u64::MAX, random])
            },
            joined_at: self.next() >> 1,
            authmethod: self.opt_text(10),
        }
    }
}

#[test]
fn case2_we_write_cfxdb_and_crossbar_read() {
    let Some(py) = python(Venv::Main) else { return };
    let t0 = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let mut rng = Rng(0x5EED_0002);
    let store = CookieStore::open(&db, StoreOptions::default()).unwrap();
    let tracker = Tracker::new(
        store.clone(),
        TrackerConfig {
            max_age: 7 * 86_400,
            ..TrackerConfig::default()
        },
    )
    .unwrap();

    // Create: through the tracker (defaults) and the store (6 to 64 characters, other names).
    let mut values: Vec<String> = (0..20)
        .map(|_| {
            let t = tracker.track(None).unwrap();
            assert!(t.is_new);
            t.value
        })
        .collect();
    for i in 0..40 {
        let length = [6, 64, 7, 24, 33][i % 5];
        let name = ["cbtid", "my_cookie", "x"][i % 3];
        let max_age = [60, 86_400, 315_360_000][i % 3];
        values.push(store.create(name, length, max_age).unwrap().value);
    }
    // Whole records through put (restore path): every field, random content.
    for i in 0..20 {
        let auth = rng.auth(i);
        let ctx = rng.context();
        let c = Cookie {
            oid: Uuid::new_v4(),
            created: now_ns() - rng.below(DAY_NS),
            max_age: *rng.pick(&[3600, 86_400, u64::MAX]),
            name: rng.opt_text(8),
            value: format!("put{i}x{}", rng.below(1 << 40)),
            authenticated: now_ns(),
            authenticated_on_node: ctx.node,
            authenticated_on_worker: ctx.worker,
            authenticated_transport_info: ctx.transport_info,
            authenticated_session: ctx.session,
            authenticated_joined_at: ctx.joined_at,
            authenticated_authmethod: ctx.authmethod,
            authid: Some(auth.authid),
            authrole: auth.authrole,
            authmethod: auth.authmethod,
            authrealm: auth.authrealm,
            authextra: auth.authextra,
        };
        store.put(&c).unwrap();
        values.push(c.value);
    }

    // Authenticate two thirds, then re-authenticate every third of those.
    let authed: Vec<String> = values[..60]
        .iter()
        .step_by(3)
        .chain(values[..60].iter().skip(1).step_by(3))
        .cloned()
        .collect();
    for (i, v) in authed.iter().enumerate() {
        let (auth, ctx) = (rng.auth(i), rng.context());
        assert_eq!(
            tracker.authenticate(v, &auth, &ctx).unwrap(),
            AuthUpdate::Written
        );
    }
    for (i, v) in authed.iter().step_by(3).enumerate() {
        let auth = Auth::new(&format!("renamed-{i}-Ω"), "admin", "wampcra", "realm1")
            .with_authextra(
                json!({"renamed": true, "i": i, "nested": {"list": [1, -2, 3.25, null, "🍪"]}}),
            );
        assert_eq!(
            store.set_auth(v, &auth, &AuthContext::default()).unwrap(),
            AuthUpdate::Written
        );
        assert_eq!(
            store.set_auth(v, &auth, &AuthContext::default()).unwrap(),
            AuthUpdate::Unchanged
        );
    }

    // Log out ten: five authenticated, five not, and two put ones.
    let unauthed: Vec<&String> = values[..60]
        .iter()
        .filter(|v| !authed.contains(v))
        .collect();
    let mut logged_out: Vec<String> = authed.iter().take(5).cloned().collect();
    logged_out.extend(unauthed.iter().take(5).map(|v| v.to_string()));
    logged_out.extend(values[60..62].iter().cloned());
    for v in &logged_out {
        assert!(tracker.logout(v).unwrap(), "logout {v}");
        assert!(!tracker.exists(v).unwrap());
    }
    let mine = ours(&store);
    assert_eq!(mine.len(), 80 - logged_out.len());
    drop(tracker);
    drop(store);

    // cfxdb reads every field back; its value index check passes both ways. Meanwhile
    // Crossbar's own database store answers exists and getAuth for every value.
    let mut ask = values.clone();
    ask.push("no-such-cookie-value".into());
    let reading = py.start_cfxdb_read(&db);
    let answers = py.crossbar_getauth(&db, &ask);
    let (theirs, counts) = cfxdb_read_result(reading);
    assert_same(&theirs, &mine, "cfxdb's reading vs what we wrote");
    assert_eq!(counts["cookies"].as_u64(), Some(mine.len() as u64));
    let their_values: BTreeSet<&str> = theirs
        .values()
        .map(|r| r["value"].as_str().unwrap())
        .collect();
    for v in &logged_out {
        assert!(
            !their_values.contains(v.as_str()),
            "logged-out {v} still in cfxdb's view"
        );
    }

    let by_value: BTreeMap<&str, &Value> = mine
        .values()
        .map(|r| (r["value"].as_str().unwrap(), r))
        .collect();
    for v in &ask {
        let (exists, auth) = &answers[v];
        match by_value.get(v.as_str()) {
            Some(rec) => {
                assert!(*exists, "Crossbar: {v} should exist");
                assert_eq!(*auth, auth_tuple(rec), "Crossbar getAuth({v})");
            }
            None => {
                assert!(!*exists, "Crossbar: {v} should be gone");
                assert_eq!(*auth, unknown_tuple(), "Crossbar getAuth({v})");
            }
        }
    }
    let crossbar_authenticated = answers.values().filter(|(_, a)| !a[0].is_null()).count();
    assert_eq!(
        crossbar_authenticated,
        by_value
            .values()
            .filter(|r| r.get("authid").is_some())
            .count()
    );
    assert!(crossbar_authenticated >= 40, "{crossbar_authenticated}");

    // Crossbar opened the store writable: nothing changed, and our indexes are still right.
    assert_check_clean(&db, false, "after Crossbar's getAuth");
    let again = open_ro(&db);
    assert_same(&ours(&again), &mine, "after Crossbar's getAuth");
    eprintln!("case 2: {:.1?}", t0.elapsed());
}

// ---- exact JSON parsing ----------------------------------------------------------------------

/// Parses one JSON text into a `Value`, reading floats with Rust's correctly rounded parser.
fn parse_json_exact(text: &str) -> Result<Value, String> {
    let mut p = JsonParser {
        s: text.as_bytes(),
        i: 0,
    };
    let v = p.value()?;
    p.ws();
    if p.i != p.s.len() {
        return Err(format!("trailing characters at {}", p.i));
    }
    Ok(v)
}

struct JsonParser<'a> {
    s: &'a [u8],
    i: usize,
}

impl JsonParser<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && matches!(self.s[self.i], b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn expect(&mut self, b: u8) -> Result<(), String> {
        self.ws();
        if self.peek() == Some(b) {
            self.i += 1;
            Ok(())
        } else {
            Err(format!("expected {:?} at {}", b as char, self.i))
        }
    }
    fn value(&mut self) -> Result<Value, String> {
        self.ws();
        match self.peek().ok_or("unexpected end")? {
            b'{' => {
                self.i += 1;
                let mut m = Map::new();
                self.ws();
                if self.peek() == Some(b'}') {
                    self.i += 1;
                    return Ok(Value::Object(m));
                }
                loop {
                    self.ws();
                    let k = self.string()?;
                    self.expect(b':')?;
                    let v = self.value()?;
                    m.insert(k, v);
                    self.ws();
                    match self.peek() {
                        Some(b',') => self.i += 1,
                        Some(b'}') => {
                            self.i += 1;
                            return Ok(Value::Object(m));
                        }
                        _ => return Err(format!("expected , or }} at {}", self.i)),
                    }
                }
            }
            b'[' => {
                self.i += 1;
                let mut a = Vec::new();
                self.ws();
                if self.peek() == Some(b']') {
                    self.i += 1;
                    return Ok(Value::Array(a));
                }
                loop {
                    a.push(self.value()?);
                    self.ws();
                    match self.peek() {
                        Some(b',') => self.i += 1,
                        Some(b']') => {
                            self.i += 1;
                            return Ok(Value::Array(a));
                        }
                        _ => return Err(format!("expected , or ] at {}", self.i)),
                    }
                }
            }
            b'"' => Ok(Value::String(self.string()?)),
            b't' => self.word("true", Value::Bool(true)),
            b'f' => self.word("false", Value::Bool(false)),
            b'n' => self.word("null", Value::Null),
            _ => self.number(),
        }
    }
    fn word(&mut self, w: &str, v: Value) -> Result<Value, String> {
        if self.s[self.i..].starts_with(w.as_bytes()) {
            self.i += w.len();
            Ok(v)
        } else {
            Err(format!("bad literal at {}", self.i))
        }
    }
    fn number(&mut self) -> Result<Value, String> {
        let start = self.i;
        while self
            .peek()
            .is_some_and(|b| b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E'))
        {
            self.i += 1;
        }
        let t = std::str::from_utf8(&self.s[start..self.i]).unwrap();
        if t.contains(['.', 'e', 'E']) {
            let f: f64 = t.parse().map_err(|e| format!("{t}: {e}"))?;
            serde_json::Number::from_f64(f)
                .map(Value::Number)
                .ok_or_else(|| format!("{t}: not finite"))
        } else if let Ok(u) = t.parse::<u64>() {
            Ok(json!(u))
        } else {
            t.parse::<i64>()
                .map(|i| json!(i))
                .map_err(|e| format!("{t}: {e}"))
        }
    }
    fn hex4(&mut self) -> Result<u32, String> {
        let h = self.s.get(self.i..self.i + 4).ok_or("short \\u escape")?;
        self.i += 4;
        u32::from_str_radix(std::str::from_utf8(h).map_err(|e| e.to_string())?, 16)
            .map_err(|e| e.to_string())
    }
    fn string(&mut self) -> Result<String, String> {
        if self.peek() != Some(b'"') {
            return Err(format!("expected a string at {}", self.i));
        }
        self.i += 1;
        let mut out = String::new();
        loop {
            let start = self.i;
            while self.peek().is_some_and(|b| b != b'"' && b != b'\\') {
                self.i += 1;
            }
            out.push_str(std::str::from_utf8(&self.s[start..self.i]).map_err(|e| e.to_string())?);
            match self.peek().ok_or("unterminated string")? {
                b'"' => {
                    self.i += 1;
                    return Ok(out);
                }
                _ => {
                    self.i += 1;
                    let e = self.peek().ok_or("unterminated escape")?;
                    self.i += 1;
                    match e {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let hi = self.hex4()?;
                            let c = if (0xD800..0xDC00).contains(&hi) {
                                if !self.s[self.i..].starts_with(b"\\u") {
                                    return Err("lone surrogate".into());
                                }
                                self.i += 2;
                                let lo = self.hex4()?;
                                0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                            } else {
                                hi
                            };
                            out.push(char::from_u32(c).ok_or("bad \\u escape")?);
                        }
                        _ => return Err(format!("bad escape at {}", self.i)),
                    }
                }
            }
        }
    }
}

#[test]
fn exact_json_parser_reads_what_python_writes() {
    let v = parse_json_exact(
        r#"{"a": [1, -2, 18446744073709551615, -9223372036854775808, 988282.8468279869, 1e-300, -0.0, true, null], "b\u00e9\ud83c\udf6a": "x\n\u0000y"}"#,
    )
    .unwrap();
    assert_eq!(v["a"][2].as_u64(), Some(u64::MAX));
    assert_eq!(v["a"][3].as_i64(), Some(i64::MIN));
    assert_eq!(
        v["a"][4].as_f64().unwrap().to_bits(),
        988_282.846_827_986_9_f64.to_bits()
    );
    assert_eq!(v["bé🍪"], "x\n\u{0}y");
    assert!(parse_json_exact("{\"a\": 1} x").is_err());
}

// ---- case 3: taking turns ----------------------------------------------------------------------

/// After a turn: cfxdb and we see the same records, cfxdb's value index is consistent both
/// ways (`cfxdb_read.py` exit 0), and `check` (library and CLI) is clean. Returns the records.
fn verify_turn(py: &Py, db: &Path, foreign: bool, what: &str) -> BTreeMap<String, Value> {
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

fn value_of(rec: &Value) -> String {
    rec["value"].as_str().expect("value").to_string()
}

fn values(records: &BTreeMap<String, Value>) -> BTreeSet<String> {
    records.values().map(value_of).collect()
}

/// Our side of a turn's end: every record (read-only open) and `check` (library and CLI)
/// clean; `foreign`: whether another program wrote last.
fn verify_ours(db: &Path, foreign: bool, what: &str) -> BTreeMap<String, Value> {
    let store = open_ro(db);
    let mine = ours(&store);
    drop(store);
    assert_check_clean(db, foreign, what);
    mine
}

/// A `{"op": "scan"}` line of cfxdb_ops.py: cfxdb saw `want`, and its value index agrees
/// with its records both ways.
fn assert_scan_agrees(scan: &Value, want: &BTreeMap<String, Value>, what: &str) {
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

/// Runs cfxdb_ops.py batch: a scan, the ops (each its own write transaction), a scan.
/// Returns (first scan, op outputs, last scan).
fn python_turn(py: &Py, db: &Path, ops: &[Value]) -> (Value, Vec<Value>, Value) {
    let scan = json!({"op": "scan"});
    let input: String = std::iter::once(&scan)
        .chain(ops)
        .chain(std::iter::once(&scan))
        .map(|o| format!("{o}\n"))
        .collect();
    let out = py.run_with_input("cfxdb_ops.py", &args![db, "batch"], &input);
    assert!(
        out.status.success(),
        "cfxdb_ops.py batch failed: {}",
        out.stderr
    );
    let mut printed = out.records();
    assert_eq!(printed.len(), ops.len() + 2, "one line per op");
    let last = printed.pop().unwrap();
    let first = printed.remove(0);
    (first, printed, last)
}

#[test]
fn case3_taking_turns_on_one_database() {
    let Some(py) = python(Venv::Main) else { return };
    let t0 = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let start = now_ns();
    let hour = 3600 * NS;

    // Turn 1, we: create eight live cookies and four that expired an hour ago.
    let store = CookieStore::open(&db, StoreOptions::default()).unwrap();
    let live: Vec<String> = (0..8)
        .map(|_| store.create("cbtid", 24, 86_400).unwrap().value)
        .collect();
    let past = store.with_clock(Arc::new(ManualClock::new(start - 2 * hour)));
    let our_expired: Vec<String> = (0..4)
        .map(|_| past.create("cbtid", 24, 60).unwrap().value)
        .collect();
    drop((past, store));
    let turn1 = verify_ours(&db, false, "turn 1 (we create)");
    assert_eq!(turn1.len(), 12);

    // Turn 2, Python: authenticate four of ours (one expired), create three live and three
    // expired cookies, authenticate one of its own.
    let py_live = ["pyLiveAAAA01", "pyLiveAAAA02", "pyLiveAAAA03"];
    let py_expired = ["pyExpiredB01", "pyExpiredB02", "pyExpiredB03"];
    let extra =
        json!({"roles": ["a", "b"], "n": -7, "f": 0.1, "deep": {"x": [true, null, {"y": "ü🍪"}]}});
    let mut ops: Vec<Value> = Vec::new();
    for (i, v) in live[..3].iter().chain(&our_expired[..1]).enumerate() {
        ops.push(
            json!({"op": "auth", "value": v, "authid": format!("py-user-{i}-ユーザー"),
            "authrole": "frontend", "authmethod": "ticket", "authrealm": "realm1",
            "authextra": extra, "authenticated": start + i as u64}),
        );
    }
    for v in py_live {
        ops.push(json!({"op": "create", "value": v, "max_age": 86_400, "created": start}));
    }
    for v in py_expired {
        ops.push(json!({"op": "create", "value": v, "max_age": 60, "created": start - 24 * hour}));
    }
    ops.push(
        json!({"op": "auth", "value": py_live[0], "authid": "py-own", "authrole": "backend",
        "authmethod": "cookie", "authrealm": "realm2"}),
    );
    let (before, _, after) = python_turn(&py, &db, &ops);
    assert_scan_agrees(&before, &turn1, "after turn 1 (we create)");
    let turn2 = verify_ours(&db, true, "turn 2 (Python authenticates and creates)");
    assert_scan_agrees(&after, &turn2, "turn 2 (Python authenticates and creates)");
    assert_eq!(turn2.len(), 18);
    {
        // Python's writes are pending for our expiry index: check defers, does not complain.
        let store = open_ro(&db);
        let report = check(&store).unwrap();
        assert!(
            report.foreign_writes && !report.deferred.is_empty(),
            "{report:?}"
        );
        let want = Auth::new("py-user-0-ユーザー", "frontend", "ticket", "realm1")
            .with_authextra(extra.clone());
        assert_eq!(store.get_auth(&live[0]).unwrap(), Some(want));
        assert_eq!(store.get_auth(&our_expired[0]).unwrap(), None, "expired");
        assert_eq!(
            store.get_auth(py_live[0]).unwrap().unwrap().authid,
            "py-own"
        );
        assert!(store.exists(py_live[1]).unwrap());
        assert!(!store.exists(py_expired[0]).unwrap(), "expired on arrival");
    }

    // Turn 3, we: re-authenticate two of Python's authentications and one Python cookie.
    let store = CookieStore::open(&db, StoreOptions::default()).unwrap();
    assert!(
        !store.stats().unwrap().foreign_writes,
        "reconciled at the writable open"
    );
    let reauth = [live[0].clone(), live[1].clone(), py_live[0].to_string()];
    for (i, v) in reauth.iter().enumerate() {
        let auth = Auth::new(&format!("rust-{i}"), "admin", "wampcra", "realm1")
            .with_authextra(json!({"by": "rust", "i": i}));
        let ctx = AuthContext {
            node: Some(Uuid::new_v4()),
            worker: Some("worker-1".into()),
            transport_info: json!({"peer": "tcp4:10.0.0.1:1"}),
            session: 42 + i as u64,
            joined_at: start,
            authmethod: Some("wampcra".into()),
        };
        assert_eq!(
            store.set_auth(v, &auth, &ctx).unwrap(),
            AuthUpdate::Written,
            "{v}"
        );
    }
    drop(store);
    let turn3 = verify_ours(&db, false, "turn 3 (we re-authenticate)");
    let by_value: BTreeMap<String, &Value> = turn3.values().map(|r| (value_of(r), r)).collect();
    assert_eq!(by_value[&live[0]]["authid"], "rust-0");
    assert_eq!(by_value[py_live[0]]["authid"], "rust-2");
    assert_eq!(by_value[&live[2]]["authid"], "py-user-2-ユーザー");

    // Turn 4, Python: log out one we re-authenticated, one of its own, one untouched and one
    // expired cookie of ours; authenticate another of its own.
    let logged_out = [
        live[0].clone(),
        py_live[1].to_string(),
        live[5].clone(),
        our_expired[0].clone(),
    ];
    let mut ops: Vec<Value> = logged_out
        .iter()
        .map(|v| json!({"op": "delete", "value": v}))
        .collect();
    ops.push(json!({"op": "auth", "value": py_live[2], "authid": "late", "authextra": {}}));
    let (before, _, after) = python_turn(&py, &db, &ops);
    assert_scan_agrees(&before, &turn3, "after turn 3 (we re-authenticate)");
    let turn4 = verify_ours(&db, true, "turn 4 (Python logs out)");
    assert_scan_agrees(&after, &turn4, "turn 4 (Python logs out)");
    assert_eq!(turn4.len(), 14);
    assert!(values(&turn4).is_disjoint(&logged_out.iter().cloned().collect()));

    // Turn 5, we: purge. Python's expired cookies go too (Python never indexed their expiry:
    // the writable open reconciled it).
    let store = CookieStore::open(&db, StoreOptions::default()).unwrap();
    let purged = store.purge_expired().unwrap();
    assert_eq!(
        purged,
        3 + 3,
        "our three remaining expired cookies and Python's three"
    );
    for v in py_expired
        .iter()
        .copied()
        .chain(our_expired[1..].iter().map(String::as_str))
    {
        assert!(!store.exists(v).unwrap());
    }
    assert_eq!(store.purge_expired().unwrap(), 0);
    drop(store);
    let turn5 = verify_ours(&db, false, "turn 5 (we purge)");
    let want: BTreeSet<String> = live
        .iter()
        .filter(|v| !logged_out.contains(v))
        .cloned()
        .chain(
            py_live
                .iter()
                .filter(|v| **v != py_live[1])
                .map(|v| v.to_string()),
        )
        .collect();
    assert_eq!(values(&turn5), want);

    // cfxdb and Crossbar agree on the end state, for every value ever used.
    let mut ask: Vec<String> = live.iter().chain(&our_expired).cloned().collect();
    ask.extend(py_live.iter().chain(&py_expired).map(|v| v.to_string()));
    let read = Running::new(py.spawn("cfxdb_read.py", &args![db, "-v"]), "cfxdb_read.py");
    let answers = py.crossbar_getauth(&db, &ask);
    let read = read.finish(SCRIPT_TIMEOUT);
    assert!(read.status.success(), "cfxdb_read.py: {}", read.stderr);
    assert_same(
        &keyed(read.records()),
        &turn5,
        "turn 5: cfxdb's reading vs ours",
    );
    let by_value: BTreeMap<String, &Value> = turn5.values().map(|r| (value_of(r), r)).collect();
    for v in &ask {
        let (exists, auth) = &answers[v];
        match by_value.get(v) {
            Some(rec) => {
                assert!(*exists, "{v}");
                assert_eq!(*auth, auth_tuple(rec), "{v}");
            }
            None => assert_eq!((*exists, auth.clone()), (false, unknown_tuple()), "{v}"),
        }
    }
    eprintln!("case 3: {:.1?}", t0.elapsed());
}

// ---- case 4: at the same time ------------------------------------------------------------------

/// LMDB 0.9.x's lock file format: MDB_LOCK_VERSION 1 + MDB_PIDLOCK << 16 (zlmdb 25.12:
/// LMDB 0.9.33; zlmdb 26's 0.9 engine: LMDB 0.9.36).
const LOCK_FORMAT_LMDB_09: u32 = 0x0001_0001;
/// heed 0.23's LMDB (mdb.master 0.9.70) and LMDB 1.0: MDB_LOCK_VERSION 2 + layout bits << 12.
const LOCK_FORMAT_MDB_MASTER: u32 = 0x2c2f_6002;

/// What opening a store that an LMDB 0.9 process holds must give: a refusal naming lock.mdb.
fn assert_lock_refusal(result: Result<CookieStore, Error>, what: &str) -> String {
    match result {
        Ok(_) => panic!(
            "{what}: opened a store that LMDB 0.9.33 (zlmdb) holds open; their lock files are \
             incompatible and must not be shared"
        ),
        Err(e) => {
            let msg = e.to_string();
            assert!(
                msg.contains("lock.mdb"),
                "{what}: the error should name lock.mdb: {msg}"
            );
            msg
        }
    }
}

fn wait_for_file(path: &Path, child: &mut Running) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !path.exists() {
        assert!(
            child.is_running(),
            "{} ended before it was ready",
            child.what
        );
        assert!(
            Instant::now() < deadline,
            "{} not ready after 60 s",
            child.what
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn case4_concurrent_python_and_rust() {
    let Some((py, z26)) = pythons() else { return };
    let t0 = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let store = CookieStore::open(&db, StoreOptions::default()).unwrap();
    let first: Vec<String> = (0..5)
        .map(|_| store.create("cbtid", 24, 86_400).unwrap().value)
        .collect();
    drop(store);

    // Phase A: Python writes and reads for 5 s; meanwhile we try to open, writable and not.
    let ready = dir.path().join("python-ready");
    let mut writer = Running::new(
        py.command(
            "concurrent_writer.py",
            &args![
                db,
                "--seconds",
                "5",
                "--prefix",
                "py-",
                "--seed",
                "4",
                "--ready-file",
                ready
            ],
        )
        .stdin(Stdio::null())
        .spawn()
        .unwrap(),
        "concurrent_writer.py",
    );
    wait_for_file(&ready, &mut writer);
    assert_eq!(
        lock_format(&py, &db),
        (0xBEEF_C0DE, LOCK_FORMAT_LMDB_09),
        "zlmdb 25.12's lock file"
    );
    // The ready file exists exactly while Python holds the store open: an open that succeeds
    // after it is gone is legitimate (Python closed meanwhile), one before it is not.
    let mut refused = 0;
    let mut message = String::new();
    let mut cli_refused = false;
    'python_holds: while ready.exists() {
        for readonly in [false, true] {
            let result = CookieStore::open(
                &db,
                StoreOptions {
                    readonly,
                    ..StoreOptions::default()
                },
            );
            if result.is_ok() && !ready.exists() {
                break 'python_holds;
            }
            message = assert_lock_refusal(result, "open while Python writes");
            refused += 1;
        }
        if !cli_refused {
            let out = cli_run(&args!["dump", &db]);
            if out.status.success() && !ready.exists() {
                break;
            }
            assert_eq!(
                out.status.code(),
                Some(2),
                "dump while Python writes: {}",
                out.stderr
            );
            assert!(out.stderr.contains("lock.mdb"), "{}", out.stderr);
            cli_refused = true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        cli_refused,
        "`cookiestore dump` was never tried while Python held the store"
    );
    let out = writer.finish(SCRIPT_TIMEOUT);
    assert!(out.status.success(), "concurrent_writer.py: {}", out.stderr);
    let report = json_lines(&out.stdout).pop().expect("a summary");
    assert_eq!(report["errors"], json!([]), "Python's own reads and writes");
    let py_values: Vec<String> = report["created"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert!(
        py_values.len() >= 100,
        "Python created only {}",
        py_values.len()
    );
    assert!(report["reads"].as_u64().unwrap() >= py_values.len() as u64);
    assert!(refused >= 10, "only {refused} refused opens");
    eprintln!(
        "case 4: Python created {} cookies in 5 s; we were refused {refused} times: {message}",
        py_values.len()
    );

    // Once Python is gone, we open; everything is there and consistent.
    assert_check_clean(&db, true, "after Python's concurrent run");
    let store = CookieStore::open(&db, StoreOptions::default()).unwrap();
    for v in py_values.iter().chain(&first) {
        assert!(store.exists(v).unwrap(), "{v} missing");
    }
    drop(store);
    let after_a = verify_turn(&py, &db, false, "after phase A");
    assert_eq!(after_a.len(), first.len() + py_values.len());

    // Phase B: we write and read for 5 s; meanwhile Python (cfxdb, Crossbar, zlmdb 26) tries.
    let store = CookieStore::open(&db, StoreOptions::default()).unwrap();
    assert_eq!(
        lock_format(&py, &db),
        (0xBEEF_C0DE, LOCK_FORMAT_MDB_MASTER),
        "heed's lock file"
    );
    let stop = Arc::new(AtomicBool::new(false));
    let rust_writer = {
        let (store, stop) = (store.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut created: Vec<String> = Vec::new();
            let mut errors: Vec<String> = Vec::new();
            let mut reads = 0u64;
            while !stop.load(Ordering::Relaxed) {
                match store.create("cbtid", 24, 86_400) {
                    Ok(c) => created.push(c.value),
                    Err(e) => errors.push(format!("create: {e}")),
                }
                if let Some(v) = created.get(reads as usize % created.len().max(1)) {
                    match store.get(v) {
                        Ok(Some(c)) if &c.value == v => reads += 1,
                        other => errors.push(format!("read {v}: {other:?}")),
                    }
                }
            }
            (created, reads, errors)
        })
    };
    let phase_b = Instant::now();
    // Python's writer and Crossbar's own store are refused, and so is every
    // LMDB engine zlmdb bundles: 0.9.33 and 0.9.36 by their lock format; LMDB 1.0.2 shares
    // heed's lock format but cannot read data format 1. (All started at once: Python's
    // imports take seconds.)
    let apps: Vec<(&Py, &str, Vec<OsString>)> = vec![
        (
            &py,
            "concurrent_writer.py",
            args![db, "--seconds", "2", "--prefix", "late-"].to_vec(),
        ),
        (&py, "crossbar_getauth.py", args![db, &first[0]].to_vec()),
    ];
    let probes = [
        (&py, None, "VersionMismatch"),
        (&z26, None, "VersionMismatch"),
        (&z26, Some("1"), "MDB_INVALID"),
    ];
    let running: Vec<Running> = apps
        .iter()
        .map(|(who, script, a)| Running::new(who.spawn(script, a), script))
        .chain(probes.iter().map(|(who, engine, _)| {
            let mut a = args![db].to_vec();
            if let Some(e) = engine {
                a.extend(args!["--engine", e]);
            }
            Running::new(who.spawn("lmdb_probe.py", &a), "lmdb_probe.py")
        }))
        .collect();
    let mut outs: Vec<Out> = running
        .into_iter()
        .map(|r| r.finish(SCRIPT_TIMEOUT))
        .collect();
    let probe_outs = outs.split_off(apps.len());
    for ((who, script, _), out) in apps.iter().zip(&outs) {
        assert!(
            !out.status.success() && out.stderr.contains("VersionMismatch"),
            "{script} ({:?}) while we write: expected MDB_VERSION_MISMATCH, got {}: {}{}",
            who.which,
            out.status,
            out.stdout,
            out.stderr
        );
    }
    for ((who, engine, refusal), out) in probes.iter().zip(&probe_outs) {
        assert!(out.status.success(), "lmdb_probe.py: {}", out.stderr);
        let probe = out.records().pop().expect("probe JSON");
        assert_eq!(
            probe["opened"], false,
            "{:?} engine {engine:?}: {probe}",
            who.which
        );
        assert!(
            probe["error"].as_str().unwrap().contains(refusal),
            "{probe}"
        );
        assert_eq!(
            probe["lock_format"],
            format!("0x{LOCK_FORMAT_MDB_MASTER:08x}"),
            "our lock file is untouched: {probe}"
        );
    }
    while phase_b.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::Relaxed);
    let (rust_values, reads, errors) = rust_writer.join().unwrap();
    assert!(errors.is_empty(), "our writer: {errors:?}");
    eprintln!(
        "case 4: we created {} cookies and read {reads} while Python was refused",
        rust_values.len()
    );
    assert!(
        rust_values.len() >= 100 && reads >= 100,
        "{} {reads}",
        rust_values.len()
    );
    drop(store);

    // Afterwards cfxdb (zlmdb 25.12 and 26) reads all of it.
    let z26_read = Running::new(
        z26.spawn("cfxdb_read.py", &args![db]),
        "cfxdb_read.py (z26)",
    );
    let after_b = verify_turn(&py, &db, false, "after phase B");
    assert_eq!(after_b.len(), after_a.len() + rust_values.len());
    let seen = values(&after_b);
    assert!(rust_values.iter().all(|v| seen.contains(v)));
    let z26_read = z26_read.finish(SCRIPT_TIMEOUT);
    assert!(z26_read.status.success(), "{}", z26_read.stderr);
    assert_same(
        &keyed(z26_read.records()),
        &after_b,
        "zlmdb 26 (LMDB 0.9.36 engine) reading our store",
    );
    eprintln!("case 4: {:.1?}", t0.elapsed());
}

/// The refusal says what is going on: another program holds the store with an LMDB whose lock
/// file is incompatible. It is not a data format problem, and deleting lock.mdb while that
/// program runs would let both write at once.
#[test]
fn case4_lock_conflict_error_says_what_to_do() {
    let Some(py) = python(Venv::Main) else { return };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    drop(CookieStore::open(&db, StoreOptions::default()).unwrap());
    let ready = dir.path().join("ready");
    let mut holder = Running::new(
        py.command(
            "concurrent_writer.py",
            &args![
                db,
                "--seconds",
                "2",
                "--prefix",
                "h-",
                "--ready-file",
                ready
            ],
        )
        .stdin(Stdio::null())
        .spawn()
        .unwrap(),
        "concurrent_writer.py",
    );
    wait_for_file(&ready, &mut holder);
    let result = CookieStore::open(&db, StoreOptions::default());
    let out = holder.finish(SCRIPT_TIMEOUT);
    assert!(out.status.success(), "{}", out.stderr);
    let msg = assert_lock_refusal(result, "open while Python holds the store");
    assert!(
        !msg.contains("data format 0"),
        "the lock file, not the data format, is incompatible: {msg}"
    );
    let advises_deleting = msg.contains("delete lock.mdb")
        && !(msg.contains("not delete lock.mdb") || msg.contains("never delete lock.mdb"));
    assert!(
        !advises_deleting,
        "deleting lock.mdb while another program has the store open lets both write at once: \
         {msg}"
    );
    assert!(
        msg.contains("another program") || msg.contains("in use"),
        "the message should say another program holds the store: {msg}"
    );
}

// ---- case 5: LMDB format 3 -----------------------------------------------------------------------

#[test]
fn case5_format3_is_refused_and_converts() {
    let Some((py, z26)) = pythons() else { return };
    let t0 = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let db3 = dir.path().join("format3");
    let out = z26.ok(
        "make_format3.py",
        &args![db3, "--count", "40", "--seed", "33"],
    );
    let written = keyed(out.records());
    assert_eq!(written.len(), 40);
    let info: Value = serde_json::from_str(out.stderr.trim()).unwrap();
    assert_eq!(info["meta_versions"], json!([3, 3]));
    assert_eq!(info["lmdb_lib_version"], json!([1, 0, 2]));
    assert_eq!(data_format(&db3), 3);

    // Refused before LMDB maps it, with the clear error, and nothing is written.
    let snapshot = |p: &Path| -> BTreeMap<String, Vec<u8>> {
        std::fs::read_dir(p)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.file_name().to_string_lossy().into_owned(),
                    std::fs::read(e.path()).unwrap(),
                )
            })
            .collect()
    };
    let before = snapshot(&db3);
    for readonly in [false, true] {
        let result = CookieStore::open(
            &db3,
            StoreOptions {
                readonly,
                ..StoreOptions::default()
            },
        );
        match result {
            Err(e @ Error::UnsupportedFormat { found: 3, .. }) => {
                let msg = e.to_string();
                assert!(
                    msg.contains("format 3") && msg.contains("LMDB 1.0"),
                    "{msg}"
                );
                assert!(
                    msg.contains("lib_version") && msg.contains("restore"),
                    "{msg}"
                );
            }
            other => panic!("format 3 (readonly {readonly}): {other:?}"),
        }
    }
    let tracker = Tracker::open(&db3, StoreOptions::default(), TrackerConfig::default());
    assert!(matches!(
        tracker,
        Err(Error::UnsupportedFormat { found: 3, .. })
    ));
    let dumped = cli_run(&args!["dump", &db3]);
    assert_eq!(dumped.status.code(), Some(2));
    assert!(dumped.stderr.contains("format 3"), "{}", dumped.stderr);
    assert_eq!(
        snapshot(&db3),
        before,
        "a refused open must not touch the files"
    );

    // Crossbar 25.12's zlmdb (LMDB 0.9.33) cannot open it either.
    let old = py.ok("lmdb_probe.py", &args![db3]).records().pop().unwrap();
    assert_eq!(old["opened"], false, "{old}");
    assert!(
        old["error"].as_str().unwrap().contains("MDB_INVALID"),
        "{old}"
    );

    // The two conversions of the README, side by side: (1) export with zlmdb 26
    // (cfxdb_read.py prints record JSON) and restore with our CLI; (2) zlmdb 26 alone: copy
    // into a new database created with lib_version="0.9".
    let converted = dir.path().join("converted");
    let converting = Running::new(
        z26.spawn("convert_to_format1.py", &args![db3, converted]),
        "convert_to_format1.py",
    );
    let exported = z26.ok("cfxdb_read.py", &args![db3]);
    assert_same(&keyed(exported.records()), &written, "zlmdb 26 export");
    let export_file = dir.path().join("cookies.jsonl");
    std::fs::write(&export_file, &exported.stdout).unwrap();
    let restored = dir.path().join("restored");
    cli_ok(&args!["restore", &restored, &export_file]);
    let out = converting.finish(SCRIPT_TIMEOUT);
    assert!(
        out.status.success(),
        "convert_to_format1.py: {}",
        out.stderr
    );
    assert_same(
        &keyed(out.records()),
        &written,
        "convert_to_format1.py output",
    );
    for (db, how) in [(&restored, "restored"), (&converted, "converted")] {
        assert_eq!(data_format(db), 1, "{how}");
        assert_same(
            &ours(&open_ro(db)),
            &written,
            &format!("our reading, {how}"),
        );
        assert_check_clean(db, how == "converted", how);
    }
    // Crossbar 25.12's cfxdb reads both.
    let readings = [
        py.start_cfxdb_read(&restored),
        py.start_cfxdb_read(&converted),
    ];
    for (reading, how) in readings.into_iter().zip(["restored", "converted"]) {
        let (theirs, _) = cfxdb_read_result(reading);
        assert_same(
            &theirs,
            &written,
            &format!("cfxdb 25.12 reading the {how} store"),
        );
    }
    eprintln!("case 5: {:.1?}", t0.elapsed());
}

/// The hint of the format-3 refusal offers only what exists: there is no format-3 build.
#[test]
fn case5_format3_hint_names_only_real_remedies() {
    let dir = tempfile::tempdir().unwrap();
    // An LMDB 1.0 meta page: 24-byte page header, then magic and data format 3.
    let mut page = vec![0u8; 2 * 4096];
    for base in [0, 4096] {
        page[base + 24..base + 28].copy_from_slice(&0xBEEF_C0DEu32.to_le_bytes());
        page[base + 28..base + 32].copy_from_slice(&3u32.to_le_bytes());
    }
    std::fs::write(dir.path().join("data.mdb"), &page).unwrap();
    match CookieStore::open(dir.path(), StoreOptions::default()) {
        Err(Error::UnsupportedFormat { found: 3, hint, .. }) => {
            assert!(
                !hint.contains("lmdb-format3") && !hint.contains("feature"),
                "the hint offers a cargo feature that does not exist: {hint}"
            );
        }
        other => panic!("{other:?}"),
    }
}

// ---- case 6: migration end to end ----------------------------------------------------------------

#[test]
fn case6_migration_from_crossbar_file_store() {
    let Some(py) = python(Venv::Main) else { return };
    let t0 = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let dat = dir.path().join("cookies.dat");
    let out = py.ok(
        "crossbar_filestore.py",
        &args![dat, "--count", "20", "--delete", "5"],
    );
    let believed = out.records();
    assert_eq!(
        believed.len(),
        20,
        "the restarted file store believes in 20 cookies"
    );
    let summary: Value = serde_json::from_str(out.stderr.trim()).unwrap();
    let resurrected: BTreeSet<String> = summary["resurrected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        resurrected.len(),
        5,
        "Crossbar brings the 5 logged-out cookies back"
    );
    let mut expected_file = dat.clone().into_os_string();
    expected_file.push(".expected.jsonl");
    let expected: BTreeMap<String, Value> =
        json_lines(&std::fs::read_to_string(expected_file).unwrap())
            .into_iter()
            .map(|r| (r["cbtid"].as_str().unwrap().to_string(), r))
            .collect();
    assert_eq!(expected.len(), 15);
    assert!(expected.keys().all(|v| !resurrected.contains(v)));
    let authenticated = expected.values().filter(|r| !r["authid"].is_null()).count();
    assert!(authenticated >= 5, "{authenticated}");

    // Import with our CLI.
    let store_dir = dir.path().join("store");
    let imported = cli_ok(&args!["import", &store_dir, &dat, "--json"]);
    let summary = json_lines(&imported.stdout).pop().expect("import summary");
    assert_eq!(summary["imported"], 15, "{summary}");
    assert_eq!(summary["deleted"], 5, "{summary}");
    assert_eq!(summary["bad_lines"], json!([]), "{summary}");
    // The replay that the import is built on agrees.
    let replayed = replay(std::io::BufReader::new(std::fs::File::open(&dat).unwrap())).unwrap();
    assert_eq!(
        replayed
            .cookies
            .iter()
            .map(|c| c.value.clone())
            .collect::<BTreeSet<_>>(),
        expected.keys().cloned().collect()
    );

    // Our store: exactly the survivors, with Crossbar's created, max_age and auth.
    let store = open_ro(&store_dir);
    let mine = ours(&store);
    assert_eq!(mine.len(), 15);
    for (value, want) in &expected {
        let c = store
            .get(value)
            .unwrap()
            .unwrap_or_else(|| panic!("{value} not imported"));
        let created = parse_rfc3339_ns(want["created"].as_str().unwrap()).unwrap();
        assert_eq!(
            (c.created, c.max_age),
            (created, want["max_age"].as_u64().unwrap()),
            "{value}"
        );
        assert_eq!(c.name.as_deref(), Some("cbtid"));
        let want_auth = auth_tuple(&normalized_legacy(want));
        let got_auth = store.get_auth(value).unwrap();
        assert_eq!(
            got_auth.as_ref().map(|a| a.authid.as_str()),
            want["authid"].as_str()
        );
        if let Some(a) = got_auth {
            assert_eq!(
                json!([a.authid, a.authrole, a.authmethod, a.authrealm, a.authextra]),
                want_auth,
                "{value}"
            );
        }
    }
    drop(store);
    assert_check_clean(&store_dir, false, "imported store");

    // Crossbar's database store authenticates exactly the cookies that should survive.
    let ask: Vec<String> = believed
        .iter()
        .map(|r| r["cbtid"].as_str().unwrap().to_string())
        .collect();
    let reading = py.start_cfxdb_read(&store_dir);
    let answers = py.crossbar_getauth(&store_dir, &ask);
    for v in &ask {
        let (exists, auth) = &answers[v];
        match expected.get(v) {
            Some(want) => {
                assert!(*exists, "Crossbar: {v} should exist");
                assert_eq!(
                    *auth,
                    auth_tuple(&normalized_legacy(want)),
                    "Crossbar getAuth({v})"
                );
            }
            None => {
                assert!(resurrected.contains(v));
                assert_eq!(
                    (*exists, auth.clone()),
                    (false, unknown_tuple()),
                    "{v} logged out"
                );
            }
        }
    }
    let (theirs, _) = cfxdb_read_result(reading);
    assert_same(&theirs, &mine, "cfxdb's reading of the imported store");

    // Importing again changes nothing.
    let again = cli_ok(&args!["import", &store_dir, &dat, "--json"]);
    let summary = json_lines(&again.stdout).pop().expect("import summary");
    assert_eq!(
        (summary["imported"].as_u64(), summary["unchanged"].as_u64()),
        (Some(0), Some(15)),
        "{summary}"
    );
    assert_same(&ours(&open_ro(&store_dir)), &mine, "second import");
    eprintln!("case 6: {:.1?}", t0.elapsed());
}

/// A file-store line (nulls for unset) in record form (unset fields absent).
fn normalized_legacy(rec: &Value) -> Value {
    let mut m = rec.as_object().cloned().unwrap_or_default();
    m.retain(|_, v| !v.is_null());
    Value::Object(m)
}

/// Conversion through JSON keeps floats in authextra bit for bit: `cookiestore restore` of
/// what Python printed, read back by us and by cfxdb. (serde_json parses floats exactly only
/// with its `float_roundtrip` feature.)
#[test]
fn case5_restore_keeps_floats_exact() {
    let Some(py) = python(Venv::Main) else { return };
    let dir = tempfile::tempdir().unwrap();
    let floats = [
        988_282.846_827_986_9_f64,
        200_389.207_392_512_82,
        963_690.677_468_955_5,
        1e-300,
    ];
    let texts = [
        "988282.8468279869",
        "200389.20739251282",
        "963690.6774689555",
        "1e-300",
    ];
    let line = format!(
        r#"{{"oid": "6f1c2d3e-0000-4000-8000-000000000001", "created": {WRITE_BASE_NS}, "max_age": 86400, "value": "floatcookie1", "authid": "joe", "authextra": {{"f": [{}]}}}}"#,
        texts.join(", ")
    );
    let file = dir.path().join("floats.jsonl");
    std::fs::write(&file, format!("{line}\n")).unwrap();
    let db = dir.path().join("db");
    cli_ok(&args!["restore", &db, &file]);
    let bits = |v: &Value| -> Vec<u64> {
        v["authextra"]["f"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap().to_bits())
            .collect()
    };
    let want: Vec<u64> = floats.iter().map(|f| f.to_bits()).collect();
    let mine = ours(&open_ro(&db));
    assert_eq!(
        bits(mine.values().next().unwrap()),
        want,
        "our reading after restore"
    );
    let (theirs, _) = py.cfxdb_read(&db);
    assert_eq!(
        bits(theirs.values().next().unwrap()),
        want,
        "cfxdb's reading after restore"
    );
}
