//! The revocation feed: every logout, in commit order, for the other processes of a host,
//! and every other change that can alter a cached answer.
//!
//! Each write that logs a cookie out — [`CookieStore::delete`], [`Batch::delete_oid`],
//! [`CookieStore::logout_authid`] — and each deletion by maintenance ([`CookieStore::clear`],
//! [`repair`](crate::maintenance::repair)) appends a [`Revocation`] in the same transaction,
//! under the next sequence number. A process learns of revocations made anywhere by polling
//! ([`Subscriber`], or [`Watcher`] on a thread) and then closes its own connections of those
//! cookies (found in its [`Connections`] registry).
//!
//! The feed also carries the changes that are not revocations
//! ([`RevocationKind::revokes`] is false; the [`Watcher`] skips them): an auth change, a
//! record replaced whole, a purge, and a flush (another program's write, found by the next
//! cookiestore commit; a repair). The per-process cache (`cache.rs`) reads them to stay
//! exact. On Redis the feed holds revocations only.
//!
//! **Expiry is not a revocation.** An expired cookie is absent for new connections, but live
//! sessions that authenticated with it are not cut: nothing is appended when a cookie
//! expires, and a purge appends one [`RevocationKind::Purged`] entry. Deletions made by
//! other programs (cfxdb, Crossbar.io) are not itemized: the next cookiestore commit
//! appends one [`RevocationKind::Flush`].
//!
//! Entries older than [`StoreOptions::revocation_retention_secs`](crate::StoreOptions)
//! (default 10 minutes) are trimmed by [`CookieStore::purge_expired`]; a reader asking for
//! entries already trimmed gets [`Revocations::missed`] = true (it should then treat every
//! session as suspect, e.g. re-check each connection's cookie with [`CookieStore::exists`]).
//!
//! Layout: key slot + sequence (`u64` BE); value `at_ns` (`u64` BE), kind (1 byte), oid (16
//! bytes), cookie value (UTF-8, the rest). The highest trimmed sequence number is kept in the
//! store state.

pub(crate) mod connections;

use std::collections::HashSet;
use std::hash::Hash;
use std::ops::Bound;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use uuid::Uuid;

use crate::error::{Error, LmdbResult, Result};
use crate::feed::connections::Connections;
use crate::lmdb::batch::Batch;
use crate::lmdb::layout::{RevocationEntry, SlotPrefix, StateKey};
use crate::lmdb::snapshot::Snapshot;
use crate::lmdb::tables::Tables;
use crate::store::{CookieStore, Growth};

/// Why a cookie was revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum RevocationKind {
    /// A logout of one cookie (delete by value or by oid).
    Logout,
    /// A logout of every cookie of an authid ([`CookieStore::logout_authid`]).
    Authid,
    /// A deletion by maintenance (clear, repair).
    Maintenance,
    /// Not a revocation: the cookie's authentication changed (set or cleared). Its
    /// connections stay; caches drop their answer for it.
    Auth,
    /// Not a revocation: the record was replaced whole ([`CookieStore::put`]: restore,
    /// import, an edit); any field, max_age included, may have changed.
    Replaced,
    /// Not a revocation: a purge deleted every cookie that expired at or before `at_ns`
    /// (value empty, oid nil).
    Purged,
    /// Not a revocation: changes the feed cannot itemize (another program wrote, a repair
    /// rebuilt the indexes); caches drop everything (value empty, oid nil).
    Flush,
}

impl RevocationKind {
    pub(crate) fn code(self) -> u8 {
        match self {
            RevocationKind::Logout => 1,
            RevocationKind::Authid => 2,
            RevocationKind::Maintenance => 3,
            RevocationKind::Auth => 4,
            RevocationKind::Replaced => 5,
            RevocationKind::Purged => 6,
            RevocationKind::Flush => 7,
        }
    }

