//! Connections and the revocation watcher: `cookiestore.Connections` ([`PyConnections`],
//! which connection ids carry which cookie), `cookiestore.Watch` ([`PyWatch`], a running
//! watcher) and the delivery of a watcher's events to its Python callback
//! ([`deliver_watch_event`]).

use std::sync::{Arc, Mutex};

use cookiestore::{Connections, WatchEvent, Watcher};
use pyo3::prelude::*;
use pyo3::types::PyList;

use crate::errors::to_py;
use crate::types::PyRevocation;

/// One event of a watcher, to its Python callback (on the watcher's thread, with the GIL).
/// A callback that raises is reported (printed), and the watcher goes on.
pub(crate) fn deliver_watch_event(
    registry: &Connections<u64>,
    callback: &Py<PyAny>,
    event: WatchEvent<u64>,
) {
    Python::attach(|py| {
        let outcome = match event {
            WatchEvent::Revoked { revocations, .. } => (|| {
                let entries = PyList::empty(py);
                for r in &revocations {
                    let ids = registry.connections(&r.value);
                    entries.append(PyRevocation::with_connections(r, ids))?;
                }
                callback.call1(py, ("revoked", entries, py.None()))
            })(),
            WatchEvent::Missed => callback.call1(py, ("missed", PyList::empty(py), py.None())),
            WatchEvent::Failed(e) => {
                let err = to_py(e).into_value(py);
                callback.call1(py, ("failed", PyList::empty(py), err))
            }
            _ => return,
        };
        if let Err(e) = outcome {
            e.print(py);
        }
    });
}

/// Which connections of this process carry which cookie: the library's `Connections`
/// registry over connection ids (ints the caller assigns to its connection objects). A
/// watcher (`CookieStore.watch`) reports, per revoked cookie, the ids registered for it.
#[pyclass(module = "cookiestore", name = "Connections", frozen)]
pub(crate) struct PyConnections {
    pub(crate) registry: Arc<Connections<u64>>,
}

#[pymethods]
impl PyConnections {
    #[new]
    fn new() -> Self {
        PyConnections {
            registry: Arc::new(Connections::new()),
        }
    }

    /// Records that connection `id` uses the cookie `value` (once).
    fn register(&self, value: &str, id: u64) {
        self.registry.register(value, id);
    }

    /// Forgets that connection `id` uses `value`; returns whether it was registered.
    fn unregister(&self, value: &str, id: u64) -> bool {
        self.registry.unregister(value, &id)
    }

    /// The ids of the connections using `value`, in registration order.
    fn connections(&self, value: &str) -> Vec<u64> {
        self.registry.connections(value)
    }

    /// How many cookies have at least one connection.
    fn cookies(&self) -> usize {
        self.registry.cookies()
    }
}

/// A running watcher of the revocation feed (`CookieStore.watch`).
#[pyclass(module = "cookiestore", name = "Watch", frozen)]
pub(crate) struct PyWatch {
    /// Locked with the GIL held only; taken out to be dropped with the GIL released (its
    /// thread may be waiting for the GIL to call back).
    pub(crate) watcher: Mutex<Option<Watcher>>,
}

#[pymethods]
impl PyWatch {
    /// Stops the watcher and waits for its thread (at most one poll, bounded by the
    /// store's timeout). Stopping twice is fine.
    fn stop(&self, py: Python<'_>) {
        let watcher = self
            .watcher
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        py.detach(|| drop(watcher));
    }

    /// Whether it runs (not stopped).
    #[getter]
    fn running(&self) -> bool {
        self.watcher
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }
}

impl Drop for PyWatch {
    fn drop(&mut self) {
        // Dropped by Python with the GIL held: the thread is told to stop and left to end
        // by itself, never joined here (it may wait for the GIL).
        if let Some(watcher) = self
            .watcher
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            std::thread::spawn(move || drop(watcher));
        }
    }
}
