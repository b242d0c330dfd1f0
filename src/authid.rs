//! The authid index: which cookies carry which authid, for logging a user out everywhere.
//!
//! Key: slot + the authid's length (`u16` BE, saturating) + its first at most
//! [`AUTHID_KEY_MAX`] bytes + the cookie's oid (16 bytes); the value is empty. Authids longer
//! than [`AUTHID_KEY_MAX`] bytes share a key prefix with others of the same length and
//! beginning, so every lookup verifies the record's full authid. cfxdb ignores the table; it
//! is kept in step by every write of cookiestore and rebuilt after foreign writes.

use uuid::Uuid;

use crate::batch::Batch;
use crate::check::Problem;
use crate::cookie::CookieView;
use crate::error::{LmdbResult, Result};
use crate::layout::{RecordKey, Slots, hex};
use crate::revocations::RevocationKind;
use crate::snapshot::Snapshot;
use crate::store::{CookieStore, Growth};

/// How many bytes of an authid its index key holds.
pub(crate) const AUTHID_KEY_MAX: usize = 400;

/// The key prefix shared by every entry of `authid`: slot + length + truncated authid.
pub(crate) fn authid_prefix(slot: u16, authid: &str) -> Vec<u8> {
    let bytes = authid.as_bytes();
    let len = u16::try_from(bytes.len()).unwrap_or(u16::MAX);
    let kept = &bytes[..bytes.len().min(AUTHID_KEY_MAX)];
    let mut key = Vec::with_capacity(4 + kept.len() + 16);
    key.extend_from_slice(&slot.to_be_bytes());
    key.extend_from_slice(&len.to_be_bytes());
    key.extend_from_slice(kept);
    key
}

/// The index key of cookie `oid` carrying `authid`.
pub(crate) fn authid_key(slot: u16, authid: &str, oid: Uuid) -> Vec<u8> {
    let mut key = authid_prefix(slot, authid);
    key.extend_from_slice(oid.as_bytes());
    key
}

/// The oid at the end of an authid-index key; `None` when the key is too short.
pub(crate) fn oid_of_key(key: &[u8]) -> Option<Uuid> {
    if key.len() < 2 + 2 + 16 {
        return None;
    }
    Uuid::from_slice(&key[key.len() - 16..]).ok()
}

impl Batch<'_, '_> {
    /// Adds the index entry of `oid` carrying `authid`.
    pub(crate) fn index_authid(&mut self, authid: &str, oid: Uuid) -> Result<()> {
        if let Some(slot) = self.tables.slots.by_authid {
            let key = authid_key(slot, authid, oid);
            self.tables.db.put(self.txn, &key, &[]).lmdb()?;
        }
        Ok(())
    }

    /// Removes the index entry of `oid` carrying `authid`.
    pub(crate) fn unindex_authid(&mut self, authid: &str, oid: Uuid) -> Result<()> {
        if let Some(slot) = self.tables.slots.by_authid {
            let key = authid_key(slot, authid, oid);
            self.tables.db.delete(self.txn, &key).lmdb()?;
        }
        Ok(())
    }

    /// Keeps the authid index in step when the record `oid` goes from `old` to `new`.
    pub(crate) fn reindex_authid(
        &mut self,
        oid: Uuid,
        old: Option<&str>,
        new: Option<&str>,
    ) -> Result<()> {
        if old == new {
            return Ok(());
        }
        if let Some(old) = old {
            self.unindex_authid(old, oid)?;
        }
        if let Some(new) = new {
            self.index_authid(new, oid)?;
        }
        Ok(())
    }

    /// The authid of the record `oid`, when it exists and decodes.
    pub(crate) fn authid_of(&self, oid: Uuid) -> Option<String> {
        match self.tables.record(self.txn, oid) {
            Ok(Some(view)) => view.authid().map(str::to_string),
            _ => None,
        }
    }

