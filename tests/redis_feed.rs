//! The Redis revocation feed when Redis loses or rewinds its history: restarted without
//! persistence, restarted from an older RDB snapshot or AOF copy, flushed, its stream
//! deleted or trimmed, failed over to a replica that lagged. After each, a subscriber or
//! watcher either receives every revocation committed after its position, or is told that
//! it missed some (`missed`, `WatchEvent::Missed`). Each test runs its own redis-server on a
//! free loopback port (skipped with a message when redis-server is missing, except under
//! CI).

// A failed unwrap here (helpers included) is the test, bench or example failing.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::redis_server::{RedisServer, need_redis};
use cookiestore::{
    Auth, AuthContext, Connections, CookieStore, Revocations, StoreOptions, Subscriber, WatchEvent,
    Watcher,
};

const PREFIX: &str = "feed:";

fn open(server: &RedisServer) -> CookieStore {
    CookieStore::open(server.url(PREFIX), StoreOptions::default().timeout_ms(2000)).unwrap()
}

/// Creates `n` cookies and logs each out; returns their values.
fn logouts(store: &CookieStore, n: usize) -> Vec<String> {
    (0..n)
        .map(|_| {
            let c = store.create("cbtid", 24, 3600).unwrap();
            assert!(store.delete(&c.value).unwrap());
            c.value
        })
        .collect()
}

/// The requirement: every one of `committed` is among the entries, or `missed` is set.
fn assert_all_or_missed(found: &Revocations, committed: &[String], case: &str) {
    let seen: HashSet<&str> = found.entries.iter().map(|e| e.value.as_str()).collect();
    let lost: Vec<&String> = committed
        .iter()
        .filter(|v| !seen.contains(v.as_str()))
        .collect();
    assert!(
        found.missed || lost.is_empty(),
        "{case}: {} of {} revocations committed after the subscriber's position were not \
         delivered, and missed is false (seqs delivered: {:?})",
        lost.len(),
        committed.len(),
        found.entries.iter().map(|e| e.seq).collect::<Vec<_>>()
    );
}

/// After a reported miss the subscriber reads on normally: no second miss, and the next
/// logout arrives.
fn reads_on(sub: &mut Subscriber, store: &CookieStore) {
    let again = sub.poll().unwrap();
    assert!(!again.missed, "a miss is reported once: {again:?}");
    assert!(again.entries.is_empty(), "{again:?}");
    let next = logouts(store, 1);
    let found = sub.poll().unwrap();
    assert!(!found.missed, "{found:?}");
    let values: Vec<&str> = found.entries.iter().map(|e| e.value.as_str()).collect();
    assert_eq!(values, [next[0].as_str()]);
}

#[test]
fn restart_without_persistence_is_missed() {
    if !need_redis() {
        return;
    }
    let mut server = RedisServer::start();
    let store = open(&server);
    logouts(&store, 3);
    let mut sub = Subscriber::new(&store).unwrap();
    assert_eq!(sub.position(), 3);
    logouts(&store, 2); // lost with the restart, never read
    server.kill();
    server.restart(); // empty: no RDB, no AOF
    // More logouts than the subscriber's position: the new feed passes it.
    let after = logouts(&store, 7);
    let found = sub.poll().unwrap();
    assert_all_or_missed(&found, &after, "restart without persistence");
    assert!(found.missed, "{found:?}");
    reads_on(&mut sub, &store);
}

#[test]
fn restart_from_an_older_rdb_snapshot_is_missed() {
    if !need_redis() {
        return;
    }
    let mut server = RedisServer::start();
    let store = open(&server);
    logouts(&store, 1);
    server.save(); // dump.rdb: the feed ends at 1
    logouts(&store, 3);
    let mut sub = Subscriber::new(&store).unwrap();
    assert_eq!(sub.position(), 4);
    server.kill(); // SIGKILL: no save; the restart loads the older dump.rdb
    server.restart();
    assert_eq!(store.revocations_since(0).unwrap().next, 1, "rolled back");
    let after = logouts(&store, 4); // seqs 2..5 again, other cookies
    let found = sub.poll().unwrap();
    assert_all_or_missed(&found, &after, "RDB rollback");
    assert!(found.missed, "{found:?}");
    reads_on(&mut sub, &store);
}

#[test]
fn rdb_rollback_to_the_same_length_is_missed() {
    if !need_redis() {
        return;
    }
    let mut server = RedisServer::start();
    let store = open(&server);
    logouts(&store, 1);
    server.save();
    logouts(&store, 2);
    let mut sub = Subscriber::new(&store).unwrap();
    assert_eq!(sub.position(), 3);
    server.kill();
    server.restart();
    // The feed grows back to exactly the subscriber's position, with other entries.
    let after = logouts(&store, 2);
    let found = sub.poll().unwrap();
    assert_all_or_missed(&found, &after, "RDB rollback to the same length");
    assert!(found.missed, "{found:?}");
    reads_on(&mut sub, &store);
}

