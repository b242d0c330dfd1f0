//! A Redis store through an outage of its Redis, on a real redis-server: a call waits for
//! Redis at most `timeout_ms` in total, and after a failure the store's circuit breaker
//! refuses every call at once while one background probe waits for Redis to come back; a
//! lazy open succeeds while Redis is down, and reports its open-time refusals at the first
//! call; a logout during an outage fails loudly; the watcher reports the outage once and
//! sees logouts made after it; connections Redis closes are replaced, no outage. Each test runs its own redis-server on a free loopback port
//! (skipped with a message when redis-server is missing, except under CI).
//!
//! The bounds on time below check that a call does not wait (for a timeout, for a hung
//! Redis), with generous margins; they are not speed measurements (`benches/redis.rs` has
//! those).

// A failed unwrap here (helpers included) is the test, bench or example failing.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::redis_server::{RedisServer, free_port, need_redis, wait_available};
use common::{ChildLines, child_command, child_role, need, report, wait_success};
use cookiestore::{
    Auth, AuthContext, Connections, CookieStore, Error, StoreOptions, Subscriber, Tracker,
    TrackerConfig, WatchEvent, Watcher,
};
use serde_json::json;

const TIMEOUT_MS: u64 = 2000;
const TIMEOUT: Duration = Duration::from_millis(TIMEOUT_MS);

fn options() -> StoreOptions {
    StoreOptions::default().timeout_ms(TIMEOUT_MS)
}

fn lazily() -> StoreOptions {
    options().connect_lazily(true)
}

fn alice() -> Auth {
    Auth::new("alice", "user", "wampcra", "realm1")
}

fn url_on(port: u16) -> String {
    format!("redis://127.0.0.1:{port}/")
}

/// The problem of an `Error::Unavailable`; panics on anything else.
fn unavailable<T: std::fmt::Debug>(what: &str, result: Result<T, Error>) -> String {
    match result {
        Err(Error::Unavailable { problem, .. }) => problem,
        other => panic!("{what}: expected Error::Unavailable, got {other:?}"),
    }
}

