//! The store: one LMDB environment, its transactions, the indexes and expiry.
//!
//! [`CookieStore`] is `Clone + Send + Sync`. Clones, and repeated opens of one path in one
//! process, share a single LMDB environment (LMDB forbids opening one environment twice in a
//! process), so heed's `unsafe` open stays inside the crate (`open.rs`).
//!
//! This file is the transaction core: every read runs in [`CookieStore::snapshot`]'s read
//! transaction and every write in [`CookieStore::batch`]'s write transaction, both begun by
//! one function that adopts a map another process grew, guarded against nesting on a thread,
//! and with heed's errors given their meaning in one place ([`Shared::resolve`]). When the
//! map fills, the write transaction is aborted, the map doubles (up to `maxsize`) and the
//! closure runs again. Every read treats an expired cookie as absent.

use std::cell::Cell;
use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, OnceLock, RwLock, RwLockReadGuard, Weak};
use std::time::{Duration, Instant};

use heed::types::Bytes;
use heed::{Database, Env, MdbError, RoTxn, WithTls};
use uuid::Uuid;

use crate::clock::Clock;
use crate::config::StoreOptions;
use crate::config::location::{IntoLocation, Location};
use crate::error::{Error, LmdbError, LmdbResult, Result};
use crate::feed::RevocationKind;
use crate::fork::{LocalEnv, env_lifecycle};
use crate::lmdb::batch::{Batch, WriteTxn};
use crate::lmdb::cache::{CacheStats, read_lookup};
use crate::lmdb::durability::{Durability, Flush};
use crate::lmdb::layout::{
    AUTHID_INDEX, COOKIES, EXPIRY_INDEX, REVOCATIONS, STORE_STATE, Slots, TableMeta, VALUE_INDEX,
};
use crate::lmdb::open::{open_env, prepare_dir};
use crate::lmdb::pacing::Pacer;
use crate::lmdb::snapshot::Snapshot;
use crate::lmdb::tables::{Tables, foreign_writes, read_catalog, write_meta};
use crate::record::cookie::{Auth, AuthContext, Cookie};
#[cfg(feature = "redis")]
use crate::redis::RedisBackend;

/// Cookies deleted per write transaction by a purge, so the writer lock is never held long.
pub(crate) const PURGE_BATCH: usize = 5_000;

/// Path → the environment of this process for it (one per path and process).
pub(crate) type Registry = HashMap<PathBuf, Weak<Shared>>;

static REGISTRY: LazyLock<Mutex<Registry>> = LazyLock::new(Default::default);

/// The registry, locked (also by the fork() prepare handler, `fork.rs`).
pub(crate) fn lock_registry() -> MutexGuard<'static, Registry> {
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner())
}

thread_local! {
    /// Snapshot and batch closures running on this thread: a store call inside one would
    /// need a second transaction on this thread, which LMDB does not allow.
    static IN_CLOSURE: Cell<u32> = const { Cell::new(0) };

    /// How long the closure of this thread's last committed write transaction ran: the
    /// work a maintenance transaction did while holding the writer lock, without the
    /// commit's flush, which `pacing.rs` sizes transactions by.
    static LAST_WORK: Cell<Duration> = const { Cell::new(Duration::ZERO) };
}

/// See [`LAST_WORK`].
pub(crate) fn last_work() -> Duration {
    LAST_WORK.with(Cell::get)
}

/// Marks a caller's closure as running on this thread until dropped, also when the closure
/// panics (the count is restored while unwinding).
struct ClosureGuard;

impl ClosureGuard {
    fn enter() -> ClosureGuard {
        IN_CLOSURE.with(|c| c.set(c.get() + 1));
        ClosureGuard
    }
}

impl Drop for ClosureGuard {
    fn drop(&mut self) {
        IN_CLOSURE.with(|c| c.set(c.get().saturating_sub(1)));
    }
}

/// What all handles of one path in this process share.
pub(crate) struct Shared {
    /// The environment, usable in the process that opened it only (`fork.rs`): reach it
    /// through [`Shared::env`].
    pub(crate) env: LocalEnv,
    pub(crate) db: Database<'static, Bytes, Bytes>,
    pub(crate) path: PathBuf,
    pub(crate) env_readonly: bool,
    pub(crate) maxsize: u64,
    /// Which commits are flushed (`durability.rs`); `None` when opened with sync off.
    pub(crate) durability: Durability,
    /// Resolved once both cfxdb tables exist.
    pub(crate) slots: OnceLock<Slots>,
    /// Transactions hold it shared; resizing the map takes it exclusively (LMDB requires
    /// that no transaction of this process is live during `mdb_env_set_mapsize`).
    pub(crate) resize: RwLock<()>,
    /// This process's cache of live cookies' lookups (`cache.rs`).
    pub(crate) cache: crate::lmdb::cache::Cache,
    /// Disk space kept allocated in data.mdb for deletions (`reserve.rs`).
    pub(crate) reserve: crate::lmdb::reserve::DiskReserve,
}

/// A persistent cookie store in an LMDB environment, compatible with cfxdb's.
///
/// A handle belongs to the process that opened it: in a child made by `fork()`, a handle
/// inherited from the parent refuses every call with [`Error::ForkedProcess`] (an LMDB
/// environment cannot be used across fork()); [`CookieStore::open`] of the same path in the
/// child gives a fresh environment. A handle of a Redis store works in the child as it is.
///
/// ```
/// use cookiestore::{Auth, CookieStore, StoreOptions};
/// # let dir = tempfile::tempdir().unwrap();
/// let store = CookieStore::open(dir.path(), StoreOptions::default())?;
/// let cookie = store.create("cbtid", 24, 86_400)?;
/// store.set_auth(&cookie.value, &Auth::new("alice", "user", "wampcra", "realm1"), &Default::default())?;
/// assert_eq!(store.get_auth(&cookie.value)?.unwrap().authid, "alice");
/// store.delete(&cookie.value)?;
/// assert!(!store.exists(&cookie.value)?);
/// # Ok::<(), cookiestore::Error>(())
/// ```
#[derive(Clone)]
pub struct CookieStore {
    backend: Backend,
    /// Where the store is: the canonical directory, or the Redis URL (Display masks its
    /// password).
    location: Arc<Location>,
    readonly: bool,
    clock: Arc<dyn Clock>,
    /// How long revocations stay in the feed (seconds).
    revocation_retention_secs: u64,
}

