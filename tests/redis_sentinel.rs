//! Failover with Redis Sentinel, on real processes on loopback: a master, a replica
//! (`--replicaof`) and three sentinels (`redis-server --sentinel`, each with a generated
//! sentinel.conf). A store on `redis+sentinel://` keeps logging in, authenticating and
//! logging out while the master is killed (SIGKILL): its calls fail while the sentinels
//! elect the replica, then succeed on the new master, and every logout acknowledged after
//! the failover is seen by another process. And `min_replicas_acked`: a logout or an
//! authentication change waits for the replica, and says so when it did not get there. And
//! sentinels with a password (`requirepass`): asked with `sentinel_password_file`, and an
//! error naming the sentinel's refusal (never the password) without it or with a wrong one.
//! And TLS (`rediss+sentinel://`): a master, a replica and sentinels serving TLS only to
//! the store (certificates of tests/common/tls.rs naming 127.0.0.1, the address the
//! sentinels announce), reached with `tls_ca_file`, and refused as untrusted without it,
//! or when the master's certificate does not name that address; and a manual failover
//! (`SENTINEL FAILOVER`) over TLS, after which writes go to the new master.
//!
//! Skipped with a message when redis-server is missing (except under CI). The failover's
//! duration is printed (run with `--nocapture`), not asserted: docs/redis.md gives the
//! figure measured.

// A failed unwrap here (helpers included) is the test failing.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::redis_server::{RedisServer, free_port, need_redis, redis_server_command};
use common::tls::{Pki, need_tls, write_private};
use common::{ChildLines, child_command, child_role, report, wait_success};
use cookiestore::{Auth, AuthContext, AuthUpdate, CookieStore, Error, StoreOptions};
use serde_json::json;

const MASTER: &str = "cookies";

fn alice() -> Auth {
    Auth::new("alice", "user", "wampcra", "realm1")
}

/// A synchronous connection to a server on loopback `port`.
fn connect(port: u16) -> redis::Connection {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).unwrap();
    let con = client
        .get_connection_with_timeout(Duration::from_secs(5))
        .unwrap();
    con.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    con
}

/// Waits (at most 60 s) until `check` holds, polling every 100 ms; panics with `what`.
fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let started = Instant::now();
    while !check() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{what}: not within 60 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Whether the replica on `port` is in sync with its master (`master_link_status:up`).
fn replica_linked(port: u16) -> bool {
    let info: String = redis::cmd("INFO")
        .arg("replication")
        .query(&mut connect(port))
        .unwrap_or_default();
    info.contains("master_link_status:up")
}

/// A master on a free port, and a replica of it, in sync.
fn master_and_replica() -> (RedisServer, RedisServer) {
    let master = RedisServer::start();
    let port = master.port.to_string();
    let replica = RedisServer::start_config(false, &["--replicaof", "127.0.0.1", &port]);
    wait_until("the replica syncs", || replica_linked(replica.port));
    (master, replica)
}

/// The redis-server flags of a TLS port `port` with the test PKI's server certificate,
/// clients not asked for one (`tls-auth-clients no`), replication over TLS.
fn tls_args(pki: &Pki, port: u16) -> Vec<String> {
    [
        "--tls-port",
        &port.to_string(),
        "--tls-cert-file",
        pki.server_cert.to_str().unwrap(),
        "--tls-key-file",
        pki.server_key.to_str().unwrap(),
        "--tls-ca-cert-file",
        pki.ca.to_str().unwrap(),
        "--tls-auth-clients",
        "no",
        "--tls-replication",
        "yes",
    ]
    .map(str::to_string)
    .to_vec()
}

/// A master with TLS on its second port, and a replica of it replicating over TLS, in sync:
/// (master, its TLS port, replica, its TLS port). Their plain ports are for setting up only.
fn tls_master_and_replica(pki: &Pki) -> (RedisServer, u16, RedisServer, u16) {
    let master_tls = free_port();
    let args = tls_args(pki, master_tls);
    let master =
        RedisServer::start_config(false, &args.iter().map(String::as_str).collect::<Vec<_>>());
    let replica_tls = free_port();
    let mut args = tls_args(pki, replica_tls);
    args.extend(["--replicaof", "127.0.0.1", &master_tls.to_string()].map(str::to_string));
    let replica =
        RedisServer::start_config(false, &args.iter().map(String::as_str).collect::<Vec<_>>());
    wait_until("the replica syncs over TLS", || {
        replica_linked(replica.port)
    });
    (master, master_tls, replica, replica_tls)
}

