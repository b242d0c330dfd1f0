//! Expiry with a pinned clock: expired is absent before purge, purge removes exactly the
//! expired cookies and their index entries, cookies written by cfxdb expire and purge too.

// A failed unwrap here (helpers included) is the test, bench or example failing.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use cookiestore::{Auth, AuthUpdate, CookieStore, StoreOptions};

const SEC: u64 = 1_000_000_000;
const T0: u64 = FIXTURE_DAY_NS;

#[test]
fn expired_is_absent_before_purge_and_purge_removes_exactly_the_expired() {
    let dir = tempfile::tempdir().unwrap();
    let (store, clock) = open_at(dir.path(), T0);
    let short: Vec<_> = (0..50)
        .map(|_| store.create("cbtid", 24, 60).unwrap())
        .collect();
    let long: Vec<_> = (0..50)
        .map(|_| store.create("cbtid", 24, 3600).unwrap())
        .collect();
    let auth = Auth::new("alice", "user", "cookie", "realm1");
    store
        .set_auth(&short[0].value, &auth, &Default::default())
        .unwrap();

    clock.set(T0 + 60 * SEC - 1);
    assert!(
        store.exists(&short[0].value).unwrap(),
        "one ns before expiry it is live"
    );
    assert_eq!(
        store.get_auth(&short[0].value).unwrap().unwrap().authid,
        "alice"
    );

    clock.set(T0 + 60 * SEC); // now >= created + max_age: expired
    for c in &short {
        assert!(!store.exists(&c.value).unwrap());
        assert_eq!(store.get(&c.value).unwrap(), None);
        assert_eq!(store.lookup(&c.value).unwrap(), None);
    }
    assert_eq!(store.get_auth(&short[0].value).unwrap(), None);
    assert_eq!(
        store
            .set_auth(&short[1].value, &auth, &Default::default())
            .unwrap(),
        AuthUpdate::NoSuchCookie,
        "an expired cookie cannot be authenticated"
    );
    assert_eq!(store.count().unwrap(), 50);
    let before = store.stats().unwrap();
    assert_eq!((before.records, before.live, before.expired), (100, 50, 50));

    assert_eq!(store.purge_expired().unwrap(), 50);
    let after = store.stats().unwrap();
    assert_eq!((after.records, after.live, after.expired), (50, 50, 0));
    assert_eq!(
        after.lmdb.as_ref().unwrap().value_index_entries,
        50,
        "index entries of purged cookies are gone"
    );
    assert_eq!(after.lmdb.as_ref().unwrap().expiry_index_entries, 50);
    for c in &long {
        assert_eq!(store.get(&c.value).unwrap().unwrap(), *c);
    }
    assert_eq!(
        store.purge_expired().unwrap(),
        0,
        "a second purge finds nothing"
    );
}

#[test]
fn cookies_written_by_cfxdb_expire_and_purge() {
    // The fixture has no expiry index; cookies were created around 2026-11-22 with max_age
    // from 60 s to 10 years.
    let dir = cfxdb_copy();
    let expected = expected_cfxdb();
    let far = T0 + 400 * 86_400 * SEC; // past every max_age but the 10-year ones
    let (store, _clock) = open_at(dir.path(), far);
    let live: Vec<_> = expected
        .iter()
        .filter(|c| {
            let exp = c["created"].as_u64().unwrap() + c["max_age"].as_u64().unwrap() * SEC;
            far < exp
        })
        .collect();
    assert!(
        !live.is_empty() && live.len() < expected.len(),
        "the fixture has both kinds"
    );
    assert_eq!(store.count().unwrap(), live.len() as u64);
    let purged = store.purge_expired().unwrap();
    assert_eq!(purged as usize, expected.len() - live.len());
    let stats = store.stats().unwrap();
    assert_eq!(stats.records as usize, live.len());
    assert_eq!(
        stats.lmdb.as_ref().unwrap().value_index_entries as usize,
        live.len()
    );
    for c in live {
        assert!(store.exists(c["value"].as_str().unwrap()).unwrap());
    }
}

#[test]
fn purge_on_startup_purges_expired_only() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (store, _) = open_at(dir.path(), T0);
        for max_age in [10, 20, 3600] {
            store.create("cbtid", 24, max_age).unwrap();
        }
    }
    let (mut options, _) = options_at(T0 + 30 * SEC);
    options.purge_on_startup = true;
    let store = CookieStore::open(dir.path(), options).unwrap();
    assert_eq!(store.stats().unwrap().records, 1);
}

#[test]
fn purge_is_batched_and_complete_across_batches() {
    let dir = tempfile::tempdir().unwrap();
    let (mut options, clock) = options_at(T0);
    options.lmdb.sync = false;
    let store = CookieStore::open(dir.path(), options).unwrap();
    // More than two of the purge's 5,000-cookie transactions.
    let n = 5_000 * 2 + 7;
    store
        .as_lmdb()
        .unwrap()
        .batch("fill", |b| {
            for _ in 0..n {
                b.create("cbtid", 16, 1)?;
            }
            Ok(())
        })
        .unwrap();
    store.create("cbtid", 16, 100).unwrap();
    clock.advance_secs(2);
    assert_eq!(store.purge_expired().unwrap(), n as u64);
    assert_eq!(store.stats().unwrap().records, 1);
}

#[test]
fn a_cookie_re_put_with_a_longer_max_age_is_not_purged_by_its_old_entry() {
    let dir = tempfile::tempdir().unwrap();
    let (store, clock) = open_at(dir.path(), T0);
    let mut c = store.create("cbtid", 24, 10).unwrap();
    c.max_age = 1000;
    store.put(&c).unwrap();
    clock.advance_secs(20);
    assert_eq!(store.purge_expired().unwrap(), 0);
    assert!(store.exists(&c.value).unwrap());
    assert_eq!(store.stats().unwrap().lmdb.unwrap().expiry_index_entries, 1);
}

#[test]
fn foreign_writes_are_detected_and_reconciled() {
    // A store that cfxdb wrote last (the fixture) reports foreign writes until we open it
    // writable, which builds the expiry index.
    let dir = cfxdb_copy();
    let ro = CookieStore::open(dir.path(), StoreOptions::default().readonly(true)).unwrap();
    assert!(ro.stats().unwrap().lmdb.unwrap().foreign_writes);
    assert_eq!(ro.stats().unwrap().lmdb.unwrap().expiry_index_entries, 0);
    drop(ro);
    let (store, _) = open_at(dir.path(), T0);
    let stats = store.stats().unwrap();
    assert!(!stats.lmdb.as_ref().unwrap().foreign_writes);
    assert_eq!(stats.lmdb.as_ref().unwrap().expiry_index_entries, 60);
}
