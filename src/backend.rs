//! The seam: what a backend implements, once, for [`CookieStore`](crate::CookieStore) to
//! dispatch to.
//!
//! A backend is one folder (`lmdb/`, `redis/`) with one type that implements [`Backend`].
//! The façade (`store.rs`) holds an `Arc<dyn Backend>` and calls it in one place per
//! operation; everything that is the same on every backend is written once, above this
//! trait (the façade, `maintenance/`, `feed/subscriber.rs`) or below it in `record/` (what
//! an auth change does to a record, the draw loop of a new cookie, expiry, the lookup's
//! field reader). What a backend does differently (transactions or round trips, its key
//! layout, its feed) stays inside its folder.
//!
//! The trait speaks in records ([`Cookie`], [`Lookup`]) and feed entries ([`Revocations`]).
//! Maintenance that moves cookies in and out (export, restore, `cookies.dat` import, another
//! store's records: `maintenance/json_lines.rs`, `legacy_import.rs`, `store_import.rs`) goes
//! through it too: its loops, summaries and mark rules are written once there, over a few
//! storage steps of each backend: [`Backend::export_scan`] (the records and import marks to
//! export), [`Backend::require_empty`], [`Backend::pacing`] (how many items one write may
//! take), [`Backend::maintenance_read`] (a [`MaintenanceView`]: LMDB's snapshot, Redis's
//! reads) and [`Backend::maintenance_write`] (a [`MaintenanceTxn`]: one LMDB write
//! transaction, or Redis's round trips). Checking and repairing are LMDB's alone
//! (`maintenance/check.rs`, `repair.rs` take an [`LmdbStore`](crate::LmdbStore)).
//!
//! Writes reach a backend only on a writable handle: the façade refuses them on a
//! read-only one ([`Error::ReadOnly`](crate::Error::ReadOnly)) before it dispatches.

use std::any::Any;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use uuid::Uuid;

use crate::cache::CacheStats;
use crate::cache::entry::CachedLookup;
use crate::clock::Clock;
use crate::config::location::Location;
use crate::error::Result;
use crate::feed::revocation::Revocations;
use crate::health::Health;
use crate::record::codec::Encoded;
use crate::record::cookie::{Auth, AuthChange, AuthUpdate, Cookie, Lookup};
use crate::record::mark::{Mark, ValueDigest};
use crate::record::reader::RecordReader;
use crate::stats::Stats;

/// A live cookie as [`Backend::with_live`] shows it.
pub(crate) enum Live<'a> {
    /// Its record, borrowed, with its object id.
    Record(Uuid, &'a RecordReader<'a>),
    /// This process's cached answer (LMDB with a cache), shared.
    Cached(&'a CachedLookup),
}

