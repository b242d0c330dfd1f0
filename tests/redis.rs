//! The Redis backend's own behaviour: its key layout, prefixes, locations, what it does not
//! offer, faults (Redis stopped, Redis killed and restarted under load with AOF), and two
//! processes as two hosts on one Redis. Each test runs its own redis-server on a free
//! loopback port (skipped with a message when redis-server is missing, except under CI).

// A failed unwrap here (helpers included) is the test, bench or example failing.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::redis_server::{RedisServer, free_port, need_redis, wait_available};
use common::{ChildLines, child_command, child_role, report};
use cookiestore::{
    Auth, AuthContext, AuthUpdate, Connections, Cookie, CookieStore, Error, StoreOptions, Tracker,
    TrackerConfig, WatchEvent, Watcher,
};
use serde_json::json;

fn alice() -> Auth {
    Auth::new("alice", "user", "wampcra", "realm1")
}

fn raw(server: &RedisServer) -> redis::Connection {
    redis::Client::open(server.url(""))
        .unwrap()
        .get_connection_with_timeout(Duration::from_secs(5))
        .unwrap()
}

#[test]
fn layout_is_one_key_per_cookie_with_the_lmdb_record_bytes() {
    if !need_redis() {
        return;
    }
    let server = RedisServer::start();
    let store = CookieStore::open(server.url("cb1:"), StoreOptions::default()).unwrap();
    assert_eq!(store.backend(), "redis");
    assert!(
        store
            .location()
            .to_string()
            .starts_with("redis://127.0.0.1:")
    );
    assert_eq!(store.path(), None, "a URL is never a path");
    let c = store.create("cbtid", 24, 600).unwrap();
    store
        .set_auth(&c.value, &alice(), &AuthContext::default())
        .unwrap();
    let mut con = raw(&server);
    let key = format!("cb1:cookie:{}", c.value);
    let bytes: Vec<u8> = redis::cmd("GET").arg(&key).query(&mut con).unwrap();
    let stored = Cookie::decode(&bytes).unwrap();
    assert_eq!(Some(stored.clone()), store.get(&c.value).unwrap());
    assert_eq!(
        bytes,
        stored.encode().unwrap(),
        "the bytes are Cookie::encode's"
    );
    // Expiring at created + max_age (ms, rounded up), never later.
    let at: i64 = redis::cmd("PEXPIRETIME").arg(&key).query(&mut con).unwrap();
    assert_eq!(at as u64, c.expires_at().div_ceil(1_000_000));
    let members: Vec<String> = redis::cmd("SMEMBERS")
        .arg("cb1:authid:alice")
        .query(&mut con)
        .unwrap();
    assert_eq!(members, std::slice::from_ref(&c.value));
    let set_at: i64 = redis::cmd("PEXPIRETIME")
        .arg("cb1:authid:alice")
        .query(&mut con)
        .unwrap();
    assert_eq!(set_at, at, "the authid set expires with its last cookie");
    store.delete(&c.value).unwrap();
    let exists: i64 = redis::cmd("EXISTS").arg(&key).query(&mut con).unwrap();
    assert_eq!(exists, 0);
    let len: i64 = redis::cmd("XLEN")
        .arg("cb1:revocations")
        .query(&mut con)
        .unwrap();
    assert_eq!(len, 1);
}

