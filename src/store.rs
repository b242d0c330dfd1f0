//! The store: one LMDB environment, its transactions, the indexes and expiry.
//!
//! [`CookieStore`] is `Clone + Send + Sync`. Clones, and repeated opens of one path in one
//! process, share a single LMDB environment (LMDB forbids opening one environment twice in a
//! process), so heed's `unsafe` open stays inside the crate (`open.rs`).
//!
//! Writes run as closures inside one write transaction ([`CookieStore::batch`]); when the map
//! fills, the transaction is aborted, the map doubles (up to `maxsize`) and the closure runs
//! again. A map grown by another process is adopted the same way. Every read sees one
//! consistent snapshot, and every read treats an expired cookie as absent.

use std::cell::Cell;
use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex, OnceLock, RwLock, RwLockReadGuard, Weak};

use heed::types::Bytes;
use heed::{Database, Env, MdbError, RoTxn, RwTxn, WithTls};
use uuid::Uuid;

pub use crate::batch::Batch;
use crate::clock::Clock;
use crate::config::StoreOptions;
use crate::cookie::{Auth, AuthContext, Cookie};
use crate::error::{Error, Result};
use crate::layout::{COOKIES, EXPIRY_INDEX, STORE_STATE, Slots, TableMeta, VALUE_INDEX};
use crate::open::{open_env, prepare_dir};
pub use crate::snapshot::Snapshot;
use crate::tables::{Tables, TxnTables, foreign_writes, read_catalog, write_meta};

/// Cookies deleted per write transaction by a purge, so the writer lock is never held long.
pub const PURGE_BATCH: usize = 5_000;

/// How many fresh values `create` draws before giving up (a collision is retried, not trusted).
pub(crate) const CREATE_ATTEMPTS: u32 = 16;

/// The standard base64 alphabet, as Crossbar.io uses for values: 6 bits a character, and every
/// character an RFC 6265 cookie-octet.
pub(crate) const VALUE_ALPHABET: &[u8; 64] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static REGISTRY: LazyLock<Mutex<HashMap<PathBuf, Weak<Shared>>>> = LazyLock::new(Default::default);

thread_local! {
    /// Snapshots this thread holds open: a store call inside one would need a second read
    /// transaction on this thread, which LMDB does not allow.
    static IN_SNAPSHOT: Cell<u32> = const { Cell::new(0) };
}

/// What all handles of one path in this process share.
pub(crate) struct Shared {
    pub(crate) env: Env<WithTls>,
    pub(crate) db: Database<'static, Bytes, Bytes>,
    pub(crate) path: PathBuf,
    pub(crate) env_readonly: bool,
    pub(crate) maxsize: u64,
    /// Resolved once both cfxdb tables exist.
    pub(crate) slots: OnceLock<Slots>,
    /// Transactions hold it shared; resizing the map takes it exclusively (LMDB requires
    /// that no transaction of this process is live during `mdb_env_set_mapsize`).
    pub(crate) resize: RwLock<()>,
}

/// A persistent cookie store in an LMDB environment, compatible with cfxdb's.
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
    shared: Arc<Shared>,
    readonly: bool,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for CookieStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CookieStore")
            .field("path", &self.shared.path)
            .field("readonly", &self.readonly)
            .finish_non_exhaustive()
    }
}

/// What [`CookieStore::set_auth`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthUpdate {
    /// The authentication was stored.
    Written,
    /// The cookie already carried exactly this authentication: nothing was written.
    Unchanged,
    /// No live cookie has this value (never existed, logged out, or expired).
    NoSuchCookie,
}

/// A live cookie as [`CookieStore::lookup`] sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Lookup {
    /// Its object id.
    pub oid: Uuid,
    /// When it expires (ns).
    pub expires_at: u64,
    /// Its authentication, if it has an authid.
    pub auth: Option<Auth>,
}

/// Figures about a store, from one snapshot.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
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