/// A store's backend: one implementation per folder (see the module docs).
pub(crate) trait Backend: Send + Sync + 'static {
    // ---- the handle ----------------------------------------------------------------------

    /// Where the store is.
    fn location(&self) -> &Location;

    /// The backend's name, as [`CookieStore::backend`](crate::CookieStore::backend) gives
    /// it: `"lmdb"`, `"redis"`.
    fn name(&self) -> &'static str;

    /// Whether this handle is read-only.
    fn is_readonly(&self) -> bool;

    /// The current time according to the handle's clock (ns).
    fn now_ns(&self) -> u64;

    /// The same store seen through another clock.
    fn with_clock(&self, clock: Arc<dyn Clock>) -> Arc<dyn Backend>;

    /// The handle as [`Any`], so that the façade can hand out a backend's own tools
    /// ([`CookieStore::as_lmdb`](crate::CookieStore::as_lmdb)).
    fn as_any(&self) -> &dyn Any;

    /// Whether calls reach the store now: see [`Health`]. No round trip.
    fn health(&self) -> Health {
        Health::always()
    }

    /// Whether the open left connecting for later (a Redis store opened with
    /// `connect_lazily`): the façade then calls [`Self::connect`] on a thread of its own.
    fn opened_lazily(&self) -> bool {
        false
    }

    /// Makes the connection an open left for later, and runs what the open would have
    /// checked; nothing on a backend that opened at once.
    fn connect(&self) -> Result<()> {
        Ok(())
    }

    // ---- reads ---------------------------------------------------------------------------

    /// Whether a live cookie has `value`.
    fn exists(&self, value: &str) -> Result<bool>;

    /// The live cookie with `value`, every field.
    fn get(&self, value: &str) -> Result<Option<Cookie>>;

    /// The live cookie with object id `oid`.
    fn get_by_oid(&self, oid: Uuid) -> Result<Option<Cookie>>;

    /// Calls `f` once with the live cookie of `value` as cheaply as the backend can show it
    /// ([`Live`]): this process's cached answer, shared, when a cache holds it or takes it
    /// now; else the record, borrowed (LMDB's map inside one read transaction, Redis's reply
    /// to one GET). Not at all when there is no live cookie with `value`. What the borrowed
    /// reads (`lazy.rs`) are written over.
    fn with_live(&self, value: &str, f: &mut dyn FnMut(Live<'_>) -> Result<()>) -> Result<()>;

    /// The live cookie with `value` as a lookup sees it.
    fn lookup(&self, value: &str) -> Result<Option<Lookup>>;

    /// The authentication of the live cookie with `value`.
    fn get_auth(&self, value: &str) -> Result<Option<Auth>>;

    /// [`Self::lookup`] from this process's cache alone, when it can answer (see
    /// [`CookieStore::lookup_cached`](crate::CookieStore::lookup_cached)); `None` without a
    /// cache.
    fn cached_entry(&self, _value: &str) -> Option<Option<Arc<CachedLookup>>> {
        None
    }

    /// Figures about this process's cache of the store (all 0 without one).
    fn cache_stats(&self) -> CacheStats {
        CacheStats::default()
    }

    /// Live cookies.
    fn count(&self) -> Result<u64>;

    /// Calls `f` with every record (see
    /// [`CookieStore::for_each_record`](crate::CookieStore::for_each_record)).
    fn for_each_record(&self, f: &mut dyn FnMut(Result<Cookie>) -> Result<bool>) -> Result<()>;

    /// Figures about the store.
    fn stats(&self) -> Result<Stats>;

    // ---- writes --------------------------------------------------------------------------

    /// Creates a cookie with a fresh value (`record::cookie::create_with` is the draw loop).
    fn create(&self, name: &str, length: usize, max_age: u64) -> Result<Cookie>;

    /// Applies `change` to the live cookie with `value` (`AuthChange::apply` decides).
    fn change_auth(&self, value: &str, change: AuthChange<'_>) -> Result<AuthUpdate>;

    /// Deletes the cookie with `value`, a logout in the feed.
    fn delete(&self, value: &str) -> Result<bool>;

    /// Stores a whole record.
    fn put(&self, cookie: &Cookie) -> Result<()>;

    /// Deletes every cookie that carries `authid`, each a revocation.
    fn logout_authid(&self, authid: &str) -> Result<u64>;

    /// Deletes what has expired, and the feed's entries older than `feed_cutoff` (ns).
    fn purge_expired(&self, feed_cutoff: u64) -> Result<u64>;

    /// Deletes every cookie.
    fn clear(&self) -> Result<u64>;

    // ---- maintenance (`maintenance/`) ----------------------------------------------------

    /// Every record, in oid order, to `record` (one that cannot be decoded as
    /// [`Error::CorruptRecord`](crate::Error) naming where it is), then every import mark
    /// (SHA-256 of the value, expiry in ns; `u64::MAX`: never), in digest order, to `mark`.
    /// Returns the transaction read (LMDB: one snapshot for both; Redis: 0, its walk is not
    /// one snapshot). An error from `record` or `mark` ends the scan with it.
    fn export_scan(
        &self,
        record: &mut dyn FnMut(Result<Cookie>) -> Result<()>,
        mark: &mut dyn FnMut(ValueDigest, u64) -> Result<()>,
    ) -> Result<u64>;

    /// `Ok` when the store holds no record at all (expired and undecodable ones count);
    /// else [`Error::NotEmpty`](crate::Error::NotEmpty).
    fn require_empty(&self) -> Result<()>;

    /// How a maintenance operation's writes are sized, at most `max` items each: LMDB by
    /// time (`lmdb/pacing.rs`), so that routers never wait long for its writer lock; Redis
    /// a fixed number (`redis/migrate.rs`: each write is one transaction, which Redis runs
    /// without serving anyone else).
    fn pacing(&self, max: usize) -> Box<dyn Pacing>;

    /// How many threads a restore writes each batch on at once, each with its own share of
    /// the values (a value's lines all in one share, in file order): LMDB 1 (one writer at
    /// a time); Redis 2 (`redis/migrate.rs`: while Redis runs one share's transaction, the
    /// other share's next one is prepared).
    fn write_lanes(&self) -> usize;

    /// Calls `f` with a view of the store: LMDB's one snapshot; Redis's reads, batched by
    /// [`MaintenanceView::prefetch`] (not one snapshot).
    fn maintenance_read(
        &self,
        f: &mut dyn FnMut(&mut dyn MaintenanceView) -> Result<()>,
    ) -> Result<()>;

    /// Calls `f` with one write (`f` may be called again should it have to be retried),
    /// written when `f` returns `Ok`: on LMDB one write transaction, flushed as `kind` says;
    /// on Redis the reads `f` makes (batched by [`MaintenanceView::prefetch`]), then its
    /// puts and marks as one script and its deletions as another, each all or nothing and
    /// compared with what `f` read (`f` runs again, with fresh reads, when a record changed
    /// meanwhile). The façade checks that the handle is writable first.
    fn maintenance_write(
        &self,
        operation: &'static str,
        kind: WriteKind,
        f: &mut dyn FnMut(&mut dyn MaintenanceTxn) -> Result<()>,
    ) -> Result<()>;

    // ---- the feed ------------------------------------------------------------------------

    /// The feed's entries after `after`, checked by sequence number only.
    fn revocations_since(&self, after: u64) -> Result<Revocations>;

    /// A position at the end of the feed: where a new subscriber starts.
    fn feed_end(&self) -> Result<FeedPosition>;

    /// What was appended after `position`, which moves on past it.
    fn feed_poll(&self, position: &mut FeedPosition) -> Result<Revocations>;

    /// A watcher's loop: until `stop`, `poll` once per `interval`, and hand each outcome to
    /// `deliver`. A backend that can wake at once on an append (Redis: a channel) does so.
    fn watch(
        &self,
        poll: &mut dyn FnMut() -> Result<Revocations>,
        stop: &AtomicBool,
        interval: Duration,
        deliver: &mut dyn FnMut(Result<Revocations>),
    ) {
        while !stop.load(Ordering::Acquire) {
            deliver(poll());
            std::thread::park_timeout(interval);
        }
    }
}

/// How a maintenance write is flushed and how far it may grow the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WriteKind {
    /// Cookies and marks an import or restore writes: flushed lazily (a re-run brings back
    /// what a power cut lost), and may grow the store up to its maximum size.
    Import,
    /// Logouts: flushed as every logout, within the room kept for deletions.
    Logout,
}

/// How many items each maintenance write takes (see [`Backend::pacing`]).
pub(crate) trait Pacing: Send {
    /// Runs one write with `f`, given how many items it may take at most; the pacing may
    /// run it again with fewer (LMDB, after a full map or disk).
    fn run(&mut self, f: &mut dyn FnMut(usize) -> Result<()>) -> Result<()>;
}

/// Runs `f` on consecutive chunks of `items`, one write each, sized by `pacing`.
pub(crate) fn chunks<'i, I>(
    pacing: &mut dyn Pacing,
    items: &'i [I],
    mut f: impl FnMut(&'i [I]) -> Result<()>,
) -> Result<()> {
    let mut rest = items;
    while !rest.is_empty() {
        let mut taken = 0;
        pacing.run(&mut |limit| {
            taken = limit.min(rest.len());
            f(&rest[..taken])
        })?;
        rest = &rest[taken..];
    }
    Ok(())
}

/// What [`MaintenanceView::prefetch`] reads ahead of each value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Prefetch {
    /// Its record: for a step that reads no import mark (a restore).
    Records,
    /// Its record and its import mark (imports, which skip marked values).
    RecordsAndMarks,
}

