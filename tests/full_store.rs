//! A store filled to its maxsize can always free itself: purge, delete and clear make
//! progress, and the MapFull error of a deletion never advises the command that just failed.

// A failed unwrap here (helpers included) is the test, bench or example failing.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use cookiestore::{CookieStore, Error, StoreOptions};

const T0: u64 = 1_700_000_000_000_000_000;
const MAXSIZE: u64 = 8 * 1024 * 1024;

/// Fills the store with short-lived cookies until a create fails with MapFull.
pub fn fill(store: &CookieStore) -> Vec<String> {
    let mut values = Vec::new();
    let mut step = 256;
    loop {
        match store.as_lmdb().unwrap().batch("fill", |b| {
            (0..step)
                .map(|_| b.create("cbtid", 24, 1).map(|c| c.value))
                .collect::<cookiestore::Result<Vec<_>>>()
        }) {
            Ok(v) => values.extend(v),
            Err(Error::MapFull { .. }) if step > 1 => step /= 2,
            Err(Error::MapFull { .. }) => return values,
            Err(e) => panic!("fill: {e}"),
        }
    }
}

fn full_store(path: &std::path::Path) -> (CookieStore, cookiestore::ManualClock, Vec<String>) {
    let (options, clock) = options_at(T0);
    let options: StoreOptions = options.maxsize(MAXSIZE).initial_mapsize(MAXSIZE);
    let mut options = options;
    options.lmdb.sync = false;
    let store = CookieStore::open(path, options).unwrap();
    let values = fill(&store);
    assert!(values.len() > 5_000, "filled with {} cookies", values.len());
    (store, clock, values)
}

#[test]
fn a_full_store_purges_all_its_expired_cookies() {
    let dir = tempfile::tempdir().unwrap();
    let (store, clock, values) = full_store(dir.path());
    clock.advance_secs(2);
    let purged = store.purge_expired().unwrap();
    assert_eq!(purged, values.len() as u64);
    assert_eq!(store.stats().unwrap().records, 0);
    // And it takes new cookies again.
    store.create("cbtid", 24, 100).unwrap();
}

#[test]
fn a_full_store_deletes_and_clears() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _clock, values) = full_store(dir.path());
    for v in values.iter().take(100) {
        assert!(store.delete(v).unwrap());
    }
    assert_eq!(store.clear().unwrap(), values.len() as u64 - 100);
}

#[test]
fn map_full_message_depends_on_the_operation() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _clock, _values) = full_store(dir.path());
    let err = loop {
        match store.create("cbtid", 24, 100) {
            Ok(_) => continue,
            Err(e) => break e,
        }
    };
    let Error::MapFull { operation, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(*operation, "create a cookie");
    let text = err.to_string();
    assert!(text.contains("cookiestore purge"), "{text}");
    let purge = Error::MapFull {
        operation: "purge",
        maxsize: MAXSIZE,
        deletion: true,
    };
    let text = purge.to_string();
    assert!(!text.contains("cookiestore purge"), "{text}");
    assert!(text.contains("--maxsize"), "{text}");
}
