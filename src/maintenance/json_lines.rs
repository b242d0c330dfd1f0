//! A store as JSON lines: [`export`] and [`restore`].
//!
//! Every record is one JSON object per line, in [`Cookie`]'s serde form (cfxdb's field names,
//! timestamps as ns integers, uuids as strings, unset fields left out), then the import marks
//! (`legacy_import.rs`), one line each:
//! `{"imported_sha256":"<SHA-256 of the value, hex>","expires":<ns>}` (`expires` left out:
//! never). That is everything needed to rebuild a store: the indexes and the metadata follow
//! from the records. The marks of cookies still live are exported too, since such a cookie
//! may be logged out in the restored store.
//!
//! A restore writes as imports do (on LMDB in transactions sized by time), through the
//! backend's storage steps (`backend.rs`).

use std::collections::hash_map::Entry;
use std::io::{self, BufRead, Write};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::BATCH;
use crate::backend::{Pacing, Prefetch, WriteKind, chunks};
use crate::error::{Error, Result};
use crate::maintenance::legacy;
use crate::maintenance::record_line::parse_record;
use crate::record::codec::Encoded;
use crate::record::cookie::Cookie;
use crate::record::mark::{ValueDigest, parse_hex};
use crate::store::CookieStore;

/// Options of [`export`].
#[derive(Debug, Clone, Copy, Default)]
#[non_exhaustive]
pub struct ExportOptions {
    /// Leave out cookies and import marks that are expired (at the store's clock). Default:
    /// every record and mark.
    pub live_only: bool,
    /// Skip records that cannot be decoded (listed in the summary) instead of failing.
    pub skip_corrupt: bool,
}

impl ExportOptions {
    /// Sets [`live_only`](Self::live_only).
    pub fn live_only(mut self, on: bool) -> Self {
        self.live_only = on;
        self
    }

    /// Sets [`skip_corrupt`](Self::skip_corrupt).
    pub fn skip_corrupt(mut self, on: bool) -> Self {
        self.skip_corrupt = on;
        self
    }
}

/// What [`export`] wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ExportSummary {
    /// The transaction (snapshot) exported.
    pub txn_id: u64,
    /// Cookies written.
    pub cookies: u64,
    /// Of those, expired ones (not yet purged).
    pub expired: u64,
    /// Expired cookies left out (`live_only`).
    pub left_out_expired: u64,
    /// Import marks written (after the cookies, one line each; with `live_only`, those
    /// expired are left out).
    pub import_marks: u64,
    /// Records skipped because they cannot be decoded: oid and problem.
    pub corrupt: Vec<(Uuid, String)>,
}

/// Writes every record of one snapshot of `store` to `out`, one JSON object per line in
/// [`Cookie`]'s serde form, in oid order, then every import mark, one
/// `{"imported_sha256":"<hex>","expires":<ns>}` line each, in digest order (`expires` left
/// out: never). A record that cannot be decoded fails the export ([`Error::CorruptRecord`])
/// unless `skip_corrupt`. `progress` gets the count of cookies so far.
///
/// On LMDB one snapshot is exported ([`ExportSummary::txn_id`]), and it stays open while
/// `out` is written: a slow consumer keeps LMDB from reusing pages freed meanwhile (writers
/// are never blocked). On Redis the walk is not one snapshot (`txn_id` 0).
pub fn export(
    store: &CookieStore,
    out: &mut dyn Write,
    options: ExportOptions,
    progress: &mut dyn FnMut(u64),
) -> Result<ExportSummary> {
    let now = store.now_ns();
    let mut summary = ExportSummary::default();
    let mut marks = 0u64;
    // Both callbacks write to `out`, one after the other.
    let out = std::cell::RefCell::new(out);
    let txn_id = store.seam().export_scan(
        &mut |item| {
            let cookie = match item {
                Ok(c) => c,
                Err(Error::CorruptRecord { oid, problem }) if options.skip_corrupt => {
                    summary.corrupt.push((oid, problem));
                    return Ok(());
                }
                Err(e) => return Err(e),
            };
            let expired = cookie.is_expired(now);
            if expired && options.live_only {
                summary.left_out_expired += 1;
                return Ok(());
            }
            let mut out = out.borrow_mut();
            serde_json::to_writer(&mut **out, &cookie).map_err(io::Error::from)?;
            out.write_all(b"\n")?;
            summary.cookies += 1;
            summary.expired += u64::from(expired);
            if summary.cookies.is_multiple_of(1024) {
                progress(summary.cookies);
            }
            Ok(())
        },
        &mut |digest, expires| {
            if !(options.live_only && expires <= now) {
                write_mark_line(&mut **out.borrow_mut(), &digest, expires)?;
                marks += 1;
            }
            Ok(())
        },
    )?;
    summary.txn_id = txn_id;
    summary.import_marks = marks;
    out.into_inner().flush()?;
    progress(summary.cookies);
    Ok(summary)
}

