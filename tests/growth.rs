//! Map growth across processes.
//!
//! Process B opens the store first, with a small map, and keeps creating, authenticating
//! and reading cookies. Process A (the test) then fills the store so the map must grow
//! several times. B never sees an error: it adopts the size A recorded
//! (`MDB_MAP_RESIZED`) and carries on. Then B only reads, and A fills the store to
//! `maxsize`: the write that does not fit fails with `Error::MapFull` and leaves nothing
//! behind, everything committed before stays readable (in A and in B), `check` is clean,
//! and the full store still serves reads and deletes, after which it takes new cookies
//! again.

// A failed unwrap here (helpers included) is the test, bench or example failing.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use cookiestore::{Auth, AuthContext, AuthUpdate, CookieStore, Error, StoreOptions};
use serde_json::json;

const TEST: &str = "map_grows_across_processes_then_fills_cleanly";
const INITIAL: u64 = 256 * 1024;
const MAXSIZE: u64 = 8 * 1024 * 1024;

fn options() -> StoreOptions {
    StoreOptions::default()
        .initial_mapsize(INITIAL)
        .maxsize(MAXSIZE)
}

/// About 1.3 KB a cookie, so that few cookies fill the map.
fn auth(i: usize) -> Auth {
    Auth::new(&format!("user{i}"), "frontend", "cookie", "realm1")
        .with_authextra(json!({ "i": i, "pad": "p".repeat(1_000) }))
}

