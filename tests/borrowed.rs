//! The borrowed reads: `with_auth` and `with_lookup` answer what `get_auth` and `lookup`
//! answer, without copying, and without decoding authextra until asked; from this
//! process's cache when it holds the cookie, from the record when there is no cache.

// A failed unwrap here (helpers included) is the test, bench or example failing.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::sync::Arc;

use cookiestore::{Auth, CookieStore, Error, ManualClock, StoreOptions};
use serde_json::json;

const NOW: u64 = 1_800_000_000_000_000_000;

fn auth() -> Auth {
    let mut a = Auth::new("alice", "user", "wampcra", "realm1");
    a.authextra = json!({"k": [1, 2], "s": "ü"});
    a
}

/// The two ways a borrowed read is answered: the cache (the default) and the record.
const CACHES: [(&str, u64); 2] = [("cached", 64 << 20), ("uncached", 0)];

fn open(dir: &Path, cache_bytes: u64) -> (CookieStore, ManualClock) {
    let (options, clock) = common::options_at(NOW);
    let store = CookieStore::open(dir, options.cache_bytes(cache_bytes)).unwrap();
    (store, clock)
}

#[test]
fn borrowed_answers_match_the_owned_ones() {
    for (name, cache_bytes) in CACHES {
        let dir = tempfile::tempdir().unwrap();
        let (store, _clock) = open(dir.path(), cache_bytes);
        let c = store.create("cbtid", 24, 3_600).unwrap();
        // Known but unauthenticated: no auth, but a lookup.
        assert_eq!(store.with_auth(&c.value, |_| ()).unwrap(), None, "{name}");
        let l = store.with_lookup(&c.value, |l| {
            (l.oid(), l.expires_at(), l.max_age(), l.auth().is_none())
        });
        let owned = store.lookup(&c.value).unwrap().unwrap();
        assert_eq!(
            l.unwrap(),
            Some((owned.oid, owned.expires_at, owned.max_age, true)),
            "{name}"
        );

        store
            .set_auth(&c.value, &auth(), &Default::default())
            .unwrap();
        // Twice: the first call may read the record (and fill the cache), the second is a hit.
        for _ in 0..2 {
            let got = store
                .with_auth(&c.value, |a| {
                    assert_eq!(a.authid(), "alice");
                    assert_eq!(a.authrole(), Some("user"));
                    assert_eq!(a.authmethod(), Some("wampcra"));
                    assert_eq!(a.authrealm(), Some("realm1"));
                    assert_eq!(a.authextra().unwrap(), json!({"k": [1, 2], "s": "ü"}));
                    assert_eq!(a.oid(), c.oid);
                    a.to_auth().unwrap()
                })
                .unwrap();
            assert_eq!(got, Some(auth()), "{name}");
            let seen = store
                .with_lookup(&c.value, |l| {
                    (l.max_age(), l.auth().map(|a| a.authid().to_string()))
                })
                .unwrap();
            assert_eq!(seen, Some((3_600, Some("alice".to_string()))), "{name}");
        }
        assert_eq!(store.get_auth(&c.value).unwrap(), Some(auth()), "{name}");

        // Missing fields stay missing (an empty realm too); no authextra reads as {}.
        let d = store.create("cbtid", 24, 3_600).unwrap();
        let bare = Auth {
            authid: "bob".into(),
            authrole: None,
            authmethod: None,
            authrealm: Some("".into()),
            authextra: json!({}),
        };
        store
            .set_auth(&d.value, &bare, &Default::default())
            .unwrap();
        let seen = store
            .with_auth(&d.value, |a| {
                let own = |s: Option<&str>| s.map(str::to_string);
                let fields = (
                    a.authid().to_string(),
                    own(a.authrole()),
                    own(a.authmethod()),
                    own(a.authrealm()),
                );
                (fields, a.authextra().unwrap(), a.to_auth().unwrap())
            })
            .unwrap()
            .unwrap();
        // An empty string is stored as absent, as get_auth reads it.
        assert_eq!(seen.0, ("bob".to_string(), None, None, None), "{name}");
        assert_eq!(seen.1, json!({}), "{name}");
        assert_eq!(Some(seen.2), store.get_auth(&d.value).unwrap(), "{name}");
    }
}