/// What maintenance reads of a store (see [`Backend::maintenance_read`]). Records are read
/// expired or not; one that cannot be decoded is [`Error::CorruptRecord`](crate::Error).
pub(crate) trait MaintenanceView {
    /// Says which values the reads that follow will name, so that a backend that pays a
    /// round trip per read (Redis) reads them ahead, in batches. Reads of other values
    /// still work. Nothing on LMDB (its reads are in memory).
    fn prefetch(&mut self, _values: &mut dyn Iterator<Item = &str>, _what: Prefetch) -> Result<()> {
        Ok(())
    }

    /// The stored record that a record with `oid` and `value` would replace: the one with
    /// its oid on LMDB, the one with its value on Redis (which keys records by value).
    fn counterpart(&mut self, oid: Uuid, value: &str) -> Result<Option<Cookie>>;

    /// The stored record with `value`.
    fn get_any_by_value(&mut self, value: &str) -> Result<Option<Cookie>>;

    /// The import mark of `value`.
    fn mark_of(&mut self, value: &str) -> Result<Mark>;
}

/// One maintenance write (see [`Backend::maintenance_write`]).
pub(crate) trait MaintenanceTxn: MaintenanceView {
    /// Stores a whole record ([`Error::DuplicateValue`](crate::Error) when another cookie
    /// holds its value, [`Error::InvalidValue`](crate::Error) when it cannot be stored:
    /// both refused before anything was written).
    fn put(&mut self, cookie: &Cookie) -> Result<()> {
        self.put_encoded(&Encoded::of(cookie)?)
    }

