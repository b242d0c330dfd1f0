//! [`CookieStore`]: the one handle to a store, whatever holds it.
//!
//! The façade over the seam (`backend.rs`): it opens the backend a [`Location`] names, and
//! each method checks what is the same on every backend (a write through a read-only handle
//! is refused here, once) and dispatches once, to `Arc<dyn Backend>`. A backend's own tools
//! are reached through its own handle ([`CookieStore::as_lmdb`]), so no method here fails
//! for being on the wrong backend.

use std::path::Path;
use std::sync::Arc;

use uuid::Uuid;

use crate::backend::{Backend, MaintenanceTxn, WriteKind};
use crate::cache::CacheStats;
use crate::clock::{Clock, secs_to_ns};
use crate::config::location::{IntoLocation, Location};
use crate::config::options::StoreOptions;
use crate::error::{Error, Result};
use crate::feed::revocation::Revocations;
use crate::health::Health;
use crate::lmdb::LmdbStore;
use crate::record::cookie::{Auth, AuthChange, AuthContext, AuthUpdate, Cookie, Lookup};
use crate::stats::Stats;

/// A persistent cookie store: LMDB in a directory (byte-compatible with cfxdb's), or Redis.
///
/// `Clone + Send + Sync`: clones share one handle (on LMDB, every handle of a path in a
/// process shares one environment and one cache). Reads treat an expired cookie as absent.
///
/// A handle belongs to the process that opened it: in a child made by `fork()`, an LMDB
/// handle inherited from the parent refuses every call with [`Error::ForkedProcess`] (an
/// LMDB environment cannot be used across fork()); [`CookieStore::open`] of the same path in
/// the child gives a fresh environment. A handle of a Redis store works in the child as it
/// is.
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
    backend: Arc<dyn Backend>,
    /// How long revocations stay in the feed (seconds).
    revocation_retention_secs: u64,
}