    pub(crate) fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            1 => RevocationKind::Logout,
            2 => RevocationKind::Authid,
            3 => RevocationKind::Maintenance,
            4 => RevocationKind::Auth,
            5 => RevocationKind::Replaced,
            6 => RevocationKind::Purged,
            7 => RevocationKind::Flush,
            _ => return None,
        })
    }

    /// The kebab-case name, as in the JSON form.
    pub fn as_str(self) -> &'static str {
        match self {
            RevocationKind::Logout => "logout",
            RevocationKind::Authid => "authid",
            RevocationKind::Maintenance => "maintenance",
            RevocationKind::Auth => "auth",
            RevocationKind::Replaced => "replaced",
            RevocationKind::Purged => "purged",
            RevocationKind::Flush => "flush",
        }
    }

    /// Whether the cookie was revoked (logout, logout by authid, deletion by maintenance):
    /// its live connections should be closed. The other kinds only tell caches what
    /// changed.
    pub fn revokes(self) -> bool {
        matches!(
            self,
            RevocationKind::Logout | RevocationKind::Authid | RevocationKind::Maintenance
        )
    }
}

/// One entry of the revocation feed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct Revocation {
    /// Its sequence number (the first is 1; each commit appends in increasing order).
    pub seq: u64,
    /// When it was revoked (ns, the writer's clock).
    pub at_ns: u64,
    /// Why.
    pub kind: RevocationKind,
    /// The revoked cookie's value (empty when its record could not be decoded).
    pub value: String,
    /// The revoked cookie's oid.
    pub oid: Uuid,
}

/// What [`CookieStore::revocations_since`] found.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
#[non_exhaustive]
pub struct Revocations {
    /// The entries after the given sequence number, in order.
    pub entries: Vec<Revocation>,
    /// The sequence number to ask after next time (the last one seen).
    pub next: u64,
    /// Whether entries after the given sequence number were already trimmed (the reader fell
    /// behind the retention window and missed some revocations). On Redis also when the
    /// feed lost entries the reader had not read, or is not the history it read (see
    /// [`Subscriber`]).
    pub missed: bool,
}

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
    /// [`CookieStore::revocations_since`].
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

impl CookieStore {
    /// The revocations with a sequence number greater than `after` (0: all retained ones),
    /// and whether some of those were already trimmed (on Redis also: whether the feed is
    /// shorter than `after`, having started over). Pass [`Revocations::next`] next time;
    /// a [`Subscriber`] does that and, on Redis, also notices a feed that went back in time.
    pub fn revocations_since(&self, after: u64) -> Result<Revocations> {
        #[cfg(feature = "redis")]
        if let Some(redis) = self.redis() {
            return redis.revocations_since(after);
        }
        self.read(|s| s.revocations_since(after))
    }

    /// Trims the revocations older than `retention_secs`; returns how many. Writes only
    /// when there is something to trim.
    pub(crate) fn trim_revocations(&self, retention_secs: u64) -> Result<u64> {
        let cutoff = self
            .now_ns()
            .saturating_sub(crate::clock::secs_to_ns(retention_secs));
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
        self.batch_with("trim the revocation feed", Growth::Headroom, |b| {
            b.trim_revocations(cutoff)
        })
    }

    /// The id of the environment's last committed transaction (any process), without a
    /// transaction; `None` for a store that is not on LMDB.
    pub(crate) fn last_txn_id(&self) -> Option<u64> {
        let shared = self.shared()?;
        let env = shared.env.here()?;
        // Not while this process resizes the map (the meta pages are read from it).
        let _g = shared.resize.read().unwrap_or_else(|e| e.into_inner());
        Some(env.info().last_txn_id as u64)
    }

    /// The highest sequence number of the LMDB revocation feed (0 when empty), and the id
    /// of the transaction it was read in.
    fn last_revocation(&self) -> Result<(u64, Option<u64>)> {
        self.snapshot(|s| Ok((s.last_revocation()?, Some(s.txn.id() as u64))))
    }

    /// [`revocations_since`](Self::revocations_since) on LMDB, and the id of the
    /// transaction it read.
    fn revocations_read_in(&self, after: u64) -> Result<(Revocations, Option<u64>)> {
        self.read(|s| Ok((s.revocations_since(after)?, Some(s.txn.id() as u64))))
    }
}

impl crate::store::Shared {
    /// The id of the environment's last committed transaction, without a transaction;
    /// `None` at once while this process resizes the map, and outside the process that
    /// opened the environment (before any of its locks is taken).
    #[inline]
    pub(crate) fn last_txn_id_now(&self) -> Option<u64> {
        let env = self.env.here()?;
        let _g = self.resize.try_read().ok()?;
        Some(env.info().last_txn_id as u64)
    }
}

