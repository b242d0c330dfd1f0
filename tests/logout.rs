//! Logout that reaches every connection: the connection registry, logout by authid (the
//! authid index), the revocation feed and its subscribers, across real processes.

// A failed unwrap here (helpers included) is the test, bench or example failing.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use cookiestore::maintenance::{Problem, check, repair};
use cookiestore::{
    Auth, AuthContext, Connections, CookieStore, Durability, RevocationKind, StoreOptions,
    Subscriber, WatchEvent, Watcher,
};
use serde_json::json;

const NOW: u64 = FIXTURE_DAY_NS;

fn auth(authid: &str) -> Auth {
    Auth::new(authid, "user", "ticket", "realm1")
}

fn login(store: &CookieStore, authid: &str) -> String {
    let cookie = store.create("cbtid", 24, 86_400).unwrap();
    store
        .set_auth(&cookie.value, &auth(authid), &AuthContext::default())
        .unwrap();
    cookie.value
}

#[test]
fn registry_lists_connections_until_unregistered() {
    let registry = Connections::new();
    assert!(registry.connections("a").is_empty());
    registry.register("a", 1u32);
    registry.register("a", 2);
    registry.register("a", 1); // again: no duplicate
    registry.register("b", 3);
    assert_eq!(registry.connections("a"), vec![1, 2]);
    assert_eq!(registry.connections("b"), vec![3]);
    assert!(registry.unregister("a", &1));
    assert!(!registry.unregister("a", &1));
    assert!(!registry.unregister("zzz", &1));
    assert_eq!(registry.connections("a"), vec![2]);
    assert!(registry.unregister("a", &2));
    assert!(registry.connections("a").is_empty());
    assert_eq!(registry.cookies(), 1);

    // The registry never consults the store: a logged-out cookie's connections stay listed.
    let dir = tempfile::tempdir().unwrap();
    let store = CookieStore::open(dir.path(), StoreOptions::default()).unwrap();
    let value = login(&store, "alice");
    let shared = Arc::new(Connections::new());
    shared.register(&value, "conn-1".to_string());
    assert!(store.delete(&value).unwrap());
    assert_eq!(shared.connections(&value), vec!["conn-1".to_string()]);

    // Thread-safe: registrations from several threads all land.
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let shared = shared.clone();
            std::thread::spawn(move || {
                for i in 0..100 {
                    shared.register("x", format!("{t}-{i}"));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(shared.connections("x").len(), 400);
}

const MAKERS_TEST: &str =
    "logout_authid_removes_exactly_that_users_cookies_made_by_three_processes";

#[test]
fn logout_authid_removes_exactly_that_users_cookies_made_by_three_processes() {
    if child_role().as_deref() == Some("maker") {
        let path = std::env::var("LOGOUT_STORE").unwrap();
        let index: usize = std::env::var("LOGOUT_INDEX").unwrap().parse().unwrap();
        let store = CookieStore::open(&path, StoreOptions::default()).unwrap();
        let mut made = Vec::new();
        for i in 0..30 {
            let authid = match i % 3 {
                0 => "alice".to_string(),
                1 => "bob".to_string(),
                _ => format!("carol-{index}"),
            };
            made.push(json!({"value": login(&store, &authid), "authid": authid}));
        }
        // One anonymous cookie, and one that was alice's and is now dave's.
        let anon = store.create("cbtid", 24, 86_400).unwrap();
        made.push(json!({"value": anon.value, "authid": null}));
        let switched = login(&store, "alice");
        store
            .set_auth(&switched, &auth("dave"), &AuthContext::default())
            .unwrap();
        made.push(json!({"value": switched, "authid": "dave"}));
        report(&json!({"ev": "made", "cookies": made}));
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let mut children = Vec::new();
    for index in 0..3 {
        let mut cmd = child_command(MAKERS_TEST, "maker");
        cmd.env("LOGOUT_STORE", &path)
            .env("LOGOUT_INDEX", index.to_string());
        let mut child = cmd.spawn().unwrap();
        let lines = ChildLines::new(&mut child);
        children.push((child, lines));
    }
    let mut cookies: Vec<(String, Option<String>)> = Vec::new();
    for (mut child, lines) in children {
        let made = lines.wait_for("made", Duration::from_secs(120));
        wait_success(&mut child, "maker");
        for c in made["cookies"].as_array().unwrap() {
            cookies.push((
                c["value"].as_str().unwrap().to_string(),
                c["authid"].as_str().map(str::to_string),
            ));
        }
    }
    let store = CookieStore::open(&path, StoreOptions::default()).unwrap();
    let alice: BTreeSet<&str> = cookies
        .iter()
        .filter(|(_, a)| a.as_deref() == Some("alice"))
        .map(|(v, _)| v.as_str())
        .collect();
    assert_eq!(alice.len(), 30);
    let before = store.revocations_since(0).unwrap().next;

    assert_eq!(store.logout_authid("alice").unwrap(), 30);
    for (value, authid) in &cookies {
        let gone = !store.exists(value).unwrap();
        assert_eq!(
            gone,
            authid.as_deref() == Some("alice"),
            "{value} ({authid:?})"
        );
    }
    let feed = store.revocations_since(before).unwrap();
    assert!(!feed.missed);
    let revoked: BTreeSet<&str> = feed.entries.iter().map(|e| e.value.as_str()).collect();
    assert_eq!(revoked, alice);
    assert!(
        feed.entries
            .iter()
            .all(|e| e.kind == RevocationKind::Authid)
    );
    assert_eq!(store.logout_authid("alice").unwrap(), 0);
    assert_eq!(store.logout_authid("dave").unwrap(), 3);
    assert_eq!(store.logout_authid("carol-1").unwrap(), 10);
    assert_eq!(store.logout_authid("bob").unwrap(), 30);
    assert_eq!(store.count().unwrap(), 3 + 20); // anonymous + carol-0 and carol-2
    assert_clean(&store);
}

#[test]
fn logout_authid_verifies_truncated_keys() {
    let dir = tempfile::tempdir().unwrap();
    let store = CookieStore::open(dir.path(), StoreOptions::default()).unwrap();
    // Same length, same first 400 bytes: one index key prefix, two users.
    let long_a = format!("{}a", "x".repeat(499));
    let long_b = format!("{}b", "x".repeat(499));
    let a = login(&store, &long_a);
    let b = login(&store, &long_b);
    // A prefix of another authid is another user too.
    let short = login(&store, "x");
    assert_eq!(store.logout_authid(&long_a).unwrap(), 1);
    assert!(!store.exists(&a).unwrap());
    assert!(store.exists(&b).unwrap());
    assert!(store.exists(&short).unwrap());
    assert_clean(&store);
}

#[test]
fn records_of_an_authid_come_from_the_index_expired_ones_included() {
    let dir = tempfile::tempdir().unwrap();
    let (store, clock) = open_at(dir.path(), NOW);
    let long_a = format!("{}a", "x".repeat(499));
    let long_b = format!("{}b", "x".repeat(499));
    let alice: BTreeSet<String> = (0..3).map(|_| login(&store, "alice")).collect();
    let short_lived = store.create("cbtid", 24, 1).unwrap();
    store
        .set_auth(&short_lived.value, &auth("alice"), &AuthContext::default())
        .unwrap();
    login(&store, "bob");
    let a = login(&store, &long_a);
    login(&store, &long_b);
    clock.advance_secs(2);
    let found: Vec<_> = store
        .as_lmdb()
        .unwrap()
        .snapshot(|s| s.records_of_authid("alice")?.collect())
        .unwrap();
    let values: BTreeSet<String> = found.iter().map(|c| c.value.clone()).collect();
    let mut expected = alice.clone();
    expected.insert(short_lived.value.clone());
    assert_eq!(values, expected);
    assert!(found.iter().any(|c| c.is_expired(store.now_ns())));
    let long: Vec<_> = store
        .as_lmdb()
        .unwrap()
        .snapshot(|s| s.records_of_authid(&long_a)?.collect())
        .unwrap();
    assert_eq!(long.len(), 1);
    assert_eq!(long[0].value, a);
    let none: Vec<_> = store
        .as_lmdb()
        .unwrap()
        .snapshot(|s| s.records_of_authid("carol")?.collect())
        .unwrap();
    assert!(none.is_empty());

    // After a foreign write (the index may be stale) the records are walked: same answer.
    drop(store);
    with_raw_env(dir.path(), |txn, db| {
        // A write by "another program": any change without our transaction mark.
        db.put(txn, &[0xff, 0xff, 1], b"x").unwrap();
    });
    let store = CookieStore::open(dir.path(), StoreOptions::default().readonly(true)).unwrap();
    let walked: BTreeSet<String> = store
        .as_lmdb()
        .unwrap()
        .snapshot(|s| {
            s.records_of_authid("alice")?
                .map(|c| c.map(|c| c.value))
                .collect()
        })
        .unwrap();
    assert_eq!(walked, expected);
}

#[test]
fn every_logout_is_in_the_feed_in_order_and_expiry_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let (options, clock) = options_at(NOW);
    let store = CookieStore::open(dir.path(), options).unwrap();
    let feed = store.revocations_since(0).unwrap();
    assert!(feed.entries.is_empty() && !feed.missed);
    assert_eq!(feed.next, 0);

    let one = login(&store, "alice");
    let two = store.create("cbtid", 24, 86_400).unwrap();
    let three = login(&store, "bob");
    let four = login(&store, "bob");
    let short = store.create("cbtid", 24, 1).unwrap();
    assert!(store.delete(&one).unwrap());
    assert!(!store.delete(&one).unwrap()); // nothing deleted: nothing appended
    assert!(
        store
            .as_lmdb()
            .unwrap()
            .batch("by oid", |b| b.delete_oid(two.oid))
            .unwrap()
    );
    assert_eq!(store.logout_authid("bob").unwrap(), 2);
    // Expiry is not a revocation.
    clock.advance_secs(2);
    assert_eq!(store.purge_expired().unwrap(), 1);
    assert!(!store.exists(&short.value).unwrap());

    // Every change that can alter a cached answer, numbered in commit order: the three
    // logins' auth changes, the four revocations, one entry for the purge.
    let all = store.revocations_since(0).unwrap();
    let seqs: Vec<u64> = all.entries.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=8).collect::<Vec<_>>());
    assert_eq!(all.next, 8);
    use RevocationKind::*;
    let kinds: Vec<RevocationKind> = all.entries.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [Auth, Auth, Auth, Logout, Logout, Authid, Authid, Purged]
    );
    assert_eq!(all.entries[0].value, one);
    assert_eq!(all.entries[7].at_ns, NOW + 2_000_000_000);
    assert!(all.entries[7].value.is_empty() && all.entries[7].oid.is_nil());
    // The revocations among them: what closes connections.
    let revs: Vec<_> = all.entries.iter().filter(|e| e.kind.revokes()).collect();
    assert_eq!(revs.len(), 4);
    assert_eq!(revs[0].kind, RevocationKind::Logout);
    assert_eq!(revs[0].value, one);
    assert_eq!(revs[0].at_ns, NOW);
    assert_eq!(revs[1].kind, RevocationKind::Logout);
    assert_eq!(revs[1].oid, two.oid);
    assert_eq!(revs[1].value, two.value);
    let bobs: BTreeSet<&str> = revs[2..].iter().map(|e| e.value.as_str()).collect();
    assert_eq!(bobs, BTreeSet::from([three.as_str(), four.as_str()]));
    assert!(revs[2..].iter().all(|e| e.kind == RevocationKind::Authid));
    let tail = store.revocations_since(5).unwrap();
    assert_eq!(tail.entries, all.entries[5..].to_vec());
    assert_eq!(tail.next, 8);
    let none = store.revocations_since(8).unwrap();
    assert!(none.entries.is_empty() && !none.missed);
    assert_eq!(none.next, 8);

    // Maintenance: clear revokes what it deletes, then tells caches to drop everything.
    let left = store.create("cbtid", 24, 86_400).unwrap();
    assert_eq!(store.clear().unwrap(), 1);
    let feed = store.revocations_since(8).unwrap();
    let kinds: Vec<RevocationKind> = feed.entries.iter().map(|e| e.kind).collect();
    assert_eq!(kinds, [Maintenance, Flush]);
    assert_eq!(feed.entries[0].seq, 9);
    assert_eq!(feed.entries[0].value, left.value);
    assert_clean(&store);
}

