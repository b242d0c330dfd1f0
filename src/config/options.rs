//! How a store is opened: [`StoreOptions`] (Crossbar.io's database store options, plus the
//! Redis and cache ones), and what an LMDB commit flushes ([`Durability`]).
//!
//! The options are one flat struct, as Crossbar.io writes a `store` object; each backend
//! reads its own fields (LMDB: `maxsize` ... `cache_bytes`; Redis: `key_prefix` ...
//! `connect_lazily`). [`StoreSection::keys`](crate::StoreSection::keys) reads the key list
//! from the parser.

use std::sync::Arc;

use serde::Deserialize;

use crate::clock::{Clock, SystemClock};
use crate::config::location::{Location, RedisLocation, check_key_prefix};
use crate::error::{Error, Result};

/// Smallest allowed `maxsize`: 128 KiB.
pub const MIN_MAXSIZE: u64 = 128 * 1024;
/// Largest allowed `maxsize`: 128 GiB.
pub const MAX_MAXSIZE: u64 = 128 * 1024 * 1024 * 1024;
/// Default `maxsize`: 1 GiB, as Crossbar.io's database store.
pub const DEFAULT_MAXSIZE: u64 = 1024 * 1024 * 1024;
/// Default revocation retention: 10 minutes.
pub const DEFAULT_REVOCATION_RETENTION_SECS: u64 = 600;
/// Default timeout of a Redis store's connects, reads and writes: 2 s.
pub const DEFAULT_TIMEOUT_MS: u64 = 2_000;
/// Default cap of a Redis store's revocation stream (entries, approximately).
pub const DEFAULT_REVOCATION_STREAM_MAX: u64 = 100_000;
/// Default budget of the per-process cache: 10 MiB.
pub const DEFAULT_CACHE_BYTES: u64 = 10 * 1024 * 1024;
/// Default size the map starts at (it doubles on demand up to `maxsize`): 64 MiB.
pub const DEFAULT_INITIAL_MAPSIZE: u64 = 64 * 1024 * 1024;