/// A per-process reader of the revocation feed that remembers where it is.
///
/// [`poll`](Self::poll) returns what was appended since the last poll. When no transaction
/// was committed since (LMDB's last transaction id is unchanged), it returns nothing without
/// opening a transaction: polling an idle store often is cheap. On Redis each poll is one
/// round trip (a script that reads the stream after the position), and the subscriber also
/// checks that the feed is still the history it read: when Redis lost the feed or went
/// back to older data (restarted without persistence or from an older snapshot, flushed,
/// failed over to a replica that lagged), `missed` is set (see `src/redis/feed.rs`).
#[derive(Debug)]
pub struct Subscriber {
    store: CookieStore,
    next: u64,
    seen_txn: Option<u64>,
    reads: u64,
    /// Redis: the tag the entry after `next` must name as its predecessor (`None`: not
    /// known yet, as after [`Self::starting_after`]).
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    anchor: Option<String>,
    /// Redis: the end of the feed could not be read when this subscriber was made; the
    /// first poll that reaches Redis starts there and reports a miss.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    start_pending: bool,
}

impl Subscriber {
    /// A subscriber that starts at the end of the feed: it sees revocations made from now.
    ///
    /// On Redis it is made also while Redis cannot be reached (or a lazily opened store
    /// refuses it: [`Error::RedisSetting`], [`Error::NewerStore`]): its first poll that
    /// reaches Redis then starts at the end of the feed and reports `missed` (revocations
    /// made before that poll are not known to it: re-check the connections made meanwhile).
    pub fn new(store: &CookieStore) -> Result<Subscriber> {
        #[cfg(feature = "redis")]
        if let Some(redis) = store.redis() {
            let (next, anchor, start_pending) = match redis.last_revocation() {
                Ok((next, anchor)) => (next, Some(anchor), false),
                Err(
                    Error::Unavailable { .. }
                    | Error::RedisSetting { .. }
                    | Error::NewerStore { .. },
                ) => (0, None, true),
                Err(e) => return Err(e),
            };
            return Ok(Subscriber {
                store: store.clone(),
                next,
                seen_txn: None,
                reads: 1,
                anchor,
                start_pending,
            });
        }
        let (next, seen) = store.last_revocation()?;
        Ok(Subscriber {
            store: store.clone(),
            next,
            seen_txn: seen,
            reads: 1,
            anchor: None,
            start_pending: false,
        })
    }

    /// A subscriber that starts after sequence number `after` (0: every retained entry).
    /// On Redis, a number alone cannot show whether the feed went back in time before the
    /// first poll (only whether it is now shorter than `after`, or trimmed); from its first
    /// poll on, the subscriber checks that too.
    pub fn starting_after(store: &CookieStore, after: u64) -> Subscriber {
        Subscriber {
            store: store.clone(),
            next: after,
            seen_txn: None,
            reads: 0,
            anchor: None,
            start_pending: false,
        }
    }

    /// The revocations appended since the last poll. `missed` is true when some were
    /// trimmed before this subscriber read them, and on Redis also when the feed is not
    /// the history this subscriber read (the entries are then every retained one).
    pub fn poll(&mut self) -> Result<Revocations> {
        #[cfg(feature = "redis")]
        if let Some(redis) = self.store.redis() {
            self.reads += 1;
            if self.start_pending {
                let (next, anchor) = redis.last_revocation()?;
                self.next = next;
                self.anchor = Some(anchor);
                self.start_pending = false;
                return Ok(Revocations {
                    entries: Vec::new(),
                    next,
                    missed: true,
                });
            }
            let (found, anchor) = redis.revocations_after(self.next, self.anchor.as_deref())?;
            self.next = found.next;
            self.anchor = Some(anchor);
            return Ok(found);
        }
        // The meta page can show a commit before readers get its snapshot (LMDB publishes
        // the id to readers after writing, and syncing, the meta page), so what is
        // remembered is the id of the snapshot read, never the meta page's.
        let txn = self.store.last_txn_id();
        if txn.is_some() && self.seen_txn == txn {
            return Ok(Revocations {
                entries: Vec::new(),
                next: self.next,
                missed: false,
            });
        }
        self.reads += 1;
        let (found, read_in) = self.store.revocations_read_in(self.next)?;
        self.next = found.next;
        self.seen_txn = read_in;
        Ok(found)
    }

    /// The sequence number this subscriber reads after.
    pub fn position(&self) -> u64 {
        self.next
    }

