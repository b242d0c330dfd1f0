//! Moving cookies in and out of a store: Crossbar.io's `cookies.dat`, and JSON-lines
//! export / restore.
//!
//! - [`read_legacy`] + [`import_legacy`]: Crossbar.io's file store. The file is replayed in
//!   order (last line per cookie wins, a `deleted` line removes the cookie), expired cookies
//!   are dropped and counted, bad lines are reported with their line number and skipped.
//!   Cookies are matched by value, so importing the same file again changes nothing.
//! - [`export`] + [`restore`]: every record as one JSON object per line, in [`Cookie`]'s serde
//!   form (cfxdb's field names, timestamps as ns integers, uuids as strings, unset fields left
//!   out), then the import marks, one line each:
//!   `{"imported_sha256":"<SHA-256 of the value, hex>","expires":<ns>}` (`expires` left out:
//!   never). That is everything needed to rebuild a store: the indexes and the metadata follow
//!   from the records.
//!
//! Imports mark every cookie they write ("an import brought this value in"), until the
//! cookie's own expiry. A later import skips a marked value that is no longer in the store:
//! it was logged out (or deleted) since, and must not be logged back in
//! ([`ImportOptions::force`] imports it anyway). A logout writes nothing more: absent and
//! marked is "logged out since". The marks of cookies still live are exported too, since such
//! a cookie may be logged out in the restored store; a purge drops marks once their cookie
//! would have expired (a re-import drops it as expired then).
//!
//! Writes go in transactions sized by time (a few milliseconds each, at most [`BATCH`]
//! cookies; `pacing.rs`), with pauses between them, so that routers' writes never wait long
//! for LMDB's writer lock. Cookies and marks are flushed lazily (a power cut may cost the
//! last transaction of an import, which a re-run brings back); the deletions of cookies
//! logged out in `cookies.dat` are flushed as every logout.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::lmdb::batch::Batch;
use crate::lmdb::durability::Flush;
use crate::lmdb::marks;
use crate::lmdb::pacing::Pacer;
use crate::lmdb::txn::Growth;
use crate::maintenance::legacy::{self, LegacyCookie, LegacyLine, LegacyStatus, Replay};
use crate::record::cookie::Cookie;
use crate::record::mark::Mark;
use crate::record::mark::{ValueDigest, parse_hex};
use crate::store::CookieStore;

/// Cookies written per write transaction by imports and restores.
pub(crate) const BATCH: usize = 2_000;

/// A replayed `cookies.dat`, with the values its `deleted` lines finally removed.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct LegacySource {
    /// The replay: surviving cookies, bad lines, counts.
    pub replay: Replay,
    /// Values whose last line is `deleted`: an import removes them from the store too.
    pub removed: Vec<String>,
}

impl From<Replay> for LegacySource {
    /// A replay alone: no store cookie is removed by an import of it.
    fn from(replay: Replay) -> Self {
        LegacySource {
            replay,
            removed: Vec::new(),
        }
    }
}

/// Reads Crossbar.io's `cookies.dat` at `path`: [`legacy::replay`], and the values whose last
/// line is `deleted`. `progress` is called with the bytes read so far.
pub fn read_legacy(path: &Path, progress: &mut dyn FnMut(u64)) -> Result<LegacySource> {
    let open = || {
        File::open(path).map_err(|source| Error::Path {
            path: path.to_path_buf(),
            problem: "cannot read the cookies file".into(),
            source,
        })
    };
    let mut read = 0u64;
    let replay = legacy::replay(BufReader::with_capacity(
        1 << 16,
        Counting {
            inner: open()?,
            read: &mut read,
            progress,
        },
    ))?;
    // Second pass: which values a `deleted` line removed for good.
    let survivors: HashSet<&str> = replay.cookies.iter().map(|c| c.value.as_str()).collect();
    let mut removed = Vec::new();
    let mut seen = HashSet::new();
    let mut reader = BufReader::with_capacity(1 << 16, open()?);
    let mut buf = Vec::new();
    while let Some(len) = legacy::read_line_bounded(&mut reader, &mut buf, legacy::MAX_LINE)? {
        if let Some(Ok(LegacyLine {
            status: LegacyStatus::Deleted,
            cookie,
        })) = legacy::parse_read_line(&buf, len)
            && !survivors.contains(cookie.value.as_str())
            && seen.insert(cookie.value.clone())
        {
            removed.push(cookie.value);
        }
    }
    Ok(LegacySource { replay, removed })
}

