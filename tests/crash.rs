//! Crash at any point: a child process writes in a loop (sync on, the default) and reports
//! every step over its stdout pipe: the intent before a write and the outcome after it
//! returns. The parent kills it with SIGKILL at random moments, during its start-up or in
//! the middle of its writes, while a second thread of the child holds read transactions.
//!
//! After each kill the parent checks that:
//! - the store opens and `check` finds nothing wrong;
//! - every cookie whose creation was reported is there, with the last authentication and
//!   max_age reported for it, and nothing else is there: only the one write that was in
//!   flight when the kill came may have gone either way;
//! - the reader slots the dead process left in lock.mdb were there and are cleared by the
//!   open (LMDB's `mdb_reader_check`), so they cannot pin old pages forever.
//!
//! The store persists across trials, and every child also changes cookies that earlier
//! children made. Trials: 10, or 6 × `COOKIESTORE_STRESS` (60 with `ci`).

// A failed unwrap here (helpers included) is the test, bench or example failing.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use common::*;
use cookiestore::{Auth, AuthContext, AuthUpdate, CookieStore, StoreOptions};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::json;

const TEST: &str = "killed_writer_loses_nothing_committed";
const LONG: u64 = 86_400;

fn trials() -> u64 {
    (6 * stress()).max(10)
}

#[derive(Debug, Clone, PartialEq)]
struct State {
    authid: Option<String>,
    max_age: u64,
}

/// The one write that may have been cut short by the kill.
#[derive(Debug)]
enum Pending {
    Create,
    Auth(String, String),
    Delete(String),
    Extend(String, u64),
}

