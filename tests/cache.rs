//! The per-process cache: every answer it gives equals a read of the store, across every
//! kind of change (made here, in other processes, and by another program), within its
//! memory budget, with expiry checked on every hit.

// A failed unwrap here (helpers included) is the test, bench or example failing.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::*;
use cookiestore::{Auth, AuthContext, CookieStore, Snapshot, StoreOptions};
use rand::RngExt;
use serde_json::json;

const NOW: u64 = FIXTURE_DAY_NS;

fn auth(authid: &str) -> Auth {
    Auth::new(authid, "user", "ticket", "realm1")
}

fn login(store: &CookieStore, authid: &str, max_age: u64) -> String {
    let cookie = store.create("cbtid", 24, max_age).unwrap();
    store
        .set_auth(&cookie.value, &auth(authid), &AuthContext::default())
        .unwrap();
    cookie.value
}

/// What `lookup` answers, as comparable fields.
type Answer = Option<(uuid::Uuid, u64, u64, Option<Auth>)>;

fn cached(store: &CookieStore, value: &str) -> Answer {
    store
        .lookup(value)
        .unwrap()
        .map(|l| (l.oid, l.expires_at, l.max_age, l.auth))
}

/// The same question answered by a snapshot (never the cache): the full record.
fn uncached(s: &Snapshot<'_>, value: &str) -> Answer {
    s.get(value)
        .unwrap()
        .map(|c| (c.oid, c.expires_at(), c.max_age, c.auth()))
}

fn read(store: &CookieStore, value: &str) -> Answer {
    store
        .as_lmdb()
        .unwrap()
        .snapshot(|s| Ok(uncached(s, value)))
        .unwrap()
}

/// Asserts that the cached answers for `values` equal a read of the store.
fn agree(store: &CookieStore, values: &[String], when: &str) {
    for value in values {
        assert_eq!(
            cached(store, value),
            read(store, value),
            "{when}: the cache disagrees with the store on {value}"
        );
        assert_eq!(
            store.get_auth(value).unwrap(),
            read(store, value).and_then(|a| a.3),
            "{when}: get_auth"
        );
        assert_eq!(
            store.exists(value).unwrap(),
            read(store, value).is_some(),
            "{when}: exists"
        );
    }
}

#[test]
fn every_kind_of_change_reaches_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let (options, clock) = options_at(NOW);
    let store = CookieStore::open(dir.path(), options).unwrap();
    let values: Vec<String> = (0..6).map(|_| login(&store, "alice", 3600)).collect();
    let short = login(&store, "bob", 10);
    let plain = store.create("cbtid", 24, 3600).unwrap().value;
    let all: Vec<String> = values
        .iter()
        .cloned()
        .chain([short.clone(), plain.clone(), "unknown-value".to_string()])
        .collect();
    agree(&store, &all, "filled");
    let filled = store.cache_stats();
    assert!(filled.entries >= 8, "{filled:?}");
    agree(&store, &all, "again");
    assert!(
        store.cache_stats().hits > filled.hits,
        "nothing was answered from the cache"
    );

    // An auth change, a cleared auth (a put), a max_age change (a put).
    store
        .set_auth(&values[0], &auth("carol"), &AuthContext::default())
        .unwrap();
    agree(&store, &all, "after set_auth");
    assert_eq!(store.get_auth(&values[0]).unwrap().unwrap().authid, "carol");
    let mut cookie = store.get(&values[1]).unwrap().unwrap();
    cookie.authid = None;
    store.put(&cookie).unwrap();
    agree(&store, &all, "after a put clearing the auth");
    assert_eq!(
        store.clear_auth(&values[4]).unwrap(),
        cookiestore::AuthUpdate::Written
    );
    agree(&store, &all, "after clear_auth");
    let mut cookie = store.get(&values[2]).unwrap().unwrap();
    cookie.max_age = 5;
    store.put(&cookie).unwrap();
    agree(&store, &all, "after a put shortening max_age");
    // Logouts: by value, by authid.
    assert!(store.delete(&values[3]).unwrap());
    agree(&store, &all, "after delete");
    assert_eq!(store.logout_authid("alice").unwrap(), 2); // values 2, 5
    agree(&store, &all, "after logout_authid");
    // Expiry on a hit, with nothing committed: the clock alone.
    clock.advance_secs(11);
    let txn = store.stats().unwrap().lmdb.unwrap().txn_id;
    assert_eq!(store.lookup(&short).unwrap(), None);
    assert_eq!(store.stats().unwrap().lmdb.unwrap().txn_id, txn);
    agree(&store, &all, "after the clock passed an expiry");
    // A purge, a repair, a clear.
    store.purge_expired().unwrap();
    agree(&store, &all, "after purge");
    let quarantine = tempfile::tempdir().unwrap();
    cookiestore::maintenance::repair(store.as_lmdb().unwrap(), &quarantine.path().join("q.jsonl"))
        .unwrap();
    agree(&store, &all, "after repair");
    store.clear().unwrap();
    agree(&store, &all, "after clear");
    let stats = store.cache_stats();
    assert!(stats.invalidated > 0 && stats.flushes > 0, "{stats:?}");
}