impl CookieStore {
    /// Opens (or, unless read-only, creates) the store in directory `path`.
    ///
    /// A database written by cfxdb opens as it is; on a writable open, the tables cfxdb
    /// lacks (our expiry index) are built. Errors: [`Error::InvalidConfig`] for bad options,
    /// [`Error::Path`] when the directory is missing (read-only) or not accessible,
    /// [`Error::NotAStore`], [`Error::UnsupportedFormat`] for an LMDB 1.0 (format 3) database.
    pub fn open(path: impl AsRef<Path>, options: StoreOptions) -> Result<CookieStore> {
        options.validate()?;
        let path = prepare_dir(path.as_ref(), &options)?;
        let mut registry = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
        registry.retain(|_, weak| weak.strong_count() > 0);
        let shared = match registry.get(&path).and_then(Weak::upgrade) {
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
                let shared = Arc::new(open_env(&path, &options)?);
                registry.insert(path.clone(), Arc::downgrade(&shared));
                shared
            }
        };
        drop(registry);
        let store = CookieStore {
            shared,
            readonly: options.readonly,
            clock: options.clock.clone(),
        };
        if !store.readonly {
            store.prepare_layout()?;
            if options.purge_on_startup {
                store.purge_expired()?;
            }
        }
        Ok(store)
    }

    /// The store's directory (canonical).
    pub fn path(&self) -> &Path {
        &self.shared.path
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
        let now = self.now_ns();
        self.read(|t| Ok(t.live(value, now)?.is_some()))
    }

    /// The live cookie with `value`, every field.
    pub fn get(&self, value: &str) -> Result<Option<Cookie>> {
        self.snapshot(|s| s.get(value))
    }

    /// The live cookie with object id `oid`.
    pub fn get_by_oid(&self, oid: Uuid) -> Result<Option<Cookie>> {
        self.snapshot(|s| s.get_by_oid(oid))
    }

    /// The authentication of the live cookie with `value`: `None` when there is no such
    /// cookie, it expired, or it is not authenticated. Reads only the auth fields.
    pub fn get_auth(&self, value: &str) -> Result<Option<Auth>> {
        let now = self.now_ns();
        self.read(|t| match t.live(value, now)? {
            Some((oid, record)) => record
                .auth()
                .map_err(|problem| Error::CorruptRecord { oid, problem }),
            None => Ok(None),
        })
    }

    /// What a router needs on each connection, from one read: when the live cookie with
    /// `value` expires and its authentication. Reads only those fields.
    pub fn lookup(&self, value: &str) -> Result<Option<Lookup>> {
        let now = self.now_ns();
        self.read(|t| match t.live(value, now)? {
            Some((oid, record)) => {
                let corrupt = |problem| Error::CorruptRecord { oid, problem };
                Ok(Some(Lookup {
                    oid,
                    expires_at: record.expires_at().map_err(corrupt)?,
                    auth: record.auth().map_err(corrupt)?,
                }))
            }
            None => Ok(None),
        })
    }

    /// Live cookies.
    pub fn count(&self) -> Result<u64> {
        self.snapshot(|s| s.count_live())
    }

    /// Runs `f` on one consistent snapshot of the store (one read transaction).
    ///
    /// Keep it short: a long read transaction keeps LMDB from reusing pages freed meanwhile.
    /// Inside `f`, use the [`Snapshot`]'s methods; calling the store again returns an error.
    pub fn snapshot<T>(&self, f: impl FnOnce(&Snapshot<'_>) -> Result<T>) -> Result<T> {
        let now = self.now_ns();
        self.with_read_txn(|txn, tables| {
            let snap = Snapshot {
                txn,
                tables,
                shared: &self.shared,
                now,
            };
            IN_SNAPSHOT.with(|c| c.set(c.get() + 1));
            let out = f(&snap);
            IN_SNAPSHOT.with(|c| c.set(c.get() - 1));
            out
        })
    }

    /// Figures about the store (one snapshot; walks every record).
    pub fn stats(&self) -> Result<Stats> {
        self.snapshot(|s| s.stats())
    }

    // ---- writes ---------------------------------------------------------------------------

    /// Creates a cookie with a fresh random value of `length` characters (6 bits each, from a
    /// CSPRNG). A value (or oid) that already exists is never trusted: a new one is drawn.
    pub fn create(&self, name: &str, length: usize, max_age: u64) -> Result<Cookie> {
        self.batch("create a cookie", |b| b.create(name, length, max_age))
    }

    /// Stores `auth` on the live cookie with `value`, with `context` in the
    /// `authenticated_*` fields. Writes only when something changed, as Crossbar.io does.
    pub fn set_auth(&self, value: &str, auth: &Auth, context: &AuthContext) -> Result<AuthUpdate> {
        self.batch("set auth", |b| b.set_auth(value, auth, context))
    }

    /// Deletes the cookie with `value` (logout). Returns whether one was deleted (an expired
    /// but unpurged cookie is deleted too).
    pub fn delete(&self, value: &str) -> Result<bool> {
        self.batch_with("delete a cookie", Growth::Headroom, |b| b.delete(value))
    }

    /// Stores a whole record (import, restore): upsert by oid with index upkeep.
    pub fn put(&self, cookie: &Cookie) -> Result<()> {
        self.batch("put a cookie", |b| b.put(cookie))
    }

    /// Runs `f` in one write transaction: all its changes commit together, or none.
    ///
    /// `f` may run more than once (when the map must grow, the transaction is retried).
    pub fn batch<T>(
        &self,
        operation: &'static str,
        f: impl FnMut(&mut Batch<'_, '_>) -> Result<T>,
    ) -> Result<T> {
        self.batch_with(operation, Growth::UpToMaxsize, f)
    }

    fn batch_with<T>(
        &self,
        operation: &'static str,
        growth: Growth,
        mut f: impl FnMut(&mut Batch<'_, '_>) -> Result<T>,
    ) -> Result<T> {
        if self.readonly {
            return Err(Error::ReadOnly { operation });
        }
        let now = self.now_ns();
        self.with_write_txn(growth, |txn, tables| {
            let mut batch = Batch { txn, tables, now };
            f(&mut batch)
        })
    }

    /// Deletes every expired cookie and its index entries; returns how many.
    ///
    /// Cost grows with the number of expired cookies, not the store's size: it walks the
    /// expiry index up to now. Deletes in batches of [`PURGE_BATCH`] per transaction.
    pub fn purge_expired(&self) -> Result<u64> {
        if self.readonly {
            return Err(Error::ReadOnly { operation: "purge" });
        }
        let now = self.now_ns();
        // Fast path without the writer lock: nothing expired and nobody else wrote.
        let quiet = self.read(|t| {
            let Some(by_expiry) = t.tables.slots.by_expiry else {
                return Ok(false);
            };
            Ok(!t.foreign_writes()? && t.first_expiry(by_expiry)?.is_none_or(|e| e > now))
        })?;
        if quiet {
            return Ok(0);
        }
        self.reconcile_if_needed()?;
        let mut total = 0;
        loop {
            let (processed, deleted) =
                self.batch_with("purge", Growth::Headroom, |b| b.purge_some(PURGE_BATCH))?;
            total += deleted;
            if processed < PURGE_BATCH {
                return Ok(total);
            }
        }
    }

    /// Deletes every cookie, live or not (Crossbar.io's `purge_on_startup` for its database
    /// store). Returns how many were deleted.
    pub fn clear(&self) -> Result<u64> {
        self.batch_with("clear", Growth::Headroom, |b| {
            let s = b.tables.slots;
            let mut n = 0;
            for slot in [Some(s.cookies), Some(s.by_value), s.by_expiry] {
                let Some(slot) = slot else { continue };
                let deleted = b.tables.delete_slot(b.txn, slot)?;
                if slot == s.cookies {
                    n = deleted;
                }
            }
            Ok(n)
        })
    }

    /// Rebuilds the expiry index from the records when another program wrote since our last
    /// write (cfxdb does not maintain it). Returns whether it had to.
    pub fn reconcile_if_needed(&self) -> Result<bool> {
        if self.readonly {
            return Ok(false);
        }
        if !self.read(|t| t.foreign_writes())? {
            return Ok(false);
        }
        self.batch("reconcile the expiry index", |b| b.rebuild_expiry_index())?;
        Ok(true)
    }

    /// Copies the environment to `dest` (a directory), consistently and, if `compact`, with
    /// free pages left out. Safe while workers write.
    pub fn copy_to(&self, dest: &Path, compact: bool) -> Result<()> {
        fs::create_dir_all(dest).map_err(|source| Error::Path {
            path: dest.to_path_buf(),
            problem: "cannot create the destination directory".into(),
            source,
        })?;
        let file = dest.join("data.mdb");
        if file.exists() {
            return Err(Error::Path {
                path: file,
                problem: "refusing to overwrite an existing store; choose an empty directory"
                    .into(),
                source: std::io::Error::from(std::io::ErrorKind::AlreadyExists),
            });
        }
        let option = if compact {
            heed::CompactionOption::Enabled
        } else {
            heed::CompactionOption::Disabled
        };
        let _g = self.shared.resize.read().unwrap_or_else(|e| e.into_inner());
        self.shared
            .env
            .copy_to_path(&file, option)
            .map_err(|e| self.lmdb(e))?;
        Ok(())
    }

    // ---- internals ------------------------------------------------------------------------

    /// Makes sure every table exists and the expiry index is in step with the records.
    /// Writes nothing when both hold already (the common case), so an open costs no commit.
    fn prepare_layout(&self) -> Result<()> {
        let ready = self.read(|t| {
            Ok(t.tables.present
                && t.tables.slots.by_expiry.is_some()
                && t.tables.slots.state.is_some()
                && !t.foreign_writes()?)
        })?;
        if ready {
            return Ok(());
        }
        self.with_write_txn(Growth::UpToMaxsize, |txn, _| {
            let shared = &self.shared;
            // Judge foreign writes before this transaction marks itself as ours.
            let mut rebuild = foreign_writes(&shared.tables(txn)?, txn)?;
            let mut catalog = read_catalog(shared.db, txn)?;
            for table in [&COOKIES, &VALUE_INDEX, &EXPIRY_INDEX, &STORE_STATE] {
                if catalog.slot_of(table).is_none() {
                    let slot = catalog.next_slot()?;
                    write_meta(shared.db, txn, table, slot)?;
                    catalog.tables.insert(slot, TableMeta::new(table, slot));
                    rebuild |= table == &EXPIRY_INDEX;
                }
            }
            let slots = catalog
                .slots()
                .ok_or_else(|| Error::metadata("the cookie tables could not be created"))?;
            let tables = Tables::new(shared.db, slots);
            if rebuild {
                Batch {
                    txn,
                    tables,
                    now: self.now_ns(),
                }
                .rebuild_expiry_index()?;
            }
            // `with_write_txn` marks with the tables it resolved before we created ours.
            tables.mark_ours(txn)
        })
    }

    fn read<T>(&self, f: impl FnOnce(&TxnTables<'_, '_>) -> Result<T>) -> Result<T> {
        self.with_read_txn(|txn, tables| f(&TxnTables { txn, tables }))
    }

    /// Begins a transaction with `begin` under the shared side of the resize lock. A map
    /// another process grew (`MDB_MAP_RESIZED`) is adopted and the begin retried.
    fn begin<'s, X>(
        &'s self,
        begin: impl Fn(&'s Env<WithTls>) -> heed::Result<X>,
    ) -> Result<(RwLockReadGuard<'s, ()>, X)> {
        if IN_SNAPSHOT.with(Cell::get) > 0 {
            return Err(Error::NestedTransaction);
        }
        let shared = &self.shared;
        loop {
            let guard = shared.resize.read().unwrap_or_else(|e| e.into_inner());
            match begin(&shared.env) {
                Ok(txn) => return Ok((guard, txn)),
                Err(heed::Error::Mdb(MdbError::MapResized)) => {
                    drop(guard);
                    self.adopt_map_size()?;
                }
                Err(e) => return Err(self.lmdb(e)),
            }
        }
    }

    fn with_read_txn<T>(
        &self,
        f: impl FnOnce(&RoTxn<'_, WithTls>, Tables) -> Result<T>,
    ) -> Result<T> {
        let (guard, txn) = self.begin(|env| env.read_txn())?;
        let out = self.shared.tables(&txn).and_then(|tables| f(&txn, tables));
        drop(txn);
        drop(guard);
        out
    }

    fn with_write_txn<T>(
        &self,
        growth: Growth,
        mut f: impl FnMut(&mut RwTxn<'_>, Tables) -> Result<T>,
    ) -> Result<T> {
        loop {
            let (guard, mut txn) = self.begin(|env| env.write_txn())?;
            let result = self.shared.tables(&txn).and_then(|tables| {
                let out = f(&mut txn, tables)?;
                tables.mark_ours(&mut txn)?;
                txn.commit().map_err(|e| self.lmdb(e))?;
                Ok(out)
            });
            drop(guard);
            match result {
                Err(Error::MapFull { .. }) if self.grow_map(growth)? => continue,
                Err(Error::MapFull { .. }) => {
                    return Err(Error::MapFull {
                        maxsize: self.shared.maxsize,
                    });
                }
                other => return other,
            }
        }
    }

    /// Doubles the map, up to maxsize (plus the headroom reserved for deletions when
    /// `growth` allows it). Returns false when it cannot grow.
    fn grow_map(&self, growth: Growth) -> Result<bool> {
        let shared = &self.shared;
        let _g = shared.resize.write().unwrap_or_else(|e| e.into_inner());
        let current = shared.env.info().map_size as u64;
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
        unsafe { shared.env.resize(target as usize) }.map_err(|e| self.lmdb(e))?;
        Ok(true)
    }

    /// Adopts the map size another process recorded after growing the map.
    fn adopt_map_size(&self) -> Result<()> {
        let shared = &self.shared;
        let _g = shared.resize.write().unwrap_or_else(|e| e.into_inner());
        // SAFETY: as in `grow_map`: no transaction of this process is live. Size 0 makes LMDB
        // take the size recorded in the current meta page.
        unsafe { shared.env.resize(0) }.map_err(|e| self.lmdb(e))
    }

    fn lmdb(&self, e: heed::Error) -> Error {
        lmdb_error(e, &self.shared)
    }
}

impl Shared {
    /// The tables as `txn` sees them. Slots are cached once every table exists (they never
    /// change after that); until then (a database only cfxdb wrote, or a new one seen
    /// read-only) the metadata is read again each time.
    fn tables(&self, txn: &RoTxn) -> Result<Tables> {
        if let Some(slots) = self.slots.get() {
            return Ok(Tables::new(self.db, *slots));
        }
        Ok(match read_catalog(self.db, txn)?.slots() {
            Some(slots) if slots.by_expiry.is_some() && slots.state.is_some() => {
                Tables::new(self.db, *self.slots.get_or_init(|| slots))
            }
            Some(slots) => Tables::new(self.db, slots),
            // No cookie table yet: reads find nothing.
            None => Tables::empty(self.db),
        })
    }
}

/// How far a write may grow the map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Growth {
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

fn lmdb_error(e: heed::Error, shared: &Shared) -> Error {
    match e {
        heed::Error::Mdb(MdbError::MapFull) => Error::MapFull {
            maxsize: shared.maxsize,
        },
        heed::Error::Mdb(MdbError::ReadersFull) => Error::ReadersFull {
            max: shared.env.max_readers(),
        },
        heed::Error::Mdb(MdbError::Corrupted | MdbError::PageNotFound) => Error::Damaged {
            path: shared.path.clone(),
            problem: format!("LMDB reports: {e}"),
        },
        heed::Error::Io(io) => Error::Io(io),
        other => Error::from(other),
    }
}

pub(crate) fn page_size() -> u64 {
    // LMDB uses the OS page size for new environments.
    4096
}

#[allow(dead_code)]
fn assert_send_sync() {
    fn is<T: Send + Sync + Clone>() {}
    is::<CookieStore>();
}
