//! `cookiestore._cookiestore`: the Python binding of the cookiestore library.
//!
//! One class, `Store` (`cookiestore.CookieStore` in Python): a [`Tracker`](cookiestore::Tracker) over a
//! [`CookieStore`](cookiestore::CookieStore), opened from a path and options or from a
//! Crossbar.io `cookie` section. Beside it, the library's [`Connections`](cookiestore::Connections) registry
//! (`cookiestore.Connections`, over connection ids) and its [`Watcher`](cookiestore::Watcher) (`Store.watch`,
//! reporting to a Python callback from its own thread), which the Crossbar plug-in uses to
//! read the revocation feed off the reactor thread.
//! Every call that touches LMDB runs with the GIL released (`Python::detach`), so threads of
//! a Python process look cookies up in parallel; a lookup the library's cache answers (no
//! file read, no transaction) keeps the GIL. Errors become exceptions of the
//! `cookiestore.CookieStoreError` hierarchy, with the library's messages.
//!
//! authextra crosses as the Python objects Crossbar.io passes (dict with str keys, list,
//! tuple, str, int, float, bool, None). The library holds authextra as a JSON value (stored
//! as CBOR), which cannot hold `bytes`, non-str dict keys, integers outside 64 bits or
//! NaN/infinity: those are refused with `AuthextraError`, naming where in
//! the value they are, before anything is written.
//!
//! **fork().** The library refuses a store handle in a process other than the one that
//! opened it (`Error::ForkedProcess`, before LMDB is touched). Python code forks after using
//! a store (a gunicorn master, `multiprocessing` with the `fork` start method, a daemon), so
//! the binding opens the store again in the child instead: each object keeps the path,
//! options and tracking config it was opened with, and after fork() its first call opens the
//! store anew in the child (a fresh LMDB environment; on Redis, new connections) and carries
//! on. The package's `os.register_at_fork` hook (`_after_fork_in_child`) lets every object
//! drop its inherited tracker at once; a call refused because no hook ran (a fork from C)
//! reopens too. A refused call did nothing, so running it again is safe. A `RevocationFeed`
//! goes on from its position on the child's store.
//!
//! Modules: `store` (the `CookieStore` class), `handle` (the fork-aware handle and
//! reopen), `feed` (`RevocationFeed`), `watch` (`Connections`, `Watch`), `section`
//! (Crossbar `cookie` sections, locations), `convert` (Python <-> JSON, the `getAuth`
//! tuple), `errors` (exception classes), `types` (value classes).
//!
//! The binding's own locks are taken only while the GIL is held and never across a release
//! of it, so none is held when `os.fork()` (which holds the GIL) forks.

mod convert;
mod errors;
mod feed;
mod handle;
mod section;
mod store;
mod types;
mod watch;

use pyo3::prelude::*;

use crate::errors::add_exceptions;
use crate::feed::PyFeed;
use crate::handle::_after_fork_in_child;
use crate::section::{check_section, parse_location, store_keys};
use crate::store::{PyTracked, Store};
use crate::types::{PyRevocation, PyStats, PyTableMeta};
use crate::watch::{PyConnections, PyWatch};

#[pymodule]
fn _cookiestore(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add_class::<Store>()?;
    m.add_function(wrap_pyfunction!(check_section, m)?)?;
    m.add_function(wrap_pyfunction!(_after_fork_in_child, m)?)?;
    m.add_function(wrap_pyfunction!(parse_location, m)?)?;
    m.add_function(wrap_pyfunction!(store_keys, m)?)?;
    m.add_class::<PyTracked>()?;
    m.add_class::<PyFeed>()?;
    m.add_class::<PyConnections>()?;
    m.add_class::<PyWatch>()?;
    m.add_class::<PyStats>()?;
    m.add_class::<PyTableMeta>()?;
    m.add_class::<PyRevocation>()?;
    m.add("REVOCATION_KINDS", types::revocation_kinds(py)?)?;
    m.add("REVOKING_KINDS", types::revoking_kinds(py)?)?;
    add_exceptions(m)?;
    Ok(())
}
