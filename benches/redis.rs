//! Redis against LMDB in the same run: lookups and logins per second, one client and 8
//! concurrent clients, on stores of 10,000 cookies. Redis runs as a private redis-server on
//! a free loopback port without persistence (`--save "" --appendonly no`), so the figures are
//! the network round trips and Redis's work, not disk. Skipped with a message when
//! redis-server is missing.
//!
//! ```text
//! cargo bench --bench redis               # criterion groups, then the 8-client table
//! cargo bench --bench redis -- --test     # smoke: each bench once
//! ```
//!
//! A lookup is `Tracker::track` with a known cookie (LMDB: one read transaction; Redis: one
//! GET; Redis with `redis_cache_bytes`: a hit of this process's cache, which holds all
//! 10,000, and a lease renewal round trip every 18 ms). A login is `track(None)` (a new cookie) followed by `authenticate` (LMDB: two write
//! transactions, fsync off here; Redis: SET NX, then GET + the compare-and-set script).
//! No public call takes a batch on Redis, so nothing here is pipelined.
//!
//! The group `outage` compares a call refused by an open circuit breaker (a store whose
//! Redis is down) with a round trip to the running Redis.
//!
//! Last, `logout_authid` of a user without cookies on Redis: the user's set is missing, so
//! every cookie is walked (SCAN + MGET per 1,000), which is also what each `logout_authid`
//! costs with `allow_eviction`; the time per call and the number of cookies are printed.

// A failed unwrap here (helpers included) is the test, bench or example failing.
#![allow(clippy::unwrap_used)]

#[path = "../tests/common/redis_server.rs"]
#[allow(dead_code)]
mod redis_server;

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cookiestore::{Auth, AuthContext, CookieStore, StoreOptions, Tracker, TrackerConfig};
use criterion::Criterion;

use redis_server::{RedisServer, free_port, redis_server_exists};

/// Cookies in each store before measuring.
const COOKIES: usize = 10_000;
/// Concurrent clients of the threaded measurement.
const CLIENTS: usize = 8;

/// For `redis_server::need_redis` (not used: the bench skips with a message itself).
#[allow(dead_code)]
fn need(cond: bool, _why: &str) -> bool {
    cond
}

struct Backend {
    name: &'static str,
    tracker: Tracker,
    headers: Vec<String>,
}

fn fill(name: &'static str, tracker: Tracker) -> Backend {
    let headers = (0..COOKIES)
        .map(|_| format!("cbtid={}", tracker.track(None).unwrap().value))
        .collect();
    Backend {
        name,
        tracker,
        headers,
    }
}

fn login(tracker: &Tracker, auth: &Auth) {
    let tracked = tracker.track(None).unwrap();
    tracker
        .authenticate(&tracked.value, auth, &AuthContext::default())
        .unwrap();
}