#[test]
fn killed_writer_loses_nothing_committed() {
    match child_role().as_deref() {
        Some("writer") => return writer_main(),
        Some("bystander") => return bystander_main(),
        _ => {}
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let seed: u64 = rand::rng().random();
    let mut rng = StdRng::seed_from_u64(seed);
    let trials = trials();
    eprintln!("crash: {trials} trials, seed {seed}");

    // A process that keeps the store open throughout. Without one, the open after a kill
    // would be the only user of lock.mdb and LMDB would reset the whole reader table (and
    // the writer mutex); with one, the dead child's slots are cleared only by the reader
    // check at open, and a writer mutex held by the dead child must be recovered.
    let mut bystander = child_command(TEST, "bystander")
        .env("CRASH_STORE", &path)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let bystander_lines = ChildLines::new(&mut bystander);
    bystander_lines.wait_for("ready", Duration::from_secs(60));

    let mut model: HashMap<String, State> = HashMap::new();
    let (mut stale_seen, mut in_flight, mut during_startup) = (0, 0, 0);
    let mut total_events = 0;
    for trial in 0..trials {
        let mut cmd = child_command(TEST, "writer");
        cmd.env("CRASH_STORE", &path)
            .env("CRASH_SEED", (seed ^ trial).to_string());
        let mut child = cmd.spawn().unwrap();
        let pid = child.id();
        let lines = ChildLines::new(&mut child);
        let mut events = Vec::new();
        if rng.random_bool(0.15) {
            // Kill it while it starts: opening, clearing readers, preparing the layout.
            during_startup += 1;
            std::thread::sleep(Duration::from_micros(rng.random_range(0..40_000)));
        } else {
            events.push(lines.wait_for("ready", Duration::from_secs(60)));
            std::thread::sleep(Duration::from_micros(rng.random_range(0..250_000)));
        }
        child.kill().unwrap(); // SIGKILL
        let status = child.wait().unwrap();
        assert!(!status.success(), "trial {trial}: the child was not killed");
        events.extend(lines.rest());
        total_events += events.len();

        // The dead child's reader slots are in lock.mdb until the next open clears them.
        let stale_before = reader_pids(&path).contains(&pid);
        stale_seen += u64::from(stale_before);

        let store = CookieStore::open(&path, StoreOptions::default())
            .unwrap_or_else(|e| panic!("trial {trial}: the store does not open: {e}"));
        let slots = reader_pids(&path);
        assert!(
            !slots.contains(&pid),
            "trial {trial}: the dead child's reader slot (pid {pid}) survived the open"
        );
        for p in &slots {
            assert!(
                Path::new(&format!("/proc/{p}")).exists(),
                "trial {trial}: reader slot of dead process {p} survived the open"
            );
        }
        assert!(
            slots.contains(&bystander.id()),
            "trial {trial}: the bystander's reader slot is gone: lock.mdb was reset"
        );
        assert_clean(&store);

        // Replay the reports; the last intent without an outcome is the pending write.
        let mut pending = None;
        for e in &events {
            let v = || e["v"].as_str().unwrap().to_string();
            match e["ev"].as_str().unwrap() {
                "ready" => {}
                "creating" => pending = Some(Pending::Create),
                "authing" => {
                    let authid = e["authid"].as_str().unwrap().to_string();
                    pending = Some(Pending::Auth(v(), authid));
                }
                "deleting" => pending = Some(Pending::Delete(v())),
                "extending" => pending = Some(Pending::Extend(v(), e["max_age"].as_u64().unwrap())),
                "created" => {
                    let fresh = State {
                        authid: None,
                        max_age: e["max_age"].as_u64().unwrap(),
                    };
                    assert!(model.insert(v(), fresh).is_none());
                    pending = None;
                }
                "authed" => {
                    if e["r"] != "none" {
                        let state = model.get_mut(&v()).expect("authed an unknown cookie");
                        state.authid = Some(e["authid"].as_str().unwrap().to_string());
                    } else {
                        assert!(!model.contains_key(&v()), "{} vanished", v());
                    }
                    pending = None;
                }
                "deleted" => {
                    let was = model.remove(&v()).is_some();
                    assert_eq!(e["r"], was, "delete of {}", v());
                    pending = None;
                }
                "extended" => {
                    if e["r"] == true {
                        model.get_mut(&v()).unwrap().max_age = e["max_age"].as_u64().unwrap();
                    }
                    pending = None;
                }
                "violation" => panic!("trial {trial}: {e}"),
                other => panic!("unknown report {other}"),
            }
        }
        in_flight += u64::from(pending.is_some());

        // Compare with the store; only the pending write may have gone either way.
        let mut actual: HashMap<String, State> = store
            .as_lmdb()
            .unwrap()
            .snapshot(|s| {
                s.records()?
                    .map(|c| {
                        c.map(|c| {
                            let state = State {
                                authid: c.authid.clone(),
                                max_age: c.max_age,
                            };
                            (c.value, state)
                        })
                    })
                    .collect()
            })
            .unwrap();
        match &pending {
            Some(Pending::Create) => {
                let extra: Vec<_> = actual
                    .keys()
                    .filter(|v| !model.contains_key(*v))
                    .cloned()
                    .collect();
                assert!(extra.len() <= 1, "trial {trial}: extra cookies {extra:?}");
                for v in extra {
                    let state = actual[&v].clone();
                    assert_eq!(state.authid, None, "trial {trial}: a new cookie has auth");
                    model.insert(v, state);
                }
            }
            Some(Pending::Auth(v, authid)) => {
                if let (Some(want), Some(got)) = (model.get_mut(v), actual.get(v))
                    && got.authid.as_ref() == Some(authid)
                {
                    want.authid = Some(authid.clone());
                }
            }
            Some(Pending::Delete(v)) if !actual.contains_key(v) => {
                model.remove(v);
            }
            Some(Pending::Extend(v, max_age)) => {
                if let (Some(want), Some(got)) = (model.get_mut(v), actual.get(v))
                    && got.max_age == *max_age
                {
                    want.max_age = *max_age;
                }
            }
            Some(Pending::Delete(_)) | None => {}
        }
        let mut missing = Vec::new();
        for (v, want) in &model {
            match actual.remove(v) {
                Some(got) => assert_eq!(&got, want, "trial {trial}: cookie {v}"),
                None => missing.push(v.clone()),
            }
        }
        assert!(
            missing.is_empty() && actual.is_empty(),
            "trial {trial} (pending {pending:?}): reported cookies missing {missing:?}; \
             cookies nobody reported {:?}",
            actual.keys().collect::<Vec<_>>()
        );
        drop(store);
    }
    drop(bystander.stdin.take()); // tells it to finish
    wait_success(&mut bystander, "bystander");
    let bystander_reads = bystander_lines.wait_for("done", Duration::from_secs(10));
    assert!(bystander_reads["reads"].as_u64().unwrap() > 0);
    eprintln!(
        "crash: {trials} kills ({during_startup} during start-up), {total_events} reports, \
         {in_flight} with a write in flight, stale reader slot seen before the open in \
         {stale_seen}; {} cookies at the end",
        model.len()
    );
    assert!(
        stale_seen * 2 >= trials - during_startup,
        "the dead child's reader slot was seen in only {stale_seen} of {trials} trials: \
         the test no longer exercises stale-reader clearing (or lock.mdb's layout changed)"
    );
    assert!(in_flight > 0, "no kill came during a write");
    assert!(model.len() > 10, "the writers made too few cookies");
}

/// The pids in lock.mdb's reader table (LMDB 0.9 on 64-bit Linux: a 128-byte header whose
/// first half holds `mtb_numreaders` at byte 16, then 64-byte slots `{txnid u64, pid u32,
/// tid u64}`; a free slot has pid 0).
fn reader_pids(store: &Path) -> Vec<u32> {
    let lock = std::fs::read(store.join("lock.mdb")).unwrap_or_default();
    let u32_at = |at: usize| {
        lock.get(at..at + 4)
            .map(|b| u32::from_le_bytes(b.try_into().unwrap()))
    };
    assert_eq!(u32_at(0), Some(0xBEEF_C0DE), "lock.mdb has no LMDB magic");
    let readers = u32_at(16).unwrap() as usize;
    (0..readers)
        .filter_map(|i| u32_at(128 + 64 * i + 8))
        .filter(|&pid| pid != 0)
        .collect()
}

// ---- the children ----

/// Keeps the store open and reads from it until its stdin closes.
fn bystander_main() {
    let path = std::env::var("CRASH_STORE").unwrap();
    let store = CookieStore::open(&path, StoreOptions::default()).unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut Vec::new());
        let _ = tx.send(());
    });
    report(&json!({"ev": "ready"}));
    let mut reads = 0u64;
    while rx.recv_timeout(Duration::from_millis(20)).is_err() {
        store.count().unwrap();
        reads += 1;
    }
    report(&json!({"ev": "done", "reads": reads}));
}

