//! The Redis storage steps of export, restore and imports (`maintenance/` holds their loops,
//! summaries and mark rules, written once for every backend).
//!
//! Redis keys cookies by value and drops expired ones by itself: an expired record that is
//! restored or imported is gone at once, and an export holds the live cookies (and those
//! expired by the store's clock that Redis has not dropped yet), in oid order as LMDB's.
//!
//! Imports mark what they bring in (`{prefix}imported:{sha256}`, expiring with the cookie),
//! as on LMDB: a re-run import skips a marked value whose cookie is gone. Exports carry the
//! marks and restores write them.

use std::collections::HashMap;

use uuid::Uuid;

use super::bulk::Op;
use super::ops::{Item, same_oid_or_none};
use super::store::RedisStore;
use super::{RedisBackend, SCAN_BATCH, pxat_ms};
use crate::backend::{MaintenanceTxn, MaintenanceView, Pacing, Prefetch};
use crate::error::{Error, Result};
use crate::feed::kind::RevocationKind;
use crate::record::codec::{CookieView, Encoded, materialise};
use crate::record::cookie::Cookie;
use crate::record::mark::{Mark, ValueDigest, digest};
use crate::record::value;

impl RedisBackend {
    /// Every record in oid order to `record` (an undecodable one as
    /// [`Error::CorruptRecord`] naming its key), then every mark in digest order to `mark`.
    pub(crate) fn export_scan(
        &self,
        record: &mut dyn FnMut(Result<Cookie>) -> Result<()>,
        mark: &mut dyn FnMut(ValueDigest, u64) -> Result<()>,
    ) -> Result<()> {
        let mut cookies: Vec<std::result::Result<Cookie, (Uuid, String)>> = Vec::new();
        self.for_each_record(|batch| {
            for (key, bytes) in batch {
                let decoded = CookieView::new(&bytes)
                    .map_err(|problem| (Uuid::nil(), problem))
                    .and_then(|view| {
                        let oid = view.oid().unwrap_or_else(Uuid::nil);
                        materialise(oid, view).map_err(|e| match e {
                            Error::CorruptRecord { oid, problem } => (oid, problem),
                            other => (oid, other.to_string()),
                        })
                    })
                    .map_err(|(oid, problem)| (oid, format!("{problem} (Redis key {key:?})")));
                cookies.push(decoded);
            }
            Ok(true)
        })?;
        // Corrupt records first, in the order met, as the export lists them; then by oid.
        cookies.sort_by_key(|c| c.as_ref().ok().map(|c| c.oid));
        let mut marks: Vec<(ValueDigest, u64)> = Vec::new();
        self.for_each_mark(|batch| {
            for (key, bytes) in batch {
                if let Some(digest) = self.parse_mark_key(&key) {
                    marks.push((digest, parse_mark(&bytes)));
                }
            }
            Ok(true)
        })?;
        marks.sort_unstable();
        marks.dedup_by_key(|(digest, _)| *digest);
        for item in cookies {
            record(item.map_err(|(oid, problem)| Error::CorruptRecord { oid, problem }))?;
        }
        for (digest, expires) in marks {
            mark(digest, expires)?;
        }
        Ok(())
    }

    /// Whether the value whose SHA-256 is `digest` has an import mark.
    fn mark_of(&self, digest: &ValueDigest) -> Result<bool> {
        let key = self.mark_key(digest);
        let found: Option<Vec<u8>> = self.run(|con| redis::cmd("GET").arg(&key).query(con))?;
        Ok(found.is_some())
    }

    /// How many cookie keys exist.
    pub(crate) fn records(&self) -> Result<u64> {
        let mut n = 0;
        self.for_each_record(|batch| {
            n += batch.len() as u64;
            Ok(true)
        })?;
        Ok(n)
    }
}

/// A Redis mark's expiry (its value, ns); a value that is not a number reads as "never" (a
/// mark is kept rather than lost).
fn parse_mark(bytes: &[u8]) -> u64 {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(u64::MAX)
}