/// Three sentinels watching the master on `master_port` (quorum 2), killed when dropped.
struct Sentinels {
    ports: Vec<u16>,
    children: Vec<Child>,
    /// Their `requirepass`, if any (they use it with each other too).
    password: Option<String>,
    /// The CA (PEM) of their certificates when they serve TLS only.
    tls_ca: Option<Vec<u8>>,
    _dir: tempfile::TempDir,
}

/// The password of the sentinels [`Sentinels::start_with_password`] starts.
const SENTINEL_PASSWORD: &str = "S3cret-sentinel";

impl Sentinels {
    fn start(master_port: u16) -> Sentinels {
        Self::start_config(master_port, None, None)
    }

    /// Sentinels with `requirepass` [`SENTINEL_PASSWORD`].
    fn start_with_password(master_port: u16) -> Sentinels {
        Self::start_config(master_port, Some(SENTINEL_PASSWORD), None)
    }

    /// Sentinels serving TLS only (`port 0`), with `pki`'s server certificate, that talk
    /// TLS to the master on `master_tls_port` and to each other.
    fn start_tls(master_tls_port: u16, pki: &Pki) -> Sentinels {
        Self::start_config(master_tls_port, None, Some(pki))
    }

    fn start_config(master_port: u16, password: Option<&str>, tls: Option<&Pki>) -> Sentinels {
        let requirepass = password
            .map(|p| format!("requirepass {p}\n"))
            .unwrap_or_default();
        let tls_conf = |port: u16| match tls {
            Some(pki) => format!(
                "port 0\ntls-port {port}\ntls-cert-file {}\ntls-key-file {}\n\
                 tls-ca-cert-file {}\ntls-replication yes\ntls-auth-clients no\n",
                pki.server_cert.display(),
                pki.server_key.display(),
                pki.ca.display()
            ),
            None => format!("port {port}\n"),
        };
        let dir = tempfile::tempdir().unwrap();
        let mut ports = Vec::new();
        let mut children = Vec::new();
        for i in 0..3 {
            let port = free_port();
            let conf = dir.path().join(format!("sentinel-{i}.conf"));
            std::fs::write(
                &conf,
                format!(
                    "{}bind 127.0.0.1\ndaemonize no\ndir {}\n\
                     sentinel monitor {MASTER} 127.0.0.1 {master_port} 2\n\
                     sentinel down-after-milliseconds {MASTER} 1000\n\
                     sentinel failover-timeout {MASTER} 3000\n\
                     sentinel parallel-syncs {MASTER} 1\n{requirepass}",
                    tls_conf(port),
                    dir.path().display()
                ),
            )
            .unwrap();
            let child = redis_server_command()
                .arg(&conf)
                .arg("--sentinel")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            ports.push(port);
            children.push(child);
        }
        let sentinels = Sentinels {
            ports,
            children,
            password: password.map(str::to_string),
            tls_ca: tls.map(|pki| std::fs::read(&pki.ca).unwrap()),
            _dir: dir,
        };
        // Each knows the replica and the two other sentinels: ready to fail over.
        for &port in &sentinels.ports {
            wait_until("a sentinel knows the replica and its peers", || {
                let client = sentinels.client_of(port);
                let Ok(mut con) = client.get_connection_with_timeout(Duration::from_secs(1)) else {
                    return false;
                };
                let replicas: Vec<redis::Value> = redis::cmd("SENTINEL")
                    .arg("replicas")
                    .arg(MASTER)
                    .query(&mut con)
                    .unwrap_or_default();
                let peers: Vec<redis::Value> = redis::cmd("SENTINEL")
                    .arg("sentinels")
                    .arg(MASTER)
                    .query(&mut con)
                    .unwrap_or_default();
                replicas.len() == 1 && peers.len() == 2
            });
        }
        sentinels
    }

