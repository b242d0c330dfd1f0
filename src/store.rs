//! The store: one LMDB environment, its transactions, the indexes and expiry.
//!
//! [`CookieStore`] is `Clone + Send + Sync`. Clones, and repeated opens of one path in one
//! process, share a single LMDB environment (LMDB forbids opening one environment twice in a
//! process), so heed's `unsafe` open stays inside this module.
//!
//! Writes run as closures inside one write transaction ([`CookieStore::batch`]); when the map
//! fills, the transaction is aborted, the map doubles (up to `maxsize`) and the closure runs
//! again. A map grown by another process is adopted the same way. Every read sees one
//! consistent snapshot, and every read treats an expired cookie as absent.

use std::cell::Cell;
use std::collections::HashMap;
use std::fs;
use std::io::Read;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex, OnceLock, RwLock, Weak};

use heed::types::{Bytes, DecodeIgnore, Unit};
use heed::{
    CommitOrAbort, Database, Env, EnvFlags, EnvOpenOptions, MdbError, RoTxn, RwTxn, WithTls,
};
use uuid::Uuid;

use crate::clock::Clock;
use crate::config::StoreOptions;
use crate::cookie::{Auth, AuthContext, Cookie, CookieCodec, CookieView, MAX_VALUE_LEN};
use crate::error::{Error, Result};
use crate::layout::{
    COOKIES, Catalog, EXPIRY_INDEX, ExpiryKey, MetaCodec, MetaKey, OidCodec, RecordKey,
    STORE_STATE, SlotPrefix, Slots, StateKey, TableDef, TableMeta, U64Codec, VALUE_INDEX, ValueKey,
};

/// Cookies deleted per write transaction by a purge, so the writer lock is never held long.
pub const PURGE_BATCH: usize = 5_000;

/// How many fresh values `create` draws before giving up (a collision is retried, not trusted).
const CREATE_ATTEMPTS: u32 = 16;

/// The standard base64 alphabet, as Crossbar.io uses for values: 6 bits a character, and every
/// character an RFC 6265 cookie-octet.
const VALUE_ALPHABET: &[u8; 64] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static REGISTRY: LazyLock<Mutex<HashMap<PathBuf, Weak<Shared>>>> = LazyLock::new(Default::default);

thread_local! {
    /// Snapshots this thread holds open: a store call inside one would need a second read
    /// transaction on this thread, which LMDB does not allow.
    static IN_SNAPSHOT: Cell<u32> = const { Cell::new(0) };
}

