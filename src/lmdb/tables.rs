//! The typed tables of a store, seen through one transaction: lookups, index upkeep,
//! foreign-write detection and the metadata catalog.

use std::ops::Bound;
use std::path::Path;

use heed::types::{Bytes, DecodeIgnore, Unit};
use heed::{Database, RoTxn, RwTxn};
use uuid::Uuid;

use crate::error::{Error, LmdbError, LmdbResult, Result};
use crate::lmdb::codecs::{CookieCodec, OidCodec, U64Codec};
use crate::lmdb::keys::{ExpiryKey, MetaKey, RecordKey, SlotPrefix, StateKey, ValueKey};
use crate::lmdb::layout::{Catalog, MetaCodec, Slots, TableDef, TableMeta};
use crate::record::codec::CookieView;
use crate::record::value::fits_index;

/// The typed tables of a store: one unnamed database, remapped per table.
#[derive(Clone, Copy)]
pub(crate) struct Tables {
    pub(crate) db: Database<'static, Bytes, Bytes>,
    pub(crate) slots: Slots,
    pub(crate) present: bool,
}

impl Tables {
    pub(crate) fn new(db: Database<'static, Bytes, Bytes>, slots: Slots) -> Self {
        Tables {
            db,
            slots,
            present: true,
        }
    }

    pub(crate) fn empty(db: Database<'static, Bytes, Bytes>) -> Self {
        Tables {
            db,
            slots: Slots {
                cookies: u16::MAX,
                by_value: u16::MAX,
                by_expiry: None,
                state: None,
                by_authid: None,
                revocations: None,
            },
            present: false,
        }
    }

