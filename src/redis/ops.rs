//! The store operations on Redis: reads are one GET; writes read, decide, and
//! compare-and-set in a Lua script.

use std::collections::HashSet;
use std::sync::Arc;

use redis::{Connection, RedisResult, Value};
use uuid::Uuid;

use super::errors::OTHER_PROGRAM;
use super::scripts::{CLEAR_AUTH, PUT, REVOKE};
use super::tracking;
use super::{CAS_ATTEMPTS, RedisBackend, pxat_ms};
use crate::cache::CacheStats;
use crate::cache::entry::CachedLookup;
use crate::error::{Error, Result};
use crate::feed::kind::RevocationKind;
use crate::record::codec::CookieView;
use crate::record::codec::materialise;
use crate::record::cookie::{
    Auth, AuthChange, AuthOutcome, AuthUpdate, Cookie, Lookup, create_with,
};
use crate::record::reader::RecordReader;
use crate::record::value;
use crate::stats::{RedisStats, Stats};

/// One item of the revoke script.
pub(super) struct Item {
    pub(super) key: String,
    pub(super) set_key: String,
    /// The bytes the record must still hold (empty: it must be absent).
    pub(super) expected: Vec<u8>,
    /// Revoke (delete and append to the feed), else only drop the authid-set member.
    pub(super) revoke: bool,
    pub(super) oid: Uuid,
    pub(super) value: String,
    /// Whether to drop `value` from `set_key`.
    pub(super) unlink: bool,
}

/// The oid a record's bytes are stored under, for errors about it.
fn oid_hint(bytes: &[u8]) -> Uuid {
    CookieView::new(bytes)
        .ok()
        .and_then(|v| v.oid())
        .unwrap_or_else(Uuid::nil)
}

fn corrupt(key: &str, bytes: &[u8], problem: String) -> Error {
    Error::CorruptRecord {
        oid: oid_hint(bytes),
        problem: format!("{problem} (Redis key {key:?})"),
    }
}

/// `e`, met after `n` cookies of a clear were deleted: says so (they stay deleted).
fn deleted_before(e: Error, n: u64) -> Error {
    if n == 0 {
        return e;
    }
    let note = format!(
        "; {n} cookie(s) were deleted before this (each with its feed entry, and they stay \
         deleted), the rest were not"
    );
    match e {
        Error::Redis { location, problem } => Error::Redis {
            location,
            problem: problem + &note,
        },
        Error::Unavailable { location, problem } => Error::Unavailable {
            location,
            problem: problem + &note,
        },
        other => other,
    }
}

impl RedisBackend {
    /// A compare-and-set that kept finding the record changed.
    pub(super) fn contended(&self, operation: &str) -> Error {
        Error::Redis {
            location: self.location().to_string(),
            problem: format!(
                "cannot {operation}: the record kept changing under {CAS_ATTEMPTS} attempts"
            ),
        }
    }

    /// `e`, or, when it is Redis's WRONGTYPE for the authid set `key`, what the scripts say
    /// of it (`CHECKS` in `scripts.rs`): what it holds and what to do.
    fn not_a_set(&self, e: Error, key: &str) -> Error {
        let Error::Redis { problem, .. } = &e else {
            return e;
        };
        if !problem.contains("WRONGTYPE") {
            return e;
        }
        let found = self
            .run(|con| redis::cmd("TYPE").arg(key).query::<String>(con))
            .unwrap_or_else(|_| "value of another type".to_string());
        Error::Redis {
            location: self.location().to_string(),
            problem: format!(
                "the key {key} holds a {found}, not the set of an authid's cookies: \
                 {OTHER_PROGRAM}; nothing was changed; delete it (DEL), then log that authid \
                 out (logout_authid): while its set is missing, that walks every cookie, so \
                 none of its cookies is left out of the set that its next login makes"
            ),
        }
    }

    /// The record bytes stored for `value`, live or not.
    pub(crate) fn record(&self, value: &str) -> Result<Option<Vec<u8>>> {
        if value::check(value).is_err() {
            return Ok(None); // no such key can exist
        }
        let key = self.cookie_key(value);
        self.run(|con| redis::cmd("GET").arg(&key).query(con))
    }