const CLEAR_TEST: &str = "a_clear_auth_in_another_process_reaches_the_cache";

/// Another cookiestore process: clears the authentication of `CLEAR_VALUE`.
fn clearer_main() {
    let store = CookieStore::open(
        std::env::var("CLEAR_STORE").unwrap(),
        StoreOptions::default(),
    )
    .unwrap();
    let value = std::env::var("CLEAR_VALUE").unwrap();
    assert_eq!(
        store.clear_auth(&value).unwrap(),
        cookiestore::AuthUpdate::Written
    );
    report(&json!({"ev": "cleared"}));
}

#[test]
fn a_clear_auth_in_another_process_reaches_the_cache() {
    if child_role().as_deref() == Some("clearer") {
        return clearer_main();
    }
    let dir = tempfile::tempdir().unwrap();
    let store = CookieStore::open(dir.path(), StoreOptions::default()).unwrap();
    let cleared = login(&store, "alice", 3600);
    let stays = login(&store, "bob", 3600);
    let values = [cleared.clone(), stays.clone()];
    agree(&store, &values, "filled");
    // The cache answers alice, with no read.
    let hit = store.lookup_cached(&cleared).expect("a cache hit");
    assert_eq!(hit.unwrap().auth.as_ref().unwrap().authid, "alice");
    let before = store.cache_stats();

    let mut cmd = child_command(CLEAR_TEST, "clearer");
    cmd.env("CLEAR_STORE", dir.path())
        .env("CLEAR_VALUE", &cleared);
    let mut child = cmd.spawn().unwrap();
    let lines = ChildLines::new(&mut child);
    lines.wait_for("cleared", Duration::from_secs(60));
    wait_success(&mut child, "clearer");

    assert!(
        store.lookup_cached(&cleared).is_none(),
        "the cache answers as if nothing was committed"
    );
    assert_eq!(store.get_auth(&cleared).unwrap(), None);
    assert!(store.exists(&cleared).unwrap());
    assert_eq!(store.get_auth(&stays).unwrap().unwrap().authid, "bob");
    agree(
        &store,
        &values,
        "after the other process cleared alice's auth",
    );
    let after = store.cache_stats();
    assert!(after.invalidated > before.invalidated, "{after:?}");
    assert_eq!(
        after.flushes, before.flushes,
        "dropped by name, not a flush"
    );
}

const FOREIGN_TEST: &str = "a_write_by_another_program_reaches_the_cache";

