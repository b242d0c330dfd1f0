//! Export, restore and `cookies.dat` import on Redis: the same summaries as on LMDB.
//!
//! Redis keys cookies by value and drops expired ones by itself: an expired record that is
//! restored or imported is gone at once, and an export holds the live cookies (and those
//! expired by the store's clock that Redis has not dropped yet), in oid order as LMDB's.
//!
//! Imports mark what they bring in (`{prefix}imported:{sha256}`, expiring with the cookie),
//! as on LMDB: a re-run import skips a marked value whose cookie is gone. Exports carry the
//! marks and restores write them.

use std::io::{self, Write};

use uuid::Uuid;

use super::scripts::MARK;
use super::{RedisBackend, pxat_ms};
use crate::error::{Error, Result};
use crate::maintenance::json_lines::{
    ExportOptions, ExportSummary, RestoreSummary, write_mark_line,
};
use crate::maintenance::legacy::LegacyCookie;
use crate::maintenance::legacy_import::{ImportOptions, ImportSummary, from_legacy};
use crate::maintenance::storable;
use crate::maintenance::store_import::StoreImportSummary;
use crate::record::codec::CookieView;
use crate::record::codec::materialise;
use crate::record::cookie::Cookie;
use crate::record::mark::{ValueDigest, digest};