/// Where a store's cookies live: the LMDB environment shared by the handles of one path, or
/// a Redis server.
#[derive(Clone)]
enum Backend {
    Lmdb(Arc<Shared>),
    #[cfg(feature = "redis")]
    Redis(Arc<RedisBackend>),
}

/// Returns `$body` from the enclosing method, with the Redis backend bound to `$r`, when
/// the store is on Redis (the LMDB code follows the macro).
macro_rules! on_redis {
    ($store:expr, |$r:ident| $body:expr) => {
        #[cfg(feature = "redis")]
        if let Some($r) = $store.redis() {
            return $body;
        }
    };
}

/// As `on_redis!`, for a write: refused with [`Error::ReadOnly`] on a read-only handle.
macro_rules! on_redis_write {
    ($store:expr, $operation:expr, |$r:ident| $body:expr) => {
        #[cfg(feature = "redis")]
        if let Some($r) = $store.redis() {
            if $store.readonly {
                return Err(Error::ReadOnly {
                    operation: $operation,
                });
            }
            return $body;
        }
    };
}

impl std::fmt::Debug for CookieStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CookieStore")
            .field("location", &self.location.to_string())
            .field("readonly", &self.readonly)
            .finish_non_exhaustive()
    }
}

/// What [`CookieStore::set_auth`] or [`CookieStore::clear_auth`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthUpdate {
    /// The authentication was stored (or cleared).
    Written,
    /// The cookie already carried exactly this authentication (or, for `clear_auth`, none):
    /// nothing was written.
    Unchanged,
    /// No live cookie has this value (never existed, logged out, or expired).
    NoSuchCookie,
}

/// A live cookie as [`CookieStore::lookup`] sees it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Lookup {
    /// Its object id.
    pub oid: Uuid,
    /// When it expires (ns).
    pub expires_at: u64,
    /// Its lifetime (s): what is left of it never exceeds this.
    pub max_age: u64,
    /// Its authentication, if it has an authid.
    pub auth: Option<Auth>,
}

/// Figures about a store, from one snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
#[non_exhaustive]
pub struct Stats {
    /// Cookie records, live and expired.
    pub records: u64,
    /// Live (unexpired) cookies.
    pub live: u64,
    /// Expired cookies not yet purged.
    pub expired: u64,
    /// Live cookies with an authid.
    pub authenticated: u64,
    /// Records that could not be decoded.
    pub corrupt: u64,
    /// Creation time of the oldest live cookie (ns).
    pub oldest_created: Option<u64>,
    /// Creation time of the newest live cookie (ns).
    pub newest_created: Option<u64>,
    /// When the next live cookie expires (ns).
    pub next_expiry: Option<u64>,
    /// Entries in the value index.
    pub value_index_entries: u64,
    /// Entries in the expiry index.
    pub expiry_index_entries: u64,
    /// Current map size (bytes).
    pub map_size: u64,
    /// Bytes in use: (last page + 1) × page size.
    pub map_used: u64,
    /// The configured maxsize (bytes).
    pub maxsize: u64,
    /// LMDB page size.
    pub page_size: u32,
    /// B-tree depth of the unnamed database.
    pub depth: u32,
    /// Branch pages.
    pub branch_pages: u64,
    /// Leaf pages.
    pub leaf_pages: u64,
    /// Overflow pages.
    pub overflow_pages: u64,
    /// Entries in the unnamed database (all tables and metadata).
    pub entries: u64,
    /// Id of the snapshot's transaction.
    pub txn_id: u64,
    /// Reader slots ever used in the lock file (LMDB's high-water mark, live and stale).
    pub readers_used: u32,
    /// Reader slots in the lock file.
    pub readers_max: u32,
    /// Slot metadata: every table of the database.
    pub tables: Vec<TableMeta>,
    /// Whether another program (cfxdb, Crossbar) wrote since cookiestore's last write, so
    /// the expiry index will be reconciled at the next open or purge.
    pub foreign_writes: bool,
}

impl Stats {
    /// Counts one stored record at `now`: records, corrupt, expired or live (authenticated,
    /// oldest/newest creation, next expiry).
    pub(crate) fn count_record(&mut self, bytes: &[u8], now: u64) {
        self.records += 1;
        let Ok(view) = crate::record::cookie::CookieView::new(bytes) else {
            self.corrupt += 1;
            return;
        };
        if view.is_expired(now) {
            self.expired += 1;
            return;
        }
        self.live += 1;
        if view.authid().is_some() {
            self.authenticated += 1;
        }
        let c = view.created();
        self.oldest_created = Some(self.oldest_created.map_or(c, |o| o.min(c)));
        self.newest_created = Some(self.newest_created.map_or(c, |o| o.max(c)));
        let e = view.expires_at();
        self.next_expiry = Some(self.next_expiry.map_or(e, |o| o.min(e)));
    }
}