/// Another program (plain heed, no cookiestore): removes the value index entry of
/// `FOREIGN_VALUE`, which makes that cookie unknown.
fn foreign_main() {
    let path = std::env::var("FOREIGN_STORE").unwrap();
    let slot: u16 = std::env::var("FOREIGN_SLOT").unwrap().parse().unwrap();
    let value = std::env::var("FOREIGN_VALUE").unwrap();
    let mut key = slot.to_be_bytes().to_vec();
    key.extend_from_slice(value.as_bytes());
    with_raw_env(Path::new(&path), |txn, db| {
        assert!(db.delete(txn, &key).unwrap(), "no index entry to remove");
    });
    report(&json!({"ev": "written"}));
}

#[test]
fn a_write_by_another_program_reaches_the_cache() {
    if child_role().as_deref() == Some("foreign") {
        return foreign_main();
    }
    let dir = tempfile::tempdir().unwrap();
    let store = CookieStore::open(dir.path(), StoreOptions::default()).unwrap();
    let gone = login(&store, "alice", 3600);
    let stays = login(&store, "bob", 3600);
    let values = [gone.clone(), stays.clone()];
    agree(&store, &values, "filled");
    let slot = table_slot(&store, "65e1d8c1-fa8b-459d-ae43-cb320d28cc97");
    let run_foreign = |value: &str| {
        let mut cmd = child_command(FOREIGN_TEST, "foreign");
        cmd.env("FOREIGN_STORE", dir.path())
            .env("FOREIGN_SLOT", slot.to_string())
            .env("FOREIGN_VALUE", value);
        let mut child = cmd.spawn().unwrap();
        let lines = ChildLines::new(&mut child);
        lines.wait_for("written", Duration::from_secs(60));
        wait_success(&mut child, "foreign writer");
    };
    // The foreign commit is the last one: the reader sees it is not cookiestore's.
    run_foreign(&gone);
    assert_eq!(store.lookup(&gone).unwrap(), None);
    agree(&store, &values, "after the foreign write");
    // A foreign commit followed by one of ours: the writer records a flush.
    agree(&store, &values, "refilled");
    let cookie = store.create("cbtid", 24, 60).unwrap();
    run_foreign(&stays);
    store.create("cbtid", 24, 60).unwrap();
    let feed = store.revocations_since(0).unwrap();
    assert_eq!(
        feed.entries.last().map(|e| e.kind),
        Some(cookiestore::RevocationKind::Flush),
        "{feed:?}"
    );
    agree(
        &store,
        &[stays, cookie.value],
        "after ours followed the foreign write",
    );
}

#[test]
fn the_cache_stays_within_its_budget_and_reports_its_hit_rate() {
    let dir = tempfile::tempdir().unwrap();
    let budget = 128 * 1024;
    let store = CookieStore::open(dir.path(), StoreOptions::default().cache_bytes(budget)).unwrap();
    let values: Vec<String> = store
        .as_lmdb()
        .unwrap()
        .batch("make cookies", |b| {
            (0..2000)
                .map(|i| {
                    let c = b.create("cbtid", 24, 3600)?;
                    b.set_auth(
                        &c.value,
                        &auth(&format!("user{i}")).with_authextra(json!({"i": i})),
                        &AuthContext::default(),
                    )?;
                    Ok(c.value)
                })
                .collect()
        })
        .unwrap();
    for _ in 0..3 {
        for value in &values {
            assert!(store.get_auth(value).unwrap().is_some());
        }
    }
    let stats = store.cache_stats();
    assert_eq!(stats.capacity_bytes, budget);
    assert!(stats.bytes <= budget, "{stats:?}");
    assert!(stats.entries > 50 && stats.entries < 2000, "{stats:?}");
    assert!(stats.evicted > 0, "{stats:?}");
    // A small hot set fits: it is answered from the cache.
    let before = store.cache_stats();
    for _ in 0..100 {
        for value in &values[..20] {
            store.get_auth(value).unwrap();
        }
    }
    let after = store.cache_stats();
    let hits = after.hits - before.hits;
    assert!(
        hits >= 1900,
        "only {hits} of 2000 lookups of 20 hot cookies hit"
    );
    assert!(after.hit_rate() > 0.0 && after.hit_rate() < 1.0);
    agree(&store, &values[..100], "after eviction");

    // Off: nothing cached, same answers.
    let dir = tempfile::tempdir().unwrap();
    let off = CookieStore::open(dir.path(), StoreOptions::default().cache_bytes(0)).unwrap();
    let value = login(&off, "alice", 60);
    assert_eq!(off.get_auth(&value).unwrap().unwrap().authid, "alice");
    assert_eq!(off.cache_stats(), cookiestore::CacheStats::default());
}

