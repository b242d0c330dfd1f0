//! The behaviour suite that both backends must pass, from one source: each case takes a
//! store factory and runs once on LMDB (a temporary directory) and once on Redis (a private
//! redis-server of the test; skipped with a message when redis-server is missing, except
//! under CI).
//!
//! Expiry on Redis is by Redis's clock: the cases use max_age 1 s and wait with a bounded
//! poll, never a timed assertion.

// A failed unwrap here (helpers included) is the test, bench or example failing.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::redis_server::{RedisServer, need_redis};
use cookiestore::maintenance::{
    ExportOptions, ImportOptions, ImportSummary, LegacySource, export, import_legacy, replay,
    restore,
};
use cookiestore::{
    Auth, AuthContext, AuthUpdate, Connections, Cookie, CookieStore, Error, RevocationKind,
    StoreOptions, Subscriber, Tracker, TrackerConfig, WatchEvent, Watcher,
};

/// Where a case's store lives; `open` may be called again for a second handle.
trait Factory {
    fn open(&self, options: StoreOptions) -> CookieStore;
    /// A second, separate store on the same backend (a restore's destination).
    fn open_other(&self, options: StoreOptions) -> CookieStore;
}

struct Lmdb(tempfile::TempDir);

impl Factory for Lmdb {
    fn open(&self, options: StoreOptions) -> CookieStore {
        CookieStore::open(self.0.path(), options).unwrap()
    }
    fn open_other(&self, options: StoreOptions) -> CookieStore {
        CookieStore::open(self.0.path().join("other"), options).unwrap()
    }
}

struct Redis(RedisServer);

impl Factory for Redis {
    fn open(&self, options: StoreOptions) -> CookieStore {
        CookieStore::open(self.0.url("test:"), options).unwrap()
    }
    fn open_other(&self, options: StoreOptions) -> CookieStore {
        CookieStore::open(self.0.url("other:"), options).unwrap()
    }
}

/// Runs every case on both backends: `cases!(name, ...)` makes `lmdb::name` and
/// `redis::name`.
macro_rules! cases {
    ($($name:ident),* $(,)?) => {
        mod lmdb {
            $(
                #[test]
                fn $name() {
                    super::$name(&super::Lmdb(tempfile::tempdir().unwrap()));
                }
            )*
        }
        mod redis {
            $(
                #[test]
                fn $name() {
                    if !super::need_redis() {
                        return;
                    }
                    super::$name(&super::Redis(super::RedisServer::start()));
                }
            )*
        }
    };
}

cases!(
    track_authenticate_and_look_up,
    set_auth_reports_missing_and_unchanged,
    clear_auth_keeps_the_cookie_anonymous,
    expiry_makes_a_cookie_absent,
    logout_deletes_and_is_revoked,
    logout_authid_deletes_only_that_users_cookies,
    subscriber_sees_each_revocation_once,
    watcher_reports_local_connections,
    trimmed_revocations_are_missed,
    put_get_and_duplicate_values,
    count_stats_and_records,
    read_only_handles_refuse_writes,
    lazy_lookups_read_the_same_auth,
    a_re_run_import_keeps_logged_out_cookies_out,
    an_export_restored_into_a_new_store_keeps_them_out,
    a_restore_into_a_store_with_cookies_is_refused_before_reading,
);

fn alice() -> Auth {
    Auth::new("alice", "user", "wampcra", "realm1")
}

