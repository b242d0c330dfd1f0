//! The database written by cfxdb 25.12.2 / zlmdb 25.12.3 reads back field for field.

// A failed unwrap here (helpers included) is the test, bench or example failing.
#![allow(clippy::unwrap_used)]

mod common;

use std::ops::Bound;
use std::path::Path;

use common::*;
use cookiestore::{CookieStore, StoreOptions};

#[test]
fn every_cookie_reads_back_equal_to_what_cfxdb_wrote() {
    let dir = cfxdb_copy();
    let store = CookieStore::open(dir.path(), options_at(FIXTURE_DAY_NS).0.readonly(true)).unwrap();
    let expected = expected_cfxdb();
    assert_eq!(expected.len(), 60);
    for want in &expected {
        let value = want["value"].as_str().unwrap();
        let got = store
            .get(value)
            .unwrap()
            .unwrap_or_else(|| panic!("{value} not found"));
        assert_eq!(json(&got), normalized(want), "cookie {value}");
        assert!(store.exists(value).unwrap());
    }
    let all: Vec<_> = store
        .as_lmdb()
        .unwrap()
        .snapshot(|s| s.records()?.collect::<Result<Vec<_>, _>>())
        .unwrap();
    assert_eq!(all.len(), 60);
}

#[test]
fn auth_lookup_matches_fixture() {
    let dir = cfxdb_copy();
    let (store, _) = open_at(dir.path(), FIXTURE_DAY_NS);
    for want in expected_cfxdb() {
        let value = want["value"].as_str().unwrap();
        let auth = store.get_auth(value).unwrap();
        match want.get("authid") {
            Some(authid) => {
                let auth = auth.expect("authenticated cookie has auth");
                assert_eq!(auth.authid, authid.as_str().unwrap());
                assert_eq!(auth.authrole.as_deref(), want["authrole"].as_str());
                assert_eq!(auth.authmethod.as_deref(), want["authmethod"].as_str());
                assert_eq!(auth.authrealm.as_deref(), want["authrealm"].as_str());
                assert_eq!(auth.authextra, want["authextra"]);
            }
            None => assert!(auth.is_none()),
        }
    }
}

/// The slot-0 metadata (keys `00 00` + slot, CBOR values) that cfxdb/zlmdb wrote and that a
/// new store writes, compared as raw LMDB entries read with plain heed: byte for byte.
#[test]
fn metadata_we_write_equals_what_zlmdb_wrote() {
    let fixture = cfxdb_copy();
    let theirs = raw_slot0(fixture.path());
    let keys: Vec<&[u8]> = theirs.iter().map(|(k, _)| k.as_slice()).collect();
    assert_eq!(
        keys,
        [&[0u8, 0, 0, 1][..], &[0, 0, 0, 2]],
        "zlmdb's two tables (cookies, value index) at slots 1 and 2"
    );
    for (key, value) in &theirs {
        let cbor: ciborium::Value = ciborium::from_reader(value.as_slice())
            .unwrap_or_else(|e| panic!("slot-0 value of {key:02x?} is not CBOR: {e}"));
        assert!(
            cbor.is_map(),
            "slot-0 value of {key:02x?} is a CBOR map: {cbor:?}"
        );
    }

    // A store we create writes the same two entries at the same slots, then its own four.
    let ours_dir = tempfile::tempdir().unwrap();
    drop(CookieStore::open(ours_dir.path(), StoreOptions::default()).unwrap());
    let ours = raw_slot0(ours_dir.path());
    assert_eq!(
        ours.len(),
        6,
        "plus our expiry index, state, authid index and revocation tables: {ours:02x?}"
    );
    for ((their_key, their_value), (our_key, our_value)) in theirs.iter().zip(&ours) {
        assert_eq!(our_key, their_key, "slot-0 key");
        assert_eq!(
            our_value, their_value,
            "slot-0 value of {their_key:02x?}: ours (left) vs zlmdb's (right)"
        );
    }
    assert_eq!(ours[2].0, [0, 0, 0, 3]);
    assert_eq!(ours[3].0, [0, 0, 0, 4]);
    assert_eq!(ours[4].0, [0, 0, 0, 5]);
    assert_eq!(ours[5].0, [0, 0, 0, 6]);
}

/// Every slot-0 entry of the LMDB environment in `dir`, in key order, read with plain heed
/// (no store handle of it may be open in this process).
fn raw_slot0(dir: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    use heed::types::Bytes;
    // SAFETY: no other handle of this environment is open in this process.
    let env = unsafe {
        heed::EnvOpenOptions::new()
            .map_size(1 << 26)
            .open(dir)
            .unwrap()
    };
    let rtxn = env.read_txn().unwrap();
    let db = env
        .open_databases_and_commit(rtxn, |opener, rtxn| {
            opener
                .open_database::<Bytes, Bytes>(rtxn, None)
                .map(heed::CommitOrAbort::<_, ()>::Commit)
        })
        .unwrap()
        .unwrap_commit()
        .expect("the unnamed database exists");
    let rtxn = env.read_txn().unwrap();
    let (lo, hi): (&[u8], &[u8]) = (&[0, 0], &[0, 1]);
    db.range(&rtxn, &(Bound::Included(lo), Bound::Excluded(hi)))
        .unwrap()
        .map(|entry| {
            let (k, v) = entry.unwrap();
            (k.to_vec(), v.to_vec())
        })
        .collect()
}
