//! Failover with Redis Sentinel (tests/common/sentinel.rs: a master, a replica and three
//! sentinels on loopback). A store on `redis+sentinel://` keeps logging in, authenticating
//! and logging out while the master is killed (SIGKILL): its calls fail while the sentinels
//! elect the replica, then succeed on the new master, and every logout acknowledged after
//! the failover is seen by another process. A master demoted under the store's pooled
//! connections, by the sentinels or behind their back, is left for the new one; a hung
//! sentinel leaves time for the next. And `min_replicas_acked`: a logout or an
//! authentication change waits for the replica, and says so when it did not get there.
//! Sentinels with a password are in redis_sentinel_auth.rs, over TLS in
//! redis_sentinel_tls.rs.
//!
//! Skipped with a message when redis-server is missing (except under CI). The failover's
//! duration is printed (run with `--nocapture`), not asserted: docs/redis.md gives the
//! figure measured.

// A failed unwrap here (helpers included) is the test failing.
#![allow(clippy::unwrap_used)]

mod common;
#[path = "common/sentinel.rs"]
mod sentinel;

use std::time::{Duration, Instant};

use common::redis_server::need_redis;
use common::{ChildLines, child_command, child_role, report, wait_success};
use cookiestore::{AuthContext, AuthUpdate, CookieStore, Error, StoreOptions};
use sentinel::{
    MASTER, Sentinels, alice, assert_the_next_cycle_reaches, connect, cycle, manual_failover,
    master_and_replica, wait_until,
};
use serde_json::json;

/// One login cycle's outcome, as the looping thread saw it.
struct Cycle {
    at: Instant,
    /// The value logged out, when the whole cycle succeeded (the logout acknowledged).
    logged_out: Option<String>,
}

const FAILOVER_TEST: &str = "logins_resume_after_the_master_is_killed";