/// Polls `cond` every 20 ms until it holds, at most `limit`.
fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn track_authenticate_and_look_up(f: &dyn Factory) {
    let tracker = Tracker::new(f.open(StoreOptions::default()), TrackerConfig::default()).unwrap();
    let first = tracker.track(Some(b"cbtid=unknown-value")).unwrap();
    assert!(first.is_new);
    assert!(
        first
            .set_cookie
            .starts_with(&format!("cbtid={};max-age=86400", first.value))
    );
    assert_eq!(first.authid(), first.value);
    assert_eq!(
        tracker
            .authenticate(&first.value, &alice(), &AuthContext::default().session(7))
            .unwrap(),
        AuthUpdate::Written
    );
    let header = format!("theme=dark; cbtid={}", first.value);
    let again = tracker.track(Some(header.as_bytes())).unwrap();
    assert!(!again.is_new);
    assert_eq!(again.value, first.value);
    assert_eq!(again.authid(), "alice");
    // Another handle (another worker) sees the same.
    let other = f.open(StoreOptions::default());
    assert_eq!(other.get_auth(&first.value).unwrap().unwrap(), alice());
    let lookup = other.lookup(&first.value).unwrap().unwrap();
    assert_eq!(lookup.max_age, 86_400);
    assert_eq!(lookup.auth, Some(alice()));
    let cookie = other.get(&first.value).unwrap().unwrap();
    assert_eq!(cookie.authenticated_session, 7);
    assert_eq!(cookie.name.as_deref(), Some("cbtid"));
    assert_eq!(lookup.oid, cookie.oid);
    assert_eq!(lookup.expires_at, cookie.expires_at());
    assert!(other.exists(&first.value).unwrap());
    assert!(!other.exists("no-such-value").unwrap());
    assert_eq!(other.get("no-such-value").unwrap(), None);
    assert_eq!(other.get_by_oid(cookie.oid).unwrap(), Some(cookie));
}

fn set_auth_reports_missing_and_unchanged(f: &dyn Factory) {
    let store = f.open(StoreOptions::default());
    let none = AuthContext::default();
    assert_eq!(
        store.set_auth("never-made", &alice(), &none).unwrap(),
        AuthUpdate::NoSuchCookie
    );
    let c = store.create("cbtid", 24, 3600).unwrap();
    assert_eq!(
        store.set_auth(&c.value, &alice(), &none).unwrap(),
        AuthUpdate::Written
    );
    assert_eq!(
        store.set_auth(&c.value, &alice(), &none).unwrap(),
        AuthUpdate::Unchanged
    );
    let bob = Auth::new("bob", "admin", "ticket", "realm1");
    assert_eq!(
        store.set_auth(&c.value, &bob, &none).unwrap(),
        AuthUpdate::Written
    );
    assert_eq!(store.get_auth(&c.value).unwrap(), Some(bob.clone()));
    // Authenticating never extends the lifetime.
    assert_eq!(
        store.lookup(&c.value).unwrap().unwrap().expires_at,
        c.expires_at()
    );
    assert!(store.delete(&c.value).unwrap());
    assert_eq!(
        store.set_auth(&c.value, &bob, &none).unwrap(),
        AuthUpdate::NoSuchCookie
    );
    assert!(
        !store.exists(&c.value).unwrap(),
        "a logged-out cookie stays gone"
    );
}