impl CookieStore {
    /// Opens (or, unless read-only, creates) the store at `location`: a store directory
    /// (LMDB), or a Redis URL. A path or a string goes through [`Location::parse`], the one
    /// rule that tells them apart: text starting with `scheme://` is a URL, never a
    /// directory.
    ///
    /// A database written by cfxdb opens as it is; on a writable open, the tables cfxdb
    /// lacks (our expiry index) are built. Errors: [`Error::InvalidConfig`] for bad options,
    /// [`Error::Path`] when the directory is missing (read-only) or not accessible,
    /// [`Error::NotAStore`], [`Error::UnsupportedFormat`] for an LMDB 1.0 (format 3) database.
    ///
    /// A `redis://`, `redis+unix://` (or `unix://`) URL opens the store on that Redis server
    /// instead (feature `redis`, on by default); see the README for the layout and what
    /// differs. Its errors: [`Error::Unavailable`] when Redis cannot be reached within
    /// [`StoreOptions::timeout_ms`], [`Error::RedisSetting`] for a Redis that may evict keys,
    /// [`Error::NewerStore`]; with [`StoreOptions::connect_lazily`] the open makes no round
    /// trip, and these are the errors of the calls instead. Any other URL is
    /// [`Error::UnsupportedLocation`]. No message ever shows the URL's password.
    pub fn open(location: impl IntoLocation, options: StoreOptions) -> Result<CookieStore> {
        let location = location.into_location()?;
        options.validate()?;
        let path = match location {
            Location::Lmdb(path) => path,
            #[cfg(feature = "redis")]
            Location::Redis(redis) => return Self::open_redis(redis, options),
            #[cfg(not(feature = "redis"))]
            Location::Redis(redis) => {
                return Err(Error::UnsupportedLocation {
                    location: redis.to_string(),
                });
            }
        };
        let path = prepare_dir(&path, &options)?;
        let mut registry = lock_registry();
        registry.retain(|_, weak| weak.strong_count() > 0);
        // Dropped after the registry's lock (its drop may close an environment).
        let mut inherited = None;
        let shared = match registry.get(&path).and_then(Weak::upgrade) {
            Some(shared) if !shared.env.opener().is_this_process() => {
                // Opened by the parent of this process (fork()): never used here. Its copy
                // is closed, and the path opened afresh (`fork.rs` says why that is safe).
                if shared.env.opener().is_current() {
                    // A fork that ran no atfork handler: handles of that environment are not
                    // refused, so it cannot be closed under them.
                    return Err(shared.env.opener().refusal(&path));
                }
                if IN_CLOSURE.with(Cell::get) > 0 {
                    // fork() was called in a snapshot or batch closure, whose transaction
                    // still borrows the inherited environment.
                    return Err(Error::NestedTransaction);
                }
                // SAFETY: no closure runs on this thread (checked above), so no reference
                // made before fork() into that environment is alive here.
                unsafe { shared.env.close_inherited() };
                inherited = Some(shared);
                let shared = Arc::new(open_fresh(&path, &options)?);
                registry.insert(path.clone(), Arc::downgrade(&shared));
                shared
            }
            Some(shared) => {
                if shared.env_readonly && !options.readonly {
                    return Err(Error::config(
                        "readonly",
                        format!(
                            "is false, but {} is already open read-only in this process; open \
                             it writable first, or drop the read-only handles",
                            path.display()
                        ),
                    ));
                }
                shared
            }
            None => {
                let shared = Arc::new(open_fresh(&path, &options)?);
                registry.insert(path.clone(), Arc::downgrade(&shared));
                shared
            }
        };
        drop(registry);
        drop(inherited);
        let store = CookieStore {
            backend: Backend::Lmdb(shared),
            location: Arc::new(Location::Lmdb(path)),
            readonly: options.readonly,
            clock: options.clock.clone(),
            revocation_retention_secs: options.revocation_retention_secs,
        };
        if !store.readonly {
            store.prepare_layout()?;
            if options.purge_on_startup {
                store.purge_expired()?;
            }
        }
        Ok(store)
    }

    /// Opens the store on the Redis server at `location`.
    #[cfg(feature = "redis")]
    fn open_redis(
        location: crate::config::location::RedisLocation,
        options: StoreOptions,
    ) -> Result<CookieStore> {
        let backend = RedisBackend::open(&location, &options)?;
        let store = CookieStore {
            backend: Backend::Redis(Arc::new(backend)),
            location: Arc::new(Location::Redis(location)),
            readonly: options.readonly,
            clock: options.clock.clone(),
            revocation_retention_secs: options.revocation_retention_secs,
        };
        if options.connect_lazily {
            // Connects in the background at once: the open-time checks run, and an outage is
            // known to `health()` without waiting for a call. Without a thread, the first
            // call does it.
            let purge = !store.readonly && options.purge_on_startup;
            let handle = store.clone();
            let _ = std::thread::Builder::new()
                .name("cookiestore-connect".into())
                .spawn(move || {
                    let connected = handle.redis().is_some_and(|r| r.connect_now().is_ok());
                    if connected && purge {
                        // Trims the feed; the next purge does it when this one fails.
                        let _ = handle.purge_expired();
                    }
                });
            return Ok(store);
        }
        if !store.readonly && options.purge_on_startup {
            store.purge_expired()?;
        }
        Ok(store)
    }

    /// Where the store is: [`Location::Lmdb`] with its canonical directory, or
    /// [`Location::Redis`]. Display it to name the store in a message: a Redis password is
    /// masked.
    pub fn location(&self) -> &Location {
        &self.location
    }

    /// The store's directory (canonical); `None` for a store on Redis, which has none (a
    /// URL is never a path: see [`Self::location`]).
    pub fn path(&self) -> Option<&Path> {
        match &self.backend {
            Backend::Lmdb(shared) => Some(&shared.path),
            #[cfg(feature = "redis")]
            Backend::Redis(_) => None,
        }
    }

