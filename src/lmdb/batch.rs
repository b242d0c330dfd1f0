//! [`Batch`]: the operations of one write transaction.

use std::ops::Bound;

use heed::{RoTxn, RwTxn, WithoutTls};
use uuid::Uuid;

use crate::error::{Error, LmdbResult, Result};
use crate::feed::kind::RevocationKind;
use crate::lmdb::env::Shared;
use crate::lmdb::keys::{ExpiryKey, RecordKey, ValueKey};
use crate::lmdb::snapshot::Snapshot;
use crate::lmdb::tables::Tables;
use crate::record::codec::materialise;
use crate::record::codec::{CookieView, Encoded};
use crate::record::cookie::{
    Auth, AuthChange, AuthContext, AuthOutcome, AuthUpdate, Cookie, create_with,
};
use crate::record::value;

/// The operations of one write transaction of an LMDB store: see
/// [`LmdbStore::batch`](crate::LmdbStore::batch).
pub struct Batch<'a, 'e> {
    pub(crate) txn: WriteTxn<'a, 'e>,
    pub(crate) tables: Tables,
    pub(crate) shared: &'a Shared,
    pub(crate) now: u64,
}

/// A write transaction that knows whether it was written to: reads go through `Deref`, every
/// write through [`WriteTxn::w`]. A batch that wrote nothing is aborted, not committed, so a
/// logout or login of an unknown value costs no commit, no fsync and no cache refresh in
/// other processes (LMDB itself skips an empty commit, but cookiestore's own "last writer"
/// mark would make every commit a write).
pub(crate) struct WriteTxn<'a, 'e> {
    txn: &'a mut RwTxn<'e>,
    written: bool,
    /// Write operations made (puts and deletions): what the disk reserve (`reserve.rs`)
    /// assumes the commit may take from the file.
    writes: u64,
}

impl<'a, 'e> WriteTxn<'a, 'e> {
    pub(crate) fn new(txn: &'a mut RwTxn<'e>) -> Self {
        WriteTxn {
            txn,
            written: false,
            writes: 0,
        }
    }

    /// The transaction, to write to: from now on the batch commits.
    pub(crate) fn w(&mut self) -> &mut RwTxn<'e> {
        self.written = true;
        self.writes += 1;
        self.txn
    }

    /// Write operations made so far (each call of [`WriteTxn::w`]).
    pub(crate) fn writes(&self) -> u64 {
        self.writes
    }

    /// Whether anything was written (or a write was attempted).
    pub(crate) fn written(&self) -> bool {
        self.written
    }
}

impl<'e> std::ops::Deref for WriteTxn<'_, 'e> {
    type Target = RoTxn<'e, WithoutTls>;

    fn deref(&self) -> &Self::Target {
        self.txn
    }
}

impl Batch<'_, '_> {
    /// The time expiry is evaluated at in this batch (ns).
    pub fn now_ns(&self) -> u64 {
        self.now
    }