/// How to open a [`CookieStore`](crate::CookieStore): Crossbar.io's database store options,
/// set with builder methods.
///
/// ```
/// use cookiestore::StoreOptions;
/// let options = StoreOptions::default().readonly(true).maxsize(64 << 20);
/// assert!(options.validate().is_ok());
/// assert!(StoreOptions::default().maxsize(1).validate().is_err());
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct StoreOptions {
    /// Largest size the memory map (and so the database) may grow to, in bytes:
    /// 128 KiB to 128 GiB, default 1 GiB.
    pub maxsize: u64,
    /// Size the map starts at when the database is smaller; it doubles on demand up to
    /// `maxsize`. Default 64 MiB (or `maxsize`, when smaller).
    pub initial_mapsize: u64,
    /// Open for reading only: every write returns [`Error::ReadOnly`]. Default false.
    pub readonly: bool,
    /// Flush to disk at every commit (crash-safe). With false a system crash may lose the
    /// last commits, never consistency. Default true. With true, [`durability`](Self::durability)
    /// says which commits are flushed and how; with false, none is ([`Durability::None`]).
    pub sync: bool,
    /// Which commits are flushed to disk when [`sync`](Self::sync) is on: by default
    /// ([`Durability::SafeLazyCreates`]) every commit but a new cookie's meta page, so that
    /// logouts, deletions and auth changes survive a power cut the moment they return.
    pub durability: Durability,
    /// Purge expired cookies when the store is opened. Default false. (Crossbar's database
    /// store wipes every cookie here; that is [`CookieStore::clear`](crate::CookieStore::clear).)
    pub purge_on_startup: bool,
    /// Permission bits for the store's files when they are created. Default `0o600`.
    pub file_mode: u32,
    /// How long a revocation (logout) stays in the revocation feed, in seconds, before
    /// [`CookieStore::purge_expired`](crate::CookieStore::purge_expired) trims it. A
    /// subscriber that falls further behind learns that it missed entries. Default 600.
    pub revocation_retention_secs: u64,
    /// Redis stores: the prefix of every key, so that several deployments share one Redis
    /// (`cb1:` gives `cb1:cookie:...`). A URL's `?prefix=` takes precedence. Default `""`.
    /// A non-empty prefix is a word of letters, digits, `_`, `-` and `.` followed by one
    /// `:`, and not one of the words cookiestore's keys start with (`cookie:`, `authid:`,
    /// `imported:`, `revocations:`, `feature_level:`), so that no two deployments in one
    /// Redis database ever see each other's keys (see docs/redis.md, "Redis: layout and round trips").
    pub key_prefix: String,
    /// Redis stores: how long a call may wait for Redis, in ms, in total (connecting, a
    /// retry on a dead pooled connection and every round trip of the call; a walk over every
    /// key, as `count` or an export, has it per batch of 1,000 keys); the call fails with
    /// [`Error::Unavailable`] after it. A URL's `?timeout_ms=` takes precedence. Default
    /// 2000.
    pub timeout_ms: u64,
    /// Redis stores: the revocation stream is capped at about this many entries (besides
    /// the time-based trimming of `revocation_retention_secs`). Default 100,000.
    pub revocation_stream_max: u64,
    /// Redis stores: open even though the Redis may evict keys (a `maxmemory-policy` other
    /// than `noeviction`, or one that cannot be read). Default false: such a Redis is
    /// refused at open (a read-only handle is not checked). A URL's `?allow_eviction=true`
    /// sets it too.
    ///
    /// What it costs: Redis may then drop any of the store's keys when it runs out of
    /// memory. An evicted cookie is a user who must log in again; an evicted revocation
    /// feed makes every watcher report [`WatchEvent::Missed`](crate::WatchEvent) and
    /// re-check its connections; an evicted authid index is not trusted:
    /// [`logout_authid`](crate::CookieStore::logout_authid) then walks every cookie (`SCAN`,
    /// two round trips per 1,000 cookies) instead of reading the user's set, so that it
    /// still finds every cookie of the user.
    pub allow_eviction: bool,
    /// Redis stores: open without waiting for Redis. Default false: the open connects (one
    /// `PING`) and runs the open-time checks (a Redis that may evict keys, a newer store),
    /// so that an unreachable or unsuitable Redis fails the open, as a command-line tool
    /// wants. With true the open makes no round trip and succeeds while Redis is down, as a
    /// router starting before its Redis wants: a background thread connects at once, the
    /// checks run before the first call that reaches Redis, and their refusal
    /// ([`Error::RedisSetting`], [`Error::NewerStore`]) is that call's error (and every
    /// call's for 2 s, then they run again); [`CookieStore::health`](crate::CookieStore::health)
    /// reports it. `purge_on_startup` is then done by that thread, and skipped when Redis
    /// cannot be reached.
    pub connect_lazily: bool,
    /// LMDB stores: the byte budget of this process's cache of live cookies' lookups, which
    /// answers [`CookieStore::lookup`](crate::CookieStore::lookup),
    /// [`get_auth`](crate::CookieStore::get_auth) and
    /// [`exists`](crate::CookieStore::exists) without a transaction while nothing was
    /// committed, and is never stale (see [`CacheStats`](crate::CacheStats)). 0 turns it
    /// off. Default 10 MiB. One cache serves every handle of a path in a process; the first
    /// open sizes it.
    pub cache_bytes: u64,
    /// Where "now" comes from when deciding expiry. Default: the system clock.
    #[serde(skip)]
    pub clock: Arc<dyn Clock>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            maxsize: DEFAULT_MAXSIZE,
            initial_mapsize: DEFAULT_INITIAL_MAPSIZE,
            readonly: false,
            sync: true,
            durability: Durability::default(),
            purge_on_startup: false,
            file_mode: 0o600,
            revocation_retention_secs: DEFAULT_REVOCATION_RETENTION_SECS,
            key_prefix: String::new(),
            timeout_ms: DEFAULT_TIMEOUT_MS,
            revocation_stream_max: DEFAULT_REVOCATION_STREAM_MAX,
            allow_eviction: false,
            connect_lazily: false,
            cache_bytes: DEFAULT_CACHE_BYTES,
            clock: Arc::new(SystemClock),
        }
    }
}

