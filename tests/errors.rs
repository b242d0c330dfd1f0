//! Every error variant a caller can meet is reached here, and its message says what to do.

// A failed unwrap here (helpers included) is the test, bench or example failing.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use common::*;
use cookiestore::{Cookie, CookieStore, Error, StoreOptions, TrackerConfig};
use uuid::Uuid;

fn ro() -> StoreOptions {
    StoreOptions::default().readonly(true)
}

fn patch(path: &std::path::Path, offset: u64, bytes: &[u8]) {
    use std::io::{Seek, SeekFrom, Write};
    let mut f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.seek(SeekFrom::Start(offset)).unwrap();
    f.write_all(bytes).unwrap();
}

#[test]
fn invalid_config() {
    let err = CookieStore::open(
        tempfile::tempdir().unwrap().path(),
        StoreOptions::default().maxsize(1024),
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidConfig { ref field, .. } if field == "maxsize"
        ),
        "{err}"
    );
    assert!(err.to_string().contains("128 KiB"));
    let err = TrackerConfig::default().length(100).validate().unwrap_err();
    assert!(err.to_string().contains("`length`"), "{err}");
}

#[test]
fn invalid_value_too_long_or_empty() {
    let dir = tempfile::tempdir().unwrap();
    let store = CookieStore::open(dir.path(), Default::default()).unwrap();
    let long = Cookie {
        oid: Uuid::new_v4(),
        value: "v".repeat(510),
        ..Default::default()
    };
    let err = store.put(&long).unwrap_err();
    assert!(matches!(err, Error::InvalidValue { .. }), "{err}");
    assert!(err.to_string().contains("509"), "{err}");
    let ok = Cookie {
        oid: Uuid::new_v4(),
        value: "v".repeat(509),
        max_age: 10,
        created: store.now_ns(),
        ..Default::default()
    };
    store.put(&ok).unwrap();
    assert!(store.exists(&ok.value).unwrap());
    let empty = Cookie {
        oid: Uuid::new_v4(),
        value: String::new(),
        ..Default::default()
    };
    assert!(matches!(store.put(&empty), Err(Error::InvalidValue { .. })));
    // Lookups of impossible values are simply "not found".
    assert!(!store.exists(&"x".repeat(10_000)).unwrap());
    assert!(!store.exists("").unwrap());
}

#[test]
fn duplicate_value() {
    let dir = tempfile::tempdir().unwrap();
    let store = CookieStore::open(dir.path(), Default::default()).unwrap();
    let c = store.create("cbtid", 24, 100).unwrap();
    let twin = Cookie {
        oid: Uuid::new_v4(),
        ..c.clone()
    };
    let err = store.put(&twin).unwrap_err();
    assert!(
        matches!(err, Error::DuplicateValue { existing, .. } if existing == c.oid),
        "{err}"
    );
    assert_eq!(
        store.get(&c.value).unwrap().unwrap().oid,
        c.oid,
        "the original is untouched"
    );
}