#[test]
fn with_the_cache_on_borrowed_reads_are_hits_and_never_stale() {
    let dir = tempfile::tempdir().unwrap();
    let (store, clock) = open(dir.path(), 64 << 20);
    let lmdb = store.as_lmdb().unwrap();
    let c = store.create("cbtid", 24, 3_600).unwrap();
    store
        .set_auth(&c.value, &auth(), &Default::default())
        .unwrap();
    let before = lmdb.cache_stats();
    for _ in 0..10 {
        assert_eq!(
            store.with_auth(&c.value, |a| a.authid().len()).unwrap(),
            Some(5)
        );
    }
    let after = lmdb.cache_stats();
    assert_eq!(after.misses - before.misses, 1, "{after:?}");
    assert_eq!(after.hits - before.hits, 9, "{after:?}");

    // A logout through another handle (on the same pinned clock: the cookies' expiry is
    // judged by it): the cache catches up from the feed before it answers again.
    let other_options = StoreOptions::default().clock(Arc::new(clock.clone()));
    let other = CookieStore::open(dir.path(), other_options).unwrap();
    assert_eq!(other.logout_authid("alice").unwrap(), 1);
    assert_eq!(store.with_auth(&c.value, |_| ()).unwrap(), None);
    assert_eq!(store.with_lookup(&c.value, |_| ()).unwrap(), None);

    // A change of role, too.
    let d = store.create("cbtid", 24, 3_600).unwrap();
    store
        .set_auth(&d.value, &auth(), &Default::default())
        .unwrap();
    assert_eq!(
        store
            .with_auth(&d.value, |a| a.authrole() == Some("user"))
            .unwrap(),
        Some(true)
    );
    let admin = Auth::new("alice", "admin", "wampcra", "realm1");
    assert_eq!(
        other
            .set_auth(&d.value, &admin, &Default::default())
            .unwrap(),
        cookiestore::AuthUpdate::Written
    );
    assert_eq!(
        store
            .with_auth(&d.value, |a| a.authrole().map(str::to_string))
            .unwrap(),
        Some(Some("admin".to_string()))
    );
}

#[test]
fn absent_expired_and_logged_out_cookies_do_not_call_the_closure() {
    for (name, cache_bytes) in CACHES {
        let dir = tempfile::tempdir().unwrap();
        let (store, clock) = open(dir.path(), cache_bytes);
        let c = store.create("cbtid", 24, 10).unwrap();
        store
            .set_auth(&c.value, &auth(), &Default::default())
            .unwrap();
        fn never(_: cookiestore::AuthRef<'_>) {
            panic!("called for a cookie that is not live")
        }
        assert_eq!(
            store.with_auth("no-such-cookie-value-xyz", never).unwrap(),
            None,
            "{name}"
        );
        // Cached while live, then expired by the clock alone: the cache judges expiry too.
        assert!(store.with_auth(&c.value, |_| ()).unwrap().is_some());
        clock.advance_secs(11);
        assert_eq!(store.with_auth(&c.value, never).unwrap(), None, "{name}");
        assert_eq!(
            store.with_lookup(&c.value, |_| panic!("expired")).unwrap(),
            None::<()>,
            "{name}"
        );
        clock.set(NOW);
        assert!(store.with_auth(&c.value, |_| ()).unwrap().is_some());
        store.delete(&c.value).unwrap();
        assert_eq!(store.with_auth(&c.value, never).unwrap(), None, "{name}");
    }
}

#[test]
fn the_closure_runs_outside_any_transaction_only_when_the_cache_answers() {
    for (name, cache_bytes) in CACHES {
        let dir = tempfile::tempdir().unwrap();
        let (store, _clock) = open(dir.path(), cache_bytes);
        let c = store.create("cbtid", 24, 3_600).unwrap();
        store
            .set_auth(&c.value, &auth(), &Default::default())
            .unwrap();
        let inner = store
            .with_auth(&c.value, |_| store.get_auth(&c.value))
            .unwrap()
            .unwrap();
        if cache_bytes == 0 {
            // Inside the read transaction: the store refuses to be called again.
            assert!(matches!(inner, Err(Error::NestedTransaction)), "{name}");
        } else {
            assert_eq!(inner.unwrap(), Some(auth()), "{name}");
        }
        // A panic inside the closure leaves the store usable.
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            store.with_lookup(&c.value, |_| panic!("boom")).unwrap();
        }));
        assert!(r.is_err(), "{name}");
        assert!(store.get_auth(&c.value).unwrap().is_some(), "{name}");
    }
}

#[test]
fn inside_a_batch_a_borrowed_read_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = CookieStore::open(dir.path(), StoreOptions::default()).unwrap();
    let c = store.create("cbtid", 24, 3_600).unwrap();
    let inner = store
        .lmdb("batch")
        .unwrap()
        .batch("a test batch", |_| {
            Ok(store.with_lookup(&c.value, |l| l.max_age()))
        })
        .unwrap();
    assert!(matches!(inner, Err(Error::NestedTransaction)), "{inner:?}");
}