    /// [`Self::put`] of a record the caller has encoded already (a restore, which never
    /// builds the JSON values of its records). Refused as [`Self::put`].
    fn put_encoded(&mut self, record: &Encoded) -> Result<()>;

    /// Stores `cookie` with its import mark (until its expiry). Refused as [`Self::put`];
    /// where both cannot be one transaction (Redis), the mark goes first: should the put
    /// then fail, a re-run skips the cookie rather than ever bringing back a logged-out one.
    fn put_imported(&mut self, cookie: &Cookie) -> Result<()>;

    /// Marks `value` as imported until `expires` (ns), unless its mark already lasts as
    /// long; replaces an unhashed mark.
    fn mark(&mut self, value: &str, expires: u64) -> Result<()>;

    /// Marks the value whose SHA-256 is `digest` until `expires`, unless its mark already
    /// lasts as long.
    fn mark_digest(&mut self, digest: &ValueDigest, expires: u64) -> Result<()>;

    /// Deletes the cookie with `value` (a logout in the feed); whether there was one.
    fn delete(&mut self, value: &str) -> Result<bool>;
}

/// Where a reader of the feed is: what [`Backend::feed_poll`] reads after.
#[derive(Debug, Clone, Default)]
pub(crate) struct FeedPosition {
    /// The sequence number read up to.
    pub(crate) next: u64,
    /// What the entry after `next` must name as its predecessor, when the backend can lose
    /// its feed's history (Redis: a tag; see `redis/feed.rs`); `None`: not known yet.
    pub(crate) anchor: Option<String>,
    /// The backend's mark of the state last read, so that a poll of an unchanged store reads
    /// nothing (LMDB: a transaction id).
    pub(crate) seen: Option<u64>,
    /// Reads made (polls that found the store unchanged make none).
    pub(crate) reads: u64,
}