#[test]
fn an_import_marks_each_value_until_its_cookie_expires_and_marks_unmarked_imports() {
    if !need_redis() {
        return;
    }
    use cookiestore::maintenance::{ImportOptions, LegacySource, import_legacy, replay};
    let server = RedisServer::start();
    let store = CookieStore::open(server.url("cb1:"), StoreOptions::default()).unwrap();
    let value = "Ho2ymDYyrEX1aWT4+tLv/Ppb";
    let created_ns = store.now_ns() - 3_600_000_000_000;
    let line = json!({
        "cbtid": value, "status": "created",
        "created": cookiestore::format_rfc3339_ns(created_ns), "modified": null,
        "deleted": null, "max_age": 604800, "authid": "alice", "authrole": null,
        "authmethod": null, "authrealm": null, "authextra": null,
    });
    let source = LegacySource::from(replay(format!("{line}\n").as_bytes()).unwrap());
    let import = |dry_run: bool| {
        import_legacy(
            &store,
            &source,
            store.now_ns(),
            &ImportOptions::default().dry_run(dry_run),
            &mut |_| {},
        )
        .unwrap()
    };
    assert_eq!(import(false).imported, 1);
    let mut con = raw(&server);
    // The key: the prefix, `imported:` and the value's SHA-256 in hex; it holds the
    // cookie's expiry (ns) and expires with the cookie.
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("cb1:imported:*")
        .query(&mut con)
        .unwrap();
    assert_eq!(keys, vec![format!("cb1:imported:{}", sha256_hex(value))]);
    let expires = created_ns + 604_800_000_000_000;
    let held: String = redis::cmd("GET").arg(&keys[0]).query(&mut con).unwrap();
    assert_eq!(held, expires.to_string());
    let at: i64 = redis::cmd("PEXPIRETIME")
        .arg(&keys[0])
        .query(&mut con)
        .unwrap();
    assert_eq!(at as u64, expires.div_ceil(1_000_000));

    // A cookie imported before imports were marked: the next import marks it.
    let _: () = redis::cmd("DEL").arg(&keys[0]).query(&mut con).unwrap();
    let plan = import(true);
    assert_eq!((plan.unchanged, plan.marked), (1, 1), "{plan:?}");
    let exists: i64 = redis::cmd("EXISTS").arg(&keys[0]).query(&mut con).unwrap();
    assert_eq!(exists, 0, "a dry run writes nothing");
    assert_eq!(import(false).marked, 1);
    assert_eq!(import(false).marked, 0, "marked once");
    assert!(store.delete(value).unwrap());
    let again = import(false);
    assert_eq!(
        (again.imported, again.skipped_logged_out),
        (0, 1),
        "{again:?}"
    );
}

/// The SHA-256 of `value` in hex, from coreutils (independent of the library).
fn sha256_hex(value: &str) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("sha256sum (coreutils) runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(value.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8(out.stdout).unwrap()[..64].to_string()
}

#[test]
fn a_vanished_key_is_no_such_cookie_and_auth_keeps_the_ttl() {
    if !need_redis() {
        return;
    }
    let server = RedisServer::start();
    let store = CookieStore::open(server.url(""), StoreOptions::default()).unwrap();
    let c = store.create("cbtid", 24, 600).unwrap();
    let mut con = raw(&server);
    let key = format!("cookie:{}", c.value);
    let before: i64 = redis::cmd("PEXPIRETIME").arg(&key).query(&mut con).unwrap();
    store
        .set_auth(&c.value, &alice(), &AuthContext::default())
        .unwrap();
    let after: i64 = redis::cmd("PEXPIRETIME").arg(&key).query(&mut con).unwrap();
    assert_eq!(before, after, "authenticating must not extend the lifetime");
    let _: () = redis::cmd("DEL").arg(&key).query(&mut con).unwrap();
    let bob = Auth::new("bob", "user", "wampcra", "realm1");
    assert_eq!(
        store
            .set_auth(&c.value, &bob, &AuthContext::default())
            .unwrap(),
        AuthUpdate::NoSuchCookie
    );
    let exists: i64 = redis::cmd("EXISTS").arg(&key).query(&mut con).unwrap();
    assert_eq!(exists, 0, "a missed update must not bring the key back");
}

#[test]
fn prefixes_keep_deployments_apart() {
    if !need_redis() {
        return;
    }
    let server = RedisServer::start();
    let one = CookieStore::open(server.url("one:"), StoreOptions::default()).unwrap();
    let two =
        CookieStore::open(server.url(""), StoreOptions::default().key_prefix("two:")).unwrap();
    let a = one.create("cbtid", 24, 600).unwrap();
    let b = two.create("cbtid", 24, 600).unwrap();
    assert!(one.exists(&a.value).unwrap() && !two.exists(&a.value).unwrap());
    assert!(two.exists(&b.value).unwrap() && !one.exists(&b.value).unwrap());
    assert_eq!(one.count().unwrap(), 1);
    one.delete(&a.value).unwrap();
    assert_eq!(one.revocations_since(0).unwrap().entries.len(), 1);
    assert!(two.revocations_since(0).unwrap().entries.is_empty());
}