/// Waits (at most 20 s) until `store` reports an outage.
fn wait_unavailable(store: &CookieStore) {
    let started = Instant::now();
    while store.health().available {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no outage reported within 20 s"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Makes 100 `exists` calls; asserts each is refused as unavailable and says so; returns how
/// long the 100 took.
fn hundred_refused(store: &CookieStore, value: &str) -> Duration {
    let started = Instant::now();
    for i in 0..100 {
        let problem = unavailable(&format!("call {i}"), store.exists(value));
        assert!(
            problem.contains("refused at once") && problem.contains("retrying in the background"),
            "{problem}"
        );
    }
    started.elapsed()
}

#[test]
fn a_hung_redis_costs_the_first_call_one_timeout_and_the_next_calls_nothing() {
    if !need_redis() {
        return;
    }
    let server = RedisServer::start();
    let store = CookieStore::open(server.url(""), options()).unwrap();
    let c = store.create("cbtid", 24, 600).unwrap();
    assert!(store.exists(&c.value).unwrap()); // a pooled connection exists
    server.pause(); // accepts connections, answers nothing
    let started = Instant::now();
    let problem = unavailable("the first call", store.get_auth(&c.value));
    let first = started.elapsed();
    assert!(problem.contains("timeout"), "{problem}");
    assert!(
        first < TIMEOUT + Duration::from_secs(1),
        "the first call waited {first:?}, more than the timeout of {TIMEOUT:?}"
    );
    let health = store.health();
    assert!(!health.available, "{health:?}");
    assert_eq!(health.outages, 1);
    assert!(
        health.since.is_some() && health.until.is_none(),
        "{health:?}"
    );
    assert!(
        health.problem.as_deref().unwrap().contains("timeout"),
        "{health:?}"
    );
    // The next 100 calls wait for nothing: together well under one timeout.
    let hundred = hundred_refused(&store, &c.value);
    assert!(
        hundred < TIMEOUT,
        "100 calls while the breaker is open took {hundred:?}: they waited for Redis"
    );
    assert!(store.health().refused >= 100, "{:?}", store.health());
    // A write too, and the tracker.
    let tracker = Tracker::new(store.clone(), TrackerConfig::default()).unwrap();
    unavailable("create", store.create("cbtid", 24, 600));
    unavailable("track", tracker.track(None));
    server.resume();
    let back = wait_available(&store);
    eprintln!("first call {first:?}, 100 refused calls {hundred:?}, back {back:?} after SIGCONT");
    assert!(store.exists(&c.value).unwrap());
    store
        .set_auth(&c.value, &alice(), &AuthContext::default())
        .unwrap();
    let health = store.health();
    assert!(health.available, "{health:?}");
    assert_eq!(health.outages, 1);
    assert!(health.until.is_some(), "{health:?}");
}

/// A call that has to make a new connection to a hung Redis (one that accepts connections
/// and answers nothing) waits one timeout, as a call on a pooled connection does. redis-rs
/// reads each reply of its handshake pipeline (`AUTH`, `SELECT`, `CLIENT SETINFO` twice)
/// with the whole remaining time, and a read that times out does not end the pipeline: with
/// a password and database 1, such a call waited 4 timeouts (8 s here), without them 2.
#[test]
fn a_new_connection_to_a_hung_redis_costs_one_timeout() {
    if !need_redis() {
        return;
    }
    let server = RedisServer::start();
    assert_eq!(
        server.command(&["CONFIG", "SET", "requirepass", "hung-secret"]),
        "+OK"
    );
    // redis://:hung-secret@127.0.0.1:PORT/1
    let url = format!(
        "{}1",
        server
            .url("")
            .replacen("redis://", "redis://:hung-secret@", 1)
    );
    // Opened lazily: no connection is made before the server hangs.
    let store = CookieStore::open(url.as_str(), lazily()).unwrap();
    server.pause();
    let calls: Vec<_> = (0..3)
        .map(|_| {
            let store = store.clone();
            std::thread::spawn(move || {
                let started = Instant::now();
                let result = store.get_auth("x23456789012345678901234");
                (started.elapsed(), result)
            })
        })
        .collect();
    for call in calls {
        let (took, result) = call.join().unwrap();
        let problem = unavailable("a call making a new connection", result);
        assert!(!problem.contains("hung-secret"), "{problem}");
        assert!(
            took < TIMEOUT + Duration::from_secs(1),
            "a call making a new connection to a hung Redis waited {took:?}, more than the \
             timeout of {TIMEOUT:?}: {problem}"
        );
    }
    server.resume();
}

#[test]
fn a_killed_redis_restarted_on_the_same_port_serves_again_and_the_watcher_sees_later_logouts() {
    if !need_redis() {
        return;
    }
    let mut server = RedisServer::start_with(true); // AOF: the cookies survive the restart
    let store = CookieStore::open(server.url(""), options()).unwrap();
    let c1 = store.create("cbtid", 24, 600).unwrap();
    let c2 = store.create("cbtid", 24, 600).unwrap();
    let registry = Arc::new(Connections::new());
    registry.register(&c1.value, 1u32);
    registry.register(&c2.value, 2u32);
    let (tx, rx) = std::sync::mpsc::channel();
    let _watcher = Watcher::spawn(&store, registry, Duration::from_millis(50), move |event| {
        let _ = tx.send(match event {
            WatchEvent::Revoked { connections, .. } => json!({"revoked": connections}),
            WatchEvent::Missed => json!("missed"),
            WatchEvent::Failed(e) => json!({"failed": e.to_string()}),
            _ => json!("other"),
        });
    })
    .unwrap();
    store.delete(&c1.value).unwrap();
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(10)).unwrap(),
        json!({"revoked": [1]})
    );
    server.kill();
    // Connection refused: the first call fails, the breaker opens, the next calls are
    // refused without a connection attempt.
    wait_unavailable(&store);
    hundred_refused(&store, &c2.value);
    // The outage lasts a while: the watcher reports it once, not at every interval.
    std::thread::sleep(Duration::from_millis(1500));
    server.restart();
    wait_available(&store);
    store.delete(&c2.value).unwrap();
    let mut failures = 0;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let event = rx
            .recv_timeout(left)
            .expect("the watcher reports the logout made after the restart");
        if event.get("failed").is_some() {
            failures += 1;
            continue;
        }
        assert_eq!(event, json!({"revoked": [2]}), "nothing missed: AOF");
        break;
    }
    assert_eq!(failures, 1, "the outage is reported once");
    let health = store.health();
    assert!(health.available && health.outages == 1, "{health:?}");
}