    pub(crate) fn records(&self) -> Database<'static, RecordKey, CookieCodec> {
        self.db.remap_types()
    }
    pub(crate) fn by_value(&self) -> Database<'static, ValueKey, OidCodec> {
        self.db.remap_types()
    }
    pub(crate) fn by_expiry(&self) -> Database<'static, ExpiryKey, Unit> {
        self.db.remap_types()
    }
    pub(crate) fn state(&self) -> Database<'static, StateKey, U64Codec> {
        self.db.remap_types()
    }

    pub(crate) fn need_present(&self) -> Result<()> {
        if self.present {
            Ok(())
        } else {
            Err(Error::metadata(
                "the cookie tables are missing from the metadata (slot 0)",
            ))
        }
    }

    /// The oid the value index gives for `value`.
    pub(crate) fn find_oid(&self, txn: &RoTxn, value: &str) -> Result<Option<Uuid>> {
        if !self.present || !fits_index(value) {
            return Ok(None);
        }
        let map_err = |e| match e {
            heed::Error::Decoding(d) => {
                Error::metadata(format!("value index entry for {value:?} is damaged: {d}"))
            }
            other => Error::Lmdb(LmdbError(other)),
        };
        // The hot path: a typical value (24 bytes) keyed in a small stack buffer, without
        // building (zeroing, moving) the 511-byte `ValueKey`. The same key bytes.
        const SHORT: usize = 62;
        if value.len() <= SHORT {
            let mut buf = [0u8; 2 + SHORT];
            buf[..2].copy_from_slice(&self.slots.by_value.to_be_bytes());
            buf[2..2 + value.len()].copy_from_slice(value.as_bytes());
            return self
                .db
                .remap_types::<Bytes, OidCodec>()
                .get(txn, &buf[..2 + value.len()])
                .map_err(map_err);
        }
        let key = ValueKey::new(self.slots.by_value, value)?;
        self.by_value().get(txn, &key).map_err(map_err)
    }

    /// The record stored under `oid`, verified.
    pub(crate) fn record<'t>(&self, txn: &'t RoTxn, oid: Uuid) -> Result<Option<CookieView<'t>>> {
        if !self.present {
            return Ok(None);
        }
        self.records()
            .get(txn, &RecordKey::new(self.slots.cookies, oid))
            .map_err(|e| match e {
                heed::Error::Decoding(d) => Error::CorruptRecord {
                    oid,
                    problem: d.to_string(),
                },
                other => Error::Lmdb(LmdbError(other)),
            })
    }

    /// Value → (oid, record), only when the record really carries that value.
    pub(crate) fn lookup<'t>(
        &self,
        txn: &'t RoTxn,
        value: &str,
    ) -> Result<Option<(Uuid, CookieView<'t>)>> {
        let Some(oid) = self.find_oid(txn, value)? else {
            return Ok(None);
        };
        Ok(self
            .record(txn, oid)?
            .filter(|view| view.value() == value)
            .map(|view| (oid, view)))
    }

    /// Every entry of `slot` in key order: (whole key, slot prefix included; value).
    pub(crate) fn slot_entries<'t>(
        &self,
        txn: &'t RoTxn,
        slot: u16,
    ) -> Result<impl Iterator<Item = Result<(&'t [u8], &'t [u8])>> + 't> {
        let prefix = SlotPrefix::new(slot);
        let iter = self
            .db
            .remap_key_type::<SlotPrefix>()
            .prefix_iter(txn, &prefix)
            .lmdb()?
            .remap_key_type::<Bytes>();
        Ok(ascending(iter.map(|item| item.lmdb())))
    }

    pub(crate) fn last_txn_mark(&self, txn: &RoTxn) -> Result<Option<u64>> {
        let Some(slot) = self.slots.state else {
            return Ok(None);
        };
        self.state()
            .get(txn, &StateKey::new(slot, StateKey::LAST_TXN))
            .map_err(|e| Error::metadata(format!("store state is damaged: {e}")))
    }

    /// The feature level recorded in the store (0: none recorded, as in a store only an
    /// older cookiestore, cfxdb or Crossbar wrote).
    pub(crate) fn feature_level(&self, txn: &RoTxn) -> Result<u64> {
        let Some(slot) = self.slots.state else {
            return Ok(0);
        };
        Ok(self
            .state()
            .get(txn, &StateKey::new(slot, StateKey::FEATURE_LEVEL))
            .map_err(|e| Error::metadata(format!("store state is damaged: {e}")))?
            .unwrap_or(0))
    }

    /// Refuses to write a store whose recorded feature level this build does not know.
    pub(crate) fn check_feature_level(&self, txn: &RoTxn, path: &Path) -> Result<u64> {
        let level = self.feature_level(txn)?;
        if level > FEATURE_LEVEL {
            return Err(Error::NewerStore {
                path: path.to_path_buf(),
                needed: level,
                known: FEATURE_LEVEL,
            });
        }
        Ok(level)
    }

    /// Records [`FEATURE_LEVEL`] when the store records a lower one (`recorded`).
    pub(crate) fn raise_feature_level(&self, txn: &mut RwTxn, recorded: u64) -> Result<()> {
        let Some(slot) = self.slots.state.filter(|_| recorded < FEATURE_LEVEL) else {
            return Ok(());
        };
        self.state()
            .put(
                txn,
                &StateKey::new(slot, StateKey::FEATURE_LEVEL),
                &FEATURE_LEVEL,
            )
            .lmdb()
    }

    /// Records that this transaction was written by cookiestore.
    pub(crate) fn mark_ours(&self, txn: &mut RwTxn) -> Result<()> {
        let Some(slot) = self.slots.state else {
            return Ok(());
        };
        let id = txn.id() as u64;
        self.state()
            .put(txn, &StateKey::new(slot, StateKey::LAST_TXN), &id)
            .lmdb()
    }

    pub(crate) fn delete_slot(&self, txn: &mut RwTxn, slot: u16) -> Result<u64> {
        let prefix = SlotPrefix::new(slot);
        let mut n = 0;
        let mut iter = self
            .db
            .remap_types::<SlotPrefix, DecodeIgnore>()
            .prefix_iter_mut(txn, &prefix)
            .lmdb()?
            .remap_key_type::<DecodeIgnore>();
        while let Some(item) = iter.next() {
            item.lmdb()?;
            // SAFETY: no reference into the database is kept across the deletion.
            unsafe { iter.del_current() }.lmdb()?;
            n += 1;
        }
        Ok(n)
    }
}

/// What a program must understand to write this store without misleading the others that
/// share it. Every commit of this build records it when the store records less; a build that
/// finds a higher level refuses every write ([`Error::NewerStore`]): so every process of a
/// host must be upgraded together. Raise it when a change would make an older writer wrong
/// (for example a new feed kind that other processes' caches must see).
///
/// - 1: the revocation feed with kinds 1 to 7 (the per-process caches follow auth changes,
///   replaced records, purges and flushes), the authid index, the store state, import
///   marks (a re-import skips logged-out cookies), and on Redis feed entries chained by
///   `tag`/`prev` (readers notice a feed that went back in time).
pub(crate) const FEATURE_LEVEL: u64 = 1;

