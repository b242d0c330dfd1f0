//! A master that moves behind one address: the failover of a managed Redis (a DNS name that
//! follows the master), or a load balancer or Kubernetes Service that sends new connections
//! to the new master while old ones stay with the old. On real redis-server processes: a
//! master and its replica, their roles swapped with `REPLICAOF` (which keeps the clients'
//! connections), and a TCP forwarder of the test standing for the address, switched to the
//! new master. The store, opened with a plain `redis://` URL of that address, holds pooled
//! connections to the old master, which answers a write `READONLY`; the store drops them and
//! runs the write on a new connection, which reaches the new master.

// A failed unwrap here (helpers included) is the test, bench or example failing.
#![allow(clippy::unwrap_used)]

mod common;
#[path = "common/sentinel.rs"]
mod sentinel;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};

use common::redis_server::{RedisServer, need_redis};
use cookiestore::{Auth, AuthContext, CookieStore, Error, StoreOptions};
use sentinel::{connect, master_and_replica, wait_until};

/// An address whose connections go to the loopback port in `target` at the time each is
/// accepted; those already made stay with their server.
struct Forwarder {
    port: u16,
    target: Arc<AtomicU16>,
}

impl Forwarder {
    fn start(target: u16) -> Forwarder {
        let listener = TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let target = Arc::new(AtomicU16::new(target));
        let to = target.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(("127.0.0.1", to.load(Ordering::SeqCst)))
                else {
                    continue;
                };
                for (mut from, mut into) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 16 * 1024];
                        while let Ok(n) = from.read(&mut buf) {
                            if n == 0 || into.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                        let _ = into.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        Forwarder { port, target }
    }

    fn switch_to(&self, port: u16) {
        self.target.store(port, Ordering::SeqCst);
    }
}

/// Whether `server` is a replica now (`ROLE`).
fn is_replica(server: &RedisServer) -> bool {
    let role: Vec<redis::Value> = redis::cmd("ROLE").query(&mut connect(server.port)).unwrap();
    matches!(role.first(), Some(redis::Value::BulkString(b)) if b == b"slave")
}

#[test]
fn writes_follow_a_master_that_moved_behind_the_address() {
    if !need_redis() {
        return;
    }
    let (old, new) = master_and_replica();
    let address = Forwarder::start(old.port);
    let store = CookieStore::open(
        format!("redis://127.0.0.1:{}/", address.port),
        StoreOptions::default().timeout_ms(5_000),
    )
    .unwrap();
    let alice = Auth::new("alice", "user", "wampcra", "realm1");
    // Several threads at once: the pool keeps several connections to the old master.
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                for _ in 0..20 {
                    let c = store.create("cbtid", 24, 600).unwrap();
                    store
                        .set_auth(&c.value, &alice, &AuthContext::default())
                        .unwrap();
                }
            });
        }
    });
    let kept = store.create("cbtid", 24, 600).unwrap();
    wait_until("the replica has the last cookie", || {
        new.command(&["EXISTS", &format!("cookie:{}", kept.value)]) == ":1"
    });

    // The failover: the replica promoted, the old master made its replica (its clients'
    // connections stay open), the address switched to the new master.
    assert_eq!(new.command(&["REPLICAOF", "NO", "ONE"]), "+OK");
    let new_port = new.port.to_string();
    assert_eq!(old.command(&["REPLICAOF", "127.0.0.1", &new_port]), "+OK");
    address.switch_to(new.port);
    wait_until("the old master is a replica", || is_replica(&old));

    // Every write reaches the new master: a login, an authentication, a logout.
    for _ in 0..20 {
        let c = store.create("cbtid", 24, 600).unwrap();
        store
            .set_auth(&c.value, &alice, &AuthContext::default())
            .unwrap();
        assert_eq!(
            new.command(&["EXISTS", &format!("cookie:{}", c.value)]),
            ":1"
        );
    }
    store.delete(&kept.value).unwrap();
    assert_eq!(
        new.command(&["EXISTS", &format!("cookie:{}", kept.value)]),
        ":0"
    );
    assert!(!store.exists(&kept.value).unwrap());
    assert_eq!(store.health().outages, 0, "{:?}", store.health());
}

#[test]
fn a_store_pointed_at_a_replica_says_so() {
    if !need_redis() {
        return;
    }
    let (_master, replica) = master_and_replica();
    // Opened lazily: the open-time checks would refuse it before any write.
    let store = CookieStore::open(
        replica.url(""),
        StoreOptions::default()
            .timeout_ms(5_000)
            .connect_lazily(true)
            .allow_eviction(true),
    )
    .unwrap();
    let err = store.create("cbtid", 24, 600).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
    assert!(text.contains("read only replica"), "{text}");
    assert!(
        text.contains("is a replica") && text.contains("redis+sentinel://"),
        "{text}"
    );
}