#[test]
fn connections_closed_by_redis_are_no_outage() {
    if !need_redis() {
        return;
    }
    // Every kind of connection a store keeps: pooled ones, the cache's tracking connection,
    // the watcher's subscription. Redis closes them all (as `CLIENT KILL`, a proxy's idle
    // timeout, a Redis `timeout` do); the store replaces each at its next use, and no call
    // is refused, no outage begins, the watcher reports nothing but the logout after.
    let server = RedisServer::start();
    let store = CookieStore::open(server.url(""), options().redis_cache_bytes(1 << 20)).unwrap();
    let c1 = store.create("cbtid", 24, 600).unwrap();
    let c2 = store.create("cbtid", 24, 600).unwrap();
    let registry = Arc::new(Connections::new());
    registry.register(&c2.value, 2u32);
    let (tx, rx) = std::sync::mpsc::channel();
    let _watcher = Watcher::spawn(&store, registry, Duration::from_millis(50), move |event| {
        let _ = tx.send(match event {
            WatchEvent::Revoked { connections, .. } => json!({"revoked": connections}),
            WatchEvent::Missed => json!("missed"),
            WatchEvent::Failed(e) => json!({"failed": e.to_string()}),
            _ => json!("other"),
        });
    })
    .unwrap();
    assert!(store.lookup(&c1.value).unwrap().is_some());
    assert!(store.lookup(&c1.value).unwrap().is_some());
    assert!(store.cache_stats().hits >= 1, "{:?}", store.cache_stats());
    // The watcher's subscription has lasted long enough to be made again without a report.
    std::thread::sleep(Duration::from_millis(1200));
    for kind in ["normal", "pubsub"] {
        let reply = server.command(&["CLIENT", "KILL", "TYPE", kind]);
        assert!(reply.starts_with(':') && reply != ":0", "{kind}: {reply}");
    }
    for _ in 0..3 {
        assert!(store.lookup(&c1.value).unwrap().is_some());
        assert!(store.exists(&c2.value).unwrap());
    }
    store.delete(&c2.value).unwrap();
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(10)).unwrap(),
        json!({"revoked": [2]}),
        "the watcher reports the logout, and nothing before it"
    );
    let health = store.health();
    assert!(health.available && health.outages == 0, "{health:?}");
    assert!(store.cache_stats().hits >= 2, "{:?}", store.cache_stats());
}

/// The client side of the established TCP connections to loopback `port`, from
/// /proc/net/tcp: each one's timer (`tr`: 2 is keepalive, or a delayed ACK for a moment)
/// and the clock ticks (USER_HZ, 100 a second) until it fires.
fn connections_to(port: u16) -> Vec<(u8, u64)> {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let port = format!(":{port:04X}");
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (remote, state, timer) = (fields.get(2)?, fields.get(3)?, fields.get(5)?);
            if !remote.ends_with(&port) || *state != "01" {
                return None;
            }
            let (tr, when) = timer.split_once(':')?;
            Some((
                u8::from_str_radix(tr, 16).ok()?,
                u64::from_str_radix(when, 16).ok()?,
            ))
        })
        .collect()
}

