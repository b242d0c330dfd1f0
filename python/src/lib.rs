//! `cookiestore._cookiestore`: the Python binding of the cookiestore library.
//!
//! One class, `Store` (`cookiestore.CookieStore` in Python): a [`Tracker`] over a
//! [`CookieStore`](cookiestore::CookieStore), opened from a path and options or from a
//! Crossbar.io `cookie` section. Beside it, the library's [`Connections`] registry
//! (`cookiestore.Connections`, over connection ids) and its [`Watcher`] (`Store.watch`,
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
//! The binding's own locks are taken only while the GIL is held and never across a release
//! of it, so none is held when `os.fork()` (which holds the GIL) forks.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use cookiestore::{
    Auth, AuthContext, AuthUpdate, Connections, CookieSection, CookieValue, Error, Health,
    Location, Revocations, StoreOptions, StoreSection, Subscriber, Tracker, TrackerConfig,
    WatchEvent, Watcher,
};
use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use serde_json::{Map, Number, Value};

mod types;
use types::{PyRevocation, PyStats, PyTableMeta};

create_exception!(
    cookiestore,
    CookieStoreError,
    PyException,
    "Base class of every error the cookie store raises."
);
create_exception!(
    cookiestore,
    ConfigError,
    CookieStoreError,
    "A configuration value is outside its allowed range or malformed (names the field)."
);
create_exception!(
    cookiestore,
    UnsupportedLocationError,
    ConfigError,
    "The location is a URL of a kind cookiestore does not serve (not a directory, not a \
     Redis URL)."
);
create_exception!(
    cookiestore,
    InvalidValueError,
    CookieStoreError,
    "A cookie value or record cannot be stored (empty, too long, not cookie-safe, too large)."
);
create_exception!(
    cookiestore,
    InvalidAuthError,
    InvalidValueError,
    "An authentication cannot be stored as given (an empty authid)."
);
create_exception!(
    cookiestore,
    DuplicateValueError,
    InvalidValueError,
    "The cookie value already belongs to another cookie: values are unique."
);
create_exception!(
    cookiestore,
    StoreFullError,
    CookieStoreError,
    "The store reached its maxsize: purge expired cookies or raise maxsize."
);
create_exception!(
    cookiestore,
    DiskFullError,
    CookieStoreError,
    "The file system holding the store is full (or the quota is spent): free space there."
);
create_exception!(
    cookiestore,
    ReadOnlyError,
    CookieStoreError,
    "A write through a store opened read-only."
);
create_exception!(
    cookiestore,
    CorruptStoreError,
    CookieStoreError,
    "A record, an index or the metadata is damaged: run `cookiestore check` / `repair`."
);
create_exception!(
    cookiestore,
    CorruptRecordError,
    CorruptStoreError,
    "A stored cookie record cannot be decoded: `cookiestore repair` quarantines it."
);
create_exception!(
    cookiestore,
    InvalidRecordError,
    CorruptStoreError,
    "Bytes that should hold a cookie record are not a valid record."
);
create_exception!(
    cookiestore,
    CorruptMetadataError,
    CorruptStoreError,
    "The store's table metadata or an index entry is damaged: `cookiestore repair` \
     rebuilds the indexes."
);
create_exception!(
    cookiestore,
    DamagedStoreError,
    CorruptStoreError,
    "The store's files are damaged (data.mdb truncated or its pages damaged, or an \
     impossible lock.mdb): restore from an export or a copy."
);
create_exception!(
    cookiestore,
    StoreOpenError,
    CookieStoreError,
    "The store cannot be opened or written: not a store, unsupported LMDB format, bad \
     path, locked, newer, or an unsafe Redis."
);
create_exception!(
    cookiestore,
    NotAStoreError,
    StoreOpenError,
    "The path exists but is not an LMDB cookie store."
);
create_exception!(
    cookiestore,
    UnsupportedFormatError,
    StoreOpenError,
    "data.mdb was written by an LMDB whose data format this build cannot read."
);
create_exception!(
    cookiestore,
    PathError,
    StoreOpenError,
    "The path cannot be used: missing, not a directory, or without permission."
);
create_exception!(
    cookiestore,
    LockConflictError,
    StoreOpenError,
    "The store is open in another program whose LMDB cannot share lock.mdb (Crossbar.io's \
     LMDB 0.9): stop it or wait until it closes the store."
);
create_exception!(
    cookiestore,
    NewerStoreError,
    StoreOpenError,
    "A newer cookiestore wrote this store: this build reads it but does not write it; \
     upgrade every program using it."
);
create_exception!(
    cookiestore,
    RedisSettingError,
    StoreOpenError,
    "The Redis server may drop the store's keys by itself (its maxmemory-policy evicts): \
     set it to noeviction, or open with allow_eviction."
);
create_exception!(
    cookiestore,
    AuthextraError,
    CookieStoreError,
    "authextra holds a value the store cannot keep (bytes, a non-str key, ...)."
);
create_exception!(
    cookiestore,
    UnavailableError,
    CookieStoreError,
    "The store's server (Redis) cannot be reached or did not answer in time; the same store \
     object works again once it is back."
);
create_exception!(
    cookiestore,
    RedisError,
    CookieStoreError,
    "The Redis server answered the store's command with an error (out of memory, wrong \
     key type, a script error, ...)."
);
create_exception!(
    cookiestore,
    ValueSpaceExhaustedError,
    CookieStoreError,
    "Creating a cookie kept drawing values that already exist: raise `length`."
);
create_exception!(
    cookiestore,
    ReadersFullError,
    CookieStoreError,
    "LMDB's reader table is full: too many processes or threads have the store open."
);
create_exception!(
    cookiestore,
    NestedTransactionError,
    CookieStoreError,
    "A store method was called inside a snapshot or batch of the same thread."
);
create_exception!(
    cookiestore,
    ForkedProcessError,
    CookieStoreError,
    "A store handle was used in a child made by fork() (the package normally opens the \
     store again there by itself)."
);
create_exception!(
    cookiestore,
    UnsupportedError,
    CookieStoreError,
    "The operation applies to LMDB stores only, and this store is on another backend."
);
create_exception!(
    cookiestore,
    NotEmptyError,
    CookieStoreError,
    "A restore or copy was refused: its destination already holds cookies."
);
create_exception!(
    cookiestore,
    DestinationExistsError,
    CookieStoreError,
    "A copy was refused: its destination exists (a copy creates a new directory)."
);
create_exception!(
    cookiestore,
    LmdbError,
    CookieStoreError,
    "An LMDB error without a class of its own; the message is LMDB's."
);
create_exception!(
    cookiestore,
    StoreIOError,
    CookieStoreError,
    "An I/O error outside LMDB; the message is the operating system's."
);

