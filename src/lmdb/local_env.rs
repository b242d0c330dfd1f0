//! An LMDB environment that only the process that opened it uses ([`LocalEnv`]).
//!
//! LMDB forbids using an environment in any process but the one that opened it (lmdb.h:
//! "Use an MDB_env* in the process which opened it, not after fork()"). A child made by
//! fork() inherits the parent's environment as memory: its reader slot in the forking
//! thread's thread-local storage, the pid LMDB recorded at open (`me_pid`, written into every
//! reader slot the environment registers), the memory maps and the descriptors. Used there,
//! readers of several processes share one slot (`MDB_BAD_RSLOT`), and slots carry the pid of
//! a parent that may exit (its exit, or any process's stale-reader check, then frees the
//! pages under the child's readers: lost writes and `MDB_PAGE_NOTFOUND`). So a handle refuses
//! every call in another process, with [`Error::ForkedProcess`](crate::Error), before LMDB
//! is touched (`crate::fork` tells the processes apart).
//!
//! **The inherited environment in the child** is closed there (`mdb_env_close`) when the
//! child opens the same path again, or when its last inherited handle is dropped, never
//! used. That is safe because of what closing does in a process that never used it, and of
//! when it happens:
//! - it frees the child's copies of LMDB's memory, unmaps the child's mappings and closes
//!   the child's copies of the descriptors. POSIX record locks (LMDB's "environment in use"
//!   lock and its per-reader pid locks on lock.mdb) are not inherited by fork(), and closing
//!   a descriptor only drops the locks *this* process holds on the file: the parent's stay;
//! - it clears the reader slots whose pid is the child's own. The child has none through an
//!   environment of that path yet: the inherited one never registered a reader (refused),
//!   and a fresh one cannot exist while the inherited one is open (heed allows one
//!   environment per path and process, so a reopen closes the inherited one first, under
//!   the registry's lock). Closing the inherited environment *after* a fresh one was opened
//!   would drop the fresh one's locks and slots: that order cannot happen;
//! - with the POSIX robust mutexes LMDB uses on Linux, closing touches no mutex (where LMDB
//!   uses named semaphores, as on macOS, it unlinks them only when it can lock the store
//!   exclusively, i.e. when no other process has it open).
//!
//! Leaking it instead would be safe as well, but heed's own registry of open paths would
//! then refuse every reopen of the path in the child.
//!

use std::cell::UnsafeCell;
use std::path::Path;

use heed::{Env, WithTls};

use crate::error::Result;
use crate::fork::{Opener, env_lifecycle};

/// An LMDB environment, usable only in the process that opened it.
pub(crate) struct LocalEnv {
    opener: Opener,
    /// `None` once closed in a process other than the opener's (see the module's notes).
    env: UnsafeCell<Option<Env<WithTls>>>,
}

// SAFETY: `Env<WithTls>` is Send and Sync. The cell is written only through `&mut self`
// (drop) and by `close_inherited`, which does nothing in the opener's process and elsewhere
// runs under ENV_LIFECYCLE (one closer at a time) while no reference into the cell is alive:
// `get` hands out none outside the opener's process (it reads `opener` only and refuses),
// and the caller of `close_inherited` vouches for references made before fork().
unsafe impl Sync for LocalEnv {}

impl LocalEnv {
    /// Wraps an environment this process has just opened.
    pub(crate) fn new(env: Env<WithTls>) -> LocalEnv {
        LocalEnv {
            opener: Opener::current(),
            env: UnsafeCell::new(Some(env)),
        }
    }

    /// The process that opened it.
    pub(crate) fn opener(&self) -> Opener {
        self.opener
    }

    /// The environment, in the process that opened it; else [`Error::ForkedProcess`] for
    /// the store at `location`.
    #[inline]
    pub(crate) fn get(&self, location: &Path) -> Result<&Env<WithTls>> {
        self.here().ok_or_else(|| self.opener.refusal(location))
    }

    /// [`Self::get`] without the error: `None` outside the opener's process.
    #[inline]
    pub(crate) fn here(&self) -> Option<&Env<WithTls>> {
        if !self.opener.is_current() {
            return None;
        }
        // SAFETY: in the opener's process the cell is only ever written through `&mut self`
        // (`close_inherited` returns at once there), so a shared reference is sound.
        unsafe { &*self.env.get() }.as_ref()
    }

    /// In a process other than the opener's (a child of fork()), closes this process's copy
    /// of the environment, never used here, so that the path can be opened afresh; nothing
    /// in the opener's process. See the module's notes for why closing is safe.
    ///
    /// # Safety
    ///
    /// No reference returned by [`Self::get`] may be alive. Outside the opener's process
    /// `get` returns none, so this is about references made in the opener before fork()
    /// that are still held on the current thread's stack: a transaction of a snapshot or
    /// batch closure that called fork(). The caller checks that no such closure runs.
    pub(crate) unsafe fn close_inherited(&self) {
        // The test `get` makes: where it hands out references, nothing is closed.
        if self.opener.is_current() {
            return;
        }
        let _lifecycle = env_lifecycle();
        // SAFETY: not the opener's process, so `get` reads only `opener` (no reference into
        // the cell); ENV_LIFECYCLE excludes another closer; the caller vouches for
        // references made before fork().
        let env = unsafe { (*self.env.get()).take() };
        drop(env);
    }
}

impl Drop for LocalEnv {
    fn drop(&mut self) {
        // Closed under ENV_LIFECYCLE, so that fork() never happens in the middle of it (heed
        // takes its own registry's lock to close). Outside the opener's process this is the
        // inherited environment, never used here, and no fresh one of its path is open here
        // (a reopen closes this one first): closing is safe (see the module's notes).
        if let Some(env) = self.env.get_mut().take() {
            let _lifecycle = env_lifecycle();
            drop(env);
        }
    }
}