/// What all handles of one path in this process share.
struct Shared {
    env: Env<WithTls>,
    db: Database<'static, Bytes, Bytes>,
    path: PathBuf,
    env_readonly: bool,
    maxsize: u64,
    /// Resolved once both cfxdb tables exist.
    slots: OnceLock<Slots>,
    /// Transactions hold it shared; resizing the map takes it exclusively (LMDB requires
    /// that no transaction of this process is live during `mdb_env_set_mapsize`).
    resize: RwLock<()>,
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
        self.read(|t| Ok(t.lookup(value)?.is_some_and(|(_, v)| !v.is_expired(now))))
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
        self.read(|t| match t.lookup(value)? {
            Some((oid, view)) if !view.is_expired(now) => view
                .auth()
                .map_err(|problem| Error::CorruptRecord { oid, problem }),
            _ => Ok(None),
        })
    }

    /// What a router needs on each connection, from one read: when the live cookie with
    /// `value` expires and its authentication. Reads only those fields.
    pub fn lookup(&self, value: &str) -> Result<Option<Lookup>> {
        let now = self.now_ns();
        self.read(|t| match t.lookup(value)? {
            Some((oid, view)) if !view.is_expired(now) => Ok(Some(Lookup {
                oid,
                expires_at: view.expires_at(),
                auth: view
                    .auth()
                    .map_err(|problem| Error::CorruptRecord { oid, problem })?,
            })),
            _ => Ok(None),
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

    fn with_read_txn<T>(
        &self,
        f: impl FnOnce(&RoTxn<'_, WithTls>, Tables) -> Result<T>,
    ) -> Result<T> {
        if IN_SNAPSHOT.with(Cell::get) > 0 {
            return Err(Error::NestedTransaction);
        }
        let shared = &self.shared;
        loop {
            let guard = shared.resize.read().unwrap_or_else(|e| e.into_inner());
            let txn = match shared.env.read_txn() {
                Ok(txn) => txn,
                Err(heed::Error::Mdb(MdbError::MapResized)) => {
                    drop(guard);
                    self.adopt_map_size()?;
                    continue;
                }
                Err(e) => return Err(self.lmdb(e)),
            };
            let tables = shared.tables(&txn)?;
            let out = f(&txn, tables);
            drop(txn);
            drop(guard);
            return out;
        }
    }

    fn with_write_txn<T>(
        &self,
        growth: Growth,
        mut f: impl FnMut(&mut RwTxn<'_>, Tables) -> Result<T>,
    ) -> Result<T> {
        if IN_SNAPSHOT.with(Cell::get) > 0 {
            return Err(Error::NestedTransaction);
        }
        let shared = &self.shared;
        loop {
            let guard = shared.resize.read().unwrap_or_else(|e| e.into_inner());
            let mut txn = match shared.env.write_txn() {
                Ok(txn) => txn,
                Err(heed::Error::Mdb(MdbError::MapResized)) => {
                    drop(guard);
                    self.adopt_map_size()?;
                    continue;
                }
                Err(e) => return Err(self.lmdb(e)),
            };
            let tables = shared.tables(&txn)?;
            let result = f(&mut txn, tables).and_then(|out| {
                tables.mark_ours(&mut txn)?;
                txn.commit().map_err(|e| self.lmdb(e))?;
                Ok(out)
            });
            drop(guard);
            match result {
                Err(Error::MapFull { .. }) if self.grow_map(growth)? => continue,
                Err(Error::MapFull { .. }) => {
                    return Err(Error::MapFull {
                        maxsize: shared.maxsize,
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

fn page_size() -> u64 {
    // LMDB uses the OS page size for new environments.
    4096
}

// ---- the tables seen through one transaction -------------------------------------------------

/// The typed tables of a store: one unnamed database, remapped per table.
#[derive(Clone, Copy)]
pub(crate) struct Tables {
    db: Database<'static, Bytes, Bytes>,
    pub(crate) slots: Slots,
    present: bool,
}

impl Tables {
    fn new(db: Database<'static, Bytes, Bytes>, slots: Slots) -> Self {
        Tables {
            db,
            slots,
            present: true,
        }
    }

    fn empty(db: Database<'static, Bytes, Bytes>) -> Self {
        Tables {
            db,
            slots: Slots {
                cookies: u16::MAX,
                by_value: u16::MAX,
                by_expiry: None,
                state: None,
            },
            present: false,
        }
    }

    fn records(&self) -> Database<'static, RecordKey, CookieCodec> {
        self.db.remap_types()
    }
    fn by_value(&self) -> Database<'static, ValueKey, OidCodec> {
        self.db.remap_types()
    }
    fn by_expiry(&self) -> Database<'static, ExpiryKey, Unit> {
        self.db.remap_types()
    }
    fn state(&self) -> Database<'static, StateKey, U64Codec> {
        self.db.remap_types()
    }

    fn need_present(&self) -> Result<()> {
        if self.present {
            Ok(())
        } else {
            Err(Error::metadata(
                "the cookie tables are missing from the metadata (slot 0)",
            ))
        }
    }

    /// The oid the value index gives for `value`.
    fn find_oid(&self, txn: &RoTxn, value: &str) -> Result<Option<Uuid>> {
        if !self.present || value.is_empty() || value.len() > MAX_VALUE_LEN {
            return Ok(None);
        }
        let key = ValueKey::new(self.slots.by_value, value)?;
        self.by_value().get(txn, &key).map_err(|e| match e {
            heed::Error::Decoding(d) => {
                Error::metadata(format!("value index entry for {value:?} is damaged: {d}"))
            }
            other => Error::from(other),
        })
    }

    /// The record stored under `oid`, verified.
    fn record<'t>(&self, txn: &'t RoTxn, oid: Uuid) -> Result<Option<CookieView<'t>>> {
        if !self.present {
            return Ok(None);
        }
        self.records()
            .get(txn, &RecordKey::new(self.slots.cookies, oid))
            .map_err(|e| match e {
                heed::Error::Decoding(d) => Error::CorruptRecord {
                    oid,
                    problem: d.to_string(),
                },
                other => Error::from(other),
            })
    }

    /// Value → (oid, record), only when the record really carries that value.
    fn lookup<'t>(&self, txn: &'t RoTxn, value: &str) -> Result<Option<(Uuid, CookieView<'t>)>> {
        let Some(oid) = self.find_oid(txn, value)? else {
            return Ok(None);
        };
        Ok(self
            .record(txn, oid)?
            .filter(|view| view.value() == value)
            .map(|view| (oid, view)))
    }

    fn last_txn_mark(&self, txn: &RoTxn) -> Result<Option<u64>> {
        let Some(slot) = self.slots.state else {
            return Ok(None);
        };
        self.state()
            .get(txn, &StateKey::new(slot, StateKey::LAST_TXN))
            .map_err(|e| Error::metadata(format!("store state is damaged: {e}")))
    }

    /// Records that this transaction was written by cookiestore.
    fn mark_ours(&self, txn: &mut RwTxn) -> Result<()> {
        let Some(slot) = self.slots.state else {
            return Ok(());
        };
        let id = txn.id() as u64;
        self.state()
            .put(txn, &StateKey::new(slot, StateKey::LAST_TXN), &id)
            .map_err(Error::from)
    }

    fn delete_slot(&self, txn: &mut RwTxn, slot: u16) -> Result<u64> {
        let prefix = SlotPrefix::new(slot);
        let mut n = 0;
        let mut iter = self
            .db
            .remap_types::<SlotPrefix, DecodeIgnore>()
            .prefix_iter_mut(txn, &prefix)
            .map_err(Error::from)?
            .remap_key_type::<DecodeIgnore>();
        while let Some(item) = iter.next() {
            item.map_err(Error::from)?;
            // SAFETY: no reference into the database is kept across the deletion.
            unsafe { iter.del_current() }.map_err(Error::from)?;
            n += 1;
        }
        Ok(n)
    }
}

/// A read transaction paired with the tables.
struct TxnTables<'t, 'e> {
    txn: &'t RoTxn<'e, WithTls>,
    tables: Tables,
}

impl<'t> TxnTables<'t, '_> {
    fn lookup(&self, value: &str) -> Result<Option<(Uuid, CookieView<'t>)>> {
        self.tables.lookup(self.txn, value)
    }

    fn foreign_writes(&self) -> Result<bool> {
        foreign_writes(&self.tables, self.txn)
    }

    fn first_expiry(&self, slot: u16) -> Result<Option<u64>> {
        first_expiry(&self.tables, self.txn, slot)
    }
}

fn foreign_writes(tables: &Tables, txn: &RoTxn) -> Result<bool> {
    if !tables.present {
        return Ok(false);
    }
    Ok(match tables.last_txn_mark(txn)? {
        Some(mark) => mark != txn.id() as u64,
        // A database we never wrote: whatever it holds came from someone else.
        None => true,
    })
}

fn first_expiry(tables: &Tables, txn: &RoTxn, slot: u16) -> Result<Option<u64>> {
    let range = (
        Bound::Included(ExpiryKey::lowest(slot, 0)),
        Bound::Included(ExpiryKey::new(slot, u64::MAX, Uuid::max())),
    );
    let mut iter = tables.by_expiry().range(txn, &range).map_err(Error::from)?;
    match iter.next() {
        None => Ok(None),
        Some(Ok((key, ()))) => Ok(Some(key.expires_at())),
        Some(Err(e)) => Err(Error::metadata(format!("expiry index is damaged: {e}"))),
    }
}

fn read_catalog(db: Database<'static, Bytes, Bytes>, txn: &RoTxn) -> Result<Catalog> {
    let mut catalog = Catalog::default();
    let prefix = SlotPrefix::new(0);
    let iter = db
        .remap_key_type::<SlotPrefix>()
        .prefix_iter(txn, &prefix)
        .map_err(Error::from)?
        .remap_key_type::<Bytes>();
    for item in iter {
        let (key, value) = item.map_err(Error::from)?;
        catalog.insert_raw(key, value)?;
    }
    Ok(catalog)
}

fn write_meta(
    db: Database<'static, Bytes, Bytes>,
    txn: &mut RwTxn,
    table: &TableDef,
    slot: u16,
) -> Result<()> {
    db.remap_types::<MetaKey, MetaCodec>()
        .put(txn, &MetaKey::new(slot), &TableMeta::new(table, slot))
        .map_err(Error::from)
}

// ---- snapshots ---------------------------------------------------------------------------------

/// One consistent, read-only view of the store: see [`CookieStore::snapshot`].
pub struct Snapshot<'t> {
    txn: &'t RoTxn<'t, WithTls>,
    tables: Tables,
    shared: &'t Shared,
    now: u64,
}

impl<'t> Snapshot<'t> {
    /// The time expiry is evaluated at (ns).
    pub fn now_ns(&self) -> u64 {
        self.now
    }

    /// The id of the transaction this snapshot reads.
    pub fn txn_id(&self) -> u64 {
        self.txn.id() as u64
    }

    /// The live cookie with `value`.
    pub fn get(&self, value: &str) -> Result<Option<Cookie>> {
        match self.tables.lookup(self.txn, value)? {
            Some((oid, view)) if !view.is_expired(self.now) => Ok(Some(materialise(oid, view)?)),
            _ => Ok(None),
        }
    }

    /// The live cookie with `oid`.
    pub fn get_by_oid(&self, oid: Uuid) -> Result<Option<Cookie>> {
        match self.tables.record(self.txn, oid)? {
            Some(view) if !view.is_expired(self.now) => Ok(Some(materialise(oid, view)?)),
            _ => Ok(None),
        }
    }

    /// Every record in oid order, expired ones included, each decoded on demand. A record
    /// that cannot be decoded is an `Err(CorruptRecord)` item; the walk goes on after it.
    pub fn records(&self) -> Result<impl Iterator<Item = Result<Cookie>> + '_> {
        Ok(self.raw_records()?.map(|item| {
            let (oid, bytes) = item?;
            let view =
                CookieView::new(bytes).map_err(|problem| Error::CorruptRecord { oid, problem })?;
            materialise(oid, view)
        }))
    }

    /// Live cookies in oid order (records that cannot be decoded are errors).
    pub fn live(&self) -> Result<impl Iterator<Item = Result<Cookie>> + '_> {
        let now = self.now;
        Ok(self
            .records()?
            .filter(move |c| c.as_ref().map_or(true, |c| !c.is_expired(now))))
    }

    /// Raw records: (oid from the key, bytes).
    pub(crate) fn raw_records(
        &self,
    ) -> Result<Box<dyn Iterator<Item = Result<(Uuid, &'t [u8])>> + 't>> {
        if !self.tables.present {
            return Ok(Box::new(std::iter::empty()));
        }
        let prefix = SlotPrefix::new(self.tables.slots.cookies);
        let iter = self
            .tables
            .db
            .remap_key_type::<SlotPrefix>()
            .prefix_iter(self.txn, &prefix)
            .map_err(Error::from)?
            .remap_key_type::<Bytes>();
        Ok(Box::new(iter.map(|item| {
            let (key, bytes) = item.map_err(Error::from)?;
            let oid = key
                .get(2..)
                .and_then(|k| Uuid::from_slice(k).ok())
                .ok_or_else(|| {
                    Error::metadata(format!(
                        "Cookies key {} is not slot + 16-byte oid",
                        crate::layout::hex(key)
                    ))
                })?;
            Ok((oid, bytes))
        })))
    }

    /// Raw value-index entries: (value bytes, oid bytes).
    pub(crate) fn raw_value_index(
        &self,
    ) -> Result<Box<dyn Iterator<Item = Result<(&'t [u8], &'t [u8])>> + 't>> {
        self.raw_slot(self.tables.present.then_some(self.tables.slots.by_value))
    }

    /// Raw expiry-index keys after the slot.
    pub(crate) fn raw_expiry_index(
        &self,
    ) -> Result<Box<dyn Iterator<Item = Result<(&'t [u8], &'t [u8])>> + 't>> {
        self.raw_slot(self.tables.slots.by_expiry.filter(|_| self.tables.present))
    }

    fn raw_slot(
        &self,
        slot: Option<u16>,
    ) -> Result<Box<dyn Iterator<Item = Result<(&'t [u8], &'t [u8])>> + 't>> {
        let Some(slot) = slot else {
            return Ok(Box::new(std::iter::empty()));
        };
        let prefix = SlotPrefix::new(slot);
        let iter = self
            .tables
            .db
            .remap_key_type::<SlotPrefix>()
            .prefix_iter(self.txn, &prefix)
            .map_err(Error::from)?
            .remap_key_type::<Bytes>();
        Ok(Box::new(iter.map(|item| {
            let (key, value) = item.map_err(Error::from)?;
            Ok((key.get(2..).unwrap_or_default(), value))
        })))
    }

    /// The table metadata (slot 0).
    pub fn catalog(&self) -> Result<Catalog> {
        read_catalog(self.tables.db, self.txn)
    }

    /// The slots of the cookie tables, if the database has them.
    pub fn slots(&self) -> Option<Slots> {
        self.tables.present.then_some(self.tables.slots)
    }

    /// Whether another program wrote since cookiestore's last write.
    pub fn foreign_writes(&self) -> Result<bool> {
        foreign_writes(&self.tables, self.txn)
    }

    /// Live cookies (walks the keys; decodes only max_age and created).
    pub fn count_live(&self) -> Result<u64> {
        let mut n = 0;
        for item in self.raw_records()? {
            let (_, bytes) = item?;
            if CookieView::new(bytes).is_ok_and(|v| !v.is_expired(self.now)) {
                n += 1;
            }
        }
        Ok(n)
    }

    /// Figures about the store.
    pub fn stats(&self) -> Result<Stats> {
        let mut s = Stats {
            records: 0,
            live: 0,
            expired: 0,
            authenticated: 0,
            corrupt: 0,
            oldest_created: None,
            newest_created: None,
            next_expiry: None,
            value_index_entries: self.raw_value_index()?.count() as u64,
            expiry_index_entries: self.raw_expiry_index()?.count() as u64,
            map_size: 0,
            map_used: 0,
            maxsize: self.shared.maxsize,
            page_size: 0,
            depth: 0,
            branch_pages: 0,
            leaf_pages: 0,
            overflow_pages: 0,
            entries: 0,
            txn_id: self.txn_id(),
            readers_used: 0,
            readers_max: 0,
            tables: self.catalog()?.tables.into_values().collect(),
            foreign_writes: self.foreign_writes()?,
        };
        for item in self.raw_records()? {
            let (_, bytes) = item?;
            s.records += 1;
            let Ok(view) = CookieView::new(bytes) else {
                s.corrupt += 1;
                continue;
            };
            if view.is_expired(self.now) {
                s.expired += 1;
                continue;
            }
            s.live += 1;
            if view.authid().is_some() {
                s.authenticated += 1;
            }
            let c = view.created();
            s.oldest_created = Some(s.oldest_created.map_or(c, |o| o.min(c)));
            s.newest_created = Some(s.newest_created.map_or(c, |o| o.max(c)));
            let e = view.expires_at();
            s.next_expiry = Some(s.next_expiry.map_or(e, |o| o.min(e)));
        }
        let info = self.shared.env.info();
        let stat = self.shared.env.unnamed_database_stat();
        s.map_size = info.map_size as u64;
        s.page_size = stat.page_size;
        s.map_used = (info.last_page_number as u64 + 1) * stat.page_size as u64;
        s.depth = stat.depth;
        s.branch_pages = stat.branch_pages as u64;
        s.leaf_pages = stat.leaf_pages as u64;
        s.overflow_pages = stat.overflow_pages as u64;
        s.entries = stat.entries as u64;
        s.readers_used = info.number_of_readers;
        s.readers_max = info.maximum_number_of_readers;
        Ok(s)
    }
}