#[test]
fn undecodable_authextra_is_an_error_only_when_decoded() {
    let dir = tempfile::tempdir().unwrap();
    let store = CookieStore::open(dir.path(), StoreOptions::default()).unwrap();
    let mut c = store.create("cbtid", 24, 3_600).unwrap();
    c.authid = Some("mallory".into());
    c.authextra = json!({"a": 1});
    store.put(&c).unwrap();
    // Damage authextra's CBOR in place: a map header announcing entries that are not there.
    let oid = c.oid;
    drop(store);
    let mut key = Vec::new();
    common::with_raw_env(dir.path(), |txn, db| {
        let found: Vec<(Vec<u8>, Vec<u8>)> = db
            .iter(txn)
            .unwrap()
            .map(|e| e.unwrap())
            .filter(|(k, _)| k.len() == 18 && &k[2..] == oid.as_bytes())
            .map(|(k, v)| (k.to_vec(), v.to_vec()))
            .collect();
        assert_eq!(found.len(), 1);
        let (k, mut v) = found.into_iter().next().unwrap();
        // {"a": 1} is A1 61 61 01: make it announce 9 entries.
        let at = v
            .windows(4)
            .position(|w| w == [0xA1, 0x61, 0x61, 0x01])
            .unwrap();
        v[at] = 0xA9;
        db.put(txn, &k, &v).unwrap();
        key = k;
    });
    assert!(!key.is_empty());
    // Without a cache, the authid reads and authextra reports the damaged record.
    let store = CookieStore::open(dir.path(), StoreOptions::default().cache_bytes(0)).unwrap();
    let (authid, extra) = store
        .with_auth(&c.value, |a| (a.authid().to_string(), a.authextra()))
        .unwrap()
        .unwrap();
    assert_eq!(authid, "mallory");
    assert!(matches!(extra, Err(Error::CorruptRecord { oid: o, .. }) if o == oid));
    assert!(matches!(
        store.get_auth(&c.value),
        Err(Error::CorruptRecord { .. })
    ));
    // With one (a fresh environment: the first open of a path in a process sets its cache),
    // the read that fills the cache decodes authextra, so the borrowed read reports it.
    drop(store);
    let cached = CookieStore::open(dir.path(), StoreOptions::default()).unwrap();
    assert!(cached.as_lmdb().unwrap().cache_stats().capacity_bytes > 0);
    assert!(matches!(
        cached.get_auth(&c.value),
        Err(Error::CorruptRecord { .. })
    ));
    assert!(matches!(
        cached.with_auth(&c.value, |a| a.authid().to_string()),
        Err(Error::CorruptRecord { .. })
    ));
}

#[test]
fn track_with_answers_as_track() {
    use cookiestore::{Tracker, TrackerConfig};
    for (name, cache_bytes) in CACHES {
        let dir = tempfile::tempdir().unwrap();
        let (store, clock) = open(dir.path(), cache_bytes);
        let tracker = Tracker::new(store, TrackerConfig::default()).unwrap();
        // No cookie sent: a new one, unauthenticated; its value is its authid.
        let first = tracker
            .track_with(None, |t| {
                assert_eq!(t.authid(), t.value);
                (t.value.to_string(), t.is_new, t.auth.is_none())
            })
            .unwrap();
        assert!(first.1 && first.2, "{name}");
        let header = format!("theme=dark; cbtid=unknown; cbtid={}", first.0);
        let seen = |t: cookiestore::TrackedRef<'_>| {
            (
                t.value.to_string(),
                t.is_new,
                t.set_cookie.to_string(),
                t.auth.map(|a| a.to_auth().unwrap()),
            )
        };
        let owned = |t: cookiestore::Tracked| (t.value, t.is_new, t.set_cookie, t.auth);
        tracker
            .authenticate(&first.0, &auth(), &Default::default())
            .unwrap();
        clock.advance_secs(100); // the Set-Cookie's max-age is what is left
        for _ in 0..2 {
            let borrowed = tracker.track_with(Some(header.as_bytes()), seen).unwrap();
            let track = owned(tracker.track(Some(header.as_bytes())).unwrap());
            assert_eq!(borrowed, track, "{name}");
            assert!(!borrowed.1 && borrowed.3 == Some(auth()), "{name}");
        }
        // Logged out: the next connection gets a new cookie.
        tracker.logout(&first.0).unwrap();
        let after = tracker.track_with(Some(header.as_bytes()), seen).unwrap();
        assert!(after.1 && after.0 != first.0 && after.3.is_none(), "{name}");
    }
}