/// Items one maintenance write takes on Redis at most: one transaction each (see
/// [`Batch`]), which Redis runs without serving other clients, so it is kept to a few
/// milliseconds.
pub(crate) const WRITE_BATCH: usize = 500;

/// Threads a restore writes each batch on (`Backend::write_lanes`). With one, the client
/// and Redis take turns: Redis waits while the client reads a batch's answers and builds
/// its next transaction (about 40% of a restore's time on loopback), the client while Redis
/// runs it. With two, on two connections, each share's client work overlaps the other's
/// round trips. Two shares never write the same record or mark (a value's lines are in
/// one); they may add to the same authid set, which `bulk.rs` allows for any two writers.
pub(crate) const WRITE_LANES: usize = 2;

/// Redis's writes, `max` items at a time (at most [`WRITE_BATCH`]): there is no writer lock
/// to share and no pause.
pub(crate) struct Unpaced(pub(crate) usize);

impl Pacing for Unpaced {
    fn run(&mut self, f: &mut dyn FnMut(usize) -> Result<()>) -> Result<()> {
        f(self.0.clamp(1, WRITE_BATCH))
    }
}

/// The store as maintenance reads and writes it, in batches: reads of the values a step
/// names ahead ([`MaintenanceView::prefetch`]) are one MGET of their records, pipelined with
/// one of their marks when the step reads marks ([`Prefetch`]), per [`SCAN_BATCH`] values, kept for the rest of the step (a read of a value not
/// named ahead is one GET, kept too); writes are queued, and the reads that follow see them
/// (as in a transaction). [`Batch::flush`] sends the queued puts and marks as one
/// transaction (`bulk.rs`: compare-and-set against what was read, all or none) and the queued deletions as
/// one [`REVOKE`](super::scripts::REVOKE) script (all or none, each with its feed entry).
pub(crate) struct Batch<'a> {
    store: &'a RedisStore,
    /// Each value's record as this step has read or written it (`None`: absent).
    records: HashMap<String, Option<Vec<u8>>>,
    /// Each value's mark as read or written (true: marked).
    marks: HashMap<ValueDigest, bool>,
    ops: Vec<Op>,
    revokes: Vec<Item>,
}

impl<'a> Batch<'a> {
    pub(crate) fn new(store: &'a RedisStore) -> Batch<'a> {
        Batch {
            store,
            records: HashMap::new(),
            marks: HashMap::new(),
            ops: Vec::new(),
            revokes: Vec::new(),
        }
    }

    fn redis(&self) -> &'a RedisBackend {
        &self.store.redis
    }

    /// The record of `value` as this step sees it.
    fn record(&mut self, value: &str) -> Result<Option<Vec<u8>>> {
        if let Some(found) = self.records.get(value) {
            return Ok(found.clone());
        }
        let found = self.redis().record(value)?;
        self.records.insert(value.to_string(), found.clone());
        Ok(found)
    }

    /// Sends what was queued (see [`Batch`]); `false` when a record had changed since it was
    /// read (then the queued puts and marks were not written: the caller runs the step again
    /// with fresh reads).
    pub(crate) fn flush(self) -> Result<bool> {
        let redis = self.redis();
        if !self.ops.is_empty() && !redis.write_ops(&self.ops)? {
            return Ok(false);
        }
        if !self.revokes.is_empty()
            && redis
                .revoke(RevocationKind::Logout, self.store.now(), &self.revokes)?
                .is_none()
        {
            return Ok(false);
        }
        Ok(true)
    }
}