/// Adds every exception class to the module (`CookieStoreError` and its subclasses).
fn add_exceptions(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    macro_rules! add {
        ($($class:ident),* $(,)?) => {
            $(m.add(stringify!($class), py.get_type::<$class>())?;)*
        };
    }
    add!(
        CookieStoreError,
        ConfigError,
        UnsupportedLocationError,
        InvalidValueError,
        InvalidAuthError,
        DuplicateValueError,
        StoreFullError,
        DiskFullError,
        ReadOnlyError,
        CorruptStoreError,
        CorruptRecordError,
        InvalidRecordError,
        CorruptMetadataError,
        DamagedStoreError,
        StoreOpenError,
        NotAStoreError,
        UnsupportedFormatError,
        PathError,
        LockConflictError,
        NewerStoreError,
        RedisSettingError,
        AuthextraError,
        UnavailableError,
        RedisError,
        ValueSpaceExhaustedError,
        ReadersFullError,
        NestedTransactionError,
        ForkedProcessError,
        UnsupportedError,
        NotEmptyError,
        DestinationExistsError,
        LmdbError,
        StoreIOError,
    );
    Ok(())
}

/// The library's error as a Python exception of its own class, with its message: one class
/// per variant, each under the broader class that caught it before (`StoreOpenError`,
/// `CorruptStoreError`, ...), so that code catching those still catches it.
fn to_py(e: Error) -> PyErr {
    let msg = e.to_string();
    match e {
        Error::InvalidConfig { .. } => ConfigError::new_err(msg),
        Error::UnsupportedLocation { .. } => UnsupportedLocationError::new_err(msg),
        Error::InvalidValue { .. } => InvalidValueError::new_err(msg),
        Error::InvalidAuth { .. } => InvalidAuthError::new_err(msg),
        Error::DuplicateValue { .. } => DuplicateValueError::new_err(msg),
        Error::MapFull { .. } => StoreFullError::new_err(msg),
        Error::DiskFull { .. } => DiskFullError::new_err(msg),
        Error::ReadOnly { .. } => ReadOnlyError::new_err(msg),
        Error::CorruptRecord { .. } => CorruptRecordError::new_err(msg),
        Error::InvalidRecord { .. } => InvalidRecordError::new_err(msg),
        Error::CorruptMetadata { .. } => CorruptMetadataError::new_err(msg),
        Error::Damaged { .. } => DamagedStoreError::new_err(msg),
        Error::NotAStore { .. } => NotAStoreError::new_err(msg),
        Error::UnsupportedFormat { .. } => UnsupportedFormatError::new_err(msg),
        Error::Path { .. } => PathError::new_err(msg),
        Error::LockConflict { .. } => LockConflictError::new_err(msg),
        Error::NewerStore { .. } => NewerStoreError::new_err(msg),
        Error::RedisSetting { .. } => RedisSettingError::new_err(msg),
        Error::Unavailable { .. } => UnavailableError::new_err(msg),
        Error::Redis { .. } => RedisError::new_err(msg),
        Error::ValueSpaceExhausted { .. } => ValueSpaceExhaustedError::new_err(msg),
        Error::ReadersFull { .. } => ReadersFullError::new_err(msg),
        Error::NestedTransaction => NestedTransactionError::new_err(msg),
        Error::ForkedProcess { .. } => ForkedProcessError::new_err(msg),
        Error::Unsupported { .. } => UnsupportedError::new_err(msg),
        Error::NotEmpty { .. } => NotEmptyError::new_err(msg),
        Error::DestinationExists { .. } => DestinationExistsError::new_err(msg),
        Error::Lmdb(_) => LmdbError::new_err(msg),
        Error::Io(_) => StoreIOError::new_err(msg),
        // `Error` is non-exhaustive: a variant added later is at least a CookieStoreError.
        _ => CookieStoreError::new_err(msg),
    }
}