#[test]
fn lmdb_only_operations_say_so_and_other_urls_are_refused() {
    if !need_redis() {
        return;
    }
    let server = RedisServer::start();
    let store = CookieStore::open(server.url(""), StoreOptions::default()).unwrap();
    // Snapshots, batches, copies, check and repair are methods of the LMDB handle, which a
    // Redis store does not have; a tool taking any location asks with `lmdb`, which says why.
    assert!(store.as_lmdb().is_none());
    match store.lmdb("check") {
        Err(
            e @ Error::Unsupported {
                backend: "redis",
                operation: "check",
            },
        ) => assert!(e.to_string().contains("LMDB stores only"), "{e}"),
        other => panic!("expected Unsupported, got {other:?}"),
    }
    for url in [
        "http://127.0.0.1/",
        "memcached://127.0.0.1:11211",
        "file:///tmp/x",
    ] {
        let err = CookieStore::open(url, StoreOptions::default()).unwrap_err();
        assert!(
            matches!(err, Error::UnsupportedLocation { .. }),
            "{url}: {err:?}"
        );
    }
}

#[test]
fn an_unreachable_redis_is_unavailable_within_the_timeout() {
    let port = free_port(); // nothing listens there
    let started = Instant::now();
    let err = CookieStore::open(
        format!("redis://127.0.0.1:{port}/"),
        StoreOptions::default().timeout_ms(500),
    )
    .unwrap_err();
    assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert!(err.to_string().contains(&port.to_string()), "{err}");
}

#[test]
fn a_stopped_redis_fails_each_call_within_the_timeout_and_the_handle_recovers() {
    if !need_redis() {
        return;
    }
    let mut server = RedisServer::start();
    let store = CookieStore::open(server.url(""), StoreOptions::default().timeout_ms(500)).unwrap();
    let tracker = Tracker::new(store.clone(), TrackerConfig::default()).unwrap();
    let c = store.create("cbtid", 24, 600).unwrap();
    server.kill();
    let ctx = AuthContext::default();
    type Call<'a> = Box<dyn Fn() -> Result<(), Error> + 'a>;
    let calls: Vec<(&str, Call)> = vec![
        ("exists", Box::new(|| store.exists(&c.value).map(drop))),
        ("get_auth", Box::new(|| store.get_auth(&c.value).map(drop))),
        ("lookup", Box::new(|| store.lookup(&c.value).map(drop))),
        (
            "create",
            Box::new(|| store.create("cbtid", 24, 60).map(drop)),
        ),
        (
            "set_auth",
            Box::new(|| store.set_auth(&c.value, &alice(), &ctx).map(drop)),
        ),
        ("delete", Box::new(|| store.delete(&c.value).map(drop))),
        (
            "logout_authid",
            Box::new(|| store.logout_authid("alice").map(drop)),
        ),
        ("count", Box::new(|| store.count().map(drop))),
        (
            "revocations_since",
            Box::new(|| store.revocations_since(0).map(drop)),
        ),
        ("track", Box::new(|| tracker.track(None).map(drop))),
    ];
    for (name, call) in &calls {
        let started = Instant::now();
        let result = call();
        let took = started.elapsed();
        assert!(
            matches!(result, Err(Error::Unavailable { .. })),
            "{name}: {result:?}"
        );
        assert!(took < Duration::from_secs(10), "{name} took {took:?}");
    }
    server.restart();
    // The same handle works again once its probe found Redis back (no persistence here:
    // the cookie is gone).
    wait_available(&store);
    assert!(!store.exists(&c.value).unwrap());
    let d = store.create("cbtid", 24, 600).unwrap();
    assert!(store.exists(&d.value).unwrap());
}

/// What the load thread last had acknowledged for a cookie.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Acked {
    Created,
    Authenticated,
    LoggedOut,
}

