//! The per-process cache on Redis (`redis_cache_bytes`, `src/redis/tracking.rs`): a change
//! made by any handle or process is never answered from an older entry once the change's
//! call returned; a restarted Redis or a flushed database empties the cache; the cache
//! answers without a round trip. Each test runs its own redis-server on a free loopback port
//! (skipped with a message when redis-server is missing, except under CI).

// A failed unwrap here (helpers included) is the test, bench or example failing.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::redis_server::{RedisServer, need_redis};
use common::{ChildLines, KillOnDrop, child_command, child_role, report, stress, wait_success};
use cookiestore::{Auth, AuthContext, CookieStore, StoreOptions};
use rand::RngExt;
use serde_json::json;

const BUDGET: u64 = 8 << 20;

fn auth(authid: &str, role: &str) -> Auth {
    Auth::new(authid, role, "ticket", "realm1")
}

fn cached_store(url: &str) -> CookieStore {
    CookieStore::open(url, StoreOptions::default().redis_cache_bytes(BUDGET)).unwrap()
}

fn login(store: &CookieStore, authid: &str) -> String {
    let c = store.create("cbtid", 24, 3600).unwrap();
    store
        .set_auth(&c.value, &auth(authid, "user"), &AuthContext::default())
        .unwrap();
    c.value
}

/// What a lookup answers, as comparable fields.
type Answer = Option<(uuid::Uuid, u64, Option<Auth>)>;

fn answer(store: &CookieStore, value: &str) -> Answer {
    store
        .lookup(value)
        .unwrap()
        .map(|l| (l.oid, l.expires_at, l.auth))
}

/// The role a lookup answers for the live, authenticated cookie `value`.
fn role(store: &CookieStore, value: &str) -> Option<String> {
    answer(store, value)
        .expect("the cookie lives")
        .2
        .expect("it is authenticated")
        .authrole
}

fn raw(server: &RedisServer) -> redis::Connection {
    redis::Client::open(server.url(""))
        .unwrap()
        .get_connection_with_timeout(Duration::from_secs(5))
        .unwrap()
}

/// Reads `value` into the reader's cache and checks that a next lookup is a hit. Within 5
/// tries: a lookup made while the drainer thread renews the lease, or after this thread was
/// descheduled past the lease (18 ms; one CI run under load), reads Redis instead.
fn warm(reader: &CookieStore, value: &str) {
    answer(reader, value);
    let hit = (0..5).any(|_| {
        let hits = reader.cache_stats().hits;
        answer(reader, value);
        reader.cache_stats().hits == hits + 1
    });
    assert!(
        hit,
        "5 lookups of {value} in a row: none answered from the cache"
    );
}

#[test]
fn every_change_is_seen_as_soon_as_its_call_returned() {
    if !need_redis() {
        return;
    }
    let server = RedisServer::start();
    let url = server.url("");
    let reader = cached_store(&url);
    // The writer has no cache of its own: the reader's cache learns of its changes from
    // Redis alone.
    let writer = CookieStore::open(&url, StoreOptions::default()).unwrap();
    let ctx = AuthContext::default();
    for round in 0..20 {
        // A role change.
        let value = login(&writer, "alice");
        warm(&reader, &value);
        writer
            .set_auth(&value, &auth("alice", "admin"), &ctx)
            .unwrap();
        assert_eq!(
            role(&reader, &value).as_deref(),
            Some("admin"),
            "round {round}: the role change was answered from an older entry"
        );
        // Its authentication cleared.
        warm(&reader, &value);
        writer.clear_auth(&value).unwrap();
        assert_eq!(answer(&reader, &value).unwrap().2, None, "round {round}");
        // A logout.
        warm(&reader, &value);
        assert!(writer.delete(&value).unwrap());
        assert_eq!(answer(&reader, &value), None, "round {round}: logout");
        assert!(!reader.exists(&value).unwrap());
        // A restore (merge) of the cookie with another role: maintenance waits out the
        // lease too.
        let value = login(&writer, "carol");
        let mut restored = writer.get(&value).unwrap().unwrap();
        restored.authrole = Some("restored".into());
        let line = serde_json::to_string(&restored).unwrap() + "\n";
        warm(&reader, &value);
        let summary =
            cookiestore::maintenance::restore(&writer, &mut line.as_bytes(), true, &mut |_| {})
                .unwrap();
        assert_eq!(summary.replaced, 1, "round {round}");
        assert_eq!(
            role(&reader, &value).as_deref(),
            Some("restored"),
            "round {round}: the restore was answered from an older entry"
        );
        // Every cookie of an authid.
        let values: Vec<String> = (0..3).map(|_| login(&writer, "bob")).collect();
        for v in &values {
            warm(&reader, v);
        }
        assert_eq!(writer.logout_authid("bob").unwrap(), 3);
        for v in &values {
            assert_eq!(
                reader.get_auth(v).unwrap(),
                None,
                "round {round}: authid logout"
            );
        }
    }
    let stats = reader.cache_stats();
    assert!(stats.hits >= 20 * 8 && stats.invalidated > 0, "{stats:?}");
}