#[test]
fn idle_connections_send_keepalive_probes() {
    if !need_redis()
        || !need(
            std::path::Path::new("/proc/net/tcp").exists(),
            "no /proc/net/tcp to read the connections' timers from (Linux only)",
        )
    {
        return;
    }
    // An idle pooled connection and the watcher's subscription: both have the keepalive
    // timer armed, due within a minute (not a delayed ACK's fraction of a second), so that
    // load balancers and NAT tables that forget idle flows keep theirs.
    let server = RedisServer::start();
    let store = CookieStore::open(server.url(""), options()).unwrap();
    let c = store.create("cbtid", 24, 600).unwrap();
    let _watcher = Watcher::spawn(
        &store,
        Arc::new(Connections::new()),
        Duration::from_secs(2),
        |_: WatchEvent<u32>| {},
    )
    .unwrap();
    assert!(store.exists(&c.value).unwrap());
    std::thread::sleep(Duration::from_millis(500));
    let connections = connections_to(server.port);
    assert!(connections.len() >= 2, "{connections:?}");
    for (timer, ticks) in &connections {
        assert_eq!(*timer, 2, "no keepalive timer: {connections:?}");
        assert!(
            (10 * 100..=61 * 100).contains(ticks),
            "the keepalive probe is not due within 60 s: {connections:?}"
        );
    }
}

#[test]
fn after_recovery_a_failing_call_opens_the_breaker_again() {
    if !need_redis() {
        return;
    }
    let mut server = RedisServer::start();
    let store = CookieStore::open(server.url(""), options()).unwrap();
    let c = store.create("cbtid", 24, 600).unwrap();
    server.kill();
    unavailable("during the first outage", store.exists(&c.value));
    assert!(!store.health().available);
    // Closed by the probe once Redis answers again.
    server.restart();
    wait_available(&store);
    let d = store.create("cbtid", 24, 600).unwrap();
    let health = store.health();
    assert_eq!((health.available, health.outages), (true, 1), "{health:?}");
    let first_until = health.until.expect("the outage ended");
    // Open again at the next failure, a second outage.
    server.kill();
    unavailable("during the second outage", store.exists(&d.value));
    let health = store.health();
    assert_eq!((health.available, health.outages), (false, 2), "{health:?}");
    assert!(health.until.is_none() && health.since.unwrap() >= first_until);
    let problem = unavailable("refused", store.exists(&d.value));
    assert!(problem.contains("refused at once"), "{problem}");
    server.restart();
    wait_available(&store);
    assert!(store.create("cbtid", 24, 600).is_ok());
    assert_eq!(store.health().outages, 2);
}

#[test]
fn a_logout_during_an_outage_is_an_error_and_applies_nothing() {
    if !need_redis() {
        return;
    }
    let mut server = RedisServer::start_with(true);
    let store = CookieStore::open(server.url(""), options()).unwrap();
    let tracker = Tracker::new(store.clone(), TrackerConfig::default()).unwrap();
    let c = store.create("cbtid", 24, 600).unwrap();
    store
        .set_auth(&c.value, &alice(), &AuthContext::default())
        .unwrap();
    // Hung: the first logout times out, the next ones are refused at once.
    server.pause();
    unavailable("delete (hung)", store.delete(&c.value));
    unavailable("delete (breaker open)", store.delete(&c.value));
    unavailable("logout_authid", store.logout_authid("alice"));
    unavailable("tracker.logout", tracker.logout(&c.value));
    server.resume();
    wait_available(&store);
    // Killed: the same.
    server.kill();
    unavailable("delete (killed)", store.delete(&c.value));
    unavailable("logout_authid (killed)", store.logout_authid("alice"));
    server.restart();
    wait_available(&store);
    // None of them was applied.
    assert_eq!(store.get_auth(&c.value).unwrap(), Some(alice()));
    assert!(store.revocations_since(0).unwrap().entries.is_empty());
    assert!(store.delete(&c.value).unwrap());
}