impl MaintenanceView for Batch<'_> {
    fn prefetch(&mut self, values: &mut dyn Iterator<Item = &str>, what: Prefetch) -> Result<()> {
        let redis = self.redis();
        let mut wanted: Vec<&str> = Vec::with_capacity(SCAN_BATCH);
        let mut values = values.peekable();
        while values.peek().is_some() {
            wanted.clear();
            for value in values.by_ref() {
                // A value that cannot be a key has no record (`RedisBackend::record`).
                if value::check(value).is_ok() && !self.records.contains_key(value) {
                    wanted.push(value);
                    if wanted.len() == SCAN_BATCH {
                        break;
                    }
                }
            }
            if wanted.is_empty() {
                break;
            }
            let keys: Vec<String> = wanted.iter().map(|v| redis.cookie_key(v)).collect();
            type Found = Vec<Option<Vec<u8>>>;
            if what == Prefetch::Records {
                let records: Found = redis.run(|con| redis::cmd("MGET").arg(&keys).query(con))?;
                for (value, record) in wanted.iter().zip(records) {
                    self.records.insert(value.to_string(), record);
                }
                continue;
            }
            let digests: Vec<ValueDigest> = wanted.iter().map(|v| digest(v)).collect();
            let mark_keys: Vec<String> = digests.iter().map(|d| redis.mark_key(d)).collect();
            let (records, marks): (Found, Found) = redis.run(|con| {
                redis::pipe()
                    .cmd("MGET")
                    .arg(&keys)
                    .cmd("MGET")
                    .arg(&mark_keys)
                    .query(con)
            })?;
            for ((value, record), (digest, mark)) in wanted
                .iter()
                .zip(records)
                .zip(digests.into_iter().zip(marks))
            {
                self.records.insert(value.to_string(), record);
                self.marks.entry(digest).or_insert(mark.is_some());
            }
        }
        Ok(())
    }

    fn counterpart(&mut self, _oid: Uuid, value: &str) -> Result<Option<Cookie>> {
        self.get_any_by_value(value)
    }

    fn get_any_by_value(&mut self, value: &str) -> Result<Option<Cookie>> {
        match self.record(value)? {
            Some(bytes) => self.redis().decode(value, &bytes).map(Some),
            None => Ok(None),
        }
    }

    fn mark_of(&mut self, value: &str) -> Result<Mark> {
        let digest = digest(value);
        let marked = match self.marks.get(&digest) {
            Some(marked) => *marked,
            None => {
                let marked = self.redis().mark_of(&digest)?;
                self.marks.insert(digest, marked);
                marked
            }
        };
        Ok(if marked { Mark::Hashed } else { Mark::Absent })
    }
}

impl MaintenanceTxn for Batch<'_> {
    /// Queued, after the checks that refuse it: what it would replace is read now and
    /// compared again when the batch is written.
    fn put_encoded(&mut self, record: &Encoded) -> Result<()> {
        let old = self.record(&record.value)?.unwrap_or_default();
        same_oid_or_none(record.oid, &record.value, &old)?;
        let redis = self.redis();
        self.ops.push(Op::Put {
            key: redis.cookie_key(&record.value),
            set_key: record.authid.as_deref().map(|a| redis.authid_key(a)),
            expected: old,
            pxat: pxat_ms(record.expires),
            bytes: record.bytes.clone(),
            value: record.value.clone(),
        });
        self.records
            .insert(record.value.clone(), Some(record.bytes.clone()));
        Ok(())
    }

    fn put_imported(&mut self, cookie: &Cookie) -> Result<()> {
        // The mark first (in the same script): should the put be refused, a re-run skips
        // the cookie (the user logs in again) rather than ever bringing back a logged-out
        // one.
        self.mark(&cookie.value, cookie.expires_at())?;
        self.put(cookie)
    }

    fn mark(&mut self, value: &str, expires: u64) -> Result<()> {
        self.mark_digest(&digest(value), expires)
    }

    fn mark_digest(&mut self, digest: &ValueDigest, expires: u64) -> Result<()> {
        self.ops.push(Op::Mark {
            key: self.redis().mark_key(digest),
            expires,
            pxat: pxat_ms(expires),
        });
        self.marks.insert(*digest, true);
        Ok(())
    }

    fn delete(&mut self, value: &str) -> Result<bool> {
        let Some(bytes) = self.record(value)? else {
            return Ok(false);
        };
        self.revokes.push(self.redis().revoke_item(value, bytes));
        self.records.insert(value.to_string(), None);
        Ok(true)
    }
}