/// An import mark's line in an export: the SHA-256 of the value (lowercase hex), and when
/// the mark expires (ns; left out: never).
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct MarkLine {
    imported_sha256: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expires: Option<u64>,
}

/// Writes the export line of the mark of `digest`, expiring at `expires`.
pub(crate) fn write_mark_line(
    out: &mut dyn Write,
    digest: &ValueDigest,
    expires: u64,
) -> Result<()> {
    let line = MarkLine {
        imported_sha256: crate::record::mark::hex(digest),
        expires: (expires != u64::MAX).then_some(expires),
    };
    serde_json::to_writer(&mut *out, &line).map_err(io::Error::from)?;
    out.write_all(b"\n")?;
    Ok(())
}

/// The mark of an export line, when the line is one: (digest, expiry), or what is wrong.
fn parse_mark_line(text: &str) -> Option<std::result::Result<(ValueDigest, u64), String>> {
    let line: MarkLine = serde_json::from_str(text).ok()?;
    Some(
        parse_hex(&line.imported_sha256)
            .map(|digest| (digest, line.expires.unwrap_or(u64::MAX)))
            .ok_or_else(|| {
                "the import mark's imported_sha256 is not 64 hex digits (a SHA-256)".to_string()
            }),
    )
}

/// What [`restore`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct RestoreSummary {
    /// Lines read (blank and bad ones included).
    pub lines: u64,
    /// Records new to the store.
    pub restored: u64,
    /// Records that replaced a different record with the same oid in the store (`merge`).
    /// An oid repeated within the file is a bad line (the first record is kept).
    pub replaced: u64,
    /// Records identical to the one already stored under their oid. On Redis, this also
    /// counts records this restore wrote in a batch it then had to read again (another
    /// client wrote one of the batch's values meanwhile: `docs/redis.md`).
    pub unchanged: u64,
    /// Records skipped because another cookie in the store holds their value: line number,
    /// value and the oid holding it.
    pub conflicts: Vec<(u64, String, Uuid)>,
    /// Bad lines: line number and what is wrong. They were skipped.
    pub bad_lines: Vec<(u64, String)>,
    /// Import marks restored (a mark already in the store is kept when it lasts longer).
    pub import_marks: u64,
}