struct Counting<'a, R> {
    inner: R,
    read: &'a mut u64,
    progress: &'a mut dyn FnMut(u64),
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        *self.read += n as u64;
        (self.progress)(*self.read);
        Ok(n)
    }
}

/// Options of [`import_legacy`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ImportOptions {
    /// The cookie name given to imported cookies (Crossbar.io's file store does not record
    /// it; its default is `cbtid`).
    pub name: String,
    /// Only work out what the import would do, from one snapshot: nothing is written, and a
    /// read-only store will do.
    pub dry_run: bool,
    /// Import cookies that an earlier import brought in and that have since left the store
    /// (logged out, or deleted otherwise). Without it they are skipped and counted in
    /// [`ImportSummary::skipped_logged_out`]: re-running an import must not log them back in.
    pub force: bool,
}

impl ImportOptions {
    /// Sets [`name`](Self::name).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Sets [`dry_run`](Self::dry_run).
    pub fn dry_run(mut self, dry_run: bool) -> Self {
        self.dry_run = dry_run;
        self
    }

    /// Sets [`force`](Self::force).
    pub fn force(mut self, force: bool) -> Self {
        self.force = force;
        self
    }
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions {
            name: crate::config::tracker::DEFAULT_NAME.to_string(),
            dry_run: false,
            force: false,
        }
    }
}

/// What [`import_legacy`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ImportSummary {
    /// Lines in the file (blank and bad ones included).
    pub lines: u64,
    /// Cookies new to the store.
    pub imported: u64,
    /// Cookies already in the store (same value) whose fields changed.
    pub updated: u64,
    /// Cookies already in the store with identical fields.
    pub unchanged: u64,
    /// Cookies the file's `deleted` lines removed (logouts), as the replay counts them.
    pub deleted: u64,
    /// Of those, cookies that were in the store and were deleted from it.
    pub removed_from_store: u64,
    /// Cookies dropped because they are expired.
    pub expired: u64,
    /// Cookies an earlier import brought in that have left the store since (logged out):
    /// skipped, unless [`ImportOptions::force`].
    pub skipped_logged_out: u64,
    /// Of the unchanged cookies, those that had no import mark (imported by an older
    /// cookiestore, or into Redis before imports were marked there): marked now, so that a
    /// later import skips them once they are logged out.
    pub marked: u64,
    /// Bad lines: 1-based line number and what is wrong. They were skipped.
    pub bad_lines: Vec<(u64, String)>,
    /// Cookies the store refused (value that cannot be a key, authextra too large or deep):
    /// the value and why. They were skipped.
    pub rejected: Vec<(String, String)>,
}

/// Imports a replayed `cookies.dat` into `store`, evaluating expiry at `now` (ns).
///
/// Each surviving, unexpired cookie is matched by value: a new one gets a fresh oid, an
/// existing one (expired or not) keeps its oid and whatever the file does not record (name,
/// node, worker, session...) and is rewritten only when a field differs, so importing the same
/// file twice changes nothing (not even a write transaction is made). Fields: `created` and
/// `max_age` as recorded; the auth fields as recorded (`authextra` null is `{}`);
/// `authenticated` is the `modified` time (else `created`) when the cookie has an authid and
/// its authentication changed, 0 without authid. Values in [`LegacySource::removed`] are
/// deleted from the store. A store cookie the file does not mention is left alone.
///
/// Every cookie written gets an import mark until its expiry; a marked value no longer in
/// the store (logged out since) is skipped and counted in
/// [`ImportSummary::skipped_logged_out`], unless [`ImportOptions::force`]. An unchanged
/// cookie without a mark gets one ([`ImportSummary::marked`]).
///
/// What to write is worked out from one snapshot first; only cookies that differ are then
/// written, 2,000 per write transaction (each re-read inside its transaction, so
/// concurrent writers are respected). With [`ImportOptions::dry_run`] nothing is written and
/// the summary says what would be. `progress` is called with the number of cookies written.
pub fn import_legacy(
    store: &CookieStore,
    source: &LegacySource,
    now: u64,
    options: &ImportOptions,
    progress: &mut dyn FnMut(u64),
) -> Result<ImportSummary> {
    import_paced(
        store,
        source,
        now,
        options,
        progress,
        &mut Pacer::new(BATCH),
    )
}