#[test]
fn a_reader_behind_the_retention_window_learns_it_missed_entries() {
    let dir = tempfile::tempdir().unwrap();
    let (options, clock) = options_at(NOW);
    let store = CookieStore::open(dir.path(), options.revocation_retention_secs(600)).unwrap();
    let mut behind = Subscriber::new(&store).unwrap();
    let first = store.create("cbtid", 24, 86_400).unwrap().value;
    assert!(store.delete(&first).unwrap()); // seq 1 at NOW
    clock.advance_secs(9 * 60);
    let second = store.create("cbtid", 24, 86_400).unwrap().value;
    assert!(store.delete(&second).unwrap()); // seq 2 at NOW + 9 min
    clock.advance_secs(2 * 60); // seq 1 is 11 minutes old, seq 2 is 2
    store.purge_expired().unwrap();

    let feed = store.revocations_since(0).unwrap();
    assert!(feed.missed);
    assert_eq!(feed.entries.len(), 1);
    assert_eq!(feed.entries[0].value, second);
    let found = behind.poll().unwrap();
    assert!(found.missed);
    assert_eq!(found.entries.len(), 1);
    assert_eq!(found.entries[0].seq, 2);
    // Caught up: nothing missed any more.
    let up_to_date = store.revocations_since(1).unwrap();
    assert!(!up_to_date.missed);
    assert_eq!(up_to_date.entries.len(), 1);

    // Everything trimmed: numbering continues after the trimmed entries.
    clock.advance_secs(20 * 60);
    store.purge_expired().unwrap();
    let feed = store.revocations_since(2).unwrap();
    assert!(feed.entries.is_empty() && !feed.missed);
    assert_eq!(feed.next, 2);
    let third = store.create("cbtid", 24, 86_400).unwrap().value;
    assert!(store.delete(&third).unwrap());
    let feed = store.revocations_since(0).unwrap();
    assert!(feed.missed);
    assert_eq!(feed.entries.len(), 1);
    assert_eq!(feed.entries[0].seq, 3);
    assert_clean(&store);
}