#[test]
fn map_grows_across_processes_then_fills_cleanly() {
    if child_role().is_some() {
        return process_b();
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");

    // B opens first, at the initial map size, and starts working.
    let mut b = child_command(TEST, "b")
        .env("GROWTH_STORE", &path)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let b_lines = ChildLines::new(&mut b);
    let ready = b_lines.wait_for("ready", Duration::from_secs(60));
    assert_eq!(
        ready["map_size"], INITIAL,
        "B starts at the initial map size"
    );

    // A fills until the map has grown at least twice (to 4 x initial).
    let a = CookieStore::open(&path, options()).unwrap();
    let mut mine = Vec::new();
    let mut n = 0;
    while a.stats().unwrap().lmdb.unwrap().map_size < 4 * INITIAL {
        let c = a.create("cbtid", 24, 86_400).unwrap();
        assert_eq!(
            a.set_auth(&c.value, &auth(n), &AuthContext::default())
                .unwrap(),
            AuthUpdate::Written
        );
        mine.push((c.value, n));
        n += 1;
    }
    let grown = a.stats().unwrap().lmdb.unwrap().map_size;
    eprintln!("growth: A grew the map to {grown} bytes with {n} cookies");

    // B goes on working at the new size, without an error.
    let deadline = Instant::now() + Duration::from_secs(60);
    let b_progress = loop {
        let p = b_lines
            .next_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("B stopped reporting");
        assert_ne!(p["ev"], "error", "B: {p}");
        if p["ev"] == "progress"
            && p["map_size"].as_u64().unwrap() >= grown
            && p["ops_since_grown"].as_u64().unwrap() >= 20
        {
            break p;
        }
    };
    eprintln!("growth: B after the growth: {b_progress}");

    // B now only reads; A fills to maxsize.
    let mut b_stdin = b.stdin.take().unwrap();
    writeln!(b_stdin, "read-only").unwrap();
    b_lines.wait_for("reading", Duration::from_secs(60));
    let (full, failed_batch) = loop {
        let mut attempted = Vec::new();
        let r = a.as_lmdb().unwrap().batch("fill", |batch| {
            attempted.clear();
            for i in 0..50 {
                let c = batch.create("cbtid", 24, 86_400)?;
                attempted.push(c.value.clone());
                batch.set_auth(&c.value, &auth(n + i), &AuthContext::default())?;
            }
            Ok(())
        });
        match r {
            Ok(()) => {
                for (i, v) in attempted.into_iter().enumerate() {
                    mine.push((v, n + i));
                }
                n += 50;
            }
            Err(e) => break (e, attempted),
        }
    };
    assert!(
        matches!(full, Error::MapFull { maxsize, .. } if maxsize == MAXSIZE),
        "filling ends with {full:?}"
    );
    // Then single cookies, until not even one fits.
    let single = loop {
        match a.create("cbtid", 24, 86_400) {
            Ok(c) => mine.push((c.value, usize::MAX)),
            Err(e) => break e,
        }
    };
    assert!(matches!(single, Error::MapFull { .. }), "{single:?}");
    let stats = a.stats().unwrap();
    assert_eq!(stats.lmdb.as_ref().unwrap().map_size, MAXSIZE);
    eprintln!(
        "growth: full at {} cookies, map {} bytes, {} bytes used",
        stats.live,
        stats.lmdb.as_ref().unwrap().map_size,
        stats.lmdb.as_ref().unwrap().map_used
    );

    // The failed batch left nothing (it may have failed at its first cookie); everything
    // committed is there.
    for v in &failed_batch {
        assert!(!a.exists(v).unwrap(), "{v} of the failed batch was kept");
    }
    for (v, i) in &mine {
        let c = a.get(v).unwrap().unwrap_or_else(|| panic!("{v} lost"));
        if *i != usize::MAX {
            assert_eq!(c.auth(), Some(auth(*i)), "{v}");
        }
    }

    // B, reading all along, sees them too.
    writeln!(b_stdin, "verify {}", mine[mine.len() / 2].0).unwrap();
    let verified = b_lines.wait_for("verified", Duration::from_secs(60));
    assert_eq!(
        verified["found"], true,
        "B does not see A's cookie: {verified}"
    );
    drop(b_stdin);
    let done = b_lines.wait_for("done", Duration::from_secs(60));
    wait_success(&mut b, "B");
    assert_eq!(done["errors"], 0, "B: {done}");
    assert!(done["writes"].as_u64().unwrap() > 20);
    assert!(done["reads_at_max"].as_u64().unwrap() > 0, "B: {done}");
    for v in done["values"].as_array().unwrap() {
        assert!(
            a.exists(v.as_str().unwrap()).unwrap(),
            "B's cookie {v} lost"
        );
    }

    // The full store serves reads and deletes, and then takes new cookies again.
    assert_clean(&a);
    assert_eq!(a.count().unwrap(), stats.live);
    for (v, _) in mine.drain(..200) {
        assert!(a.delete(&v).unwrap(), "delete {v} in a full store");
        assert!(!a.exists(&v).unwrap());
    }
    for (v, _) in mine.iter().take(100) {
        assert!(a.lookup(v).unwrap().is_some());
    }
    for _ in 0..20 {
        a.create("cbtid", 24, 86_400)
            .expect("a full store takes new cookies after deletes");
    }
    // A batch that runs out of room midway commits nothing.
    let mut attempted = Vec::new();
    let r = a.as_lmdb().unwrap().batch("overfill", |batch| {
        attempted.clear();
        for i in 0..1_000 {
            let c = batch.create("cbtid", 24, 86_400)?;
            attempted.push(c.value.clone());
            batch.set_auth(&c.value, &auth(i), &AuthContext::default())?;
        }
        Ok(())
    });
    assert!(matches!(r, Err(Error::MapFull { .. })), "{r:?}");
    assert!(
        attempted.len() > 10,
        "the batch failed after {}",
        attempted.len()
    );
    for v in &attempted {
        assert!(!a.exists(v).unwrap(), "{v} of the failed batch was kept");
    }
    assert_clean(&a);
}

// ---- process B ----

fn process_b() {
    let path = std::env::var("GROWTH_STORE").unwrap();
    let store = CookieStore::open(Path::new(&path), options()).unwrap();
    report(&json!({"ev": "ready", "map_size": store.stats().unwrap().lmdb.unwrap().map_size}));

    let (tx, rx) = std::sync::mpsc::channel::<Option<String>>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lines() {
            let _ = tx.send(Some(line.unwrap()));
        }
        let _ = tx.send(None);
    });
    let (mut writes, mut errors, mut reads_at_max) = (0u64, 0u64, 0u64);
    let mut values: Vec<String> = Vec::new();
    let mut read_only = false;
    let mut first_size = None;
    let mut ops_since_grown = 0u64;
    let mut fail = |what: &str, e: Error| {
        errors += 1;
        report(&json!({"ev": "error", "what": what, "msg": e.to_string()}));
    };
    for i in 0usize.. {
        match rx.try_recv() {
            Ok(Some(cmd)) if cmd == "read-only" => {
                read_only = true;
                report(&json!({"ev": "reading"}));
            }
            Ok(Some(cmd)) => {
                let v = cmd.strip_prefix("verify ").unwrap();
                let found = store.get(v).map(|c| c.is_some()).unwrap_or(false);
                report(&json!({"ev": "verified", "found": found}));
            }
            Ok(None) => break,
            Err(_) => {}
        }
        if !read_only {
            match store.create("cbtid", 24, 86_400) {
                Ok(c) => match store.set_auth(&c.value, &auth(i), &AuthContext::default()) {
                    Ok(AuthUpdate::Written) => {
                        writes += 2;
                        values.push(c.value);
                    }
                    Ok(other) => fail(
                        "set_auth",
                        Error::InvalidValue {
                            problem: format!("{other:?}"),
                        },
                    ),
                    Err(e) => fail("set_auth", e),
                },
                Err(e) => fail("create", e),
            }
            std::thread::sleep(Duration::from_millis(3));
        } else {
            std::thread::sleep(Duration::from_millis(2));
        }
        // Reads: its own cookies and the store as a whole.
        if let Some(v) = values.get(i % values.len().max(1)) {
            match store.get_auth(v) {
                Ok(Some(a)) if a.authextra["pad"].as_str().map(str::len) == Some(1_000) => {}
                Ok(other) => fail(
                    "get_auth",
                    Error::InvalidValue {
                        problem: format!("{v}: {other:?}"),
                    },
                ),
                Err(e) => fail("get_auth", e),
            }
        }
        match store.stats() {
            Ok(s) => {
                let first = *first_size.get_or_insert(s.lmdb.as_ref().unwrap().map_size);
                if s.lmdb.as_ref().unwrap().map_size > first {
                    ops_since_grown += 1;
                }
                if s.lmdb.as_ref().unwrap().map_size == MAXSIZE {
                    reads_at_max += 1;
                }
                if i % 10 == 0 {
                    report(
                        &json!({"ev": "progress", "ops": i, "map_size": s.lmdb.as_ref().unwrap().map_size,
                        "ops_since_grown": ops_since_grown}),
                    );
                }
            }
            Err(e) => fail("stats", e),
        }
    }
    report(&json!({"ev": "done", "writes": writes, "errors": errors,
        "reads_at_max": reads_at_max, "values": values}));
}
