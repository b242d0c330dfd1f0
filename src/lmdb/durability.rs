//! Durability where it matters: what each commit flushes to disk ([`Durability`]).
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
use serde::Deserialize;

use crate::error::{LmdbResult, Result};
use crate::store::Shared;

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