/// [`import_legacy`], its write transactions sized by `pacer` (shared by the parts of one
/// streamed import).
fn import_paced(
    store: &CookieStore,
    source: &LegacySource,
    now: u64,
    options: &ImportOptions,
    progress: &mut dyn FnMut(u64),
    pacer: &mut Pacer,
) -> Result<ImportSummary> {
    let replay = &source.replay;
    let mut summary = ImportSummary {
        lines: replay.lines,
        deleted: replay.deleted,
        bad_lines: replay
            .bad_lines
            .iter()
            .map(|(n, e)| (*n, e.to_string()))
            .collect(),
        ..ImportSummary::default()
    };
    let mut live: Vec<&LegacyCookie> = Vec::with_capacity(replay.cookies.len());
    for cookie in &replay.cookies {
        if cookie.is_expired(now) {
            summary.expired += 1;
        } else if let Err(problem) = storable(&cookie.value) {
            summary.rejected.push((cookie.value.clone(), problem));
        } else {
            live.push(cookie);
        }
    }
    #[cfg(feature = "redis")]
    if let Some(redis) = store.redis() {
        return redis.import_legacy(&live, &source.removed, options, now, summary, progress);
    }

    // The plan, from one snapshot: what differs from the store.
    let (to_write, to_mark, to_remove) = store.snapshot(|s| {
        let mut to_write: Vec<&LegacyCookie> = Vec::new();
        let mut to_mark: Vec<&LegacyCookie> = Vec::new();
        for legacy in &live {
            let existing = match s.get_any_by_value(&legacy.value) {
                Ok(c) => c,
                Err(Error::CorruptRecord { .. }) => None, // replaced; check lists it
                Err(e) => return Err(e),
            };
            let mark = marks::find(s, &legacy.value)?;
            if existing.is_none() && !options.force && mark.is_marked() {
                summary.skipped_logged_out += 1;
                continue;
            }
            let cookie = from_legacy(legacy, existing.as_ref(), &options.name);
            if existing.as_ref() == Some(&cookie) {
                summary.unchanged += 1;
                if mark != Mark::Hashed {
                    summary.marked += 1;
                    to_mark.push(legacy);
                }
            } else if let Err(e) = cookie.encode() {
                summary.rejected.push((legacy.value.clone(), e.to_string()));
            } else {
                if options.dry_run {
                    if existing.is_some() {
                        summary.updated += 1;
                    } else {
                        summary.imported += 1;
                    }
                }
                to_write.push(legacy);
            }
        }
        let mut to_remove: Vec<&str> = Vec::new();
        for value in &source.removed {
            let present = storable(value).is_ok() && !matches!(s.get_any_by_value(value), Ok(None));
            if present {
                to_remove.push(value);
            }
        }
        Ok((to_write, to_mark, to_remove))
    })?;
    if options.dry_run {
        summary.removed_from_store = to_remove.len() as u64;
        return Ok(summary);
    }

    let mut done = 0u64;
    pacer.chunks(&to_write, |chunk| {
        let (imported, updated, unchanged, skipped) = store
            .maintenance_batch("import cookies", Growth::UpToMaxsize, Flush::Lazy, |b| {
                let mut counts = (0, 0, 0, 0);
                for legacy in chunk {
                    let existing = match b.view().get_any_by_value(&legacy.value) {
                        Ok(c) => c,
                        Err(Error::CorruptRecord { .. }) => None,
                        Err(e) => return Err(e),
                    };
                    if existing.is_none()
                        && !options.force
                        && marks::find(&b.view(), &legacy.value)?.is_marked()
                    {
                        counts.3 += 1; // logged out meanwhile
                        continue;
                    }
                    let cookie = from_legacy(legacy, existing.as_ref(), &options.name);
                    if existing.as_ref() == Some(&cookie) {
                        counts.2 += 1; // someone wrote the same meanwhile
                        marks::mark(b, &cookie.value, cookie.expires_at())?;
                        continue;
                    }
                    b.put(&cookie)?;
                    marks::mark(b, &cookie.value, cookie.expires_at())?;
                    if existing.is_some() {
                        counts.1 += 1;
                    } else {
                        counts.0 += 1;
                    }
                }
                Ok(counts)
            })
            .map_err(|e| e.with_committed(summary.imported + summary.updated))?;
        summary.imported += imported;
        summary.updated += updated;
        summary.unchanged += unchanged;
        summary.skipped_logged_out += skipped;
        done += chunk.len() as u64;
        progress(done);
        Ok(())
    })?;
    // Unchanged cookies, marked whether or not they are still there: they were in the store
    // when the plan was made, so one that is gone now was logged out meanwhile.
    pacer.chunks(&to_mark, |chunk| {
        store.maintenance_batch(
            "mark imported cookies",
            Growth::UpToMaxsize,
            Flush::Lazy,
            |b| {
                for legacy in chunk {
                    marks::mark(b, &legacy.value, legacy.expires_ns())?;
                }
                Ok(())
            },
        )
    })?;
    // Logged out in the file: durable, as every logout.
    pacer.chunks(&to_remove, |chunk| {
        summary.removed_from_store += store.maintenance_batch(
            "delete logged-out cookies",
            Growth::Headroom,
            Flush::Durable,
            |b| {
                let mut n = 0;
                for value in chunk {
                    if b.delete(value)? {
                        n += 1;
                    }
                }
                Ok(n)
            },
        )?;
        Ok(())
    })?;
    Ok(summary)
}

