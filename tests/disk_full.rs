//! A full file system: clear errors, no crash (SIGBUS), nothing half-made left behind.
//!
//! Runs on a small tmpfs mounted for the test (root only; skipped with a reason otherwise).

// A failed unwrap here (helpers included) is the test, bench or example failing.
#![allow(clippy::unwrap_used)]

mod common;

use common::tmpfs::Tmpfs;
use common::*;
use cookiestore::{CookieStore, Error, StoreOptions};

const MOUNT_NEEDED: &str = "disk_full: the full file system cases need root (a 256 KiB tmpfs)";

#[test]
fn creating_a_store_on_a_full_disk_fails_clearly_and_leaves_nothing() {
    if !need(can_mount(), MOUNT_NEEDED) {
        return;
    }
    let fs = Tmpfs::mount("256k");
    let fill = fs.fill("fill");
    let store = fs.path().join("store");
    for readonly in [false, true] {
        let err = CookieStore::open(&store, StoreOptions::default().readonly(readonly))
            .expect_err("no space: the open must fail");
        if readonly {
            // Read-only never creates a store: the directory was not even made.
            assert!(
                matches!(err, Error::Path { .. } | Error::NotAStore { .. }),
                "{err:?}"
            );
            continue;
        }
        let text = err.to_string();
        assert!(matches!(err, Error::DiskFull { .. }), "{err:?}");
        assert!(text.contains("disk is full"), "{text}");
        assert!(
            text.contains(&*store.to_string_lossy()),
            "names the store: {text}"
        );
    }
    assert!(
        !store.join("data.mdb").exists(),
        "a failed creation left a data.mdb behind"
    );
    // With space again, the same directory becomes a store: nothing half-made was left.
    let count = fs.unfill(&fill, || {
        let made = CookieStore::open(&store, StoreOptions::default())
            .and_then(|s| s.create("cbtid", 24, 3600).and_then(|_| s.count()));
        match made {
            Ok(count) => Ok(count),
            Err(full @ Error::DiskFull { .. }) => Err(full.to_string()),
            Err(e) => panic!("{e:?}"),
        }
    });
    assert_eq!(count, 1);
}

#[test]
fn a_read_only_open_that_must_create_lock_mdb_on_a_full_disk_fails_clearly() {
    if !need(can_mount(), MOUNT_NEEDED) {
        return;
    }
    let fs = Tmpfs::mount("256k");
    let store = fs.path().join("store");
    let s = CookieStore::open(&store, StoreOptions::default()).unwrap();
    s.create("cbtid", 24, 3600).unwrap();
    drop(s);
    std::fs::remove_file(store.join("lock.mdb")).unwrap();
    fs.fill("fill");
    let err = CookieStore::open(&store, StoreOptions::default().readonly(true))
        .expect_err("no space for lock.mdb");
    assert!(matches!(err, Error::DiskFull { .. }), "{err:?}");
    assert!(err.to_string().contains("disk is full"), "{err}");
}

#[test]
fn writing_until_the_disk_is_full_fails_clearly_and_keeps_earlier_commits() {
    if !need(can_mount(), MOUNT_NEEDED) {
        return;
    }
    let fs = Tmpfs::mount("512k");
    let store = fs.path().join("store");
    let s = CookieStore::open(&store, StoreOptions::default()).unwrap();
    s.create("cbtid", 24, 3600).unwrap();
    // Leave about 64 KiB free, then write until it is gone.
    let mut pad = vec![];
    {
        use std::io::Write;
        let mut f = std::fs::File::create(fs.path().join("pad")).unwrap();
        let block = vec![0u8; 4096];
        while f.write_all(&block).is_ok() {
            pad.push(());
        }
    }
    std::fs::OpenOptions::new()
        .write(true)
        .open(fs.path().join("pad"))
        .unwrap()
        .set_len((pad.len() as u64).saturating_sub(16) * 4096)
        .unwrap();
    let mut written = 1u64;
    let err = loop {
        // Batches of 10 cookies, so each commit needs several pages (and fits in what the disk
        // has besides the space kept for deletions).
        let r = s.as_lmdb().unwrap().batch("create cookies", |b| {
            for _ in 0..10 {
                b.create("cbtid", 24, 3600)?;
            }
            Ok(())
        });
        match r {
            Ok(()) => written += 10,
            Err(e) => break e,
        }
        assert!(written < 1_000_000, "the disk never filled");
    };
    let text = err.to_string();
    assert!(matches!(err, Error::DiskFull { .. }), "{err:?}");
    assert!(text.contains("disk is full"), "{text}");
    assert!(
        text.contains(&*store.to_string_lossy()),
        "names the store: {text}"
    );
    assert!(written > 1, "some batches must have gone in first");
    drop(s);
    let s = CookieStore::open(&store, StoreOptions::default().readonly(true)).unwrap();
    assert_eq!(s.count().unwrap(), written, "earlier commits are intact");
    assert_clean(&s);
}