fn materialise(oid: Uuid, view: CookieView<'_>) -> Result<Cookie> {
    let mut cookie = view
        .to_cookie()
        .map_err(|problem| Error::CorruptRecord { oid, problem })?;
    if cookie.oid.is_nil() {
        cookie.oid = oid;
    }
    Ok(cookie)
}

// ---- batches -----------------------------------------------------------------------------------

/// The operations of one write transaction: see [`CookieStore::batch`].
pub struct Batch<'a, 'e> {
    txn: &'a mut RwTxn<'e>,
    tables: Tables,
    now: u64,
}

impl Batch<'_, '_> {
    /// The time expiry is evaluated at in this batch (ns).
    pub fn now_ns(&self) -> u64 {
        self.now
    }

    /// The live cookie with `value`, as this transaction sees it.
    pub fn get(&self, value: &str) -> Result<Option<Cookie>> {
        self.tables.need_present()?;
        match self.tables.lookup(self.txn, value)? {
            Some((oid, view)) if !view.is_expired(self.now) => Ok(Some(materialise(oid, view)?)),
            _ => Ok(None),
        }
    }

    /// The record with `oid`, expired or not.
    pub fn get_by_oid_any(&self, oid: Uuid) -> Result<Option<Cookie>> {
        self.tables.need_present()?;
        match self.tables.record(self.txn, oid)? {
            Some(view) => Ok(Some(materialise(oid, view)?)),
            None => Ok(None),
        }
    }

