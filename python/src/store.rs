//! `cookiestore.CookieStore` ([`Store`]): the class's methods (open, track, authenticate,
//! the lookups, logout, watch, feed, stats), each over the fork-aware [`Handle`], and
//! `cookiestore.Tracked` ([`PyTracked`]), the answer of `track`.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cookiestore::{Auth, AuthContext, AuthUpdate, CookieValue, Subscriber, Watcher};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};
use serde_json::{Map, Value};

use crate::convert::{auth_ref_tuple, auth_tuple, from_json, header_bytes, health_dict, to_json};
use crate::errors::{ConfigError, CookieStoreError, to_py};
use crate::feed::{PyFeed, revocations};
use crate::handle::Handle;
use crate::section::open_section;
use crate::types::PyStats;
use crate::watch::{PyConnections, PyWatch, deliver_watch_event};

/// The answer to `CookieStore.track`: the cookie in use for one connection.
#[pyclass(module = "cookiestore", name = "Tracked", frozen, get_all)]
pub(crate) struct PyTracked {
    /// The cookie value in use for this connection.
    pub(crate) value: String,
    /// Whether the cookie was created now (none, an unknown or an expired one was sent).
    pub(crate) is_new: bool,
    /// The `Set-Cookie` header value: `name=value;max-age=N` plus the configured attributes.
    pub(crate) set_cookie: String,
    /// `(authid, authrole, authmethod, authrealm, authextra)`, or None when unauthenticated.
    pub(crate) auth: Option<Py<PyTuple>>,
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

/// store. Shared by every process of a host that opens the same path.
#[pyclass(module = "cookiestore", name = "CookieStore", frozen)]
pub(crate) struct Store {
    pub(crate) handle: Arc<Handle>,
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
        let hit = tracker.store().with_cached_lookup(value, |l| {
            l.auth().map(|a| auth_ref_tuple(py, &a)).transpose()
        });
        if let Some(hit) = hit {
            return Ok(hit.transpose()?.flatten());
        }
        let auth = self.handle.call(py, tracker, |t| t.get_auth(value))?;
        auth.map(|a| auth_tuple(py, &a)).transpose()
    }

    /// Whether a live cookie has `value`.
    fn exists(&self, py: Python<'_>, value: &str) -> PyResult<bool> {
        let tracker = self.handle.tracker(py)?;
        if let Some(hit) = tracker.store().with_cached_lookup(value, |_| ()) {
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
        let hit = tracker.store().with_cached_lookup(value, |l| {
            l.auth().map(|a| auth_ref_tuple(py, &a)).transpose()
        });
        if let Some(hit) = hit {
            return Ok(match hit {
                Some(auth) => (true, auth?),
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