fn authextra_err(at: &str, problem: impl std::fmt::Display) -> PyErr {
    AuthextraError::new_err(format!(
        "authextra{at}: {problem}; the store keeps authextra as dict (str keys), list, str, \
         int (64-bit), float (finite), bool and None"
    ))
}

/// A Python object (authextra, a config section) as a JSON value; refuses what JSON cannot
/// hold, naming where it is (`["key"][2]`).
fn to_json(obj: &Bound<'_, PyAny>, at: &mut String, depth: usize) -> PyResult<Value> {
    if depth > 64 {
        return Err(authextra_err(at, "nested deeper than 64 levels"));
    }
    if obj.is_none() {
        return Ok(Value::Null);
    }
    if let Ok(b) = obj.cast::<PyBool>() {
        return Ok(Value::Bool(b.is_true()));
    }
    if obj.is_instance_of::<PyInt>() {
        if let Ok(i) = obj.extract::<i64>() {
            return Ok(Value::from(i));
        }
        if let Ok(u) = obj.extract::<u64>() {
            return Ok(Value::from(u));
        }
        return Err(authextra_err(
            at,
            format!("the int {obj} does not fit in 64 bits"),
        ));
    }
    if let Ok(f) = obj.cast::<PyFloat>() {
        let v = f.value();
        return Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| authextra_err(at, format!("the float {v} is not finite")));
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(Value::String(s.to_str()?.to_owned()));
    }
    if obj.is_instance_of::<PyBytes>() || obj.is_instance_of::<pyo3::types::PyByteArray>() {
        return Err(authextra_err(
            at,
            "bytes cannot be stored (JSON has no bytes); encode them first, e.g. base64 or hex",
        ));
    }
    if let Ok(d) = obj.cast::<PyDict>() {
        let mut map = Map::new();
        for (k, v) in d.iter() {
            let Ok(key) = k.cast::<PyString>() else {
                return Err(authextra_err(
                    at,
                    format!("the dict key {} is not a str", k.repr()?),
                ));
            };
            let key = key.to_str()?.to_owned();
            let len = at.len();
            at.push_str(&format!("[{key:?}]"));
            let value = to_json(&v, at, depth + 1)?;
            at.truncate(len);
            map.insert(key, value);
        }
        return Ok(Value::Object(map));
    }
    if obj.is_instance_of::<PyList>() || obj.is_instance_of::<PyTuple>() {
        let mut items = Vec::new();
        for (i, item) in obj.try_iter()?.enumerate() {
            let len = at.len();
            at.push_str(&format!("[{i}]"));
            items.push(to_json(&item?, at, depth + 1)?);
            at.truncate(len);
        }
        return Ok(Value::Array(items));
    }
    Err(authextra_err(
        at,
        format!("a {} cannot be stored", obj.get_type().name()?),
    ))
}

/// A JSON value as Python objects: dict, list, str, int, float, bool, None.
fn from_json<'py>(py: Python<'py>, value: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match value {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                i.into_pyobject(py)?.into_any()
            } else if let Some(u) = n.as_u64() {
                u.into_pyobject(py)?.into_any()
            } else {
                n.as_f64().unwrap_or(f64::NAN).into_pyobject(py)?.into_any()
            }
        }
        Value::String(s) => PyString::new(py, s).into_any(),
        Value::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(from_json(py, item)?)?;
            }
            list.into_any()
        }
        Value::Object(map) => {
            let dict = PyDict::new(py);
            for (k, v) in map {
                dict.set_item(k, from_json(py, v)?)?;
            }
            dict.into_any()
        }
    })
}