    /// Creates a cookie with a fresh random value: see [`CookieStore::create`].
    pub fn create(&mut self, name: &str, length: usize, max_age: u64) -> Result<Cookie> {
        self.tables.need_present()?;
        if !(1..=MAX_VALUE_LEN).contains(&length) {
            return Err(Error::config(
                "length",
                format!("is {length}; it must be between 1 and {MAX_VALUE_LEN}"),
            ));
        }
        for _ in 0..CREATE_ATTEMPTS {
            let value = random_value(length);
            if self.tables.find_oid(self.txn, &value)?.is_some() {
                continue; // A collision: draw again, never overwrite.
            }
            let oid = Uuid::new_v4();
            if self.tables.record(self.txn, oid)?.is_some() {
                continue;
            }
            let cookie = Cookie {
                oid,
                created: self.now,
                max_age,
                name: Some(name.to_string()),
                value,
                ..Cookie::default()
            };
            self.write_new(&cookie)?;
            return Ok(cookie);
        }
        Err(Error::ValueSpaceExhausted {
            attempts: CREATE_ATTEMPTS,
        })
    }

    /// Stores a whole record: see [`CookieStore::put`]. Replaces the record with the same
    /// oid; a value held by another live record is refused ([`Error::DuplicateValue`]).
    pub fn put(&mut self, cookie: &Cookie) -> Result<()> {
        self.tables.need_present()?;
        if cookie.oid.is_nil() {
            return Err(Error::InvalidValue {
                problem: "the cookie's oid is nil; give it a UUID (for example Uuid::new_v4())"
                    .into(),
            });
        }
        let key = ValueKey::new(self.tables.slots.by_value, &cookie.value)?;
        if !crate::header::is_cookie_octets(&cookie.value) {
            return Err(Error::InvalidValue {
                problem: format!(
                    "{:?} contains characters a Cookie header cannot carry; values are made of \
                     RFC 6265 cookie-octets (printable ASCII without space, '\"', ',', ';', '\\')",
                    cookie.value
                ),
            });
        }
        if let Some(existing) = self.tables.find_oid(self.txn, &cookie.value)?
            && existing != cookie.oid
            && self
                .tables
                .record(self.txn, existing)
                .ok()
                .flatten()
                .is_some()
        {
            return Err(Error::DuplicateValue {
                value: cookie.value.clone(),
                existing,
            });
        }
        let old = match self.tables.record(self.txn, cookie.oid) {
            Ok(Some(view)) => Some((view.value().to_string(), view.expires_at())),
            Ok(None) | Err(Error::CorruptRecord { .. }) => None,
            Err(e) => return Err(e),
        };
        if let Some((old_value, old_expiry)) = old {
            if old_value != cookie.value {
                self.unindex_value(&old_value, cookie.oid)?;
            }
            if old_expiry != cookie.expires_at()
                && let Some(slot) = self.tables.slots.by_expiry
            {
                self.tables
                    .by_expiry()
                    .delete(self.txn, &ExpiryKey::new(slot, old_expiry, cookie.oid))
                    .map_err(Error::from)?;
            }
        }
        self.put_record(cookie)?;
        self.tables
            .by_value()
            .put(self.txn, &key, &cookie.oid)
            .map_err(Error::from)?;
        self.index_expiry(cookie)
    }