    /// How many read transactions this subscriber has opened (polls that found no new
    /// commit open none).
    pub fn reads(&self) -> u64 {
        self.reads
    }
}

/// What a [`Watcher`] reports to its callback.
#[derive(Debug)]
#[non_exhaustive]
pub enum WatchEvent<H> {
    /// Cookies were revoked: the entries, and this process's connections of those cookies
    /// (from the registry, each once).
    Revoked {
        /// The feed entries that revoke ([`RevocationKind::revokes`]).
        revocations: Vec<Revocation>,
        /// The local connections of the revoked cookies.
        connections: Vec<H>,
    },
    /// Revocations were trimmed before this process read them: some connections of revoked
    /// cookies may be unknown. Re-check every connection's cookie.
    Missed,
    /// Polling failed (it is retried at the next interval).
    Failed(Error),
}

/// Polls the revocation feed on a thread and reports the local connections of revoked
/// cookies. Stops (and joins its thread) when dropped.
///
/// Its thread does not survive `fork()`: in a child, a watcher inherited from the parent
/// does nothing (dropping it there does not wait for the thread), and its store refuses
/// calls ([`Error::ForkedProcess`]); start one in the child, on a store opened there.
#[derive(Debug)]
pub struct Watcher {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    /// The process whose thread it is.
    opener: crate::fork::Opener,
}

impl Watcher {
    /// The default poll interval: 100 ms.
    pub const DEFAULT_INTERVAL: Duration = Duration::from_millis(100);

    /// Starts watching `store` from the end of its feed: every `interval`, polls once and
    /// calls `callback` with what it found (nothing when nothing was revoked). On Redis it
    /// also wakes at once when a revocation is published, and after a lost connection it
    /// reconnects and catches up from its position (or reports [`WatchEvent::Missed`]).
    pub fn spawn<H, F>(
        store: &CookieStore,
        registry: Arc<Connections<H>>,
        interval: Duration,
        mut callback: F,
    ) -> Result<Watcher>
    where
        H: Clone + Eq + Hash + Send + Sync + 'static,
        F: FnMut(WatchEvent<H>) + Send + 'static,
    {
        let mut subscriber = Subscriber::new(store)?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        #[cfg(feature = "redis")]
        let redis = store.redis().map(|_| store.clone());
        let thread = std::thread::Builder::new()
            .name("cookiestore-watcher".into())
            .spawn(move || {
                let mut report =
                    |found: Result<Revocations>| deliver(found, &registry, &mut callback);
                #[cfg(feature = "redis")]
                if let Some(store) = redis {
                    let redis = store.redis().expect("a Redis store");
                    return crate::redis::watch::run(
                        redis,
                        &mut subscriber,
                        &flag,
                        interval,
                        &mut report,
                    );
                }
                while !flag.load(Ordering::Acquire) {
                    report(subscriber.poll());
                    std::thread::park_timeout(interval);
                }
            })
            .map_err(Error::Io)?;
        Ok(Watcher {
            stop,
            thread: Some(thread),
            opener: crate::fork::Opener::current(),
        })
    }
}

/// Reports one poll's outcome to a watcher's callback: the revoked entries with this
/// process's connections of them (each once), a miss, or the failure.
fn deliver<H, F>(found: Result<Revocations>, registry: &Connections<H>, callback: &mut F)
where
    H: Clone + Eq + Hash + Send,
    F: FnMut(WatchEvent<H>),
{
    match found {
        Ok(found) => {
            if found.missed {
                callback(WatchEvent::Missed);
            }
            let revocations: Vec<Revocation> = found
                .entries
                .into_iter()
                .filter(|e| e.kind.revokes())
                .collect();
            if !revocations.is_empty() {
                let mut seen = HashSet::new();
                let mut connections = Vec::new();
                for entry in &revocations {
                    for handle in registry.connections(&entry.value) {
                        if seen.insert(handle.clone()) {
                            connections.push(handle);
                        }
                    }
                }
                callback(WatchEvent::Revoked {
                    revocations,
                    connections,
                });
            }
        }
        Err(e) => callback(WatchEvent::Failed(e)),
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        if !self.opener.is_current() {
            // A child of fork(): the thread is the parent's and does not exist here, so a
            // join would wait forever. What it holds is left as it is.
            std::mem::forget(self.thread.take());
            return;
        }
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}
