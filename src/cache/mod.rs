//! The per-process cache of live cookies' lookups, never stale.
//!
//! One cache per store and process, bounded in bytes: per LMDB environment (it lives in
//! the environment's `Shared`; [`StoreOptions::cache_bytes`](crate::StoreOptions::cache_bytes)),
//! and per Redis store with `redis_cache_bytes` (`redis/tracking.rs` keeps it current by
//! Redis's invalidation messages and a lease, not by the feed). It holds what
//! [`CookieStore::lookup`](crate::CookieStore::lookup) answers for live cookies, keyed by
//! cookie value, and serves `lookup`, `get_auth`, `exists` and `lookup_cached`.
//!
//! **Never stale.** The cache is current as of one LMDB snapshot (its transaction id). A
//! lookup first compares that id with the environment's last committed transaction id (a
//! read of the meta page in the shared memory map, no transaction). When they match,
//! nothing was committed since and the cached answer stands, its expiry checked against
//! the caller's clock. When they differ, the cache catches up in one read transaction: it
//! reads the feed entries appended since its position (every change that can alter an
//! answer appends one, see `feed/mod.rs`) and drops what they name, then answers from
//! that same snapshot. A whole flush happens when the feed says so
//! (`RevocationKind::Flush`), when entries were trimmed before the cache read them, and
//! when the snapshot's last commit was not made by cookiestore (another program wrote).
//!
//! Only live cookies are cached (an unknown value always reads the store). While the budget
//! has room, a missed cookie is cached at once; once it is full, only on its second miss
//! within a window of about as many misses as there are entries (a direct-mapped table of
//! recent misses), so that uniform access to many more cookies than fit costs a read per
//! miss and no churn. Eviction is CLOCK (second chance): a hit marks its entry, the hand
//! skips marked entries once.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex};

pub(crate) mod entry;

use crate::error::Result;
use crate::feed::kind::RevocationKind;
use crate::feed::revocation::Revocations;
use entry::CachedLookup;

/// What the cache reads from one snapshot of the store (`lookup.rs` implements it for
/// [`Snapshot`](crate::Snapshot)).
pub(crate) trait CacheView {
    /// The snapshot's transaction id.
    fn txn_id(&self) -> u64;
    /// The time the snapshot judges expiry by (ns).
    fn now_ns(&self) -> u64;
    /// The sequence number of the feed's last entry.
    fn last_revocation(&self) -> Result<u64>;
    /// The feed's entries after `after`.
    fn revocations_since(&self, after: u64) -> Result<Revocations>;
    /// Whether the snapshot's last commit was made by another program.
    fn foreign_writes(&self) -> Result<bool>;
}

/// Figures about an LMDB store's per-process cache
/// ([`LmdbStore::cache_stats`](crate::LmdbStore::cache_stats)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[non_exhaustive]
pub struct CacheStats {
    /// The byte budget ([`StoreOptions::cache_bytes`](crate::StoreOptions::cache_bytes); 0:
    /// no cache).
    pub capacity_bytes: u64,
    /// Cookies cached now.
    pub entries: u64,
    /// Their estimated size in bytes (never above `capacity_bytes`).
    pub bytes: u64,
    /// Lookups answered from the cache.
    pub hits: u64,
    /// Lookups that read the store.
    pub misses: u64,
    /// Times the cache caught up with commits made since it last looked.
    pub catch_ups: u64,
    /// Entries dropped because a change named them.
    pub invalidated: u64,
    /// Times every entry was dropped (a flush entry, missed feed entries, another
    /// program's write).
    pub flushes: u64,
    /// Entries evicted to stay within the budget.
    pub evicted: u64,
}

impl CacheStats {
    /// Hits over lookups (0 when there was none).
    pub fn hit_rate(&self) -> f64 {
        let all = self.hits + self.misses;
        if all == 0 {
            0.0
        } else {
            self.hits as f64 / all as f64
        }
    }
}