/// A value Python passed as str or bytes (a Cookie header, a cookie value).
fn header_bytes(obj: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    if let Ok(b) = obj.cast::<PyBytes>() {
        return Ok(b.as_bytes().to_vec());
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(s.to_str()?.as_bytes().to_vec());
    }
    Err(PyTypeError::new_err(format!(
        "the Cookie header must be bytes, str or None, not {}",
        obj.get_type().name()?
    )))
}

/// The 5-tuple Crossbar.io's `getAuth` returns: `(authid, authrole, authmethod, authrealm,
/// authextra)`.
fn auth_tuple<'py>(py: Python<'py>, auth: &Auth) -> PyResult<Bound<'py, PyTuple>> {
    PyTuple::new(
        py,
        [
            PyString::new(py, &auth.authid).into_any(),
            opt_str(py, auth.authrole.as_deref()),
            opt_str(py, auth.authmethod.as_deref()),
            opt_str(py, auth.authrealm.as_deref()),
            from_json(py, &auth.authextra)?,
        ],
    )
}

fn opt_str<'py>(py: Python<'py>, s: Option<&str>) -> Bound<'py, PyAny> {
    match s {
        Some(s) => PyString::new(py, s).into_any(),
        None => py.None().into_bound(py),
    }
}

/// The answer to `CookieStore.track`: the cookie in use for one connection.
#[pyclass(module = "cookiestore", name = "Tracked", frozen, get_all)]
struct PyTracked {
    /// The cookie value in use for this connection.
    value: String,
    /// Whether the cookie was created now (none, an unknown or an expired one was sent).
    is_new: bool,
    /// The `Set-Cookie` header value: `name=value;max-age=N` plus the configured attributes.
    set_cookie: String,
    /// `(authid, authrole, authmethod, authrealm, authextra)`, or None when unauthenticated.
    auth: Option<Py<PyTuple>>,
}

#[pymethods]
impl PyTracked {
    /// The authid to use: the stored one, or (unauthenticated) the cookie value itself.
    #[getter]
    fn authid(&self, py: Python<'_>) -> PyResult<String> {
        match &self.auth {
            Some(t) => t.bind(py).get_item(0)?.extract(),
            None => Ok(self.value.clone()),
        }
    }

    fn __repr__(&self) -> String {
        format!(
            "Tracked(value={:?}, is_new={}, set_cookie={:?}, authenticated={})",
            self.value,
            if self.is_new { "True" } else { "False" },
            self.set_cookie,
            if self.auth.is_some() { "True" } else { "False" },
        )
    }
}

/// A store as this process uses it: the tracker opened here, and what reopens it in a child
/// made by fork() (see the module's notes).
struct Handle {
    /// The tracker of this process; `None` after fork() until the first use opens the store
    /// again. Locked only while the GIL is held, and never across a release of it: no thread
    /// holds it when Python forks (`os.fork()` runs with the GIL).
    current: RwLock<Option<Arc<Tracker>>>,
    /// What the store was opened with (`purge_on_startup` off: a reopen is not a start-up).
    path: Location,
    options: StoreOptions,
    config: TrackerConfig,
    /// The store's location as its first open resolved it, and whether it is read-only.
    location: Location,
    readonly: bool,
    /// A store call's deadline (ms) as the library applies it (a Redis URL's `?timeout_ms=`
    /// before the options').
    timeout_ms: u64,
}

/// Every handle of this process, for the after-fork hook. Locked with the GIL held only.
static HANDLES: Mutex<Vec<Weak<Handle>>> = Mutex::new(Vec::new());