    /// A client of the sentinel on `port`, with the password; over TLS (trusting the test
    /// CA, the host written `localhost`, which every test certificate names) for sentinels
    /// serving TLS.
    fn client_of(&self, port: u16) -> redis::Client {
        let auth = match &self.password {
            Some(password) => format!(":{password}@"),
            None => String::new(),
        };
        match &self.tls_ca {
            Some(ca) => redis::Client::build_with_tls(
                format!("rediss://{auth}localhost:{port}/"),
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(ca.clone()),
                },
            )
            .unwrap(),
            None => redis::Client::open(format!("redis://{auth}127.0.0.1:{port}/")).unwrap(),
        }
    }

    fn url(&self) -> String {
        let hosts: Vec<String> = self
            .ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        let scheme = if self.tls_ca.is_some() {
            "rediss+sentinel"
        } else {
            "redis+sentinel"
        };
        format!("{scheme}://{}/{MASTER}", hosts.join(","))
    }

    /// The master's port, as the first sentinel says.
    fn master_port(&self) -> u16 {
        let mut con = self
            .client_of(self.ports[0])
            .get_connection_with_timeout(Duration::from_secs(5))
            .unwrap();
        let (_, port): (String, String) = redis::cmd("SENTINEL")
            .arg("get-master-addr-by-name")
            .arg(MASTER)
            .query(&mut con)
            .unwrap();
        port.parse().unwrap()
    }
}

