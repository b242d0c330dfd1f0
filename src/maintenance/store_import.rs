//! Importing the records of another store ([`import_records`]): what `cookiestore import`
//! does with a store directory (an LMDB store of this format, or one of LMDB's format 3 read
//! by the `cookiestore-format3` helper). Records are matched by value as in a `cookies.dat`
//! import, and marked the same way, so a re-run changes nothing and never logs a logged-out
//! cookie back in.

use serde::Serialize;
use uuid::Uuid;

use super::legacy_import::ImportOptions;
use super::{BATCH, storable};
use crate::backend::{MaintenanceTxn, MaintenanceView, Pacing, Prefetch, WriteKind, chunks};
use crate::error::{Error, Result};
use crate::record::cookie::Cookie;
use crate::store::CookieStore;

/// What [`import_records`] did (or, with [`ImportOptions::dry_run`], would do).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct StoreImportSummary {
    /// Records read from the source store (undecodable ones included).
    pub records: u64,
    /// Cookies new to the store.
    pub imported: u64,
    /// Cookies already in the store (same oid) whose fields differed: replaced by the source's.
    pub updated: u64,
    /// Cookies already in the store (same oid) with identical fields. On Redis, this also
    /// counts cookies this import wrote in a batch it then had to read again (another client
    /// wrote one of the batch's values meanwhile: `docs/redis.md`).
    pub unchanged: u64,
    /// Cookies dropped because they are expired.
    pub expired: u64,
    /// Cookies an earlier import brought in that have left the store since (logged out):
    /// skipped, unless [`ImportOptions::force`].
    pub skipped_logged_out: u64,
    /// Cookies skipped because another cookie of the store holds their value: the source
    /// record's oid and the oid of the store's cookie (which is kept).
    pub conflicts: Vec<(Uuid, Uuid)>,
    /// Records of the source that cannot be decoded: oid and problem. They were skipped.
    pub corrupt: Vec<(Uuid, String)>,
    /// Cookies the store refused (a value that cannot be a key, a record too large): oid and
    /// problem. They were skipped.
    pub rejected: Vec<(Uuid, String)>,
}

/// What to do with one record, judged against the store (one snapshot, or the write it is
/// made in).
enum Judged {
    Unchanged,
    Update,
    New,
    Conflict(Uuid),
    LoggedOut,
}

fn judge(
    view: &mut dyn MaintenanceView,
    cookie: &Cookie,
    options: &ImportOptions,
) -> Result<Judged> {
    let existing = match view.counterpart(cookie.oid, &cookie.value) {
        Ok(c) => c,
        Err(Error::CorruptRecord { .. }) => None, // replaced; check lists it
        Err(e) => return Err(e),
    };
    if let Some(existing) = existing {
        return Ok(if existing == *cookie {
            Judged::Unchanged
        } else if existing.oid != cookie.oid {
            // Redis: the record stored under this value is another cookie.
            Judged::Conflict(existing.oid)
        } else {
            Judged::Update
        });
    }
    match view.get_any_by_value(&cookie.value) {
        Ok(Some(other)) => return Ok(Judged::Conflict(other.oid)),
        Ok(None) | Err(Error::CorruptRecord { .. }) => {}
        Err(e) => return Err(e),
    }
    if !options.force && view.mark_of(&cookie.value)?.is_marked() {
        return Ok(Judged::LoggedOut);
    }
    Ok(Judged::New)
}

/// Imports the records of another store (Crossbar.io's `database` cookie store, or any
/// cfxdb store) into `store`, evaluating expiry at `now` (ns): what `cookiestore import`
/// does with a store directory.
///
/// Records keep their oid and every field. Expired cookies are dropped and counted. A cookie
/// of the store with the same oid is left alone when identical, and replaced otherwise; a
/// cookie whose value another cookie of the store holds is skipped (a conflict, the store's
/// cookie is kept); a cookie that an earlier import brought in and that has left the store
/// since (logged out) is skipped unless [`ImportOptions::force`], so running an import again
/// never logs a cookie back in. So importing the same records twice changes nothing, and
/// nothing is written when nothing differs.
///
/// `records` is read 2,000 at a time, each batch judged and written in its own write
/// transaction (with [`ImportOptions::dry_run`], judged from a snapshot and never written).
/// [`Error::CorruptRecord`] items are listed in [`StoreImportSummary::corrupt`] and skipped;
/// any other error item ends the import with that error, before the batch it is in is
/// written (the batches before it stay written). [`ImportOptions::name`] is not used:
/// records carry their name. `progress` is called with the number of records read so far.
pub fn import_records(
    store: &CookieStore,
    records: &mut dyn Iterator<Item = Result<Cookie>>,
    now: u64,
    options: &ImportOptions,
    progress: &mut dyn FnMut(u64),
) -> Result<StoreImportSummary> {
    let mut summary = StoreImportSummary::default();
    let mut pacing = store.seam().pacing(BATCH);
    let mut chunk: Vec<Cookie> = Vec::with_capacity(BATCH);
    let mut done = false;
    while !done {
        chunk.clear();
        while chunk.len() < BATCH {
            let Some(item) = records.next() else {
                done = true;
                break;
            };
            summary.records += 1;
            match item {
                Ok(cookie) if cookie.is_expired(now) => summary.expired += 1,
                Ok(cookie) => {
                    let problem = if cookie.oid.is_nil() {
                        Some("the record has no oid (or the nil uuid)".to_string())
                    } else {
                        storable(&cookie.value)
                            .err()
                            .or_else(|| cookie.encode().err().map(|e| e.to_string()))
                    };
                    match problem {
                        Some(problem) => summary.rejected.push((cookie.oid, problem)),
                        None => chunk.push(cookie),
                    }
                }
                Err(Error::CorruptRecord { oid, problem }) => summary.corrupt.push((oid, problem)),
                Err(e) => return Err(e.with_committed(summary.imported + summary.updated)),
            }
        }
        if !chunk.is_empty() {
            import_chunk(store, &chunk, options, &mut summary, &mut *pacing)?;
        }
        progress(summary.records);
    }
    Ok(summary)
}