/// Imports Crossbar.io's `cookies.dat` at `path` into `store`, streaming: as
/// [`read_legacy`] + [`import_legacy`], but the file is read twice instead of held in memory
/// (the first pass keeps only each cookie value's last line number), and the cookies are
/// planned and written 2,000 at a time, each batch from its own snapshot. Memory grows
/// with the number of distinct cookie values, not with the file; a line longer than
/// [`MAX_LINE`](crate::maintenance::MAX_LINE) is a bad line. `progress` gets the bytes read
/// so far over both passes (twice the file's size at the end).
pub fn import_file(
    store: &CookieStore,
    path: &Path,
    now: u64,
    options: &ImportOptions,
    progress: &mut dyn FnMut(u64),
) -> Result<ImportSummary> {
    use std::collections::HashMap;
    let open = || {
        File::open(path).map_err(|source| Error::Path {
            path: path.to_path_buf(),
            problem: "cannot read the cookies file".into(),
            source,
        })
    };
    let mut summary = ImportSummary::default();
    // Pass 1: the line number of each value's surviving line, and the values logged out.
    let mut last: HashMap<Box<str>, u64> = HashMap::new();
    let mut logged_out: HashSet<Box<str>> = HashSet::new();
    let mut read = 0u64;
    let mut buf = Vec::new();
    {
        let mut reader = BufReader::with_capacity(1 << 16, open()?);
        while let Some(len) = legacy::read_line_bounded(&mut reader, &mut buf, legacy::MAX_LINE)? {
            summary.lines += 1;
            read += len;
            if summary.lines.is_multiple_of(4096) {
                progress(read);
            }
            match legacy::parse_read_line(&buf, len) {
                None => {}
                Some(Err(e)) => summary.bad_lines.push((summary.lines, e.to_string())),
                Some(Ok(LegacyLine {
                    status: LegacyStatus::Deleted,
                    cookie,
                })) => {
                    if last.remove(cookie.value.as_str()).is_some() {
                        summary.deleted += 1;
                    }
                    logged_out.insert(cookie.value.into_boxed_str());
                }
                Some(Ok(LegacyLine { cookie, .. })) => {
                    last.insert(cookie.value.into_boxed_str(), summary.lines);
                }
            }
        }
    }
    logged_out.retain(|v| !last.contains_key(v));
    // Pass 2: the surviving lines, BATCH at a time.
    let add = |summary: &mut ImportSummary, part: ImportSummary| {
        summary.imported += part.imported;
        summary.updated += part.updated;
        summary.unchanged += part.unchanged;
        summary.expired += part.expired;
        summary.skipped_logged_out += part.skipped_logged_out;
        summary.marked += part.marked;
        summary.removed_from_store += part.removed_from_store;
        summary.rejected.extend(part.rejected);
    };
    let mut pacer = Pacer::new(BATCH);
    let mut run = |summary: &mut ImportSummary, source: LegacySource| -> Result<()> {
        let part = import_paced(store, &source, now, options, &mut |_| {}, &mut pacer)
            .map_err(|e| e.plus_committed(summary.imported + summary.updated))?;
        add(summary, part);
        Ok(())
    };
    let mut chunk: Vec<LegacyCookie> = Vec::with_capacity(BATCH);
    let mut reader = BufReader::with_capacity(1 << 16, open()?);
    let mut number = 0u64;
    while let Some(len) = legacy::read_line_bounded(&mut reader, &mut buf, legacy::MAX_LINE)? {
        number += 1;
        read += len;
        if number.is_multiple_of(4096) {
            progress(read);
        }
        if let Some(Ok(LegacyLine { status, cookie })) = legacy::parse_read_line(&buf, len)
            && status != LegacyStatus::Deleted
            && last.get(cookie.value.as_str()) == Some(&number)
        {
            chunk.push(cookie);
            if chunk.len() >= BATCH {
                let cookies = std::mem::take(&mut chunk);
                run(
                    &mut summary,
                    Replay {
                        cookies,
                        ..Replay::default()
                    }
                    .into(),
                )?;
            }
        }
    }
    drop(last);
    if !chunk.is_empty() {
        run(
            &mut summary,
            Replay {
                cookies: chunk,
                ..Replay::default()
            }
            .into(),
        )?;
    }
    let removed: Vec<String> = logged_out.into_iter().map(String::from).collect();
    for part in removed.chunks(BATCH) {
        run(
            &mut summary,
            LegacySource {
                replay: Replay::default(),
                removed: part.to_vec(),
            },
        )?;
    }
    progress(read);
    Ok(summary)
}

