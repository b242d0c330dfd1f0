//! The on-disk layout, compatible with zlmdb: slots, table metadata and typed key codecs.
//!
//! A store is LMDB's unnamed database. Every key begins with its table's *slot*, a big-endian
//! `u16`. Slot 0 holds one metadata record per table (key `00 00` + slot, value a CBOR map
//! written exactly as zlmdb writes it), which maps each table's UUID to its slot. Slots differ
//! between databases, so they are always read from the metadata, never assumed.
//!
//! | table | key after the slot | value |
//! |---|---|---|
//! | [`COOKIES`] (cfxdb) | oid, 16 bytes | FlatBuffers `Cookie` |
//! | [`VALUE_INDEX`] (cfxdb) | cookie value, UTF-8 | oid, 16 bytes |
//! | [`EXPIRY_INDEX`] (ours) | expiry, ns, `u64` BE + oid | empty |
//! | [`STORE_STATE`] (ours) | a name, e.g. `last_txn` | the state's bytes |
//! | [`STORE_STATE`]: import marks ([`ImportMark`]) | `import_hash\0` + SHA-256 of a value | expiry, ns, `u64` BE |
//! | [`STORE_STATE`]: their expiry order | `import_due\0` + expiry `u64` BE + SHA-256 | empty |
//! | [`STORE_STATE`]: unhashed import marks (older stores; read, rewritten by a purge) | `imported\0` + value | oid, 16 bytes |
//! | [`AUTHID_INDEX`] (ours) | authid length `u16` BE + authid's first ≤ 400 bytes + oid | empty |
//! | [`REVOCATIONS`] (ours) | sequence number, `u64` BE | at_ns `u64` BE, kind, oid, value |
//!
//! This file holds the tables and their metadata (the catalog of slots). Each kind of key is
//! its own type and heed codec in `keys.rs`, the values' codecs are in `codecs.rs` (the
//! metadata's, [`MetaCodec`], here), so store code reads as typed gets and puts.

use std::borrow::Cow;
use std::collections::BTreeMap;

use heed::{BoxedError, BytesEncode};
use serde::{Deserialize, Serialize};
use uuid::{Uuid, uuid};

use crate::error::{Error, Result};
use crate::lmdb::keys::MetaKey;
use crate::record::mark::hex;

/// Slot 0: table metadata.
pub const META_SLOT: u16 = 0;

/// One table of the layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableDef {
    /// The table's UUID, as recorded in its metadata.
    pub oid: Uuid,
    /// The table's name as zlmdb records it (the Python class path for cfxdb's tables).
    pub name: &'static str,
    /// The description zlmdb records (the class docstring for cfxdb's tables).
    pub description: &'static str,
}

/// cfxdb's Cookies table: oid → `Cookie` record.
pub const COOKIES: TableDef = TableDef {
    oid: uuid!("62f8c8c9-c50b-4686-bafe-38b221c64a0c"),
    name: "cfxdb.cookiestore._cookie.Cookies",
    description: "Persisted cookies table.\n\n    Map :class:`zlmdb.MapUuidFlatBuffers` from \
                  ``cookie_oid`` to :class:`cfxdb.cookiestore.Cookie`",
};

/// cfxdb's IndexCookiesByValue table: cookie value → oid.
pub const VALUE_INDEX: TableDef = TableDef {
    oid: uuid!("65e1d8c1-fa8b-459d-ae43-cb320d28cc97"),
    name: "cfxdb.cookiestore._cookie.IndexCookiesByValue",
    description: "Index: cookie_value -> cookie_oid",
};

/// Our expiry index: (expires_at, oid) → nothing. cfxdb ignores it.
pub const EXPIRY_INDEX: TableDef = TableDef {
    oid: uuid!("8e8b2d60-622c-4fdd-bf24-f78692a3824c"),
    name: "cookiestore.IndexCookiesByExpiry",
    description: "Index: (expires_at_ns, cookie_oid) -> empty",
};

/// Our store state: the id of the last transaction we wrote, to detect foreign writers.
pub const STORE_STATE: TableDef = TableDef {
    oid: uuid!("883063e6-6f4f-4c3e-82f7-63f054071b2e"),
    name: "cookiestore.StoreState",
    description: "cookiestore state: name -> value",
};

/// Our authid index: (authid length, authid's first ≤ 400 bytes, oid) → nothing. cfxdb
/// ignores it.
pub const AUTHID_INDEX: TableDef = TableDef {
    oid: uuid!("4c0f7b1e-2d7a-4a8e-9b53-6f1d2c9e7a31"),
    name: "cookiestore.IndexCookiesByAuthid",
    description: "Index: (len(authid) u16 BE, authid[..400], cookie_oid) -> empty",
};