#[test]
fn polling_with_nothing_committed_opens_no_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let store = CookieStore::open(dir.path(), StoreOptions::default()).unwrap();
    let value = login(&store, "alice");
    let mut subscriber = Subscriber::new(&store).unwrap();
    let reads = subscriber.reads();
    for _ in 0..100 {
        let found = subscriber.poll().unwrap();
        assert!(found.entries.is_empty() && !found.missed);
    }
    assert_eq!(
        subscriber.reads(),
        reads,
        "a poll with no commit opened a transaction"
    );
    // A commit that revokes nothing: one read, nothing found.
    store.create("cbtid", 24, 86_400).unwrap();
    assert!(subscriber.poll().unwrap().entries.is_empty());
    assert_eq!(subscriber.reads(), reads + 1);
    assert!(subscriber.poll().unwrap().entries.is_empty());
    assert_eq!(subscriber.reads(), reads + 1);
    // A revocation: found once.
    assert!(store.delete(&value).unwrap());
    let found = subscriber.poll().unwrap();
    assert_eq!(found.entries.len(), 1);
    assert_eq!(found.entries[0].value, value);
    assert_eq!(subscriber.reads(), reads + 2);
    assert!(subscriber.poll().unwrap().entries.is_empty());
    assert_eq!(subscriber.position(), found.next);
}