    /// Stores `auth` on the live cookie with `value`: see [`CookieStore::set_auth`].
    pub fn set_auth(
        &mut self,
        value: &str,
        auth: &Auth,
        context: &AuthContext,
    ) -> Result<AuthUpdate> {
        self.tables.need_present()?;
        // Before anything recurses over them (compare, clone): hostile nesting is refused.
        crate::cookie::check_depth("authextra", &auth.authextra)?;
        crate::cookie::check_depth("authenticated_transport_info", &context.transport_info)?;
        let Some((oid, view)) = self.tables.lookup(self.txn, value)? else {
            return Ok(AuthUpdate::NoSuchCookie);
        };
        if view.is_expired(self.now) {
            return Ok(AuthUpdate::NoSuchCookie);
        }
        let current = view
            .auth()
            .map_err(|problem| Error::CorruptRecord { oid, problem })?;
        if current.as_ref() == Some(auth) {
            return Ok(AuthUpdate::Unchanged);
        }
        let mut cookie = materialise(oid, view)?;
        cookie.authid = Some(auth.authid.clone());
        cookie.authrole = auth.authrole.clone();
        cookie.authmethod = auth.authmethod.clone();
        cookie.authrealm = auth.authrealm.clone();
        cookie.authextra = auth.authextra.clone();
        cookie.authenticated = self.now;
        cookie.authenticated_on_node = context.node;
        cookie.authenticated_on_worker = context.worker.clone();
        cookie.authenticated_transport_info = context.transport_info.clone();
        cookie.authenticated_session = context.session;
        cookie.authenticated_joined_at = context.joined_at;
        cookie.authenticated_authmethod = context.authmethod.clone();
        // Same oid, value and expiry: only the record changes.
        self.put_record(&cookie)?;
        Ok(AuthUpdate::Written)
    }

    /// Deletes the cookie with `value` and its index entries (expired or not).
    pub fn delete(&mut self, value: &str) -> Result<bool> {
        self.tables.need_present()?;
        match self.tables.find_oid(self.txn, value)? {
            Some(oid) => self.delete_oid(oid),
            None => Ok(false),
        }
    }

    /// Deletes the cookie with `oid` and its index entries. A record that cannot be decoded
    /// is deleted too (its index entries are then left for `repair`).
    pub fn delete_oid(&mut self, oid: Uuid) -> Result<bool> {
        self.tables.need_present()?;
        let old = match self.tables.record(self.txn, oid) {
            Ok(Some(view)) => Some((view.value().to_string(), view.expires_at())),
            Ok(None) => return Ok(false),
            Err(Error::CorruptRecord { .. }) => None,
            Err(e) => return Err(e),
        };
        if let Some((value, expires_at)) = old {
            self.unindex_value(&value, oid)?;
            if let Some(slot) = self.tables.slots.by_expiry {
                self.tables
                    .by_expiry()
                    .delete(self.txn, &ExpiryKey::new(slot, expires_at, oid))
                    .map_err(Error::from)?;
            }
        }
        self.tables
            .records()
            .delete(self.txn, &RecordKey::new(self.tables.slots.cookies, oid))
            .map_err(Error::from)
    }