// ---- other processes write while this one reads through its cache ----

const RACE_TEST: &str = "cached_answers_equal_uncached_reads_while_other_processes_write";

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// A writer process: random logins, auth changes, puts, logouts, purges and creates on the
/// shared store until told to stop.
fn writer_main() {
    let path = std::env::var("RACE_STORE").unwrap();
    let store = CookieStore::open(&path, StoreOptions::default()).unwrap();
    let stop = Path::new(&path).join("stop");
    let mut rng = rand::rng();
    let authids = ["alice", "bob", "carol", "dave"];
    let mut ops = 0u64;
    report(&json!({"ev": "ready"}));
    while !stop.exists() {
        let values: Vec<String> = store
            .as_lmdb()
            .unwrap()
            .snapshot(|s| s.live()?.map(|c| c.map(|c| c.value)).collect())
            .unwrap();
        if values.is_empty() {
            login(&store, "alice", 3600);
            continue;
        }
        let value = &values[rng.random_range(0..values.len())];
        let authid = authids[rng.random_range(0..authids.len())];
        match rng.random_range(0..100) {
            0..30 => {
                let extra = json!({"n": rng.random_range(0..1000)});
                store
                    .set_auth(
                        value,
                        &auth(authid).with_authextra(extra),
                        &AuthContext::default(),
                    )
                    .unwrap();
            }
            30..45 => {
                if let Some(mut c) = store.get(value).unwrap() {
                    if rng.random_bool(0.5) {
                        c.authid = None;
                    } else {
                        c.max_age = rng.random_range(1..4);
                    }
                    store.put(&c).unwrap();
                }
            }
            45..53 => {
                store.delete(value).unwrap();
            }
            53..56 => {
                store.logout_authid(authid).unwrap();
            }
            56..80 => {
                let max_age = if rng.random_bool(0.3) { 1 } else { 3600 };
                login(&store, authid, max_age);
            }
            80..84 => {
                store.purge_expired().unwrap();
            }
            _ => {}
        }
        ops += 1;
        std::thread::sleep(Duration::from_micros(rng.random_range(0..3000)));
    }
    report(&json!({"ev": "done", "ops": ops}));
}

/// Another program: every few ms, removes a random value index entry with plain heed.
fn foreign_writer_main() {
    let path = std::env::var("RACE_STORE").unwrap();
    let slot: u16 = std::env::var("RACE_SLOT").unwrap().parse().unwrap();
    let stop = Path::new(&path).join("stop");
    let (env, db) = raw_env(Path::new(&path), 1 << 30);
    let mut rng = rand::rng();
    let mut writes = 0u64;
    report(&json!({"ev": "ready"}));
    while !stop.exists() {
        std::thread::sleep(Duration::from_millis(rng.random_range(5..40)));
        let mut wtxn = env.write_txn().unwrap();
        let prefix = slot.to_be_bytes();
        let keys: Vec<Vec<u8>> = db
            .prefix_iter(&wtxn, &prefix)
            .unwrap()
            .map(|item| item.unwrap().0.to_vec())
            .collect();
        if keys.is_empty() {
            continue;
        }
        let key = &keys[rng.random_range(0..keys.len())];
        db.delete(&mut wtxn, key).unwrap();
        wtxn.commit().unwrap();
        writes += 1;
    }
    report(&json!({"ev": "done", "writes": writes}));
}