fn clear_auth_keeps_the_cookie_anonymous(f: &dyn Factory) {
    let store = f.open(StoreOptions::default());
    let other = f.open(StoreOptions::default());
    let ctx = AuthContext::default()
        .worker(Some("worker1".into()))
        .session(7);
    assert_eq!(
        store.clear_auth("never-made").unwrap(),
        AuthUpdate::NoSuchCookie
    );
    // An anonymous cookie: nothing to clear, nothing written.
    let c = store.create("cbtid", 24, 3600).unwrap();
    let (txn, feed) = (
        store.stats().unwrap().lmdb.map(|l| l.txn_id),
        store.revocations_since(0).unwrap().entries.len(),
    );
    assert_eq!(store.clear_auth(&c.value).unwrap(), AuthUpdate::Unchanged);
    assert_eq!(
        store.stats().unwrap().lmdb.map(|l| l.txn_id),
        txn,
        "an unchanged clear committed"
    );
    assert_eq!(store.revocations_since(0).unwrap().entries.len(), feed);

    // An authenticated one, seen by another handle first.
    store.set_auth(&c.value, &alice(), &ctx).unwrap();
    assert_eq!(other.get_auth(&c.value).unwrap(), Some(alice()));
    let feed = store.revocations_since(0).unwrap().next;
    assert_eq!(store.clear_auth(&c.value).unwrap(), AuthUpdate::Written);
    assert_eq!(other.get_auth(&c.value).unwrap(), None);
    assert_eq!(store.get_auth(&c.value).unwrap(), None);
    let lookup = other.lookup(&c.value).unwrap().unwrap();
    assert_eq!((lookup.auth, lookup.expires_at), (None, c.expires_at()));
    let kept = store.get(&c.value).unwrap().unwrap();
    assert_eq!((kept.oid, kept.authid.as_deref()), (c.oid, None));
    assert_eq!(
        (kept.authrole, kept.authmethod, kept.authrealm),
        (None, None, None)
    );
    // Where it was last authenticated stays, as in Crossbar.io's stores.
    assert_eq!(kept.authenticated_on_worker.as_deref(), Some("worker1"));
    assert_eq!(kept.authenticated_session, 7);
    assert_eq!(store.clear_auth(&c.value).unwrap(), AuthUpdate::Unchanged);
    // Not a revocation; on LMDB the feed tells caches of the change.
    let after = store.revocations_since(feed).unwrap().entries;
    assert!(!after.iter().any(|e| e.kind.revokes()), "{after:?}");
    if store.backend() == "lmdb" {
        assert_eq!(after.len(), 1, "{after:?}");
        assert_eq!(
            (after[0].kind, after[0].value.as_str(), after[0].oid),
            (RevocationKind::Auth, c.value.as_str(), c.oid)
        );
    }
    // Its old authid no longer finds it; a new login's does.
    assert_eq!(store.logout_authid("alice").unwrap(), 0);
    assert!(store.exists(&c.value).unwrap());
    let bob = Auth::new("bob", "user", "wampcra", "realm1");
    assert_eq!(
        store.set_auth(&c.value, &bob, &ctx).unwrap(),
        AuthUpdate::Written
    );
    assert_eq!(store.get_auth(&c.value).unwrap(), Some(bob));
    assert_eq!(store.logout_authid("bob").unwrap(), 1);
    assert_eq!(
        store.clear_auth(&c.value).unwrap(),
        AuthUpdate::NoSuchCookie,
        "a logged-out cookie"
    );
    // An expired one.
    let short = store.create("cbtid", 24, 1).unwrap();
    store.set_auth(&short.value, &alice(), &ctx).unwrap();
    assert!(
        wait_until(Duration::from_secs(15), || !store
            .exists(&short.value)
            .unwrap()),
        "a cookie with max_age 1 s is still there after 15 s"
    );
    assert_eq!(
        store.clear_auth(&short.value).unwrap(),
        AuthUpdate::NoSuchCookie
    );
    // A read-only handle refuses.
    let live = store.create("cbtid", 24, 3600).unwrap();
    store.set_auth(&live.value, &alice(), &ctx).unwrap();
    let reader = f.open(StoreOptions::default().readonly(true));
    assert!(matches!(
        reader.clear_auth(&live.value),
        Err(Error::ReadOnly { .. })
    ));
    assert_eq!(store.get_auth(&live.value).unwrap(), Some(alice()));
}

fn expiry_makes_a_cookie_absent(f: &dyn Factory) {
    let store = f.open(StoreOptions::default());
    let short = store.create("cbtid", 24, 1).unwrap();
    let long = store.create("cbtid", 24, 3600).unwrap();
    store
        .set_auth(&short.value, &alice(), &AuthContext::default())
        .unwrap();
    assert!(store.exists(&short.value).unwrap());
    assert!(
        wait_until(Duration::from_secs(15), || !store
            .exists(&short.value)
            .unwrap()),
        "a cookie with max_age 1 s is still there after 15 s"
    );
    assert_eq!(store.get(&short.value).unwrap(), None);
    assert_eq!(store.get_auth(&short.value).unwrap(), None);
    assert_eq!(store.lookup(&short.value).unwrap(), None);
    assert_eq!(
        store
            .set_auth(&short.value, &alice(), &AuthContext::default())
            .unwrap(),
        AuthUpdate::NoSuchCookie
    );
    assert!(store.exists(&long.value).unwrap());
    // A tracker given the expired cookie makes a new one.
    let tracker = Tracker::new(store.clone(), TrackerConfig::default()).unwrap();
    let header = format!("cbtid={}", short.value);
    let tracked = tracker.track(Some(header.as_bytes())).unwrap();
    assert!(tracked.is_new);
    assert_ne!(tracked.value, short.value);
    // Expiry is not a revocation; purge keeps the live cookie.
    store.purge_expired().unwrap();
    assert!(store.exists(&long.value).unwrap());
    let feed = store.revocations_since(0).unwrap().entries;
    assert!(!feed.iter().any(|e| e.kind.revokes()), "{feed:?}");
}