    /// Deletes up to `limit` expiry-index entries that are due, with their expired cookies.
    /// Returns (entries processed, cookies deleted).
    pub(crate) fn purge_some(&mut self, limit: usize) -> Result<(usize, u64)> {
        self.tables.need_present()?;
        let Some(slot) = self.tables.slots.by_expiry else {
            return Ok((0, 0));
        };
        let range = (
            Bound::Included(ExpiryKey::lowest(slot, 0)),
            Bound::Included(ExpiryKey::new(slot, self.now, Uuid::max())),
        );
        let due: Vec<ExpiryKey> = self
            .tables
            .by_expiry()
            .range(self.txn, &range)
            .map_err(Error::from)?
            .take(limit)
            .map(|item| item.map(|(k, ())| k))
            .collect::<heed::Result<_>>()
            .map_err(|e| Error::metadata(format!("expiry index is damaged: {e}")))?;
        let mut deleted = 0;
        for key in &due {
            let oid = key.oid();
            let state = match self.tables.record(self.txn, oid) {
                Ok(Some(view)) => Some((view.is_expired(self.now), view.expires_at())),
                Ok(None) => None,
                Err(Error::CorruptRecord { .. }) => None, // left for check/repair
                Err(e) => return Err(e),
            };
            match state {
                Some((true, _)) => {
                    if self.delete_oid(oid)? {
                        deleted += 1;
                    }
                }
                Some((false, expires_at)) => {
                    // A stale entry of a record whose expiry changed: keep the right one.
                    self.tables
                        .by_expiry()
                        .put(self.txn, &ExpiryKey::new(slot, expires_at, oid), &())
                        .map_err(Error::from)?;
                }
                None => {}
            }
            self.tables
                .by_expiry()
                .delete(self.txn, key)
                .map_err(Error::from)?;
        }
        Ok((due.len(), deleted))
    }

    /// Rebuilds the expiry index from the records.
    pub(crate) fn rebuild_expiry_index(&mut self) -> Result<()> {
        self.tables.need_present()?;
        let Some(slot) = self.tables.slots.by_expiry else {
            return Ok(());
        };
        self.tables.delete_slot(self.txn, slot)?;
        let prefix = SlotPrefix::new(self.tables.slots.cookies);
        let mut entries = Vec::new();
        for item in self
            .tables
            .db
            .remap_key_type::<SlotPrefix>()
            .prefix_iter(self.txn, &prefix)
            .map_err(Error::from)?
            .remap_key_type::<Bytes>()
        {
            let (key, bytes) = item.map_err(Error::from)?;
            let oid = key.get(2..).and_then(|k| Uuid::from_slice(k).ok());
            if let (Some(oid), Ok(view)) = (oid, CookieView::new(bytes)) {
                entries.push(ExpiryKey::new(slot, view.expires_at(), oid));
            }
        }
        for key in &entries {
            self.tables
                .by_expiry()
                .put(self.txn, key, &())
                .map_err(Error::from)?;
        }
        Ok(())
    }

    fn write_new(&mut self, cookie: &Cookie) -> Result<()> {
        let key = ValueKey::new(self.tables.slots.by_value, &cookie.value)?;
        self.put_record(cookie)?;
        self.tables
            .by_value()
            .put(self.txn, &key, &cookie.oid)
            .map_err(Error::from)?;
        self.index_expiry(cookie)
    }

    fn put_record(&mut self, cookie: &Cookie) -> Result<()> {
        let bytes = cookie.encode()?;
        self.tables
            .db
            .remap_key_type::<RecordKey>()
            .put(
                self.txn,
                &RecordKey::new(self.tables.slots.cookies, cookie.oid),
                &bytes,
            )
            .map_err(Error::from)
    }

    fn index_expiry(&mut self, cookie: &Cookie) -> Result<()> {
        if let Some(slot) = self.tables.slots.by_expiry {
            self.tables
                .by_expiry()
                .put(
                    self.txn,
                    &ExpiryKey::new(slot, cookie.expires_at(), cookie.oid),
                    &(),
                )
                .map_err(Error::from)?;
        }
        Ok(())
    }

    /// Removes `value`'s index entry if it points at `oid` (never another cookie's).
    fn unindex_value(&mut self, value: &str, oid: Uuid) -> Result<()> {
        if value.is_empty() || value.len() > MAX_VALUE_LEN {
            return Ok(());
        }
        if self.tables.find_oid(self.txn, value)? == Some(oid) {
            let key = ValueKey::new(self.tables.slots.by_value, value)?;
            self.tables
                .by_value()
                .delete(self.txn, &key)
                .map_err(Error::from)?;
        }
        Ok(())
    }
}

fn random_value(length: usize) -> String {
    use rand::Rng;
    let mut bytes = vec![0u8; length];
    rand::rng().fill_bytes(&mut bytes);
    bytes
        .iter()
        .map(|b| VALUE_ALPHABET[(b & 63) as usize] as char)
        .collect()
}

// ---- opening -----------------------------------------------------------------------------------

fn prepare_dir(path: &Path, options: &StoreOptions) -> Result<PathBuf> {
    let path_err = |problem: &str, source| Error::Path {
        path: path.to_path_buf(),
        problem: problem.to_string(),
        source,
    };
    match fs::metadata(path) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => {
            return Err(Error::NotAStore {
                path: path.to_path_buf(),
                problem: "it is a file; a store is a directory holding data.mdb and lock.mdb"
                    .into(),
            });
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !options.readonly => {
            create_dir_with_mode(path)
                .map_err(|e| path_err("cannot create the store directory", e))?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(path_err(
                "no cookie store here (the directory does not exist); check the path, or \
                 open it writable once to create it",
                e,
            ));
        }
        Err(e) => return Err(path_err("cannot access the store directory", e)),
    }
    let path = path
        .canonicalize()
        .map_err(|e| path_err("cannot resolve the store path", e))?;
    let data = path.join("data.mdb");
    match fs::metadata(&data) {
        Ok(meta) => check_data_file(&data, meta.len())?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if options.readonly {
                return Err(Error::NotAStore {
                    path: path.clone(),
                    problem: "the directory has no data.mdb; check the path".into(),
                });
            }
            let foreign = fs::read_dir(&path)
                .map_err(|e| path_err("cannot list the store directory", e))?
                .filter_map(|e| e.ok())
                .map(|e| e.file_name())
                .find(|n| n != "lock.mdb");
            if let Some(name) = foreign {
                return Err(Error::NotAStore {
                    path: path.clone(),
                    problem: format!(
                        "the directory holds other files ({}) but no data.mdb; refusing to \
                         create a store among them: use an empty or new directory",
                        name.to_string_lossy()
                    ),
                });
            }
        }
        Err(e) => return Err(path_err("cannot access data.mdb", e)),
    }
    Ok(path)
}