fn import_chunk(
    store: &CookieStore,
    chunk: &[Cookie],
    options: &ImportOptions,
    summary: &mut StoreImportSummary,
    pacing: &mut dyn Pacing,
) -> Result<()> {
    if options.dry_run {
        return store.seam().maintenance_read(&mut |view| {
            view.prefetch(
                &mut chunk.iter().map(|c| c.value.as_str()),
                Prefetch::RecordsAndMarks,
            )?;
            for cookie in chunk {
                match judge(view, cookie, options)? {
                    Judged::Unchanged => summary.unchanged += 1,
                    Judged::Update => summary.updated += 1,
                    Judged::New => summary.imported += 1,
                    Judged::Conflict(holder) => summary.conflicts.push((cookie.oid, holder)),
                    Judged::LoggedOut => summary.skipped_logged_out += 1,
                }
            }
            Ok(())
        });
    }
    let mut part = StoreImportSummary::default();
    chunks(pacing, chunk, |cookies| {
        let mut slice = StoreImportSummary::default();
        store
            .maintenance_write("import cookies", WriteKind::Import, &mut |txn| {
                slice = import_some(txn, cookies, options)?;
                Ok(())
            })
            .map_err(|e| {
                e.with_committed(summary.imported + summary.updated + part.imported + part.updated)
            })?;
        part.add_writes(slice);
        Ok(())
    })?;
    summary.add_writes(part);
    Ok(())
}

impl StoreImportSummary {
    /// Adds what a write of `other` did (the counts a write decides; `records`, `expired`
    /// and `corrupt` are counted while reading).
    fn add_writes(&mut self, other: StoreImportSummary) {
        self.imported += other.imported;
        self.updated += other.updated;
        self.unchanged += other.unchanged;
        self.skipped_logged_out += other.skipped_logged_out;
        self.conflicts.extend(other.conflicts);
        self.rejected.extend(other.rejected);
    }
}

/// One write of [`import_records`]: judges and writes `chunk`.
fn import_some(
    txn: &mut dyn MaintenanceTxn,
    chunk: &[Cookie],
    options: &ImportOptions,
) -> Result<StoreImportSummary> {
    let mut part = StoreImportSummary::default();
    txn.prefetch(
        &mut chunk.iter().map(|c| c.value.as_str()),
        Prefetch::RecordsAndMarks,
    )?;
    for cookie in chunk {
        let judged = judge(txn, cookie, options)?;
        match judged {
            Judged::Unchanged => {
                // Marked too: one imported before imports were marked gets its mark.
                txn.mark(&cookie.value, cookie.expires_at())?;
                part.unchanged += 1;
                continue;
            }
            Judged::Conflict(holder) => {
                part.conflicts.push((cookie.oid, holder));
                continue;
            }
            Judged::LoggedOut => {
                part.skipped_logged_out += 1;
                continue;
            }
            Judged::Update | Judged::New => {}
        }
        match txn.put_imported(cookie) {
            Ok(()) => {}
            Err(Error::DuplicateValue { existing, .. }) => {
                part.conflicts.push((cookie.oid, existing));
                continue;
            }
            // Refused before anything was written: one record, not the whole batch.
            Err(Error::InvalidValue { problem }) => {
                part.rejected.push((cookie.oid, problem));
                continue;
            }
            Err(e) => return Err(e),
        }
        if matches!(judged, Judged::Update) {
            part.updated += 1;
        } else {
            part.imported += 1;
        }
    }
    Ok(part)
}