    /// Rebuilds the authid index from the records.
    pub(crate) fn rebuild_authid_index(&mut self) -> Result<()> {
        self.tables.need_present()?;
        let Some(slot) = self.tables.slots.by_authid else {
            return Ok(());
        };
        self.tables.delete_slot(self.txn, slot)?;
        let mut keys = Vec::new();
        for item in self
            .tables
            .slot_entries(self.txn, self.tables.slots.cookies)?
        {
            let (key, bytes) = item?;
            let oid = RecordKey::parse_oid(key);
            if let (Some(oid), Ok(view)) = (oid, CookieView::new(bytes))
                && let Some(authid) = view.authid()
            {
                keys.push(authid_key(slot, authid, oid));
            }
        }
        keys.sort_unstable();
        for key in &keys {
            self.tables.db.put(self.txn, key, &[]).lmdb()?;
        }
        Ok(())
    }

    /// The oids of the cookies whose record's authid is `authid` (verified against the
    /// record: the key may hold a truncated authid).
    pub(crate) fn oids_of_authid(&self, authid: &str) -> Result<Vec<Uuid>> {
        let Some(slot) = self.tables.slots.by_authid else {
            return Ok(Vec::new());
        };
        let prefix = authid_prefix(slot, authid);
        let mut candidates = Vec::new();
        for item in self.tables.db.prefix_iter(self.txn, &prefix).lmdb()? {
            let (key, _) = item.lmdb()?;
            if key.len() == prefix.len() + 16
                && let Some(oid) = oid_of_key(key)
            {
                candidates.push(oid);
            }
        }
        Ok(candidates
            .into_iter()
            .filter(|oid| self.authid_of(*oid).as_deref() == Some(authid))
            .collect())
    }

    /// Deletes every cookie whose authid is `authid`, each recorded in the revocation feed;
    /// returns how many.
    pub fn logout_authid(&mut self, authid: &str) -> Result<u64> {
        self.tables.need_present()?;
        let mut n = 0;
        for oid in self.oids_of_authid(authid)? {
            if self.delete_oid_as(oid, RevocationKind::Authid)? {
                n += 1;
            }
        }
        Ok(n)
    }
}

impl CookieStore {
    /// Deletes every cookie whose record carries `authid` (logs the user out everywhere) in
    /// one transaction, each recorded in the revocation feed; returns how many. Costs in
    /// proportion to that user's cookies (the authid index), not the store's size.
    pub fn logout_authid(&self, authid: &str) -> Result<u64> {
        #[cfg(feature = "redis")]
        if let Some(redis) = self.redis() {
            if self.is_readonly() {
                return Err(crate::error::Error::ReadOnly {
                    operation: "log out an authid",
                });
            }
            return redis.logout_authid(authid, self.now_ns());
        }
        self.batch_with("log out an authid", Growth::Headroom, |b| {
            b.logout_authid(authid)
        })
    }
}

/// The authid index's differences from the records, for `check`.
pub(crate) fn check_authid_index(s: &Snapshot<'_>, slots: &Slots) -> Result<Vec<Problem>> {
    let Some(slot) = slots.by_authid else {
        return Ok(Vec::new());
    };
    let mut expected: std::collections::BTreeMap<Vec<u8>, (Uuid, String)> = Default::default();
    // An undecodable record is reported as such; repair drops it and its entries.
    let mut undecodable = std::collections::HashSet::new();
    for item in s.raw_entries(slots.cookies)? {
        let (key, bytes) = item?;
        let Some(oid) = RecordKey::parse_oid(key) else {
            continue;
        };
        match CookieView::new(bytes) {
            Ok(view) => {
                if let Some(authid) = view.authid() {
                    expected.insert(authid_key(slot, authid, oid), (oid, authid.to_string()));
                }
            }
            Err(_) => {
                undecodable.insert(oid);
            }
        }
    }
    let mut problems = Vec::new();
    for item in s.raw_table(slot)? {
        let (rest, _) = item?;
        let mut key = slot.to_be_bytes().to_vec();
        key.extend_from_slice(rest);
        if expected.remove(&key).is_none()
            && !oid_of_key(&key).is_some_and(|oid| undecodable.contains(&oid))
        {
            problems.push(Problem::AuthidIndexExtra { key: hex(rest) });
        }
    }
    for (oid, authid) in expected.into_values() {
        problems.push(Problem::AuthidIndexMissing { oid, authid });
    }
    Ok(problems)
}