fn create_dir_with_mode(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(path)
    }
    #[cfg(not(unix))]
    fs::create_dir_all(path)
}

const LMDB_MAGIC: u32 = 0xBEEF_C0DE;

/// Checks data.mdb's meta pages before LMDB maps it: the format version, and that the file
/// is not shorter than its meta page says (mapping a truncated file would fault on access).
fn check_data_file(data: &Path, len: u64) -> Result<()> {
    if len == 0 {
        return Ok(()); // LMDB initialises an empty file.
    }
    let damaged = |problem: String| Error::Damaged {
        path: data.to_path_buf(),
        problem,
    };
    let mut head = vec![0u8; 4096 * 2];
    let mut file = fs::File::open(data).map_err(|source| Error::Path {
        path: data.to_path_buf(),
        problem: "cannot read data.mdb".into(),
        source,
    })?;
    let mut filled = 0;
    while filled < head.len() {
        match file.read(&mut head[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::Io(e)),
        }
    }
    let head = &head[..filled];
    let u32_at = |off: usize| {
        head.get(off..off + 4)
            .map(|b| u32::from_le_bytes(b.try_into().expect("4")))
    };
    let u64_at = |off: usize| {
        head.get(off..off + 8)
            .map(|b| u64::from_le_bytes(b.try_into().expect("8")))
    };
    // Meta page 0: a page header (16 bytes in LMDB 0.9; 24 in LMDB 1.0, which adds the
    // page's txnid), then MDB_meta (magic, version, ...).
    let version = if u32_at(16) == Some(LMDB_MAGIC) {
        u32_at(20).unwrap_or(0)
    } else if u32_at(24) == Some(LMDB_MAGIC) {
        u32_at(28).unwrap_or(0)
    } else {
        return Err(Error::NotAStore {
            path: data.to_path_buf(),
            problem: "data.mdb is not an LMDB file (no LMDB magic in its first page)".into(),
        });
    };
    if version != 1 {
        return Err(Error::UnsupportedFormat {
            path: data.to_path_buf(),
            found: version,
            hint: if version == 3 {
                "it was written by LMDB 1.0 (zlmdb 26 creates this format by default): convert \
                 it by exporting with zlmdb (lib_version=\"0.9\") or cfxdb and importing with \
                 `cookiestore restore`, or build cookiestore with the `lmdb-format3` feature"
            } else {
                "this LMDB format is not known to cookiestore"
            },
        });
    }
    // MDB_meta: magic 0, version 4, address 8, mapsize 16, dbs 24..120 (free db's md_pad is
    // the page size), last_pg 120, txnid 128.
    let page = u32_at(16 + 24).unwrap_or(0) as u64;
    if !(512..=65536).contains(&page) || !page.is_power_of_two() {
        return Err(damaged(format!(
            "its meta page gives a page size of {page}"
        )));
    }
    // The newer meta page (higher txnid) is the current one. LMDB may leave the file shorter
    // than its last allocated page (pages allocated and freed in one transaction are never
    // written), so the check is that both B-tree roots lie inside the file: a file cut short
    // loses its newest pages, and the roots are written last.
    let base = |meta: usize| meta * page as usize + 16;
    let txnid = |meta: usize| u64_at(base(meta) + 128);
    let current = match (txnid(0), txnid(1), u32_at(base(1))) {
        (Some(t0), Some(t1), Some(LMDB_MAGIC)) if t1 > t0 => 1,
        (Some(_), _, _) => 0,
        _ => return Err(damaged("its meta page is cut short".into())),
    };
    let pages = len / page;
    for (name, offset) in [("free-page", 24 + 40), ("main", 72 + 40)] {
        let root = u64_at(base(current) + offset).unwrap_or(u64::MAX);
        if root != u64::MAX && root >= pages {
            return Err(damaged(format!(
                "data.mdb is truncated: it has {len} bytes ({pages} pages) but its {name} tree \
                 starts at page {root}; restore the store from a copy (`cookiestore copy`) or \
                 an export"
            )));
        }
    }
    Ok(())
}

