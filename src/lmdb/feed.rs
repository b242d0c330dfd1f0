//! The revocation feed on LMDB: a table of entries keyed by sequence number (`keys.rs`:
//! [`RevocationEntry`]), appended in the transaction of the write it records, and read by
//! the feed's readers and the per-process cache.
//!
//! Layout: key slot + sequence (`u64` BE); value `at_ns` (`u64` BE), kind (1 byte), oid (16
//! bytes), cookie value (UTF-8, the rest). The highest trimmed sequence number is kept in the
//! store state, so that a reader behind it learns that it missed entries.

use std::ops::Bound;

use uuid::Uuid;

use crate::backend::FeedPosition;
use crate::error::{Error, LmdbResult, Result};
use crate::feed::kind::RevocationKind;
use crate::feed::revocation::{Revocation, Revocations};
use crate::lmdb::LmdbStore;
use crate::lmdb::batch::Batch;
use crate::lmdb::durability::Flush;
use crate::lmdb::keys::{RevocationEntry, SlotPrefix, StateKey};
use crate::lmdb::snapshot::Snapshot;
use crate::lmdb::tables::Tables;
use crate::lmdb::txn::Growth;

fn decode(key: &[u8], bytes: &[u8]) -> Result<Revocation> {
    let damaged = || Error::metadata("the revocation feed holds a malformed entry".to_string());
    let seq = RevocationEntry::parse_key(key).ok_or_else(damaged)?;
    let (at_ns, code, oid, value) = RevocationEntry::parse_value(bytes).ok_or_else(damaged)?;
    Ok(Revocation {
        seq,
        at_ns,
        kind: RevocationKind::from_code(code).ok_or_else(damaged)?,
        value: String::from_utf8_lossy(value).into_owned(),
        oid,
    })
}

fn trimmed_seq(tables: &Tables, txn: &heed::RoTxn) -> Result<u64> {
    let Some(slot) = tables.slots.state else {
        return Ok(0);
    };
    Ok(tables
        .state()
        .get(txn, &StateKey::new(slot, StateKey::TRIMMED_SEQ))
        .map_err(|e| Error::metadata(format!("store state is damaged: {e}")))?
        .unwrap_or(0))
}

fn last_seq(tables: &Tables, txn: &heed::RoTxn, slot: u16) -> Result<u64> {
    let last = tables
        .db
        .rev_prefix_iter(txn, SlotPrefix::new(slot).as_bytes())
        .lmdb()?
        .next()
        .transpose()
        .lmdb()?
        .and_then(|(k, _)| RevocationEntry::parse_key(k))
        .unwrap_or(0);
    Ok(last.max(trimmed_seq(tables, txn)?))
}

impl Batch<'_, '_> {
    /// Appends a revocation of (`oid`, `value`) as `kind`; returns its sequence number (0
    /// when the store has no feed yet).
    pub(crate) fn append_revocation(
        &mut self,
        kind: RevocationKind,
        oid: Uuid,
        value: &str,
    ) -> Result<u64> {
        let Some(slot) = self.tables.slots.revocations else {
            return Ok(0);
        };
        let seq = last_seq(&self.tables, &self.txn, slot)? + 1;
        let bytes = RevocationEntry::value(self.now, kind.code(), oid, value);
        self.tables
            .db
            .put(self.txn.w(), &RevocationEntry::key(slot, seq), &bytes)
            .lmdb()?;
        Ok(seq)
    }

    /// Appends a [`RevocationKind::Flush`] when the last commit was not cookiestore's
    /// (another program wrote since): call before the transaction marks itself as ours. A
    /// store cookiestore never wrote needs none when it holds no record yet.
    pub(crate) fn flush_if_foreign(&mut self) -> Result<()> {
        if self.tables.slots.revocations.is_none() {
            return Ok(());
        }
        let foreign = match self.tables.last_txn_mark(&self.txn)? {
            Some(mark) => Some(mark) != (self.txn.id() as u64).checked_sub(1),
            None => self.view().raw_records()?.next().is_some(),
        };
        if foreign {
            self.append_revocation(RevocationKind::Flush, Uuid::nil(), "")?;
        }
        Ok(())
    }