/// An entry larger than this share of the budget is not cached.
const LARGEST_SHARE: usize = 8;
/// Estimated bytes of an entry besides its heap chunks: its slot (40, ~60 with a growing
/// vector's slack) and index bucket (24, ~48 with the table's slack and control bytes).
const SLOT_OVERHEAD: usize = 108;
/// Fewest slots of the table of recent misses (it has as many as there are entries).
const DOORKEEPER_MIN: usize = 4096;

struct Slot {
    value: Box<str>,
    lookup: Arc<CachedLookup>,
    size: usize,
    referenced: bool,
}

#[derive(Default)]
struct State {
    /// The snapshot (transaction id) the cache is current as of; `None` before its first
    /// catch-up.
    txn: Option<u64>,
    /// The feed position (last sequence number applied).
    next: u64,
    index: HashMap<Box<str>, usize>,
    slots: Vec<Slot>,
    hand: usize,
    /// Hashes of recently missed values, direct-mapped (0: empty).
    recent: Vec<u64>,
    hasher: RandomState,
    stats: CacheStats,
    /// Counts the invalidations applied ([`Cache::invalidate`], [`Cache::flush`]): a
    /// lookup read from Redis is cached only when none came since it was asked for.
    invalidations: u64,
}

/// The cache of one environment in this process.
pub(crate) struct Cache {
    capacity: usize,
    state: Mutex<State>,
}

impl Cache {
    pub(crate) fn new(capacity_bytes: u64) -> Cache {
        let capacity = usize::try_from(capacity_bytes).unwrap_or(usize::MAX);
        Cache {
            capacity,
            state: Mutex::new(State {
                stats: CacheStats {
                    capacity_bytes,
                    ..CacheStats::default()
                },
                ..State::default()
            }),
        }
    }

    pub(crate) fn enabled(&self) -> bool {
        self.capacity > 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic elsewhere while holding the lock leaves a consistent map (every mutation
        // completes before any call that can panic); empty it anyway, to be sure.
        self.state.lock().unwrap_or_else(|e| {
            let mut state = e.into_inner();
            state.flush();
            state.txn = None;
            state.invalidations += 1;
            state
        })
    }

    pub(crate) fn stats(&self) -> CacheStats {
        let state = self.lock();
        CacheStats {
            entries: state.slots.len() as u64,
            ..state.stats
        }
    }

    /// The answer for `value` from the cache when nothing was committed since it caught up
    /// (`last_txn` is the environment's last transaction id); `None` when the store must be
    /// read. `Some(None)`: the cached cookie has expired at `now`.
    pub(crate) fn hit(
        &self,
        value: &str,
        last_txn: u64,
        now: u64,
    ) -> Option<Option<Arc<CachedLookup>>> {
        let mut state = self.lock();
        if state.txn != Some(last_txn) {
            return None;
        }
        state.answer(value, now)
    }

    /// Catches up with `snap` and answers for `value` from it, caching a live cookie.
    /// `read` is the uncached lookup in that snapshot.
    pub(crate) fn read_through<V: CacheView>(
        &self,
        snap: &V,
        value: &str,
        read: impl FnOnce(&V) -> Result<Option<CachedLookup>>,
    ) -> Result<Option<Arc<CachedLookup>>> {
        let mut state = self.lock();
        let txn = snap.txn_id();
        if state.txn.is_some_and(|current| txn < current) {
            // Another thread caught the cache up past this snapshot while this one waited for
            // the lock: answer from this snapshot and touch nothing (what it reads may be
            // older than changes the cache has already applied).
            state.stats.misses += 1;
            drop(state);
            return Ok(read(snap)?.map(Arc::new));
        }
        if state.txn != Some(txn)
            && let Err(e) = state.catch_up(snap, txn)
        {
            // Whatever was applied, the position may not be: start over next time.
            state.flush();
            state.txn = None;
            return Err(e);
        }
        if let Some(&i) = state.index.get(value) {
            state.stats.hits += 1;
            let slot = &mut state.slots[i];
            if snap.now_ns() >= slot.lookup.expires_at {
                return Ok(None);
            }
            slot.referenced = true;
            return Ok(Some(slot.lookup.clone()));
        }
        state.stats.misses += 1;
        let Some(lookup) = read(snap)? else {
            return Ok(None);
        };
        let lookup = Arc::new(lookup);
        let full = state.stats.bytes as usize + entry_size(value, &lookup) > self.capacity;
        if !full || state.admit(value) {
            state.insert(self.capacity, value, lookup.clone());
        }
        Ok(Some(lookup))
    }
}

/// What `redis/tracking.rs` keeps current: the cache answers whatever it holds (the
/// caller decides when it may ask), drops what Redis's invalidation messages name, and
/// takes a lookup read from Redis only when no invalidation was applied since the read
/// was asked for.
impl Cache {
    /// The answer for `value` from what the cache holds; `None` when it holds nothing for
    /// it. `Some(None)`: the cached cookie has expired at `now`.
    pub(crate) fn answer(&self, value: &str, now: u64) -> Option<Option<Arc<CachedLookup>>> {
        self.lock().answer(value, now)
    }