impl RedisBackend {
    pub(crate) fn export(
        &self,
        now: u64,
        out: &mut dyn Write,
        options: ExportOptions,
        progress: &mut dyn FnMut(u64),
    ) -> Result<ExportSummary> {
        let mut summary = ExportSummary::default();
        let mut cookies: Vec<Cookie> = Vec::new();
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
                    });
                match decoded {
                    Ok(cookie) => cookies.push(cookie),
                    Err((oid, problem)) if options.skip_corrupt => summary
                        .corrupt
                        .push((oid, format!("{problem} (Redis key {key:?})"))),
                    Err((oid, problem)) => {
                        return Err(Error::CorruptRecord {
                            oid,
                            problem: format!("{problem} (Redis key {key:?})"),
                        });
                    }
                }
            }
            Ok(true)
        })?;
        cookies.sort_by_key(|c| c.oid);
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
        for cookie in &cookies {
            let expired = cookie.is_expired(now);
            if expired && options.live_only {
                summary.left_out_expired += 1;
                continue;
            }
            serde_json::to_writer(&mut *out, cookie).map_err(io::Error::from)?;
            out.write_all(b"\n")?;
            summary.cookies += 1;
            summary.expired += u64::from(expired);
            if summary.cookies.is_multiple_of(1024) {
                progress(summary.cookies);
            }
        }
        for (digest, expires) in marks {
            if options.live_only && expires <= now {
                continue;
            }
            write_mark_line(out, &digest, expires)?;
            summary.import_marks += 1;
        }
        out.flush()?;
        progress(summary.cookies);
        Ok(summary)
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

    /// The record stored under `value` (expired ones too) and whether `value` has an import
    /// mark: one round trip.
    fn record_and_mark(&self, value: &str, digest: &ValueDigest) -> Result<(Option<Cookie>, bool)> {
        let keys = [self.cookie_key(value), self.mark_key(digest)];
        let got: Vec<Option<Vec<u8>>> = self.run(|con| redis::cmd("MGET").arg(&keys).query(con))?;
        let mut got = got.into_iter();
        let (record, mark) = (got.next().flatten(), got.next().flatten());
        let cookie = match record.map(|bytes| self.decode(value, &bytes)).transpose() {
            Ok(c) => c,
            Err(Error::CorruptRecord { .. }) => None, // replaced by the import
            Err(e) => return Err(e),
        };
        Ok((cookie, mark.is_some()))
    }

    /// Whether any cookie key exists (and how many, when some do).
    fn records(&self) -> Result<u64> {
        let mut n = 0;
        self.for_each_record(|batch| {
            n += batch.len() as u64;
            Ok(true)
        })?;
        Ok(n)
    }

    pub(crate) fn restore_batch(
        &self,
        records: &[(u64, Cookie)],
        marks: &[(ValueDigest, u64)],
        require_empty: bool,
        summary: &mut RestoreSummary,
    ) -> Result<()> {
        if require_empty {
            let records = self.records()?;
            if records > 0 {
                return Err(Error::NotEmpty {
                    path: self.location().into(),
                    records,
                });
            }
        }
        for (line, cookie) in records {
            let existing = match self.get_any(&cookie.value) {
                Ok(c) => c,
                Err(Error::CorruptRecord { .. }) => None,
                Err(e) => return Err(e),
            };
            if existing.as_ref() == Some(cookie) {
                summary.unchanged += 1;
                continue;
            }
            match self.put(cookie) {
                Ok(()) if existing.is_some() => summary.replaced += 1,
                Ok(()) => summary.restored += 1,
                Err(Error::DuplicateValue { value, existing }) => {
                    summary.conflicts.push((*line, value, existing))
                }
                Err(Error::InvalidValue { problem }) => summary.bad_lines.push((*line, problem)),
                Err(e) => return Err(e),
            }
        }
        for (digest, expires) in marks {
            self.mark(digest, *expires)?;
            summary.import_marks += 1;
        }
        summary.bad_lines.sort_by_key(|(line, _)| *line);
        Ok(())
    }

    pub(crate) fn import_legacy(
        &self,
        live: &[&LegacyCookie],
        removed: &[String],
        options: &ImportOptions,
        now: u64,
        mut summary: ImportSummary,
        progress: &mut dyn FnMut(u64),
    ) -> Result<ImportSummary> {
        let mut done = 0u64;
        for legacy in live {
            let digest = digest(&legacy.value);
            let (existing, marked) = self.record_and_mark(&legacy.value, &digest)?;
            if existing.is_none() && marked && !options.force {
                summary.skipped_logged_out += 1; // imported before, logged out since
                continue;
            }
            let cookie = from_legacy(legacy, existing.as_ref(), &options.name);
            if existing.as_ref() == Some(&cookie) {
                summary.unchanged += 1;
                if !marked {
                    // Imported before imports were marked on Redis.
                    summary.marked += 1;
                    if !options.dry_run {
                        self.mark(&digest, legacy.expires_ns())?;
                    }
                }
                continue;
            }
            if let Err(e) = cookie.encode() {
                summary.rejected.push((legacy.value.clone(), e.to_string()));
                continue;
            }
            if !options.dry_run {
                // The mark first: should the put then fail, a re-run skips the cookie (the
                // user logs in again) rather than ever bringing back a logged-out one.
                self.mark(&digest, cookie.expires_at())?;
                self.put(&cookie)?;
            }
            if existing.is_some() {
                summary.updated += 1;
            } else {
                summary.imported += 1;
            }
            done += 1;
            if done.is_multiple_of(1024) {
                progress(done);
            }
        }
        progress(done);
        for value in removed {
            if storable(value).is_err() {
                continue;
            }
            if options.dry_run {
                summary.removed_from_store += u64::from(self.record(value)?.is_some());
            } else if self.delete(value, now)? {
                summary.removed_from_store += 1;
            }
        }
        Ok(summary)
    }

    /// One batch of [`crate::maintenance::import_records`]: cookies are matched by value (Redis
    /// keys them so); one held by a cookie with another oid is a conflict. Redis keeps no
    /// record of earlier imports: a logged-out cookie is imported again.
    pub(crate) fn import_records(
        &self,
        chunk: &[Cookie],
        options: &ImportOptions,
        summary: &mut StoreImportSummary,
    ) -> Result<()> {
        for cookie in chunk {
            let digest = digest(&cookie.value);
            let (existing, marked) = self.record_and_mark(&cookie.value, &digest)?;
            match &existing {
                Some(e) if e == cookie => {
                    summary.unchanged += 1;
                    if !marked && !options.dry_run {
                        self.mark(&digest, cookie.expires_at())?;
                    }
                    continue;
                }
                Some(e) if e.oid != cookie.oid => {
                    summary.conflicts.push((cookie.oid, e.oid));
                    continue;
                }
                None if marked && !options.force => {
                    summary.skipped_logged_out += 1; // imported before, logged out since
                    continue;
                }
                _ => {}
            }
            if !options.dry_run {
                // The mark first, as for cookies.dat (see `import_legacy`).
                self.mark(&digest, cookie.expires_at())?;
                match self.put(cookie) {
                    Ok(()) => {}
                    Err(Error::DuplicateValue { existing, .. }) => {
                        summary.conflicts.push((cookie.oid, existing));
                        continue;
                    }
                    Err(Error::InvalidValue { problem }) => {
                        summary.rejected.push((cookie.oid, problem));
                        continue;
                    }
                    Err(e) => return Err(e),
                }
            }
            if existing.is_some() {
                summary.updated += 1;
            } else {
                summary.imported += 1;
            }
        }
        Ok(())
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