    /// Which backend holds the cookies: `"lmdb"` or `"redis"`.
    pub fn backend(&self) -> &'static str {
        match &self.backend {
            Backend::Lmdb(_) => "lmdb",
            #[cfg(feature = "redis")]
            Backend::Redis(_) => "redis",
        }
    }

    /// The Redis backend, when the store is on Redis.
    #[cfg(feature = "redis")]
    pub(crate) fn redis(&self) -> Option<&RedisBackend> {
        match &self.backend {
            Backend::Redis(redis) => Some(redis),
            Backend::Lmdb(_) => None,
        }
    }

    /// The LMDB environment; [`Error::Unsupported`] for a store on another backend,
    /// [`Error::ForkedProcess`] in a process other than the one that opened it.
    #[cfg_attr(not(feature = "redis"), allow(unused_variables))]
    #[inline]
    fn lmdb(&self, operation: &'static str) -> Result<&Arc<Shared>> {
        match &self.backend {
            Backend::Lmdb(shared) => {
                shared.env.opener().check(&shared.path)?;
                Ok(shared)
            }
            #[cfg(feature = "redis")]
            Backend::Redis(_) => Err(Error::Unsupported {
                operation,
                backend: "redis",
            }),
        }
    }

    /// Whether this handle is read-only.
    pub fn is_readonly(&self) -> bool {
        self.readonly
    }

    /// The current time according to the store's clock (ns).
    pub fn now_ns(&self) -> u64 {
        self.clock.now_ns()
    }

    /// The same store seen through another clock (for "what expires by Friday?").
    pub fn with_clock(&self, clock: Arc<dyn Clock>) -> CookieStore {
        CookieStore {
            clock,
            ..self.clone()
        }
    }

    // ---- reads ----------------------------------------------------------------------------

    /// Whether a live (unexpired) cookie has `value`.
    pub fn exists(&self, value: &str) -> Result<bool> {
        on_redis!(self, |r| r.exists(value, self.now_ns()));
        Ok(self.lookup_with(value, drop)?.is_some())
    }

    /// The live cookie with `value`, every field.
    pub fn get(&self, value: &str) -> Result<Option<Cookie>> {
        on_redis!(self, |r| r.get(value, self.now_ns()));
        self.snapshot(|s| s.get(value))
    }

    /// The live cookie with object id `oid`.
    pub fn get_by_oid(&self, oid: Uuid) -> Result<Option<Cookie>> {
        on_redis!(self, |r| r.get_by_oid(oid, self.now_ns()));
        self.snapshot(|s| s.get_by_oid(oid))
    }

    /// The authentication of the live cookie with `value`: `None` when there is no such
    /// cookie, it expired, or it is not authenticated. Reads only the auth fields.
    pub fn get_auth(&self, value: &str) -> Result<Option<Auth>> {
        on_redis!(self, |r| r.get_auth(value, self.now_ns()));
        if self.lmdb("look a cookie up")?.cache().is_none() {
            // Only the auth fields are decoded.
            return self.read(|s| match s.live_record(value)? {
                Some((oid, record)) => record
                    .auth()
                    .map_err(|problem| Error::CorruptRecord { oid, problem }),
                None => Ok(None),
            });
        }
        // The only reference when the cache did not keep it: moved out, not copied.
        let auth = |l: Arc<Lookup>| Arc::try_unwrap(l).map_or_else(|l| l.auth.clone(), |l| l.auth);
        Ok(self.lookup_with(value, auth)?.flatten())
    }

    /// What a router needs on each connection, from one read: when the live cookie with
    /// `value` expires and its authentication. Reads only those fields.
    pub fn lookup(&self, value: &str) -> Result<Option<Lookup>> {
        on_redis!(self, |r| r.lookup(value, self.now_ns()));
        self.lookup_with(value, Arc::unwrap_or_clone)
    }

    /// `answer` applied to what [`Self::lookup`] finds: from this process's cache when it is
    /// on and current (`cache.rs`), else from a read transaction (which also brings the
    /// cache up to date and fills it).
    fn lookup_with<T>(
        &self,
        value: &str,
        answer: impl FnOnce(Arc<Lookup>) -> T,
    ) -> Result<Option<T>> {
        let shared = self.lmdb("look a cookie up")?;
        let Some(cache) = shared.cache() else {
            return Ok(self
                .read(|s| read_lookup(s, value))?
                .map(|l| answer(Arc::new(l))));
        };
        if IN_CLOSURE.with(Cell::get) > 0 {
            return Err(Error::NestedTransaction);
        }
        let found = match self.lookup_cached(value) {
            Some(hit) => hit,
            None => self.read(|s| cache.read_through(s, value, |s| read_lookup(s, value)))?,
        };
        Ok(found.map(answer))
    }

    /// [`Self::lookup`] answered from this process's cache alone, shared, not copied:
    /// `Some(answer)` when the cache is current (nothing was committed since it caught up)
    /// and holds `value` (`Some(None)`: that cookie has expired); `None` when only a read can
    /// answer (call [`Self::lookup`]). Opens no transaction and never waits on another
    /// thread's I/O: for bindings that release their own lock (Python's GIL) only when the
    /// store must be read.
    pub fn lookup_cached(&self, value: &str) -> Option<Option<Arc<Lookup>>> {
        let Backend::Lmdb(shared) = &self.backend else {
            return None;
        };
        let cache = shared.cache()?;
        if IN_CLOSURE.with(Cell::get) > 0 {
            return None;
        }
        // `None` outside the process that opened the environment, before the cache is locked.
        let last_txn = shared.last_txn_id_now()?;
        cache.hit(value, last_txn, self.now_ns())
    }

    /// Figures about this process's cache of the store (all 0 when it is off, and on
    /// Redis).
    pub fn cache_stats(&self) -> CacheStats {
        self.shared()
            .map(|shared| shared.cache.stats())
            .unwrap_or_default()
    }

    /// Live cookies.
    pub fn count(&self) -> Result<u64> {
        on_redis!(self, |r| r.count(self.now_ns()));
        self.snapshot(|s| s.count_live())
    }

    /// Calls `f` with every record, live or expired (an undecodable one as
    /// [`Error::CorruptRecord`]), until `f` returns `Ok(false)` or an error. On LMDB: one
    /// snapshot, in oid order (calling the store inside `f` is
    /// [`Error::NestedTransaction`]). On Redis: a walk with SCAN in batches, in no particular
    /// order and not one snapshot (cookies written meanwhile may or may not be seen).
    pub fn for_each_record(&self, mut f: impl FnMut(Result<Cookie>) -> Result<bool>) -> Result<()> {
        on_redis!(self, |r| r.for_each_cookie(&mut f));
        self.snapshot(|s| {
            for item in s.records()? {
                if !f(item)? {
                    break;
                }
            }
            Ok(())
        })
    }

    /// Runs `f` on one consistent snapshot of the store (one read transaction).
    /// LMDB only: [`Error::Unsupported`] for a Redis store.
    ///
    /// Keep it short: a long read transaction keeps LMDB from reusing pages freed meanwhile.
    /// Inside `f`, use the [`Snapshot`]'s methods; calling the store again returns an error.
    pub fn snapshot<T>(&self, f: impl FnOnce(&Snapshot<'_>) -> Result<T>) -> Result<T> {
        self.read(|snap| {
            let _closure = ClosureGuard::enter();
            f(snap)
        })
    }

    /// Figures about the store (one snapshot; walks every record). On Redis: the figures
    /// about cookies (a walk with SCAN, not one snapshot); the LMDB figures are 0.
    pub fn stats(&self) -> Result<Stats> {
        on_redis!(self, |r| r.stats(self.now_ns()));
        self.snapshot(|s| s.stats())
    }

    // ---- writes ---------------------------------------------------------------------------

    /// Creates a cookie with a fresh random value of `length` characters (6 bits each, from a
    /// CSPRNG). A value (or oid) that already exists is never trusted: a new one is drawn.
    ///
    /// Under the default [`Durability`] its commit is lazy: see there what a power cut may cost.
    pub fn create(&self, name: &str, length: usize, max_age: u64) -> Result<Cookie> {
        on_redis_write!(self, "create a cookie", |r| r.create(
            name,
            length,
            max_age,
            self.now_ns()
        ));
        if self.readonly {
            return Err(Error::ReadOnly {
                operation: "create a cookie",
            });
        }
        self.write_txn_flushed("create a cookie", Growth::UpToMaxsize, Flush::Lazy, |b| {
            let _closure = ClosureGuard::enter();
            b.create(name, length, max_age)
        })
    }

    /// Flushes every commit so far to disk (`mdb_env_sync`, forced), also those a lazy
    /// [`Durability`] left unflushed, e.g. before a planned shutdown. On Redis, durability is
    /// the server's (its `appendfsync`): nothing to do here.
    pub fn flush(&self) -> Result<()> {
        on_redis_write!(self, "flush", |_r| Ok(()));
        if self.readonly {
            return Err(Error::ReadOnly { operation: "flush" });
        }
        let shared = self.lmdb("flush")?;
        let env = shared.env()?;
        let _g = shared.resize.read().unwrap_or_else(|e| e.into_inner());
        env.force_sync().lmdb().map_err(|e| shared.resolve(e))
    }

    /// Stores `auth` on the live cookie with `value`, with `context` in the
    /// `authenticated_*` fields. Writes only when something changed, as Crossbar.io does.
    pub fn set_auth(&self, value: &str, auth: &Auth, context: &AuthContext) -> Result<AuthUpdate> {
        on_redis_write!(self, "set auth", |r| r.set_auth(
            value,
            auth,
            context,
            self.now_ns()
        ));
        self.batch("set auth", |b| b.set_auth(value, auth, context))
    }

    /// Removes the authentication from the live cookie with `value`, keeping the cookie
    /// (Crossbar.io's `setAuth(cbtid, None, ...)`: the proxy worker's "not authenticated"):
    /// the next connection with it is anonymous, challenged if the transport requires
    /// authentication. [`AuthUpdate::Written`] when it was authenticated,
    /// [`AuthUpdate::Unchanged`] when it was not (nothing is written),
    /// [`AuthUpdate::NoSuchCookie`] when no live cookie has `value`. Its expiry does not
    /// change; the `authenticated_*` fields (where and when it was last authenticated) stay.
    ///
    /// Not a revocation: the cookie's open connections stay. Its authid no longer finds it
    /// ([`Self::logout_authid`]); on LMDB the revocation feed records an
    /// [`RevocationKind::Auth`](crate::RevocationKind::Auth) entry, so that every process's
    /// cache drops its answer.
    pub fn clear_auth(&self, value: &str) -> Result<AuthUpdate> {
        on_redis_write!(self, "clear auth", |r| r.clear_auth(value, self.now_ns()));
        self.batch("clear auth", |b| b.clear_auth(value))
    }

    /// Deletes the cookie with `value` (logout). Returns whether one was deleted (an expired
    /// but unpurged cookie is deleted too).
    pub fn delete(&self, value: &str) -> Result<bool> {
        on_redis_write!(self, "delete a cookie", |r| r.delete(value, self.now_ns()));
        self.batch_with("delete a cookie", Growth::Headroom, |b| b.delete(value))
    }

    /// Stores a whole record (import, restore): upsert by oid with index upkeep.
    pub fn put(&self, cookie: &Cookie) -> Result<()> {
        on_redis_write!(self, "put a cookie", |r| r.put(cookie));
        self.batch("put a cookie", |b| b.put(cookie))
    }

    /// Runs `f` in one write transaction: all its changes commit together, or none.
    /// LMDB only: [`Error::Unsupported`] for a Redis store.
    ///
    /// `f` may run more than once (when the map must grow, the transaction is retried).
    /// Inside `f`, use the [`Batch`]'s methods; calling the store again returns
    /// [`Error::NestedTransaction`].
    pub fn batch<T>(
        &self,
        operation: &'static str,
        f: impl FnMut(&mut Batch<'_, '_>) -> Result<T>,
    ) -> Result<T> {
        self.batch_with(operation, Growth::UpToMaxsize, f)
    }

    pub(crate) fn batch_with<T>(
        &self,
        operation: &'static str,
        growth: Growth,
        mut f: impl FnMut(&mut Batch<'_, '_>) -> Result<T>,
    ) -> Result<T> {
        if self.readonly {
            return Err(Error::ReadOnly { operation });
        }
        self.with_write_txn(operation, growth, |batch| {
            let _closure = ClosureGuard::enter();
            f(batch)
        })
    }

    /// One write transaction of a maintenance operation (purge, clear, import, restore),
    /// flushed as `flush` says; refused on a read-only handle.
    pub(crate) fn maintenance_batch<T>(
        &self,
        operation: &'static str,
        growth: Growth,
        flush: Flush,
        mut f: impl FnMut(&mut Batch<'_, '_>) -> Result<T>,
    ) -> Result<T> {
        if self.readonly {
            return Err(Error::ReadOnly { operation });
        }
        self.write_txn_flushed(operation, growth, flush, |batch| {
            let _closure = ClosureGuard::enter();
            f(batch)
        })
    }

    /// Deletes every expired cookie and its index entries; returns how many.
    ///
    /// Cost grows with the number of expired cookies, not the store's size: it walks the
    /// expiry index up to now. Deletes in transactions of a few milliseconds each, with
    /// pauses between them, so that routers' writes never wait long for the writer lock. It also trims the revocation feed, and drops the import marks
    /// (see [`maintenance::import_legacy`](crate::maintenance::import_legacy)) whose cookies
    /// would have expired by now.
    ///
    /// On Redis, cookies and import marks expire by themselves (Redis drops each key at its
    /// expiry): this only trims the revocation feed and returns 0.
    pub fn purge_expired(&self) -> Result<u64> {
        if self.readonly {
            return Err(Error::ReadOnly { operation: "purge" });
        }
        on_redis!(self, |r| {
            let retention = self.revocation_retention_secs.saturating_mul(1_000_000_000);
            r.trim_revocations(self.now_ns().saturating_sub(retention))?;
            Ok(0)
        });
        let now = self.now_ns();
        // Fast path without the writer lock: nothing expired and nobody else wrote.
        let quiet = self.read(|s| {
            Ok(s.tables.slots.by_expiry.is_some()
                && !s.foreign_writes()?
                && s.first_expiry()?.is_none_or(|e| e > now))
        })?;
        self.trim_revocations(self.revocation_retention_secs)?;
        crate::lmdb::marks::purge(self, now)?;
        if quiet {
            return Ok(0);
        }
        self.reconcile_if_needed()?;
        // Transactions sized by time (`pacing.rs`), flushed lazily: a purge lost to a power
        // cut leaves expired cookies, which read as absent anyway.
        let mut total = 0;
        let mut pacer = Pacer::new(PURGE_BATCH);
        loop {
            let mut limit = 0;
            let (processed, deleted) = pacer.run(|l| {
                limit = l;
                self.maintenance_batch("purge", Growth::Headroom, Flush::Lazy, |b| b.purge_some(l))
            })?;
            total += deleted;
            if processed < limit {
                return Ok(total);
            }
        }
    }

    /// Deletes every cookie, live or not (Crossbar.io's `purge_on_startup` for its database
    /// store). Returns how many were deleted.
    pub fn clear(&self) -> Result<u64> {
        on_redis_write!(self, "clear", |r| r.clear(self.now_ns()));
        // In transactions sized by time (`pacing.rs`), each recording its cookies in the
        // revocation feed (halved on a full map, so that a full store can still be emptied:
        // pages freed by one serve the next), then whatever the indexes still hold.
        let mut total = 0;
        let mut pacer = Pacer::new(PURGE_BATCH);
        loop {
            let deleted = pacer.run(|limit| {
                self.maintenance_batch("clear", Growth::Headroom, Flush::Durable, |b| {
                    let oids: Vec<Uuid> = b
                        .view()
                        .raw_records()?
                        .take(limit)
                        .map(|item| item.map(|(oid, _)| oid))
                        .collect::<Result<_>>()?;
                    let mut n = 0;
                    for oid in oids {
                        n += u64::from(b.delete_oid_as(oid, RevocationKind::Maintenance)?);
                    }
                    Ok(n)
                })
            })?;
            total += deleted;
            if deleted == 0 {
                break;
            }
        }
        self.batch_with("clear", Growth::Headroom, |b| {
            let s = b.tables.slots;
            for slot in [Some(s.cookies), Some(s.by_value), s.by_expiry, s.by_authid] {
                if let Some(slot) = slot.filter(|_| b.tables.present) {
                    b.tables.delete_slot(b.txn.w(), slot)?;
                }
            }
            // Whatever the batches above could not itemize (undecodable records) is gone too.
            b.append_revocation(RevocationKind::Flush, Uuid::nil(), "")?;
            Ok(())
        })?;
        Ok(total)
    }

    /// Rebuilds the expiry index from the records when another program wrote since our last
    /// write (cfxdb does not maintain it). Returns whether it had to.
    pub fn reconcile_if_needed(&self) -> Result<bool> {
        if self.readonly {
            return Ok(false);
        }
        on_redis!(self, |_r| Ok(false));
        if !self.read(|s| s.foreign_writes())? {
            return Ok(false);
        }
        self.batch("reconcile the expiry index", |b| {
            b.rebuild_expiry_index()?;
            b.rebuild_authid_index()
        })?;
        Ok(true)
    }

    /// Copies the environment into a new directory `dest`, consistently and, if `compact`,
    /// with free pages left out. Safe while workers write.
    ///
    /// `dest` must not exist: it is created, readable by its owner only (0700, with its
    /// missing parents), holding `data.mdb` (0600). An existing directory, even an empty
    /// one, or a symbolic link is refused with [`Error::DestinationExists`] and nothing is
    /// written (a copy never goes through a link, nor keeps another directory's mode). When
    /// the copy fails, what it created is removed.
    ///
    /// LMDB only: [`Error::Unsupported`] for a Redis store.
    pub fn copy_to(&self, dest: &Path, compact: bool) -> Result<()> {
        let shared = self.lmdb("copy")?;
        shared.env()?; // refused in a forked child before anything is created
        create_new_dir(dest)?;
        let path = dest.join("data.mdb");
        let copied = self.copy_into(shared, &path, compact);
        if copied.is_err() {
            let _ = fs::remove_file(&path);
            let _ = fs::remove_dir(dest);
        }
        copied
    }

    /// [`Self::copy_to`]'s copy into the new file `path`.
    fn copy_into(&self, shared: &Shared, path: &Path, compact: bool) -> Result<()> {
        let path = path.to_path_buf();
        // A new file only (never through a symlink), readable by the owner only.
        let mut new_file = fs::OpenOptions::new();
        new_file.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            new_file.custom_flags(libc::O_NOFOLLOW).mode(0o600);
        }
        let mut file = match new_file.open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(Error::DestinationExists { path });
            }
            Err(source) => {
                return Err(Error::Path {
                    path,
                    problem: "cannot create the copy".into(),
                    source,
                });
            }
        };
        let option = if compact {
            heed::CompactionOption::Enabled
        } else {
            heed::CompactionOption::Disabled
        };
        let env = shared.env()?;
        let _g = shared.resize.read().unwrap_or_else(|e| e.into_inner());
        env.copy_to_file(&mut file, option).map_err(|e| match e {
            // Reading the store never finds a file system full: the copy's did.
            heed::Error::Io(io) if crate::error::is_disk_full(&path, &io) => {
                copy_disk_full(&path, io)
            }
            heed::Error::Mdb(MdbError::Other(code))
                if crate::error::is_disk_full(&path, &std::io::Error::from_raw_os_error(code)) =>
            {
                copy_disk_full(&path, std::io::Error::from_raw_os_error(code))
            }
            other => shared.resolve(Error::Lmdb(LmdbError(other))),
        })
    }

    // ---- internals ------------------------------------------------------------------------

    /// Makes sure every table exists and the expiry index is in step with the records.
    /// Writes nothing when both hold already (the common case), so an open costs no commit.
    fn prepare_layout(&self) -> Result<()> {
        let ready = self.read(|s| {
            Ok(s.tables.present
                && s.tables.slots.by_expiry.is_some()
                && s.tables.slots.state.is_some()
                && s.tables.slots.by_authid.is_some()
                && s.tables.slots.revocations.is_some()
                && !s.foreign_writes()?)
        })?;
        if ready {
            return Ok(());
        }
        let shared = self.lmdb("prepare the cookie tables")?;
        self.with_write_txn("prepare the cookie tables", Growth::UpToMaxsize, |b| {
            // Judge foreign writes before this transaction marks itself as ours.
            let mut rebuild = foreign_writes(&b.tables, &b.txn)?;
            let mut catalog = read_catalog(shared.db, &b.txn)?;
            let mut rebuild_authid = rebuild;
            for table in [
                &COOKIES,
                &VALUE_INDEX,
                &EXPIRY_INDEX,
                &STORE_STATE,
                &AUTHID_INDEX,
                &REVOCATIONS,
            ] {
                if catalog.slot_of(table).is_none() {
                    let slot = catalog.next_slot()?;
                    write_meta(shared.db, b.txn.w(), table, slot)?;
                    catalog.tables.insert(slot, TableMeta::new(table, slot));
                    rebuild |= table == &EXPIRY_INDEX;
                    rebuild_authid |= table == &AUTHID_INDEX;
                }
            }
            let slots = catalog
                .slots()
                .ok_or_else(|| Error::metadata("the cookie tables could not be created"))?;
            b.tables = Tables::new(shared.db, slots);
            if rebuild {
                b.rebuild_expiry_index()?;
            }
            if rebuild_authid {
                b.rebuild_authid_index()?;
            }
            Ok(())
        })
    }

    /// What all handles of this path share (the environment), for sibling modules; `None`
    /// for a store on another backend, and in a process other than the one that opened it.
    #[inline]
    pub(crate) fn shared(&self) -> Option<&Shared> {
        match &self.backend {
            Backend::Lmdb(shared) if shared.env.opener().is_current() => Some(shared),
            _ => None,
        }
    }

    /// Runs `f` on a read transaction (the store's own reads and [`Self::snapshot`]).
    pub(crate) fn read<T>(&self, f: impl FnOnce(&Snapshot<'_>) -> Result<T>) -> Result<T> {
        let shared = self.lmdb("read a snapshot")?;
        let (guard, txn) = self.begin(|env| env.read_txn())?;
        let out = shared.tables(&txn).and_then(|tables| {
            f(&Snapshot {
                txn: &txn,
                tables,
                shared,
                now: self.now_ns(),
            })
        });
        if !shared.env.opener().is_current() {
            // fork() was called in the closure and this is the child: ending the
            // transaction here would release the parent's reader slot under it.
            std::mem::forget(txn);
            return Err(shared.env.opener().refusal(&shared.path));
        }
        drop(txn);
        drop(guard);
        out.map_err(|e| shared.resolve(e))
    }

    /// Begins a transaction with `begin` under the shared side of the resize lock. A map
    /// another process grew (`MDB_MAP_RESIZED`) is adopted and the begin retried.
    fn begin<'s, X>(
        &'s self,
        begin: impl Fn(&'s Env<WithTls>) -> heed::Result<X>,
    ) -> Result<(RwLockReadGuard<'s, ()>, X)> {
        if IN_CLOSURE.with(Cell::get) > 0 {
            return Err(Error::NestedTransaction);
        }
        let shared = self.lmdb("begin a transaction")?;
        let env = shared.env()?;
        loop {
            let guard = shared.resize.read().unwrap_or_else(|e| e.into_inner());
            match begin(env) {
                Ok(txn) => return Ok((guard, txn)),
                Err(heed::Error::Mdb(MdbError::MapResized)) => {
                    drop(guard);
                    self.adopt_map_size()?;
                }
                Err(e) => return Err(shared.resolve(Error::Lmdb(LmdbError(e)))),
            }
        }
    }

    /// Runs `f` in a write transaction and commits, growing the map and retrying when full.
    fn with_write_txn<T>(
        &self,
        operation: &'static str,
        growth: Growth,
        f: impl FnMut(&mut Batch<'_, '_>) -> Result<T>,
    ) -> Result<T> {
        self.write_txn_flushed(operation, growth, Flush::Durable, f)
    }

    /// [`Self::with_write_txn`], the commit flushed as `flush` and the durability policy say.
    fn write_txn_flushed<T>(
        &self,
        operation: &'static str,
        growth: Growth,
        flush: Flush,
        mut f: impl FnMut(&mut Batch<'_, '_>) -> Result<T>,
    ) -> Result<T> {
        let shared = self.lmdb(operation)?;
        loop {
            let (guard, mut txn) = self.begin(|env| env.write_txn())?;
            let result = shared.tables(&txn).and_then(|tables| {
                let level = tables.check_feature_level(&txn, &shared.path)?;
                let mut batch = Batch {
                    txn: WriteTxn::new(&mut txn),
                    tables,
                    shared,
                    now: self.now_ns(),
                };
                let work = Instant::now();
                let out = f(&mut batch)?;
                LAST_WORK.with(|w| w.set(work.elapsed()));
                if !batch.txn.written() {
                    // Nothing changed: no commit (the transaction is aborted below).
                    return Ok((out, false));
                }
                batch.flush_if_foreign()?;
                let writes = batch.txn.writes();
                let tables = batch.tables;
                tables.raise_feature_level(&mut txn, level)?;
                tables.mark_ours(&mut txn)?;
                if growth == Growth::UpToMaxsize {
                    // Only deletions may commit into the disk space kept for them.
                    shared
                        .reserve
                        .before_write(shared.used_bytes(), writes + 2, operation)?;
                }
                Ok((out, true))
            });
            if !shared.env.opener().is_current() {
                // fork() was called in the closure and this is the child: the transaction
                // is the parent's, neither to be committed nor aborted here.
                std::mem::forget(txn);
                return Err(shared.env.opener().refusal(&shared.path));
            }
            let result = result.and_then(|(out, written)| {
                if written {
                    shared.prepare_commit(flush)?;
                    txn.commit().lmdb()?;
                    shared.reserve.after_commit(shared.used_bytes());
                }
                // Else the transaction is aborted: dropped with this closure.
                Ok(out)
            });
            drop(guard);
            match result.map_err(|e| shared.resolve(e)) {
                Err(Error::MapFull { .. }) if self.grow_map(growth)? => continue,
                Err(Error::MapFull { maxsize, .. }) => {
                    return Err(Error::MapFull {
                        operation,
                        maxsize,
                        deletion: growth == Growth::Headroom,
                    });
                }
                Err(Error::DiskFull {
                    path,
                    committed,
                    source,
                    ..
                }) => {
                    return Err(Error::DiskFull {
                        path,
                        operation,
                        committed,
                        source,
                    });
                }
                other => return other,
            }
        }
    }

    /// Doubles the map, up to maxsize (plus the headroom reserved for deletions when
    /// `growth` allows it). Returns false when it cannot grow.
    fn grow_map(&self, growth: Growth) -> Result<bool> {
        let shared = self.lmdb("grow the map")?;
        let env = shared.env()?;
        let _g = shared.resize.write().unwrap_or_else(|e| e.into_inner());
        let current = env.info().map_size as u64;
        let limit = match growth {
            Growth::UpToMaxsize => shared.maxsize,
            Growth::Headroom => shared.maxsize + delete_headroom(shared.maxsize),
        };
        if current >= limit {
            return Ok(false);
        }
        let page = page_size();
        let target = current.saturating_mul(2).min(limit) / page * page;
        // SAFETY: the exclusive `resize` lock is held, and every transaction of this process
        // is opened under its shared side, so no transaction is live (LMDB's requirement).
        unsafe { env.resize(target as usize) }
            .lmdb()
            .map_err(|e| shared.resolve(e))?;
        Ok(true)
    }

    /// Adopts the map size another process recorded after growing the map.
    fn adopt_map_size(&self) -> Result<()> {
        let shared = self.lmdb("adopt the map size")?;
        let env = shared.env()?;
        let _g = shared.resize.write().unwrap_or_else(|e| e.into_inner());
        // SAFETY: as in `grow_map`: no transaction of this process is live. Size 0 makes LMDB
        // take the size recorded in the current meta page.
        unsafe { env.resize(0) }
            .lmdb()
            .map_err(|e| shared.resolve(e))
    }
}