    /// The number of invalidations applied so far, for [`Self::fill`].
    pub(crate) fn invalidations(&self) -> u64 {
        self.lock().invalidations
    }

    /// Caches `lookup` of `value`, read from the store after [`Self::invalidations`] said
    /// `since`, unless an invalidation was applied since (it may have named `value`, and
    /// the read may predate it). Counts a miss.
    pub(crate) fn fill(&self, since: u64, value: &str, lookup: CachedLookup) -> Arc<CachedLookup> {
        let lookup = Arc::new(lookup);
        let mut state = self.lock();
        state.stats.misses += 1;
        // Another thread may have cached `value` meanwhile (from a read as current as this
        // one): a second slot for it would be an orphan that a later move could point the
        // index at, with whatever it held.
        if state.invalidations == since && !state.index.contains_key(value) {
            let full = state.stats.bytes as usize + entry_size(value, &lookup) > self.capacity;
            if !full || state.admit(value) {
                state.insert(self.capacity, value, lookup.clone());
            }
        }
        lookup
    }

    /// Counts a lookup that read the store without caching.
    pub(crate) fn count_miss(&self) {
        self.lock().stats.misses += 1;
    }

    /// Drops the entries of `values` (cookies changed or deleted).
    pub(crate) fn invalidate<'a>(&self, values: impl IntoIterator<Item = &'a str>) {
        let mut state = self.lock();
        state.invalidations += 1;
        for value in values {
            state.remove(value);
        }
    }

    /// Drops every entry.
    pub(crate) fn flush(&self) {
        let mut state = self.lock();
        state.invalidations += 1;
        state.flush();
    }
}

impl State {
    /// A hit: the entry of `value` (marked referenced), `Some(None)` when it expired at
    /// `now`; `None` when there is none.
    fn answer(&mut self, value: &str, now: u64) -> Option<Option<Arc<CachedLookup>>> {
        let slot = *self.index.get(value)?;
        self.stats.hits += 1;
        let slot = &mut self.slots[slot];
        if now >= slot.lookup.expires_at {
            return Some(None);
        }
        slot.referenced = true;
        Some(Some(slot.lookup.clone()))
    }

    fn catch_up(&mut self, snap: &impl CacheView, txn: u64) -> Result<()> {
        self.stats.catch_ups += 1;
        if self.txn.is_none() {
            self.flush();
            self.next = snap.last_revocation()?;
        } else {
            let found = snap.revocations_since(self.next)?;
            if found.missed {
                self.flush();
            }
            for entry in &found.entries {
                match entry.kind {
                    RevocationKind::Flush => self.flush(),
                    RevocationKind::Purged => self.remove_expired(entry.at_ns),
                    _ => self.remove(&entry.value),
                }
            }
            self.next = found.next;
        }
        if snap.foreign_writes()? {
            self.flush();
        }
        self.txn = Some(txn);
        Ok(())
    }

