//! `fork()`: which process a handle belongs to, and the locks a child must find free.
//!
//! A child made by fork() inherits the parent's handles as memory. Neither backend may use
//! them there as they are: LMDB forbids using an environment in any process but the one
//! that opened it (`lmdb/local_env.rs` says what goes wrong and what the child does
//! instead), and a Redis pool's idle connections are the parent's sockets (`redis/pool.rs`).
//! So every handle remembers the process that opened it ([`Opener`]). A process is told
//! apart by a generation number that a `pthread_atfork` child handler bumps, so the check is
//! one atomic load (a `getpid()` is a system call on glibc ≥ 2.25, about the cost of a whole
//! cached lookup). A fork that runs no atfork handlers (a raw `clone`, `_Fork`) is not seen
//! by the per-call check; opening a path compares the pid as well.
//!
//! **Locks held across fork().** A mutex held by another thread when fork() is called stays
//! held forever in the child. Three gates live here, and the prepare handler takes them all
//! (in this order), the parent and child handlers release them: the gate of the LMDB
//! registry of open paths ([`registry_gate`], held by whoever locks the registry), the lock
//! under which LMDB environments are opened and closed ([`env_lifecycle`], which also keeps
//! heed's own registry of paths free), and the gate of the Redis connection pools
//! ([`gated`], held shared around every lock of an idle list or a breaker's record). So a
//! fork() waits for an open, a close or a pool access in progress, and the child finds them
//! all free. The other locks of a store (its cache, its resize lock) are never taken in a
//! process other than the opener's. This module knows the gates, not what they guard.

use std::cell::RefCell;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, Once, RwLock, RwLockWriteGuard};

use crate::error::Error;

/// Bumped in the child by the `pthread_atfork` child handler: each process (of those made
/// by fork() since the hooks were installed) sees its own value.
static GENERATION: AtomicU64 = AtomicU64::new(0);

static HOOKS: Once = Once::new();

/// Held by whoever locks the LMDB registry of open paths, and across fork().
static REGISTRY_GATE: Mutex<()> = Mutex::new(());

/// Held while an LMDB environment is opened or closed, and across fork().
static ENV_LIFECYCLE: Mutex<()> = Mutex::new(());

/// Held shared while a Redis pool's idle list, a breaker's record or a refusal of the
/// open-time checks is locked; exclusively across fork().
static POOL_GATE: RwLock<()> = RwLock::new(());

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

    /// [`Error::ForkedProcess`] for the store at `location`, used in this process.
    #[cold]
    pub(crate) fn refusal(&self, location: &Path) -> Error {
        Error::ForkedProcess {
            location: location.to_path_buf(),
            opened_by: self.pid,
            current: std::process::id(),
        }
    }
}

/// The gate of the LMDB registry of open paths: held while the registry is locked.
pub(crate) fn registry_gate() -> MutexGuard<'static, ()> {
    REGISTRY_GATE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Held while an LMDB environment is opened or closed.
pub(crate) fn env_lifecycle() -> MutexGuard<'static, ()> {
    ENV_LIFECYCLE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs `f` on the value in `m`, locked under the shared side of the pools' gate. Never
/// nested: a second shared lock taken while a fork() waits for the exclusive one would
/// deadlock.
pub(crate) fn gated<T, R>(m: &Mutex<T>, f: impl FnOnce(&mut T) -> R) -> R {
    let _gate = POOL_GATE.read().unwrap_or_else(|e| e.into_inner());
    let mut value = m.lock().unwrap_or_else(|e| e.into_inner());
    f(&mut value)
}

/// What the prepare handler holds until fork() returns, in the forking thread.
struct Held {
    _registry: MutexGuard<'static, ()>,
    _lifecycle: MutexGuard<'static, ()>,
    _pools: RwLockWriteGuard<'static, ()>,
}

thread_local! {
    static HELD: RefCell<Option<Held>> = const { RefCell::new(None) };
}

/// Takes the gates a child must find free, in the order the rest of the crate takes them:
/// the registry's before the lifecycle lock; the pools' gate is never held while another
/// lock is taken.
extern "C" fn prepare() {
    let held = Held {
        _registry: registry_gate(),
        _lifecycle: env_lifecycle(),
        _pools: POOL_GATE.write().unwrap_or_else(|e| e.into_inner()),
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