fn writer_main() {
    let path = std::env::var("CRASH_STORE").unwrap();
    let seed: u64 = std::env::var("CRASH_SEED").unwrap().parse().unwrap();
    let mut rng = StdRng::seed_from_u64(seed);
    let store = CookieStore::open(&path, StoreOptions::default()).unwrap();
    // Cookies of earlier children are changed too.
    let mut known: Vec<String> = store
        .as_lmdb()
        .unwrap()
        .snapshot(|s| s.records()?.map(|c| c.map(|c| c.value)).collect())
        .unwrap();
    // A reader thread: read transactions are open when the kill comes.
    let reader = store.clone();
    std::thread::spawn(move || {
        loop {
            let n = reader
                .as_lmdb()
                .unwrap()
                .snapshot(|s| Ok(s.records()?.filter(|c| c.is_ok()).count()))
                .unwrap();
            std::hint::black_box(n);
        }
    });
    report(&json!({"ev": "ready"}));
    for n in 0u64.. {
        let pick = |rng: &mut StdRng, known: &Vec<String>| {
            (!known.is_empty()).then(|| known[rng.random_range(0..known.len())].clone())
        };
        match rng.random_range(0..10) {
            0..4 => {
                report(&json!({"ev": "creating"}));
                let c = store.create("cbtid", 24, LONG).unwrap();
                report(&json!({"ev": "created", "v": c.value, "max_age": LONG}));
                known.push(c.value);
            }
            4..7 => {
                let Some(v) = pick(&mut rng, &known) else {
                    continue;
                };
                let authid = format!("user-{seed}-{n}");
                report(&json!({"ev": "authing", "v": v, "authid": authid}));
                let auth = Auth::new(&authid, "frontend", "cookie", "realm1")
                    .with_authextra(json!({"n": n, "pad": "x".repeat(rng.random_range(0..2000))}));
                let r = store.set_auth(&v, &auth, &AuthContext::default()).unwrap();
                let r = match r {
                    AuthUpdate::Written => "written",
                    AuthUpdate::Unchanged => "unchanged",
                    AuthUpdate::NoSuchCookie => "none",
                    other => panic!("unexpected {other:?}"),
                };
                report(&json!({"ev": "authed", "v": v, "authid": authid, "r": r}));
            }
            7 => {
                let Some(v) = pick(&mut rng, &known) else {
                    continue;
                };
                let max_age = LONG + rng.random_range(1..100_000);
                report(&json!({"ev": "extending", "v": v, "max_age": max_age}));
                let done = store
                    .as_lmdb()
                    .unwrap()
                    .batch("extend", |b| match b.get(&v)? {
                        Some(mut c) => {
                            c.max_age = max_age;
                            b.put(&c)?;
                            Ok(true)
                        }
                        None => Ok(false),
                    })
                    .unwrap();
                report(&json!({"ev": "extended", "v": v, "max_age": max_age, "r": done}));
            }
            8 => {
                let Some(v) = pick(&mut rng, &known) else {
                    continue;
                };
                report(&json!({"ev": "deleting", "v": v}));
                let r = store.delete(&v).unwrap();
                report(&json!({"ev": "deleted", "v": v, "r": r}));
                known.retain(|k| *k != v);
            }
            _ => {
                store.purge_expired().unwrap();
                if let Some(v) = pick(&mut rng, &known)
                    && store.get(&v).unwrap().is_none()
                {
                    report(&json!({"ev": "violation", "what": format!("{v} is gone")}));
                }
            }
        }
    }
}
