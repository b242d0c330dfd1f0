//! Helpers of the CLI tests: the library's tests/common (one home for the helpers both test
//! suites use), and what only the CLI's tests need.
#![allow(dead_code)]

#[path = "../../../../tests/common/mod.rs"]
mod shared;

pub use shared::*;

/// The slots of a store's tables, read from its slot-0 metadata with raw heed (the tests
/// damage stores byte by byte, below the library's API).
#[derive(Debug, Clone, Copy)]
pub struct Slots {
    pub cookies: u16,
    pub by_value: u16,
    pub by_expiry: Option<u16>,
    pub state: Option<u16>,
}

/// Table oids, as zlmdb records them: cfxdb's value index, our expiry index and state
/// (cfxdb's Cookies: `COOKIES_OID`, from the library's helpers).
pub const VALUE_INDEX_OID: &str = "65e1d8c1-fa8b-459d-ae43-cb320d28cc97";
pub const EXPIRY_INDEX_OID: &str = "8e8b2d60-622c-4fdd-bf24-f78692a3824c";
pub const STORE_STATE_OID: &str = "883063e6-6f4f-4c3e-82f7-63f054071b2e";

pub fn read_slots(
    txn: &heed::RoTxn,
    db: heed::Database<heed::types::Bytes, heed::types::Bytes>,
) -> Slots {
    let mut by_oid = std::collections::HashMap::new();
    for item in db.prefix_iter(txn, &[0, 0]).unwrap() {
        let (key, value) = item.unwrap();
        let meta = cookiestore::TableMeta::from_cbor(value).unwrap();
        assert_eq!(key.len(), 4);
        by_oid.insert(meta.oid.clone(), meta.slot);
    }
    Slots {
        cookies: by_oid[COOKIES_OID],
        by_value: by_oid[VALUE_INDEX_OID],
        by_expiry: by_oid.get(EXPIRY_INDEX_OID).copied(),
        state: by_oid.get(STORE_STATE_OID).copied(),
    }
}
