//! The LMDB backend: a store in a directory, byte-compatible with cfxdb's, shared by the
//! processes of one host.
//!
//! **Owns:** the environment (one per path and process: `env.rs`, the registry of open
//! paths in `registry.rs`, `open.rs`, `files.rs` for the checks before LMDB maps a file,
//! `local_env.rs` for fork()), the transaction core (`txn.rs`, with `closure.rs` refusing a
//! nested transaction) and what runs in it ([`Snapshot`](crate::Snapshot),
//! [`Batch`](crate::Batch)), the layout (`layout.rs`: the tables and their slots;
//! `keys.rs`: every kind of key, the one home of LMDB's keys; `codecs.rs`: the values'
//! codecs; `tables.rs`: the opened tables), the authid index, the feed, the import marks, the per-process
//! cache (`crate::cache`, read through by `lookup.rs`), what each commit
//! flushes (`durability.rs`), how maintenance shares the writer lock (`pacing.rs`), the disk
//! space kept for deletions (`reserve.rs`), and purge, clear and copy (`maintain.rs`).
//! [`LmdbStore`] is its handle and implements the seam (`seam.rs`).
//!
//! **May not know:** the façade, other backends, the maintenance loops above the seam
//! (`maintenance/`), the feed's readers (`feed/`).

pub(crate) mod authid;
pub(crate) mod batch;
pub(crate) mod closure;
pub(crate) mod codecs;
pub(crate) mod copy;
pub(crate) mod durability;
pub(crate) mod env;
pub(crate) mod feed;
pub(crate) mod files;
pub(crate) mod keys;
pub(crate) mod layout;
pub(crate) mod local_env;
pub(crate) mod lookup;
pub(crate) mod maintain;
pub(crate) mod marks;
pub(crate) mod open;
pub(crate) mod pacing;
pub(crate) mod registry;
pub(crate) mod reserve;
pub(crate) mod seam;
pub(crate) mod snapshot;
pub(crate) mod stats;
pub(crate) mod tables;
pub(crate) mod txn;

use std::path::Path;
use std::sync::Arc;

use crate::cache::CacheStats;
use crate::clock::Clock;
use crate::config::location::Location;
use crate::config::options::StoreOptions;
use crate::error::{LmdbResult, Result};
use crate::lmdb::batch::Batch;
use crate::lmdb::closure::ClosureGuard;
use crate::lmdb::durability::Flush;
use crate::lmdb::env::Shared;
use crate::lmdb::registry::shared_env;
use crate::lmdb::snapshot::Snapshot;
use crate::lmdb::txn::Growth;
use crate::stats::Stats;

/// A store on LMDB, with what only LMDB has: one consistent snapshot, a batch of writes in
/// one transaction, a copy of the live store, the page figures, the cache's figures. Reach
/// it from a store with [`CookieStore::as_lmdb`](crate::CookieStore::as_lmdb);
/// [`maintenance::check`](crate::maintenance::check) and
/// [`repair`](crate::maintenance::repair) take it too.
///
/// Clones, and every open of one path in one process, share a single LMDB environment (LMDB
/// forbids opening one twice in a process) and one cache.
///
/// ```
/// use cookiestore::{CookieStore, StoreOptions};
/// # let dir = tempfile::tempdir().unwrap();
/// let store = CookieStore::open(dir.path(), StoreOptions::default())?;
/// let lmdb = store.as_lmdb().expect("an LMDB store");
/// // Two cookies in one transaction: both or neither.
/// let (a, b) = lmdb.batch("create two", |b| Ok((b.create("cbtid", 24, 60)?, b.create("cbtid", 24, 60)?)))?;
/// assert_eq!(lmdb.snapshot(|s| s.count_live())?, 2);
/// assert_ne!(a.value, b.value);
/// # Ok::<(), cookiestore::Error>(())
/// ```
#[derive(Clone)]
pub struct LmdbStore {
    pub(crate) shared: Arc<Shared>,
    /// `Location::Lmdb` with the canonical directory.
    location: Location,
    pub(crate) readonly: bool,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for LmdbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LmdbStore")
            .field("path", &self.shared.path)
            .field("readonly", &self.readonly)
            .finish_non_exhaustive()
    }
}

impl LmdbStore {
    /// Opens (or, unless read-only, creates) the store in directory `path`, as
    /// [`CookieStore::open`](crate::CookieStore::open) says. A writable open makes sure every
    /// table exists and the indexes cfxdb does not keep are in step.
    pub(crate) fn open(path: &Path, options: &StoreOptions) -> Result<LmdbStore> {
        let (path, shared) = shared_env(path, options)?;
        let store = LmdbStore {
            shared,
            location: Location::Lmdb(path),
            readonly: options.readonly,
            clock: options.clock.clone(),
        };
        if !store.readonly {
            store.prepare_layout()?;
        }
        Ok(store)
    }

    /// The store's directory (canonical).
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    pub(crate) fn location(&self) -> &Location {
        &self.location
    }

    /// The current time by this handle's clock (ns).
    pub(crate) fn now(&self) -> u64 {
        self.clock.now_ns()
    }

    /// This handle through another clock.
    pub(crate) fn with_clock(&self, clock: Arc<dyn Clock>) -> LmdbStore {
        LmdbStore {
            clock,
            ..self.clone()
        }
    }

    /// Runs `f` on one consistent snapshot of the store (one read transaction).
    ///
    /// Keep it short: a long read transaction keeps LMDB from reusing pages freed meanwhile.
    /// Inside `f`, use the [`Snapshot`]'s methods; calling the store again returns
    /// [`Error::NestedTransaction`](crate::Error::NestedTransaction).
    pub fn snapshot<T>(&self, f: impl FnOnce(&Snapshot<'_>) -> Result<T>) -> Result<T> {
        self.read(|snap| {
            let _closure = ClosureGuard::enter();
            f(snap)
        })
    }

    /// Runs `f` in one write transaction: all its changes commit together, or none. Refused
    /// with [`Error::ReadOnly`](crate::Error::ReadOnly) on a read-only handle.
    ///
    /// `f` may run more than once (when the map must grow, the transaction is retried).
    /// Inside `f`, use the [`Batch`]'s methods; calling the store again returns
    /// [`Error::NestedTransaction`](crate::Error::NestedTransaction).
    pub fn batch<T>(
        &self,
        operation: &'static str,
        f: impl FnMut(&mut Batch<'_, '_>) -> Result<T>,
    ) -> Result<T> {
        self.write(operation, Growth::UpToMaxsize, Flush::Durable, f)
    }

    /// Flushes every commit so far to disk (`mdb_env_sync`, forced), also those a lazy
    /// [`Durability`](crate::Durability) left unflushed, e.g. before a planned shutdown.
    pub fn flush(&self) -> Result<()> {
        if self.readonly {
            return Err(crate::Error::ReadOnly { operation: "flush" });
        }
        let shared = &*self.shared;
        let env = shared.env()?;
        let _g = shared.resize.read().unwrap_or_else(|e| e.into_inner());
        env.force_sync().lmdb().map_err(|e| shared.resolve(e))
    }

    /// Figures about the store, from one snapshot (walks every record): the cookies', the
    /// indexes', the map's, the pages', the reader slots' and the tables'.
    pub fn stats(&self) -> Result<Stats> {
        self.snapshot(|s| s.stats())
    }

    /// Figures about this process's cache of the store (all 0 when it is off).
    pub fn cache_stats(&self) -> CacheStats {
        self.shared.cache.stats()
    }
}