impl Handle {
    fn open(
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
    fn tracker(&self, py: Python<'_>) -> PyResult<Arc<Tracker>> {
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
    fn reopen(&self, py: Python<'_>, stale: Option<&Arc<Tracker>>) -> PyResult<Arc<Tracker>> {
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
    fn call<T: Send>(
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
    fn run<T: Send>(
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
fn _after_fork_in_child() {
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

/// A reader of the store's revocation feed (logouts from every process), remembering where it
/// is. `poll()` costs no transaction when nothing was committed since the last one.
#[pyclass(module = "cookiestore", name = "RevocationFeed", frozen)]
struct PyFeed {
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

fn revocations<'py>(py: Python<'py>, found: Revocations) -> PyResult<Bound<'py, PyTuple>> {
    let entries = PyList::empty(py);
    for r in &found.entries {
        entries.append(PyRevocation::new(r))?;
    }
    (entries, found.next, found.missed).into_pyobject(py)
}

impl PyFeed {
    fn new(handle: Arc<Handle>, tracker: Arc<Tracker>, subscriber: Subscriber) -> PyFeed {
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

fn epoch_secs(t: Option<std::time::SystemTime>) -> Option<f64> {
    t.and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs_f64())
}

fn health_dict<'py>(py: Python<'py>, h: &Health) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("available", h.available)?;
    d.set_item("outages", h.outages)?;
    d.set_item("since", epoch_secs(h.since))?;
    d.set_item("until", epoch_secs(h.until))?;
    d.set_item("refused", h.refused)?;
    d.set_item("problem", h.problem.as_deref())?;
    Ok(d)
}

/// One event of a watcher, to its Python callback (on the watcher's thread, with the GIL).
/// A callback that raises is reported (printed), and the watcher goes on.
fn deliver_watch_event(registry: &Connections<u64>, callback: &Py<PyAny>, event: WatchEvent<u64>) {
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
struct PyConnections {
    registry: Arc<Connections<u64>>,
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
struct PyWatch {
    /// Locked with the GIL held only; taken out to be dropped with the GIL released (its
    /// thread may be waiting for the GIL to call back).
    watcher: Mutex<Option<Watcher>>,
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

/// An LMDB cookie store with cookie tracking, byte-compatible with Crossbar.io's database
/// store. Shared by every process of a host that opens the same path.
#[pyclass(module = "cookiestore", name = "CookieStore", frozen)]
struct Store {
    handle: Arc<Handle>,
}

#[pymethods]
impl Store {
    /// Opens (or creates) the store in directory `path`.
    ///
    /// Tracking: `name`, `length`, `max_age` and the `Set-Cookie` attributes `secure`,
    /// `http_strict` (HttpOnly), `same_site`, as in Crossbar.io's cookie section. Store:
    /// `maxsize`, `initial_mapsize`, `readonly`, `sync`, `purge_on_startup` (expired
    /// cookies only), `file_mode`. Every value is validated by the library (`ConfigError`).
    #[new]
    #[pyo3(signature = (path, *, name=None, length=None, max_age=None, secure=None,
        http_strict=None, same_site=None, maxsize=None, initial_mapsize=None, readonly=None,
        sync=None, purge_on_startup=None, file_mode=None, cache_bytes=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        path: PathBuf,
        name: Option<String>,
        length: Option<u64>,
        max_age: Option<u64>,
        secure: Option<bool>,
        http_strict: Option<bool>,
        same_site: Option<String>,
        maxsize: Option<u64>,
        initial_mapsize: Option<u64>,
        readonly: Option<bool>,
        sync: Option<bool>,
        purge_on_startup: Option<bool>,
        file_mode: Option<u32>,
        cache_bytes: Option<u64>,
    ) -> PyResult<Self> {
        let mut store = Map::new();
        store.insert("type".into(), "cookiestore".into());
        store.insert("path".into(), path.to_string_lossy().into_owned().into());
        let put = |m: &mut Map<String, Value>, k: &str, v: Option<Value>| {
            if let Some(v) = v {
                m.insert(k.into(), v);
            }
        };
        put(&mut store, "maxsize", maxsize.map(Value::from));
        put(
            &mut store,
            "initial_mapsize",
            initial_mapsize.map(Value::from),
        );
        put(&mut store, "readonly", readonly.map(Value::from));
        put(&mut store, "sync", sync.map(Value::from));
        put(
            &mut store,
            "purge_on_startup",
            purge_on_startup.map(Value::from),
        );
        put(&mut store, "file_mode", file_mode.map(Value::from));
        put(&mut store, "cache_bytes", cache_bytes.map(Value::from));
        let mut section = Map::new();
        put(&mut section, "name", name.map(Value::from));
        put(&mut section, "length", length.map(Value::from));
        put(&mut section, "max_age", max_age.map(Value::from));
        put(&mut section, "secure", secure.map(Value::from));
        put(&mut section, "http_strict", http_strict.map(Value::from));
        put(&mut section, "same_site", same_site.map(Value::from));
        section.insert("store".into(), Value::Object(store));
        open_section(py, &Value::Object(section), None)
    }

    /// Opens the store a Crossbar.io `cookie` section names (a dict as in the node config:
    /// `name`, `length`, `max_age`, `secure`, `http_strict`, `same_site`, and `store` of type
    /// `cookiestore` or `database` with a `path` relative to `node_dir`, or a Redis `url`
    /// used as it is).
    #[staticmethod]
    #[pyo3(signature = (section, node_dir=None))]
    fn from_section(
        py: Python<'_>,
        section: &Bound<'_, PyAny>,
        node_dir: Option<PathBuf>,
    ) -> PyResult<Self> {
        let value = to_json(section, &mut String::new(), 0)
            .map_err(|e| ConfigError::new_err(format!("cookie section: {}", e.value(py))))?;
        open_section(py, &value, node_dir)
    }

    /// Tracks one connection from its `Cookie` request header (bytes or str; None when
    /// absent): the first live cookie of the configured name is used, else a new one is made.
    #[pyo3(signature = (cookie_header=None))]
    fn track(
        &self,
        py: Python<'_>,
        cookie_header: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyTracked> {
        let header = cookie_header.map(header_bytes).transpose()?;
        let tracked = self.handle.run(py, |t| t.track(header.as_deref()))?;
        let auth = match &tracked.auth {
            Some(a) => Some(auth_tuple(py, a)?.unbind()),
            None => None,
        };
        Ok(PyTracked {
            value: tracked.value,
            is_new: tracked.is_new,
            set_cookie: tracked.set_cookie,
            auth,
        })
    }

    /// Creates a new cookie: `(value, "name=value;max-age=N")`, without attributes (what
    /// Crossbar.io's `create()` returns; Crossbar appends the attributes).
    fn create(&self, py: Python<'_>) -> PyResult<(String, String)> {
        let c = &self.handle.config;
        let cookie = self
            .handle
            .run(py, |t| t.store().create(&c.name, c.length, c.max_age))?;
        let header = format!("{}={};max-age={}", c.name, cookie.value, c.max_age);
        Ok((cookie.value, header))
    }

    /// Stores the authentication on the live cookie `value` after a login. Returns
    /// `"written"`, `"unchanged"` (it carried exactly this already) or `"no-such-cookie"`.
    #[pyo3(signature = (value, authid, authrole=None, authmethod=None, authrealm=None,
        authextra=None, *, session=None, worker=None))]
    #[allow(clippy::too_many_arguments)]
    fn authenticate(
        &self,
        py: Python<'_>,
        value: &str,
        authid: &str,
        authrole: Option<String>,
        authmethod: Option<String>,
        authrealm: Option<String>,
        authextra: Option<&Bound<'_, PyAny>>,
        session: Option<u64>,
        worker: Option<String>,
    ) -> PyResult<&'static str> {
        let extra = match authextra {
            Some(obj) => to_json(obj, &mut String::new(), 0)?,
            None => Value::Null,
        };
        let auth = Auth {
            authid: authid.to_owned(),
            authrole,
            authmethod: authmethod.clone(),
            authrealm,
            authextra: extra,
        };
        let context = AuthContext::default()
            .authmethod(authmethod)
            .session(session.unwrap_or(0))
            .worker(worker);
        let done = self
            .handle
            .run(py, |t| t.authenticate(value, &auth, &context))?;
        Ok(match done {
            AuthUpdate::Written => "written",
            AuthUpdate::Unchanged => "unchanged",
            _ => "no-such-cookie",
        })
    }

    /// Removes the authentication from the live cookie `value`, keeping the cookie (what
    /// Crossbar.io's `setAuth(cbtid, None, None, None, None, None)` does), on either backend.
    /// Returns whether the cookie was authenticated (False: unknown, expired or anonymous,
    /// and nothing was written).
    fn clear_auth(&self, py: Python<'_>, value: &str) -> PyResult<bool> {
        let done = self.handle.run(py, |t| t.store().clear_auth(value))?;
        Ok(done == AuthUpdate::Written)
    }

    /// `(authid, authrole, authmethod, authrealm, authextra)` of the live cookie `value`, or
    /// None when it is unknown, expired or unauthenticated.
    fn get_auth<'py>(&self, py: Python<'py>, value: &str) -> PyResult<Option<Bound<'py, PyTuple>>> {
        // A cache hit reads no file: answered with the GIL held.
        let tracker = self.handle.tracker(py)?;
        if let Some(hit) = tracker.store().lookup_cached(value) {
            return hit
                .as_deref()
                .and_then(|l| l.auth.as_ref())
                .map(|a| auth_tuple(py, a))
                .transpose();
        }
        let auth = self.handle.call(py, tracker, |t| t.get_auth(value))?;
        auth.map(|a| auth_tuple(py, &a)).transpose()
    }

    /// Whether a live cookie has `value`.
    fn exists(&self, py: Python<'_>, value: &str) -> PyResult<bool> {
        let tracker = self.handle.tracker(py)?;
        if let Some(hit) = tracker.store().lookup_cached(value) {
            return Ok(hit.is_some());
        }
        self.handle.call(py, tracker, |t| t.exists(value))
    }

    /// `(found, auth)` of the live cookie `value` from one read: whether it exists, and
    /// `(authid, authrole, authmethod, authrealm, authextra)` or None when unauthenticated.
    /// What a router needs on each connection (`exists` and `getAuth` at once).
    fn lookup<'py>(
        &self,
        py: Python<'py>,
        value: &str,
    ) -> PyResult<(bool, Option<Bound<'py, PyTuple>>)> {
        let tracker = self.handle.tracker(py)?;
        if let Some(hit) = tracker.store().lookup_cached(value) {
            return Ok(match hit.as_deref() {
                Some(l) => (
                    true,
                    l.auth.as_ref().map(|a| auth_tuple(py, a)).transpose()?,
                ),
                None => (false, None),
            });
        }
        let found = self.handle.call(py, tracker, |t| t.store().lookup(value))?;
        Ok(match found {
            Some(l) => (
                true,
                l.auth.as_ref().map(|a| auth_tuple(py, a)).transpose()?,
            ),
            None => (false, None),
        })
    }

    /// A fresh cookie that is **not stored**: `(value, "name=value;max-age=N")`, as `create`
    /// returns. For a connection served while the store is unavailable (its value is random
    /// as any cookie's; nothing will find it in the store).
    fn unstored_cookie(&self) -> PyResult<(String, String)> {
        let c = &self.handle.config;
        let value = CookieValue::random(c.length).map_err(to_py)?;
        let value = value.as_str().to_owned();
        let header = format!("{}={};max-age={}", c.name, value, c.max_age);
        Ok((value, header))
    }

    /// Whether calls reach the store now, and its outages, without a round trip (a dict:
    /// `available`, `outages`, `since` and `until` as seconds since the epoch or None,
    /// `refused`, `problem`). An LMDB store is always available.
    fn health<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let h = self.handle.tracker(py)?.store().health();
        health_dict(py, &h)
    }