#[test]
fn a_lazy_open_does_not_wait_for_a_hung_address() {
    // Accepts connections (the kernel's backlog) and never answers, as a hung Redis.
    let hung = TcpListener::bind(("127.0.0.1", 0)).unwrap();
    let url = url_on(hung.local_addr().unwrap().port());
    let started = Instant::now();
    let store = CookieStore::open(&url, lazily()).unwrap();
    let opened = started.elapsed();
    assert!(
        opened < TIMEOUT / 2,
        "the lazy open took {opened:?}: it waited for Redis"
    );
    // The background connection finds it hung: an outage, without any call.
    wait_unavailable(&store);
    let health = store.health();
    assert!(
        health.problem.as_deref().unwrap().contains("timeout"),
        "{health:?}"
    );
    unavailable("exists", store.exists("x"));
    // An eager open waits for the timeout and fails.
    let started = Instant::now();
    let err = CookieStore::open(&url, options()).unwrap_err();
    assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
    assert!(started.elapsed() >= TIMEOUT / 2, "{:?}", started.elapsed());
}

#[test]
fn a_lazy_open_succeeds_while_redis_is_down_and_works_once_it_starts() {
    if !need_redis() {
        return;
    }
    let port = free_port(); // nothing listens there yet
    let store = CookieStore::open(url_on(port), lazily()).unwrap();
    // A subscriber and a watcher can be made while Redis is down.
    let mut subscriber = Subscriber::new(&store).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let registry = Arc::new(Connections::new());
    let _watcher = Watcher::spawn(&store, registry.clone(), Duration::from_millis(50), {
        move |event| {
            let _ = tx.send(match event {
                WatchEvent::Revoked { connections, .. } => json!({"revoked": connections}),
                WatchEvent::Missed => json!("missed"),
                WatchEvent::Failed(e) => json!({"failed": e.to_string()}),
                _ => json!("other"),
            });
        }
    })
    .unwrap();
    wait_unavailable(&store);
    unavailable("create", store.create("cbtid", 24, 600));
    unavailable("poll", subscriber.poll());
    let failed = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(failed.get("failed").is_some(), "{failed}");

    let _server = RedisServer::start_config_on(port, false, &[]);
    wait_available(&store);
    // The watcher's first poll that reaches Redis starts at the end of the feed and says
    // that it may have missed revocations (a connection may have been made meanwhile).
    let mut events = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !events.contains(&json!("missed")) {
        let left = deadline.saturating_duration_since(Instant::now());
        events.push(
            rx.recv_timeout(left)
                .unwrap_or_else(|_| panic!("the watcher reported {events:?}")),
        );
    }
    let c = store.create("cbtid", 24, 600).unwrap();
    assert!(store.exists(&c.value).unwrap());
    registry.register(&c.value, 7u32);
    // The subscriber made while Redis was down starts now, and says that it may have
    // missed revocations.
    let first = subscriber.poll().unwrap();
    assert!(first.missed && first.entries.is_empty(), "{first:?}");
    store.delete(&c.value).unwrap();
    let next = subscriber.poll().unwrap();
    assert!(!next.missed, "{next:?}");
    assert_eq!(next.entries.len(), 1);
    assert_eq!(next.entries[0].value, c.value);
    // The watcher then reports the logout.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !events.contains(&json!({"revoked": [7]})) {
        let left = deadline.saturating_duration_since(Instant::now());
        events.push(
            rx.recv_timeout(left)
                .unwrap_or_else(|_| panic!("the watcher reported {events:?}")),
        );
    }
    assert!(
        events.iter().all(|e| e.get("failed").is_none()),
        "the outage was reported once: {events:?}"
    );
}

