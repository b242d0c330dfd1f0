//! Opening a store while another process grows its map: the first transaction at open (the
//! one that opens the LMDB database) adopts the new size (`MDB_MAP_RESIZED`) and retries, as
//! every later transaction does. No open fails.

// A failed unwrap here (helpers included) is the test, bench or example failing.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::BufRead;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use cookiestore::{Auth, AuthContext, CookieStore, StoreOptions};
use serde_json::json;

const TEST: &str = "opens_succeed_while_another_process_grows_the_map";

fn options() -> StoreOptions {
    let mut o = StoreOptions::default()
        .initial_mapsize(128 * 1024)
        .maxsize(1024 * 1024 * 1024);
    o.lmdb.sync = false;
    o
}

#[test]
fn opens_succeed_while_another_process_grows_the_map() {
    if child_role().is_some() {
        return grower();
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    drop(CookieStore::open(&path, options()).unwrap());
    let mut child = child_command(TEST, "grower")
        .env("OPEN_RACE_STORE", &path)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = ChildLines::new(&mut child);
    lines.wait_for("ready", Duration::from_secs(60));

    let deadline = Instant::now() + Duration::from_secs(8);
    let (mut opens, mut failures) = (0u32, Vec::new());
    while Instant::now() < deadline {
        match CookieStore::open(&path, options()).and_then(|s| s.count()) {
            Ok(_) => {}
            Err(e) => failures.push(format!("{e:?}")),
        }
        opens += 1;
    }
    drop(child.stdin.take()); // tells the grower to stop
    wait_success(&mut child, "grower");
    let done = lines
        .rest()
        .into_iter()
        .find(|v| v["ev"] == "done")
        .expect("grower reports done");
    eprintln!("open_race: {opens} opens, grower: {done}");
    assert!(
        done["grew"].as_u64().unwrap() >= 3,
        "the map must grow while we open: {done}"
    );
    assert!(
        failures.is_empty(),
        "{} of {opens} opens failed, first: {}",
        failures.len(),
        failures[0]
    );
}

/// Writes batches of large cookies until stdin closes (or the map reaches 512 MiB).
fn grower() {
    let path = std::env::var("OPEN_RACE_STORE").unwrap();
    let store = CookieStore::open(Path::new(&path), options()).unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        for _ in std::io::stdin().lock().lines() {}
        let _ = tx.send(());
    });
    let auth = Auth::new("user", "frontend", "cookie", "realm1")
        .with_authextra(json!({ "pad": "p".repeat(8_000) }));
    let mut size = store.stats().unwrap().lmdb.unwrap().map_size;
    let mut grew = 0u64;
    report(&json!({"ev": "ready"}));
    while rx.try_recv().is_err() && size < 512 * 1024 * 1024 {
        store
            .as_lmdb()
            .unwrap()
            .batch("grow", |b| {
                for _ in 0..8 {
                    let c = b.create("cbtid", 24, 86_400)?;
                    b.set_auth(&c.value, &auth, &AuthContext::default())?;
                }
                Ok(())
            })
            .unwrap();
        let now = store.stats().unwrap().lmdb.unwrap().map_size;
        if now > size {
            grew += 1;
            size = now;
        }
    }
    report(&json!({"ev": "done", "grew": grew, "map_size": size}));
}

const CREATORS_TEST: &str = "processes_creating_one_new_store_together_all_open_it";
const CREATORS: usize = 6;
const ROUNDS: usize = 40;
const ROUND_MS: u64 = 40;

/// Several workers of a new node start at once on a store directory that does not exist yet:
/// each of them opens it, whichever comes first creates the files, and every one of them
/// gets the same store. Each round starts all creators at the same instant on a new
/// directory.
#[test]
fn processes_creating_one_new_store_together_all_open_it() {
    if child_role().is_some() {
        return creator();
    }
    let dir = tempfile::tempdir().unwrap();
    let start_ms = unix_ms() + 1_000;
    let mut children = Vec::new();
    for _ in 0..CREATORS {
        let mut child = child_command(CREATORS_TEST, "creator")
            .env("OPEN_RACE_DIR", dir.path())
            .env("OPEN_RACE_START_MS", start_ms.to_string())
            .spawn()
            .unwrap();
        let lines = ChildLines::new(&mut child);
        children.push((child, lines));
    }
    let mut failures = Vec::new();
    for (mut child, lines) in children {
        let events = lines.rest();
        wait_success(&mut child, "creator");
        failures.extend(
            events
                .into_iter()
                .filter(|v| v["ev"] == "failed")
                .map(|v| v.to_string()),
        );
    }
    assert!(
        failures.is_empty(),
        "{} of {} opens failed, first: {}",
        failures.len(),
        CREATORS * ROUNDS,
        failures[0]
    );
    for round in 0..ROUNDS {
        let store = CookieStore::open(dir.path().join(format!("r{round}")), options()).unwrap();
        assert_eq!(
            store.count().unwrap(),
            CREATORS as u64,
            "round {round}: every creator's cookie is in the one store"
        );
    }
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Opens `r0`, `r1`, ... each at its round's start instant, and adds one cookie to each.
fn creator() {
    let dir = std::path::PathBuf::from(std::env::var("OPEN_RACE_DIR").unwrap());
    let start: u64 = std::env::var("OPEN_RACE_START_MS")
        .unwrap()
        .parse()
        .unwrap();
    for round in 0..ROUNDS {
        let at = start + round as u64 * ROUND_MS;
        while unix_ms() < at {
            std::hint::spin_loop();
        }
        let path = dir.join(format!("r{round}"));
        match CookieStore::open(&path, options()).and_then(|s| s.create("cbtid", 24, 3_600)) {
            Ok(_) => {}
            Err(e) => report(&json!({"ev": "failed", "round": round, "error": e.to_string()})),
        }
    }
}