    /// Watches the revocation feed on a thread of the library (its `Watcher`: on Redis it
    /// also wakes at once at a PUBLISH, and waits out an outage without touching the
    /// network). `callback(kind, entries, error)` is called **on that thread** (with the
    /// GIL): `kind` is `"revoked"` with `entries` a list of `Revocation`, the revoking ones
    /// (each with `connections`: the ids `connections` holds for its value now), `"missed"` (entries were
    /// trimmed before they were read: re-check every connection's cookie) or `"failed"` with
    /// `error` the exception (an outage is reported once). Stop it with `Watch.stop()`.
    #[pyo3(signature = (connections, callback, interval=0.1))]
    fn watch(
        &self,
        py: Python<'_>,
        connections: &Bound<'_, PyConnections>,
        callback: Py<PyAny>,
        interval: f64,
    ) -> PyResult<PyWatch> {
        if !(interval.is_finite() && interval > 0.0) {
            return Err(ConfigError::new_err(format!(
                "watch interval {interval}: give a number of seconds above 0"
            )));
        }
        let registry = connections.get().registry.clone();
        let for_callback = registry.clone();
        let tracker = self.handle.tracker(py)?;
        let interval = Duration::from_secs_f64(interval);
        let watcher = py
            .detach(|| {
                Watcher::spawn(tracker.store(), registry, interval, move |event| {
                    deliver_watch_event(&for_callback, &callback, event)
                })
            })
            .map_err(to_py)?;
        Ok(PyWatch {
            watcher: Mutex::new(Some(watcher)),
        })
    }