/// Whether `value` can be stored (the rules of [`CookieValue`](crate::CookieValue)).
pub(crate) fn storable(value: &str) -> std::result::Result<(), String> {
    match crate::record::value::check(value)
        .err()
        .map(|p| p.to_string())
    {
        None => Ok(()),
        Some(problem) => Err(problem),
    }
}

/// The record for `legacy`, on top of the `existing` record with the same value.
pub(crate) fn from_legacy(legacy: &LegacyCookie, existing: Option<&Cookie>, name: &str) -> Cookie {
    let authextra = legacy
        .authextra
        .clone()
        .unwrap_or_else(|| Value::Object(Default::default()));
    let mut cookie = existing.cloned().unwrap_or_else(|| Cookie {
        oid: Uuid::new_v4(),
        name: Some(name.to_string()),
        value: legacy.value.clone(),
        ..Cookie::default()
    });
    cookie.created = legacy.created_ns;
    cookie.max_age = legacy.max_age;
    let same_auth = cookie.authid == legacy.authid
        && cookie.authrole == legacy.authrole
        && cookie.authmethod == legacy.authmethod
        && cookie.authrealm == legacy.authrealm
        && same_map(&cookie.authextra, &authextra);
    if !same_auth || (legacy.authid.is_some() && cookie.authenticated == 0) {
        cookie.authid = legacy.authid.clone();
        cookie.authrole = legacy.authrole.clone();
        cookie.authmethod = legacy.authmethod.clone();
        cookie.authrealm = legacy.authrealm.clone();
        cookie.authextra = authextra;
        // The session details described the previous authentication.
        cookie.authenticated_on_node = None;
        cookie.authenticated_on_worker = None;
        cookie.authenticated_transport_info = Value::Object(Default::default());
        cookie.authenticated_session = 0;
        cookie.authenticated_joined_at = 0;
        cookie.authenticated_authmethod = None;
        cookie.authenticated = match legacy.authid {
            Some(_) => legacy.modified_ns.unwrap_or(legacy.created_ns),
            None => 0,
        };
    }
    cookie
}