    /// Deletes the entries older than `cutoff` (ns); returns how many.
    pub(crate) fn trim_revocations(&mut self, cutoff: u64) -> Result<u64> {
        let (Some(slot), Some(state)) = (self.tables.slots.revocations, self.tables.slots.state)
        else {
            return Ok(0);
        };
        let mut highest = None;
        let mut n = 0;
        let mut iter = self
            .tables
            .db
            .prefix_iter_mut(self.txn.w(), SlotPrefix::new(slot).as_bytes())
            .lmdb()?;
        while let Some(item) = iter.next() {
            let (key, bytes) = item.lmdb()?;
            let entry = decode(key, bytes)?;
            if entry.at_ns >= cutoff {
                break;
            }
            highest = Some(entry.seq);
            // SAFETY: `key` and `bytes` are not used after the deletion.
            unsafe { iter.del_current() }.lmdb()?;
            n += 1;
        }
        drop(iter);
        if let Some(seq) = highest {
            let seq = seq.max(trimmed_seq(&self.tables, &self.txn)?);
            self.tables
                .state()
                .put(
                    self.txn.w(),
                    &StateKey::new(state, StateKey::TRIMMED_SEQ),
                    &seq,
                )
                .lmdb()?;
        }
        Ok(n)
    }
}

impl Snapshot<'_> {
    /// The revocations after sequence number `after`: see
    /// [`CookieStore::revocations_since`](crate::CookieStore::revocations_since).
    pub fn revocations_since(&self, after: u64) -> Result<Revocations> {
        let Some(slot) = self.tables.slots.revocations else {
            return Ok(Revocations {
                entries: Vec::new(),
                next: after,
                missed: false,
            });
        };
        let trimmed = trimmed_seq(&self.tables, self.txn)?;
        let start = RevocationEntry::key(slot, after.saturating_add(1));
        let end = RevocationEntry::key(slot, u64::MAX);
        let range = (
            Bound::Included(start.as_slice()),
            Bound::Included(end.as_slice()),
        );
        let mut entries = Vec::new();
        if after < u64::MAX {
            for item in self.tables.db.range(self.txn, &range).lmdb()? {
                let (key, bytes) = item.lmdb()?;
                entries.push(decode(key, bytes)?);
            }
        }
        let missed = trimmed > after;
        let next = entries
            .last()
            .map(|e| e.seq)
            .unwrap_or_else(|| after.max(trimmed));
        Ok(Revocations {
            entries,
            next,
            missed,
        })
    }

    /// The highest sequence number of the feed so far (0 when empty).
    pub fn last_revocation(&self) -> Result<u64> {
        match self.tables.slots.revocations {
            Some(slot) => last_seq(&self.tables, self.txn, slot),
            None => Ok(0),
        }
    }
}

impl LmdbStore {
    /// Trims the revocations older than `cutoff` (ns); returns how many. Writes only when
    /// there is something to trim.
    pub(crate) fn trim_revocations(&self, cutoff: u64) -> Result<u64> {
        let due = self.read(|s| {
            let Some(slot) = s.tables.slots.revocations else {
                return Ok(false);
            };
            let first = s
                .tables
                .db
                .prefix_iter(s.txn, SlotPrefix::new(slot).as_bytes())
                .lmdb()?
                .next()
                .transpose()
                .lmdb()?
                .map(|(k, v)| decode(k, v))
                .transpose()?;
            Ok(first.is_some_and(|e| e.at_ns < cutoff))
        })?;
        if !due {
            return Ok(0);
        }
        self.write(
            "trim the revocation feed",
            Growth::Headroom,
            Flush::Durable,
            |b| b.trim_revocations(cutoff),
        )
    }

    /// A position at the end of the feed, and the transaction it was read in.
    pub(crate) fn feed_end(&self) -> Result<FeedPosition> {
        self.read(|s| {
            Ok(FeedPosition {
                next: s.last_revocation()?,
                seen: Some(s.txn_id()),
                ..FeedPosition::default()
            })
        })
    }

    /// What was appended after `position`. When nothing was committed since the transaction
    /// it last read (the environment's last transaction id, read from the shared memory map
    /// without a transaction), nothing is read.
    pub(crate) fn feed_poll(&self, position: &mut FeedPosition) -> Result<Revocations> {
        // The meta page can show a commit before readers get its snapshot (LMDB publishes
        // the id to readers after writing, and syncing, the meta page), so what is
        // remembered is the id of the snapshot read, never the meta page's.
        let last = self.shared.last_txn_id();
        if last.is_some() && position.seen == last {
            return Ok(Revocations {
                entries: Vec::new(),
                next: position.next,
                missed: false,
            });
        }
        position.reads += 1;
        let (found, read_in) =
            self.read(|s| Ok((s.revocations_since(position.next)?, s.txn_id())))?;
        position.next = found.next;
        position.seen = Some(read_in);
        Ok(found)
    }
}