    /// Whether a missed `value` is cached when the budget is full: on its second miss while
    /// its slot of the table of recent misses still holds it.
    fn admit(&mut self, value: &str) -> bool {
        if self.recent.is_empty() {
            self.recent = vec![0; self.slots.len().max(DOORKEEPER_MIN)];
        }
        let hash = self.hasher.hash_one(value) | 1;
        let n = self.recent.len();
        let slot = &mut self.recent[(hash >> 32) as usize % n];
        if *slot == hash {
            *slot = 0;
            true
        } else {
            *slot = hash;
            false
        }
    }

    fn flush(&mut self) {
        if !self.slots.is_empty() {
            self.stats.flushes += 1;
        }
        self.index.clear();
        self.slots.clear();
        self.hand = 0;
        self.stats.bytes = 0;
    }

    fn remove(&mut self, value: &str) {
        if let Some(i) = self.index.remove(value) {
            self.stats.invalidated += 1;
            self.remove_slot(i);
        }
    }

    /// Drops the entries that expire at or before `at_ns` (a purge at that time deleted
    /// their records).
    fn remove_expired(&mut self, at_ns: u64) {
        let mut i = 0;
        while i < self.slots.len() {
            if self.slots[i].lookup.expires_at <= at_ns {
                self.index.remove(&self.slots[i].value);
                self.stats.invalidated += 1;
                self.remove_slot(i);
            } else {
                i += 1;
            }
        }
    }

    /// Removes slot `i` (its index entry is gone already), moving the last slot into it.
    fn remove_slot(&mut self, i: usize) {
        let slot = self.slots.swap_remove(i);
        self.stats.bytes -= slot.size as u64;
        if let Some(moved) = self.slots.get(i)
            && let Some(at) = self.index.get_mut(&moved.value)
        {
            *at = i;
        }
        if self.hand >= self.slots.len() {
            self.hand = 0;
        }
    }

    fn insert(&mut self, capacity: usize, value: &str, lookup: Arc<CachedLookup>) {
        let size = entry_size(value, &lookup);
        if size > capacity / LARGEST_SHARE {
            return;
        }
        while self.stats.bytes as usize + size > capacity && !self.slots.is_empty() {
            self.evict_one();
        }
        let value: Box<str> = value.into();
        self.index.insert(value.clone(), self.slots.len());
        self.slots.push(Slot {
            value,
            lookup,
            size,
            referenced: false,
        });
        self.stats.bytes += size as u64;
    }

    fn evict_one(&mut self) {
        loop {
            if self.hand >= self.slots.len() {
                self.hand = 0;
            }
            let slot = &mut self.slots[self.hand];
            if slot.referenced {
                slot.referenced = false;
                self.hand += 1;
                continue;
            }
            let value = slot.value.clone();
            self.index.remove(&value);
            self.stats.evicted += 1;
            self.remove_slot(self.hand);
            return;
        }
    }
}

/// What an entry costs in memory, estimated as the allocator sees it: its slot and index
/// bucket (with the slack of growth), the value twice (slot and index key), the shared entry
/// and its one buffer (auth strings and authextra's CBOR). `benches/store.rs`
/// (`memory/1M/ours_cached`) and `python/bench/bench_stores.py` compare the budget with the
/// process's real private memory.
fn entry_size(value: &str, lookup: &CachedLookup) -> usize {
    // The `Arc`'s chunk: two counts and the entry.
    const SHARED: usize = 16 + std::mem::size_of::<CachedLookup>();
    SLOT_OVERHEAD + chunk(SHARED) + chunk(lookup.buf_len()) + 2 * chunk(value.len())
}