impl Shared {
    /// The environment, in the process that opened it; [`Error::ForkedProcess`] elsewhere.
    #[inline]
    pub(crate) fn env(&self) -> Result<&Env<WithTls>> {
        self.env.get(&self.path)
    }

    /// Gives LMDB's errors that have a meaning of their own their variant, with this store's
    /// figures: the one mapping from heed's errors.
    pub(crate) fn resolve(&self, e: Error) -> Error {
        let inner = match e {
            Error::Lmdb(LmdbError(inner)) => inner,
            Error::Damaged { path, problem } if path.as_os_str().is_empty() => {
                return Error::Damaged {
                    path: self.path.join("data.mdb"),
                    problem,
                };
            }
            other => return other,
        };
        match inner {
            heed::Error::Mdb(MdbError::MapFull) => Error::MapFull {
                operation: "write",
                maxsize: self.maxsize,
                deletion: false,
            },
            heed::Error::Mdb(MdbError::ReadersFull) => Error::ReadersFull {
                max: self.env().map_or(0, |env| env.max_readers()),
            },
            heed::Error::Mdb(MdbError::Corrupted | MdbError::PageNotFound) => Error::Damaged {
                path: self.path.join("data.mdb"),
                problem: format!("LMDB reports: {inner}; {}", crate::error::DAMAGED_ADVICE),
            },
            heed::Error::Io(io) => Error::from_io(&self.path, "write", io),
            other => Error::Lmdb(LmdbError(other)),
        }
    }

