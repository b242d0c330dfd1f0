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

use uuid::Uuid;

use super::scripts::MARK;
use super::store::RedisStore;
use super::{RedisBackend, pxat_ms};
use crate::backend::{MaintenanceTxn, MaintenanceView, Pacing};
use crate::error::{Error, Result};
use crate::record::codec::{CookieView, materialise};
use crate::record::cookie::Cookie;
use crate::record::mark::{Mark, ValueDigest, digest};

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

    /// Marks the value whose SHA-256 is `digest` as imported until `expires` (ns), unless
    /// its mark already lasts as long.
    pub(crate) fn mark(&self, digest: &ValueDigest, expires: u64) -> Result<()> {
        let key = self.mark_key(digest);
        self.run(|con| {
            MARK.prepare_invoke()
                .key(&key)
                .arg(expires)
                .arg(pxat_ms(expires))
                .invoke::<i64>(con)
        })?;
        Ok(())
    }

    /// Whether `value` has an import mark.
    fn mark_of(&self, value: &str) -> Result<Mark> {
        let key = self.mark_key(&digest(value));
        let found: Option<Vec<u8>> = self.run(|con| redis::cmd("GET").arg(&key).query(con))?;
        Ok(if found.is_some() {
            Mark::Hashed
        } else {
            Mark::Absent
        })
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

/// Redis's writes, `max` items at a time: each item is its own round trips, so there is no
/// writer lock to share and no pause.
pub(crate) struct Unpaced(pub(crate) usize);

impl Pacing for Unpaced {
    fn run(&mut self, f: &mut dyn FnMut(usize) -> Result<()>) -> Result<()> {
        f(self.0.max(1))
    }
}

/// The store as maintenance reads and writes it: each step a round trip (or a script).
pub(crate) struct Steps<'a>(pub(crate) &'a RedisStore);

impl MaintenanceView for Steps<'_> {
    fn counterpart(&mut self, cookie: &Cookie) -> Result<Option<Cookie>> {
        self.0.redis.get_any(&cookie.value)
    }

    fn get_any_by_value(&mut self, value: &str) -> Result<Option<Cookie>> {
        self.0.redis.get_any(value)
    }

    fn mark_of(&mut self, value: &str) -> Result<Mark> {
        self.0.redis.mark_of(value)
    }
}

impl MaintenanceTxn for Steps<'_> {
    fn put(&mut self, cookie: &Cookie) -> Result<()> {
        self.0.redis.put(cookie)
    }

    fn put_imported(&mut self, cookie: &Cookie) -> Result<()> {
        // The mark first: should the put then fail, a re-run skips the cookie (the user
        // logs in again) rather than ever bringing back a logged-out one.
        self.0
            .redis
            .mark(&digest(&cookie.value), cookie.expires_at())?;
        self.0.redis.put(cookie)
    }

    fn mark(&mut self, value: &str, expires: u64) -> Result<()> {
        self.0.redis.mark(&digest(value), expires)
    }

    fn mark_digest(&mut self, digest: &ValueDigest, expires: u64) -> Result<()> {
        self.0.redis.mark(digest, expires)
    }

    fn delete(&mut self, value: &str) -> Result<bool> {
        self.0.redis.delete(value, self.0.now())
    }
}
