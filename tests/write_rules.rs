//! What every write promises: a write that changes nothing commits nothing, a logout's feed
//! entry names the value the caller gave, an authentication is stored as reported or
//! refused, and a build refuses to write a store that a newer build's features govern.

// A failed unwrap here (helpers included) is the test, bench or example failing.
#![allow(clippy::unwrap_used)]

mod common;

use common::{raw_put, table_slot};
use cookiestore::{Auth, AuthUpdate, CookieStore, Error, StoreOptions, Subscriber};

/// cookiestore's state table, as recorded in the metadata.
const STORE_STATE_OID: &str = "883063e6-6f4f-4c3e-82f7-63f054071b2e";

fn open(dir: &std::path::Path) -> CookieStore {
    CookieStore::open(dir, StoreOptions::default()).unwrap()
}

/// The id of the last committed transaction, as one snapshot sees it.
fn last_txn(store: &CookieStore) -> u64 {
    store.stats().unwrap().lmdb.unwrap().txn_id
}

fn alice() -> Auth {
    Auth::new("alice", "user", "wampcra", "realm1")
}

/// Requests anyone can send (a logout, a login, a logout by authid of values and users the
/// store does not know; a login that repeats the stored one) commit nothing: no fsync, and
/// no other process's cache has to catch up.
#[test]
fn writes_that_change_nothing_commit_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let cookie = store.create("cbtid", 24, 3600).unwrap();
    store
        .set_auth(&cookie.value, &alice(), &Default::default())
        .unwrap();
    let before = last_txn(&store);

    assert!(!store.delete("no-such-value").unwrap());
    assert_eq!(
        store
            .set_auth("no-such-value", &alice(), &Default::default())
            .unwrap(),
        AuthUpdate::NoSuchCookie
    );
    assert_eq!(store.logout_authid("nobody").unwrap(), 0);
    assert_eq!(
        store
            .set_auth(&cookie.value, &alice(), &Default::default())
            .unwrap(),
        AuthUpdate::Unchanged
    );
    assert_eq!(store.purge_expired().unwrap(), 0);
    assert_eq!(
        last_txn(&store),
        before,
        "a write that changed nothing committed a transaction"
    );

    // A write that changes something still commits.
    assert!(store.delete(&cookie.value).unwrap());
    assert!(last_txn(&store) > before);
}

/// A logout of a cookie whose record cannot be decoded still names the cookie's value in
/// the revocation feed, so that every worker closes that cookie's connections.
#[test]
fn a_logout_of_an_undecodable_record_names_its_value_in_the_feed() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let cookie = store.create("cbtid", 24, 3600).unwrap();
    let cookies_slot = table_slot(&store, common::COOKIES_OID);
    let position = Subscriber::new(&store).unwrap().position();
    drop(store);

    let mut key = cookies_slot.to_be_bytes().to_vec();
    key.extend_from_slice(cookie.oid.as_bytes());
    raw_put(dir.path(), &key, b"\x01not a flatbuffer\xff");

    let store = open(dir.path());
    let mut subscriber = Subscriber::starting_after(&store, position);
    assert!(
        store.delete(&cookie.value).unwrap(),
        "the damaged record is deleted"
    );
    let logouts: Vec<_> = subscriber
        .poll()
        .unwrap()
        .entries
        .into_iter()
        .filter(|e| e.kind.revokes())
        .collect();
    assert_eq!(logouts.len(), 1, "{logouts:?}");
    assert_eq!(logouts[0].value, cookie.value);
    assert_eq!(logouts[0].oid, cookie.oid);
    assert!(!store.exists(&cookie.value).unwrap());
    let report = cookiestore::maintenance::check(store.as_lmdb().unwrap()).unwrap();
    assert!(
        report.problems.is_empty(),
        "its value index entry went with it: {:?}",
        report.problems
    );
}

