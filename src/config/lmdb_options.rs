//! LMDB's options ([`LmdbOptions`]: the map, flushing, file modes, the per-process cache) and
//! what a commit flushes ([`Durability`]).

use serde::Deserialize;

use crate::error::{Error, Result};

/// Smallest allowed `maxsize`: 128 KiB.
pub const MIN_MAXSIZE: u64 = 128 * 1024;
/// Largest allowed `maxsize`: 128 GiB.
pub const MAX_MAXSIZE: u64 = 128 * 1024 * 1024 * 1024;
/// Default `maxsize`: 1 GiB, as Crossbar.io's database store.
pub const DEFAULT_MAXSIZE: u64 = 1024 * 1024 * 1024;
/// Default budget of the per-process cache: 384 MiB. An entry of a typical cookie (a
/// 24-character value, short auth strings, a three-key authextra) is estimated at ~330 bytes
/// (265 to 297 measured), so the default holds a whole store of 1M such cookies (~317 MiB
/// estimated, 265 MiB measured) with a fifth to spare, under a sixth of the memory
/// Crossbar's file store spends on 1M (~2.4 GB per worker, +239 MiB at 100k;
/// docs/benchmarks.md, "Performance through Python"). A budget is a bound, not an
/// allocation: a process holds only the cookies it looked up (100k take ~32 MiB).
pub const DEFAULT_CACHE_BYTES: u64 = 384 * 1024 * 1024;
/// Default size the map starts at (it doubles on demand up to `maxsize`): 64 MiB.
pub const DEFAULT_INITIAL_MAPSIZE: u64 = 64 * 1024 * 1024;

/// The options only an LMDB store reads ([`StoreOptions::lmdb`](crate::StoreOptions::lmdb));
/// set them with [`StoreOptions`](crate::StoreOptions)'s builder methods (`.maxsize(..)`,
/// `.sync(..)`, ...). In a node config they sit in the `store` object beside the others.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
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
    /// off. Default 384 MiB (a bound: the entries cached take the memory). One cache serves every handle of a path in a process; the first
    /// open sizes it.
    pub cache_bytes: u64,
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

    /// Checks every field; the error names the field and its allowed range.
    pub(crate) fn validate(&self) -> Result<()> {
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

/// What a commit flushes to disk before it returns (with [`LmdbOptions::sync`] on; with
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