#[test]
fn a_lazy_open_reports_an_evicting_redis_at_the_first_call_and_sees_the_fix() {
    if !need_redis() {
        return;
    }
    let port = free_port();
    let store = CookieStore::open(url_on(port), lazily()).unwrap();
    let server = RedisServer::start_config_on(
        port,
        false,
        &["--maxmemory", "64mb", "--maxmemory-policy", "allkeys-lru"],
    );
    // Once Redis is reached, every call is refused with the setting's error.
    let started = Instant::now();
    let err = loop {
        match store.create("cbtid", 24, 600) {
            Err(Error::Unavailable { .. }) => {
                assert!(started.elapsed() < Duration::from_secs(20), "never reached");
                std::thread::sleep(Duration::from_millis(10));
            }
            other => break other.unwrap_err(),
        }
    };
    match &err {
        Error::RedisSetting {
            setting, problem, ..
        } => {
            assert_eq!(setting, "maxmemory-policy");
            assert!(problem.contains("allkeys-lru"), "{problem}");
        }
        other => panic!("expected RedisSetting, got {other:?}"),
    }
    assert!(matches!(store.exists("x"), Err(Error::RedisSetting { .. })));
    let health = store.health();
    assert!(!health.available, "{health:?}");
    assert!(
        health
            .problem
            .as_deref()
            .unwrap()
            .contains("maxmemory-policy"),
        "{health:?}"
    );
    // Fixed on the running Redis: seen without a restart (the checks run again).
    assert!(
        server
            .command(&["CONFIG", "SET", "maxmemory-policy", "noeviction"])
            .starts_with("+OK")
    );
    let started = Instant::now();
    let c = loop {
        match store.create("cbtid", 24, 600) {
            Ok(c) => break c,
            Err(Error::RedisSetting { .. }) => {
                assert!(
                    started.elapsed() < Duration::from_secs(20),
                    "never re-checked"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("{e:?}"),
        }
    };
    assert!(store.exists(&c.value).unwrap());
    let health = store.health();
    assert!(health.available && health.until.is_some(), "{health:?}");
}

#[test]
fn a_lazy_open_reports_a_newer_store_at_the_first_call() {
    if !need_redis() {
        return;
    }
    let server = RedisServer::start();
    assert!(
        server
            .command(&["SET", "feature_level", "999"])
            .starts_with("+OK")
    );
    let store = CookieStore::open(server.url(""), lazily()).unwrap();
    match store.create("cbtid", 24, 600) {
        Err(Error::NewerStore { needed: 999, .. }) => {}
        other => panic!("expected NewerStore, got {other:?}"),
    }
    assert!(matches!(store.exists("x"), Err(Error::NewerStore { .. })));
    // A read-only handle checks nothing and reads.
    let reader = CookieStore::open(server.url(""), lazily().readonly(true)).unwrap();
    assert!(!reader.exists("x").unwrap());
    // The eager open refuses at once, as before.
    assert!(matches!(
        CookieStore::open(server.url(""), options()),
        Err(Error::NewerStore { .. })
    ));
}

/// The names (`comm`, at most 15 bytes) of this process's threads.
fn thread_names() -> Vec<String> {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|n| n.trim().to_string())
        .collect()
}

fn probes() -> usize {
    thread_names()
        .iter()
        .filter(|n| *n == "cookiestore-pro")
        .count()
}

/// The probe threads once there are `n` (a thread names itself after it starts), or after
/// 10 s.
fn probes_soon(n: usize) -> usize {
    let started = Instant::now();
    while probes() != n && started.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(5));
    }
    probes()
}

const PROBE_TEST: &str = "the_probe_runs_only_during_an_outage_and_ends_with_the_last_handle";

#[test]
fn the_probe_runs_only_during_an_outage_and_ends_with_the_last_handle() {
    if child_role().is_some() {
        return probe_alone();
    }
    if !need(
        std::path::Path::new("/proc/self/task").exists(),
        "no /proc/self/task to list the process's threads (Linux's procfs)",
    ) {
        return;
    }
    // Alone in a process of its own: other tests' probes are not counted.
    let mut child = child_command(PROBE_TEST, "alone").spawn().unwrap();
    let lines = ChildLines::new(&mut child);
    let done = lines.wait_for("done", Duration::from_secs(60));
    wait_success(&mut child, "the probe test's process");
    assert_eq!(done["during"], 1, "{done}");
    assert_eq!(done["after_drop"], 0, "{done}");
}

fn probe_alone() {
    let port = free_port();
    let store = CookieStore::open(url_on(port), lazily()).unwrap();
    let clone = store.clone();
    wait_unavailable(&store);
    unavailable("exists", clone.exists("x"));
    let during = probes_soon(1);
    drop(store);
    unavailable("exists on the clone", clone.exists("x")); // still refused at once
    drop(clone);
    // The probe is woken and ends.
    let after_drop = probes_soon(0);
    report(&json!({"ev": "done", "during": during, "after_drop": after_drop}));
}
