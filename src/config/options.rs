//! How a store is opened: [`StoreOptions`], made of the options every backend reads and one
//! part per backend ([`LmdbOptions`], [`RedisOptions`]), each backend reading its own part.
//!
//! In a node config (and in `StoreSection`) the options are one flat `store` object, as
//! Crossbar.io writes it: the serde form is flat (`RawOptions`), so the parser knows every
//! key and names a misspelt one; [`StoreSection::keys`](crate::StoreSection::keys) reads the
//! key list from it.

use std::sync::Arc;

use serde::Deserialize;

use crate::clock::{Clock, SystemClock};
use crate::config::location::check_key_prefix;
use crate::error::{Error, Result};

/// Smallest allowed `maxsize`: 128 KiB.
pub const MIN_MAXSIZE: u64 = 128 * 1024;
/// Largest allowed `maxsize`: 128 GiB.
pub const MAX_MAXSIZE: u64 = 128 * 1024 * 1024 * 1024;
/// Default `maxsize`: 1 GiB, as Crossbar.io's database store.
pub const DEFAULT_MAXSIZE: u64 = 1024 * 1024 * 1024;
/// Default revocation retention: 10 minutes.
pub const DEFAULT_REVOCATION_RETENTION_SECS: u64 = 600;
/// Default timeout of a Redis store's calls: 2 s.
pub const DEFAULT_TIMEOUT_MS: u64 = 2_000;
/// Default cap of a Redis store's revocation stream (entries, approximately).
pub const DEFAULT_REVOCATION_STREAM_MAX: u64 = 100_000;
/// Default budget of the per-process cache: 10 MiB.
pub const DEFAULT_CACHE_BYTES: u64 = 10 * 1024 * 1024;
/// Default size the map starts at (it doubles on demand up to `maxsize`): 64 MiB.
pub const DEFAULT_INITIAL_MAPSIZE: u64 = 64 * 1024 * 1024;

/// How to open a [`CookieStore`](crate::CookieStore): the options every backend reads, and
/// the LMDB and Redis parts ([`LmdbOptions`], [`RedisOptions`]; a backend ignores the other's
/// part). Set them with the builder methods, which fill in the right part.
///
/// ```
/// use cookiestore::StoreOptions;
/// let options = StoreOptions::default().readonly(true).maxsize(64 << 20).timeout_ms(500);
/// assert!(options.validate().is_ok());
/// assert_eq!((options.lmdb.maxsize, options.redis.timeout_ms), (64 << 20, 500));
/// assert!(StoreOptions::default().maxsize(1).validate().is_err());
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(from = "RawOptions")]
#[non_exhaustive]
pub struct StoreOptions {
    /// Open for reading only: every write returns [`Error::ReadOnly`]. Default false.
    pub readonly: bool,
    /// Purge expired cookies when the store is opened. Default false. (Crossbar's database
    /// store wipes every cookie here; that is [`CookieStore::clear`](crate::CookieStore::clear).)
    pub purge_on_startup: bool,
    /// How long a revocation (logout) stays in the revocation feed, in seconds, before
    /// [`CookieStore::purge_expired`](crate::CookieStore::purge_expired) trims it. A
    /// subscriber that falls further behind learns that it missed entries. Default 600.
    pub revocation_retention_secs: u64,
    /// Where "now" comes from when deciding expiry. Default: the system clock.
    pub clock: Arc<dyn Clock>,
    /// The options of a store on LMDB.
    pub lmdb: LmdbOptions,
    /// The options of a store on Redis.
    pub redis: RedisOptions,
}