    /// Bytes of data.mdb in use by the last committed transaction (up to its last page).
    /// 0 in a process other than the opener's (never asked there: writes are refused first).
    pub(crate) fn used_bytes(&self) -> u64 {
        self.env.here().map_or(0, |env| {
            (env.info().last_page_number as u64 + 1) * page_size()
        })
    }

    /// The tables as `txn` sees them. Slots are cached once every table exists (they never
    /// change after that); until then (a database only cfxdb wrote, or a new one seen
    /// read-only) the metadata is read again each time.
    fn tables(&self, txn: &RoTxn) -> Result<Tables> {
        if let Some(slots) = self.slots.get() {
            return Ok(Tables::new(self.db, *slots));
        }
        Ok(match read_catalog(self.db, txn)?.slots() {
            Some(slots)
                if slots.by_expiry.is_some()
                    && slots.state.is_some()
                    && slots.by_authid.is_some()
                    && slots.revocations.is_some() =>
            {
                Tables::new(self.db, *self.slots.get_or_init(|| slots))
            }
            Some(slots) => Tables::new(self.db, slots),
            // No cookie table yet: reads find nothing.
            None => Tables::empty(self.db),
        })
    }
}

/// Opens the environment at `path`, under the lock that keeps fork() out of an open or a
/// close (`fork.rs`).
fn open_fresh(path: &Path, options: &StoreOptions) -> Result<Shared> {
    let _lifecycle = env_lifecycle();
    open_env(path, options)
}

