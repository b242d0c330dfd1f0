//! Durability where it matters: what each commit flushes to disk, as the store's
//! [`Durability`](crate::Durability) policy says.
//!
//! A new cookie nobody has logged in with is worth nothing after a power cut: the browser
//! gets another. A lost logout, deletion or auth change is not: it could let a user back in.
//! So under the default policy a create skips (part of) the flush, and every other write
//! flushes, which also flushes every earlier commit (LMDB's flush is an `fdatasync` of the
//! whole data file).
//!
//! How: LMDB reads the environment's `MDB_NOSYNC`/`MDB_NOMETASYNC` flags when a write
//! transaction commits, and they may be changed at any time with `mdb_env_set_flags`
//! (lmdb.h), by one thread at a time. Every write transaction of this crate sets the flags
//! it wants just before its commit, while it holds LMDB's writer lock (which excludes every
//! other writer, in this process too), so only one thread ever changes them, and no commit
//! can run with another transaction's choice.

use heed::{EnvFlags, FlagSetMode};

use crate::config::lmdb_options::Durability;

use crate::error::{LmdbResult, Result};
use crate::lmdb::env::Shared;

/// Whether a write transaction's commit may be lazy under the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flush {
    /// A create of a new cookie: lazy under the lazy policies.
    Lazy,
    /// Everything else: flushed unless the policy is `None`.
    Durable,
}

impl Shared {
    /// Sets the environment's sync flags for the commit of the write transaction the caller
    /// holds. Must be called only while holding a write transaction of this environment.
    pub(crate) fn prepare_commit(&self, flush: Flush) -> Result<()> {
        let (flag, lazy) = match self.durability {
            // Fixed at open.
            Durability::Full | Durability::None => return Ok(()),
            Durability::SafeLazyCreates => (EnvFlags::NO_META_SYNC, flush == Flush::Lazy),
            Durability::LazyCreates => (EnvFlags::NO_SYNC, flush == Flush::Lazy),
        };
        let mode = if lazy {
            FlagSetMode::Enable
        } else {
            FlagSetMode::Disable
        };
        // SAFETY: heed (and LMDB) require that one thread at a time changes the flags. The
        // caller holds a write transaction of this environment, so it holds LMDB's writer
        // lock, which every other writer (another thread of this process too) waits for;
        // and only writers call this. The flags changed are only NO_SYNC/NO_META_SYNC, which
        // LMDB documents as changeable at any time; they weaken durability (never integrity,
        // for NO_META_SYNC; for NO_SYNC see `Durability::LazyCreates`) of exactly the commit
        // the policy allows to be lazy. (A reader beginning meanwhile reads other bits of the
        // same flags word, which do not change.)
        unsafe { self.env()?.set_flags(flag, mode) }.lmdb()
    }
}