#[test]
fn map_full_at_maxsize_keeps_what_was_committed() {
    let dir = tempfile::tempdir().unwrap();
    let options = StoreOptions::default()
        .maxsize(128 * 1024)
        .initial_mapsize(64 * 1024)
        .sync(false);
    let store = CookieStore::open(dir.path(), options).unwrap();
    let mut made = Vec::new();
    let err = loop {
        match store.create("cbtid", 24, 1000) {
            Ok(c) => made.push(c),
            Err(e) => break e,
        }
        assert!(made.len() < 10_000, "the map never filled");
    };
    assert!(
        matches!(
            err,
            Error::MapFull {
                maxsize: 131072,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("purge"), "{err}");
    assert!(made.len() > 50);
    for c in &made {
        assert!(store.exists(&c.value).unwrap());
    }
    assert!(
        store.delete(&made[0].value).unwrap(),
        "deletes still work when full"
    );
}

#[test]
fn read_only() {
    let dir = tempfile::tempdir().unwrap();
    drop(CookieStore::open(dir.path(), Default::default()).unwrap());
    let store = CookieStore::open(dir.path(), ro()).unwrap();
    let err = store.create("cbtid", 24, 10).unwrap_err();
    assert!(matches!(err, Error::ReadOnly { .. }), "{err}");
    assert!(matches!(store.purge_expired(), Err(Error::ReadOnly { .. })));
    assert!(matches!(store.delete("x"), Err(Error::ReadOnly { .. })));
}

#[test]
fn corrupt_record_names_its_oid_and_spares_the_others() {
    let dir = cfxdb_copy();
    let expected = expected_cfxdb();
    let victim = &expected[1];
    let oid = Uuid::parse_str(victim["oid"].as_str().unwrap()).unwrap();
    let mut key = vec![0, 1];
    key.extend_from_slice(oid.as_bytes());
    raw_put(dir.path(), &key, b"\x05\x00\x00\x00garbage-garbage");
    let (store, _) = open_at(dir.path(), FIXTURE_DAY_NS);
    let err = store
        .get_auth(victim["value"].as_str().unwrap())
        .unwrap_err();
    assert!(
        matches!(err, Error::CorruptRecord { oid: o, .. } if o == oid),
        "{err}"
    );
    assert!(err.to_string().contains(&oid.to_string()));
    assert!(err.to_string().contains("cookiestore check"));
    for other in expected.iter().filter(|c| c["oid"] != victim["oid"]) {
        assert!(store.exists(other["value"].as_str().unwrap()).unwrap());
    }
}

#[test]
fn corrupt_metadata() {
    let dir = cfxdb_copy();
    raw_put(dir.path(), &[0, 0, 0, 1], b"not cbor at all \xff");
    let err = CookieStore::open(dir.path(), ro())
        .and_then(|s| s.count())
        .unwrap_err();
    assert!(matches!(err, Error::CorruptMetadata { .. }), "{err}");
    assert!(err.to_string().contains("slot 1"), "{err}");
}

#[test]
fn unsupported_format_3() {
    let dir = tempfile::tempdir().unwrap();
    drop(CookieStore::open(dir.path(), Default::default()).unwrap());
    let data = dir.path().join("data.mdb");
    patch(&data, 20, &3u32.to_le_bytes());
    patch(&data, 4096 + 20, &3u32.to_le_bytes());
    for options in [ro(), StoreOptions::default()] {
        let err = CookieStore::open(dir.path(), options).unwrap_err();
        assert!(
            matches!(err, Error::UnsupportedFormat { found: 3, .. }),
            "{err}"
        );
        let msg = err.to_string();
        assert!(
            msg.contains("format 3")
                && msg.contains("zlmdb 26")
                && msg.contains("cookiestore import"),
            "{msg}"
        );
    }
}

#[test]
fn not_a_store() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), "hello").unwrap();
    let err = CookieStore::open(dir.path(), Default::default()).unwrap_err();
    assert!(matches!(err, Error::NotAStore { .. }), "{err}");
    assert!(
        !dir.path().join("data.mdb").exists(),
        "nothing was created among foreign files"
    );

    let file = dir.path().join("notes.txt");
    assert!(matches!(
        CookieStore::open(&file, Default::default()),
        Err(Error::NotAStore { .. })
    ));

    let garbage = tempfile::tempdir().unwrap();
    std::fs::write(garbage.path().join("data.mdb"), vec![0x42u8; 8192]).unwrap();
    let err = CookieStore::open(garbage.path(), Default::default()).unwrap_err();
    assert!(matches!(err, Error::NotAStore { .. }), "{err}");
    assert!(err.to_string().contains("not an LMDB file"));

    let empty_ro = tempfile::tempdir().unwrap();
    assert!(matches!(
        CookieStore::open(empty_ro.path(), ro()),
        Err(Error::NotAStore { .. })
    ));
}

#[test]
fn path_problems() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let err = CookieStore::open(&missing, ro()).unwrap_err();
    assert!(matches!(err, Error::Path { .. }), "{err}");
    assert!(err.to_string().contains("does not exist"), "{err}");
    // A path below a regular file cannot be created, even by root.
    std::fs::write(dir.path().join("file"), "x").unwrap();
    let err = CookieStore::open(dir.path().join("file/store"), Default::default()).unwrap_err();
    assert!(matches!(err, Error::Path { .. }), "{err}");
}

