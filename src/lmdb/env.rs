//! One LMDB environment per path and process ([`Shared`]), and the one mapping from heed's
//! errors to the crate's ([`Shared::resolve`]).
//!
//! LMDB forbids opening one environment twice in a process, so every handle of a path in a
//! process shares one [`Shared`] (its environment, its cache, its disk reserve), found in a
//! process-wide registry of open paths (`registry.rs`). heed's `unsafe` open stays in
//! `open.rs`.

use std::path::PathBuf;
use std::sync::{OnceLock, RwLock};

use heed::types::Bytes;
use heed::{Database, Env, MdbError, RoTxn, WithTls};

use crate::cache::Cache;
use crate::config::lmdb_options::Durability;
use crate::error::{DAMAGED_ADVICE, Error, LmdbError, Result};
use crate::lmdb::layout::Slots;
use crate::lmdb::local_env::LocalEnv;
use crate::lmdb::reserve::DiskReserve;
use crate::lmdb::tables::{Tables, read_catalog};

/// What all handles of one path in this process share.
pub(crate) struct Shared {
    /// The environment, usable in the process that opened it only (`local_env.rs`): reach
    /// it through [`Shared::env`].
    pub(crate) env: LocalEnv,
    pub(crate) db: Database<'static, Bytes, Bytes>,
    pub(crate) path: PathBuf,
    pub(crate) env_readonly: bool,
    pub(crate) maxsize: u64,
    /// Which commits are flushed (`durability.rs`).
    pub(crate) durability: Durability,
    /// Resolved once both cfxdb tables exist.
    pub(crate) slots: OnceLock<Slots>,
    /// Transactions hold it shared; resizing the map takes it exclusively (LMDB requires
    /// that no transaction of this process is live during `mdb_env_set_mapsize`).
    pub(crate) resize: RwLock<()>,
    /// This process's cache of live cookies' lookups (`cache.rs`).
    pub(crate) cache: Cache,
    /// Disk space kept allocated in data.mdb for deletions (`reserve.rs`).
    pub(crate) reserve: DiskReserve,
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
                problem: format!("LMDB reports: {inner}; {DAMAGED_ADVICE}"),
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

    /// The id of the environment's last committed transaction (any process), without a
    /// transaction (waiting while this process resizes the map); `None` outside the process
    /// that opened the environment.
    pub(crate) fn last_txn_id(&self) -> Option<u64> {
        let env = self.env.here()?;
        // Not while this process resizes the map (the meta pages are read from it).
        let _g = self.resize.read().unwrap_or_else(|e| e.into_inner());
        Some(env.info().last_txn_id as u64)
    }

    /// [`Self::last_txn_id`], but `None` at once while this process resizes the map, and outside the
    /// process that opened the environment (before any of its locks is taken).
    #[inline]
    pub(crate) fn last_txn_id_now(&self) -> Option<u64> {
        let env = self.env.here()?;
        let _g = self.resize.try_read().ok()?;
        Some(env.info().last_txn_id as u64)
    }

    /// The tables as `txn` sees them. Slots are cached once every table exists (they never
    /// change after that); until then (a database only cfxdb wrote, or a new one seen
    /// read-only) the metadata is read again each time.
    pub(crate) fn tables(&self, txn: &RoTxn) -> Result<Tables> {
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

    /// This environment's cache, when enabled.
    pub(crate) fn cache(&self) -> Option<&Cache> {
        self.cache.enabled().then_some(&self.cache)
    }
}

/// LMDB's page size for new environments (the OS page size).
pub(crate) fn page_size() -> u64 {
    4096
}