fn logout_deletes_and_is_revoked(f: &dyn Factory) {
    let store = f.open(StoreOptions::default());
    let c = store.create("cbtid", 24, 3600).unwrap();
    assert!(store.delete(&c.value).unwrap());
    assert!(!store.exists(&c.value).unwrap());
    assert!(!store.delete(&c.value).unwrap());
    let feed = store.revocations_since(0).unwrap();
    assert_eq!(feed.entries.len(), 1);
    let entry = &feed.entries[0];
    assert_eq!(entry.seq, 1);
    assert_eq!(entry.kind, RevocationKind::Logout);
    assert_eq!(entry.value, c.value);
    assert_eq!(entry.oid, c.oid);
    assert!(!feed.missed);
    assert_eq!(feed.next, 1);
    assert!(store.revocations_since(1).unwrap().entries.is_empty());
}

fn logout_authid_deletes_only_that_users_cookies(f: &dyn Factory) {
    let store = f.open(StoreOptions::default());
    let ctx = AuthContext::default();
    let a: Vec<Cookie> = (0..3)
        .map(|_| store.create("cbtid", 24, 3600).unwrap())
        .collect();
    for c in &a {
        store.set_auth(&c.value, &alice(), &ctx).unwrap();
    }
    // One of alice's cookies is re-authenticated as carol: alice's logout leaves it.
    let carol = Auth::new("carol", "user", "wampcra", "realm1");
    store.set_auth(&a[2].value, &carol, &ctx).unwrap();
    let b = store.create("cbtid", 24, 3600).unwrap();
    store
        .set_auth(
            &b.value,
            &Auth::new("bob", "user", "wampcra", "realm1"),
            &ctx,
        )
        .unwrap();
    let unauthenticated = store.create("cbtid", 24, 3600).unwrap();

    assert_eq!(store.logout_authid("alice").unwrap(), 2);
    assert!(!store.exists(&a[0].value).unwrap());
    assert!(!store.exists(&a[1].value).unwrap());
    assert_eq!(store.get_auth(&a[2].value).unwrap(), Some(carol));
    assert!(store.exists(&b.value).unwrap());
    assert!(store.exists(&unauthenticated.value).unwrap());
    assert_eq!(store.logout_authid("alice").unwrap(), 0);
    assert_eq!(store.logout_authid("nobody").unwrap(), 0);

    // The revocations (on LMDB the feed also lists the auth changes, for caches).
    let feed = store.revocations_since(0).unwrap();
    let revocations: Vec<_> = feed.entries.iter().filter(|e| e.kind.revokes()).collect();
    let mut revoked: Vec<&str> = revocations.iter().map(|e| e.value.as_str()).collect();
    revoked.sort_unstable();
    let mut expected = vec![a[0].value.as_str(), a[1].value.as_str()];
    expected.sort_unstable();
    assert_eq!(revoked, expected);
    assert!(revocations.iter().all(|e| e.kind == RevocationKind::Authid));
    // carol's cookie is found by carol's logout.
    assert_eq!(store.logout_authid("carol").unwrap(), 1);
    assert!(!store.exists(&a[2].value).unwrap());
}