    /// Figures about this process's cache of the store (a dict: `entries`, `bytes`,
    /// `capacity_bytes`, `hits`, `misses`, `hit_rate`, `catch_ups`, `invalidated`,
    /// `flushes`, `evicted`).
    fn cache_stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let stats = self.handle.tracker(py)?.store().cache_stats();
        let mut value = serde_json::to_value(stats)
            .map_err(|e| CookieStoreError::new_err(format!("cache stats: {e}")))?;
        value["hit_rate"] = stats.hit_rate().into();
        from_json(py, &value)
    }

    /// Logs out: deletes the cookie (and records the revocation in the feed). Returns whether
    /// it existed.
    fn logout(&self, py: Python<'_>, value: &str) -> PyResult<bool> {
        self.handle.run(py, |t| t.logout(value))
    }

    /// Logs out every cookie of `authid`; returns how many.
    fn logout_authid(&self, py: Python<'_>, authid: &str) -> PyResult<u64> {
        self.handle.run(py, |t| t.store().logout_authid(authid))
    }

    /// Deletes every expired cookie; returns how many.
    fn purge_expired(&self, py: Python<'_>) -> PyResult<u64> {
        self.handle.run(py, |t| t.store().purge_expired())
    }

    /// Figures about the store (one snapshot) as a `Stats`: `live`, `expired`,
    /// `authenticated`, `records`, `map_size`, `map_used`, `maxsize`, ... (the library's
    /// `Stats`; `to_dict()` gives them as a dict).
    fn stats(&self, py: Python<'_>) -> PyResult<PyStats> {
        let stats = self.handle.run(py, |t| t.store().stats())?;
        PyStats::new(py, &stats)
    }

    /// A reader of the revocation feed starting at its end (it sees logouts from now on), or
    /// after sequence number `after`.
    #[pyo3(signature = (after=None))]
    fn revocation_feed(&self, py: Python<'_>, after: Option<u64>) -> PyResult<PyFeed> {
        let tracker = self.handle.tracker(py)?;
        let (tracker, sub) = match after {
            Some(n) => {
                let sub = Subscriber::starting_after(tracker.store(), n);
                (tracker, sub)
            }
            None => {
                let sub = self
                    .handle
                    .call(py, tracker, |t| Subscriber::new(t.store()))?;
                // The tracker it was made on (reopened, when the process forked).
                (self.handle.tracker(py)?, sub)
            }
        };
        Ok(PyFeed::new(self.handle.clone(), tracker, sub))
    }

    /// `(entries, next, missed)`: the revocations after sequence number `after` (see
    /// `RevocationFeed.poll`).
    fn revocations_since<'py>(&self, py: Python<'py>, after: u64) -> PyResult<Bound<'py, PyTuple>> {
        let found = self
            .handle
            .run(py, |t| t.store().revocations_since(after))?;
        revocations(py, found)
    }

    /// The store's directory; None for a store on Redis (a URL is never a path: read
    /// `location`).
    #[getter]
    fn path(&self) -> Option<PathBuf> {
        self.handle.location.as_path().map(PathBuf::from)
    }

    /// Where the store is, as a string: its directory, or its Redis URL with the password
    /// masked (`***`).
    #[getter]
    fn location(&self) -> String {
        self.handle.location.to_string()
    }

    /// `"lmdb"` or `"redis"`.
    #[getter]
    fn backend(&self) -> &'static str {
        self.handle.location.kind()
    }

    /// The cookie name.
    #[getter]
    fn name(&self) -> String {
        self.handle.config.name.clone()
    }

    /// Characters per new cookie value.
    #[getter]
    fn length(&self) -> usize {
        self.handle.config.length
    }

    /// Cookie lifetime (seconds).
    #[getter]
    fn max_age(&self) -> u64 {
        self.handle.config.max_age
    }

    /// Whether the store was opened read-only.
    #[getter]
    fn readonly(&self) -> bool {
        self.handle.readonly
    }

    /// A store call's deadline (milliseconds), as the library applies it on Redis: the URL's
    /// `?timeout_ms=` when given, else the section's `timeout_ms`, else 2000.
    #[getter]
    fn timeout_ms(&self) -> u64 {
        self.handle.timeout_ms
    }

    fn __repr__(&self) -> String {
        format!(
            "CookieStore({:?}, name={:?}, max_age={})",
            self.handle.location.to_string(),
            self.handle.config.name,
            self.handle.config.max_age
        )
    }
}