/// Our revocation feed: sequence number (`u64` BE) → revocation record. cfxdb ignores it.
pub const REVOCATIONS: TableDef = TableDef {
    oid: uuid!("b7e3a9d2-5c41-4f06-8e2b-1a9d7c3f5e60"),
    name: "cookiestore.Revocations",
    description: "Revocation feed: seq u64 BE -> (at_ns, kind, oid, value)",
};

/// A metadata record, field for field as zlmdb writes it (CBOR map, this key order).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableMeta {
    /// Table UUID, canonical string.
    pub oid: String,
    /// Table name.
    pub name: String,
    /// Description, when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Tags, when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
    /// Creator; zlmdb writes `"unknown"`.
    pub creator: String,
    /// The slot this record describes.
    pub slot: u16,
}

impl TableMeta {
    /// The record zlmdb writes for `table` at `slot`.
    pub(crate) fn new(table: &TableDef, slot: u16) -> Self {
        TableMeta {
            oid: table.oid.to_string(),
            name: table.name.to_string(),
            description: Some(table.description.to_string()),
            tags: None,
            creator: "unknown".to_string(),
            slot,
        }
    }

    /// CBOR bytes of the record.
    pub fn to_cbor(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(160);
        // Writing to a Vec cannot fail, and every field of the record is plain data.
        ciborium::into_writer(self, &mut out).expect("CBOR of plain fields into a Vec");
        out
    }

    /// Parses a metadata value; the error says what is wrong.
    pub fn from_cbor(bytes: &[u8]) -> std::result::Result<Self, String> {
        ciborium::from_reader(bytes)
            .map_err(|e| format!("metadata is not the expected CBOR map: {e}"))
    }
}

/// The slots of a store's tables, read from its metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slots {
    /// Cookies table.
    pub cookies: u16,
    /// Value index.
    pub by_value: u16,
    /// Expiry index (absent in a database only cfxdb has written).
    pub by_expiry: Option<u16>,
    /// Store state (absent in a database only cfxdb has written).
    pub state: Option<u16>,
    /// Authid index (absent in a database only cfxdb has written).
    pub by_authid: Option<u16>,
    /// Revocation feed (absent in a database only cfxdb has written).
    pub revocations: Option<u16>,
}

/// Every metadata record of a database, by slot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Catalog {
    /// Slot → metadata.
    pub tables: BTreeMap<u16, TableMeta>,
}

impl Catalog {
    /// The slot recorded for `table`, if any.
    pub fn slot_of(&self, table: &TableDef) -> Option<u16> {
        let oid = table.oid.to_string();
        self.tables
            .iter()
            .find(|(_, meta)| meta.oid == oid)
            .map(|(slot, _)| *slot)
    }

    /// The slot zlmdb would give a new table: max(slot) + 1, or 1 when there is none.
    pub fn next_slot(&self) -> Result<u16> {
        match self.tables.keys().next_back() {
            None => Ok(1),
            Some(&max) => max
                .checked_add(1)
                .ok_or_else(|| Error::metadata("all 65535 table slots are taken")),
        }
    }

    /// The slots of the cookie tables, when both cfxdb tables exist.
    pub fn slots(&self) -> Option<Slots> {
        Some(Slots {
            cookies: self.slot_of(&COOKIES)?,
            by_value: self.slot_of(&VALUE_INDEX)?,
            by_expiry: self.slot_of(&EXPIRY_INDEX),
            state: self.slot_of(&STORE_STATE),
            by_authid: self.slot_of(&AUTHID_INDEX),
            revocations: self.slot_of(&REVOCATIONS),
        })
    }

    /// Checks one metadata entry as read from disk and adds it.
    pub fn insert_raw(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        let slot = match MetaKey::parse(key) {
            Some(slot) => slot,
            None => {
                return Err(Error::metadata(format!(
                    "metadata key {} is not 4 bytes (00 00 + slot)",
                    hex(key)
                )));
            }
        };
        let meta = TableMeta::from_cbor(value)
            .map_err(|e| Error::metadata(format!("slot {slot}: {e}")))?;
        if meta.slot != slot {
            return Err(Error::metadata(format!(
                "the metadata under slot {slot} says slot {}",
                meta.slot
            )));
        }
        if Uuid::parse_str(&meta.oid).is_err() {
            return Err(Error::metadata(format!(
                "slot {slot}: table oid {:?} is not a UUID",
                meta.oid
            )));
        }
        if let Some(other) = self.tables.values().find(|m| m.oid == meta.oid) {
            return Err(Error::metadata(format!(
                "table {} has two slots, {} and {slot}",
                meta.oid, other.slot
            )));
        }
        self.tables.insert(slot, meta);
        Ok(())
    }
}

/// Codec of table metadata values.
pub enum MetaCodec {}

impl<'a> BytesEncode<'a> for MetaCodec {
    type EItem = TableMeta;
    fn bytes_encode(item: &'a TableMeta) -> std::result::Result<Cow<'a, [u8]>, BoxedError> {
        Ok(Cow::Owned(item.to_cbor()))
    }
}
