//! The process-wide registry of open paths: one [`Shared`] environment per path and
//! process (LMDB forbids opening one twice in a process), and what a child of fork() does
//! with the environment it inherited (`local_env.rs`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, Weak};

use crate::config::options::StoreOptions;
use crate::error::{Error, Result};
use crate::fork::{env_lifecycle, registry_gate};
use crate::lmdb::closure::in_closure;
use crate::lmdb::env::Shared;
use crate::lmdb::open::{open_env, prepare_dir};

/// Path → the environment of this process for it (one per path and process).
type Registry = HashMap<PathBuf, Weak<Shared>>;

static REGISTRY: LazyLock<Mutex<Registry>> = LazyLock::new(Default::default);

/// The registry, locked, under its fork gate (`crate::fork`: the gate is what fork() takes).
struct RegistryGuard {
    registry: MutexGuard<'static, Registry>,
    _gate: MutexGuard<'static, ()>,
}

fn lock_registry() -> RegistryGuard {
    let gate = registry_gate();
    RegistryGuard {
        registry: REGISTRY.lock().unwrap_or_else(|e| e.into_inner()),
        _gate: gate,
    }
}

/// The environment of `path` in this process: the one already open (the registry), or a
/// fresh one. Returns the canonical path too.
pub(crate) fn shared_env(path: &Path, options: &StoreOptions) -> Result<(PathBuf, Arc<Shared>)> {
    let path = prepare_dir(path, options.readonly)?;
    let mut guard = lock_registry();
    let registry = &mut guard.registry;
    registry.retain(|_, weak| weak.strong_count() > 0);
    // Dropped after the registry's lock (its drop may close an environment).
    let mut inherited = None;
    let shared = match registry.get(&path).and_then(Weak::upgrade) {
        Some(shared) if !shared.env.opener().is_this_process() => {
            // Opened by the parent of this process (fork()): never used here. Its copy is
            // closed, and the path opened afresh (`local_env.rs` says why that is safe).
            if shared.env.opener().is_current() {
                // A fork that ran no atfork handler: handles of that environment are not
                // refused, so it cannot be closed under them.
                return Err(shared.env.opener().refusal(&path));
            }
            if in_closure() {
                // fork() was called in a snapshot or batch closure, whose transaction still
                // borrows the inherited environment.
                return Err(Error::NestedTransaction);
            }
            // SAFETY: no closure runs on this thread (checked above), so no reference made
            // before fork() into that environment is alive here.
            unsafe { shared.env.close_inherited() };
            inherited = Some(shared);
            let shared = Arc::new(open_fresh(&path, options.readonly, options)?);
            registry.insert(path.clone(), Arc::downgrade(&shared));
            shared
        }
        Some(shared) => {
            if shared.env_readonly && !options.readonly {
                return Err(Error::config(
                    "readonly",
                    format!(
                        "is false, but {} is already open read-only in this process; open it \
                         writable first, or drop the read-only handles",
                        path.display()
                    ),
                ));
            }
            shared
        }
        None => {
            let shared = Arc::new(open_fresh(&path, options.readonly, options)?);
            registry.insert(path.clone(), Arc::downgrade(&shared));
            shared
        }
    };
    drop(guard);
    drop(inherited);
    Ok((path, shared))
}

/// Opens the environment at `path`, under the lock that keeps fork() out of an open or a
/// close (`crate::fork`).
fn open_fresh(path: &Path, readonly: bool, options: &StoreOptions) -> Result<Shared> {
    let _lifecycle = env_lifecycle();
    open_env(path, readonly, options)
}