/// Operations per second of `CLIENTS` threads doing `op` for `secs`.
fn concurrent(backend: &Backend, secs: f64, op: fn(&Backend, usize)) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + Duration::from_secs_f64(secs);
    std::thread::scope(|s| {
        for t in 0..CLIENTS {
            let done = done.clone();
            s.spawn(move || {
                let mut i = t * 997;
                while Instant::now() < until {
                    op(backend, i);
                    i += 1;
                    done.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    });
    done.load(Ordering::Relaxed) as f64 / secs
}

fn lookup_op(b: &Backend, i: usize) {
    let header = &b.headers[i % b.headers.len()];
    black_box(b.tracker.track(Some(header.as_bytes())).unwrap());
}

fn login_op(b: &Backend, _: usize) {
    login(&b.tracker, &Auth::new("alice", "user", "wampcra", "realm1"));
}

fn main() {
    if !redis_server_exists() {
        eprintln!("skipping the Redis benchmarks: redis-server is not installed");
        return;
    }
    let test_mode = std::env::args().any(|a| a == "--test");
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let config = TrackerConfig::default();
    let lmdb = fill(
        "lmdb",
        Tracker::open(
            dir.path(),
            StoreOptions::default().sync(false),
            config.clone(),
        )
        .unwrap(),
    );
    let redis = fill(
        "redis",
        Tracker::open(server.url("bench:"), StoreOptions::default(), config).unwrap(),
    );
    // The same Redis with this process's cache (`redis_cache_bytes`), under a prefix of its
    // own: once a process caches, logins and logouts under its prefix wait out the lease.
    let cached = fill(
        "redis, cached",
        Tracker::open(
            server.url("benchc:"),
            StoreOptions::default().redis_cache_bytes(64 << 20),
            TrackerConfig::default(),
        )
        .unwrap(),
    );
    let backends = [lmdb, redis, cached];

    let mut c = Criterion::default().configure_from_args();
    let auth = Auth::new("alice", "user", "wampcra", "realm1");
    for op in ["lookup", "login"] {
        let mut group = c.benchmark_group(op);
        group.measurement_time(Duration::from_secs(3));
        // A cached login waits out the lease (20 ms): the table below has its rate.
        for b in backends
            .iter()
            .filter(|b| op == "lookup" || b.name != "redis, cached")
        {
            let mut i = 0usize;
            group.bench_function(b.name, |bench| {
                bench.iter(|| {
                    i += 1;
                    match op {
                        "lookup" => lookup_op(b, i),
                        _ => login(&b.tracker, &auth),
                    }
                })
            });
        }
        group.finish();
    }
    // What a call costs while the store's circuit breaker is open (Redis down: refused at
    // once, no network) against a round trip to the running Redis, in the same run.
    {
        let down = CookieStore::open(
            format!("redis://127.0.0.1:{}/", free_port()),
            StoreOptions::default().connect_lazily(true),
        )
        .unwrap();
        while down.health().available {
            let _ = down.exists("x");
            std::thread::sleep(Duration::from_millis(5));
        }
        let up = backends[1].tracker.store().clone();
        let mut group = c.benchmark_group("outage");
        group.measurement_time(Duration::from_secs(3));
        group.bench_function("exists, round trip", |bench| {
            bench.iter(|| black_box(up.exists("nosuchvalue").unwrap()))
        });
        group.bench_function("exists, breaker open", |bench| {
            bench.iter(|| black_box(down.exists("nosuchvalue").unwrap_err()))
        });
        group.finish();
    }
    c.final_summary();

    let secs = if test_mode { 0.2 } else { 3.0 };
    let mut table = String::from(
        "| operation | backend | 1 client (op/s) | 8 clients (op/s) |\n|---|---|---|---|\n",
    );
    for (op, f) in [
        ("lookup", lookup_op as fn(&Backend, usize)),
        ("login", login_op),
    ] {
        for b in &backends {
            let single = {
                let until = Instant::now() + Duration::from_secs_f64(secs);
                let mut n = 0usize;
                while Instant::now() < until {
                    f(b, n);
                    n += 1;
                }
                n as f64 / secs
            };
            let many = concurrent(b, secs, f);
            table.push_str(&format!(
                "| {op} | {} | {single:.0} | {many:.0} |\n",
                b.name
            ));
        }
    }
    let store = backends[1].tracker.store();
    let cookies = store.count().unwrap();
    let mut times: Vec<Duration> = (0..if test_mode { 1 } else { 5 })
        .map(|_| {
            let start = Instant::now();
            assert_eq!(store.logout_authid("nobody").unwrap(), 0);
            start.elapsed()
        })
        .collect();
    times.sort();
    table.push_str(&format!(
        "\nlogout_authid walking {cookies} Redis cookies (no set): median {:.1} ms\n",
        times[times.len() / 2].as_secs_f64() * 1e3
    ));
    println!("\n{table}");
    let _ = std::fs::create_dir_all("target");
    let _ = std::fs::write("target/bench-redis.md", &table);
    drop(server);
}