/// Restores an export (JSON lines of [`Cookie`]) into `store`.
///
/// Without `merge`, the store must hold no record at all (checked before the first line is
/// read); otherwise the restore is refused with [`Error::NotEmpty`]. With `merge`, a
/// record replaces the one with the same oid, and a record whose value another cookie holds
/// is skipped and listed as a conflict (the store's cookie is kept). Bad lines (not a
/// `Cookie`, nil oid, a value that cannot be a key, a record too large, an oid already
/// restored from an earlier line) are listed with their number and skipped. Import-mark
/// lines are restored as marks (an export without them, from an older cookiestore, restores
/// as before). `progress` gets the number of lines done.
///
/// The lines are parsed on the calling thread and written on others, one batch of 2,000
/// lines behind: while batch k is written (Redis's round trips and transactions, LMDB's
/// write transactions), batch k+1 is parsed, and it is handed over only once batch k is
/// written. So one batch is in flight at a time, and an error of batch k stops the restore
/// with the count of cookies written (the lines parsed ahead are not written). On LMDB a
/// batch is written in file order, by one thread; on Redis in two shares at once, split by
/// value (each value's lines in one share, in file order), each by a thread of its own, so
/// an error of one share may leave lines of the other written that come after it in the
/// file.
pub fn restore(
    store: &CookieStore,
    input: &mut dyn BufRead,
    merge: bool,
    progress: &mut dyn FnMut(u64),
) -> Result<RestoreSummary> {
    if !merge {
        store.seam().require_empty()?;
    }
    std::thread::scope(|scope| {
        let lanes = (0..store.seam().write_lanes().max(1))
            .map(|_| Lane::spawn(scope, store))
            .collect::<io::Result<Vec<Lane>>>()?;
        let mut summary = RestoreSummary::default();
        // The batch handed to the lanes and not yet reported back: its last line.
        let mut in_flight: Option<u64> = None;
        let mut wait = |in_flight: &mut Option<u64>, summary: &mut RestoreSummary| -> Result<()> {
            let Some(lines) = in_flight.take() else {
                return Ok(());
            };
            // Every lane's outcome first: an error of one share counts what the others wrote.
            let mut outcomes = Vec::with_capacity(lanes.len());
            for lane in &lanes {
                let (share, written, result) = lane.done.recv().map_err(|_| {
                    io::Error::other("a restore's writer thread stopped without an answer")
                })?;
                drop(share);
                summary.restored += written.restored;
                summary.replaced += written.replaced;
                summary.unchanged += written.unchanged;
                summary.conflicts.extend(written.conflicts);
                summary.bad_lines.extend(written.bad);
                summary.import_marks += written.import_marks;
                outcomes.push(result);
            }
            for result in outcomes {
                result.map_err(|e| e.with_committed(summary.restored + summary.replaced))?;
            }
            progress(lines);
            Ok(())
        };
        let mut pending: Vec<Share> = lanes.iter().map(|_| Share::default()).collect();
        let mut pending_len = 0;
        // The line each oid came from: a repeated oid is reported, not silently replaced.
        let mut seen: std::collections::HashMap<Uuid, u64> = std::collections::HashMap::new();
        let mut line = Vec::new();
        loop {
            let n = match legacy::read_line_bounded(input, &mut line, legacy::MAX_LINE) {
                Ok(n) => n.unwrap_or(0),
                Err(e) => {
                    // The batch in flight is written (or failed) first, as without the
                    // reading ahead.
                    wait(&mut in_flight, &mut summary)?;
                    return Err(e.into());
                }
            };
            if n > legacy::MAX_LINE as u64 {
                summary.lines += 1;
                summary.bad_lines.push((
                    summary.lines,
                    format!(
                        "line is {n} bytes long, longer than the {} bytes a record may have",
                        legacy::MAX_LINE
                    ),
                ));
            } else if n > 0 {
                summary.lines += 1;
                match std::str::from_utf8(&line) {
                    Err(e) => summary.bad_lines.push((
                        summary.lines,
                        format!("not valid UTF-8 (byte {})", e.valid_up_to()),
                    )),
                    Ok(text) if text.trim().is_empty() => {}
                    Ok(text) => match parse_mark_line(text.trim()) {
                        Some(Ok(mark)) => {
                            pending[mark.0[0] as usize % lanes.len()].marks.push(mark);
                            pending_len += 1;
                        }
                        Some(Err(problem)) => summary.bad_lines.push((summary.lines, problem)),
                        None => match parse_record(text.trim()) {
                            Ok(record) => match seen.entry(record.oid) {
                                Entry::Occupied(first) => summary.bad_lines.push((
                                    summary.lines,
                                    format!(
                                        "oid {} was already restored from line {}; oids \
                                             are unique, the first record is kept",
                                        record.oid,
                                        first.get()
                                    ),
                                )),
                                Entry::Vacant(slot) => {
                                    slot.insert(summary.lines);
                                    let share = &mut pending[lane_of(&record.value, lanes.len())];
                                    share.records.push((summary.lines, record));
                                    pending_len += 1;
                                }
                            },
                            Err(problem) => summary.bad_lines.push((summary.lines, problem)),
                        },
                    },
                }
            }
            if pending_len >= BATCH || (n == 0 && pending_len > 0) {
                wait(&mut in_flight, &mut summary)?;
                pending_len = 0;
                for (lane, share) in lanes.iter().zip(&mut pending) {
                    if lane.to.send(std::mem::take(share)).is_err() {
                        return Err(io::Error::other(
                            "a restore's writer thread stopped before the end of the input",
                        )
                        .into());
                    }
                }
                in_flight = Some(summary.lines);
            }
            if n == 0 {
                wait(&mut in_flight, &mut summary)?;
                // Once, at the end: the shares of a batch, and the parser, report out of order.
                summary.conflicts.sort_by_key(|(line, ..)| *line);
                summary.bad_lines.sort_by_key(|(line, _)| *line);
                return Ok(summary);
            }
        }
    })
}

/// A thread that writes one share of each batch of a restore, for the whole restore (a
/// thread per batch would cost its start, and the allocator's pages it leaves behind).
struct Lane {
    /// The next share to write.
    to: std::sync::mpsc::SyncSender<Share>,
    /// Each share back, with what was written of it and the error that stopped it, to be
    /// freed on the thread that allocated it (the allocator frees another thread's memory
    /// slowly).
    done: std::sync::mpsc::Receiver<(Share, Written, Result<()>)>,
}

