//! `cookiestore import DEST SOURCE` of a database cookie store directory: LMDB format 3
//! through the `cookiestore-format3` helper (a store written by Crossbar.io's own
//! `CookieStoreDatabaseBacked` as `pip install crossbar==25.12.1` installs it today: zlmdb
//! 26.10.1, cfxdb 26.6.1), and LMDB format 1 through the library.
//!
//! The Crossbar tests need the `crossbar-today` venv (`tools/interop/setup.sh crossbar-today`,
//! at `$COOKIESTORE_INTEROP_VENV-crossbar-today`, by default
//! `target/interop-venv-crossbar-today`); without it they print `skipping: ...` and pass,
//! except under CI (see `common::need`).
//!
//! The CLI runs from a directory holding copies of `cookiestore` and `cookiestore-format3`, as
//! `cargo build --release` leaves them in target/release/, so that the helper is found the way
//! it is in a deployment: next to the executable.

// A failed unwrap here (helpers included) is the test, bench or example failing.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::*;
use cookiestore::{CookieStore, StoreOptions, format_rfc3339_ns};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_cookiestore");
const HELPER: &str = "cookiestore-format3";
const NS: u64 = 1_000_000_000;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The helper binary. `cargo test` at the root (and `--workspace`) builds it next to
/// `cookiestore`, since its package has integration tests; when only this package was built
/// (`cargo test -p cookiestore-cli`), it is built here, into a target directory of its own
/// (the outer cargo may hold the lock of the shared one).
fn helper() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let beside = Path::new(BIN).with_file_name(HELPER);
            if beside.is_file() {
                return beside;
            }
            let target = Path::new(BIN)
                .parent()
                .and_then(Path::parent)
                .expect("target/<profile>/cookiestore")
                .join("format3-helper-for-tests");
            let cargo = std::env::var_os("CARGO")
                .or_else(|| option_env!("CARGO").map(Into::into))
                .unwrap_or_else(|| "cargo".into());
            let status = Command::new(cargo)
                .args([
                    "build",
                    "--quiet",
                    "-p",
                    "cookiestore-format3",
                    "--target-dir",
                ])
                .arg(&target)
                .current_dir(workspace())
                .status()
                .expect("run cargo build -p cookiestore-format3");
            assert!(
                status.success(),
                "cargo build -p cookiestore-format3 failed"
            );
            let built = target.join("debug").join(HELPER);
            assert!(built.is_file(), "{} was not built", built.display());
            built
        })
        .clone()
}

/// `cookiestore` (and, with `with_helper`, `cookiestore-format3` beside it) in `dir`, as hard
/// links when the file system allows (a copy otherwise); returns the path of `cookiestore`.
fn install(dir: &Path, with_helper: bool) -> PathBuf {
    let place = |from: &Path, to: &Path| {
        if std::fs::hard_link(from, to).is_err() {
            std::fs::copy(from, to).unwrap();
        }
    };
    let bin = dir.join("cookiestore");
    place(Path::new(BIN), &bin);
    if with_helper {
        place(&helper(), &dir.join(HELPER));
    }
    bin
}

/// Runs `cmd`. A freshly copied executable can be "busy" for a moment: a child that another
/// test thread forked while the copy's file was open for writing holds that descriptor until
/// it execs. Such a start is retried.
fn output(cmd: &mut Command) -> Output {
    let mut tries = 0;
    loop {
        match cmd.output() {
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy && tries < 50 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            other => return other.expect("run cookiestore"),
        }
    }
}

struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn run(bin: &Path, args: &[&dyn AsRef<std::ffi::OsStr>]) -> Out {
    let out = output(
        Command::new(bin)
            .args(args.iter().map(|a| a.as_ref()))
            .env_remove("COOKIESTORE_FORMAT3")
            .stdin(Stdio::null()),
    );
    Out {
        code: out.status.code(),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

fn ok(bin: &Path, args: &[&dyn AsRef<std::ffi::OsStr>]) -> Value {
    let out = run(bin, args);
    assert_eq!(
        out.code,
        Some(0),
        "cookiestore {:?}: {}{}",
        args.iter().map(|a| a.as_ref()).collect::<Vec<_>>(),
        out.stdout,
        out.stderr
    );
    serde_json::from_str(out.stdout.trim()).unwrap_or_else(|e| panic!("{e}: {}", out.stdout))
}

/// Every file of a directory: name → content (the stores here are small).
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
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

/// A record as JSON, with empty maps left out (cfxdb stores `{}` as nothing).
fn normalized(v: &Value) -> Value {
    let mut v = v.clone();
    if let Value::Object(m) = &mut v {
        m.retain(|_, x| !matches!(x, Value::Object(o) if o.is_empty()));
    }
    v
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

// ---- the crossbar-today venv ------------------------------------------------------------------

fn today_venv() -> Option<PathBuf> {
    let main = std::env::var_os("COOKIESTORE_INTEROP_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target/interop-venv"));
    let mut dir = main.into_os_string();
    dir.push("-crossbar-today");
    let dir = PathBuf::from(dir);
    let ready = dir.join("bin/python").is_file() && dir.join(".ready").is_file();
    need(
        ready,
        &format!(
            "the crossbar-today interop venv {} is missing or incomplete; create it with \
             tools/interop/setup.sh crossbar-today",
            dir.display()
        ),
    )
    .then(|| dir.join("bin/python"))
}

fn python(python: &Path) -> Command {
    let mut cmd = Command::new(python);
    cmd.env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONIOENCODING", "utf-8")
        // zlmdb 26 reads it to pick the LMDB version of new databases.
        .env_remove("LMDB_DEFAULT_LIB_VERSION");
    cmd
}

/// What `crossbar_dbstore.py` wrote: cfxdb's reading of every record by oid, and its summary.
struct Written {
    records: BTreeMap<String, Value>,
    info: Value,
}

fn crossbar_writes(py: &Path, db: &Path) -> Written {
    let out = python(py)
        .arg(workspace().join("tools/interop/crossbar_dbstore.py"))
        .arg(db)
        .args(["--count", "30", "--logout", "6", "--short", "6"])
        .args(["--short-max-age", "60"])
        .stdin(Stdio::null())
        .output()
        .expect("run crossbar_dbstore.py");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(out.status.success(), "crossbar_dbstore.py: {stderr}");
    let records = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .map(|r| (r["oid"].as_str().unwrap().to_string(), normalized(&r)))
        .collect();
    let info = stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v.get("crossbar").is_some())
        .unwrap_or_else(|| panic!("no summary from crossbar_dbstore.py: {stderr}"));
    Written { records, info }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

/// Every record of `db` at `now`, as JSON by oid.
fn ours(db: &Path, now: u64) -> BTreeMap<String, Value> {
    let (store, _) = open_at(db, now);
    let cookies = store
        .as_lmdb()
        .unwrap()
        .snapshot(|s| s.records()?.collect::<Result<Vec<_>, _>>())
        .unwrap();
    cookies
        .iter()
        .map(|c| {
            (
                c.oid.to_string(),
                normalized(&serde_json::to_value(c).unwrap()),
            )
        })
        .collect()
}

/// The migration of docs/interop.md: a store that Crossbar.io 25.12.1 wrote as installed today
/// (LMDB format 3), imported with one command; every cookie equal, the source untouched, a
/// second import a no-op, a logout after the migration not undone by importing again.
#[test]
fn import_of_a_store_crossbar_wrote_today() {
    let Some(py) = today_venv() else { return };
    let t0 = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let bins = tempfile::tempdir().unwrap();
    let bin = install(bins.path(), true);
    let source = dir.path().join("cookies");
    let written = crossbar_writes(&py, &source);
    let info = &written.info;
    assert_eq!(data_format(&source), 3, "Crossbar wrote LMDB format 3");
    assert_eq!(info["meta_versions"], json!([3, 3]));
    assert_eq!(
        info["versions"],
        json!({"crossbar": "25.12.1", "zlmdb": "26.10.1", "cfxdb": "26.6.1"})
    );
    let logged_out = strings(&info["logged_out"]);
    let short = strings(&info["short"]);
    let created = strings(&info["created"]);
    assert_eq!((created.len(), logged_out.len(), short.len()), (30, 6, 6));
    assert_eq!(written.records.len(), 30, "cfxdb reads 24 + 6 cookies");

    // The library refuses the store, and says what to run.
    let refused = run(&bin, &[&"dump", &source]);
    assert_eq!(refused.code, Some(2));
    assert!(
        refused.stderr.contains("format 3") && refused.stderr.contains("cookiestore import"),
        "{}",
        refused.stderr
    );

    // An hour from now: the 7-day cookies are live, the 60-second ones expired.
    let now = now_ns() + 3600 * NS;
    let at = format_rfc3339_ns(now);
    let before = files(&source);
    let dest = dir.path().join("cookies-new");
    let summary = ok(&bin, &[&"--now", &at, &"import", &dest, &source, &"--json"]);
    assert_eq!(summary["records"], 30, "{summary}");
    assert_eq!(summary["imported"], 24, "{summary}");
    assert_eq!(summary["expired"], 6, "{summary}");
    assert_eq!(summary["unchanged"], 0, "{summary}");
    for list in ["conflicts", "corrupt", "rejected"] {
        assert_eq!(summary[list], json!([]), "{summary}");
    }
    assert!(
        summary["source"]
            .as_str()
            .unwrap()
            .starts_with("LMDB format 3"),
        "{summary}"
    );
    assert_eq!(files(&source), before, "the source store is untouched");
    assert_eq!(data_format(&dest), 1);

    // Every live cookie, every field as cfxdb reads it back; nothing else.
    let short_set: BTreeSet<&String> = short.iter().collect();
    let want: BTreeMap<String, Value> = written
        .records
        .iter()
        .filter(|(_, r)| !short_set.contains(&r["value"].as_str().unwrap().to_string()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    assert_eq!(want.len(), 24);
    let mine = ours(&dest, now);
    assert_eq!(mine, want, "the imported records, field for field");
    // What Crossbar's own class answers for each value, we answer too.
    let (store, _) = open_at(&dest, now);
    for value in created.iter().chain(&short) {
        let answer = &info["crossbar"][value];
        let ours = store.get(value).unwrap();
        if logged_out.contains(value) {
            assert_eq!(answer[0], false, "{value}: Crossbar logged it out");
            assert!(ours.is_none(), "{value}: logged out, must stay absent");
        } else if short.contains(value) {
            assert_eq!(answer[0], true);
            assert!(ours.is_none(), "{value}: expired, dropped");
        } else {
            assert_eq!(answer[0], true, "{value}");
            assert!(ours.is_some(), "{value}: not imported");
            let tuple = match store.get_auth(value).unwrap() {
                Some(a) => json!([a.authid, a.authrole, a.authmethod, a.authrealm, a.authextra]),
                None => json!([null, null, null, null, {}]),
            };
            assert_eq!(tuple, answer[1], "{value}: getAuth");
        }
    }
    drop(store);
    let checked = run(&bin, &[&"check", &dest]);
    assert_eq!(
        checked.code,
        Some(0),
        "{}{}",
        checked.stdout,
        checked.stderr
    );

    // Again: nothing changes, not even a write transaction.
    let dest_data = std::fs::read(dest.join("data.mdb")).unwrap();
    let again = ok(&bin, &[&"--now", &at, &"import", &dest, &source, &"--json"]);
    assert_eq!(
        (again["imported"].as_u64(), again["unchanged"].as_u64()),
        (Some(0), Some(24)),
        "{again}"
    );
    assert_eq!(std::fs::read(dest.join("data.mdb")).unwrap(), dest_data);

    // A logout after the migration survives a repeated import; --force brings it back.
    let victim = created
        .iter()
        .find(|v| !logged_out.contains(v))
        .unwrap()
        .clone();
    let deleted = run(&bin, &[&"--now", &at, &"delete", &dest, &victim]);
    assert_eq!(deleted.code, Some(0), "{}", deleted.stderr);
    let out = run(&bin, &[&"--now", &at, &"import", &dest, &source, &"--json"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let again: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(again["skipped_logged_out"], 1, "{again}");
    assert_eq!(again["imported"], 0, "{again}");
    assert!(out.stderr.contains("--force"), "{}", out.stderr);
    assert!(open_at(&dest, now).0.get(&victim).unwrap().is_none());
    let forced = ok(
        &bin,
        &[
            &"--now", &at, &"import", &dest, &source, &"--json", &"--force",
        ],
    );
    assert_eq!(forced["imported"], 1, "{forced}");
    assert!(open_at(&dest, now).0.get(&victim).unwrap().is_some());

    assert_eq!(files(&source), before, "the source store is untouched");
    eprintln!("crossbar-today import: {:.1?}", t0.elapsed());
}

/// While a process has the format-3 store open (a Crossbar worker still running), the import
/// is refused and writes nothing.
#[test]
fn import_while_the_store_is_open_is_refused() {
    let Some(py) = today_venv() else { return };
    let dir = tempfile::tempdir().unwrap();
    let bins = tempfile::tempdir().unwrap();
    let bin = install(bins.path(), true);
    let source = dir.path().join("cookies");
    crossbar_writes(&py, &source);
    let ready = dir.path().join("ready");
    let mut holder = python(&py)
        .args([
            "-c",
            "import sys, zlmdb\n\
             db = zlmdb.Database(dbpath=sys.argv[1], readonly=True)\n\
             open(sys.argv[2], 'w').close()\n\
             sys.stdin.read()\n",
        ])
        .arg(&source)
        .arg(&ready)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !ready.exists() {
        assert!(
            holder.try_wait().unwrap().is_none(),
            "the process holding the store ended early"
        );
        assert!(Instant::now() < deadline, "zlmdb did not open the store");
        std::thread::sleep(Duration::from_millis(20));
    }
    let before = std::fs::read(source.join("data.mdb")).unwrap();
    let dest = dir.path().join("dest");
    let out = run(&bin, &[&"import", &dest, &source]);
    holder.stdin.take().unwrap().write_all(b"").unwrap();
    let status = holder.wait().unwrap();
    assert!(status.success());
    assert_eq!(out.code, Some(2), "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("open in another process"),
        "{}",
        out.stderr
    );
    assert!(!dest.exists(), "nothing written");
    assert_eq!(std::fs::read(source.join("data.mdb")).unwrap(), before);

    // Closed: the same command works.
    let out = run(&bin, &[&"import", &dest, &source]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
}

/// An LMDB 1.0 meta page (magic at 24, format 3) over nothing usable: enough for the library
/// to refuse the store as format 3 and for the helper to fail.
fn fake_format3() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut page = vec![0u8; 2 * 4096];
    for base in [0, 4096] {
        page[base + 24..base + 28].copy_from_slice(&0xBEEF_C0DEu32.to_le_bytes());
        page[base + 28..base + 32].copy_from_slice(&3u32.to_le_bytes());
    }
    std::fs::write(dir.path().join("data.mdb"), &page).unwrap();
    dir
}

/// Without the helper beside it, the import says how to build it; with
/// `COOKIESTORE_FORMAT3` naming a missing file, it says that.
#[test]
fn format3_without_the_helper_says_how_to_build_it() {
    let source = fake_format3();
    let dir = tempfile::tempdir().unwrap();
    let bin = install(dir.path(), false);
    let dest = dir.path().join("dest");
    let out = run(&bin, &[&"import", &dest, &source.path()]);
    assert_eq!(out.code, Some(2));
    let expected = dir.path().join(HELPER);
    for needle in [
        "LMDB data format 3",
        "cargo build --release",
        "COOKIESTORE_FORMAT3",
        expected.to_str().unwrap(),
    ] {
        assert!(out.stderr.contains(needle), "{needle:?} in {}", out.stderr);
    }
    assert!(!dest.exists());

    let out = output(
        Command::new(&bin)
            .args([
                "import".as_ref(),
                dest.as_os_str(),
                source.path().as_os_str(),
            ])
            .env("COOKIESTORE_FORMAT3", dir.path().join("nowhere")),
    );
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr.contains("COOKIESTORE_FORMAT3 names"), "{stderr}");
    assert!(!dest.exists());
}

/// A helper that fails, or breaks off, or speaks another version: the import fails with its
/// message and writes nothing (the plan reads the whole source before anything is written).
#[cfg(unix)]
#[test]
fn a_failing_helper_writes_nothing() {
    use std::os::unix::fs::PermissionsExt;
    let source = fake_format3();
    let dir = tempfile::tempdir().unwrap();
    let bin = install(dir.path(), false);
    // A real record (from the library's encoder) that a broken helper prints before failing.
    let cookie = cookiestore::Cookie {
        oid: uuid::Uuid::new_v4(),
        created: now_ns(),
        max_age: 3600,
        value: "brokenhelpervalue1234567".into(),
        ..Default::default()
    };
    let record = format!(
        r#"{{"oid":"{}","hex":"{}"}}"#,
        cookie.oid,
        cookie
            .encode()
            .unwrap()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    let header = r#"{"cookiestore_format3":1,"data_format":3,"cookies_slot":1,"txn":9}"#;
    let cases = [
        (
            format!(
                "echo '{header}'; echo '{record}'; echo 'cookiestore-format3: boom' >&2; exit 2"
            ),
            "cookiestore-format3: boom",
        ),
        (
            format!("echo '{header}'; echo '{record}'"),
            "stopped before the end of its output",
        ),
        (
            r#"echo '{"cookiestore_format3":2}'"#.to_string(),
            "output version 2",
        ),
        (
            format!("echo '{header}'; echo '{record}'; echo '{{\"end\":true,\"records\":5}}'"),
            "says it printed",
        ),
        (
            format!("echo '{header}'; kill -BUS $$"),
            "killed by signal 7",
        ),
    ];
    for (i, (script, message)) in cases.iter().enumerate() {
        let helper = dir.path().join(format!("helper{i}"));
        std::fs::write(&helper, format!("#!/bin/sh\n{script}\n")).unwrap();
        std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
        let dest = dir.path().join(format!("dest{i}"));
        let out = output(
            Command::new(&bin)
                .args([
                    "import".as_ref(),
                    dest.as_os_str(),
                    source.path().as_os_str(),
                ])
                .env("COOKIESTORE_FORMAT3", &helper),
        );
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(2), "case {i}: {stderr}");
        assert!(
            stderr.contains(message),
            "case {i}: {message:?} in {stderr}"
        );
        assert!(!dest.exists(), "case {i}: nothing written");
    }
    // The same record with a well-formed ending imports (the cases above fail for the reason
    // given, not for the record).
    let helper = dir.path().join("helper-ok");
    std::fs::write(
        &helper,
        format!(
            "#!/bin/sh\necho '{header}'; echo '{record}'; echo '{{\"end\":true,\"records\":1}}'\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let dest = dir.path().join("dest-ok");
    let out = output(
        Command::new(&bin)
            .args([
                "import".as_ref(),
                dest.as_os_str(),
                source.path().as_os_str(),
            ])
            .env("COOKIESTORE_FORMAT3", &helper),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let store = CookieStore::open(&dest, StoreOptions::default().readonly(true)).unwrap();
    assert_eq!(store.get(&cookie.value).unwrap(), Some(cookie));
}

/// A format-1 store (cfxdb's fixture, as Crossbar.io 25.12 with zlmdb 25.12 writes it) imports
/// with the same command, through the library: every cookie, every field; again a no-op.
#[test]
fn format1_store_imports_with_the_same_command() {
    let source = cfxdb_copy();
    let before = files(source.path());
    let dir = tempfile::tempdir().unwrap();
    let bin = install(dir.path(), false);
    let dest = dir.path().join("dest");
    let at = format_rfc3339_ns(FIXTURE_DAY_NS);
    let summary = ok(
        &bin,
        &[&"--now", &at, &"import", &dest, &source.path(), &"--json"],
    );
    assert_eq!(summary["source"], "LMDB format 1", "{summary}");
    assert_eq!(summary["imported"], 60, "{summary}");
    assert_eq!(summary["expired"], 0, "{summary}");
    let want: BTreeMap<String, Value> = expected_cfxdb()
        .iter()
        .map(|r| (r["oid"].as_str().unwrap().to_string(), normalized(r)))
        .collect();
    assert_eq!(ours(&dest, FIXTURE_DAY_NS), want);
    // The source was opened read-only: data.mdb is as it was (LMDB made its lock file).
    let after = files(source.path());
    assert_eq!(after.get("data.mdb"), before.get("data.mdb"));

    let again = ok(
        &bin,
        &[&"--now", &at, &"import", &dest, &source.path(), &"--json"],
    );
    assert_eq!(again["unchanged"], 60, "{again}");
    assert_eq!(again["imported"], 0, "{again}");

    // Importing a store into itself is refused.
    let out = run(&bin, &[&"import", &dest, &dest]);
    assert_eq!(out.code, Some(2));
    assert!(out.stderr.contains("same store"), "{}", out.stderr);
}
