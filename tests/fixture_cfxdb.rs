//! The database written by cfxdb 25.12.2 / zlmdb 25.12.3 reads back field for field.

mod common;

use common::*;
use cookiestore::layout::{COOKIES, TableMeta, VALUE_INDEX};
use cookiestore::{CookieStore, StoreOptions};

#[test]
fn every_cookie_reads_back_equal_to_what_cfxdb_wrote() {
    let dir = cfxdb_copy();
    let store = CookieStore::open(
        dir.path(),
        StoreOptions {
            readonly: true,
            ..options_at(FIXTURE_DAY_NS).0
        },
    )
    .unwrap();
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

#[test]
fn metadata_we_write_equals_what_zlmdb_wrote() {
    // The fixture's slot-0 records, byte for byte.
    let fixture = cfxdb_copy();
    let env_bytes = read_meta(fixture.path());
    assert_eq!(env_bytes.len(), 2);
    assert_eq!(env_bytes[0].0, vec![0, 0, 0, 1]);
    assert_eq!(env_bytes[0].1, TableMeta::new(&COOKIES, 1).to_cbor());
    assert_eq!(env_bytes[1].0, vec![0, 0, 0, 2]);
    assert_eq!(env_bytes[1].1, TableMeta::new(&VALUE_INDEX, 2).to_cbor());

    // A store we create writes the same two records, at the same slots.
    let ours = tempfile::tempdir().unwrap();
    drop(CookieStore::open(ours.path(), StoreOptions::default()).unwrap());
    let our_meta = read_meta(ours.path());
    assert_eq!(&our_meta[..2], &env_bytes[..]);
    assert_eq!(our_meta.len(), 4, "plus our expiry index and state tables");
}

fn read_meta(path: &std::path::Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    let store = CookieStore::open(
        path,
        StoreOptions {
            readonly: true,
            ..Default::default()
        },
    )
    .unwrap();
    store
        .snapshot(|s| {
            Ok(s.catalog()?
                .tables
                .iter()
                .map(|(slot, meta)| {
                    let mut k = vec![0, 0];
                    k.extend_from_slice(&slot.to_be_bytes());
                    (k, meta.to_cbor())
                })
                .collect())
        })
        .unwrap()
}