impl StoreOptions {
    /// Sets [`maxsize`](Self::maxsize): 128 KiB to 128 GiB.
    pub fn maxsize(mut self, bytes: u64) -> Self {
        self.maxsize = bytes;
        self
    }

    /// Sets [`initial_mapsize`](Self::initial_mapsize).
    pub fn initial_mapsize(mut self, bytes: u64) -> Self {
        self.initial_mapsize = bytes;
        self
    }

    /// Sets [`readonly`](Self::readonly).
    pub fn readonly(mut self, readonly: bool) -> Self {
        self.readonly = readonly;
        self
    }

    /// Sets [`sync`](Self::sync).
    pub fn sync(mut self, sync: bool) -> Self {
        self.sync = sync;
        self
    }

    /// Sets [`cache_bytes`](Self::cache_bytes) (0: no cache).
    pub fn cache_bytes(mut self, bytes: u64) -> Self {
        self.cache_bytes = bytes;
        self
    }

    /// Sets [`durability`](Self::durability).
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// The policy in effect: [`durability`](Self::durability), or [`Durability::None`] when
    /// [`sync`](Self::sync) is off.
    pub fn effective_durability(&self) -> Durability {
        if self.sync {
            self.durability
        } else {
            Durability::None
        }
    }

    /// Sets [`purge_on_startup`](Self::purge_on_startup).
    pub fn purge_on_startup(mut self, purge: bool) -> Self {
        self.purge_on_startup = purge;
        self
    }

    /// Sets [`file_mode`](Self::file_mode).
    pub fn file_mode(mut self, mode: u32) -> Self {
        self.file_mode = mode;
        self
    }

    /// Sets [`revocation_retention_secs`](Self::revocation_retention_secs).
    pub fn revocation_retention_secs(mut self, seconds: u64) -> Self {
        self.revocation_retention_secs = seconds;
        self
    }