/// A logout is a security action: on a disk so full that creates fail, logouts still commit
/// (into the space data.mdb keeps allocated for deletions), durably, and creates cannot eat
/// that space.
#[test]
fn logouts_succeed_on_a_full_disk_and_creates_cannot_eat_their_space() {
    use cookiestore::{Auth, AuthContext};
    if !need(can_mount(), MOUNT_NEEDED) {
        return;
    }
    let fs = Tmpfs::mount("32m");
    let store = fs.path().join("store");
    let s = CookieStore::open(&store, StoreOptions::default()).unwrap();
    let mut values = Vec::new();
    s.as_lmdb()
        .unwrap()
        .batch("create cookies", |b| {
            values.clear();
            for i in 0..300 {
                let c = b.create("cbtid", 24, 3600)?;
                let who = if i % 10 == 0 { "alice" } else { "bob" };
                b.set_auth(
                    &c.value,
                    &Auth::new(who, "user", "wampcra", "realm1"),
                    &AuthContext::default(),
                )?;
                values.push(c.value);
            }
            Ok(())
        })
        .unwrap();
    fs.fill("fill");
    // Creates until the disk is full; a reader in another thread holds its snapshot, so
    // the pages the creates free are not reused (what many router workers reading do).
    let (hold, release) = std::sync::mpsc::channel::<()>();
    let (held, wait_held) = std::sync::mpsc::channel::<()>();
    let reader = {
        let s = s.clone();
        std::thread::spawn(move || {
            s.as_lmdb()
                .unwrap()
                .snapshot(|_| {
                    held.send(()).unwrap();
                    release.recv().unwrap();
                    Ok(())
                })
                .unwrap();
        })
    };
    wait_held.recv().unwrap();
    let mut created = 0u64;
    let err = loop {
        match s.create("cbtid", 24, 3600) {
            Ok(_) => created += 1,
            Err(e) => break e,
        }
        assert!(created < 100_000, "the disk never filled");
    };
    assert!(matches!(err, Error::DiskFull { .. }), "{err:?}");
    // More creates keep failing: they never commit into the space kept for deletions.
    for _ in 0..20 {
        let err = s.create("cbtid", 24, 3600).unwrap_err();
        assert!(matches!(err, Error::DiskFull { .. }), "{err:?}");
    }
    // Logouts commit, the reader still holding its snapshot.
    let mut logged_out = Vec::new();
    for value in values
        .iter()
        .filter(|v| !v.is_empty())
        .skip(1)
        .step_by(10)
        .take(8)
    {
        assert!(s.delete(value).unwrap(), "logout of {value} on a full disk");
        logged_out.push(value.clone());
    }
    let alice = s.logout_authid("alice").unwrap();
    assert_eq!(alice, 30, "every cookie of alice logged out on a full disk");
    hold.send(()).unwrap();
    reader.join().unwrap();
    drop(s);
    // Durable: a fresh open sees them gone, and the store is sound.
    let s = CookieStore::open(&store, StoreOptions::default().readonly(true)).unwrap();
    for value in &logged_out {
        assert!(!s.exists(value).unwrap(), "{value} came back");
    }
    assert!(
        s.as_lmdb()
            .unwrap()
            .snapshot(|v| Ok(v
                .records()?
                .all(|c| c.unwrap().authid.as_deref() != Some("alice"))))
            .unwrap()
    );
    assert_eq!(s.count().unwrap(), 300 - 8 - 30 + created);
    assert_clean(&s);
}
