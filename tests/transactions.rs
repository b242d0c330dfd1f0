//! The transaction core: a store call inside a snapshot or batch closure is refused (LMDB
//! allows one transaction per thread; a nested write would deadlock), the guard survives a
//! panic in the caller's closure, and a batch reads its own writes through `Batch::view`.

// A failed unwrap here (helpers included) is the test, bench or example failing.
#![allow(clippy::unwrap_used)]

use std::panic::{AssertUnwindSafe, catch_unwind};

use cookiestore::{CookieStore, Error, StoreOptions};

fn store() -> (tempfile::TempDir, CookieStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = CookieStore::open(dir.path(), StoreOptions::default().sync(false)).unwrap();
    (dir, store)
}

#[test]
fn store_calls_inside_closures_are_refused() {
    let (_dir, store) = store();
    let c = store.create("cbtid", 24, 3600).unwrap();

    let inner = store
        .as_lmdb()
        .unwrap()
        .snapshot(|_| Ok(store.exists(&c.value)))
        .unwrap();
    assert!(matches!(inner, Err(Error::NestedTransaction)), "{inner:?}");

    // A write inside a batch would wait for the writer lock this thread holds.
    let inner = store
        .as_lmdb()
        .unwrap()
        .batch("test", |_| Ok(store.create("cbtid", 24, 3600)))
        .unwrap();
    assert!(matches!(inner, Err(Error::NestedTransaction)), "{inner:?}");
    let inner = store
        .as_lmdb()
        .unwrap()
        .batch("test", |_| Ok(store.get(&c.value)))
        .unwrap();
    assert!(matches!(inner, Err(Error::NestedTransaction)), "{inner:?}");

    // After the closures, the store answers again.
    assert!(store.exists(&c.value).unwrap());
}

#[test]
fn a_panicking_closure_leaves_the_store_usable() {
    let (_dir, store) = store();
    let c = store.create("cbtid", 24, 3600).unwrap();

    let r = catch_unwind(AssertUnwindSafe(|| {
        store
            .as_lmdb()
            .unwrap()
            .snapshot(|_| -> cookiestore::Result<()> { panic!("caller bug") })
    }));
    assert!(r.is_err());
    assert!(store.exists(&c.value).unwrap(), "the guard was restored");

    let r = catch_unwind(AssertUnwindSafe(|| {
        store
            .as_lmdb()
            .unwrap()
            .batch("test", |b| -> cookiestore::Result<()> {
                b.create("cbtid", 24, 3600)?;
                panic!("caller bug")
            })
    }));
    assert!(r.is_err());
    // The panicked batch committed nothing, and writes work again.
    assert_eq!(store.count().unwrap(), 1);
    store.create("cbtid", 24, 3600).unwrap();
    assert_eq!(store.count().unwrap(), 2);
}

#[test]
fn a_batch_sees_its_own_writes() {
    let (_dir, store) = store();
    let (made, seen, live) = store
        .as_lmdb()
        .unwrap()
        .batch("test", |b| {
            let made = b.create("cbtid", 24, 3600)?;
            let seen = b.view().get(&made.value)?;
            let live = b.view().count_live()?;
            Ok((made, seen, live))
        })
        .unwrap();
    assert_eq!(seen.as_ref(), Some(&made));
    assert_eq!(live, 1);
    assert_eq!(store.get(&made.value).unwrap(), Some(made));
}