/// Bytes of a heap allocation of `len` bytes: a 16-byte-aligned chunk with an 8-byte header,
/// 32 at least (glibc's malloc).
fn chunk(len: usize) -> usize {
    if len == 0 {
        0
    } else {
        (len + 8).div_ceil(16).max(2) * 16
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::reader::AuthFields;
    use uuid::Uuid;

    fn lookup(expires_at: u64) -> Arc<CachedLookup> {
        let alice = AuthFields {
            authid: "alice",
            authrole: Some("user"),
            authmethod: Some("ticket"),
            authrealm: Some("realm1"),
            authextra: &[],
        };
        Arc::new(CachedLookup::new(Uuid::new_v4(), expires_at, 60, Some(&alice)).unwrap())
    }

    #[test]
    fn stays_within_its_budget_and_keeps_referenced_entries() {
        let one = entry_size("v0000", &lookup(10));
        let mut state = State::default();
        let capacity = one * 10;
        for i in 0..10 {
            state.insert(capacity, &format!("v{i:04}"), lookup(10));
        }
        assert_eq!(state.slots.len(), 10);
        state.slots[state.index["v0003"]].referenced = true;
        for i in 10..15 {
            state.insert(capacity, &format!("v{i:04}"), lookup(10));
            assert!(state.stats.bytes as usize <= capacity);
        }
        assert_eq!(state.slots.len(), 10);
        assert_eq!(state.stats.evicted, 5);
        assert!(
            state.index.contains_key("v0003"),
            "a referenced entry was evicted first"
        );
        for (value, &i) in &state.index {
            assert_eq!(&*state.slots[i].value, &**value, "index and slots disagree");
        }
    }

    #[test]
    fn removals_keep_index_and_slots_in_step() {
        let mut state = State::default();
        for i in 0..50u64 {
            state.insert(usize::MAX, &format!("v{i}"), lookup(i));
        }
        state.remove("v7");
        state.remove("v49");
        state.remove("missing");
        state.remove_expired(20);
        assert_eq!(state.slots.len(), 50 - 21 - 1);
        assert_eq!(state.stats.invalidated, 2 + 20);
        for (value, &i) in &state.index {
            assert_eq!(&*state.slots[i].value, &**value);
            assert!(state.slots[i].lookup.expires_at > 20);
        }
        let total: u64 = state.slots.iter().map(|s| s.size as u64).sum();
        assert_eq!(state.stats.bytes, total);
    }

    #[test]
    fn a_cookie_is_admitted_on_its_second_miss() {
        let mut state = State::default();
        assert!(!state.admit("a"));
        assert!(!state.admit("b"));
        assert!(state.admit("a"));
        assert!(!state.admit("a"), "admitted twice from one pair of misses");
        // Uniform misses over many more cookies than slots: few are admitted.
        let admitted = (0..100_000)
            .filter(|i| state.admit(&format!("v{}", i % 50_000)))
            .count();
        assert!(admitted < 5_000, "{admitted} admitted");
    }

    #[test]
    fn two_fills_of_one_value_keep_one_entry() {
        // Two threads that missed the same cookie fill it with the same `since`: one slot,
        // or an orphan slot outlives the cookie's invalidation and can come back when a
        // removal moves it (seen as a stale answer in tests/redis_cache.rs's race test).
        let cache = Cache::new(1 << 20);
        let since = cache.invalidations();
        let entry = || Arc::try_unwrap(lookup(u64::MAX)).unwrap();
        cache.fill(since, "x", entry());
        cache.fill(since, "x", entry());
        cache.fill(since, "y", entry());
        assert_eq!(cache.stats().entries, 2);
        cache.invalidate(["x"]);
        assert!(cache.answer("x", 0).is_none());
        // Removing the rest moves slots around: "x" never answers again.
        cache.invalidate(["y"]);
        let since = cache.invalidations();
        cache.fill(since, "z", entry());
        cache.invalidate(["z"]);
        assert!(cache.answer("x", 0).is_none());
        assert_eq!(cache.stats().entries, 0);
    }

    #[test]
    fn an_entry_over_an_eighth_of_the_budget_is_not_cached() {
        let mut state = State::default();
        let size = entry_size("v", &lookup(1));
        state.insert(size * LARGEST_SHARE - 1, "v", lookup(1));
        assert!(state.slots.is_empty());
        state.insert(size * LARGEST_SHARE, "v", lookup(1));
        assert_eq!(state.slots.len(), 1);
    }
}
