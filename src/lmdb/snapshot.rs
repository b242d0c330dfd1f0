//! [`Snapshot`]: one consistent, read-only view of a store.

use heed::RoTxn;
use uuid::Uuid;

use crate::cache::entry::CachedLookup;
use crate::error::{Error, LmdbResult, Result};
use crate::lmdb::env::Shared;
use crate::lmdb::keys::{RecordKey, split_slot};
use crate::lmdb::layout::{Catalog, Slots};
use crate::lmdb::tables::{Tables, ascending, first_expiry, foreign_writes, read_catalog};
use crate::record::codec::CookieView;
use crate::record::codec::materialise;
use crate::record::cookie::Cookie;
use crate::record::cookie::Lookup;
use crate::record::mark::hex;
use crate::record::reader::{self, RecordReader};

/// One consistent, read-only view of an LMDB store (one read transaction): see
/// [`LmdbStore::snapshot`](crate::LmdbStore::snapshot), and
/// [`Batch::view`](crate::Batch::view) for the view of a write transaction.
pub struct Snapshot<'t> {
    pub(crate) txn: &'t RoTxn<'t>,
    pub(crate) tables: Tables,
    pub(crate) shared: &'t Shared,
    pub(crate) now: u64,
}

impl<'t> Snapshot<'t> {
    /// The time expiry is evaluated at (ns).
    pub fn now_ns(&self) -> u64 {
        self.now
    }

    /// The id of the transaction this snapshot reads.
    pub fn txn_id(&self) -> u64 {
        self.txn.id() as u64
    }

    /// The hot path: value → the live record's (oid, field reader), reading only what is
    /// asked of it (see [`RecordReader`]). `None` when absent, expired, or when the index
    /// entry points at a record with another value.
    pub(crate) fn live_record(&self, value: &str) -> Result<Option<(Uuid, RecordReader<'t>)>> {
        let Some((oid, bytes)) = self.record_bytes(value)? else {
            return Ok(None);
        };
        let corrupt = |problem| Error::CorruptRecord { oid, problem };
        let record = RecordReader::new(bytes).map_err(corrupt)?;
        if !record.value_is(value).map_err(corrupt)?
            || self.now >= record.expires_at().map_err(corrupt)?
        {
            return Ok(None);
        }
        Ok(Some((oid, record)))
    }

    /// The hot path: what a lookup of `value` answers (the live record's oid, expiry,
    /// lifetime and authentication), reading only those fields (`record/reader.rs`). `None`
    /// when absent, expired, or when the index entry points at a record with another value.
    pub(crate) fn lookup(&self, value: &str) -> Result<Option<Lookup>> {
        match self.record_bytes(value)? {
            Some((oid, bytes)) => reader::lookup(oid, bytes, value, self.now),
            None => Ok(None),
        }
    }

    /// The record the value index gives for `value` (its oid and bytes, borrowed from the
    /// map, its first cache lines touched), not yet checked: the two B-tree searches of
    /// every read by value.
    #[inline]
    fn record_bytes(&self, value: &str) -> Result<Option<(Uuid, &'t [u8])>> {
        let Some(oid) = self.tables.find_oid(self.txn, value)? else {
            return Ok(None);
        };
        let key = RecordKey::new(self.tables.slots.cookies, oid);
        let bytes = self
            .tables
            .db
            .remap_key_type::<RecordKey>()
            .get(self.txn, &key)
            .lmdb()?;
        Ok(bytes.map(|bytes| {
            touch_lines(bytes);
            (oid, bytes)
        }))
    }

    /// What the cache keeps of the live cookie with `value` (see [`Self::lookup`]).
    pub(crate) fn lookup_entry(&self, value: &str) -> Result<Option<CachedLookup>> {
        let Some((oid, record)) = self.live_record(value)? else {
            return Ok(None);
        };
        CachedLookup::from_record(oid, &record).map(Some)
    }

    /// When the first entry of the expiry index expires, if there is one.
    pub(crate) fn first_expiry(&self) -> Result<Option<u64>> {
        match self.tables.slots.by_expiry {
            Some(slot) if self.tables.present => first_expiry(&self.tables, self.txn, slot),
            _ => Ok(None),
        }
    }

    /// The live cookie with `value`.
    pub fn get(&self, value: &str) -> Result<Option<Cookie>> {
        match self.tables.lookup(self.txn, value)? {
            Some((oid, view)) if !view.is_expired(self.now) => Ok(Some(materialise(oid, view)?)),
            _ => Ok(None),
        }
    }

    /// The live cookie with `oid`.
    pub fn get_by_oid(&self, oid: Uuid) -> Result<Option<Cookie>> {
        match self.tables.record(self.txn, oid)? {
            Some(view) if !view.is_expired(self.now) => Ok(Some(materialise(oid, view)?)),
            _ => Ok(None),
        }
    }