/// The options of a store on LMDB (a directory): part of [`StoreOptions`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LmdbOptions {
    /// Largest size the memory map (and so the database) may grow to, in bytes:
    /// 128 KiB to 128 GiB, default 1 GiB.
    pub maxsize: u64,
    /// Size the map starts at when the database is smaller; it doubles on demand up to
    /// `maxsize`. Default 64 MiB (or `maxsize`, when smaller).
    pub initial_mapsize: u64,
    /// Flush to disk at every commit (crash-safe). With false a system crash may lose the
    /// last commits, never consistency. Default true. With true, [`durability`](Self::durability)
    /// says which commits are flushed and how; with false, none is ([`Durability::None`]).
    pub sync: bool,
    /// Which commits are flushed to disk when [`sync`](Self::sync) is on: by default
    /// ([`Durability::SafeLazyCreates`]) every commit but a new cookie's meta page, so that
    /// logouts, deletions and auth changes survive a power cut the moment they return.
    pub durability: Durability,
    /// Permission bits for the store's files when they are created. Default `0o600`.
    pub file_mode: u32,
    /// The byte budget of this process's cache of live cookies' lookups, which
    /// answers [`CookieStore::lookup`](crate::CookieStore::lookup),
    /// [`get_auth`](crate::CookieStore::get_auth) and
    /// [`exists`](crate::CookieStore::exists) without a transaction while nothing was
    /// committed, and is never stale (see [`CacheStats`](crate::CacheStats)). 0 turns it
    /// off. Default 10 MiB. One cache serves every handle of a path in a process; the first
    /// open sizes it.
    pub cache_bytes: u64,
}

/// The options of a store on Redis (a `redis://` URL): part of [`StoreOptions`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisOptions {
    /// The prefix of every key, so that several deployments share one Redis
    /// (`cb1:` gives `cb1:cookie:...`). A URL's `?prefix=` takes precedence. Default `""`.
    /// A non-empty prefix is a word of letters, digits, `_`, `-` and `.` followed by one
    /// `:`, and not one of the words cookiestore's keys start with (`cookie:`, `authid:`,
    /// `imported:`, `revocations:`, `feature_level:`), so that no two deployments in one
    /// Redis database ever see each other's keys (see the README's "Layout on Redis").
    pub key_prefix: String,
    /// How long a call may wait for Redis, in ms, in total (connecting, a
    /// retry on a dead pooled connection and every round trip of the call; a walk over every
    /// key, as `count` or an export, has it per batch of 1,000 keys); the call fails with
    /// [`Error::Unavailable`] after it. A URL's `?timeout_ms=` takes precedence. Default
    /// 2000.
    pub timeout_ms: u64,
    /// The revocation stream is capped at about this many entries (besides
    /// the time-based trimming of `revocation_retention_secs`). Default 100,000.
    pub revocation_stream_max: u64,
    /// Open even though the Redis may evict keys (a `maxmemory-policy` other
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
    /// Open without waiting for Redis. Default false: the open connects (one
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
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            readonly: false,
            purge_on_startup: false,
            revocation_retention_secs: DEFAULT_REVOCATION_RETENTION_SECS,
            clock: Arc::new(SystemClock),
            lmdb: LmdbOptions::default(),
            redis: RedisOptions::default(),
        }
    }
}

impl Default for LmdbOptions {
    fn default() -> Self {
        LmdbOptions {
            maxsize: DEFAULT_MAXSIZE,
            initial_mapsize: DEFAULT_INITIAL_MAPSIZE,
            sync: true,
            durability: Durability::default(),
            file_mode: 0o600,
            cache_bytes: DEFAULT_CACHE_BYTES,
        }
    }
}

impl Default for RedisOptions {
    fn default() -> Self {
        RedisOptions {
            key_prefix: String::new(),
            timeout_ms: DEFAULT_TIMEOUT_MS,
            revocation_stream_max: DEFAULT_REVOCATION_STREAM_MAX,
            allow_eviction: false,
            connect_lazily: false,
        }
    }
}