fn subscriber_sees_each_revocation_once(f: &dyn Factory) {
    let store = f.open(StoreOptions::default());
    let early = store.create("cbtid", 24, 3600).unwrap();
    store.delete(&early.value).unwrap();
    // A new subscriber starts at the end of the feed.
    let mut sub = Subscriber::new(&f.open(StoreOptions::default())).unwrap();
    assert!(sub.poll().unwrap().entries.is_empty());
    let c1 = store.create("cbtid", 24, 3600).unwrap();
    let c2 = store.create("cbtid", 24, 3600).unwrap();
    store.delete(&c1.value).unwrap();
    store.delete(&c2.value).unwrap();
    let found = sub.poll().unwrap();
    let values: Vec<&str> = found.entries.iter().map(|e| e.value.as_str()).collect();
    assert_eq!(values, [c1.value.as_str(), c2.value.as_str()]);
    assert!(found.entries[0].seq < found.entries[1].seq);
    assert!(!found.missed);
    assert_eq!(sub.position(), found.entries[1].seq);
    assert!(sub.poll().unwrap().entries.is_empty());
    // A subscriber from an older position catches up.
    let mut behind = Subscriber::starting_after(&store, 0);
    assert_eq!(behind.poll().unwrap().entries.len(), 3);
}

fn watcher_reports_local_connections(f: &dyn Factory) {
    let store = f.open(StoreOptions::default());
    let c = store.create("cbtid", 24, 3600).unwrap();
    let registry = Arc::new(Connections::new());
    registry.register(&c.value, 41u32);
    registry.register(&c.value, 42u32);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let _watcher = Watcher::spawn(
        &f.open(StoreOptions::default()),
        registry,
        Duration::from_millis(50),
        move |event| {
            if let WatchEvent::Revoked { connections, .. } = event {
                sink.lock().unwrap().extend(connections);
            }
        },
    )
    .unwrap();
    store.delete(&c.value).unwrap();
    assert!(
        wait_until(Duration::from_secs(10), || seen.lock().unwrap().len() == 2),
        "the watcher did not report the connections within 10 s: {:?}",
        seen.lock().unwrap()
    );
    assert_eq!(*seen.lock().unwrap(), [41, 42]);
}

fn trimmed_revocations_are_missed(f: &dyn Factory) {
    let store = f.open(StoreOptions::default().revocation_retention_secs(0));
    let mut sub = Subscriber::new(&store).unwrap();
    for _ in 0..3 {
        let c = store.create("cbtid", 24, 3600).unwrap();
        store.delete(&c.value).unwrap();
    }
    std::thread::sleep(Duration::from_millis(5));
    store.purge_expired().unwrap(); // retention 0: trims every entry
    let found = sub.poll().unwrap();
    assert!(found.missed, "{found:?}");
    assert!(found.entries.is_empty());
    assert_eq!(found.next, 3);
    assert!(store.revocations_since(0).unwrap().missed);
    assert!(!store.revocations_since(3).unwrap().missed);
    // Later entries are read normally.
    let c = store.create("cbtid", 24, 3600).unwrap();
    store.delete(&c.value).unwrap();
    let found = sub.poll().unwrap();
    assert!(!found.missed);
    assert_eq!(found.entries.len(), 1);
    assert_eq!(found.entries[0].seq, 4);
}

fn put_get_and_duplicate_values(f: &dyn Factory) {
    let store = f.open(StoreOptions::default());
    let now = store.now_ns();
    let cookie = Cookie {
        oid: uuid::Uuid::new_v4(),
        created: now,
        max_age: 3600,
        name: Some("cbtid".into()),
        value: "restored-value-0001".into(),
        authid: Some("dave".into()),
        authrole: Some("user".into()),
        authmethod: Some("ticket".into()),
        authrealm: Some("realm1".into()),
        ..Cookie::default()
    };
    store.put(&cookie).unwrap();
    assert_eq!(store.get(&cookie.value).unwrap().as_ref(), Some(&cookie));
    let twin = Cookie {
        oid: uuid::Uuid::new_v4(),
        ..cookie.clone()
    };
    match store.put(&twin) {
        Err(Error::DuplicateValue { existing, .. }) => assert_eq!(existing, cookie.oid),
        other => panic!("expected DuplicateValue, got {other:?}"),
    }
    // The same oid replaces.
    let changed = Cookie {
        authrole: Some("admin".into()),
        ..cookie.clone()
    };
    store.put(&changed).unwrap();
    assert_eq!(store.get(&cookie.value).unwrap(), Some(changed));
    // put keeps the authid index: logout by authid finds it.
    assert_eq!(store.logout_authid("dave").unwrap(), 1);
    let bad = Cookie {
        value: "has space".into(),
        ..cookie.clone()
    };
    assert!(matches!(store.put(&bad), Err(Error::InvalidValue { .. })));
}

