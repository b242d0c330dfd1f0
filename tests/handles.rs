//! Handles: clones and repeated opens of one path in one process share one environment.

// A failed unwrap here (helpers included) is the test, bench or example failing.
#![allow(clippy::unwrap_used)]

use cookiestore::{CookieStore, Error, StoreOptions};

#[test]
fn repeated_opens_and_clones_share_one_environment() {
    let dir = tempfile::tempdir().unwrap();
    let a = CookieStore::open(dir.path(), StoreOptions::default()).unwrap();
    // A second open of the same path (even spelled differently) is no error: LMDB forbids
    // opening one environment twice in a process, so the store shares it.
    let b = CookieStore::open(dir.path().join("."), StoreOptions::default()).unwrap();
    let ro = CookieStore::open(dir.path(), StoreOptions::default().readonly(true)).unwrap();
    let c = a.create("cbtid", 24, 100).unwrap();
    assert!(b.exists(&c.value).unwrap());
    assert!(ro.exists(&c.value).unwrap());
    assert!(
        matches!(ro.delete(&c.value), Err(Error::ReadOnly { .. })),
        "the handle keeps its own mode"
    );

    let threads: Vec<_> = (0..4)
        .map(|_| {
            let s = b.clone();
            std::thread::spawn(move || {
                (0..50)
                    .map(|_| s.create("cbtid", 24, 100).unwrap().value)
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let made: Vec<String> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    assert_eq!(made.len(), 200);
    for v in &made {
        assert!(a.exists(v).unwrap());
    }
    assert_eq!(a.count().unwrap(), 201);
}

#[test]
fn a_path_open_read_only_cannot_be_reopened_writable_meanwhile() {
    let dir = tempfile::tempdir().unwrap();
    drop(CookieStore::open(dir.path(), StoreOptions::default()).unwrap());
    let ro = CookieStore::open(dir.path(), StoreOptions::default().readonly(true)).unwrap();
    let err = CookieStore::open(dir.path(), StoreOptions::default()).unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidConfig { ref field, .. } if field == "readonly"
        ),
        "{err}"
    );
    drop(ro);
    // Once every read-only handle is gone, a writable open works again.
    let rw = CookieStore::open(dir.path(), StoreOptions::default()).unwrap();
    rw.create("cbtid", 24, 100).unwrap();
}