#[test]
fn check_reports_and_repair_restores_a_removed_authid_index_entry() {
    let dir = tempfile::tempdir().unwrap();
    let (value, oid, slot, state) = {
        let store = CookieStore::open(dir.path(), StoreOptions::default()).unwrap();
        let value = login(&store, "alice");
        login(&store, "bob");
        let oid = store.get(&value).unwrap().unwrap().oid;
        let slot = table_slot(&store, "4c0f7b1e-2d7a-4a8e-9b53-6f1d2c9e7a31");
        let state = table_slot(&store, "883063e6-6f4f-4c3e-82f7-63f054071b2e");
        assert_clean(&store);
        (value, oid, slot, state)
    };
    // Remove alice's entry and add one for a record that does not exist; mark the
    // transaction as cookiestore's own, so the open does not reconcile it away.
    let mut key = slot.to_be_bytes().to_vec();
    key.extend_from_slice(&5u16.to_be_bytes());
    key.extend_from_slice(b"alice");
    let mut extra = key.clone();
    key.extend_from_slice(oid.as_bytes());
    extra.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    with_raw_env(dir.path(), |txn, db| {
        assert!(db.delete(txn, &key).unwrap(), "the entry exists before");
        db.put(txn, &extra, &[]).unwrap();
        let mut mark = state.to_be_bytes().to_vec();
        mark.extend_from_slice(b"last_txn");
        let id = txn.id() as u64;
        db.put(txn, &mark, &id.to_be_bytes()).unwrap();
    });
    let store = CookieStore::open(dir.path(), StoreOptions::default()).unwrap();
    let report = check(store.as_lmdb().unwrap()).unwrap();
    assert!(!report.foreign_writes);
    let kinds: BTreeSet<&str> = report.problems.iter().map(Problem::kind).collect();
    assert_eq!(
        kinds,
        BTreeSet::from(["authid-index-missing", "authid-index-extra"]),
        "{:?}",
        report.problems
    );
    assert!(report.problems.contains(&Problem::AuthidIndexMissing {
        oid,
        authid: "alice".into()
    }));
    // Until repaired, alice's cookie is invisible to logout_authid.
    let quarantine = dir.path().join("quarantine.jsonl");
    repair(store.as_lmdb().unwrap(), &quarantine).unwrap();
    assert_clean(&store);
    assert_eq!(store.logout_authid("alice").unwrap(), 1);
    assert!(!store.exists(&value).unwrap());
}

