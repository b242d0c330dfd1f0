//! `fork()`: which process a handle belongs to, and what a child process does with the
//! handles it inherited.
//!
//! LMDB forbids using an environment in any process but the one that opened it (lmdb.h:
//! "Use an MDB_env* in the process which opened it, not after fork()"). A child made by
//! fork() inherits the parent's environment as memory: its reader slot in the forking
//! thread's thread-local storage, the pid LMDB recorded at open (`me_pid`, written into every
//! reader slot the environment registers), the memory maps and the descriptors. Used there,
//! readers of several processes share one slot (`MDB_BAD_RSLOT`), and slots carry the pid of
//! a parent that may exit (its exit, or any process's stale-reader check, then frees the
//! pages under the child's readers: lost writes and `MDB_PAGE_NOTFOUND`).
//!
//! So every handle remembers the process that opened it ([`Opener`]) and refuses, with
//! [`Error::ForkedProcess`], before LMDB is touched, in any other. A process is told apart
//! by a generation number that a `pthread_atfork` child handler bumps, so the check is one
//! atomic load (a `getpid()` is a system call on glibc ≥ 2.25, about the cost of a whole
//! cached lookup). A fork that runs no atfork handlers (a raw `clone`, `_Fork`) is not
//! seen by the per-call check; opening a path compares the pid as well.
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
//! **Locks held across fork().** A mutex held by another thread when fork() is called stays
//! held forever in the child. The prepare handler therefore takes the store registry's
//! lock, the lock under which environments are opened and closed (which also keeps heed's
//! registry of paths free), and the gate of the Redis connection pools, and the parent and
//! child handlers release them: a fork() waits for an open, a close or a pool access in
//! progress, and the child finds them all free. The other locks of a store (its cache, its
//! resize lock) are never taken in a process other than the opener's.

use std::cell::{RefCell, UnsafeCell};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, Once};

use heed::{Env, WithTls};

use crate::error::{Error, Result};

/// Bumped in the child by the `pthread_atfork` child handler: each process (of those made
/// by fork() since the hooks were installed) sees its own value.
static GENERATION: AtomicU64 = AtomicU64::new(0);

static HOOKS: Once = Once::new();

/// Held while an LMDB environment is opened or closed, and across fork().
static ENV_LIFECYCLE: Mutex<()> = Mutex::new(());

/// The current process's generation: changes in the child of each fork().
#[inline]
pub(crate) fn generation() -> u64 {
    // Relaxed: the child handler runs on the only thread of the new process before fork()
    // returns there; every thread the child starts later is ordered after it by its spawn.
    GENERATION.load(Ordering::Relaxed)
}

/// The process a handle was opened in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Opener {
    generation: u64,
    pid: u32,
}

impl Opener {
    /// This process (installs the fork hooks on first use).
    pub(crate) fn current() -> Opener {
        install_hooks();
        Opener {
            generation: generation(),
            pid: std::process::id(),
        }
    }

    /// Whether this is still the process that opened the handle (one atomic load).
    #[inline]
    pub(crate) fn is_current(&self) -> bool {
        self.generation == generation()
    }

    /// [`Self::is_current`], and the pid is the same: for opens, where a fork that ran no
    /// atfork handler must not hand a child its parent's environment.
    pub(crate) fn is_this_process(&self) -> bool {
        self.is_current() && self.pid == std::process::id()
    }

    /// `Ok` in the opener's process, else [`Error::ForkedProcess`] for the store at
    /// `location`.
    #[inline]
    pub(crate) fn check(&self, location: &Path) -> Result<()> {
        if self.is_current() {
            Ok(())
        } else {
            Err(self.refusal(location))
        }
    }

    #[cold]
    pub(crate) fn refusal(&self, location: &Path) -> Error {
        Error::ForkedProcess {
            location: location.to_path_buf(),
            opened_by: self.pid,
            current: std::process::id(),
        }
    }
}

/// Held while an environment is opened or closed (see the module's notes).
pub(crate) fn env_lifecycle() -> MutexGuard<'static, ()> {
    ENV_LIFECYCLE.lock().unwrap_or_else(|e| e.into_inner())
}

/// What the prepare handler holds until fork() returns, in the forking thread.
struct Held {
    _registry: MutexGuard<'static, crate::store::Registry>,
    _lifecycle: MutexGuard<'static, ()>,
    #[cfg(feature = "redis")]
    _pools: std::sync::RwLockWriteGuard<'static, ()>,
}

thread_local! {
    static HELD: RefCell<Option<Held>> = const { RefCell::new(None) };
}

/// Takes the locks a child must find free, in the order the rest of the crate takes them:
/// the registry before the lifecycle lock; the pool gate is never held while another lock
/// is taken.
extern "C" fn prepare() {
    let held = Held {
        _registry: crate::store::lock_registry(),
        _lifecycle: env_lifecycle(),
        #[cfg(feature = "redis")]
        _pools: crate::redis::pool::fork_gate_exclusive(),
    };
    let _ = HELD.try_with(|slot| {
        if let Ok(mut slot) = slot.try_borrow_mut() {
            *slot = Some(held);
        }
    });
}

fn release() {
    let _ = HELD.try_with(|slot| {
        if let Ok(mut slot) = slot.try_borrow_mut() {
            slot.take();
        }
    });
}

extern "C" fn in_parent() {
    release();
}

extern "C" fn in_child() {
    GENERATION.fetch_add(1, Ordering::Relaxed);
    // Unlocking a std mutex is an atomic store (and a futex wake that finds no waiter here):
    // nothing that is unsafe after fork().
    release();
}

/// Registers the atfork handlers, once per process (children inherit them).
pub(crate) fn install_hooks() {
    HOOKS.call_once(|| {
        #[cfg(unix)]
        {
            // SAFETY: the handlers are `extern "C"` functions of this crate that live as long
            // as the process; they take and release std locks and bump an atomic, and never
            // unwind (every fallible step is ignored).
            let rc =
                unsafe { libc::pthread_atfork(Some(prepare), Some(in_parent), Some(in_child)) };
            // ENOMEM only; the per-open pid comparison still keeps children off inherited
            // environments when it happens.
            let _ = rc;
        }
    });
}

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
