//! The lazy lookups: `with_auth`, `with_lookup`, `get_auth_lazy` and `Tracker::track_lazy`
//! answer what `get_auth`, `lookup` and `track` answer, without decoding authextra until asked.

// A failed unwrap here (helpers included) is the test, bench or example failing.
#![allow(clippy::unwrap_used)]

mod common;

use cookiestore::{Auth, CookieStore, Error, StoreOptions, Tracker, TrackerConfig};
use serde_json::json;

const NOW: u64 = 1_800_000_000_000_000_000;

fn auth() -> Auth {
    let mut a = Auth::new("alice", "user", "wampcra", "realm1");
    a.authextra = json!({"k": [1, 2], "s": "ü"});
    a
}

#[test]
fn borrowed_and_lazy_answers_match_the_owned_ones() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _clock) = common::open_at(dir.path(), NOW);
    let c = store.create("cbtid", 24, 3_600).unwrap();
    // Known but unauthenticated: no auth, but a lookup.
    assert_eq!(store.with_auth(&c.value, |_| ()).unwrap(), None);
    assert_eq!(store.get_auth_lazy(&c.value).unwrap(), None);
    let l = store.with_lookup(&c.value, |l| {
        (l.oid(), l.expires_at(), l.max_age(), l.auth().is_none())
    });
    let owned = store.lookup(&c.value).unwrap().unwrap();
    assert_eq!(
        l.unwrap(),
        Some((owned.oid, owned.expires_at, owned.max_age, true))
    );

    store
        .set_auth(&c.value, &auth(), &Default::default())
        .unwrap();
    let got = store
        .with_auth(&c.value, |a| {
            assert_eq!(a.authid(), "alice");
            assert_eq!(a.authrole(), Some("user"));
            assert_eq!(a.authmethod(), Some("wampcra"));
            assert_eq!(a.authrealm(), Some("realm1"));
            assert!(!a.authextra_cbor().is_empty());
            assert_eq!(a.authextra().unwrap(), json!({"k": [1, 2], "s": "ü"}));
            assert_eq!(a.oid(), c.oid);
            a.to_auth().unwrap()
        })
        .unwrap();
    assert_eq!(got, Some(auth()));
    assert_eq!(store.get_auth(&c.value).unwrap(), Some(auth()));

    let lazy = store.get_auth_lazy(&c.value).unwrap().unwrap();
    assert_eq!(lazy.authid(), "alice");
    assert_eq!(lazy.authrole(), Some("user"));
    assert_eq!(lazy.authmethod(), Some("wampcra"));
    assert_eq!(lazy.authrealm(), Some("realm1"));
    assert_eq!(lazy.to_auth().unwrap(), auth());
    assert_eq!(lazy.oid(), c.oid);
    let borrowed_cbor = store
        .with_auth(&c.value, |a| a.authextra_cbor().to_vec())
        .unwrap()
        .unwrap();
    assert_eq!(lazy.authextra_cbor(), borrowed_cbor.as_slice());

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
    let lazy = store.get_auth_lazy(&d.value).unwrap().unwrap();
    assert_eq!(
        (
            lazy.authid(),
            lazy.authrole(),
            lazy.authmethod(),
            lazy.authrealm()
        ),
        // An empty string is stored as absent, as get_auth reads it.
        ("bob", None, None, None)
    );
    assert_eq!(lazy.authextra().unwrap(), json!({}));
    assert_eq!(
        lazy.to_auth().unwrap(),
        store.get_auth(&d.value).unwrap().unwrap()
    );
}

#[test]
fn absent_expired_and_logged_out_cookies_do_not_call_the_closure() {
    let dir = tempfile::tempdir().unwrap();
    let (store, clock) = common::open_at(dir.path(), NOW);
    let c = store.create("cbtid", 24, 10).unwrap();
    store
        .set_auth(&c.value, &auth(), &Default::default())
        .unwrap();
    fn never(_: cookiestore::AuthRef<'_>) {
        panic!("called for a cookie that is not live")
    }
    assert_eq!(
        store.with_auth("no-such-cookie-value-xyz", never).unwrap(),
        None
    );
    clock.advance_secs(11);
    assert_eq!(store.with_auth(&c.value, never).unwrap(), None);
    assert_eq!(
        store.with_lookup(&c.value, |_| panic!("expired")).unwrap(),
        None::<()>
    );
    clock.set(NOW);
    assert!(store.with_auth(&c.value, |_| ()).unwrap().is_some());
    store.delete(&c.value).unwrap();
    assert_eq!(store.with_auth(&c.value, never).unwrap(), None);
    assert_eq!(store.get_auth_lazy(&c.value).unwrap(), None);
}

#[test]
fn the_store_cannot_be_called_from_inside_the_closure() {
    let dir = tempfile::tempdir().unwrap();
    let store = CookieStore::open(dir.path(), StoreOptions::default()).unwrap();
    let c = store.create("cbtid", 24, 3_600).unwrap();
    store
        .set_auth(&c.value, &auth(), &Default::default())
        .unwrap();
    let inner = store
        .with_auth(&c.value, |_| store.get_auth(&c.value))
        .unwrap()
        .unwrap();
    assert!(matches!(inner, Err(Error::NestedTransaction)));
    // A panic inside the closure leaves the store usable.
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        store.with_lookup(&c.value, |_| panic!("boom")).unwrap();
    }));
    assert!(r.is_err());
    assert!(store.get_auth(&c.value).unwrap().is_some());
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
    let store = CookieStore::open(dir.path(), StoreOptions::default()).unwrap();
    // The authid reads; authextra reports the damaged record.
    let (authid, extra) = store
        .with_auth(&c.value, |a| (a.authid().to_string(), a.authextra()))
        .unwrap()
        .unwrap();
    assert_eq!(authid, "mallory");
    assert!(matches!(extra, Err(Error::CorruptRecord { oid: o, .. }) if o == oid));
    let lazy = store.get_auth_lazy(&c.value).unwrap().unwrap();
    assert!(matches!(lazy.authextra(), Err(Error::CorruptRecord { .. })));
    assert!(matches!(
        store.get_auth(&c.value),
        Err(Error::CorruptRecord { .. })
    ));
}

#[test]
fn track_lazy_answers_as_track() {
    let dir = tempfile::tempdir().unwrap();
    let tracker = Tracker::open(
        dir.path(),
        StoreOptions::default(),
        TrackerConfig::default(),
    )
    .unwrap();
    let first = tracker.track_lazy(None).unwrap();
    assert!(first.is_new && first.auth.is_none());
    assert_eq!(first.authid(), first.value);
    let header = format!("theme=dark; cbtid={}", first.value);
    let again = tracker.track_lazy(Some(header.as_bytes())).unwrap();
    let owned = tracker.track(Some(header.as_bytes())).unwrap();
    assert!(!again.is_new);
    assert_eq!(
        (&again.value, &again.set_cookie),
        (&owned.value, &owned.set_cookie)
    );
    assert!(again.auth.is_none());
    tracker
        .authenticate(&first.value, &auth(), &Default::default())
        .unwrap();
    let again = tracker.track_lazy(Some(header.as_bytes())).unwrap();
    let owned = tracker.track(Some(header.as_bytes())).unwrap();
    assert_eq!(again.authid(), "alice");
    assert_eq!(
        again.auth.as_ref().unwrap().to_auth().unwrap(),
        owned.auth.unwrap()
    );
    assert_eq!(again.set_cookie, owned.set_cookie);
    tracker.logout(&first.value).unwrap();
    let after = tracker.track_lazy(Some(header.as_bytes())).unwrap();
    assert!(after.is_new && after.value != first.value);
}
