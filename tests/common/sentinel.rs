//! Redis Sentinel for the tests, on real processes on loopback: a master and a replica
//! (`--replicaof`, plain or with TLS), three sentinels (`redis-server --sentinel`, each with
//! a generated sentinel.conf; with a password, or serving TLS only), a manual failover, and
//! the login cycle the failover tests loop.
//!
//! Included by the tests that use it (`#[path = "common/sentinel.rs"] mod sentinel;`), not
//! by common/mod.rs, which the CLI's tests share without the `redis` crate; each uses a part.
#![allow(dead_code)]

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use cookiestore::{Auth, AuthContext, AuthUpdate, CookieStore};

use crate::common::redis_server::{RedisServer, free_port, redis_server_command};
use crate::common::tls::Pki;

/// The name under which the sentinels watch the master.
pub const MASTER: &str = "cookies";

/// The user the cycles log in.
pub fn alice() -> Auth {
    Auth::new("alice", "user", "wampcra", "realm1")
}

/// A synchronous connection to a server on loopback `port`.
pub fn connect(port: u16) -> redis::Connection {
    try_connect(port).unwrap()
}

/// [`connect`], or its error: during a failover, Sentinel's `CLIENT KILL TYPE normal` may
/// close a connection in the middle of its handshake.
pub fn try_connect(port: u16) -> redis::RedisResult<redis::Connection> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/"))?;
    let con = client.get_connection_with_timeout(Duration::from_secs(5))?;
    con.set_read_timeout(Some(Duration::from_secs(10)))?;
    Ok(con)
}

/// Waits (at most 60 s) until `check` holds, polling every 100 ms; panics with `what`.
pub fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
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
pub fn replica_linked(port: u16) -> bool {
    let info: String = try_connect(port)
        .and_then(|mut con| redis::cmd("INFO").arg("replication").query(&mut con))
        .unwrap_or_default();
    info.contains("master_link_status:up")
}

/// A master on a free port, and a replica of it, in sync.
pub fn master_and_replica() -> (RedisServer, RedisServer) {
    let master = RedisServer::start();
    let port = master.port.to_string();
    let replica = RedisServer::start_config(false, &["--replicaof", "127.0.0.1", &port]);
    wait_until("the replica syncs", || replica_linked(replica.port));
    (master, replica)
}

/// The redis-server flags of a TLS port `port` with the test PKI's server certificate,
/// clients not asked for one, replication over TLS.
pub fn tls_args(pki: &Pki, port: u16) -> Vec<String> {
    let mut args = pki.server_args(port, false);
    args.extend(["--tls-replication".into(), "yes".into()]);
    args
}

/// A master with TLS on its second port, and a replica of it replicating over TLS, in sync:
/// (master, its TLS port, replica, its TLS port). Their plain ports are for setting up only.
pub fn tls_master_and_replica(pki: &Pki) -> (RedisServer, u16, RedisServer, u16) {
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
pub struct Sentinels {
    /// Their ports on loopback.
    pub ports: Vec<u16>,
    children: Vec<Child>,
    /// Their `requirepass`, if any (they use it with each other too).
    password: Option<String>,
    /// The CA (PEM) of their certificates when they serve TLS only.
    tls_ca: Option<Vec<u8>>,
    _dir: tempfile::TempDir,
}

/// The password of the sentinels [`Sentinels::start_with_password`] starts.
pub const SENTINEL_PASSWORD: &str = "S3cret-sentinel";

impl Sentinels {
    pub fn start(master_port: u16) -> Sentinels {
        Self::start_config(master_port, None, None)
    }

    /// Sentinels with `requirepass` [`SENTINEL_PASSWORD`].
    pub fn start_with_password(master_port: u16) -> Sentinels {
        Self::start_config(master_port, Some(SENTINEL_PASSWORD), None)
    }

    /// Sentinels serving TLS only (`port 0`), with `pki`'s server certificate, that talk
    /// TLS to the master on `master_tls_port` and to each other.
    pub fn start_tls(master_tls_port: u16, pki: &Pki) -> Sentinels {
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
    pub fn client_of(&self, port: u16) -> redis::Client {
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

    pub fn url(&self) -> String {
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
    pub fn master_port(&self) -> u16 {
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

/// A login on `store` (create, then authenticate as [`alice`]) read back by its cookie:
/// the cookie's value.
pub fn assert_logs_in(store: &CookieStore) -> String {
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
    cookie.value
}

/// One cycle: log in (create), authenticate, read it back by cookie, log out. The value,
/// when the logout was acknowledged; `None` when any step failed.
pub fn cycle(store: &CookieStore) -> Option<String> {
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

/// A manual failover (`SENTINEL FAILOVER`, asked of the first sentinel): returns once the
/// sentinels name as master the replica they announce on `new_master_port` (its TLS port
/// when it replicates over TLS) and the old master, whose plain port is `old_master`, is a
/// replica.
pub fn manual_failover(sentinels: &Sentinels, old_master: u16, new_master_port: u16) {
    let mut con = sentinels
        .client_of(sentinels.ports[0])
        .get_connection_with_timeout(Duration::from_secs(5))
        .unwrap();
    let answer: String = redis::cmd("SENTINEL")
        .arg("failover")
        .arg(MASTER)
        .query(&mut con)
        .unwrap();
    assert_eq!(answer, "OK");
    wait_until("the sentinels name the replica as master", || {
        sentinels.master_port() == new_master_port
    });
    wait_until("the old master is a replica", || {
        // Sentinel turns the old master into a replica with REPLICAOF followed by CLIENT
        // KILL TYPE normal, which may close this connection in its handshake or mid-query:
        // not yet, ask again.
        let role: redis::RedisResult<Vec<redis::Value>> =
            try_connect(old_master).and_then(|mut con| redis::cmd("ROLE").query(&mut con));
        matches!(role.as_deref(), Ok([redis::Value::BulkString(b), ..]) if b == b"slave")
    });
}

/// The first write after a failover: a whole cycle succeeds (`what` names the failover in
/// the panic), and its feed entry is on the new master, whose plain port is `new_master`.
pub fn assert_the_next_cycle_reaches(store: &CookieStore, new_master: u16, what: &str) {
    let value = cycle(store).unwrap_or_else(|| panic!("the first cycle after {what} failed"));
    assert!(!store.exists(&value).unwrap());
    let on_new: bool = redis::cmd("EXISTS")
        .arg("revocations")
        .query(&mut connect(new_master))
        .unwrap();
    assert!(on_new, "the feed is written on the new master");
}