    /// The live cookie `value` through this process's cache (`tracking.rs`); `None` when
    /// there is no cache.
    pub(crate) fn cached_lookup(
        &self,
        value: &str,
        now: u64,
    ) -> Option<Result<Option<Arc<CachedLookup>>>> {
        let tracking = self.tracking.as_ref()?;
        Some(tracking.lookup(&self.pool, value, now, || self.read_entry(value, now)))
    }

    /// The cache's answer alone, when it can give one now (no round trip).
    pub(crate) fn cached_answer(&self, value: &str, now: u64) -> Option<Option<Arc<CachedLookup>>> {
        self.tracking.as_ref()?.cached(value, now)
    }

    /// Figures about this process's cache (all 0 without one).
    pub(crate) fn cache_stats(&self) -> CacheStats {
        self.tracking
            .as_ref()
            .map(|t| t.stats())
            .unwrap_or_default()
    }

    /// One GET: the cache entry of the live cookie `value`.
    fn read_entry(&self, value: &str, now: u64) -> Result<Option<CachedLookup>> {
        self.with_live_record(value, now, CachedLookup::from_record)
    }

    /// One GET: `f` of the record of `value` (and its oid) when the cookie is live at `now`;
    /// `None` when it is absent or expired. A record that cannot be read is
    /// [`Error::CorruptRecord`].
    pub(crate) fn with_live_record<R>(
        &self,
        value: &str,
        now: u64,
        f: impl FnOnce(Uuid, &RecordReader<'_>) -> Result<R>,
    ) -> Result<Option<R>> {
        let Some(bytes) = self.record(value)? else {
            return Ok(None);
        };
        let oid = oid_hint(&bytes);
        let corrupt = |problem| Error::CorruptRecord { oid, problem };
        let record = RecordReader::new(&bytes).map_err(corrupt)?;
        if !record.value_is(value).map_err(corrupt)?
            || now >= record.expires_at().map_err(corrupt)?
        {
            return Ok(None);
        }
        f(oid, &record).map(Some)
    }

    pub(crate) fn exists(&self, value: &str, now: u64) -> Result<bool> {
        if let Some(found) = self.cached_lookup(value, now) {
            return Ok(found?.is_some());
        }
        Ok(self
            .record(value)?
            .is_some_and(|b| CookieView::new(&b).is_ok_and(|v| !v.is_expired(now))))
    }

    /// The cookie with `value`, expired ones too (by the store's clock; Redis has dropped
    /// those past their expiry by its own).
    pub(crate) fn get_any(&self, value: &str) -> Result<Option<Cookie>> {
        match self.record(value)? {
            Some(bytes) => self.decode(value, &bytes).map(Some),
            None => Ok(None),
        }
    }

    /// The cookie in the record `bytes` stored under `value`.
    pub(crate) fn decode(&self, value: &str, bytes: &[u8]) -> Result<Cookie> {
        let view =
            CookieView::new(bytes).map_err(|p| corrupt(&self.cookie_key(value), bytes, p))?;
        let oid = view.oid().unwrap_or_else(Uuid::nil);
        materialise(oid, view)
    }

    pub(crate) fn get(&self, value: &str, now: u64) -> Result<Option<Cookie>> {
        Ok(self.get_any(value)?.filter(|c| !c.is_expired(now)))
    }

    pub(crate) fn get_auth(&self, value: &str, now: u64) -> Result<Option<Auth>> {
        if let Some(found) = self.cached_lookup(value, now) {
            return match found? {
                Some(entry) => entry.to_auth(),
                None => Ok(None),
            };
        }
        Ok(self.lookup(value, now)?.and_then(|l| l.auth))
    }

    pub(crate) fn lookup(&self, value: &str, now: u64) -> Result<Option<Lookup>> {
        if let Some(found) = self.cached_lookup(value, now) {
            return found?.map(|entry| entry.to_lookup()).transpose();
        }
        let Some(bytes) = self.record(value)? else {
            return Ok(None);
        };
        let key = self.cookie_key(value);
        let view = CookieView::new(&bytes).map_err(|p| corrupt(&key, &bytes, p))?;
        if view.is_expired(now) {
            return Ok(None);
        }
        let oid = view.oid().unwrap_or_else(Uuid::nil);
        Ok(Some(Lookup {
            oid,
            expires_at: view.expires_at(),
            max_age: view.max_age(),
            auth: view
                .auth()
                .map_err(|problem| Error::CorruptRecord { oid, problem })?,
        }))
    }

    /// The live cookie with `oid`: walks every key (Redis keys cookies by value only).
    pub(crate) fn get_by_oid(&self, oid: Uuid, now: u64) -> Result<Option<Cookie>> {
        let mut found = None;
        self.for_each_record(|batch| {
            for (key, bytes) in batch {
                if let Ok(view) = CookieView::new(&bytes)
                    && view.oid() == Some(oid)
                    && !view.is_expired(now)
                {
                    found = Some(
                        materialise(oid, view)
                            .map_err(|_| corrupt(&key, &bytes, "cannot be decoded".into()))?,
                    );
                }
            }
            Ok(true)
        })?;
        Ok(found)
    }

    /// Every record (see [`CookieStore::for_each_record`](crate::CookieStore)).
    pub(crate) fn for_each_cookie(
        &self,
        f: &mut dyn FnMut(Result<Cookie>) -> Result<bool>,
    ) -> Result<()> {
        let mut go_on = true;
        self.for_each_record(|batch| {
            for (key, bytes) in batch {
                if !go_on {
                    break;
                }
                let item = CookieView::new(&bytes)
                    .map_err(|p| corrupt(&key, &bytes, p))
                    .and_then(|view| materialise(view.oid().unwrap_or_else(Uuid::nil), view));
                go_on = f(item)?;
            }
            Ok(go_on)
        })
    }

    pub(crate) fn count(&self, now: u64) -> Result<u64> {
        let mut n = 0;
        self.for_each_record(|batch| {
            n += batch
                .iter()
                .filter(|(_, b)| CookieView::new(b).is_ok_and(|v| !v.is_expired(now)))
                .count() as u64;
            Ok(true)
        })?;
        Ok(n)
    }

    /// The cookie figures (records, live, expired by the store's clock and not yet dropped
    /// by Redis, authenticated, corrupt, oldest/newest, next expiry) from a walk over every
    /// cookie key, and Redis's own: the feed's length and last entry, the eviction policy.
    pub(crate) fn stats(&self, now: u64) -> Result<Stats> {
        let mut s = Stats::default();
        self.for_each_record(|batch| {
            for (_, bytes) in batch {
                s.count_record(&bytes, now);
            }
            Ok(true)
        })?;
        let (last_revocation, _) = self.last_revocation()?;
        s.redis = Some(RedisStats {
            feed_entries: self.feed_len()?,
            last_revocation,
            maxmemory_policy: self.eviction_policy()?.ok(),
            cache_problem: self.tracking.as_ref().and_then(|t| t.problem()),
        });
        Ok(s)
    }

    /// Creates a cookie: `SET key record NX PXAT expiry`; a value that exists draws again.
    pub(crate) fn create(
        &self,
        name: &str,
        length: usize,
        max_age: u64,
        now: u64,
    ) -> Result<Cookie> {
        self.pool.within_deadline(|| {
            create_with(name, length, max_age, now, |cookie| {
                let bytes = cookie.encode()?;
                let key = self.cookie_key(&cookie.value);
                let at = pxat_ms(cookie.expires_at());
                let set: Option<String> = self.run(|con| {
                    redis::cmd("SET")
                        .arg(&key)
                        .arg(&bytes)
                        .arg("NX")
                        .arg("PXAT")
                        .arg(at)
                        .query(con)
                })?;
                Ok(set.is_some())
            })
        })
    }

    /// Runs `write` on a pooled connection. When its outcome says it changed or deleted a
    /// cookie (`wrote`), on that same connection: when the store requires replicas'
    /// acknowledgements (`min_replicas_acked`), `WAIT`s (it counts the replicas that have
    /// every write of its connection) and fails with [`Error::NotReplicated`] when fewer
    /// acknowledged; and reads the caches' lease (`tracking.rs`), waited out before this
    /// returns when a process caches, so that none answers from an entry older than the
    /// change after it returned.
    pub(super) fn run_replicated<T>(
        &self,
        wrote: impl Fn(&T) -> bool,
        mut write: impl FnMut(&mut Connection) -> RedisResult<T>,
    ) -> Result<T> {
        let lease_key = tracking::lease_key(&self.prefix);
        let (out, acked, lease) = self.run(|con| {
            let out = write(con)?;
            if !wrote(&out) {
                return Ok((out, None, Value::Nil));
            }
            let acked = match self.replicas {
                Some((wanted, timeout_ms)) => Some(
                    redis::cmd("WAIT")
                        .arg(wanted)
                        .arg(timeout_ms)
                        .query::<u64>(con)?,
                ),
                None => None,
            };
            let lease: Value = redis::cmd("GET").arg(&lease_key).query(con)?;
            Ok((out, acked, lease))
        })?;
        if let Some(wait) = tracking::writer_wait(&lease) {
            std::thread::sleep(wait);
        }
        match (acked, self.replicas) {
            (Some(acked), Some((wanted, timeout_ms))) if acked < u64::from(wanted) => {
                Err(Error::NotReplicated {
                    location: self.location().to_string(),
                    acked,
                    wanted: u64::from(wanted),
                    timeout_ms,
                })
            }
            _ => Ok(out),
        }
    }

    /// Runs the PUT script; returns 1 written, 0 changed meanwhile, -1 gone. With
    /// `replicated`, a write waits for the replicas ([`Self::run_replicated`]).
    fn put_cas(
        &self,
        cookie: &Cookie,
        bytes: &[u8],
        expected: &[u8],
        keep_ttl: bool,
        replicated: bool,
    ) -> Result<i64> {
        let key = self.cookie_key(&cookie.value);
        let set_key = cookie.authid.as_deref().map(|a| self.authid_key(a));
        let expiry = if keep_ttl {
            "keep".to_string()
        } else {
            pxat_ms(cookie.expires_at()).to_string()
        };
        let wrote = |n: &i64| replicated && *n == 1;
        self.run_replicated(wrote, |con| {
            let mut inv = PUT.prepare_invoke();
            inv.key(&key);
            if let Some(set_key) = &set_key {
                inv.key(set_key);
            }
            inv.arg(expected)
                .arg(&expiry)
                .arg(bytes)
                .arg(&cookie.value)
                .invoke(con)
        })
    }

    /// Applies `change` (checked by the caller) to the live cookie with `value`: a
    /// compare-and-set that never extends its lifetime (KEEPTTL) and says
    /// [`AuthUpdate::NoSuchCookie`] when the key is gone, also when it vanished between the
    /// read and the write. A clear drops the value from its old authid's set. Redis has no
    /// cache to tell, so the feed gets no entry.
    pub(crate) fn change_auth(
        &self,
        value: &str,
        change: AuthChange<'_>,
        now: u64,
    ) -> Result<AuthUpdate> {
        self.pool.within_deadline(|| {
            for _ in 0..CAS_ATTEMPTS {
                let Some(old) = self.record(value)? else {
                    return Ok(AuthUpdate::NoSuchCookie);
                };
                let key = self.cookie_key(value);
                let view = CookieView::new(&old).map_err(|p| corrupt(&key, &old, p))?;
                if view.is_expired(now) {
                    return Ok(AuthUpdate::NoSuchCookie);
                }
                let oid = view.oid().unwrap_or_else(Uuid::nil);
                let record = materialise(oid, view)?;
                let (cookie, old_authid) = match change.apply(Some(record), now) {
                    AuthOutcome::Done(update) => return Ok(update),
                    AuthOutcome::Write { cookie, old_authid } => (cookie, old_authid),
                };
                let bytes = cookie.encode()?;
                let done = match change {
                    AuthChange::Set(..) => self.put_cas(&cookie, &bytes, &old, true, true)?,
                    AuthChange::Clear => {
                        let set_key = self.authid_key(old_authid.as_deref().unwrap_or_default());
                        self.run_replicated(
                            |n: &i64| *n == 1,
                            |con| {
                                CLEAR_AUTH
                                    .key(&key)
                                    .key(&set_key)
                                    .arg(&old[..])
                                    .arg(&bytes[..])
                                    .arg(value)
                                    .invoke(con)
                            },
                        )?
                    }
                };
                match done {
                    1 => return Ok(AuthUpdate::Written),
                    -1 => return Ok(AuthUpdate::NoSuchCookie),
                    _ => continue, // changed meanwhile: read again
                }
            }
            Err(self.contended(match change {
                AuthChange::Set(..) => "set auth",
                AuthChange::Clear => "clear auth",
            }))
        })
    }

    /// Stores a whole record under its value (restore, import), expiring at its expiry. A
    /// value held by a record with another oid is refused ([`Error::DuplicateValue`]).
    pub(crate) fn put(&self, cookie: &Cookie) -> Result<()> {
        self.pool.within_deadline(|| {
            cookie.check_storable()?;
            let bytes = cookie.encode()?;
            for _ in 0..CAS_ATTEMPTS {
                let old = self.record(&cookie.value)?.unwrap_or_default();
                same_oid_or_none(cookie.oid, &cookie.value, &old)?;
                if self.put_cas(cookie, &bytes, &old, false, false)? == 1 {
                    return Ok(());
                }
            }
            Err(self.contended("put a cookie"))
        })
    }

    /// Runs the revoke script over `items` (all or none); returns the number revoked, or
    /// `None` when a record changed meanwhile.
    pub(super) fn revoke(
        &self,
        kind: RevocationKind,
        now: u64,
        items: &[Item],
    ) -> Result<Option<u64>> {
        if items.is_empty() {
            return Ok(Some(0));
        }
        let stream = self.stream_key();
        let head = self.head_key();
        // The entries' tags: fresh random bits from the OS for each call (see `feed.rs`).
        let tag_base = Uuid::new_v4().simple().to_string();
        let n: i64 = self.run_replicated(
            |n: &i64| *n > 0,
            |con| {
                let mut inv = REVOKE.prepare_invoke();
                inv.key(&stream).key(&head);
                for item in items {
                    inv.key(&item.key).key(&item.set_key);
                }
                inv.arg(self.stream_max)
                    .arg(now)
                    .arg(kind.code())
                    .arg(&stream)
                    .arg(&tag_base);
                for item in items {
                    inv.arg(&item.expected[..])
                        .arg(if item.revoke { "r" } else { "u" })
                        .arg(item.oid.to_string())
                        .arg(&item.value)
                        .arg(if item.unlink { "1" } else { "0" });
                }
                inv.invoke(con)
            },
        )?;
        Ok((n >= 0).then_some(n as u64))
    }

    /// The revoke item for the record `bytes` stored under `value`.
    pub(super) fn revoke_item(&self, value: &str, bytes: Vec<u8>) -> Item {
        let view = CookieView::new(&bytes).ok();
        let authid = view.as_ref().and_then(|v| v.authid()).map(str::to_string);
        Item {
            key: self.cookie_key(value),
            set_key: self.authid_key(authid.as_deref().unwrap_or("")),
            oid: oid_hint(&bytes),
            value: value.to_string(),
            unlink: authid.is_some(),
            expected: bytes,
            revoke: true,
        }
    }

    /// Logs out one cookie (expired or not): deletes it and appends to the feed, atomically.
    pub(crate) fn delete(&self, value: &str, now: u64) -> Result<bool> {
        self.pool.within_deadline(|| {
            for _ in 0..CAS_ATTEMPTS {
                let Some(bytes) = self.record(value)? else {
                    return Ok(false);
                };
                let item = self.revoke_item(value, bytes);
                if self.revoke(RevocationKind::Logout, now, &[item])?.is_some() {
                    return Ok(true);
                }
            }
            Err(self.contended("delete a cookie"))
        })
    }

    /// Logs out every cookie whose record carries `authid`: reads the authid set and the
    /// records, then deletes those that carry it and drops the stale members, in one script
    /// (all or none; read again when a record changed meanwhile).
    ///
    /// The set is trusted only when it exists and Redis cannot evict it: when it is missing
    /// (the user has no cookie, or the set was lost) or eviction is allowed (an evicted set
    /// may have been made again by a later login, holding only that cookie), every cookie
    /// is walked as well, so that no cookie of the user is left.
    pub(crate) fn logout_authid(&self, authid: &str, now: u64) -> Result<u64> {
        self.pool.within_deadline(|| {
            let set_key = self.authid_key(authid);
            let prefix_len = self.cookie_key("").len();
            for _ in 0..CAS_ATTEMPTS {
                let members: Vec<String> = self
                    .run(|con| redis::cmd("SMEMBERS").arg(&set_key).query(con))
                    .map_err(|e| self.not_a_set(e, &set_key))?;
                let mut items = Vec::with_capacity(members.len());
                if !members.is_empty() {
                    let keys: Vec<String> = members.iter().map(|m| self.cookie_key(m)).collect();
                    let records: Vec<Option<Vec<u8>>> =
                        self.run(|con| redis::cmd("MGET").arg(&keys).query(con))?;
                    for ((member, key), bytes) in members.iter().zip(keys).zip(records) {
                        let bytes = bytes.unwrap_or_default();
                        let carries =
                            CookieView::new(&bytes).is_ok_and(|v| v.authid() == Some(authid));
                        items.push(Item {
                            key,
                            set_key: set_key.clone(),
                            oid: oid_hint(&bytes),
                            value: member.clone(),
                            unlink: true,
                            expected: bytes,
                            revoke: carries,
                        });
                    }
                }
                if members.is_empty() || self.allow_eviction {
                    let known: HashSet<&str> = members.iter().map(String::as_str).collect();
                    let mut found = Vec::new();
                    self.for_each_record(|batch| {
                        for (key, bytes) in batch {
                            let Some(value) = key.get(prefix_len..) else {
                                continue; // SCAN MATCH gives the prefix: never here
                            };
                            if !known.contains(value)
                                && CookieView::new(&bytes).is_ok_and(|v| v.authid() == Some(authid))
                            {
                                found.push(Item {
                                    set_key: set_key.clone(),
                                    oid: oid_hint(&bytes),
                                    value: value.to_string(),
                                    unlink: true,
                                    expected: bytes,
                                    revoke: true,
                                    key,
                                });
                            }
                        }
                        Ok(true)
                    })?;
                    items.extend(found);
                }
                if items.is_empty() {
                    return Ok(0);
                }
                if let Some(n) = self.revoke(RevocationKind::Authid, now, &items)? {
                    return Ok(n);
                }
            }
            Err(self.contended("log out an authid"))
        })
    }

    /// Deletes every cookie (each a maintenance revocation); returns how many. Each walked
    /// batch is one script (all or none); a batch in which a record changed meanwhile is
    /// done again one script per cookie. An error ends it, saying how many were deleted
    /// before (those stay deleted, each with its feed entry).
    pub(crate) fn clear(&self, now: u64) -> Result<u64> {
        let mut batches = Vec::new();
        self.for_each_record(|batch| {
            batches.push(batch);
            Ok(true)
        })?;
        let prefix_len = self.cookie_key("").len();
        let mut n = 0;
        for batch in batches {
            let items: Vec<Item> = batch
                .into_iter()
                .filter_map(|(key, bytes)| {
                    let value = key.get(prefix_len..)?.to_string();
                    Some(self.revoke_item(&value, bytes))
                })
                .collect();
            if let Some(done) = self
                .revoke(RevocationKind::Maintenance, now, &items)
                .map_err(|e| deleted_before(e, n))?
            {
                n += done;
                continue;
            }
            for item in items {
                n += self
                    .revoke(RevocationKind::Maintenance, now, &[item])
                    .map_err(|e| deleted_before(e, n))?
                    .unwrap_or(0);
            }
        }
        Ok(n)
    }
}

/// `Ok` when `old` (the record now under `value`; empty: none) is absent, undecodable or the
/// record of `oid`; else [`Error::DuplicateValue`]: a put never replaces another
/// cookie's record that has the same value.
pub(super) fn same_oid_or_none(oid: Uuid, value: &str, old: &[u8]) -> Result<()> {
    if !old.is_empty()
        && let Ok(view) = CookieView::new(old)
        && let Some(existing) = view.oid()
        && existing != oid
    {
        return Err(Error::DuplicateValue {
            value: value.to_string(),
            existing,
        });
    }
    Ok(())
}