#[test]
fn foreign_writes_are_reconciled_into_the_authid_index() {
    let dir = tempfile::tempdir().unwrap();
    let (value, oid, slot) = {
        let store = CookieStore::open(dir.path(), StoreOptions::default()).unwrap();
        let value = login(&store, "alice");
        let oid = store.get(&value).unwrap().unwrap().oid;
        (
            value,
            oid,
            table_slot(&store, "4c0f7b1e-2d7a-4a8e-9b53-6f1d2c9e7a31"),
        )
    };
    let mut key = slot.to_be_bytes().to_vec();
    key.extend_from_slice(&5u16.to_be_bytes());
    key.extend_from_slice(b"alice");
    key.extend_from_slice(oid.as_bytes());
    // A foreign writer (like cfxdb) that does not know the index.
    with_raw_env(dir.path(), |txn, db| {
        assert!(db.delete(txn, &key).unwrap());
    });
    let store = CookieStore::open(dir.path(), StoreOptions::default()).unwrap();
    assert_clean(&store);
    assert_eq!(store.logout_authid("alice").unwrap(), 1);
    assert!(!store.exists(&value).unwrap());
}

const RACE_TEST: &str = "a_subscriber_polling_through_commits_misses_no_revocation";
const RACE_ROUNDS: usize = 40;

/// The child of the race test: logs out one cookie per round, each a fully synced commit
/// (the window between LMDB writing the meta page and publishing the transaction id to
/// readers includes the disk sync), and waits for the parent's ack before the next one.
fn revoker_main() {
    let path = std::env::var("RACE_STORE").unwrap();
    let cookies: Vec<String> = std::env::var("RACE_COOKIES")
        .unwrap()
        .split(',')
        .map(str::to_string)
        .collect();
    let options = StoreOptions::default().durability(Durability::Full);
    let store = CookieStore::open(&path, options).unwrap();
    let ack = Path::new(&path).join("ack");
    for (k, value) in cookies.iter().enumerate() {
        assert!(store.delete(value).unwrap());
        report(&json!({"ev": "revoked", "k": k + 1}));
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::fs::read_to_string(&ack).ok().as_deref() != Some(&(k + 1).to_string()) {
            assert!(Instant::now() < deadline, "no ack for revocation {}", k + 1);
            std::thread::sleep(Duration::from_micros(200));
        }
    }
}