pub(crate) fn foreign_writes(tables: &Tables, txn: &RoTxn) -> Result<bool> {
    if !tables.present {
        return Ok(false);
    }
    Ok(match tables.last_txn_mark(txn)? {
        Some(mark) => mark != txn.id() as u64,
        // A database we never wrote: whatever it holds came from someone else.
        None => true,
    })
}

pub(crate) fn first_expiry(tables: &Tables, txn: &RoTxn, slot: u16) -> Result<Option<u64>> {
    let range = (
        Bound::Included(ExpiryKey::lowest(slot, 0)),
        Bound::Included(ExpiryKey::new(slot, u64::MAX, Uuid::max())),
    );
    let mut iter = tables.by_expiry().range(txn, &range).lmdb()?;
    match iter.next() {
        None => Ok(None),
        Some(Ok((key, ()))) => Ok(Some(key.expires_at())),
        Some(Err(e)) => Err(Error::metadata(format!("expiry index is damaged: {e}"))),
    }
}

pub(crate) fn read_catalog(db: Database<'static, Bytes, Bytes>, txn: &RoTxn) -> Result<Catalog> {
    let mut catalog = Catalog::default();
    let prefix = SlotPrefix::new(0);
    let iter = db
        .remap_key_type::<SlotPrefix>()
        .prefix_iter(txn, &prefix)
        .lmdb()?
        .remap_key_type::<Bytes>();
    for item in iter {
        let (key, value) = item.lmdb()?;
        catalog.insert_raw(key, value)?;
    }
    Ok(catalog)
}

pub(crate) fn write_meta(
    db: Database<'static, Bytes, Bytes>,
    txn: &mut RwTxn,
    table: &TableDef,
    slot: u16,
) -> Result<()> {
    db.remap_types::<MetaKey, MetaCodec>()
        .put(txn, &MetaKey::new(slot), &TableMeta::new(table, slot))
        .lmdb()
}

/// `entries` (a walk of the B-tree in key order) that ends with an error at the first key
/// not greater than the one before it. LMDB trusts its pages: damaged branch pages can lead
/// a cursor back to pages it already walked, and the walk would then never end (while
/// `check` collects what it finds: memory without bound). Keys of a sound tree ascend
/// strictly, so the first repeat or step back is caught, and a walk never yields more
/// entries than the tree's pages hold.
pub(crate) fn ascending<'t>(
    entries: impl Iterator<Item = Result<(&'t [u8], &'t [u8])>> + 't,
) -> impl Iterator<Item = Result<(&'t [u8], &'t [u8])>> + 't {
    let mut previous: Option<&'t [u8]> = None;
    let mut failed = false;
    entries.map_while(move |item| {
        if failed {
            return None;
        }
        if let Ok((key, _)) = &item {
            if previous.is_some_and(|p| p >= *key) {
                failed = true;
                return Some(Err(Error::damaged_tree(
                    "a walk of its B-tree met a key that does not follow the one before it \
                     (keys ascend in a sound tree): its pages are damaged",
                )));
            }
            previous = Some(*key);
        }
        Some(item)
    })
}

#[cfg(test)]
mod tests {
    use super::ascending;
    use crate::error::{Error, Result};

    fn walk<'a>(keys: &[&'a [u8]]) -> Vec<Result<(&'a [u8], &'a [u8])>> {
        let items: Vec<Result<(&[u8], &[u8])>> = keys.iter().map(|k| Ok((*k, &b""[..]))).collect();
        ascending(items.into_iter()).collect()
    }

    #[test]
    fn a_walk_ends_at_the_first_key_that_does_not_ascend() {
        let ok = walk(&[b"a", b"ab", b"b", b"ba"]);
        assert_eq!(ok.len(), 4);
        assert!(ok.iter().all(Result::is_ok));
        // A repeat (a cycle) and a step back each end the walk with one error.
        for keys in [
            &[&b"a"[..], b"b", b"b", b"c"][..],
            &[b"a", b"c", b"b", b"d"],
        ] {
            let got = walk(keys);
            assert_eq!(got.len(), 3, "{keys:?}");
            assert!(got[..2].iter().all(Result::is_ok));
            assert!(
                matches!(&got[2], Err(Error::Damaged { problem, .. }) if problem.contains("does not follow")),
                "{:?}",
                got[2]
            );
        }
    }
}