    /// Every record in oid order, expired ones included, each decoded on demand. A record
    /// that cannot be decoded is an `Err(CorruptRecord)` item; the walk goes on after it.
    pub fn records(&self) -> Result<impl Iterator<Item = Result<Cookie>> + '_> {
        Ok(self.raw_records()?.map(|item| {
            let (oid, bytes) = item?;
            let view =
                CookieView::new(bytes).map_err(|problem| Error::CorruptRecord { oid, problem })?;
            materialise(oid, view)
        }))
    }

    /// Live cookies in oid order (records that cannot be decoded are errors).
    pub fn live(&self) -> Result<impl Iterator<Item = Result<Cookie>> + '_> {
        let now = self.now;
        Ok(self
            .records()?
            .filter(move |c| c.as_ref().map_or(true, |c| !c.is_expired(now))))
    }

    /// Raw records: (oid from the key, bytes).
    pub(crate) fn raw_records(&self) -> Result<RawRecords<'t>> {
        if !self.tables.present {
            return Ok(Box::new(std::iter::empty()));
        }
        let iter = self
            .tables
            .slot_entries(self.txn, self.tables.slots.cookies)?;
        Ok(Box::new(iter.map(|item| {
            let (key, bytes) = item?;
            let oid = RecordKey::parse_oid(key).ok_or_else(|| {
                Error::metadata(format!(
                    "Cookies key {} is not slot + 16-byte oid",
                    hex(key)
                ))
            })?;
            Ok((oid, bytes))
        })))
    }

    /// Raw value-index entries: (value bytes, oid bytes).
    pub(crate) fn raw_value_index(&self) -> Result<RawEntries<'t>> {
        self.raw_slot(self.tables.present.then_some(self.tables.slots.by_value))
    }

    /// Raw expiry-index keys after the slot.
    pub(crate) fn raw_expiry_index(&self) -> Result<RawEntries<'t>> {
        self.raw_slot(self.tables.slots.by_expiry.filter(|_| self.tables.present))
    }

    pub(crate) fn raw_slot(&self, slot: Option<u16>) -> Result<RawEntries<'t>> {
        let Some(slot) = slot else {
            return Ok(Box::new(std::iter::empty()));
        };
        Ok(Box::new(self.tables.slot_entries(self.txn, slot)?.map(
            |item| {
                item.map(|(key, value)| (split_slot(key).map_or(&[][..], |(_, rest)| rest), value))
            },
        )))
    }

    /// The table metadata (slot 0).
    pub(crate) fn catalog(&self) -> Result<Catalog> {
        read_catalog(self.tables.db, self.txn)
    }

    /// The slots of the cookie tables, if the database has them.
    pub(crate) fn slots(&self) -> Option<Slots> {
        self.tables.present.then_some(self.tables.slots)
    }

    /// Whether another program wrote since cookiestore's last write.
    pub fn foreign_writes(&self) -> Result<bool> {
        foreign_writes(&self.tables, self.txn)
    }

    /// Live cookies (walks the keys; decodes only max_age and created).
    pub fn count_live(&self) -> Result<u64> {
        let mut n = 0;
        for item in self.raw_records()? {
            let (_, bytes) = item?;
            if CookieView::new(bytes).is_ok_and(|v| !v.is_expired(self.now)) {
                n += 1;
            }
        }
        Ok(n)
    }
}

// ---- check/repair support ----------------------------------------------------------------------
//
// Crate-internal access to raw keys and values, for `check`, `repair` and `migrate`. Nothing
// here decodes or judges: the callers do.

/// Raw records: (oid from the key, record bytes).
pub(crate) type RawRecords<'t> = Box<dyn Iterator<Item = Result<(Uuid, &'t [u8])>> + 't>;

/// Raw entries: (key after the slot, value).
pub(crate) type RawEntries<'t> = Box<dyn Iterator<Item = Result<(&'t [u8], &'t [u8])>> + 't>;

impl<'t> Snapshot<'t> {
    /// Every entry of `slot`: (key after the 2-byte slot prefix, value).
    pub(crate) fn raw_table(&self, slot: u16) -> Result<RawEntries<'t>> {
        self.raw_slot(Some(slot))
    }

    /// The record that the value index gives for `value`, expired or not, when it really
    /// carries that value. A record that cannot be decoded is a `CorruptRecord` error.
    pub(crate) fn get_any_by_value(&self, value: &str) -> Result<Option<Cookie>> {
        match self.tables.lookup(self.txn, value)? {
            Some((oid, view)) => Ok(Some(materialise(oid, view)?)),
            None => Ok(None),
        }
    }

    /// Every entry of `slot`: (whole key, value).
    pub(crate) fn raw_entries(&self, slot: u16) -> Result<RawEntries<'t>> {
        Ok(Box::new(self.tables.slot_entries(self.txn, slot)?))
    }

    /// The record stored under `oid`, expired or not.
    pub(crate) fn get_any_by_oid(&self, oid: Uuid) -> Result<Option<Cookie>> {
        match self.tables.record(self.txn, oid)? {
            Some(view) => Ok(Some(materialise(oid, view)?)),
            None => Ok(None),
        }
    }

    /// Every entry of the unnamed database, metadata included: (whole key, value).
    pub(crate) fn raw_all(&self) -> Result<RawEntries<'t>> {
        let iter = self.tables.db.iter(self.txn).lmdb()?;
        Ok(Box::new(ascending(iter.map(|item| item.lmdb()))))
    }
}

/// Reads one byte of each cache line of a (typical, small) record before its fields are
/// read. The field reads form a chain (root offset → table → vtable → field → string), each
/// a cache miss on a record not read lately; these loads are independent, so the CPU overlaps
/// their misses, and the chain then finds the record in cache.
#[inline]
fn touch_lines(bytes: &[u8]) {
    if bytes.len() <= 1024 {
        let mut acc = 0u8;
        for b in bytes.iter().step_by(64) {
            acc ^= *b;
        }
        std::hint::black_box(acc);
    }
}
