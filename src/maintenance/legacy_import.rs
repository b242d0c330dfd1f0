//! Importing Crossbar.io's file store (`cookies.dat`) into a store.
//!
//! [`read_legacy`] + [`import_legacy`] (or [`import_file`], which reads the file twice to
//! bound memory): the file is replayed in order (last line per cookie wins, a `deleted` line
//! removes the cookie), expired cookies are dropped and counted, bad lines are reported with
//! their line number and skipped. Cookies are matched by value, so importing the same file
//! again changes nothing.
//!
//! Imports mark every cookie they write ("an import brought this value in"), until the
//! cookie's own expiry. A later import skips a marked value that is no longer in the store:
//! it was logged out (or deleted) since, and must not be logged back in
//! ([`ImportOptions::force`] imports it anyway). A logout writes nothing more: absent and
//! marked is "logged out since". A purge drops marks once their cookie would have expired (a
//! re-import drops it as expired then).
//!
//! On LMDB, writes go in transactions sized by time (a few milliseconds each, at most
//! [`BATCH`](super::BATCH) cookies; `lmdb/pacing.rs`), with pauses between them, so that
//! routers' writes never wait long for LMDB's writer lock; on Redis in batches of at most
//! 500, each one script, all or nothing (`redis/migrate.rs`). The rules here are the same on both
//! (`backend.rs`: the storage steps). Cookies and marks are flushed
//! lazily (a power cut may cost the last transaction of an import, which a re-run brings
//! back); the deletions of cookies logged out in `cookies.dat` are flushed as every logout.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;

use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use super::{BATCH, storable};
use crate::backend::{Pacing, Prefetch, WriteKind, chunks};
use crate::error::{Error, Result};
use crate::maintenance::legacy::{self, LegacyCookie, LegacyLine, LegacyStatus, Replay};
use crate::record::cookie::Cookie;
use crate::record::mark::Mark;
use crate::store::CookieStore;

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
        &mut *store.seam().pacing(BATCH),
        0,
    )
}

/// [`import_legacy`], its write transactions sized by `pacer` (shared by the parts of one
/// streamed import); `before`: the cookies its earlier parts wrote (for an error's count).
fn import_paced(
    store: &CookieStore,
    source: &LegacySource,
    now: u64,
    options: &ImportOptions,
    progress: &mut dyn FnMut(u64),
    pacing: &mut dyn Pacing,
    before: u64,
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
    // The plan, from one snapshot: what differs from the store.
    let mut to_write: Vec<&LegacyCookie> = Vec::new();
    let mut to_mark: Vec<&LegacyCookie> = Vec::new();
    let mut to_remove: Vec<&str> = Vec::new();
    store.seam().maintenance_read(&mut |view| {
        view.prefetch(
            &mut live.iter().map(|c| c.value.as_str()),
            Prefetch::RecordsAndMarks,
        )?;
        for legacy in &live {
            let existing = match view.get_any_by_value(&legacy.value) {
                Ok(c) => c,
                Err(Error::CorruptRecord { .. }) => None, // replaced; check lists it
                Err(e) => return Err(e),
            };
            let mark = view.mark_of(&legacy.value)?;
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
        view.prefetch(
            &mut source.removed.iter().map(String::as_str),
            Prefetch::RecordsAndMarks,
        )?;
        for value in &source.removed {
            if storable(value).is_err() {
                continue;
            }
            // A record that cannot be decoded is there too: the logout deletes it.
            match view.get_any_by_value(value) {
                Ok(None) => {}
                Ok(Some(_)) | Err(Error::CorruptRecord { .. }) => to_remove.push(value),
                Err(e) => return Err(e),
            }
        }
        Ok(())
    })?;
    if options.dry_run {
        summary.removed_from_store = to_remove.len() as u64;
        return Ok(summary);
    }

    let mut done = 0u64;
    chunks(pacing, &to_write, |chunk| {
        let mut counts = (0, 0, 0, 0);
        store
            .maintenance_write("import cookies", WriteKind::Import, &mut |txn| {
                counts = (0, 0, 0, 0);
                txn.prefetch(
                    &mut chunk.iter().map(|c| c.value.as_str()),
                    Prefetch::RecordsAndMarks,
                )?;
                for legacy in chunk {
                    let existing = match txn.get_any_by_value(&legacy.value) {
                        Ok(c) => c,
                        Err(Error::CorruptRecord { .. }) => None,
                        Err(e) => return Err(e),
                    };
                    if existing.is_none()
                        && !options.force
                        && txn.mark_of(&legacy.value)?.is_marked()
                    {
                        counts.3 += 1; // logged out meanwhile
                        continue;
                    }
                    let cookie = from_legacy(legacy, existing.as_ref(), &options.name);
                    if existing.as_ref() == Some(&cookie) {
                        counts.2 += 1; // someone wrote the same meanwhile
                        txn.mark(&cookie.value, cookie.expires_at())?;
                        continue;
                    }
                    txn.put_imported(&cookie)?;
                    if existing.is_some() {
                        counts.1 += 1;
                    } else {
                        counts.0 += 1;
                    }
                }
                Ok(())
            })
            .map_err(|e| e.with_committed(before + summary.imported + summary.updated))?;
        let (imported, updated, unchanged, skipped) = counts;
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
    let written = before + summary.imported + summary.updated;
    chunks(pacing, &to_mark, |chunk| {
        store
            .maintenance_write("mark imported cookies", WriteKind::Import, &mut |txn| {
                for legacy in chunk {
                    txn.mark(&legacy.value, legacy.expires_ns())?;
                }
                Ok(())
            })
            .map_err(|e| e.with_committed(written))
    })?;
    // Logged out in the file: durable, as every logout.
    chunks(pacing, &to_remove, |chunk| {
        let mut n = 0;
        store.maintenance_write("delete logged-out cookies", WriteKind::Logout, &mut |txn| {
            n = 0;
            txn.prefetch(&mut chunk.iter().copied(), Prefetch::RecordsAndMarks)?;
            for value in chunk {
                if txn.delete(value)? {
                    n += 1;
                }
            }
            Ok(())
        })?;
        summary.removed_from_store += n;
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
    let mut pacing = store.seam().pacing(BATCH);
    let mut run = |summary: &mut ImportSummary, source: LegacySource| -> Result<()> {
        let before = summary.imported + summary.updated;
        let part = import_paced(
            store,
            &source,
            now,
            options,
            &mut |_| {},
            &mut *pacing,
            before,
        )?;
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