/// Equal, counting null and `{}` as the same (both are stored as "absent").
fn same_map(a: &Value, b: &Value) -> bool {
    let empty = |v: &Value| v.is_null() || v.as_object().is_some_and(|m| m.is_empty());
    (empty(a) && empty(b)) || a == b
}

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
/// The snapshot stays open while `out` is written: a slow consumer keeps LMDB from reusing
/// pages freed meanwhile (writers are never blocked).
pub fn export(
    store: &CookieStore,
    out: &mut dyn Write,
    options: ExportOptions,
    progress: &mut dyn FnMut(u64),
) -> Result<ExportSummary> {
    #[cfg(feature = "redis")]
    if let Some(redis) = store.redis() {
        return redis.export(store.now_ns(), out, options, progress);
    }
    store.snapshot(|s| {
        let now = s.now_ns();
        let mut summary = ExportSummary {
            txn_id: s.txn_id(),
            ..ExportSummary::default()
        };
        for item in s.records()? {
            let cookie = match item {
                Ok(c) => c,
                Err(Error::CorruptRecord { oid, problem }) if options.skip_corrupt => {
                    summary.corrupt.push((oid, problem));
                    continue;
                }
                Err(e) => return Err(e),
            };
            let expired = cookie.is_expired(now);
            if expired && options.live_only {
                summary.left_out_expired += 1;
                continue;
            }
            serde_json::to_writer(&mut *out, &cookie).map_err(io::Error::from)?;
            out.write_all(b"\n")?;
            summary.cookies += 1;
            summary.expired += u64::from(expired);
            if summary.cookies.is_multiple_of(1024) {
                progress(summary.cookies);
            }
        }
        marks::for_each(s, |digest, expires| {
            if !(options.live_only && expires <= now) {
                write_mark_line(out, &digest, expires)?;
                summary.import_marks += 1;
            }
            Ok(())
        })?;
        out.flush()?;
        progress(summary.cookies);
        Ok(summary)
    })
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
    /// Records identical to the one already stored under their oid.
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
/// Without `merge`, the store must hold no record at all (checked in the first write
/// transaction); otherwise the restore is refused with [`Error::Path`]. With `merge`, a
/// record replaces the one with the same oid, and a record whose value another cookie holds
/// is skipped and listed as a conflict (the store's cookie is kept). Bad lines (not a
/// `Cookie`, nil oid, a value that cannot be a key, a record too large, an oid already
/// restored from an earlier line) are listed with their number and skipped. Import-mark
/// lines are restored as marks (an export without them, from an older cookiestore, restores
/// as before). `progress` gets the number of lines done.
pub fn restore(
    store: &CookieStore,
    input: &mut dyn BufRead,
    merge: bool,
    progress: &mut dyn FnMut(u64),
) -> Result<RestoreSummary> {
    let mut summary = RestoreSummary::default();
    let mut first = true;
    let mut pacer = Pacer::new(BATCH);
    let mut pending: Vec<(u64, Cookie)> = Vec::with_capacity(BATCH);
    let mut pending_marks: Vec<(ValueDigest, u64)> = Vec::new();
    // The line each oid came from: a repeated oid is reported, not silently replaced.
    let mut seen: std::collections::HashMap<Uuid, u64> = std::collections::HashMap::new();
    let mut line = Vec::new();
    loop {
        let n = legacy::read_line_bounded(input, &mut line, legacy::MAX_LINE)?.unwrap_or(0);
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
                    Some(Ok(mark)) => pending_marks.push(mark),
                    Some(Err(problem)) => summary.bad_lines.push((summary.lines, problem)),
                    None => match parse_record(text.trim()) {
                        Ok(cookie) => match seen.entry(cookie.oid) {
                            std::collections::hash_map::Entry::Occupied(first) => {
                                summary.bad_lines.push((
                                    summary.lines,
                                    format!(
                                        "oid {} was already restored from line {}; oids are \
                                         unique, the first record is kept",
                                        cookie.oid,
                                        first.get()
                                    ),
                                ))
                            }
                            std::collections::hash_map::Entry::Vacant(slot) => {
                                slot.insert(summary.lines);
                                pending.push((summary.lines, cookie));
                            }
                        },
                        Err(problem) => summary.bad_lines.push((summary.lines, problem)),
                    },
                },
            }
        }
        if pending.len() + pending_marks.len() >= BATCH
            || (n == 0 && (!pending.is_empty() || !pending_marks.is_empty() || first))
        {
            restore_batch(
                store,
                &pending,
                &pending_marks,
                first && !merge,
                &mut summary,
                &mut pacer,
            )?;
            first = false;
            pending.clear();
            pending_marks.clear();
            progress(summary.lines);
        }
        if n == 0 {
            return Ok(summary);
        }
    }
}