    /// This transaction's view of the store, with its own writes so far: every read of a
    /// [`Snapshot`].
    pub fn view(&self) -> Snapshot<'_> {
        Snapshot {
            txn: &self.txn,
            tables: self.tables,
            shared: self.shared,
            now: self.now,
        }
    }

    /// The live cookie with `value`, as this transaction sees it.
    pub fn get(&self, value: &str) -> Result<Option<Cookie>> {
        self.view().get(value)
    }

    /// Creates a cookie with a fresh random value: see
    /// [`CookieStore::create`](crate::CookieStore::create).
    pub fn create(&mut self, name: &str, length: usize, max_age: u64) -> Result<Cookie> {
        self.tables.need_present()?;
        let now = self.now;
        create_with(name, length, max_age, now, |cookie| {
            // A value or oid that exists is a collision: drawn again, never overwritten.
            if self.tables.find_oid(&self.txn, &cookie.value)?.is_some()
                || self.tables.record(&self.txn, cookie.oid)?.is_some()
            {
                return Ok(false);
            }
            self.write_new(cookie)?;
            Ok(true)
        })
    }

    /// Stores a whole record: see [`CookieStore::put`](crate::CookieStore::put). Replaces the
    /// record with the same oid; a value held by another live record is refused ([`Error::DuplicateValue`]).
    pub fn put(&mut self, cookie: &Cookie) -> Result<()> {
        self.tables.need_present()?;
        self.put_encoded(&Encoded::of(cookie)?)
    }

    /// [`Self::put`] of a record encoded already.
    pub(crate) fn put_encoded(&mut self, record: &Encoded) -> Result<()> {
        self.tables.need_present()?;
        let key = ValueKey::new(self.tables.slots.by_value, &record.value)?;
        let indexed = self.tables.find_oid(&self.txn, &record.value)?;
        if let Some(existing) = indexed
            && existing != record.oid
            && self
                .tables
                .record(&self.txn, existing)
                .ok()
                .flatten()
                .is_some()
        {
            return Err(Error::DuplicateValue {
                value: record.value.clone(),
                existing,
            });
        }
        let old = match self.tables.record(&self.txn, record.oid) {
            Ok(Some(view)) => Some((view.value().to_string(), view.expires_at())),
            Ok(None) | Err(Error::CorruptRecord { .. }) => None,
            Err(e) => return Err(e),
        };
        // What a cache may hold an answer for: the replaced record's value, and this value
        // when the index already pointed somewhere.
        if let Some((old_value, _)) = &old {
            self.append_revocation(RevocationKind::Replaced, record.oid, old_value)?;
        }
        if indexed.is_some() && old.as_ref().is_none_or(|(v, _)| *v != record.value) {
            self.append_revocation(RevocationKind::Replaced, record.oid, &record.value)?;
        }
        let old_authid = self.authid_of(record.oid);
        self.reindex_authid(record.oid, old_authid.as_deref(), record.authid.as_deref())?;
        if let Some((old_value, old_expiry)) = old {
            if old_value != record.value {
                self.unindex_value(&old_value, record.oid)?;
            }
            if old_expiry != record.expires
                && let Some(slot) = self.tables.slots.by_expiry
            {
                self.tables
                    .by_expiry()
                    .delete(self.txn.w(), &ExpiryKey::new(slot, old_expiry, record.oid))
                    .lmdb()?;
            }
        }
        self.put_record_bytes(record.oid, &record.bytes)?;
        self.tables
            .by_value()
            .put(self.txn.w(), &key, &record.oid)
            .lmdb()?;
        self.index_expiry_at(record.expires, record.oid)
    }

    /// Stores `auth` on the live cookie with `value`: see
    /// [`CookieStore::set_auth`](crate::CookieStore::set_auth).
    pub fn set_auth(
        &mut self,
        value: &str,
        auth: &Auth,
        context: &AuthContext,
    ) -> Result<AuthUpdate> {
        let change = AuthChange::Set(auth, context);
        change.check()?;
        self.change_auth(value, change)
    }

    /// Removes the authentication from the live cookie with `value`, keeping the cookie: see
    /// [`CookieStore::clear_auth`](crate::CookieStore::clear_auth).
    pub fn clear_auth(&mut self, value: &str) -> Result<AuthUpdate> {
        self.change_auth(value, AuthChange::Clear)
    }

    /// Applies `change` (checked by the caller) to the live cookie with `value`: the record
    /// and the authid index change (same oid, value and expiry), and the feed gets an
    /// [`RevocationKind::Auth`] entry for the caches.
    pub(crate) fn change_auth(
        &mut self,
        value: &str,
        change: AuthChange<'_>,
    ) -> Result<AuthUpdate> {
        self.tables.need_present()?;
        let record = match self.tables.lookup(&self.txn, value)? {
            Some((_, view)) if view.is_expired(self.now) => None,
            Some((oid, view)) => Some(materialise(oid, view)?),
            None => None,
        };
        let (cookie, old_authid) = match change.apply(record, self.now) {
            AuthOutcome::Done(update) => return Ok(update),
            AuthOutcome::Write { cookie, old_authid } => (cookie, old_authid),
        };
        self.reindex_authid(cookie.oid, old_authid.as_deref(), cookie.authid.as_deref())?;
        self.put_record(&cookie)?;
        self.append_revocation(RevocationKind::Auth, cookie.oid, value)?;
        Ok(AuthUpdate::Written)
    }

    /// Deletes the cookie with `value` and its index entries (expired or not).
    pub fn delete(&mut self, value: &str) -> Result<bool> {
        self.tables.need_present()?;
        // Only the cookie that really carries `value` (an index entry pointing at another
        // record is damage for `repair`, never a reason to delete that record).
        let found = match self.tables.lookup(&self.txn, value) {
            Ok(found) => found.map(|(oid, view)| (oid, view.expires_at())),
            Err(Error::CorruptRecord { .. }) => {
                // The record cannot say its value, but the caller did: the feed entry (which
                // tells every worker whose connections to close) and the index carry it.
                let Some(oid) = self.tables.find_oid(&self.txn, value)? else {
                    return Ok(false);
                };
                let removed = self.delete_oid_known(oid, RevocationKind::Logout, Some(value))?;
                if removed {
                    self.unindex_value(value, oid)?;
                }
                return Ok(removed);
            }
            Err(e) => return Err(e),
        };
        let Some((oid, expires_at)) = found else {
            return Ok(false);
        };
        // The index entry is known to point here: no second lookup of it.
        let key = ValueKey::new(self.tables.slots.by_value, value)?;
        self.tables.by_value().delete(self.txn.w(), &key).lmdb()?;
        let removed = self.remove_record(oid, expires_at)?;
        if removed {
            self.append_revocation(RevocationKind::Logout, oid, value)?;
        }
        Ok(removed)
    }

    /// Deletes the cookie with `oid` and its index entries. A record that cannot be decoded
    /// is deleted too (its index entries are then left for `repair`).
    pub fn delete_oid(&mut self, oid: Uuid) -> Result<bool> {
        self.delete_oid_as(oid, RevocationKind::Logout)
    }

    /// [`Self::delete_oid`], recorded in the revocation feed as `kind`.
    pub(crate) fn delete_oid_as(&mut self, oid: Uuid, kind: RevocationKind) -> Result<bool> {
        self.delete_oid_known(oid, kind, None)
    }

    /// [`Self::delete_oid_as`]; `known_value` is the value the caller knows the cookie by,
    /// recorded in the feed when the record cannot be decoded to tell it.
    fn delete_oid_known(
        &mut self,
        oid: Uuid,
        kind: RevocationKind,
        known_value: Option<&str>,
    ) -> Result<bool> {
        self.tables.need_present()?;
        let (removed, value) = match self.tables.record(&self.txn, oid) {
            Ok(Some(view)) => {
                let (value, expires_at) = (view.value().to_string(), view.expires_at());
                self.unindex_value(&value, oid)?;
                (self.remove_record(oid, expires_at)?, value)
            }
            Ok(None) => (false, String::new()),
            Err(Error::CorruptRecord { .. }) => (
                self.tables
                    .records()
                    .delete(
                        self.txn.w(),
                        &RecordKey::new(self.tables.slots.cookies, oid),
                    )
                    .lmdb()?,
                known_value.unwrap_or_default().to_string(),
            ),
            Err(e) => return Err(e),
        };
        if removed {
            self.append_revocation(kind, oid, &value)?;
        }
        Ok(removed)
    }

    /// Deletes a record and its expiry entry (the value index is the caller's).
    fn remove_record(&mut self, oid: Uuid, expires_at: u64) -> Result<bool> {
        if let Some(authid) = self.authid_of(oid) {
            self.unindex_authid(&authid, oid)?;
        }
        if let Some(slot) = self.tables.slots.by_expiry {
            self.tables
                .by_expiry()
                .delete(self.txn.w(), &ExpiryKey::new(slot, expires_at, oid))
                .lmdb()?;
        }
        self.tables
            .records()
            .delete(
                self.txn.w(),
                &RecordKey::new(self.tables.slots.cookies, oid),
            )
            .lmdb()
    }

    /// Deletes up to `limit` expiry-index entries that are due, with their expired cookies.
    /// Returns (entries processed, cookies deleted).
    pub(crate) fn purge_some(&mut self, limit: usize) -> Result<(usize, u64)> {
        self.tables.need_present()?;
        let Some(slot) = self.tables.slots.by_expiry else {
            return Ok((0, 0));
        };
        let range = (
            Bound::Included(ExpiryKey::lowest(slot, 0)),
            Bound::Included(ExpiryKey::new(slot, self.now, Uuid::max())),
        );
        // Read first: which due entries belong to expired records (delete them), which to
        // records whose expiry moved (re-index them), which to nothing (just drop them).
        let mut due = 0;
        let mut expired: Vec<(Uuid, String)> = Vec::new();
        let mut moved: Vec<ExpiryKey> = Vec::new();
        let mut authids: Vec<(String, Uuid)> = Vec::new();
        for item in self
            .tables
            .by_expiry()
            .range(&self.txn, &range)
            .lmdb()?
            .take(limit)
        {
            let (key, ()) =
                item.map_err(|e| Error::metadata(format!("expiry index is damaged: {e}")))?;
            due += 1;
            let oid = key.oid();
            match self.tables.record(&self.txn, oid) {
                Ok(Some(view)) if view.is_expired(self.now) => {
                    if let Some(authid) = view.authid() {
                        authids.push((authid.to_string(), oid));
                    }
                    expired.push((oid, view.value().to_string()))
                }
                Ok(Some(view)) if view.expires_at() != key.expires_at() => {
                    moved.push(ExpiryKey::new(slot, view.expires_at(), oid))
                }
                Ok(_) | Err(Error::CorruptRecord { .. }) => {} // corrupt: left for repair
                Err(e) => return Err(e),
            }
        }
        // Then write, each table in key order: the due entries are the first `due` keys of
        // the expiry index, and sorted deletions walk each B-tree once instead of jumping.
        if due == 0 {
            return Ok((0, 0));
        }
        let mut cursor = self
            .tables
            .by_expiry()
            .range_mut(self.txn.w(), &range)
            .lmdb()?;
        for _ in 0..due {
            match cursor.next() {
                Some(item) => {
                    item.lmdb()?;
                    // SAFETY: nothing borrowed from the database is held across the deletion.
                    unsafe { cursor.del_current() }.lmdb()?;
                }
                None => break,
            }
        }
        drop(cursor);
        for key in &moved {
            self.tables.by_expiry().put(self.txn.w(), key, &()).lmdb()?;
        }
        expired.sort_unstable_by_key(|(oid, _)| *oid);
        for (oid, _) in &expired {
            self.tables
                .records()
                .delete(
                    self.txn.w(),
                    &RecordKey::new(self.tables.slots.cookies, *oid),
                )
                .lmdb()?;
        }
        expired.sort_unstable_by(|a, b| a.1.cmp(&b.1));
        for (oid, value) in &expired {
            self.unindex_value(value, *oid)?;
        }
        // Expiry is not a revocation; one entry tells caches what this purge deleted.
        for (authid, oid) in &authids {
            self.unindex_authid(authid, *oid)?;
        }
        if !expired.is_empty() {
            self.append_revocation(RevocationKind::Purged, Uuid::nil(), "")?;
        }
        Ok((due, expired.len() as u64))
    }

    /// Rebuilds the expiry index from the records.
    pub(crate) fn rebuild_expiry_index(&mut self) -> Result<()> {
        self.tables.need_present()?;
        let Some(slot) = self.tables.slots.by_expiry else {
            return Ok(());
        };
        self.tables.delete_slot(self.txn.w(), slot)?;
        let mut entries = Vec::new();
        for item in self
            .tables
            .slot_entries(&self.txn, self.tables.slots.cookies)?
        {
            let (key, bytes) = item?;
            let oid = RecordKey::parse_oid(key);
            if let (Some(oid), Ok(view)) = (oid, CookieView::new(bytes)) {
                entries.push(ExpiryKey::new(slot, view.expires_at(), oid));
            }
        }
        for key in &entries {
            self.tables.by_expiry().put(self.txn.w(), key, &()).lmdb()?;
        }
        Ok(())
    }

    pub(crate) fn write_new(&mut self, cookie: &Cookie) -> Result<()> {
        let key = ValueKey::new(self.tables.slots.by_value, &cookie.value)?;
        self.put_record(cookie)?;
        self.tables
            .by_value()
            .put(self.txn.w(), &key, &cookie.oid)
            .lmdb()?;
        if let Some(authid) = &cookie.authid {
            self.index_authid(authid, cookie.oid)?;
        }
        self.index_expiry(cookie)
    }

    pub(crate) fn put_record(&mut self, cookie: &Cookie) -> Result<()> {
        self.put_record_bytes(cookie.oid, &cookie.encode()?)
    }

    fn put_record_bytes(&mut self, oid: Uuid, bytes: &[u8]) -> Result<()> {
        self.tables
            .db
            .remap_key_type::<RecordKey>()
            .put(
                self.txn.w(),
                &RecordKey::new(self.tables.slots.cookies, oid),
                bytes,
            )
            .lmdb()
    }

    pub(crate) fn index_expiry(&mut self, cookie: &Cookie) -> Result<()> {
        self.index_expiry_at(cookie.expires_at(), cookie.oid)
    }

    fn index_expiry_at(&mut self, expires: u64, oid: Uuid) -> Result<()> {
        if let Some(slot) = self.tables.slots.by_expiry {
            self.tables
                .by_expiry()
                .put(self.txn.w(), &ExpiryKey::new(slot, expires, oid), &())
                .lmdb()?;
        }
        Ok(())
    }

    /// Removes `value`'s index entry if it points at `oid` (never another cookie's).
    pub(crate) fn unindex_value(&mut self, value: &str, oid: Uuid) -> Result<()> {
        if !value::fits_index(value) {
            return Ok(());
        }
        if self.tables.find_oid(&self.txn, value)? == Some(oid) {
            let key = ValueKey::new(self.tables.slots.by_value, value)?;
            self.tables.by_value().delete(self.txn.w(), &key).lmdb()?;
        }
        Ok(())
    }
}

impl Batch<'_, '_> {
    /// The value stored under a whole raw key.
    pub(crate) fn raw_get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self
            .tables
            .db
            .get(&self.txn, key)
            .lmdb()?
            .map(<[u8]>::to_vec))
    }

    /// Stores `value` under a whole raw key.
    pub(crate) fn raw_put(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        self.tables.db.put(self.txn.w(), key, value).lmdb()
    }

    /// Deletes a whole raw key; returns whether it existed.
    pub(crate) fn raw_delete(&mut self, key: &[u8]) -> Result<bool> {
        self.tables.db.delete(self.txn.w(), key).lmdb()
    }

    /// Deletes every entry of `slot`; returns how many.
    pub(crate) fn clear_slot(&mut self, slot: u16) -> Result<u64> {
        self.tables.delete_slot(self.txn.w(), slot)
    }
}
