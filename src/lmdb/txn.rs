//! The transaction core: every read runs in one read transaction ([`LmdbStore::read`]) and
//! every write in one write transaction ([`LmdbStore::write`]), both begun by one function
//! that adopts a map another process grew, guarded against nesting on a thread, and with
//! heed's errors given their meaning in one place (`Shared::resolve`). When the map fills,
//! the write transaction is aborted, the map doubles (up to `maxsize`) and the closure runs
//! again. A write that changed nothing is aborted, not committed.

use std::cell::Cell;
use std::sync::RwLockReadGuard;
use std::time::{Duration, Instant};

use heed::{Env, MdbError, WithTls};

use crate::error::{Error, LmdbError, LmdbResult, Result};
use crate::lmdb::LmdbStore;
use crate::lmdb::batch::{Batch, WriteTxn};
use crate::lmdb::closure::{ClosureGuard, in_closure};
use crate::lmdb::durability::Flush;
use crate::lmdb::env::page_size;
use crate::lmdb::snapshot::Snapshot;

thread_local! {
    /// How long the closure of this thread's last committed write transaction ran: the
    /// work a maintenance transaction did while holding the writer lock, without the
    /// commit's flush, which `pacing.rs` sizes transactions by.
    static LAST_WORK: Cell<Duration> = const { Cell::new(Duration::ZERO) };
}

/// See [`LAST_WORK`].
pub(crate) fn last_work() -> Duration {
    LAST_WORK.with(Cell::get)
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

impl LmdbStore {
    /// Runs `f` on a read transaction.
    pub(crate) fn read<T>(&self, f: impl FnOnce(&Snapshot<'_>) -> Result<T>) -> Result<T> {
        let shared = &*self.shared;
        let (guard, txn) = self.begin(|env| env.read_txn())?;
        let out = shared.tables(&txn).and_then(|tables| {
            f(&Snapshot {
                txn: &txn,
                tables,
                shared,
                now: self.now(),
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
        if in_closure() {
            return Err(Error::NestedTransaction);
        }
        let shared = &*self.shared;
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

    /// Runs `f` in a write transaction and commits (flushed as `flush` and the durability
    /// policy say), growing the map (as far as `growth` allows) and running `f` again when
    /// it is full. Refused with [`Error::ReadOnly`] on a read-only handle. `f` runs as a
    /// caller's closure: a store call inside it is [`Error::NestedTransaction`].
    pub(crate) fn write<T>(
        &self,
        operation: &'static str,
        growth: Growth,
        flush: Flush,
        mut f: impl FnMut(&mut Batch<'_, '_>) -> Result<T>,
    ) -> Result<T> {
        if self.readonly {
            return Err(Error::ReadOnly { operation });
        }
        let shared = &*self.shared;
        loop {
            let (guard, mut txn) = self.begin(|env| env.write_txn())?;
            let result = shared.tables(&txn).and_then(|tables| {
                let level = tables.check_feature_level(&txn, &shared.path)?;
                let mut batch = Batch {
                    txn: WriteTxn::new(&mut txn),
                    tables,
                    shared,
                    now: self.now(),
                };
                let work = Instant::now();
                let out = {
                    let _closure = ClosureGuard::enter();
                    f(&mut batch)?
                };
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
        let shared = &*self.shared;
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
        let target = usize::try_from(target).unwrap_or(usize::MAX);
        // SAFETY: the exclusive `resize` lock is held, and every transaction of this process
        // is opened under its shared side, so no transaction is live (LMDB's requirement).
        unsafe { env.resize(target) }
            .lmdb()
            .map_err(|e| shared.resolve(e))?;
        Ok(true)
    }

    /// Adopts the map size another process recorded after growing the map.
    fn adopt_map_size(&self) -> Result<()> {
        let shared = &*self.shared;
        let env = shared.env()?;
        let _g = shared.resize.write().unwrap_or_else(|e| e.into_inner());
        // SAFETY: as in `grow_map`: no transaction of this process is live. Size 0 makes LMDB
        // take the size recorded in the current meta page.
        unsafe { env.resize(0) }
            .lmdb()
            .map_err(|e| shared.resolve(e))
    }
}