fn parse_record(text: &str) -> std::result::Result<Cookie, String> {
    let cookie: Cookie =
        serde_json::from_str(text).map_err(|e| format!("not a cookie record: {e}"))?;
    if let Some((path, literal)) = crate::record::bigint::big_integer(text) {
        return Err(crate::record::bigint::problem(&path, &literal));
    }
    if cookie.oid.is_nil() {
        return Err("the record has no oid (or the nil uuid)".into());
    }
    storable(&cookie.value)?;
    cookie.encode().map_err(|e| e.to_string())?;
    Ok(cookie)
}

fn restore_batch(
    store: &CookieStore,
    records: &[(u64, Cookie)],
    import_marks: &[(ValueDigest, u64)],
    require_empty: bool,
    summary: &mut RestoreSummary,
    pacer: &mut Pacer,
) -> Result<()> {
    #[cfg(feature = "redis")]
    if let Some(redis) = store.redis() {
        return redis.restore_batch(records, import_marks, require_empty, summary);
    }
    if require_empty {
        let records = store.read(|s| Ok(s.raw_records()?.count() as u64))?;
        if records > 0 {
            return Err(Error::NotEmpty {
                path: store.path().map(Path::to_path_buf).unwrap_or_default(),
                records,
            });
        }
    }
    let (mut restored, mut replaced, mut unchanged) = (0, 0, 0);
    let (mut conflicts, mut bad) = (Vec::new(), Vec::new());
    pacer.chunks(records, |chunk| {
        let counts = store
            .maintenance_batch("restore cookies", Growth::UpToMaxsize, Flush::Lazy, |b| {
                let mut counts = (0, 0, 0, Vec::new(), Vec::new());
                for (line, cookie) in chunk {
                    let existing = match b.view().get_any_by_oid(cookie.oid) {
                        Ok(c) => c,
                        Err(Error::CorruptRecord { .. }) => None,
                        Err(e) => return Err(e),
                    };
                    if existing.as_ref() == Some(cookie) {
                        counts.2 += 1;
                        continue;
                    }
                    match b.put(cookie) {
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
                Ok(counts)
            })
            .map_err(|e| {
                e.with_committed(summary.restored + restored + summary.replaced + replaced)
            })?;
        restored += counts.0;
        replaced += counts.1;
        unchanged += counts.2;
        conflicts.extend(counts.3);
        bad.extend(counts.4);
        Ok(())
    })?;
    pacer.chunks(import_marks, |chunk| {
        store.maintenance_batch(
            "restore import marks",
            Growth::UpToMaxsize,
            Flush::Lazy,
            |b| {
                for (digest, expires) in chunk {
                    marks::mark_digest(b, digest, *expires)?;
                }
                Ok(())
            },
        )
    })?;
    summary.restored += restored;
    summary.replaced += replaced;
    summary.unchanged += unchanged;
    summary.conflicts.extend(conflicts);
    summary.bad_lines.extend(bad);
    summary.import_marks += import_marks.len() as u64;
    summary.bad_lines.sort_by_key(|(line, _)| *line);
    Ok(())
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
    /// Cookies already in the store (same oid) with identical fields.
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

/// What to do with one record, judged against one snapshot of the store.
enum Judged {
    Unchanged,
    Update,
    New,
    Conflict(Uuid),
    LoggedOut,
}

fn judge(
    s: &crate::lmdb::snapshot::Snapshot<'_>,
    cookie: &Cookie,
    options: &ImportOptions,
) -> Result<Judged> {
    let existing = match s.get_any_by_oid(cookie.oid) {
        Ok(c) => c,
        Err(Error::CorruptRecord { .. }) => None, // replaced; check lists it
        Err(e) => return Err(e),
    };
    if let Some(existing) = existing {
        return Ok(if existing == *cookie {
            Judged::Unchanged
        } else {
            Judged::Update
        });
    }
    match s.get_any_by_value(&cookie.value) {
        Ok(Some(other)) => return Ok(Judged::Conflict(other.oid)),
        Ok(None) | Err(Error::CorruptRecord { .. }) => {}
        Err(e) => return Err(e),
    }
    if !options.force && marks::find(s, &cookie.value)?.is_marked() {
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
    let mut pacer = Pacer::new(BATCH);
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
            import_chunk(store, &chunk, options, &mut summary, &mut pacer)
                .map_err(|e| e.plus_committed(summary.imported + summary.updated))?;
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
    pacer: &mut Pacer,
) -> Result<()> {
    #[cfg(feature = "redis")]
    if let Some(redis) = store.redis() {
        return redis.import_records(chunk, options, summary);
    }
    if options.dry_run {
        return store.snapshot(|s| {
            for cookie in chunk {
                match judge(s, cookie, options)? {
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
    pacer.chunks(chunk, |cookies| {
        let slice = store
            .maintenance_batch("import cookies", Growth::UpToMaxsize, Flush::Lazy, |b| {
                import_some(b, cookies, options)
            })
            .map_err(|e| e.with_committed(part.imported + part.updated))?;
        part.imported += slice.imported;
        part.updated += slice.updated;
        part.unchanged += slice.unchanged;
        part.skipped_logged_out += slice.skipped_logged_out;
        part.conflicts.extend(slice.conflicts);
        part.rejected.extend(slice.rejected);
        Ok(())
    })?;
    summary.imported += part.imported;
    summary.updated += part.updated;
    summary.unchanged += part.unchanged;
    summary.skipped_logged_out += part.skipped_logged_out;
    summary.conflicts.extend(part.conflicts);
    summary.rejected.extend(part.rejected);
    Ok(())
}

/// One write transaction of [`import_records`]: judges and writes `chunk`.
fn import_some(
    b: &mut Batch<'_, '_>,
    chunk: &[Cookie],
    options: &ImportOptions,
) -> Result<StoreImportSummary> {
    let mut part = StoreImportSummary::default();
    for cookie in chunk {
        let judged = judge(&b.view(), cookie, options)?;
        match judged {
            Judged::Unchanged => {
                // Marked too: one imported before imports were marked gets its mark.
                marks::mark(b, &cookie.value, cookie.expires_at())?;
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
        match b.put(cookie) {
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
        marks::mark(b, &cookie.value, cookie.expires_at())?;
        if matches!(judged, Judged::Update) {
            part.updated += 1;
        } else {
            part.imported += 1;
        }
    }
    Ok(part)
}