fn open_env(path: &Path, options: &StoreOptions) -> Result<Shared> {
    let data = path.join("data.mdb");
    let lock = path.join("lock.mdb");
    let new_files = !data.exists();
    let new_lock = !lock.exists();
    let mut flags = EnvFlags::NO_READ_AHEAD;
    if options.readonly {
        flags |= EnvFlags::READ_ONLY;
    }
    if !options.sync {
        flags |= EnvFlags::NO_SYNC;
    }
    let page = page_size();
    let map_size = options.initial_mapsize.min(options.maxsize).div_ceil(page) * page;
    let mut env_options = EnvOpenOptions::new();
    env_options.map_size(map_size as usize);
    // SAFETY: `flags` holds only READ_ONLY, NO_SYNC and NO_READ_AHEAD, none of which
    // weakens LMDB's locking; NO_SYNC trades durability of the last commits on a system crash,
    // never consistency, and only when the caller asked for sync = false.
    unsafe { env_options.flags(flags) };
    // SAFETY: the process-wide registry (held locked by our caller) guarantees this path is
    // opened at most once in this process; the files are used only through LMDB, with its
    // lock file; and the data file was checked above not to be shorter than its meta page says.
    let env = unsafe { env_options.open(path) }.map_err(|e| match e {
        heed::Error::Mdb(MdbError::Invalid) => Error::NotAStore {
            path: path.to_path_buf(),
            problem: "data.mdb is not a valid LMDB file".into(),
        },
        heed::Error::Mdb(MdbError::VersionMismatch) => Error::UnsupportedFormat {
            path: path.to_path_buf(),
            found: 0,
            hint: "lock.mdb was made by an incompatible LMDB version; close every program \
                   using the store (or reboot) and delete lock.mdb",
        },
        heed::Error::Io(source) => Error::Path {
            path: path.to_path_buf(),
            problem: "cannot open the LMDB files (check permissions)".into(),
            source,
        },
        other => Error::from(other),
    })?;
    #[cfg(unix)]
    if options.file_mode != 0o600 {
        use std::os::unix::fs::PermissionsExt;
        for (file, new) in [(&data, new_files), (&lock, new_lock)] {
            if new {
                fs::set_permissions(file, fs::Permissions::from_mode(options.file_mode))?;
            }
        }
    }
    // Reader slots of dead processes would pin old pages forever: clear them.
    let _ = env.clear_stale_readers();
    let db = if options.readonly {
        let rtxn = env.read_txn().map_err(Error::from)?;
        env.open_databases_and_commit(rtxn, |opener, rtxn| {
            opener
                .open_database::<Bytes, Bytes>(rtxn, None)
                .map(CommitOrAbort::<_, ()>::Commit)
        })
        .map_err(Error::from)?
        .unwrap_commit()
        .ok_or_else(|| Error::NotAStore {
            path: path.to_path_buf(),
            problem: "LMDB has no main database here".into(),
        })?
    } else {
        let wtxn = env.write_txn().map_err(Error::from)?;
        env.create_databases_and_commit(wtxn, |opener, wtxn| {
            opener
                .create_database::<Bytes, Bytes>(wtxn, None)
                .map(CommitOrAbort::<_, ()>::Commit)
        })
        .map_err(Error::from)?
        .unwrap_commit()
    };
    Ok(Shared {
        env,
        db,
        path: path.to_path_buf(),
        env_readonly: options.readonly,
        maxsize: options.maxsize,
        slots: OnceLock::new(),
        resize: RwLock::new(()),
    })
}

#[allow(dead_code)]
fn assert_send_sync() {
    fn is<T: Send + Sync + Clone>() {}
    is::<CookieStore>();
}

// ---- check/repair support ----------------------------------------------------------------------
//
// Crate-internal access to raw keys and values, for `check`, `repair` and `migrate`. Nothing
// here decodes or judges: the callers do.

/// Raw (key, value) pairs read through a snapshot.
pub(crate) type RawEntries<'t> = Box<dyn Iterator<Item = Result<(&'t [u8], &'t [u8])>> + 't>;

impl<'t> Snapshot<'t> {
    /// Every entry of `slot`: (key after the 2-byte slot prefix, value).
    pub(crate) fn raw_table(&self, slot: u16) -> Result<RawEntries<'t>> {
        self.raw_slot(Some(slot))
    }

    /// The record that the value index gives for `value`, expired or not, when it really
    /// carries that value. A record that cannot be decoded is a `CorruptRecord` error.
    pub(crate) fn get_any_by_value(&self, value: &str) -> Result<Option<Cookie>> {
        match self.tables.lookup(self.txn, value)? {
            Some((oid, view)) => Ok(Some(materialise(oid, view)?)),
            None => Ok(None),
        }
    }

    /// Every entry of the unnamed database, metadata included: (whole key, value).
    pub(crate) fn raw_all(&self) -> Result<RawEntries<'t>> {
        let iter = self.tables.db.iter(self.txn).map_err(Error::from)?;
        Ok(Box::new(iter.map(|item| item.map_err(Error::from))))
    }
}

impl Batch<'_, '_> {
    /// The slots of the cookie tables, when the metadata names them.
    pub(crate) fn present_slots(&self) -> Option<Slots> {
        self.tables.present.then_some(self.tables.slots)
    }

    /// Calls `f` with every entry of `slot` (whole key, value) until it returns `false`.
    pub(crate) fn scan_slot(
        &self,
        slot: u16,
        mut f: impl FnMut(&[u8], &[u8]) -> Result<bool>,
    ) -> Result<()> {
        let prefix = SlotPrefix::new(slot);
        for item in self
            .tables
            .db
            .remap_key_type::<SlotPrefix>()
            .prefix_iter(self.txn, &prefix)
            .map_err(Error::from)?
            .remap_key_type::<Bytes>()
        {
            let (key, value) = item.map_err(Error::from)?;
            if !f(key, value)? {
                break;
            }
        }
        Ok(())
    }

    /// The value stored under a whole raw key.
    pub(crate) fn raw_get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self
            .tables
            .db
            .get(self.txn, key)
            .map_err(Error::from)?
            .map(<[u8]>::to_vec))
    }

    /// Stores `value` under a whole raw key.
    pub(crate) fn raw_put(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        self.tables
            .db
            .put(self.txn, key, value)
            .map_err(Error::from)
    }

    /// Deletes a whole raw key; returns whether it existed.
    pub(crate) fn raw_delete(&mut self, key: &[u8]) -> Result<bool> {
        self.tables.db.delete(self.txn, key).map_err(Error::from)
    }

    /// Deletes every entry of `slot`; returns how many.
    pub(crate) fn clear_slot(&mut self, slot: u16) -> Result<u64> {
        self.tables.delete_slot(self.txn, slot)
    }

    /// The record that the value index gives for `value`, expired or not, when it really
    /// carries that value. A record that cannot be decoded is a `CorruptRecord` error.
    pub(crate) fn get_any_by_value(&self, value: &str) -> Result<Option<Cookie>> {
        self.tables.need_present()?;
        match self.tables.lookup(self.txn, value)? {
            Some((oid, view)) => Ok(Some(materialise(oid, view)?)),
            None => Ok(None),
        }
    }
}