#[test]
fn killed_and_restarted_with_aof_every_acknowledged_write_survives() {
    if !need_redis() {
        return;
    }
    let mut server = RedisServer::start_with(true);
    let store =
        CookieStore::open(server.url(""), StoreOptions::default().timeout_ms(1000)).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let rounds = 200 * common::stress();
    let load = {
        let store = store.clone();
        let stop = stop.clone();
        std::thread::spawn(move || {
            // value -> last acknowledged state; cookies with a failed call are unknown.
            let mut acked: Vec<(String, Acked)> = Vec::new();
            let mut unknown = 0u64;
            let mut failures = 0u64;
            let mut ok_after_failure = 0u64;
            let ctx = AuthContext::default();
            let mut i = 0u64;
            while !stop.load(Ordering::Acquire) || ok_after_failure < rounds {
                i += 1;
                let c = match store.create("cbtid", 24, 3600) {
                    Ok(c) => c,
                    Err(Error::Unavailable { .. }) => {
                        failures += 1;
                        unknown += 1;
                        std::thread::sleep(Duration::from_millis(10));
                        continue;
                    }
                    Err(e) => panic!("create: {e}"),
                };
                if failures > 0 {
                    ok_after_failure += 1;
                }
                let mut state = Acked::Created;
                let step = if i.is_multiple_of(3) {
                    store.set_auth(&c.value, &alice(), &ctx).map(|u| {
                        assert_eq!(u, AuthUpdate::Written);
                        state = Acked::Authenticated;
                    })
                } else if i % 3 == 1 {
                    store.delete(&c.value).map(|found| {
                        assert!(found);
                        state = Acked::LoggedOut;
                    })
                } else {
                    Ok(())
                };
                match step {
                    Ok(()) => acked.push((c.value, state)),
                    Err(Error::Unavailable { .. }) => {
                        failures += 1;
                        unknown += 1;
                    }
                    Err(e) => panic!("write: {e}"),
                }
                if i > 100_000 {
                    panic!("the load did not recover after the restart");
                }
            }
            (acked, unknown, failures)
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    server.kill(); // SIGKILL under load
    std::thread::sleep(Duration::from_millis(300));
    server.restart(); // the AOF is replayed
    stop.store(true, Ordering::Release);
    let (acked, unknown, failures) = load.join().unwrap();
    assert!(failures > 0, "the load never saw Redis down");
    assert!(acked.len() > 10, "too little load: {}", acked.len());
    for (value, state) in &acked {
        match state {
            Acked::Created => assert!(store.exists(value).unwrap(), "lost create {value}"),
            Acked::Authenticated => assert_eq!(
                store.get_auth(value).unwrap(),
                Some(alice()),
                "lost auth {value}"
            ),
            Acked::LoggedOut => assert!(!store.exists(value).unwrap(), "lost logout {value}"),
        }
    }
    let logouts = acked.iter().filter(|(_, s)| *s == Acked::LoggedOut).count();
    let feed = store.revocations_since(0).unwrap();
    assert!(
        feed.entries.len() >= logouts,
        "{} < {logouts}",
        feed.entries.len()
    );
    eprintln!(
        "{} acknowledged writes checked after SIGKILL + restart ({unknown} calls failed while \
         Redis was down)",
        acked.len()
    );
}

/// Two processes as two hosts: host A (this test) makes and authenticates a cookie; host B
/// (a child process) is authenticated by it, watches the feed, and sees A's logout.
#[test]
fn two_hosts_share_cookies_and_logouts() {
    if let Some(role) = child_role() {
        if role == "host-b" {
            host_b();
        }
        return;
    }
    if !need_redis() {
        return;
    }
    let server = RedisServer::start();
    let url = server.url("hosts:");
    let a = Tracker::open(&url, StoreOptions::default(), TrackerConfig::default()).unwrap();
    let tracked = a.track(None).unwrap();
    a.authenticate(&tracked.value, &alice(), &AuthContext::default())
        .unwrap();
    let mut child = child_command("two_hosts_share_cookies_and_logouts", "host-b")
        .env("HOST_B_URL", &url)
        .env("HOST_B_VALUE", &tracked.value)
        .spawn()
        .unwrap();
    let lines = ChildLines::new(&mut child);
    let ready = lines.wait_for("watching", Duration::from_secs(30));
    assert_eq!(
        ready["authid"], "alice",
        "host B is authenticated by the cookie"
    );
    a.logout(&tracked.value).unwrap();
    let revoked = lines.wait_for("revoked", Duration::from_secs(30));
    assert_eq!(revoked["connections"], json!([7]));
    common::wait_success(&mut child, "host B");
}

fn host_b() {
    let url = std::env::var("HOST_B_URL").unwrap();
    let value = std::env::var("HOST_B_VALUE").unwrap();
    let b = Tracker::open(&url, StoreOptions::default(), TrackerConfig::default()).unwrap();
    let header = format!("cbtid={value}");
    let tracked = b.track(Some(header.as_bytes())).unwrap();
    assert!(!tracked.is_new);
    let registry = Arc::new(Connections::new());
    registry.register(&value, 7u32);
    let (tx, rx) = std::sync::mpsc::channel();
    let _watcher = Watcher::spawn(
        b.store(),
        registry,
        Watcher::DEFAULT_INTERVAL,
        move |event| {
            if let WatchEvent::Revoked { connections, .. } = event {
                let _ = tx.send(connections);
            }
        },
    )
    .unwrap();
    report(&json!({"ev": "watching", "authid": tracked.authid()}));
    let connections = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("a revocation");
    report(&json!({"ev": "revoked", "connections": connections}));
}

#[test]
fn a_watcher_reconnects_after_a_restart_and_catches_up() {
    if !need_redis() {
        return;
    }
    let mut server = RedisServer::start_with(true);
    let store = CookieStore::open(server.url(""), StoreOptions::default().timeout_ms(500)).unwrap();
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
    let first = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(first, json!({"revoked": [1]}));
    server.kill();
    let failed = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(failed.get("failed").is_some(), "{failed}");
    server.restart();
    wait_available(&store);
    store.delete(&c2.value).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let event = rx
            .recv_timeout(left)
            .expect("the watcher reports the logout after the restart");
        if event.get("failed").is_some() {
            continue; // while Redis was down
        }
        assert_eq!(
            event,
            json!({"revoked": [2]}),
            "nothing missed: the feed survived (AOF)"
        );
        break;
    }
}

#[test]
fn a_node_config_names_a_redis_store() {
    if !need_redis() {
        return;
    }
    let server = RedisServer::start();
    let section = cookiestore::CookieSection::from_value(&json!({
        "name": "cbtid",
        "max_age": 604800,
        "store": {"type": "cookiestore", "path": server.url(""), "key_prefix": "node1:",
                  "timeout_ms": 1500},
    }))
    .unwrap();
    let store = section.store.unwrap();
    let node_dir = tempfile::tempdir().unwrap();
    let location = store.location_in(node_dir.path());
    assert_eq!(
        location.to_string(),
        server.url(""),
        "a URL is not joined to the node dir"
    );
    assert_eq!(store.options.redis.key_prefix, "node1:");
    let tracker = Tracker::open(&location, store.options, section.tracker).unwrap();
    let tracked = tracker.track(None).unwrap();
    let mut con = raw(&server);
    let exists: i64 = redis::cmd("EXISTS")
        .arg(format!("node1:cookie:{}", tracked.value))
        .query(&mut con)
        .unwrap();
    assert_eq!(exists, 1);
}

#[test]
fn a_hung_redis_fails_each_call_within_the_timeout_and_the_handle_recovers() {
    if !need_redis() {
        return;
    }
    let server = RedisServer::start();
    let store = CookieStore::open(server.url(""), StoreOptions::default().timeout_ms(300)).unwrap();
    let c = store.create("cbtid", 24, 600).unwrap();
    server.pause(); // accepts connections, answers nothing
    for round in 0..3 {
        let started = Instant::now();
        let result = store.get_auth(&c.value);
        let took = started.elapsed();
        match result {
            Err(Error::Unavailable { problem, .. }) => {
                assert!(problem.contains("timeout"), "{problem}")
            }
            other => panic!("round {round}: expected Unavailable, got {other:?}"),
        }
        assert!(
            took < Duration::from_secs(10),
            "round {round} took {took:?}"
        );
    }
    let started = Instant::now();
    assert!(matches!(
        store.set_auth(&c.value, &alice(), &AuthContext::default()),
        Err(Error::Unavailable { .. })
    ));
    assert!(started.elapsed() < Duration::from_secs(10));
    server.resume();
    // The handle works again once its probe found Redis back.
    wait_available(&store);
    assert!(store.exists(&c.value).unwrap());
    let d = store.create("cbtid", 24, 600).unwrap();
    assert!(store.exists(&d.value).unwrap());
}

/// A redis-server on a Unix socket only (`--port 0`), killed on drop.
struct UnixServer {
    child: std::process::Child,
    socket: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for UnixServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_unix_socket_url_opens_the_store() {
    if !need_redis() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("redis.sock");
    let child = common::redis_server::redis_server_command()
        .args([
            "--port",
            "0",
            "--save",
            "",
            "--appendonly",
            "no",
            "--unixsocketperm",
            "700",
        ])
        .arg("--unixsocket")
        .arg(&socket)
        .arg("--dir")
        .arg(dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let server = UnixServer {
        child,
        socket,
        _dir: dir,
    };
    let url = format!("redis+unix://{}?prefix=u:", server.socket.display());
    let deadline = Instant::now() + Duration::from_secs(20);
    let store = loop {
        match CookieStore::open(&url, StoreOptions::default()) {
            Ok(store) => break store,
            Err(Error::Unavailable { .. }) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Err(e) => panic!("{url}: {e}"),
        }
    };
    let c = store.create("cbtid", 24, 600).unwrap();
    assert!(store.exists(&c.value).unwrap());
    assert!(store.location().to_string().starts_with("redis+unix://"));
}