/// A subscriber that polls without pause while another process commits must see every
/// revocation once it is committed: whatever transaction id the poll remembers, it has read
/// the snapshot of that transaction (a poll that remembered the id of a commit still being
/// published, but read the snapshot before it, would skip that revocation until the next
/// commit).
#[test]
fn a_subscriber_polling_through_commits_misses_no_revocation() {
    if child_role().as_deref() == Some("revoker") {
        return revoker_main();
    }
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let path = dir.path().to_path_buf();
    let store = CookieStore::open(&path, StoreOptions::default()).unwrap();
    let cookies: Vec<String> = (0..RACE_ROUNDS)
        .map(|_| store.create("cbtid", 24, 86_400).unwrap().value)
        .collect();
    let seen = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let poller = {
        let (seen, stop) = (seen.clone(), stop.clone());
        let mut subscriber = Subscriber::new(&store).unwrap();
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let found = subscriber.poll().unwrap();
                assert!(!found.missed);
                seen.fetch_add(found.entries.len(), std::sync::atomic::Ordering::SeqCst);
            }
        })
    };
    let mut cmd = child_command(RACE_TEST, "revoker");
    cmd.env("RACE_STORE", &path)
        .env("RACE_COOKIES", cookies.join(","));
    let mut child = cmd.spawn().unwrap();
    let lines = ChildLines::new(&mut child);
    for k in 1..=RACE_ROUNDS {
        let report = lines.wait_for("revoked", Duration::from_secs(120));
        assert_eq!(report["k"], k);
        let deadline = Instant::now() + Duration::from_secs(5);
        while seen.load(std::sync::atomic::Ordering::SeqCst) < k {
            assert!(
                Instant::now() < deadline,
                "revocation {k} was committed but the polling subscriber never saw it"
            );
            std::thread::sleep(Duration::from_micros(100));
        }
        assert_eq!(seen.load(std::sync::atomic::Ordering::SeqCst), k);
        std::fs::write(path.join("ack"), k.to_string()).unwrap();
    }
    wait_success(&mut child, "revoker");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    poller.join().unwrap();
}

const WATCH_TEST: &str = "a_logout_in_one_worker_reaches_the_connections_of_every_worker";
const WORKERS: usize = 4;

