//! `cookiestore.RevocationFeed` ([`PyFeed`]): a reader of the store's revocation feed that
//! remembers its position, and goes on from it on the child's store after fork().

use std::sync::{Arc, Mutex};
use std::time::Duration;

use cookiestore::{Error, Revocations, Subscriber, Tracker};
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};

use crate::errors::to_py;
use crate::handle::Handle;
use crate::types::PyRevocation;

/// A reader of the store's revocation feed (logouts from every process), remembering where it
/// is. `poll()` costs no transaction when nothing was committed since the last one.
#[pyclass(module = "cookiestore", name = "RevocationFeed", frozen)]
pub(crate) struct PyFeed {
    handle: Arc<Handle>,
    /// Locked with the GIL held only (as `Handle::current`): a poll takes the subscriber
    /// out, polls with the GIL released, and puts it back.
    state: Mutex<FeedState>,
}

struct FeedState {
    /// The subscriber and the tracker it reads; `None` while a poll runs.
    subscriber: Option<(Arc<Tracker>, Subscriber)>,
    /// Its position after the last poll.
    position: u64,
    /// The process whose thread took the subscriber out (a thread that does not exist in a
    /// child of fork(): the child starts over from `position`).
    taken_by: u32,
}

pub(crate) fn revocations<'py>(
    py: Python<'py>,
    found: Revocations,
) -> PyResult<Bound<'py, PyTuple>> {
    let entries = PyList::empty(py);
    for r in &found.entries {
        entries.append(PyRevocation::new(r))?;
    }
    (entries, found.next, found.missed).into_pyobject(py)
}

impl PyFeed {
    pub(crate) fn new(
        handle: Arc<Handle>,
        tracker: Arc<Tracker>,
        subscriber: Subscriber,
    ) -> PyFeed {
        PyFeed {
            handle,
            state: Mutex::new(FeedState {
                position: subscriber.position(),
                subscriber: Some((tracker, subscriber)),
                taken_by: 0,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FeedState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The subscriber, taken out; waits (GIL released) while another thread polls.
    fn take(&self, py: Python<'_>) -> PyResult<(Arc<Tracker>, Subscriber)> {
        loop {
            let restart = {
                let mut state = self.lock();
                if let Some(taken) = state.subscriber.take() {
                    state.taken_by = std::process::id();
                    return Ok(taken);
                }
                if state.taken_by == std::process::id() {
                    None
                } else {
                    // Taken by a thread of the parent process: gone with it.
                    state.taken_by = std::process::id();
                    Some(state.position)
                }
            };
            if let Some(position) = restart {
                let tracker = self.handle.tracker(py).inspect_err(|_| {
                    // Nothing taken out: the next poll starts over.
                    self.lock().taken_by = 0;
                })?;
                let subscriber = Subscriber::starting_after(tracker.store(), position);
                return Ok((tracker, subscriber));
            }
            py.detach(|| std::thread::sleep(Duration::from_micros(200)));
        }
    }
}

#[pymethods]
impl PyFeed {
    /// `(entries, position, missed)`: the feed entries since the last poll, each a
    /// `Revocation` (every kind of `REVOCATION_KINDS`: its `revokes` says whether to close
    /// the cookie's connections); the sequence number read up to; whether some were trimmed
    /// before they were read.
    fn poll<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        let (mut tracker, mut subscriber) = self.take(py)?;
        let found = match py.detach(|| subscriber.poll()) {
            // A feed made before fork(): read on, from its position, on this process's store.
            Err(Error::ForkedProcess { .. }) => match self.handle.reopen(py, Some(&tracker)) {
                Ok(fresh) => {
                    subscriber = Subscriber::starting_after(fresh.store(), subscriber.position());
                    tracker = fresh;
                    py.detach(|| subscriber.poll()).map_err(to_py)
                }
                Err(e) => Err(e),
            },
            other => other.map_err(to_py),
        };
        {
            let mut state = self.lock();
            state.position = subscriber.position();
            state.subscriber = Some((tracker, subscriber));
        }
        revocations(py, found?)
    }

    /// The sequence number this feed reads after.
    #[getter]
    fn position(&self) -> u64 {
        let state = self.lock();
        state
            .subscriber
            .as_ref()
            .map_or(state.position, |(_, s)| s.position())
    }
}