fn count_stats_and_records(f: &dyn Factory) {
    let store = f.open(StoreOptions::default());
    let made: Vec<Cookie> = (0..5)
        .map(|_| store.create("cbtid", 24, 3600).unwrap())
        .collect();
    store
        .set_auth(&made[0].value, &alice(), &AuthContext::default())
        .unwrap();
    assert_eq!(store.count().unwrap(), 5);
    let stats = store.stats().unwrap();
    assert_eq!(stats.live, 5);
    assert_eq!(stats.authenticated, 1);
    assert_eq!(stats.corrupt, 0);
    assert_eq!(stats.oldest_created, Some(made[0].created));
    // Each backend fills its own part of the figures, and only its own.
    match store.backend() {
        "lmdb" => {
            assert!(stats.redis.is_none(), "{stats:?}");
            let lmdb = stats.lmdb.as_ref().expect("LMDB's figures");
            assert_eq!(lmdb.value_index_entries, 5);
            assert!(
                lmdb.map_used > 0 && lmdb.map_used <= lmdb.map_size,
                "{lmdb:?}"
            );
        }
        "redis" => {
            assert!(stats.lmdb.is_none(), "{stats:?}");
            let redis = stats.redis.as_ref().expect("Redis's figures");
            assert_eq!((redis.feed_entries, redis.last_revocation), (0, 0));
            assert_eq!(redis.maxmemory_policy.as_deref(), Some("noeviction"));
        }
        other => panic!("a backend this test does not know: {other}"),
    }
    let mut seen = Vec::new();
    store
        .for_each_record(|c| {
            seen.push(c?.oid);
            Ok(true)
        })
        .unwrap();
    seen.sort();
    let mut expected: Vec<_> = made.iter().map(|c| c.oid).collect();
    expected.sort();
    assert_eq!(seen, expected);
    let mut first = 0;
    store
        .for_each_record(|_| {
            first += 1;
            Ok(false)
        })
        .unwrap();
    assert_eq!(first, 1);
    // A logout: on Redis one entry more in the feed's figures.
    store.delete(&made[1].value).unwrap();
    let after = store.stats().unwrap();
    assert_eq!(after.live, 4);
    if let Some(redis) = after.redis {
        assert_eq!((redis.feed_entries, redis.last_revocation > 0), (1, true));
    }
}

fn read_only_handles_refuse_writes(f: &dyn Factory) {
    let writer = f.open(StoreOptions::default());
    let c = writer.create("cbtid", 24, 3600).unwrap();
    let reader = f.open(StoreOptions::default().readonly(true));
    assert!(reader.exists(&c.value).unwrap());
    assert!(matches!(
        reader.create("cbtid", 24, 60),
        Err(Error::ReadOnly { .. })
    ));
    assert!(matches!(
        reader.set_auth(&c.value, &alice(), &AuthContext::default()),
        Err(Error::ReadOnly { .. })
    ));
    assert!(matches!(
        reader.delete(&c.value),
        Err(Error::ReadOnly { .. })
    ));
    assert!(matches!(
        reader.logout_authid("alice"),
        Err(Error::ReadOnly { .. })
    ));
    assert!(writer.exists(&c.value).unwrap());
}