#[test]
fn a_flushed_database_and_a_restarted_redis_empty_the_cache() {
    if !need_redis() {
        return;
    }
    let mut server = RedisServer::start_with(true);
    let url = server.url("");
    let reader = cached_store(&url);
    let value = login(&reader, "alice");
    warm(&reader, &value);
    // FLUSHALL by another program: Redis's null invalidation empties the cache.
    let _: () = redis::cmd("FLUSHALL").query(&mut raw(&server)).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        answer(&reader, &value),
        None,
        "a flushed cookie was answered"
    );
    // A restart (kill, AOF brings the cookie back), then the cookie deleted by another
    // program before this process renews: the lost tracking connection empties the cache.
    let value = login(&reader, "alice");
    warm(&reader, &value);
    server.kill();
    server.restart();
    let _: () = redis::cmd("DEL")
        .arg(format!("cookie:{value}"))
        .query(&mut raw(&server))
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match reader.lookup(&value) {
            Ok(found) => {
                assert_eq!(found, None, "a cookie deleted after a restart was answered");
                break;
            }
            // The breaker may still be open from the restart.
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => panic!("Redis did not come back: {e}"),
        }
    }
    assert!(reader.cache_stats().flushes >= 2);
}

#[test]
fn a_hit_makes_no_round_trip() {
    if !need_redis() {
        return;
    }
    let server = RedisServer::start();
    let reader = cached_store(&server.url(""));
    let value = login(&reader, "alice");
    warm(&reader, &value);
    let calls = |server: &RedisServer| -> u64 {
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query(&mut raw(server))
            .unwrap();
        info.lines()
            .filter(|l| l.starts_with("cmdstat_get:"))
            .filter_map(|l| {
                l.split("calls=")
                    .nth(1)?
                    .split(',')
                    .next()?
                    .parse::<u64>()
                    .ok()
            })
            .sum()
    };
    let before = calls(&server);
    for _ in 0..1000 {
        assert!(reader.exists(&value).unwrap());
    }
    let gets = calls(&server) - before;
    // Lease renewals are GETs of the lease key: one per 18 ms at most.
    assert!(
        gets < 100,
        "1000 cached lookups made {gets} GETs (one per lookup would be 1000)"
    );
}