    /// Sets [`key_prefix`](Self::key_prefix).
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = prefix.into();
        self
    }

    /// Sets [`timeout_ms`](Self::timeout_ms).
    pub fn timeout_ms(mut self, ms: u64) -> Self {
        self.timeout_ms = ms;
        self
    }

    /// Sets [`revocation_stream_max`](Self::revocation_stream_max).
    pub fn revocation_stream_max(mut self, entries: u64) -> Self {
        self.revocation_stream_max = entries;
        self
    }

    /// Sets [`allow_eviction`](Self::allow_eviction) (read what it costs there).
    pub fn allow_eviction(mut self, allow: bool) -> Self {
        self.allow_eviction = allow;
        self
    }

    /// Sets [`connect_lazily`](Self::connect_lazily).
    pub fn connect_lazily(mut self, lazily: bool) -> Self {
        self.connect_lazily = lazily;
        self
    }

    /// Sets [`clock`](Self::clock).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Checks every field; the error names the field and its allowed range.
    pub fn validate(&self) -> Result<()> {
        if !(MIN_MAXSIZE..=MAX_MAXSIZE).contains(&self.maxsize) {
            return Err(Error::config(
                "maxsize",
                format!(
                    "is {} bytes; it must be between 131072 (128 KiB) and 137438953472 (128 GiB)",
                    self.maxsize
                ),
            ));
        }
        if self.initial_mapsize == 0 {
            return Err(Error::config(
                "initial_mapsize",
                "is 0; it must be at least 1 byte (it is rounded up to whole pages)",
            ));
        }
        if self.timeout_ms == 0 {
            return Err(Error::config(
                "timeout_ms",
                "is 0; give the Redis timeout in milliseconds, at least 1 (default 2000)",
            ));
        }
        if self.revocation_stream_max == 0 {
            return Err(Error::config(
                "revocation_stream_max",
                "is 0; it must be at least 1 (default 100000)",
            ));
        }
        check_key_prefix(&self.key_prefix)
            .map_err(|problem| Error::config("key_prefix", problem))?;
        if self.file_mode & !0o777 != 0 || self.file_mode & 0o600 != 0o600 {
            return Err(Error::config(
                "file_mode",
                format!(
                    "is {:o}; it must be permission bits within 0o777 that include owner \
                     read and write (0o600)",
                    self.file_mode
                ),
            ));
        }
        Ok(())
    }
}
/// What a commit flushes to disk before it returns (with [`StoreOptions::sync`] on; with
/// `sync` off nothing is flushed, whatever the policy: [`Durability::None`]).
///
/// What a power cut (or kernel crash; a killed process loses nothing in any policy: the
/// commits are in the page cache) can cost, per policy:
///
/// | policy | creates | set_auth, logout, delete, put, batch, purge | integrity |
/// |---|---|---|---|
/// | `Full` | nothing | nothing | any file system |
/// | `SafeLazyCreates` (default) | the last commit, if it was a create | nothing | any file system |
/// | `LazyCreates` | the creates since the last other write | nothing | needs a file system that preserves write order |
/// | `None` | the last commits | the last commits | needs a file system that preserves write order |
///
/// "Nothing" means: once the call returned, the change survives. Every non-create commit
/// flushes the whole data file, so it also makes every earlier lazy create durable.
///
/// [`StoreOptions::sync`]: crate::StoreOptions::sync
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Durability {
    /// Every commit is flushed: data pages, then the meta page (LMDB's default; two
    /// flushes per commit).
    Full,
    /// The default. A create ([`CookieStore::create`](crate::CookieStore::create), a new
    /// cookie from [`Tracker::track`](crate::Tracker::track)) flushes its data pages but not
    /// the meta page (`MDB_NOMETASYNC`: one flush instead of two); the next commit's flush
    /// covers that meta page. LMDB: "This optimization maintains database integrity, but a
    /// system crash may undo the last committed transaction". Every other write is flushed
    /// in full.
    #[default]
    SafeLazyCreates,
    /// A create is not flushed at all (`MDB_NOSYNC`); every other write is flushed in full,
    /// and so makes the earlier creates durable too. LMDB: with `MDB_NOSYNC` and without
    /// `MDB_WRITEMAP`, "if the filesystem preserves write order ... transactions exhibit ACI
    /// (atomicity, consistency, isolation) properties and only lose D (durability)".
    /// Otherwise a power cut between an unflushed create and the next flush may corrupt the
    /// store. ZFS, and ext3/ext4 mounted `data=journal`, preserve write order; ext4's default
    /// `data=ordered`, XFS and btrfs do not promise it for overwritten pages: choose
    /// `SafeLazyCreates` (or `Full`) there.
    LazyCreates,
    /// Nothing is flushed (`MDB_NOSYNC`): what `sync = false` means. The operating system
    /// writes the pages back when it likes; the same integrity caveat as `LazyCreates`.
    None,
}

impl StoreOptions {
    /// The deadline (milliseconds) of a store call at `location`, as the store opened there
    /// applies it: a Redis URL's `?timeout_ms=` when given, else
    /// [`timeout_ms`](StoreOptions::timeout_ms).
    ///
    /// ```
    /// use cookiestore::{Location, StoreOptions};
    /// let options = StoreOptions::default().timeout_ms(700);
    /// let url = Location::parse("redis://127.0.0.1/?timeout_ms=300")?;
    /// assert_eq!(options.effective_timeout_ms(&url), 300);
    /// assert_eq!(options.effective_timeout_ms(&Location::parse("/var/cookies")?), 700);
    /// # Ok::<(), cookiestore::Error>(())
    /// ```
    pub fn effective_timeout_ms(&self, location: &Location) -> u64 {
        match location {
            Location::Redis(redis) => {
                u64::try_from(self.redis_timeout(redis).as_millis()).unwrap_or(u64::MAX)
            }
            Location::Lmdb(_) => self.timeout_ms,
        }
    }

    /// The deadline of a call to the Redis store at `location` (the one home of the rule).
    pub(crate) fn redis_timeout(&self, location: &RedisLocation) -> std::time::Duration {
        location
            .timeout()
            .unwrap_or(std::time::Duration::from_millis(self.timeout_ms))
    }
}