fn lazy_lookups_read_the_same_auth(f: &dyn Factory) {
    let store = f.open(StoreOptions::default());
    let c = store.create("cbtid", 24, 3600).unwrap();
    let auth = alice().with_authextra(serde_json::json!({"groups": ["ops"], "n": 7}));
    store
        .set_auth(&c.value, &auth, &AuthContext::default())
        .unwrap();
    let seen = store
        .with_auth(&c.value, |a| {
            (a.authid().to_string(), a.authextra().unwrap())
        })
        .unwrap();
    assert_eq!(seen, Some(("alice".to_string(), auth.authextra.clone())));
    let owned = store.with_auth(&c.value, |a| a.to_auth().unwrap());
    assert_eq!(owned.unwrap(), Some(auth.clone()));
    let max_age = store.with_lookup(&c.value, |l| l.max_age()).unwrap();
    assert_eq!(max_age, Some(3600));
    let tracker = Tracker::new(store.clone(), TrackerConfig::default()).unwrap();
    let header = format!("cbtid={}", c.value);
    let tracked = tracker.track(Some(header.as_bytes())).unwrap();
    assert!(!tracked.is_new);
    assert_eq!(tracked.authid(), "alice");
    // Unknown, unauthenticated and logged-out cookies give nothing.
    assert_eq!(store.with_auth("no-such-cookie", |_| ()).unwrap(), None);
    let anon = store.create("cbtid", 24, 3600).unwrap();
    assert_eq!(store.with_auth(&anon.value, |_| ()).unwrap(), None);
    assert!(
        store
            .with_lookup(&anon.value, |l| l.auth().is_none())
            .unwrap()
            .unwrap()
    );
    store.delete(&c.value).unwrap();
    assert!(store.with_auth(&c.value, |_| ()).unwrap().is_none());
}

/// Values of the import cases: a 24-byte one as Crossbar.io draws them, and one of 505 bytes
/// (the longest values, 501 to 509 bytes, are keys of their own length in LMDB).
const SHORT: &str = "Ho2ymDYyrEX1aWT4+tLv/Ppb";
const KEPT: &str = "qhlV0uXc3mBNNFMRLbVL8Ij5";

fn long_value() -> String {
    "0123456789abcdef+/ABCDEFGHIJ".repeat(20)[..505].to_string()
}

/// A `cookies.dat` whose cookies were created an hour before `now` with a week's max_age,
/// each authenticated as its authid when it has one.
fn cookies_dat(now: u64, cookies: &[(&str, Option<&str>)]) -> LegacySource {
    let created = cookiestore::format_rfc3339_ns(now - 3_600_000_000_000);
    let mut text = String::new();
    for (value, authid) in cookies {
        let line = serde_json::json!({
            "cbtid": value, "status": "created", "created": created, "modified": null,
            "deleted": null, "max_age": 604800, "authid": authid, "authrole": "user",
            "authmethod": "wampcra", "authrealm": "realm1", "authextra": null,
        });
        text.push_str(&line.to_string());
        text.push('\n');
    }
    let replay = replay(text.as_bytes()).unwrap();
    assert!(replay.bad_lines.is_empty(), "{:?}", replay.bad_lines);
    LegacySource::from(replay)
}

fn import(store: &CookieStore, source: &LegacySource, options: ImportOptions) -> ImportSummary {
    import_legacy(store, source, store.now_ns(), &options, &mut |_| {}).unwrap()
}

fn a_re_run_import_keeps_logged_out_cookies_out(f: &dyn Factory) {
    let store = f.open(StoreOptions::default());
    let long = long_value();
    let source = cookies_dat(
        store.now_ns(),
        &[(SHORT, Some("alice")), (&long, Some("bob")), (KEPT, None)],
    );
    let first = import(&store, &source, ImportOptions::default());
    assert_eq!(
        (first.imported, first.skipped_logged_out),
        (3, 0),
        "{first:?}"
    );
    assert!(store.delete(SHORT).unwrap());
    assert_eq!(store.logout_authid("bob").unwrap(), 1);
    for dry_run in [true, false] {
        let again = import(&store, &source, ImportOptions::default().dry_run(dry_run));
        assert_eq!(
            (again.imported, again.unchanged, again.skipped_logged_out),
            (0, 1, 2),
            "dry run {dry_run}: {again:?}"
        );
    }
    assert_eq!(
        store.get_auth(SHORT).unwrap(),
        None,
        "logged out, stays out"
    );
    assert_eq!(
        store.get_auth(&long).unwrap(),
        None,
        "505 bytes: stays out too"
    );
    // --force brings both back, with their authentication.
    let forced = import(&store, &source, ImportOptions::default().force(true));
    assert_eq!(
        (forced.imported, forced.skipped_logged_out),
        (2, 0),
        "{forced:?}"
    );
    assert_eq!(
        store.get_auth(&long).unwrap().map(|a| a.authid),
        Some("bob".to_string())
    );
    // Logged out once more: kept out once more.
    assert!(store.delete(&long).unwrap());
    let again = import(&store, &source, ImportOptions::default());
    assert_eq!(
        (again.imported, again.skipped_logged_out),
        (0, 1),
        "{again:?}"
    );
    assert!(!store.exists(&long).unwrap());
}

