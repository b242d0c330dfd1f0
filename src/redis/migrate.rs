//! Export, restore and `cookies.dat` import on Redis: the same summaries as on LMDB.
//!
//! Redis keys cookies by value and drops expired ones by itself: an expired record that is
//! restored or imported is gone at once, and an export holds the live cookies (and those
//! expired by the store's clock that Redis has not dropped yet), in oid order as LMDB's.

use std::io::{self, Write};

use uuid::Uuid;

use super::RedisBackend;
use crate::cookie::{Cookie, CookieView};
use crate::error::{Error, Result};
use crate::legacy::LegacyCookie;
use crate::migrate::{
    ExportOptions, ExportSummary, ImportOptions, ImportSummary, RestoreSummary, StoreImportSummary,
    from_legacy, storable,
};
use crate::snapshot::materialise;

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
        out.flush()?;
        progress(summary.cookies);
        Ok(summary)
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
            let existing = match self.get_any(&legacy.value) {
                Ok(c) => c,
                Err(Error::CorruptRecord { .. }) => None,
                Err(e) => return Err(e),
            };
            let cookie = from_legacy(legacy, existing.as_ref(), &options.name);
            if existing.as_ref() == Some(&cookie) {
                summary.unchanged += 1;
                continue;
            }
            if let Err(e) = cookie.encode() {
                summary.rejected.push((legacy.value.clone(), e.to_string()));
                continue;
            }
            if !options.dry_run {
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
            let existing = match self.get_any(&cookie.value) {
                Ok(c) => c,
                Err(Error::CorruptRecord { .. }) => None,
                Err(e) => return Err(e),
            };
            match &existing {
                Some(e) if e == cookie => {
                    summary.unchanged += 1;
                    continue;
                }
                Some(e) if e.oid != cookie.oid => {
                    summary.conflicts.push((cookie.oid, e.oid));
                    continue;
                }
                _ => {}
            }
            if !options.dry_run {
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
