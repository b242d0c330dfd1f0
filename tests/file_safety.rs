//! Files cookiestore creates are private and never written through a planted symlink.

// A failed unwrap here (helpers included) is the test, bench or example failing.
#![allow(clippy::unwrap_used)]
#![cfg(unix)]

use std::os::unix::fs::{PermissionsExt, symlink};

use cookiestore::{CookieStore, Error, StoreOptions};

fn mode(p: &std::path::Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn a_symlinked_data_or_lock_file_is_refused() {
    for name in ["data.mdb", "lock.mdb"] {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("store");
        drop(CookieStore::open(&store, StoreOptions::default()).unwrap());
        let elsewhere = dir.path().join("elsewhere");
        std::fs::rename(store.join(name), &elsewhere).unwrap();
        symlink(&elsewhere, store.join(name)).unwrap();
        let err = CookieStore::open(&store, StoreOptions::default()).unwrap_err();
        assert!(
            matches!(&err, Error::NotAStore { problem, .. } if problem.contains("symbolic link")),
            "{name}: {err}"
        );
    }
}

#[test]
fn a_copy_is_private() {
    let dir = tempfile::tempdir().unwrap();
    let store = CookieStore::open(dir.path().join("store"), StoreOptions::default()).unwrap();
    store.create("cbtid", 24, 100).unwrap();
    let dest = dir.path().join("copy");
    store.as_lmdb().unwrap().copy_to(&dest, true).unwrap();
    assert_eq!(mode(&dest), 0o700);
    assert_eq!(mode(&dest.join("data.mdb")), 0o600);
    drop(store);
    assert_eq!(
        CookieStore::open(&dest, StoreOptions::default())
            .unwrap()
            .count()
            .unwrap(),
        1
    );
}

#[test]
fn a_copy_never_writes_through_a_symlink() {
    let dir = tempfile::tempdir().unwrap();
    let store = CookieStore::open(dir.path().join("store"), StoreOptions::default()).unwrap();
    let dest = dir.path().join("copy");
    std::fs::create_dir(&dest).unwrap();
    let victim = dir.path().join("victim");
    symlink(&victim, dest.join("data.mdb")).unwrap();
    let err = store.as_lmdb().unwrap().copy_to(&dest, false).unwrap_err();
    assert!(matches!(err, Error::DestinationExists { .. }), "{err}");
    assert!(!victim.exists());
}
