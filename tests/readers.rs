//! Readers never block writers: the test holds one read transaction (a slow dump of every
//! record, read twice) for over two seconds while another process commits batches. The
//! writer's commits go on during the whole read, each as quick as before, and the dump sees
//! exactly one state the writer committed, and the same one both times.
//!
//! Every batch of the writer creates the two cookies of generation `k` (authid `gen-k`)
//! and deletes the two of generation `k - 5`, so every committed state holds exactly the
//! generations `k-4..=k`, two cookies each. A dump that mixed two states would show a
//! generation with one cookie, or a gap.

// A failed unwrap here (helpers included) is the test, bench or example failing.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::*;
use cookiestore::{Auth, AuthContext, CookieStore, StoreOptions};
use serde_json::json;

const TEST: &str = "long_reader_does_not_block_writer";
const WINDOW: u64 = 5;
const HOLD: Duration = Duration::from_millis(2_500);

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

#[test]
fn long_reader_does_not_block_writer() {
    if child_role().is_some() {
        return writer();
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let store = CookieStore::open(&path, StoreOptions::default()).unwrap();
    // Some bulk, so the dump has pages to walk.
    store
        .as_lmdb()
        .unwrap()
        .batch("bulk", |b| {
            for _ in 0..2_000 {
                b.create("cbtid", 24, 86_400)?;
            }
            Ok(())
        })
        .unwrap();

    let mut w = child_command(TEST, "writer")
        .env("READERS_STORE", &path)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = ChildLines::new(&mut w);
    lines.wait_for("ready", Duration::from_secs(60));
    // Let the writer get going (and measure its pace without a long reader).
    let mut commits = Vec::new();
    while commits.len() < 30 {
        let e = lines.wait_for("commit", Duration::from_secs(30));
        commits.push(e);
    }

    let (start, end, first, second, txn_id, records) = store
        .as_lmdb()
        .unwrap()
        .snapshot(|s| {
            let start = now_us();
            let dump = |slow: bool| -> cookiestore::Result<BTreeMap<u64, u32>> {
                let mut gens = BTreeMap::new();
                for (i, c) in s.records()?.enumerate() {
                    let c = c?;
                    if let Some(g) = c.authid.as_deref().and_then(|a| a.strip_prefix("gen-")) {
                        *gens.entry(g.parse().unwrap()).or_default() += 1;
                    }
                    if slow && i % 20 == 0 {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                }
                Ok(gens)
            };
            let first = dump(true)?;
            while now_us() - start < HOLD.as_micros() as u64 {
                std::thread::sleep(Duration::from_millis(50));
            }
            let second = dump(false)?;
            let records = s.records()?.count();
            Ok((start, now_us(), first, second, s.txn_id(), records))
        })
        .unwrap();
    eprintln!(
        "readers: held txn {txn_id} for {} ms over {records} records",
        (end - start) / 1_000
    );

    // The writer went on while the read transaction was open.
    let mut during = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let e = lines
            .next_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("writer stopped reporting");
        if e["ev"] != "commit" {
            continue;
        }
        let at = e["at_us"].as_u64().unwrap();
        if at > end {
            break;
        }
        if at >= start {
            during.push(e);
        } else {
            commits.push(e);
        }
    }
    drop(w.stdin.take());
    let done = lines.wait_for("done", Duration::from_secs(60));
    wait_success(&mut w, "writer");
    assert_eq!(done["errors"], 0, "writer: {done}");

    let slowest = |v: &[serde_json::Value]| {
        v.iter()
            .map(|e| e["latency_us"].as_u64().unwrap())
            .max()
            .unwrap_or(0)
    };
    let (before_max, during_max) = (slowest(&commits), slowest(&during));
    eprintln!(
        "readers: {} commits before the read (slowest {before_max} us), {} during it \
         (slowest {during_max} us)",
        commits.len(),
        during.len()
    );
    assert!(
        during.len() >= 50,
        "only {} commits while the reader held its snapshot for {} ms",
        during.len(),
        (end - start) / 1_000
    );
    assert!(
        during_max < 1_000_000,
        "a commit took {during_max} us while the reader held its snapshot"
    );

    // One consistent snapshot: the same both times, and a state the writer committed.
    assert_eq!(first, second, "the snapshot changed under the reader");
    let last = *first.keys().last().expect("the snapshot holds generations");
    let expected: BTreeMap<u64, u32> = (last.saturating_sub(WINDOW - 1)..=last)
        .map(|g| (g, 2))
        .collect();
    assert_eq!(first, expected, "the snapshot is not a committed state");
    assert_eq!(records, 2_000 + 2 * first.len());
    // ... and the writer committed generations after it meanwhile.
    let later = store
        .as_lmdb()
        .unwrap()
        .snapshot(|s| {
            Ok(s.records()?
                .filter_map(|c| c.ok()?.authid?.strip_prefix("gen-")?.parse::<u64>().ok())
                .max())
        })
        .unwrap()
        .unwrap();
    assert!(later >= last + 50, "no writes after generation {last}");
    assert_clean(&store);
}

fn writer() {
    let path = std::env::var("READERS_STORE").unwrap();
    let store = CookieStore::open(&path, StoreOptions::default()).unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut Vec::new());
        let _ = tx.send(());
    });
    report(&json!({"ev": "ready"}));
    let mut values: BTreeMap<u64, [String; 2]> = BTreeMap::new();
    let mut errors = 0;
    for k in 0u64.. {
        if rx.try_recv().is_ok() {
            break;
        }
        let old = k
            .checked_sub(WINDOW)
            .and_then(|g| values.remove(&g))
            .unwrap_or_default();
        let t0 = Instant::now();
        let r = store.as_lmdb().unwrap().batch("generation", |b| {
            let auth = Auth::new(&format!("gen-{k}"), "r", "cookie", "realm1");
            let mut made = Vec::new();
            for _ in 0..2 {
                let c = b.create("cbtid", 24, 86_400)?;
                b.set_auth(&c.value, &auth, &AuthContext::default())?;
                made.push(c.value);
            }
            for v in &old {
                if !v.is_empty() && !b.delete(v)? {
                    return Err(cookiestore::Error::InvalidValue {
                        problem: format!("{v} was not there to delete"),
                    });
                }
            }
            Ok([made[0].clone(), made[1].clone()])
        });
        let latency = t0.elapsed().as_micros() as u64;
        match r {
            Ok(made) => {
                values.insert(k, made);
                report(&json!({"ev": "commit", "gen": k, "at_us": now_us(),
                    "latency_us": latency}));
            }
            Err(e) => {
                errors += 1;
                report(&json!({"ev": "error", "msg": e.to_string()}));
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    report(&json!({"ev": "done", "errors": errors}));
}
