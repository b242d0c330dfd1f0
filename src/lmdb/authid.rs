//! The authid index: which cookies carry which authid, for logging a user out everywhere.
//!
//! The keys are `layout::AuthidKey`'s; the value is empty. A key may hold a truncated authid,
//! so every lookup verifies the record's full authid. cfxdb ignores the table; it is kept in
//! step by every write of cookiestore and rebuilt after foreign writes (`check.rs` in
//! `maintenance/` compares it with the records).

use uuid::Uuid;

use crate::error::{LmdbResult, Result};
use crate::feed::kind::RevocationKind;
use crate::lmdb::batch::Batch;
use crate::lmdb::keys::{AuthidKey, RecordKey};
use crate::lmdb::snapshot::Snapshot;
use crate::record::codec::CookieView;
use crate::record::cookie::Cookie;

impl Batch<'_, '_> {
    /// Adds the index entry of `oid` carrying `authid`.
    pub(crate) fn index_authid(&mut self, authid: &str, oid: Uuid) -> Result<()> {
        if let Some(slot) = self.tables.slots.by_authid {
            let key = AuthidKey::key(slot, authid, oid);
            self.tables.db.put(self.txn.w(), &key, &[]).lmdb()?;
        }
        Ok(())
    }

    /// Removes the index entry of `oid` carrying `authid`.
    pub(crate) fn unindex_authid(&mut self, authid: &str, oid: Uuid) -> Result<()> {
        if let Some(slot) = self.tables.slots.by_authid {
            let key = AuthidKey::key(slot, authid, oid);
            self.tables.db.delete(self.txn.w(), &key).lmdb()?;
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
        match self.tables.record(&self.txn, oid) {
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
        self.tables.delete_slot(self.txn.w(), slot)?;
        let mut keys = Vec::new();
        for item in self
            .tables
            .slot_entries(&self.txn, self.tables.slots.cookies)?
        {
            let (key, bytes) = item?;
            let oid = RecordKey::parse_oid(key);
            if let (Some(oid), Ok(view)) = (oid, CookieView::new(bytes))
                && let Some(authid) = view.authid()
            {
                keys.push(AuthidKey::key(slot, authid, oid));
            }
        }
        keys.sort_unstable();
        for key in &keys {
            self.tables.db.put(self.txn.w(), key, &[]).lmdb()?;
        }
        Ok(())
    }

    /// Deletes every cookie whose authid is `authid`, each recorded in the revocation feed;
    /// returns how many.
    pub fn logout_authid(&mut self, authid: &str) -> Result<u64> {
        self.tables.need_present()?;
        let mut n = 0;
        for oid in self.view().oids_of_authid(authid)? {
            if self.delete_oid_as(oid, RevocationKind::Authid)? {
                n += 1;
            }
        }
        Ok(n)
    }
}

impl Snapshot<'_> {
    /// The oids of the cookies whose record's authid is `authid`, expired or not (verified
    /// against the record: the key may hold a truncated authid).
    pub(crate) fn oids_of_authid(&self, authid: &str) -> Result<Vec<Uuid>> {
        let Some(slot) = self.tables.slots.by_authid.filter(|_| self.tables.present) else {
            return Ok(Vec::new());
        };
        let prefix = AuthidKey::prefix(slot, authid);
        let mut candidates = Vec::new();
        for item in self.tables.db.prefix_iter(self.txn, &prefix).lmdb()? {
            let (key, _) = item.lmdb()?;
            if key.len() == prefix.len() + 16
                && let Some(oid) = AuthidKey::parse_oid(key)
            {
                candidates.push(oid);
            }
        }
        Ok(candidates
            .into_iter()
            .filter(|oid| {
                matches!(self.tables.record(self.txn, *oid),
                    Ok(Some(view)) if view.authid() == Some(authid))
            })
            .collect())
    }

    /// The records authenticated as `authid`, expired ones included (like
    /// [`records`](Self::records): a record that cannot be decoded is an `Err` item and the
    /// walk goes on), in oid order, found through the authid index: the cost is in proportion
    /// to that user's cookies, not to the store. When another program (cfxdb, Crossbar) wrote
    /// since cookiestore's last write, or the store has no authid index yet, the records are
    /// walked instead, since the index may be stale.
    pub fn records_of_authid<'s>(
        &'s self,
        authid: &'s str,
    ) -> Result<Box<dyn Iterator<Item = Result<Cookie>> + 's>> {
        if self.tables.slots.by_authid.is_none() || self.foreign_writes()? {
            return Ok(Box::new(self.records()?.filter(move |c| {
                c.as_ref()
                    .map_or(true, |c| c.authid.as_deref() == Some(authid))
            })));
        }
        let oids = self.oids_of_authid(authid)?;
        Ok(Box::new(oids.into_iter().filter_map(move |oid| {
            self.get_any_by_oid(oid).transpose()
        })))
    }
}