/// Checks a Crossbar.io `cookie` section (a dict) without opening anything: raises
/// `ConfigError` naming the field, else returns None.
#[pyfunction]
fn check_section(py: Python<'_>, section: &Bound<'_, PyAny>) -> PyResult<()> {
    let value = to_json(section, &mut String::new(), 0)
        .map_err(|e| ConfigError::new_err(format!("cookie section: {}", e.value(py))))?;
    CookieSection::from_value(&value).map_err(to_py)?;
    Ok(())
}

/// `(kind, display)` of a store location: `kind` is `"lmdb"` (a directory) or `"redis"` (a
/// Redis URL), by the library's one rule (text starting with `scheme://` is a URL, never a
/// directory); `display` is the location as messages show it (a password masked). Raises
/// `ConfigError` for a URL cookiestore does not serve or a malformed Redis URL (its message
/// masks the password too).
#[pyfunction]
fn parse_location(location: PathBuf) -> PyResult<(&'static str, String)> {
    let parsed = Location::parse(&location).map_err(to_py)?;
    Ok((parsed.kind(), parsed.to_string()))
}

/// The keys a `cookie` section's `store` object accepts (`type`, `path`, `url`, `maxsize`,
/// ..., `cache_bytes`), from the library's parser: any other key is refused, named.
#[pyfunction]
fn store_keys() -> Vec<&'static str> {
    StoreSection::keys().to_vec()
}

fn open_section(py: Python<'_>, section: &Value, node_dir: Option<PathBuf>) -> PyResult<Store> {
    let parsed = CookieSection::from_value(section).map_err(to_py)?;
    let Some(store) = parsed.store else {
        return Err(ConfigError::new_err(
            "invalid configuration: `cookie.store` is missing; give {\"type\": \"cookiestore\", \
             \"path\": ...} (a directory) or {\"type\": \"cookiestore\", \"url\": \
             \"redis://...\"}",
        ));
    };
    let location = store.location_in(node_dir.unwrap_or_default());
    let handle = Handle::open(py, location, store.options, parsed.tracker)?;
    Ok(Store { handle })
}

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