/// A copy that found the destination's file system full: the error names the copy, not the
/// store it was copied from.
fn copy_disk_full(copy: &Path, source: std::io::Error) -> Error {
    Error::Path {
        path: copy.to_path_buf(),
        problem: "cannot write the copy: the file system holding it is full (the copy was \
                  removed; the store itself is untouched); free space there, or copy to \
                  another file system"
            .into(),
        source,
    }
}

/// How far a write may grow the map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Growth {
    /// Inserts and updates: up to `maxsize`.
    UpToMaxsize,
    /// Deletions and purges: beyond `maxsize` by [`delete_headroom`], so that a full store
    /// can still be emptied (LMDB needs fresh pages even to delete: copy-on-write).
    Headroom,
}

/// Extra map space deletions may use past `maxsize`: 1/16 of it, at least 256 KiB.
fn delete_headroom(maxsize: u64) -> u64 {
    (maxsize / 16).max(256 * 1024) / page_size() * page_size()
}

/// Creates the directory `dest`, which must not exist (its missing parents are created too),
/// readable by its owner only: [`Error::DestinationExists`] when anything is there already,
/// a symbolic link included (never followed).
fn create_new_dir(dest: &Path) -> Result<()> {
    let path_err = |problem: &str, source| Error::Path {
        path: dest.to_path_buf(),
        problem: problem.into(),
        source,
    };
    if fs::symlink_metadata(dest).is_ok() {
        return Err(Error::DestinationExists {
            path: dest.to_path_buf(),
        });
    }
    if let Some(parent) = dest.parent().filter(|p| !p.as_os_str().is_empty())
        && !parent.exists()
    {
        crate::lmdb::open::create_dir_with_mode(parent)
            .map_err(|e| path_err("cannot create the destination's parent directory", e))?;
    }
    let mut builder = fs::DirBuilder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    match builder.create(dest) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(Error::DestinationExists {
            path: dest.to_path_buf(),
        }),
        Err(e) => Err(path_err("cannot create the destination directory", e)),
    }
}

pub(crate) fn page_size() -> u64 {
    // LMDB uses the OS page size for new environments.
    4096
}

const _: () = {
    const fn is<T: Send + Sync + Clone>() {}
    is::<CookieStore>();
};
