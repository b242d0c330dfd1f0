//! The fork-aware store handle: [`Handle`] keeps the tracker this process opened and what
//! reopens it in a child of fork() (see the crate's notes on fork()), runs calls with the GIL
//! released ([`Handle::run`], [`Handle::call`]), and [`_after_fork_in_child`] is the hook the
//! package registers with `os.register_at_fork`.

use std::sync::{Arc, Mutex, RwLock, Weak};

use cookiestore::{Error, Location, StoreOptions, Tracker, TrackerConfig};
use pyo3::prelude::*;

use crate::errors::to_py;

/// A store as this process uses it: the tracker opened here, and what reopens it in a child
/// made by fork() (see the module's notes).
pub(crate) struct Handle {
    /// The tracker of this process; `None` after fork() until the first use opens the store
    /// again. Locked only while the GIL is held, and never across a release of it: no thread
    /// holds it when Python forks (`os.fork()` runs with the GIL).
    pub(crate) current: RwLock<Option<Arc<Tracker>>>,
    /// What the store was opened with (`purge_on_startup` off: a reopen is not a start-up).
    pub(crate) path: Location,
    pub(crate) options: StoreOptions,
    pub(crate) config: TrackerConfig,
    /// The store's location as its first open resolved it, and whether it is read-only.
    pub(crate) location: Location,
    pub(crate) readonly: bool,
    /// A store call's deadline (ms) as the library applies it (a Redis URL's `?timeout_ms=`
    /// before the options').
    pub(crate) timeout_ms: u64,
}

/// Every handle of this process, for the after-fork hook. Locked with the GIL held only.
static HANDLES: Mutex<Vec<Weak<Handle>>> = Mutex::new(Vec::new());

impl Handle {
    pub(crate) fn open(
        py: Python<'_>,
        path: Location,
        options: StoreOptions,
        config: TrackerConfig,
    ) -> PyResult<Arc<Handle>> {
        let tracker = py
            .detach(|| Tracker::open(&path, options.clone(), config.clone()))
            .map_err(to_py)?;
        let handle = Arc::new(Handle {
            location: tracker.store().location().clone(),
            readonly: tracker.store().is_readonly(),
            timeout_ms: options.effective_timeout_ms(&path),
            current: RwLock::new(Some(Arc::new(tracker))),
            path,
            options: options.purge_on_startup(false),
            config,
        });
        let mut handles = HANDLES.lock().unwrap_or_else(|e| e.into_inner());
        handles.retain(|h| h.strong_count() > 0);
        handles.push(Arc::downgrade(&handle));
        Ok(handle)
    }

    /// The tracker of this process, opened anew first when the process forked since.
    pub(crate) fn tracker(&self, py: Python<'_>) -> PyResult<Arc<Tracker>> {
        let current = self
            .current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        match current {
            Some(tracker) => Ok(tracker),
            None => self.reopen(py, None),
        }
    }

    /// Opens the store again in this process, in place of `stale` (the tracker that was
    /// refused) or of none. When another thread did so meanwhile, its tracker is used.
    pub(crate) fn reopen(
        &self,
        py: Python<'_>,
        stale: Option<&Arc<Tracker>>,
    ) -> PyResult<Arc<Tracker>> {
        // Opened without the lock: another thread may wait on it holding the GIL.
        let fresh = py
            .detach(|| Tracker::open(&self.path, self.options.clone(), self.config.clone()))
            .map_err(to_py)?;
        let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
        match &*current {
            Some(t) if stale.is_none_or(|s| !Arc::ptr_eq(t, s)) => Ok(t.clone()),
            _ => {
                let fresh = Arc::new(fresh);
                *current = Some(fresh.clone());
                Ok(fresh)
            }
        }
    }

    /// `f` on `tracker` with the GIL released. When the store refuses because this process
    /// is a child of the one that opened it, the store is opened again here and `f` runs
    /// once more (the refusal comes before anything is read or written).
    pub(crate) fn call<T: Send>(
        &self,
        py: Python<'_>,
        tracker: Arc<Tracker>,
        f: impl Fn(&Tracker) -> Result<T, Error> + Sync,
    ) -> PyResult<T> {
        match py.detach(|| f(&tracker)) {
            Err(Error::ForkedProcess { .. }) => {
                let tracker = self.reopen(py, Some(&tracker))?;
                py.detach(|| f(&tracker)).map_err(to_py)
            }
            other => other.map_err(to_py),
        }
    }

    /// [`Self::call`] on this process's tracker.
    pub(crate) fn run<T: Send>(
        &self,
        py: Python<'_>,
        f: impl Fn(&Tracker) -> Result<T, Error> + Sync,
    ) -> PyResult<T> {
        let tracker = self.tracker(py)?;
        self.call(py, tracker, f)
    }
}

/// Called by the package in a child right after `os.fork()` (`os.register_at_fork`): every
/// store object lets go of its tracker, which belongs to the parent (its LMDB environment is
/// closed here once nothing else holds it), and opens the store again on first use.
#[pyfunction]
pub(crate) fn _after_fork_in_child() {
    let mut handles = HANDLES.lock().unwrap_or_else(|e| e.into_inner());
    handles.retain(|h| h.strong_count() > 0);
    for handle in handles.iter().filter_map(Weak::upgrade) {
        let inherited = handle
            .current
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        drop(inherited);
    }
}