#[test]
fn rdb_rollback_and_a_logout_by_authid_reach_the_watcher() {
    if !need_redis() {
        return;
    }
    let mut server = RedisServer::start();
    let store = open(&server);
    let alice = Auth::new("alice", "user", "wampcra", "realm1");
    let registry = Arc::new(Connections::new());
    let mut alices = Vec::new();
    for handle in 1..=4u32 {
        let c = store.create("cbtid", 24, 3600).unwrap();
        store
            .set_auth(&c.value, &alice, &AuthContext::default())
            .unwrap();
        registry.register(&c.value, handle);
        alices.push(c.value);
    }
    logouts(&store, 1);
    server.save(); // alice's 4 cookies, the feed at 1
    let interval = Duration::from_secs(5);
    let (tx, rx) = std::sync::mpsc::channel();
    let watcher = Watcher::spawn(&open(&server), registry, interval, move |event| {
        let _ = tx.send(event);
    })
    .unwrap();
    logouts(&store, 3); // seqs 2..4, read by the watcher
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut handed = 0;
    while handed < 3 {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(WatchEvent::Revoked { revocations, .. }) => handed += revocations.len(),
            Ok(other) => panic!("before the crash: {other:?}"),
            Err(_) => panic!("the watcher did not read the 3 logouts within 20 s"),
        }
    }
    server.kill();
    // The watcher reports the outage once, then waits for its store's breaker to close
    // (the probe finds Redis back): it polls again before or after the logout below.
    match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(WatchEvent::Failed(_)) => {}
        other => panic!("expected the watcher to fail while Redis is down: {other:?}"),
    }
    server.restart(); // from dump.rdb: the feed is back at 1
    assert_eq!(store.logout_authid("alice").unwrap(), 4); // seqs 2..5 again
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut missed = false;
    let mut connections = HashSet::new();
    while !(missed && connections.len() == 4) {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(WatchEvent::Missed) => missed = true,
            Ok(WatchEvent::Revoked {
                connections: handles,
                ..
            }) => connections.extend(handles),
            Ok(WatchEvent::Failed(_)) => {}
            Ok(other) => panic!("{other:?}"),
            Err(_) => break,
        }
    }
    drop(watcher);
    assert!(
        missed || connections.len() == 4,
        "after the rollback the watcher handed over {connections:?} of alice's 4 \
         connections and reported no miss"
    );
    assert!(missed, "the rollback is reported");
}

#[test]
fn restart_from_an_older_aof_copy_is_missed() {
    if !need_redis() {
        return;
    }
    let mut server = RedisServer::start_with(true);
    let store = open(&server);
    logouts(&store, 1);
    let backup = tempfile::tempdir().unwrap();
    server.copy_data(backup.path()); // the AOF with the feed at 1
    logouts(&store, 3);
    let mut sub = Subscriber::new(&store).unwrap();
    assert_eq!(sub.position(), 4);
    server.kill();
    server.replace_data(backup.path());
    server.restart();
    assert_eq!(store.revocations_since(0).unwrap().next, 1, "rolled back");
    let after = logouts(&store, 5);
    let found = sub.poll().unwrap();
    assert_all_or_missed(&found, &after, "AOF rollback");
    assert!(found.missed, "{found:?}");
    reads_on(&mut sub, &store);
}

#[test]
fn flushall_is_missed() {
    if !need_redis() {
        return;
    }
    let server = RedisServer::start();
    let store = open(&server);
    logouts(&store, 3);
    let mut sub = Subscriber::new(&store).unwrap();
    assert_eq!(server.command(&["FLUSHALL"]), "+OK");
    let after = logouts(&store, 5);
    let found = sub.poll().unwrap();
    assert_all_or_missed(&found, &after, "FLUSHALL");
    assert!(found.missed, "{found:?}");
    reads_on(&mut sub, &store);
}

#[test]
fn a_deleted_stream_is_missed() {
    if !need_redis() {
        return;
    }
    let server = RedisServer::start();
    let store = open(&server);
    logouts(&store, 3);
    let mut sub = Subscriber::new(&store).unwrap();
    let stream = format!("{PREFIX}revocations");
    assert_eq!(server.command(&["DEL", &stream]), ":1");
    let after = logouts(&store, 5);
    let found = sub.poll().unwrap();
    assert_all_or_missed(&found, &after, "stream deleted");
    assert!(found.missed, "{found:?}");
    reads_on(&mut sub, &store);
    // Deleted again with nothing appended since: the subscriber is past the feed's end.
    let position = sub.position();
    assert_eq!(server.command(&["DEL", &stream]), ":1");
    let found = sub.poll().unwrap();
    assert!(found.missed, "{found:?}");
    assert!(position > 0);
    reads_on(&mut sub, &store);
}