impl Drop for Sentinels {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// One login cycle's outcome, as the looping thread saw it.
struct Cycle {
    at: Instant,
    /// The value logged out, when the whole cycle succeeded (the logout acknowledged).
    logged_out: Option<String>,
}

/// One cycle: log in (create), authenticate, read it back by cookie, log out. The value,
/// when the logout was acknowledged; `None` when any step failed.
fn cycle(store: &CookieStore) -> Option<String> {
    let cookie = store.create("cbtid", 22, 3600).ok()?;
    let set = store
        .set_auth(&cookie.value, &alice(), &AuthContext::default())
        .ok()?;
    let auth = store.get_auth(&cookie.value).ok()??;
    let deleted = store.delete(&cookie.value).ok()?;
    // Around the failover a step may find the previous one's write gone (acknowledged by
    // the old master, never replicated): a failed cycle too.
    (set == AuthUpdate::Written && auth.authid == "alice" && deleted).then_some(cookie.value)
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
    let answer: String = redis::cmd("SENTINEL")
        .arg("failover")
        .arg(MASTER)
        .query(&mut connect(sentinels.ports[0]))
        .unwrap();
    assert_eq!(answer, "OK");
    wait_until("the sentinels name the replica as master", || {
        sentinels.master_port() == replica.port
    });
    wait_until("the old master is a replica", || {
        let role: Vec<redis::Value> = redis::cmd("ROLE").query(&mut connect(master.port)).unwrap();
        matches!(&role[0], redis::Value::BulkString(b) if b == b"slave")
    });
    // The first write after the failover goes to the new master, without an error.
    let value = cycle(&store).expect("the first cycle after a manual failover failed");
    assert!(!store.exists(&value).unwrap());
    let on_new: bool = redis::cmd("EXISTS")
        .arg("revocations")
        .query(&mut connect(replica.port))
        .unwrap();
    assert!(on_new, "the feed is written on the new master");
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

#[test]
fn sentinels_with_a_password_are_asked_with_sentinel_password_file() {
    if !need_redis() {
        return;
    }
    let (master, _replica) = master_and_replica();
    let sentinels = Sentinels::start_with_password(master.port);
    assert_eq!(sentinels.master_port(), master.port);
    let dir = tempfile::tempdir().unwrap();
    let right = dir.path().join("sentinel.pw");
    write_private(&right, &format!("{SENTINEL_PASSWORD}\n"));
    let wrong = dir.path().join("wrong.pw");
    write_private(&wrong, "Wrong-sentinel-pw\n");
    let url = sentinels.url();
    let options = StoreOptions::default().timeout_ms(1500);

    // With the password: the store works.
    let store = CookieStore::open(url.as_str(), options.clone().sentinel_password_file(&right))
        .unwrap_or_else(|e| panic!("open with the sentinels' password: {e}"));
    let cookie = store.create("cbtid", 22, 3600).unwrap();
    assert_eq!(
        store
            .set_auth(&cookie.value, &alice(), &AuthContext::default())
            .unwrap(),
        AuthUpdate::Written
    );
    assert_eq!(
        store.get_auth(&cookie.value).unwrap().unwrap().authid,
        "alice"
    );
    // The same as a URL query option, with the user named.
    let query = format!(
        "{url}?sentinel_user=default&sentinel_password_file={}",
        right.display()
    );
    let store = CookieStore::open(query.as_str(), options.clone()).unwrap();
    assert_eq!(
        store.get_auth(&cookie.value).unwrap().unwrap().authid,
        "alice"
    );

    // Without it, or with a wrong one: the open fails, naming the sentinel's refusal and what
    // to give, never the password.
    let without = CookieStore::open(url.as_str(), options.clone()).unwrap_err();
    let text = without.to_string();
    assert!(matches!(without, Error::Unavailable { .. }), "{without:?}");
    assert!(
        text.contains(&format!(
            "sentinel 127.0.0.1:{} asks for a password",
            sentinels.ports[0]
        )) && text.contains("sentinel_password_file"),
        "{text}"
    );
    let refused = CookieStore::open(url.as_str(), options.clone().sentinel_password_file(&wrong))
        .unwrap_err();
    let text = format!("{refused} {refused:?}");
    assert!(
        text.contains("refused the credentials of the ACL user `default`")
            && text.contains("sentinel_password_file"),
        "{text}"
    );
    for secret in [SENTINEL_PASSWORD, "Wrong-sentinel-pw"] {
        assert!(!text.contains(secret), "{text}");
        assert!(!format!("{without} {without:?}").contains(secret));
    }
    // An unknown ACL user with the right password is refused alike, the user named.
    let refused = CookieStore::open(
        url.as_str(),
        options
            .sentinel_password_file(&right)
            .sentinel_user("nobody"),
    )
    .unwrap_err();
    let text = format!("{refused} {refused:?}");
    assert!(
        text.contains("refused the credentials of the ACL user `nobody`"),
        "{text}"
    );
    assert!(!text.contains(SENTINEL_PASSWORD), "{text}");
}

#[test]
fn the_sentinel_options_are_refused_on_other_urls() {
    // Refused before any connection is made: no Redis needed.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sentinel.pw");
    write_private(&file, "S3cret-sentinel\n");
    let url = "redis://127.0.0.1:1/0";
    for (field, options, url) in [
        (
            "sentinel_password_file",
            StoreOptions::default().sentinel_password_file(&file),
            url.to_string(),
        ),
        (
            "sentinel_password_env",
            StoreOptions::default().sentinel_password_env("COOKIESTORE_SENTINEL_PW"),
            url.to_string(),
        ),
        (
            "sentinel_user",
            StoreOptions::default(),
            format!("{url}?sentinel_user=watcher"),
        ),
    ] {
        let err = CookieStore::open(url.as_str(), options).unwrap_err();
        assert!(
            matches!(&err, Error::InvalidConfig { field: f, .. } if f == field),
            "{err:?}"
        );
        assert!(
            err.to_string().contains("not a redis+sentinel:// URL"),
            "{err}"
        );
    }
}

#[test]
fn the_sentinels_password_is_given_one_way_and_a_user_needs_one() {
    // Refused before any connection is made: no Redis needed.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sentinel.pw");
    write_private(&file, "S3cret-sentinel\n");
    let url = "redis+sentinel://127.0.0.1:1/cookies";
    for (field, options, needle) in [
        (
            "sentinel_password_file",
            StoreOptions::default()
                .sentinel_password_file(&file)
                .sentinel_password_env("COOKIESTORE_SENTINEL_PW"),
            "one way only",
        ),
        (
            "sentinel_user",
            StoreOptions::default().sentinel_user("watcher"),
            "no password for the sentinels",
        ),
    ] {
        let err = CookieStore::open(url, options).unwrap_err();
        assert!(
            matches!(&err, Error::InvalidConfig { field: f, .. } if f == field),
            "{err:?}"
        );
        assert!(err.to_string().contains(needle), "{err}");
    }
    // A file others may read is refused, as the master's password_file.
    std::fs::write(&file, "S3cret-sentinel\n").unwrap();
    std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let err =
        CookieStore::open(url, StoreOptions::default().sentinel_password_file(&file)).unwrap_err();
    assert!(
        matches!(&err, Error::InvalidConfig { field, .. } if field == "sentinel_password_file"),
        "{err:?}"
    );
    assert!(err.to_string().contains("chmod 600"), "{err}");
}

#[test]
fn sentinels_and_master_over_tls() {
    if !need_tls() {
        return;
    }
    // The sentinels announce the master by its IP address: the certificates name it.
    let pki = Pki::for_server(&["localhost", "127.0.0.1"]);
    let (_master, master_tls, _replica, _) = tls_master_and_replica(&pki);
    let sentinels = Sentinels::start_tls(master_tls, &pki);
    assert_eq!(sentinels.master_port(), master_tls);
    let url = sentinels.url();
    assert!(url.starts_with("rediss+sentinel://"), "{url}");
    let options = StoreOptions::default().timeout_ms(1500);

    // Trusting the test CA (a URL query option): the store works, over TLS throughout (the
    // sentinels and the master have no plain port the store could use: theirs are the
    // setup's, not the ones named).
    let trusted = format!("{url}?tls_ca_file={}", pki.ca.display());
    let store = CookieStore::open(trusted.as_str(), options.clone())
        .unwrap_or_else(|e| panic!("open over TLS through the sentinels: {e}"));
    let cookie = store.create("cbtid", 22, 3600).unwrap();
    assert_eq!(
        store
            .set_auth(&cookie.value, &alice(), &AuthContext::default())
            .unwrap(),
        AuthUpdate::Written
    );
    assert_eq!(
        store.get_auth(&cookie.value).unwrap().unwrap().authid,
        "alice"
    );
    // The same with the option given in StoreOptions.
    let store = CookieStore::open(url.as_str(), options.clone().tls_ca_file(&pki.ca)).unwrap();
    assert_eq!(
        store.get_auth(&cookie.value).unwrap().unwrap().authid,
        "alice"
    );

    // Without it (the system's roots, which do not hold the test CA): refused, and said so.
    let err = CookieStore::open(url.as_str(), options).unwrap_err();
    assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("certificate was not trusted"), "{text}");
    assert!(text.contains("check the sentinels' TLS"), "{text}");
    assert!(!text.contains("SENTINEL MASTERS"), "{text}");
}

#[test]
fn a_master_certificate_without_the_announced_address_is_refused() {
    if !need_tls() {
        return;
    }
    // Certificates naming localhost only: the sentinels, written as localhost, are trusted,
    // but the master they announce is 127.0.0.1, which its certificate does not name.
    let pki = Pki::new();
    let (_master, master_tls, _replica, _) = tls_master_and_replica(&pki);
    let sentinels = Sentinels::start_tls(master_tls, &pki);
    let url = sentinels.url().replace("127.0.0.1", "localhost");
    let err = CookieStore::open(
        url.as_str(),
        StoreOptions::default()
            .timeout_ms(1500)
            .tls_ca_file(&pki.ca),
    )
    .unwrap_err();
    assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("does not name the host"), "{text}");
}