fn watcher_main() {
    let path = std::env::var("WATCH_STORE").unwrap();
    let index: usize = std::env::var("WATCH_INDEX").unwrap().parse().unwrap();
    let cookies: Vec<String> = std::env::var("WATCH_COOKIES")
        .unwrap()
        .split(',')
        .map(str::to_string)
        .collect();
    let store = CookieStore::open(&path, StoreOptions::default()).unwrap();
    let registry = Arc::new(Connections::new());
    for (c, value) in cookies.iter().enumerate() {
        for j in 0..2 {
            registry.register(value, format!("w{index}-c{c}-{j}"));
        }
    }
    let seen: Arc<Mutex<(BTreeSet<String>, u32, bool)>> = Default::default();
    let sink = seen.clone();
    let _watcher = Watcher::spawn(&store, registry, Watcher::DEFAULT_INTERVAL, move |event| {
        let mut seen = sink.lock().unwrap();
        match event {
            WatchEvent::Revoked { connections, .. } => {
                seen.0.extend(connections);
                seen.1 += 1;
            }
            WatchEvent::Missed => seen.2 = true,
            other => panic!("watcher: {other:?}"),
        }
    })
    .unwrap();
    report(&json!({"ev": "ready"}));
    if index == 0 {
        let go = Path::new(&path).join("go");
        let deadline = Instant::now() + Duration::from_secs(120);
        while !go.exists() {
            assert!(Instant::now() < deadline, "never told to go");
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(store.delete(&cookies[0]).unwrap());
        assert_eq!(store.logout_authid("alice").unwrap(), 2);
        report(&json!({"ev": "logged-out"}));
    }
    // Wait (bounded, generously) until the 6 connections of the 3 revoked cookies are seen.
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.lock().unwrap().0.len() < 6 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    // A few more intervals: anything wrongly revoked would show up too.
    std::thread::sleep(Watcher::DEFAULT_INTERVAL * 3);
    let seen = seen.lock().unwrap();
    report(&json!({"ev": "seen", "connections": seen.0, "events": seen.1, "missed": seen.2}));
}

#[test]
fn a_logout_in_one_worker_reaches_the_connections_of_every_worker() {
    if child_role().as_deref() == Some("watcher") {
        return watcher_main();
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let cookies = {
        let store = CookieStore::open(&path, StoreOptions::default()).unwrap();
        vec![
            store.create("cbtid", 24, 86_400).unwrap().value, // logged out by value
            login(&store, "alice"),
            login(&store, "alice"),
            login(&store, "bob"),                             // stays
            store.create("cbtid", 24, 86_400).unwrap().value, // stays
        ]
    };
    let mut children = Vec::new();
    for index in 0..WORKERS {
        let mut cmd = child_command(WATCH_TEST, "watcher");
        cmd.env("WATCH_STORE", &path)
            .env("WATCH_INDEX", index.to_string())
            .env("WATCH_COOKIES", cookies.join(","));
        let mut child = cmd.spawn().unwrap();
        let lines = ChildLines::new(&mut child);
        children.push((child, lines));
    }
    for (_, lines) in &children {
        lines.wait_for("ready", Duration::from_secs(120));
    }
    std::fs::write(path.join("go"), b"").unwrap();
    children[0]
        .1
        .wait_for("logged-out", Duration::from_secs(120));
    for (index, (mut child, lines)) in children.into_iter().enumerate() {
        let seen = lines.wait_for("seen", Duration::from_secs(120));
        wait_success(&mut child, "watcher");
        let got: BTreeSet<String> = seen["connections"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        let expected: BTreeSet<String> = (0..3)
            .flat_map(|c| (0..2).map(move |j| format!("w{index}-c{c}-{j}")))
            .collect();
        assert_eq!(got, expected, "worker {index}");
        assert_eq!(seen["missed"], false, "worker {index}");
    }
    let store = CookieStore::open(&path, StoreOptions::default()).unwrap();
    assert_eq!(store.count().unwrap(), 2);
    assert_clean(&store);
}

const CRASH_TEST: &str = "a_logout_authid_killed_midway_removes_all_or_none";
const VICTIM_COOKIES: usize = 10_000;

#[test]
fn a_logout_authid_killed_midway_removes_all_or_none() {
    if child_role().as_deref() == Some("logout") {
        let path = std::env::var("CRASH_STORE").unwrap();
        let store = CookieStore::open(&path, StoreOptions::default()).unwrap();
        report(&json!({"ev": "start"}));
        let n = store.logout_authid("victim").unwrap();
        report(&json!({"ev": "done", "n": n}));
        return;
    }
    use rand::RngExt;
    let mut rng = rand::rng();
    let mut outcomes = BTreeSet::new();
    for trial in 0..4 {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        {
            let store = CookieStore::open(&path, StoreOptions::default().sync(false)).unwrap();
            store
                .as_lmdb()
                .unwrap()
                .batch("make the victim's cookies", |b| {
                    for _ in 0..VICTIM_COOKIES {
                        let c = b.create("cbtid", 24, 86_400)?;
                        b.set_auth(&c.value, &auth("victim"), &AuthContext::default())?;
                    }
                    for _ in 0..10 {
                        let c = b.create("cbtid", 24, 86_400)?;
                        b.set_auth(&c.value, &auth("bystander"), &AuthContext::default())?;
                    }
                    Ok(())
                })
                .unwrap();
        }
        let mut cmd = child_command(CRASH_TEST, "logout");
        cmd.env("CRASH_STORE", &path);
        let mut child = cmd.spawn().unwrap();
        let lines = ChildLines::new(&mut child);
        lines.wait_for("start", Duration::from_secs(120));
        // Trial 0 kills at once, the others at a random moment of the logout.
        if trial > 0 {
            std::thread::sleep(Duration::from_micros(rng.random_range(0..1_500_000)));
        }
        child.kill().unwrap(); // SIGKILL
        let status = child.wait().unwrap();
        let done = lines.next_timeout(Duration::from_millis(200));

        let store = CookieStore::open(&path, StoreOptions::default()).unwrap();
        assert_clean(&store);
        let left = store.count().unwrap() as usize - 10;
        let mut feed = store.revocations_since(0).unwrap();
        feed.entries.retain(|e| e.kind.revokes()); // not the logins' auth entries
        assert!(
            left == VICTIM_COOKIES || left == 0,
            "trial {trial}: {left} of the victim's cookies left ({status})"
        );
        assert_eq!(feed.entries.len(), VICTIM_COOKIES - left, "trial {trial}");
        if done.is_some_and(|d| d["ev"] == "done") {
            assert_eq!(
                left, 0,
                "trial {trial}: reported done, yet cookies are left"
            );
        }
        // Finishing the job afterwards removes exactly what is left.
        assert_eq!(store.logout_authid("victim").unwrap() as usize, left);
        assert_eq!(store.count().unwrap(), 10);
        outcomes.insert(left);
    }
    eprintln!("crash: outcomes (victim cookies left after the kill): {outcomes:?}");
}