#[test]
fn a_trimmed_stream_is_missed() {
    if !need_redis() {
        return;
    }
    let server = RedisServer::start();
    let store = open(&server);
    logouts(&store, 1);
    let mut sub = Subscriber::new(&store).unwrap();
    let after = logouts(&store, 4);
    let stream = format!("{PREFIX}revocations");
    // Trimmed by hand to its last entry: entries 2..4 are gone before they were read.
    assert_eq!(server.command(&["XTRIM", &stream, "MAXLEN", "1"]), ":4");
    let found = sub.poll().unwrap();
    assert_all_or_missed(&found, &after, "trimmed");
    assert!(found.missed, "{found:?}");
    reads_on(&mut sub, &store);
    // Trimmed to nothing, then appended to: the new entries follow the old ones.
    assert_eq!(server.command(&["XTRIM", &stream, "MAXLEN", "0"]), ":2");
    let after = logouts(&store, 2);
    let found = sub.poll().unwrap();
    assert!(
        !found.missed,
        "nothing after the position was trimmed: {found:?}"
    );
    let values: Vec<&String> = found.entries.iter().map(|e| &e.value).collect();
    assert_eq!(values, after.iter().collect::<Vec<_>>());
}

#[test]
fn failover_to_a_lagging_replica_is_missed() {
    if !need_redis() {
        return;
    }
    let mut primary = RedisServer::start();
    let store = open(&primary);
    logouts(&store, 1);
    let port = primary.port.to_string();
    let replica = RedisServer::start_config(false, &["--replicaof", "127.0.0.1", &port]);
    let stream = format!("{PREFIX}revocations");
    let deadline = Instant::now() + Duration::from_secs(30);
    while replica.command(&["XLEN", &stream]) != ":1" {
        assert!(
            Instant::now() < deadline,
            "the replica did not sync within 30 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // The replica stops following here: it lags from now on.
    assert_eq!(replica.command(&["REPLICAOF", "NO", "ONE"]), "+OK");
    logouts(&store, 3);
    let mut sub = Subscriber::new(&store).unwrap();
    assert_eq!(sub.position(), 4);
    // Failover: the replica's data takes the primary's place (as a moved address would).
    primary.kill();
    replica.save();
    let taken = tempfile::tempdir().unwrap();
    std::fs::copy(
        replica.dir.path().join("dump.rdb"),
        taken.path().join("dump.rdb"),
    )
    .unwrap();
    primary.replace_data(taken.path());
    primary.restart();
    assert_eq!(
        store.revocations_since(0).unwrap().next,
        1,
        "the replica's feed"
    );
    let after = logouts(&store, 4);
    let found = sub.poll().unwrap();
    assert_all_or_missed(&found, &after, "failover to a lagging replica");
    assert!(found.missed, "{found:?}");
    reads_on(&mut sub, &store);
}

#[test]
fn a_rollback_behind_the_readers_position_is_no_miss() {
    if !need_redis() {
        return;
    }
    let mut server = RedisServer::start();
    let store = open(&server);
    logouts(&store, 2);
    let mut sub = Subscriber::new(&store).unwrap();
    let kept = logouts(&store, 1);
    server.save(); // the feed at 3: the subscriber's entry 2 is in it
    logouts(&store, 2); // 4 and 5, lost before anyone read them
    server.kill();
    server.restart();
    let after = logouts(&store, 2); // 4 and 5 again
    let found = sub.poll().unwrap();
    assert!(
        !found.missed,
        "nothing the subscriber read was lost: {found:?}"
    );
    let values: Vec<&String> = found.entries.iter().map(|e| &e.value).collect();
    let expected: Vec<&String> = kept.iter().chain(&after).collect();
    assert_eq!(values, expected);
}

#[test]
fn a_read_of_several_batches_is_no_miss() {
    if !need_redis() {
        return;
    }
    let server = RedisServer::start();
    let store = open(&server);
    let mut sub = Subscriber::new(&store).unwrap();
    // More entries than one round trip reads (10,000), each appended by its own script.
    for _ in 0..10_005 {
        store.create("cbtid", 24, 3600).unwrap();
    }
    assert_eq!(store.clear().unwrap(), 10_005);
    let found = sub.poll().unwrap();
    assert!(!found.missed, "{:?}", found.next);
    let seqs: Vec<u64> = found.entries.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=10_005).collect::<Vec<u64>>());
    reads_on(&mut sub, &store);
}