#[test]
fn damaged_truncated_data_file() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = CookieStore::open(dir.path(), StoreOptions::default().sync(false)).unwrap();
        store
            .as_lmdb()
            .unwrap()
            .batch("fill", |b| {
                for _ in 0..3000 {
                    b.create("cbtid", 24, 100)?;
                }
                Ok(())
            })
            .unwrap();
    }
    let data = dir.path().join("data.mdb");
    let len = std::fs::metadata(&data).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&data)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    let err = CookieStore::open(dir.path(), ro()).unwrap_err();
    assert!(matches!(err, Error::Damaged { .. }), "{err}");
    assert!(err.to_string().contains("truncated"), "{err}");
}

#[test]
fn value_space_exhausted() {
    let dir = tempfile::tempdir().unwrap();
    let store = CookieStore::open(dir.path(), Default::default()).unwrap();
    // Length 1: only 64 values exist. Fill them all, then one more must fail cleanly.
    let mut made = std::collections::HashSet::new();
    while made.len() < 64 {
        match store.create("cbtid", 1, 100) {
            Ok(c) => assert!(made.insert(c.value), "a value was handed out twice"),
            Err(Error::ValueSpaceExhausted { .. }) => {} // unlucky draws; keep going
            Err(e) => panic!("{e}"),
        }
    }
    let err = store.create("cbtid", 1, 100).unwrap_err();
    assert!(
        matches!(err, Error::ValueSpaceExhausted { attempts: 16 }),
        "{err}"
    );
    assert!(err.to_string().contains("raise `length`"));
}

#[test]
fn nested_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let store = CookieStore::open(dir.path(), Default::default()).unwrap();
    let err = store
        .as_lmdb()
        .unwrap()
        .snapshot(|_| store.get("x"))
        .unwrap_err();
    assert!(matches!(err, Error::NestedTransaction), "{err}");
    assert!(
        store.get("x").unwrap().is_none(),
        "the store works again afterwards"
    );
}

#[test]
fn readers_full() {
    let dir = tempfile::tempdir().unwrap();
    let store = CookieStore::open(dir.path(), Default::default()).unwrap();
    let threads = 140; // LMDB's default reader table has 126 slots
    let release = Arc::new(AtomicBool::new(false));
    let settled = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (store, release, settled) = (store.clone(), release.clone(), settled.clone());
            std::thread::spawn(move || {
                let r = store.as_lmdb().unwrap().snapshot(|_| {
                    settled.fetch_add(1, Ordering::SeqCst);
                    while !release.load(Ordering::SeqCst) {
                        std::thread::sleep(std::time::Duration::from_millis(1));
                    }
                    Ok(())
                });
                if r.is_err() {
                    settled.fetch_add(1, Ordering::SeqCst);
                }
                r
            })
        })
        .collect();
    while settled.load(Ordering::SeqCst) < threads {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    release.store(true, Ordering::SeqCst);
    let errors: Vec<Error> = handles
        .into_iter()
        .filter_map(|h| h.join().unwrap().err())
        .collect();
    assert!(!errors.is_empty());
    for e in &errors {
        assert!(matches!(e, Error::ReadersFull { max: 126 }), "{e}");
    }
}

#[test]
fn io_error_when_data_mdb_is_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("data.mdb")).unwrap();
    let err = CookieStore::open(dir.path(), ro()).unwrap_err();
    assert!(matches!(err, Error::Io(_) | Error::Path { .. }), "{err}");
}

#[test]
fn invalid_record() {
    assert!(matches!(
        Cookie::decode(&[1, 2, 3]),
        Err(Error::InvalidRecord { .. })
    ));
}

#[test]
fn delete_never_removes_a_cookie_that_a_damaged_index_entry_points_at() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = {
        let store = CookieStore::open(dir.path(), Default::default()).unwrap();
        (
            store.create("cbtid", 24, 100).unwrap(),
            store.create("cbtid", 24, 100).unwrap(),
        )
    };
    // Damage: a's value now points at b's oid (slot 2 is the value index of a new store).
    let mut key = vec![0, 2];
    key.extend_from_slice(a.value.as_bytes());
    raw_put(dir.path(), &key, b.oid.as_bytes());
    let store = CookieStore::open(dir.path(), Default::default()).unwrap();
    assert!(!store.exists(&a.value).unwrap());
    assert!(
        !store.delete(&a.value).unwrap(),
        "nothing carries that value"
    );
    assert!(
        store.exists(&b.value).unwrap(),
        "the other cookie is untouched"
    );
}
