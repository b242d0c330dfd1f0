//! The LMDB store's upkeep: the tables cfxdb lacks (made at a writable open), reconciling
//! the indexes after another program wrote, purging what expired, and clearing.
//!
//! Purges and clears write in transactions sized by time (`pacing.rs`), so that routers'
//! writes never wait long for the writer lock.

use uuid::Uuid;

use crate::error::{Error, Result};
use crate::feed::kind::RevocationKind;
use crate::lmdb::LmdbStore;
use crate::lmdb::durability::Flush;
use crate::lmdb::layout::{
    AUTHID_INDEX, COOKIES, EXPIRY_INDEX, REVOCATIONS, STORE_STATE, TableMeta, VALUE_INDEX,
};
use crate::lmdb::marks;
use crate::lmdb::pacing::{PURGE_BATCH, Pacer};
use crate::lmdb::tables::{Tables, foreign_writes, read_catalog, write_meta};
use crate::lmdb::txn::Growth;

impl LmdbStore {
    /// Makes sure every table exists and the expiry index is in step with the records.
    /// Writes nothing when both hold already (the common case), so an open costs no commit.
    pub(crate) fn prepare_layout(&self) -> Result<()> {
        let ready = self.read(|s| {
            Ok(s.tables.present
                && s.tables.slots.by_expiry.is_some()
                && s.tables.slots.state.is_some()
                && s.tables.slots.by_authid.is_some()
                && s.tables.slots.revocations.is_some()
                && !s.foreign_writes()?)
        })?;
        if ready {
            return Ok(());
        }
        let db = self.shared.db;
        self.write(
            "prepare the cookie tables",
            Growth::UpToMaxsize,
            Flush::Durable,
            |b| {
                // Judge foreign writes before this transaction marks itself as ours.
                let mut rebuild = foreign_writes(&b.tables, &b.txn)?;
                let mut catalog = read_catalog(db, &b.txn)?;
                let mut rebuild_authid = rebuild;
                for table in [
                    &COOKIES,
                    &VALUE_INDEX,
                    &EXPIRY_INDEX,
                    &STORE_STATE,
                    &AUTHID_INDEX,
                    &REVOCATIONS,
                ] {
                    if catalog.slot_of(table).is_none() {
                        let slot = catalog.next_slot()?;
                        write_meta(db, b.txn.w(), table, slot)?;
                        catalog.tables.insert(slot, TableMeta::new(table, slot));
                        rebuild |= table == &EXPIRY_INDEX;
                        rebuild_authid |= table == &AUTHID_INDEX;
                    }
                }
                let slots = catalog
                    .slots()
                    .ok_or_else(|| Error::metadata("the cookie tables could not be created"))?;
                b.tables = Tables::new(db, slots);
                if rebuild {
                    b.rebuild_expiry_index()?;
                }
                if rebuild_authid {
                    b.rebuild_authid_index()?;
                }
                Ok(())
            },
        )
    }

    /// Rebuilds the expiry and authid indexes from the records when another program wrote
    /// since cookiestore's last write (cfxdb does not maintain them). Returns whether it had
    /// to; `false` on a read-only handle.
    pub fn reconcile_if_needed(&self) -> Result<bool> {
        if self.readonly || !self.read(|s| s.foreign_writes())? {
            return Ok(false);
        }
        self.batch("reconcile the expiry index", |b| {
            b.rebuild_expiry_index()?;
            b.rebuild_authid_index()
        })?;
        Ok(true)
    }

    /// Deletes every expired cookie (walking the expiry index up to now), the feed's entries
    /// older than `feed_cutoff`, and the import marks due; returns how many cookies.
    pub(crate) fn purge_expired(&self, feed_cutoff: u64) -> Result<u64> {
        let now = self.now();
        // Fast path without the writer lock: nothing expired and nobody else wrote.
        let quiet = self.read(|s| {
            Ok(s.tables.slots.by_expiry.is_some()
                && !s.foreign_writes()?
                && s.first_expiry()?.is_none_or(|e| e > now))
        })?;
        self.trim_revocations(feed_cutoff)?;
        marks::purge(self, now)?;
        if quiet {
            return Ok(0);
        }
        self.reconcile_if_needed()?;
        // Flushed lazily: a purge lost to a power cut leaves expired cookies, which read as
        // absent anyway.
        let mut total = 0;
        let mut pacer = Pacer::new(PURGE_BATCH);
        loop {
            let mut limit = 0;
            let (processed, deleted) = pacer.run(|l| {
                limit = l;
                self.write("purge", Growth::Headroom, Flush::Lazy, |b| b.purge_some(l))
            })?;
            total += deleted;
            if processed < limit {
                return Ok(total);
            }
        }
    }

    /// Deletes every cookie, each a [`RevocationKind::Maintenance`] entry of the feed;
    /// returns how many.
    pub(crate) fn clear(&self) -> Result<u64> {
        // Each transaction records its cookies in the feed (halved on a full map, so that a
        // full store can still be emptied: pages freed by one serve the next), then whatever
        // the indexes still hold goes.
        let mut total = 0;
        let mut pacer = Pacer::new(PURGE_BATCH);
        loop {
            let deleted = pacer.run(|limit| {
                self.write("clear", Growth::Headroom, Flush::Durable, |b| {
                    let oids: Vec<Uuid> = b
                        .view()
                        .raw_records()?
                        .take(limit)
                        .map(|item| item.map(|(oid, _)| oid))
                        .collect::<Result<_>>()?;
                    let mut n = 0;
                    for oid in oids {
                        n += u64::from(b.delete_oid_as(oid, RevocationKind::Maintenance)?);
                    }
                    Ok(n)
                })
            })?;
            total += deleted;
            if deleted == 0 {
                break;
            }
        }
        self.write("clear", Growth::Headroom, Flush::Durable, |b| {
            let s = b.tables.slots;
            for slot in [Some(s.cookies), Some(s.by_value), s.by_expiry, s.by_authid] {
                if let Some(slot) = slot.filter(|_| b.tables.present) {
                    b.tables.delete_slot(b.txn.w(), slot)?;
                }
            }
            // Whatever the batches above could not itemize (undecodable records) is gone too.
            b.append_revocation(RevocationKind::Flush, Uuid::nil(), "")?;
            Ok(())
        })?;
        Ok(total)
    }
}
