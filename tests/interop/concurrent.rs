//! Case 4: Python and Rust on one database at the same time.

use std::ffi::OsString;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cookiestore::{CookieStore, Error, StoreOptions};
use serde_json::json;

use crate::harness::*;

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
            let result = CookieStore::open(&db, StoreOptions::default().readonly(readonly));
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

    // Afterwards cfxdb (zlmdb 25.12, then 26) reads all of it. One after the other: zlmdb 26
    // first tries its LMDB 1.0 engine, whose lock format differs from zlmdb 25.12's, so while
    // 25.12 has the store open zlmdb 26 is refused (MDB_VERSION_MISMATCH) instead of falling
    // back to its 0.9 engine (seen once when both were started together).
    let after_b = verify_turn(&py, &db, false, "after phase B");
    assert_eq!(after_b.len(), after_a.len() + rust_values.len());
    let seen = values(&after_b);
    assert!(rust_values.iter().all(|v| seen.contains(v)));
    let z26_read = Running::new(
        z26.spawn("cfxdb_read.py", &args![db]),
        "cfxdb_read.py (z26)",
    )
    .finish(SCRIPT_TIMEOUT);
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