fn an_export_restored_into_a_new_store_keeps_them_out(f: &dyn Factory) {
    let store = f.open(StoreOptions::default());
    let long = long_value();
    let source = cookies_dat(
        store.now_ns(),
        &[(SHORT, Some("alice")), (&long, Some("bob")), (KEPT, None)],
    );
    assert_eq!(
        import(&store, &source, ImportOptions::default()).imported,
        3
    );
    assert!(store.delete(SHORT).unwrap());
    assert!(store.delete(&long).unwrap());
    let mut exported = Vec::new();
    export(&store, &mut exported, ExportOptions::default(), &mut |_| {}).unwrap();

    let other = f.open_other(StoreOptions::default());
    let restored = restore(&other, &mut &exported[..], false, &mut |_| {}).unwrap();
    assert_eq!(restored.restored, 1, "{restored:?}");
    assert!(restored.bad_lines.is_empty(), "{restored:?}");
    // Still live when exported, logged out in the new store: kept out as well.
    assert!(other.delete(KEPT).unwrap());
    let again = import(&other, &source, ImportOptions::default());
    assert_eq!(
        (again.imported, again.skipped_logged_out),
        (0, 3),
        "{again:?}"
    );
    for value in [SHORT, long.as_str(), KEPT] {
        assert!(!other.exists(value).unwrap(), "{value} came back");
    }
    let forced = import(&other, &source, ImportOptions::default().force(true));
    assert_eq!(forced.imported, 3, "{forced:?}");
    assert!(other.exists(&long).unwrap());
}

/// An input that counts its reads and fails each: a restore that reads it fails with its
/// error, not the store's.
struct Unreadable(usize);

impl std::io::Read for Unreadable {
    fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
        self.0 += 1;
        Err(std::io::Error::other("the test's input cannot be read"))
    }
}

fn a_restore_into_a_store_with_cookies_is_refused_before_reading(f: &dyn Factory) {
    let store = f.open(StoreOptions::default());
    let kept = store.create("cbtid", 24, 3600).unwrap();
    let mut exported = Vec::new();
    export(&store, &mut exported, ExportOptions::default(), &mut |_| {}).unwrap();
    let other = store.create("cbtid", 24, 3600).unwrap();

    let mut input = std::io::BufReader::new(Unreadable(0));
    let err = restore(&store, &mut input, false, &mut |_| {}).unwrap_err();
    assert!(
        matches!(err, Error::NotEmpty { records: 2, .. }),
        "the store's two cookies refuse it: {err:?}"
    );
    assert!(err.to_string().contains("--merge"), "{err}");
    assert_eq!(input.into_inner().0, 0, "no line was read");

    // The export of the first cookie, restored without --merge: refused, nothing changed.
    let err = restore(&store, &mut &exported[..], false, &mut |_| {}).unwrap_err();
    assert!(matches!(err, Error::NotEmpty { .. }), "{err:?}");
    assert_eq!(store.count().unwrap(), 2);
    assert_eq!(store.get(&kept.value).unwrap(), Some(kept.clone()));
    assert!(store.exists(&other.value).unwrap());
    let merged = restore(&store, &mut &exported[..], true, &mut |_| {}).unwrap();
    assert_eq!((merged.restored, merged.unchanged), (0, 1), "{merged:?}");
}