#[test]
fn an_idle_process_reads_its_invalidations_all_the_same() {
    if !need_redis() {
        return;
    }
    let server = RedisServer::start();
    let url = server.url("");
    let reader = cached_store(&url);
    let writer = CookieStore::open(&url, StoreOptions::default()).unwrap();
    let value = login(&writer, "alice");
    warm(&reader, &value);
    assert!(writer.delete(&value).unwrap());
    // No lookup from here on: the reader's drainer reads the message within about a second,
    // so that Redis does not keep it (and every later one) for an idle process.
    let deadline = Instant::now() + Duration::from_secs(10);
    while reader.cache_stats().invalidated == 0 {
        assert!(
            Instant::now() < deadline,
            "an idle process never read its invalidations: {:?}",
            reader.cache_stats()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(reader.cache_stats().entries, 0);
    assert_eq!(answer(&reader, &value), None);
}

#[test]
fn a_hung_redis_costs_a_cached_lookup_one_timeout_and_the_next_nothing() {
    if !need_redis() {
        return;
    }
    const TIMEOUT: Duration = Duration::from_millis(2000);
    let server = RedisServer::start();
    let options = StoreOptions::default()
        .redis_cache_bytes(BUDGET)
        .timeout_ms(TIMEOUT.as_millis() as u64);
    let store = CookieStore::open(server.url(""), options).unwrap();
    let value = login(&store, "alice");
    warm(&store, &value);
    server.pause(); // accepts connections, answers nothing
    std::thread::sleep(Duration::from_millis(50)); // past the lease: the next lookup renews
    let started = Instant::now();
    let first = store.get_auth(&value);
    let took = started.elapsed();
    assert!(
        matches!(first, Err(cookiestore::Error::Unavailable { .. })),
        "{first:?}"
    );
    // The renewal and the read share the call's deadline: one timeout, not two.
    assert!(
        took < TIMEOUT + Duration::from_millis(900),
        "the first lookup waited {took:?}, more than the timeout of {TIMEOUT:?}"
    );
    let started = Instant::now();
    for _ in 0..100 {
        assert!(store.exists(&value).is_err());
    }
    let hundred = started.elapsed();
    assert!(
        hundred < TIMEOUT,
        "100 lookups while the breaker is open took {hundred:?}: they waited for Redis"
    );
    assert!(store.stats().is_err());
    server.resume();
}

#[test]
fn on_a_replica_the_cache_does_not_answer_and_says_why() {
    if !need_redis() {
        return;
    }
    let master = RedisServer::start();
    let port = master.port.to_string();
    let replica = RedisServer::start_config(false, &["--replicaof", "127.0.0.1", &port]);
    let writer = CookieStore::open(master.url(""), StoreOptions::default()).unwrap();
    let value = login(&writer, "alice");
    let reader = CookieStore::open(
        replica.url(""),
        StoreOptions::default()
            .redis_cache_bytes(BUDGET)
            .readonly(true),
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !reader.exists(&value).unwrap() {
        assert!(
            Instant::now() < deadline,
            "the replica never got the cookie"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    for _ in 0..10 {
        assert_eq!(reader.get_auth(&value).unwrap().unwrap().authid, "alice");
    }
    // A replica learns of writes late (by replication): its tracking is not trusted.
    assert_eq!(reader.cache_stats().hits, 0, "{:?}", reader.cache_stats());
    let problem = reader
        .stats()
        .unwrap()
        .redis
        .unwrap()
        .cache_problem
        .unwrap();
    assert!(problem.contains("not a master"), "{problem}");
}

// ---- processes write while this one reads through its cache ----

const RACE_TEST: &str = "cached_answers_equal_fresh_reads_once_every_write_returned";

/// A writer process: logins, role changes, clears, logouts and authid logouts until told
/// to stop. Around each write it counts, in Redis, writes started and writes returned, so
/// that a reader can tell when no write is in flight.
fn writer_main() {
    let url = std::env::var("RACE_URL").unwrap();
    let store = CookieStore::open(&url, StoreOptions::default()).unwrap();
    let mut con = redis::Client::open(url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let mut rng = rand::rng();
    let authids = ["alice", "bob", "carol", "dave"];
    let mut values: Vec<String> = Vec::new();
    let mut ops = 0u64;
    report(&json!({"ev": "ready"}));
    loop {
        let stop: Option<String> = redis::cmd("GET").arg("test:stop").query(&mut con).unwrap();
        if stop.is_some() {
            break;
        }
        let _: u64 = redis::cmd("INCR")
            .arg("test:started")
            .query(&mut con)
            .unwrap();
        let authid = authids[rng.random_range(0..authids.len())];
        let value = (!values.is_empty()).then(|| values[rng.random_range(0..values.len())].clone());
        match (rng.random_range(0..100), value) {
            (0..35, Some(v)) => {
                let role = ["user", "admin", "guest"][rng.random_range(0..3)];
                let auth = auth(authid, role).with_authextra(json!({"n": rng.random_range(0..99)}));
                store.set_auth(&v, &auth, &AuthContext::default()).unwrap();
            }
            (35..45, Some(v)) => {
                store.clear_auth(&v).unwrap();
            }
            (45..60, Some(v)) => {
                store.delete(&v).unwrap();
            }
            (60..65, _) => {
                store.logout_authid(authid).unwrap();
            }
            _ => {
                let c = store.create("cbtid", 24, 3600).unwrap();
                values.push(c.value);
            }
        }
        let _: u64 = redis::cmd("INCR")
            .arg("test:returned")
            .query(&mut con)
            .unwrap();
        ops += 1;
        if values.len() > 200 {
            values.drain(..100);
        }
        std::thread::sleep(Duration::from_millis(rng.random_range(0..60)));
    }
    report(&json!({"ev": "done", "ops": ops}));
}

#[test]
fn cached_answers_equal_fresh_reads_once_every_write_returned() {
    if child_role().as_deref() == Some("writer") {
        return writer_main();
    }
    if !need_redis() {
        return;
    }
    let server = RedisServer::start();
    let url = server.url("");
    let store = cached_store(&url);
    // Fresh reads: a handle without a cache.
    let fresh = CookieStore::open(&url, StoreOptions::default()).unwrap();
    let mut children = KillOnDrop(Vec::new());
    let mut reports = Vec::new();
    for _ in 0..2 {
        let mut cmd = child_command(RACE_TEST, "writer");
        cmd.env("RACE_URL", &url);
        let mut child = cmd.spawn().unwrap();
        let lines = ChildLines::new(&mut child);
        children.0.push(child);
        lines.wait_for("ready", Duration::from_secs(120));
        reports.push(lines);
    }
    let seconds = 4 * stress().min(4);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    // Two reader threads share the process's cache.
    let reader = |store: &CookieStore| {
        let mut con = raw(&server);
        let (mut compared, mut raced) = (0u64, 0u64);
        let mut rng = rand::rng();
        let mut values: Vec<String> = Vec::new();
        let mut round = 0u64;
        let in_flight = |con: &mut redis::Connection| -> (u64, u64) {
            let (s, r): (Option<u64>, Option<u64>) = redis::cmd("MGET")
                .arg("test:started")
                .arg("test:returned")
                .query(con)
                .unwrap();
            (s.unwrap_or(0), r.unwrap_or(0))
        };
        while Instant::now() < deadline {
            if round.is_multiple_of(50) {
                let keys: Vec<String> = redis::cmd("KEYS").arg("cookie:*").query(&mut con).unwrap();
                values = keys
                    .iter()
                    .filter_map(|k| k.strip_prefix("cookie:").map(str::to_string))
                    .collect();
                values.push("never-issued-value".into());
            }
            round += 1;
            let value = &values[rng.random_range(0..values.len())];
            // Bracket the cached answer: when every write started had returned before it and
            // none started until after the fresh read, both must agree.
            let before = in_flight(&mut con);
            let cached = answer(store, value);
            let expected = answer(&fresh, value);
            let after = in_flight(&mut con);
            if before.0 == before.1 && after == before {
                compared += 1;
                assert_eq!(
                    cached,
                    expected,
                    "the cache answered differently from Redis for {value} with no write in \
                     flight ({:?})",
                    store.cache_stats()
                );
            } else {
                raced += 1;
            }
        }
        (compared, raced)
    };
    let second = store.with_clock(Arc::new(cookiestore::SystemClock));
    let ((c1, r1), (c2, r2)) = std::thread::scope(|scope| {
        let other = scope.spawn(|| reader(&second));
        let mine = reader(&store);
        (mine, other.join().expect("the second reader"))
    });
    let (compared, raced) = (c1 + c2, r1 + r2);
    let _: () = redis::cmd("SET")
        .arg("test:stop")
        .arg(1)
        .query(&mut raw(&server))
        .unwrap();
    let mut ops = 0;
    for (child, lines) in children.0.iter_mut().zip(reports) {
        let done = lines.wait_for("done", Duration::from_secs(120));
        ops += done["ops"].as_u64().unwrap();
        wait_success(child, "writer");
    }
    let stats = store.cache_stats();
    eprintln!(
        "redis cache race: {compared} answers compared, {raced} raced a write, {ops} writes \
         by other processes; {stats:?} (hit rate {:.2})",
        stats.hit_rate()
    );
    assert!(compared >= 500, "only {compared} answers could be compared");
    assert!(ops >= 50, "the other processes wrote only {ops} times");
    assert!(stats.hits > 0 && stats.invalidated > 0, "{stats:?}");
}