impl std::fmt::Debug for CookieStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CookieStore")
            .field("location", &self.location().to_string())
            .field("readonly", &self.is_readonly())
            .finish_non_exhaustive()
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
    /// instead (feature `redis`, on by default); see docs/configuration.md ("Redis: the same
    /// store on several hosts") for the URLs and what differs, docs/redis.md for the layout.
    /// Its errors: [`Error::Unavailable`] when Redis cannot be reached within
    /// [`StoreOptions::timeout_ms`], [`Error::RedisSetting`]
    /// for a Redis that may evict keys, [`Error::NewerStore`]; with
    /// [`StoreOptions::connect_lazily`] the open makes no
    /// round trip, and these are the errors of the calls instead. Any other URL is
    /// [`Error::UnsupportedLocation`]. No message ever shows the URL's password.
    pub fn open(location: impl IntoLocation, options: StoreOptions) -> Result<CookieStore> {
        let location = location.into_location()?;
        options.validate()?;
        let backend: Arc<dyn Backend> = match location {
            Location::Lmdb(path) => Arc::new(LmdbStore::open(&path, &options)?),
            #[cfg(feature = "redis")]
            Location::Redis(redis) => Arc::new(crate::redis::RedisStore::open(redis, &options)?),
            #[cfg(not(feature = "redis"))]
            Location::Redis(redis) => {
                return Err(Error::UnsupportedLocation {
                    location: redis.to_string(),
                });
            }
        };
        let store = CookieStore {
            backend,
            revocation_retention_secs: options.revocation_retention_secs,
        };
        let purge = !options.readonly && options.purge_on_startup;
        if store.backend.opened_lazily() {
            // Connects in the background at once: the open-time checks run, and an outage is
            // known to `health()` without waiting for a call. Without a thread, the first
            // call does it.
            let handle = store.clone();
            let _ = std::thread::Builder::new()
                .name("cookiestore-connect".into())
                .spawn(move || {
                    if handle.backend.connect().is_ok() && purge {
                        // Trims the feed; the next purge does it when this one fails.
                        let _ = handle.purge_expired();
                    }
                });
        } else if purge {
            store.purge_expired()?;
        }
        Ok(store)
    }

    /// The backend, for the feed's readers.
    pub(crate) fn seam(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    /// Which backend holds the cookies: `"lmdb"` or `"redis"`.
    pub fn backend(&self) -> &'static str {
        self.backend.name()
    }

    /// The store's directory (canonical); `None` for a store on Redis, which has none (a
    /// URL is never a path: see [`Self::location`]).
    pub fn path(&self) -> Option<&Path> {
        self.as_lmdb().map(LmdbStore::path)
    }

    /// The LMDB store, for what only LMDB has (snapshots, batches, copies, check and
    /// repair), or [`Error::Unsupported`] naming `operation` on another backend: what a tool
    /// that takes any location reports when asked for an LMDB-only job on Redis.
    ///
    /// ```
    /// use cookiestore::{CookieStore, StoreOptions};
    /// # let dir = tempfile::tempdir().unwrap();
    /// let store = CookieStore::open(dir.path(), StoreOptions::default())?;
    /// let report = cookiestore::maintenance::check(store.lmdb("check")?)?;
    /// assert!(report.problems.is_empty());
    /// # Ok::<(), cookiestore::Error>(())
    /// ```
    pub fn lmdb(&self, operation: &'static str) -> Result<&LmdbStore> {
        self.as_lmdb().ok_or_else(|| Error::Unsupported {
            operation,
            backend: self.backend.name(),
        })
    }

    /// Where the store is: [`Location::Lmdb`] with its canonical directory, or
    /// [`Location::Redis`]. Display it to name the store in a message: a Redis password is
    /// masked.
    pub fn location(&self) -> &Location {
        self.backend.location()
    }

    /// The LMDB store's own handle, with what only LMDB has (snapshots, batches, copies,
    /// check and repair, its cache and page figures); `None` on another backend.
    ///
    /// ```
    /// use cookiestore::{CookieStore, StoreOptions};
    /// # let dir = tempfile::tempdir().unwrap();
    /// let store = CookieStore::open(dir.path(), StoreOptions::default())?;
    /// let lmdb = store.as_lmdb().expect("a directory is an LMDB store");
    /// let live = lmdb.snapshot(|s| s.count_live())?;
    /// assert_eq!(live, 0);
    /// # Ok::<(), cookiestore::Error>(())
    /// ```
    pub fn as_lmdb(&self) -> Option<&LmdbStore> {
        self.backend.as_any().downcast_ref::<LmdbStore>()
    }

    /// Whether this handle is read-only.
    pub fn is_readonly(&self) -> bool {
        self.backend.is_readonly()
    }

    /// The current time according to the store's clock (ns).
    pub fn now_ns(&self) -> u64 {
        self.backend.now_ns()
    }

    /// The same store seen through another clock (for "what expires by Friday?").
    pub fn with_clock(&self, clock: Arc<dyn Clock>) -> CookieStore {
        CookieStore {
            backend: self.backend.with_clock(clock),
            ..self.clone()
        }
    }

    /// Whether calls reach the store now, and its outages: see [`Health`]. No round trip.
    pub fn health(&self) -> Health {
        self.backend.health()
    }

    /// `Ok` on a writable handle; else [`Error::ReadOnly`] for `operation`: the one check of
    /// every write.
    fn writable(&self, operation: &'static str) -> Result<()> {
        if self.backend.is_readonly() {
            return Err(Error::ReadOnly { operation });
        }
        Ok(())
    }

    // ---- reads ----------------------------------------------------------------------------

    /// Whether a live (unexpired) cookie has `value`. Answered from this process's cache
    /// when it can.
    pub fn exists(&self, value: &str) -> Result<bool> {
        self.backend.exists(value)
    }

    /// The live cookie with `value`, every field.
    pub fn get(&self, value: &str) -> Result<Option<Cookie>> {
        self.backend.get(value)
    }

    /// The live cookie with object id `oid`.
    pub fn get_by_oid(&self, oid: Uuid) -> Result<Option<Cookie>> {
        self.backend.get_by_oid(oid)
    }

    /// The authentication of the live cookie with `value`: `None` when there is no such
    /// cookie, it expired, or it is not authenticated. Answered from this process's cache
    /// when it can; otherwise reads only the auth fields.
    pub fn get_auth(&self, value: &str) -> Result<Option<Auth>> {
        self.backend.get_auth(value)
    }

    /// What a router needs on each connection, from one read: when the live cookie with
    /// `value` expires and its authentication. Answered from this process's cache when it
    /// can; otherwise reads only those fields.
    ///
    /// ```
    /// use cookiestore::{CookieStore, StoreOptions};
    /// # let dir = tempfile::tempdir().unwrap();
    /// let store = CookieStore::open(dir.path(), StoreOptions::default())?;
    /// let cookie = store.create("cbtid", 24, 3600)?;
    /// let found = store.lookup(&cookie.value)?.expect("live");
    /// assert_eq!((found.oid, found.max_age, found.auth), (cookie.oid, 3600, None));
    /// # Ok::<(), cookiestore::Error>(())
    /// ```
    pub fn lookup(&self, value: &str) -> Result<Option<Lookup>> {
        self.backend.lookup(value)
    }

    /// [`Self::lookup`] answered from this process's cache alone (decoded from the cached
    /// entry; [`Self::with_cached_lookup`] borrows it instead): `Some(answer)` when the cache
    /// is current (nothing was committed since it caught up) and holds `value` (`Some(None)`:
    /// that cookie has expired); `None` when only a read can answer (call [`Self::lookup`]),
    /// and always on a store without a cache (Redis, or `cache_bytes` 0). Opens no
    /// transaction and never waits on another thread's I/O: for bindings that release their
    /// own lock (Python's GIL) only when the store must be read.
    pub fn lookup_cached(&self, value: &str) -> Option<Option<Arc<Lookup>>> {
        Some(match self.backend.cached_entry(value)? {
            // An entry that does not decode: the read reports what is wrong.
            Some(entry) => Some(Arc::new(entry.to_lookup().ok()?)),
            None => None,
        })
    }

    /// Live cookies.
    pub fn count(&self) -> Result<u64> {
        self.backend.count()
    }

    /// Calls `f` with every record, live or expired (an undecodable one as
    /// [`Error::CorruptRecord`]), until `f` returns `Ok(false)` or an error. On LMDB: one
    /// snapshot, in oid order (calling the store inside `f` is
    /// [`Error::NestedTransaction`]). On Redis: a walk with SCAN in batches, in no particular
    /// order and not one snapshot (cookies written meanwhile may or may not be seen).
    pub fn for_each_record(&self, mut f: impl FnMut(Result<Cookie>) -> Result<bool>) -> Result<()> {
        self.backend.for_each_record(&mut f)
    }

    /// Figures about the store's cookies (on LMDB one snapshot; on Redis a walk with SCAN,
    /// not one snapshot). LMDB's page and map figures are
    /// [`LmdbStore::stats`](crate::LmdbStore::stats).
    pub fn stats(&self) -> Result<Stats> {
        self.backend.stats()
    }

    /// The revocations with a sequence number greater than `after` (0: all retained ones),
    /// and whether some of those were already trimmed (on Redis also: whether the feed is
    /// shorter than `after`, having started over). Pass [`Revocations::next`] next time;
    /// a [`Subscriber`](crate::Subscriber) does that and, on Redis, also notices a feed that
    /// went back in time.
    pub fn revocations_since(&self, after: u64) -> Result<Revocations> {
        self.backend.revocations_since(after)
    }

    // ---- writes ---------------------------------------------------------------------------

    /// Creates a cookie with a fresh random value of `length` characters (6 bits each, from
    /// the kernel's generator). A value (or oid) that already exists is never trusted: a new
    /// one is drawn.
    ///
    /// On LMDB, under the default [`Durability`](crate::Durability) its commit is lazy: see
    /// there what a power cut may cost.
    pub fn create(&self, name: &str, length: usize, max_age: u64) -> Result<Cookie> {
        self.writable("create a cookie")?;
        self.backend.create(name, length, max_age)
    }

    /// Stores `auth` on the live cookie with `value`, with `context` in the
    /// `authenticated_*` fields. Writes only when something changed, as Crossbar.io does.
    pub fn set_auth(&self, value: &str, auth: &Auth, context: &AuthContext) -> Result<AuthUpdate> {
        self.writable("set auth")?;
        let change = AuthChange::Set(auth, context);
        change.check()?;
        self.backend.change_auth(value, change)
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
        self.writable("clear auth")?;
        self.backend.change_auth(value, AuthChange::Clear)
    }

    /// Deletes the cookie with `value` (logout), recorded in the revocation feed. Returns
    /// whether one was deleted (an expired but unpurged cookie is deleted too).
    pub fn delete(&self, value: &str) -> Result<bool> {
        self.writable("delete a cookie")?;
        self.backend.delete(value)
    }

    /// Stores a whole record (import, restore): replaces the record with the same oid; a
    /// value another live record holds is refused ([`Error::DuplicateValue`]).
    pub fn put(&self, cookie: &Cookie) -> Result<()> {
        self.writable("put a cookie")?;
        cookie.check_storable()?;
        self.backend.put(cookie)
    }

    /// Deletes every cookie whose record carries `authid` (logs the user out everywhere), all
    /// or none, each recorded in the revocation feed; returns how many. On LMDB it costs in
    /// proportion to that user's cookies (the authid index), not the store's size.
    pub fn logout_authid(&self, authid: &str) -> Result<u64> {
        self.writable("log out an authid")?;
        self.backend.logout_authid(authid)
    }

    /// Deletes every expired cookie and its index entries; returns how many. It also trims
    /// the revocation feed to [`StoreOptions::revocation_retention_secs`], and drops the
    /// import marks (see [`maintenance::import_legacy`](crate::maintenance::import_legacy))
    /// whose cookies would have expired by now.
    ///
    /// On LMDB the cost grows with the number of expired cookies, not the store's size (it
    /// walks the expiry index up to now), in transactions of a few milliseconds each with
    /// pauses between them, so that routers' writes never wait long for the writer lock. On
    /// Redis, cookies and import marks expire by themselves (Redis drops each key at its
    /// expiry): this only trims the feed and returns 0.
    pub fn purge_expired(&self) -> Result<u64> {
        self.writable("purge")?;
        let cutoff = self
            .now_ns()
            .saturating_sub(secs_to_ns(self.revocation_retention_secs));
        self.backend.purge_expired(cutoff)
    }

    /// Deletes every cookie, live or not (Crossbar.io's `purge_on_startup` for its database
    /// store), each recorded in the revocation feed. Returns how many were deleted.
    pub fn clear(&self) -> Result<u64> {
        self.writable("clear")?;
        self.backend.clear()
    }

    /// Figures about this process's cache of the store (all 0 when it is off): LMDB's
    /// ([`StoreOptions::cache_bytes`]) or Redis's ([`StoreOptions::redis_cache_bytes`]).
    pub fn cache_stats(&self) -> CacheStats {
        self.backend.cache_stats()
    }

    // ---- LMDB only (also on [`LmdbStore`], reached with [`Self::as_lmdb`]) -------------

    /// Flushes every commit so far to disk (`mdb_env_sync`, forced), also those a lazy
    /// [`Durability`](crate::Durability) left unflushed, e.g. before a planned shutdown. On
    /// Redis, durability is the server's (its `appendfsync`): nothing to do here.
    pub fn flush(&self) -> Result<()> {
        self.writable("flush")?;
        match self.as_lmdb() {
            Some(lmdb) => lmdb.flush(),
            None => Ok(()),
        }
    }

    /// Rebuilds the expiry index from the records when another program wrote since our last
    /// write (cfxdb does not maintain it). Returns whether it had to; always false on Redis
    /// and on a read-only handle.
    pub fn reconcile_if_needed(&self) -> Result<bool> {
        match self.as_lmdb() {
            Some(lmdb) => lmdb.reconcile_if_needed(),
            None => Ok(false),
        }
    }

    /// One write of a maintenance operation (import, restore; see
    /// [`Backend::maintenance_write`]); refused on a read-only handle.
    pub(crate) fn maintenance_write(
        &self,
        operation: &'static str,
        kind: WriteKind,
        f: &mut dyn FnMut(&mut dyn MaintenanceTxn) -> Result<()>,
    ) -> Result<()> {
        self.writable(operation)?;
        self.backend.maintenance_write(operation, kind, f)
    }
}

const _: () = {
    const fn is<T: Send + Sync + Clone>() {}
    is::<CookieStore>();
};