/// A builder method of [`StoreOptions`] that sets one field of a part.
macro_rules! set {
    ($(#[$doc:meta])* $name:ident: $ty:ty => $($field:ident).+) => {
        $(#[$doc])*
        pub fn $name(mut self, value: $ty) -> Self {
            self.$($field).+ = value;
            self
        }
    };
}

impl StoreOptions {
    set!(
        /// Sets [`readonly`](Self::readonly).
        readonly: bool => readonly
    );
    set!(
        /// Sets [`purge_on_startup`](Self::purge_on_startup).
        purge_on_startup: bool => purge_on_startup
    );
    set!(
        /// Sets [`revocation_retention_secs`](Self::revocation_retention_secs).
        revocation_retention_secs: u64 => revocation_retention_secs
    );
    set!(
        /// Sets [`clock`](Self::clock).
        clock: Arc<dyn Clock> => clock
    );
    set!(
        /// Sets [`LmdbOptions::maxsize`]: 128 KiB to 128 GiB.
        maxsize: u64 => lmdb.maxsize
    );
    set!(
        /// Sets [`LmdbOptions::initial_mapsize`].
        initial_mapsize: u64 => lmdb.initial_mapsize
    );
    set!(
        /// Sets [`LmdbOptions::sync`].
        sync: bool => lmdb.sync
    );
    set!(
        /// Sets [`LmdbOptions::durability`].
        durability: Durability => lmdb.durability
    );
    set!(
        /// Sets [`LmdbOptions::file_mode`].
        file_mode: u32 => lmdb.file_mode
    );
    set!(
        /// Sets [`LmdbOptions::cache_bytes`] (0: no cache).
        cache_bytes: u64 => lmdb.cache_bytes
    );
    set!(
        /// Sets [`RedisOptions::timeout_ms`].
        timeout_ms: u64 => redis.timeout_ms
    );
    set!(
        /// Sets [`RedisOptions::revocation_stream_max`].
        revocation_stream_max: u64 => redis.revocation_stream_max
    );
    set!(
        /// Sets [`RedisOptions::allow_eviction`] (read what it costs there).
        allow_eviction: bool => redis.allow_eviction
    );
    set!(
        /// Sets [`RedisOptions::connect_lazily`].
        connect_lazily: bool => redis.connect_lazily
    );

    /// Sets [`RedisOptions::key_prefix`].
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.redis.key_prefix = prefix.into();
        self
    }

    /// Checks every field; the error names the field and its allowed range.
    pub fn validate(&self) -> Result<()> {
        self.lmdb.validate()?;
        self.redis.validate()
    }
}

impl LmdbOptions {
    /// The policy in effect: [`durability`](Self::durability), or [`Durability::None`] when
    /// [`sync`](Self::sync) is off.
    pub fn effective_durability(&self) -> Durability {
        if self.sync {
            self.durability
        } else {
            Durability::None
        }
    }

    fn validate(&self) -> Result<()> {
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

impl RedisOptions {
    fn validate(&self) -> Result<()> {
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
        check_key_prefix(&self.key_prefix).map_err(|problem| Error::config("key_prefix", problem))
    }
}

/// The flat serde form of [`StoreOptions`]: the keys of a node config's `store` object. A new
/// option is a field here and in its part.
#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawOptions {
    maxsize: u64,
    initial_mapsize: u64,
    readonly: bool,
    sync: bool,
    durability: Durability,
    purge_on_startup: bool,
    file_mode: u32,
    revocation_retention_secs: u64,
    key_prefix: String,
    timeout_ms: u64,
    revocation_stream_max: u64,
    allow_eviction: bool,
    connect_lazily: bool,
    cache_bytes: u64,
}

impl Default for RawOptions {
    fn default() -> Self {
        let StoreOptions {
            readonly,
            purge_on_startup,
            revocation_retention_secs,
            lmdb,
            redis,
            ..
        } = StoreOptions::default();
        RawOptions {
            maxsize: lmdb.maxsize,
            initial_mapsize: lmdb.initial_mapsize,
            readonly,
            sync: lmdb.sync,
            durability: lmdb.durability,
            purge_on_startup,
            file_mode: lmdb.file_mode,
            revocation_retention_secs,
            key_prefix: redis.key_prefix,
            timeout_ms: redis.timeout_ms,
            revocation_stream_max: redis.revocation_stream_max,
            allow_eviction: redis.allow_eviction,
            connect_lazily: redis.connect_lazily,
            cache_bytes: lmdb.cache_bytes,
        }
    }
}

impl From<RawOptions> for StoreOptions {
    fn from(raw: RawOptions) -> Self {
        StoreOptions {
            readonly: raw.readonly,
            purge_on_startup: raw.purge_on_startup,
            revocation_retention_secs: raw.revocation_retention_secs,
            clock: Arc::new(SystemClock),
            lmdb: LmdbOptions {
                maxsize: raw.maxsize,
                initial_mapsize: raw.initial_mapsize,
                sync: raw.sync,
                durability: raw.durability,
                file_mode: raw.file_mode,
                cache_bytes: raw.cache_bytes,
            },
            redis: RedisOptions {
                key_prefix: raw.key_prefix,
                timeout_ms: raw.timeout_ms,
                revocation_stream_max: raw.revocation_stream_max,
                allow_eviction: raw.allow_eviction,
                connect_lazily: raw.connect_lazily,
            },
        }
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