#[test]
fn a_failover_over_tls_goes_to_the_new_master() {
    if !need_tls() {
        return;
    }
    let pki = Pki::for_server(&["localhost", "127.0.0.1"]);
    let (master, master_tls, replica, replica_tls) = tls_master_and_replica(&pki);
    let sentinels = Sentinels::start_tls(master_tls, &pki);
    let store = CookieStore::open(
        sentinels.url().as_str(),
        StoreOptions::default().tls_ca_file(&pki.ca),
    )
    .unwrap();
    for _ in 0..5 {
        assert!(cycle(&store).is_some());
    }
    // A manual failover: the sentinels promote the replica (announced by its TLS port, as
    // it replicates with tls-replication yes) and demote the master.
    let answer: String = redis::cmd("SENTINEL")
        .arg("failover")
        .arg(MASTER)
        .query(
            &mut sentinels
                .client_of(sentinels.ports[0])
                .get_connection_with_timeout(Duration::from_secs(5))
                .unwrap(),
        )
        .unwrap();
    assert_eq!(answer, "OK");
    wait_until("the sentinels name the replica as master", || {
        sentinels.master_port() == replica_tls
    });
    wait_until("the old master is a replica", || {
        let role: Vec<redis::Value> = redis::cmd("ROLE").query(&mut connect(master.port)).unwrap();
        matches!(&role[0], redis::Value::BulkString(b) if b == b"slave")
    });
    // The first write after it goes to the new master, over TLS, without an error.
    let value = cycle(&store).expect("the first cycle after a failover over TLS failed");
    assert!(!store.exists(&value).unwrap());
    let on_new: bool = redis::cmd("EXISTS")
        .arg("revocations")
        .query(&mut connect(replica.port))
        .unwrap();
    assert!(on_new, "the feed is written on the new master");
}

#[test]
fn tls_options_on_a_plain_sentinel_url_point_to_rediss_sentinel() {
    // Refused before any connection is made: no Redis needed.
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    write_private(&ca, "not read\n");
    let err = CookieStore::open(
        "redis+sentinel://127.0.0.1:1,127.0.0.1:2/cookies",
        StoreOptions::default().tls_ca_file(&ca),
    )
    .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidConfig { field, .. } if field == "tls_ca_file"),
        "{err:?}"
    );
    assert!(err.to_string().contains("rediss+sentinel://"), "{err}");
}