#[test]
fn logins_resume_after_the_master_is_killed() {
    if child_role().as_deref() == Some("checker") {
        // Another process: which of the values logged out are still there?
        let url = std::env::var("SENTINEL_URL").unwrap();
        let values = std::fs::read_to_string(std::env::var("LOGGED_OUT_FILE").unwrap()).unwrap();
        let store = CookieStore::open(url.as_str(), StoreOptions::default()).unwrap();
        let alive: Vec<&str> = values
            .split(',')
            .filter(|v| !v.is_empty() && store.exists(v).unwrap())
            .collect();
        report(&json!({"ev": "checked", "alive": alive, "count": values.split(',').count()}));
        return;
    }
    if !need_redis() {
        return;
    }
    let (mut master, replica) = master_and_replica();
    let sentinels = Sentinels::start(master.port);
    assert_eq!(sentinels.master_port(), master.port);
    let url = sentinels.url();
    let store = CookieStore::open(url.as_str(), StoreOptions::default().timeout_ms(1000)).unwrap();
    assert!(cycle(&store).is_some(), "a cycle before the failover");

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let looping = {
        let stop = stop.clone();
        let store = store.clone();
        std::thread::spawn(move || {
            let mut cycles = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let logged_out = cycle(&store);
                if logged_out.is_none() {
                    std::thread::sleep(Duration::from_millis(10));
                }
                cycles.push(Cycle {
                    at: Instant::now(),
                    logged_out,
                });
            }
            cycles
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    let killed = Instant::now();
    master.kill();
    wait_until("the sentinels promote the replica", || {
        sentinels.master_port() == replica.port
    });
    let promoted = killed.elapsed();
    // Until the store has done 200 cycles on the new master (or 60 s passed).
    let started = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let done = store.health().available && started.elapsed() > Duration::from_secs(2);
        if done || started.elapsed() > Duration::from_secs(60) {
            break;
        }
    }
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let cycles = looping.join().unwrap();

    let first_failure = cycles
        .iter()
        .position(|c| c.logged_out.is_none())
        .expect("killing the master failed no call");
    let recovered = cycles[first_failure..]
        .iter()
        .position(|c| c.logged_out.is_some())
        .map(|i| first_failure + i)
        .expect("no cycle succeeded after the failover");
    let after: Vec<String> = cycles[recovered..]
        .iter()
        .filter_map(|c| c.logged_out.clone())
        .collect();
    let failed_after = cycles[recovered..]
        .iter()
        .filter(|c| c.logged_out.is_none())
        .count();
    let window = cycles[recovered].at - cycles[first_failure].at;
    println!(
        "failover: master killed; sentinels promoted the replica after {promoted:?}; \
         cycles failed for {window:?} (from first failure to first success), {} before the \
         kill ok, {} ok after, {failed_after} failed after",
        first_failure,
        after.len()
    );
    assert!(
        after.len() >= 10,
        "only {} cycles after the failover",
        after.len()
    );
    assert_eq!(failed_after, 0, "calls failed again after the failover");

    // Every logout acknowledged after the failover, seen by another process.
    // The values in a file: thousands of them are more than an environment variable may
    // hold (128 KiB).
    let values_dir = tempfile::tempdir().unwrap();
    let values_file = values_dir.path().join("values");
    std::fs::write(&values_file, after.join(",")).unwrap();
    let mut child = child_command(FAILOVER_TEST, "checker")
        .env("SENTINEL_URL", &url)
        .env("LOGGED_OUT_FILE", &values_file)
        .spawn()
        .unwrap();
    let lines = ChildLines::new(&mut child);
    let checked = lines.wait_for("checked", Duration::from_secs(60));
    wait_success(&mut child, "the checker");
    assert_eq!(checked["count"], json!(after.len()));
    assert_eq!(
        checked["alive"],
        json!([]),
        "logouts lost after the failover"
    );
    // And a cookie made now is there for that process too: it reads the new master.
    let kept = store.create("cbtid", 22, 3600).unwrap();
    std::fs::write(&values_file, &kept.value).unwrap();
    let mut child = child_command(FAILOVER_TEST, "checker")
        .env("SENTINEL_URL", &url)
        .env("LOGGED_OUT_FILE", &values_file)
        .spawn()
        .unwrap();
    let lines = ChildLines::new(&mut child);
    let checked = lines.wait_for("checked", Duration::from_secs(60));
    wait_success(&mut child, "the checker");
    assert_eq!(checked["alive"], json!([kept.value]));
}

#[test]
fn a_master_demoted_under_pooled_connections_is_left_for_the_new_one() {
    if !need_redis() {
        return;
    }
    let (master, replica) = master_and_replica();
    let sentinels = Sentinels::start(master.port);
    let store = CookieStore::open(sentinels.url().as_str(), StoreOptions::default()).unwrap();
    // Pooled connections to the master, which stays up: a manual failover demotes it to a
    // replica, and a write on those connections gets READONLY.
    for _ in 0..5 {
        assert!(cycle(&store).is_some());
    }
    manual_failover(&sentinels, master.port, replica.port);
    // The first write after the failover goes to the new master, without an error.
    assert_the_next_cycle_reaches(&store, replica.port, "a manual failover");
    for _ in 0..5 {
        assert!(cycle(&store).is_some());
    }
}

#[test]
fn a_write_refused_as_readonly_goes_to_the_master_the_sentinels_name_now() {
    if !need_redis() {
        return;
    }
    let (master, replica) = master_and_replica();
    let sentinels = Sentinels::start(master.port);
    let store = CookieStore::open(sentinels.url().as_str(), StoreOptions::default()).unwrap();
    for _ in 0..5 {
        assert!(cycle(&store).is_some());
    }
    // The roles swapped by hand (REPLICAOF keeps the clients' connections, as a master
    // demoted behind the sentinels' back would), and the sentinels told: the store's
    // pooled connections now reach a replica, whose answer to a write is READONLY.
    let ok: String = redis::cmd("REPLICAOF")
        .arg("NO")
        .arg("ONE")
        .query(&mut connect(replica.port))
        .unwrap();
    assert_eq!(ok, "OK");
    let ok: String = redis::cmd("REPLICAOF")
        .arg("127.0.0.1")
        .arg(replica.port)
        .query(&mut connect(master.port))
        .unwrap();
    assert_eq!(ok, "OK");
    for &port in &sentinels.ports {
        let mut con = connect(port);
        let _: String = redis::cmd("SENTINEL")
            .arg("REMOVE")
            .arg(MASTER)
            .query(&mut con)
            .unwrap();
        let _: String = redis::cmd("SENTINEL")
            .arg("MONITOR")
            .arg(MASTER)
            .arg("127.0.0.1")
            .arg(replica.port)
            .arg(2)
            .query(&mut con)
            .unwrap();
    }
    assert_eq!(sentinels.master_port(), replica.port);
    let refused = redis::cmd("SET")
        .arg("x")
        .arg("1")
        .query::<()>(&mut connect(master.port))
        .unwrap_err();
    assert_eq!(refused.code(), Some("READONLY"), "{refused}");
    // The first write after it: READONLY on a pooled connection, then the new master.
    let value = cycle(&store).expect("the first cycle after the roles swapped failed");
    assert!(!store.exists(&value).unwrap());
    for _ in 0..5 {
        assert!(cycle(&store).is_some());
    }
}

#[test]
fn a_hung_sentinel_leaves_time_for_the_next() {
    if !need_redis() {
        return;
    }
    let (master, _replica) = master_and_replica();
    let sentinels = Sentinels::start(master.port);
    // A "sentinel" that accepts connections (the kernel's backlog) and never answers.
    let hung = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
    let hung_port = hung.local_addr().unwrap().port();
    let url = sentinels
        .url()
        .replacen("//", &format!("//127.0.0.1:{hung_port},"), 1);
    let store = CookieStore::open(url.as_str(), StoreOptions::default().timeout_ms(1500))
        .unwrap_or_else(|e| panic!("open past a hung sentinel: {e}"));
    assert!(cycle(&store).is_some());
    drop(hung);
}

#[test]
fn min_replicas_acked_waits_for_the_replica_and_says_when_it_did_not() {
    if !need_redis() {
        return;
    }
    let (master, mut replica) = master_and_replica();
    // With the replica up, the wait may take what a loaded machine needs (one CI run saw a
    // 300 ms wait run out here); without it, a short wait keeps the test short.
    let patient = StoreOptions::default()
        .timeout_ms(6000)
        .min_replicas_acked(1, 5000);
    let patient = CookieStore::open(master.url("").as_str(), patient).unwrap();
    let c = patient.create("cbtid", 22, 3600).unwrap();
    assert_eq!(
        patient
            .set_auth(&c.value, &alice(), &AuthContext::default())
            .unwrap(),
        AuthUpdate::Written
    );
    assert!(patient.delete(&c.value).unwrap());
    let options = StoreOptions::default()
        .timeout_ms(2000)
        .min_replicas_acked(1, 300);
    let store = CookieStore::open(master.url("").as_str(), options.clone()).unwrap();
    // Acknowledged: the replica has the logout already (no waiting for it here).
    let key = format!("cookie:{}", c.value);
    let on_replica: bool = redis::cmd("EXISTS")
        .arg(&key)
        .query(&mut connect(replica.port))
        .unwrap();
    assert!(
        !on_replica,
        "the logout was acknowledged before the replica had it"
    );

    // Without the replica: the change is made on the master, and the call says that it
    // did not reach the replica.
    let c = store.create("cbtid", 22, 3600).unwrap();
    replica.kill();
    let err = store
        .set_auth(&c.value, &alice(), &AuthContext::default())
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::NotReplicated {
                acked: 0,
                wanted: 1,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("is on the master"), "{err}");
    assert_eq!(store.get_auth(&c.value).unwrap().unwrap().authid, "alice");
    let err = store.delete(&c.value).unwrap_err();
    assert!(matches!(err, Error::NotReplicated { .. }), "{err:?}");
    assert!(
        !store.exists(&c.value).unwrap(),
        "the logout is on the master"
    );
    let other = store.create("cbtid", 22, 3600).unwrap();
    let err = store.set_auth(&other.value, &alice(), &AuthContext::default());
    assert!(matches!(err, Err(Error::NotReplicated { .. })), "{err:?}");
    let err = store.clear_auth(&other.value);
    assert!(matches!(err, Err(Error::NotReplicated { .. })), "{err:?}");
    assert_eq!(store.get_auth(&other.value).unwrap(), None);
    let third = store.create("cbtid", 22, 3600).unwrap();
    let err = store.set_auth(&third.value, &alice(), &AuthContext::default());
    assert!(matches!(err, Err(Error::NotReplicated { .. })), "{err:?}");
    let err = store.logout_authid("alice");
    assert!(matches!(err, Err(Error::NotReplicated { .. })), "{err:?}");
    assert!(
        !store.exists(&third.value).unwrap(),
        "the logout is on the master"
    );
    // Nothing to write: no wait, no error.
    assert!(!store.delete(&c.value).unwrap());
    // Without the option, the same calls succeed without waiting.
    let plain = CookieStore::open(master.url("").as_str(), StoreOptions::default()).unwrap();
    let c = plain.create("cbtid", 22, 3600).unwrap();
    assert!(plain.delete(&c.value).unwrap());

    // A wait as long as the call's timeout is refused at open.
    let err = CookieStore::open(
        master.url("").as_str(),
        StoreOptions::default()
            .timeout_ms(500)
            .min_replicas_acked(1, 500),
    )
    .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidConfig { field, .. } if field == "replica_ack_timeout_ms"),
        "{err:?}"
    );
}