#[test]
fn cached_answers_equal_uncached_reads_while_other_processes_write() {
    match child_role().as_deref() {
        Some("writer") => return writer_main(),
        Some("foreign") => return foreign_writer_main(),
        _ => {}
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let clock = cookiestore::ManualClock::new(now_ns());
    let options = StoreOptions::default().clock(std::sync::Arc::new(clock.clone()));
    let store = CookieStore::open(&path, options).unwrap();
    for i in 0..200 {
        login(&store, ["alice", "bob", "carol", "dave"][i % 4], 3600);
    }
    let slot = table_slot(&store, "65e1d8c1-fa8b-459d-ae43-cb320d28cc97");
    let mut children = KillOnDrop(Vec::new());
    let mut reports = Vec::new();
    for role in ["writer", "writer", "foreign"] {
        let mut cmd = child_command(RACE_TEST, role);
        cmd.env("RACE_STORE", &path)
            .env("RACE_SLOT", slot.to_string());
        let mut child = cmd.spawn().unwrap();
        let lines = ChildLines::new(&mut child);
        children.0.push(child);
        lines.wait_for("ready", Duration::from_secs(120));
        reports.push(lines);
    }
    let seconds = 3 * stress().min(4);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    // Two reader threads share the process's cache, each with a clock of its own (set
    // before each bracket, so that both reads of one bracket see the same instant).
    let reader = |store: &CookieStore, clock: &cookiestore::ManualClock| {
        let (mut compared, mut raced) = (0u64, 0u64);
        let mut rng = rand::rng();
        let mut values: Vec<String> = Vec::new();
        let mut round = 0u64;
        while Instant::now() < deadline {
            if round.is_multiple_of(50) {
                // Every value the store holds (live or not), and one it never held.
                values = store
                    .as_lmdb()
                    .unwrap()
                    .snapshot(|s| s.records()?.map(|c| c.map(|c| c.value)).collect())
                    .unwrap();
                values.push("never-issued-value".into());
            }
            round += 1;
            clock.set(now_ns());
            let value = &values[rng.random_range(0..values.len())];
            // Bracket the cached answer between two snapshots: when no commit came between
            // them, the store's answer during the cached lookup is known exactly.
            let (before, expected) = store
                .as_lmdb()
                .unwrap()
                .snapshot(|s| Ok((s.txn_id(), uncached(s, value))))
                .unwrap();
            let answer = cached(store, value);
            let after = store
                .as_lmdb()
                .unwrap()
                .snapshot(|s| Ok(s.txn_id()))
                .unwrap();
            if before == after {
                compared += 1;
                assert_eq!(
                    answer,
                    expected,
                    "the cache answered differently from the store for {value} at txn \
                     {before} ({:?})",
                    store.cache_stats()
                );
            } else {
                raced += 1;
            }
        }
        (compared, raced)
    };
    let second_clock = cookiestore::ManualClock::new(now_ns());
    let second = store.with_clock(std::sync::Arc::new(second_clock.clone()));
    let ((c1, r1), (c2, r2)) = std::thread::scope(|scope| {
        let other = scope.spawn(|| reader(&second, &second_clock));
        let mine = reader(&store, &clock);
        (mine, other.join().expect("the second reader"))
    });
    let (compared, raced) = (c1 + c2, r1 + r2);
    std::fs::write(path.join("stop"), b"").unwrap();
    let mut ops = 0;
    for (child, lines) in children.0.iter_mut().zip(reports) {
        let done = lines.wait_for("done", Duration::from_secs(120));
        ops += done["ops"].as_u64().or(done["writes"].as_u64()).unwrap();
        wait_success(child, "writer");
    }
    let stats = store.cache_stats();
    eprintln!(
        "cache race: {compared} answers compared, {raced} raced a commit, {ops} writes by \
         other processes; {stats:?} (hit rate {:.2})",
        stats.hit_rate()
    );
    assert!(compared >= 500, "only {compared} answers could be compared");
    assert!(ops >= 200, "the other processes wrote only {ops} times");
    assert!(
        stats.hits > 0 && stats.catch_ups > 0 && stats.flushes > 0,
        "{stats:?}"
    );
}