impl Lane {
    fn spawn<'scope>(
        scope: &'scope std::thread::Scope<'scope, '_>,
        store: &'scope CookieStore,
    ) -> io::Result<Lane> {
        let (to, shares) = std::sync::mpsc::sync_channel::<Share>(1);
        let (to_reader, done) = std::sync::mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name("cookiestore-restore".into())
            .spawn_scoped(scope, move || {
                let mut pacing = store.seam().pacing(BATCH);
                for share in shares {
                    let (written, result) = write_share(store, &share, &mut *pacing);
                    let failed = result.is_err();
                    if to_reader.send((share, written, result)).is_err() || failed {
                        break;
                    }
                }
            })?;
        Ok(Lane { to, done })
    }
}

/// The lines of a batch that one lane writes: those of the values [`lane_of`] gives it, and
/// the marks whose digest's first byte does (a mark and a record never depend on each other
/// in a restore).
#[derive(Default)]
struct Share {
    /// Line number and record.
    records: Vec<(u64, Encoded)>,
    marks: Vec<(ValueDigest, u64)>,
}

/// The lane that writes `value`'s lines: the same for every line of one value, so that its
/// lines are written in file order and a later one sees what an earlier one wrote. (An oid
/// needs no lane of its own: it is on one line only, a repeated one being a bad line.)
fn lane_of(value: &str, lanes: usize) -> usize {
    let hash = value
        .bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
    hash as usize % lanes
}

/// What the writer did with one [`Share`] of a batch.
#[derive(Default)]
struct Written {
    restored: u64,
    replaced: u64,
    unchanged: u64,
    conflicts: Vec<(u64, String, Uuid)>,
    bad: Vec<(u64, String)>,
    import_marks: u64,
}

/// Writes one share of a batch, records first: what it wrote, and the error that stopped
/// it, if one did.
fn write_share(
    store: &CookieStore,
    share: &Share,
    pacing: &mut dyn Pacing,
) -> (Written, Result<()>) {
    let mut done = Written::default();
    let records = chunks(pacing, &share.records, |chunk| {
        let mut counts = (0, 0, 0, Vec::new(), Vec::new());
        store.maintenance_write("restore cookies", WriteKind::Import, &mut |txn| {
            counts = (0, 0, 0, Vec::new(), Vec::new());
            txn.prefetch(
                &mut chunk.iter().map(|(_, r)| r.value.as_str()),
                Prefetch::Records,
            )?;
            for (line, record) in chunk {
                let existing = match txn.counterpart(record.oid, &record.value) {
                    Ok(c) => c,
                    Err(Error::CorruptRecord { .. }) => None,
                    Err(e) => return Err(e),
                };
                if existing.as_ref().is_some_and(|c| record.is(c)) {
                    counts.2 += 1;
                    continue;
                }
                match txn.put_encoded(record) {
                    Ok(()) if existing.is_some() => counts.1 += 1,
                    Ok(()) => counts.0 += 1,
                    Err(Error::DuplicateValue { value, existing }) => {
                        counts.3.push((*line, value, existing))
                    }
                    // Refused before anything was written: one record, not the batch.
                    Err(Error::InvalidValue { problem }) => counts.4.push((*line, problem)),
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        })?;
        done.restored += counts.0;
        done.replaced += counts.1;
        done.unchanged += counts.2;
        done.conflicts.extend(counts.3);
        done.bad.extend(counts.4);
        Ok(())
    });
    if records.is_err() {
        return (done, records);
    }
    let marks = chunks(pacing, &share.marks, |chunk| {
        store.maintenance_write("restore import marks", WriteKind::Import, &mut |txn| {
            for (digest, expires) in chunk {
                txn.mark_digest(digest, *expires)?;
            }
            Ok(())
        })?;
        done.import_marks += chunk.len() as u64;
        Ok(())
    });
    (done, marks)
}

// ---- another store's records ------------------------------------------------------------------

/// Decodes one record of a Cookies table as a store's own reader does: `oid` is the record's
/// key, `bytes` the FlatBuffers `Cookie` stored under it. A record that cannot be decoded is
/// [`Error::CorruptRecord`] naming `oid`; a record without an oid field takes `oid`.
///
/// This is how `cookiestore import` decodes what the `cookiestore-format3` helper reads from
/// an LMDB format-3 store (it passes the bytes on, undecoded), so that records are decoded in
/// one place, this library.
pub fn decode_record(oid: Uuid, bytes: &[u8]) -> Result<Cookie> {
    let view = crate::record::codec::CookieView::new(bytes)
        .map_err(|problem| Error::CorruptRecord { oid, problem })?;
    crate::record::codec::materialise(oid, view)
}