/// An empty authid would read back as "not authenticated": refused, and nothing written.
#[test]
fn an_empty_authid_is_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let cookie = store.create("cbtid", 24, 3600).unwrap();
    let before = last_txn(&store);
    let err = store
        .set_auth(
            &cookie.value,
            &Auth::new("", "user", "wampcra", "realm1"),
            &Default::default(),
        )
        .unwrap_err();
    assert!(matches!(err, Error::InvalidAuth { .. }), "{err}");
    assert!(err.to_string().contains("authid is empty"), "{err}");
    assert_eq!(last_txn(&store), before);
    assert_eq!(store.get_auth(&cookie.value).unwrap(), None);
}

/// A store whose recorded feature level is higher than this build's refuses every write
/// with a clear error, and still answers reads; a store without a level gets this build's
/// at its first commit.
#[test]
fn a_store_written_by_a_newer_build_refuses_writes_and_still_reads() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let cookie = store.create("cbtid", 24, 3600).unwrap();
    let state_slot = table_slot(&store, STORE_STATE_OID);
    drop(store);

    let mut key = state_slot.to_be_bytes().to_vec();
    key.extend_from_slice(b"feature_level");
    let recorded = {
        let (env, db) = common::raw_env(dir.path(), 1 << 26);
        let rtxn = env.read_txn().unwrap();
        db.get(&rtxn, &key).unwrap().map(<[u8]>::to_vec)
    };
    let level = u64::from_be_bytes(
        recorded
            .expect("the first commit recorded a feature level")
            .try_into()
            .expect("8 bytes"),
    );
    assert!(level >= 1);

    // As a newer cookiestore would commit: the higher level, and its commit marked as
    // cookiestore's own (so this build sees no foreign write to reconcile at open).
    common::with_raw_env(dir.path(), |txn, db| {
        db.put(txn, &key, &(level + 1).to_be_bytes()).unwrap();
        let mut last = state_slot.to_be_bytes().to_vec();
        last.extend_from_slice(b"last_txn");
        let id = txn.id() as u64;
        db.put(txn, &last, &id.to_be_bytes()).unwrap();
    });
    let store =
        CookieStore::open(dir.path(), StoreOptions::default()).expect("a newer store still opens");
    assert!(store.exists(&cookie.value).unwrap(), "reads still work");
    for (what, result) in [
        ("create", store.create("cbtid", 24, 3600).map(drop)),
        ("logout", store.delete(&cookie.value).map(drop)),
        (
            "login",
            store
                .set_auth(&cookie.value, &alice(), &Default::default())
                .map(drop),
        ),
    ] {
        let err = result.expect_err(what);
        assert!(
            matches!(&err, Error::NewerStore { needed, known, .. } if *needed == level + 1 && *known == level),
            "{what}: {err}"
        );
        assert!(err.to_string().contains("upgrade"), "{err}");
    }
    assert!(store.exists(&cookie.value).unwrap(), "nothing was deleted");
}

/// On Redis the feature level is checked at a writable open: a higher one is refused with
/// the same error, read-only handles still open and read, and a lower one is raised.
#[test]
fn a_redis_store_of_a_newer_build_refuses_writable_opens() {
    use common::redis_server::{RedisServer, need_redis};
    if !need_redis() {
        return;
    }
    let server = RedisServer::start();
    let url = server.url("");
    let store = CookieStore::open(&url, StoreOptions::default()).unwrap();
    let cookie = store.create("cbtid", 24, 3600).unwrap();
    drop(store);
    let mut raw = redis::Client::open(url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let mut get = || -> u64 {
        redis::cmd("GET")
            .arg("feature_level")
            .query(&mut raw)
            .unwrap()
    };
    let level = get();
    assert!(level >= 1, "a writable open recorded its level");

    server.command(&["SET", "feature_level", &(level + 1).to_string()]);
    let err = CookieStore::open(&url, StoreOptions::default()).unwrap_err();
    assert!(
        matches!(&err, Error::NewerStore { needed, known, .. } if *needed == level + 1 && *known == level),
        "{err}"
    );
    assert!(err.to_string().contains("upgrade"), "{err}");
    let reader = CookieStore::open(&url, StoreOptions::default().readonly(true)).unwrap();
    assert!(reader.exists(&cookie.value).unwrap());
    assert_eq!(get(), level + 1, "never lowered");
}
