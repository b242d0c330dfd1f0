//! The library's value types as frozen Python classes: [`PyStats`] (`cookiestore.Stats`),
//! [`PyTableMeta`] (`cookiestore.TableMeta`) and [`PyRevocation`] (`cookiestore.Revocation`),
//! and the feed kinds ([`revocation_kinds`], [`revoking_kinds`]) from the library's
//! [`RevocationKind`], their one home.

use cookiestore::{Revocation, RevocationKind, Stats, TableMeta};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyFrozenSet, PyString, PyTuple};
use serde_json::Value;

use crate::convert::from_json;
use crate::errors::CookieStoreError;

/// Python's repr of an optional int.
fn opt_repr(v: Option<u64>) -> String {
    v.map_or_else(|| "None".to_owned(), |v| v.to_string())
}

fn bool_repr(b: bool) -> &'static str {
    if b { "True" } else { "False" }
}

/// Python's repr of a str (quotes and escapes as Python writes them).
fn str_repr(py: Python<'_>, s: &str) -> PyResult<String> {
    Ok(PyString::new(py, s).repr()?.to_str()?.to_owned())
}

/// One table of the store (slot metadata, as zlmdb writes it): the library's `TableMeta`.
#[pyclass(module = "cookiestore", name = "TableMeta", frozen)]
pub(crate) struct PyTableMeta {
    /// Table UUID, canonical string.
    #[pyo3(get)]
    oid: String,
    /// Table name.
    #[pyo3(get)]
    name: String,
    /// Description, when given.
    #[pyo3(get)]
    description: Option<String>,
    /// Tags, when given (a tuple of str).
    #[pyo3(get)]
    tags: Option<Py<PyTuple>>,
    /// Creator; zlmdb writes `"unknown"`.
    #[pyo3(get)]
    creator: String,
    /// The slot this record describes.
    #[pyo3(get)]
    slot: u16,
}

impl PyTableMeta {
    fn new(py: Python<'_>, t: &TableMeta) -> PyResult<Self> {
        let tags = match &t.tags {
            Some(tags) => Some(PyTuple::new(py, tags)?.unbind()),
            None => None,
        };
        Ok(PyTableMeta {
            oid: t.oid.clone(),
            name: t.name.clone(),
            description: t.description.clone(),
            tags,
            creator: t.creator.clone(),
            slot: t.slot,
        })
    }
}

#[pymethods]
impl PyTableMeta {
    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "TableMeta(slot={}, name={}, oid={})",
            self.slot,
            str_repr(py, &self.name)?,
            str_repr(py, &self.oid)?
        ))
    }
}

/// Figures about a store: the library's `Stats`, one attribute per field, flat as its JSON
/// form. The cookie figures are every backend's; LMDB's figures are None on Redis, and
/// Redis's (`feed_entries`, `last_revocation`, `maxmemory_policy`, `cache_problem`) None on LMDB. Times are
/// nanoseconds since the epoch.
#[pyclass(module = "cookiestore", name = "Stats", frozen)]
pub(crate) struct PyStats {
    /// Cookie records, live and expired.
    #[pyo3(get)]
    records: u64,
    /// Live (unexpired) cookies.
    #[pyo3(get)]
    live: u64,
    /// Expired cookies not yet purged.
    #[pyo3(get)]
    expired: u64,
    /// Live cookies with an authid.
    #[pyo3(get)]
    authenticated: u64,
    /// Records that could not be decoded.
    #[pyo3(get)]
    corrupt: u64,
    /// Creation time of the oldest live cookie (ns), None without live cookies.
    #[pyo3(get)]
    oldest_created: Option<u64>,
    /// Creation time of the newest live cookie (ns).
    #[pyo3(get)]
    newest_created: Option<u64>,
    /// When the next live cookie expires (ns).
    #[pyo3(get)]
    next_expiry: Option<u64>,
    /// LMDB: entries in the value index.
    #[pyo3(get)]
    value_index_entries: Option<u64>,
    /// LMDB: entries in the expiry index.
    #[pyo3(get)]
    expiry_index_entries: Option<u64>,
    /// LMDB: current map size (bytes).
    #[pyo3(get)]
    map_size: Option<u64>,
    /// LMDB: bytes in use: (last page + 1) x page size.
    #[pyo3(get)]
    map_used: Option<u64>,
    /// LMDB: the configured maxsize (bytes).
    #[pyo3(get)]
    maxsize: Option<u64>,
    /// LMDB: lMDB page size.
    #[pyo3(get)]
    page_size: Option<u32>,
    /// LMDB: b-tree depth of the unnamed database.
    #[pyo3(get)]
    depth: Option<u32>,
    /// LMDB: branch pages.
    #[pyo3(get)]
    branch_pages: Option<u64>,
    /// LMDB: leaf pages.
    #[pyo3(get)]
    leaf_pages: Option<u64>,
    /// LMDB: overflow pages.
    #[pyo3(get)]
    overflow_pages: Option<u64>,
    /// LMDB: entries in the unnamed database (all tables and metadata).
    #[pyo3(get)]
    entries: Option<u64>,
    /// LMDB: id of the snapshot's transaction.
    #[pyo3(get)]
    txn_id: Option<u64>,
    /// LMDB: reader slots ever used in the lock file (live and stale).
    #[pyo3(get)]
    readers_used: Option<u32>,
    /// LMDB: reader slots in the lock file.
    #[pyo3(get)]
    readers_max: Option<u32>,
    /// LMDB: every table of the database (a tuple of `TableMeta`).
    #[pyo3(get)]
    tables: Option<Py<PyTuple>>,
    /// LMDB: whether another program (cfxdb, Crossbar) wrote since cookiestore's last write.
    #[pyo3(get)]
    foreign_writes: Option<bool>,
    /// Redis: entries in the revocation feed.
    #[pyo3(get)]
    feed_entries: Option<u64>,
    /// Redis: the sequence number of the feed's last entry (0: none yet).
    #[pyo3(get)]
    last_revocation: Option<u64>,
    /// Redis: the server's `maxmemory-policy`, None when it does not say.
    #[pyo3(get)]
    maxmemory_policy: Option<String>,
    /// Redis: why this process's cache on Redis (`redis_cache_bytes`) last stopped
    /// answering, None when it did not (or there is none).
    #[pyo3(get)]
    cache_problem: Option<String>,
    /// The library's `Stats` as JSON (its serde form), for `to_dict`.
    json: Value,
}

impl PyStats {
    pub(crate) fn new(py: Python<'_>, s: &Stats) -> PyResult<Self> {
        let tables = match &s.lmdb {
            Some(l) => {
                let tables = l
                    .tables
                    .iter()
                    .map(|t| Py::new(py, PyTableMeta::new(py, t)?))
                    .collect::<PyResult<Vec<_>>>()?;
                Some(PyTuple::new(py, tables)?.unbind())
            }
            None => None,
        };
        let json = serde_json::to_value(s)
            .map_err(|e| CookieStoreError::new_err(format!("stats: {e}")))?;
        let (l, r) = (s.lmdb.as_ref(), s.redis.as_ref());
        Ok(PyStats {
            records: s.records,
            live: s.live,
            expired: s.expired,
            authenticated: s.authenticated,
            corrupt: s.corrupt,
            oldest_created: s.oldest_created,
            newest_created: s.newest_created,
            next_expiry: s.next_expiry,
            value_index_entries: l.map(|l| l.value_index_entries),
            expiry_index_entries: l.map(|l| l.expiry_index_entries),
            map_size: l.map(|l| l.map_size),
            map_used: l.map(|l| l.map_used),
            maxsize: l.map(|l| l.maxsize),
            page_size: l.map(|l| l.page_size),
            depth: l.map(|l| l.depth),
            branch_pages: l.map(|l| l.branch_pages),
            leaf_pages: l.map(|l| l.leaf_pages),
            overflow_pages: l.map(|l| l.overflow_pages),
            entries: l.map(|l| l.entries),
            txn_id: l.map(|l| l.txn_id),
            readers_used: l.map(|l| l.readers_used),
            readers_max: l.map(|l| l.readers_max),
            tables,
            foreign_writes: l.map(|l| l.foreign_writes),
            feed_entries: r.map(|r| r.feed_entries),
            last_revocation: r.map(|r| r.last_revocation),
            maxmemory_policy: r.and_then(|r| r.maxmemory_policy.clone()),
            cache_problem: r.and_then(|r| r.cache_problem.clone()),
            json,
        })
    }
}

#[pymethods]
impl PyStats {
    /// The figures as a dict (the library's JSON form: only the store's backend's figures,
    /// `tables` as a list of dicts), e.g. for `json.dumps`.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        Ok(from_json(py, &self.json)?.cast_into::<PyDict>()?)
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        let mut text = format!(
            "Stats(records={}, live={}, expired={}, authenticated={}, corrupt={}, \
             oldest_created={}, newest_created={}, next_expiry={}",
            self.records,
            self.live,
            self.expired,
            self.authenticated,
            self.corrupt,
            opt_repr(self.oldest_created),
            opt_repr(self.newest_created),
            opt_repr(self.next_expiry),
        );
        let mut field = |name: &str, value: Option<String>| {
            if let Some(value) = value {
                text.push_str(&format!(", {name}={value}"));
            }
        };

        field(
            "value_index_entries",
            self.value_index_entries.map(|v| v.to_string()),
        );
        field(
            "expiry_index_entries",
            self.expiry_index_entries.map(|v| v.to_string()),
        );
        field("map_size", self.map_size.map(|v| v.to_string()));
        field("map_used", self.map_used.map(|v| v.to_string()));
        field("maxsize", self.maxsize.map(|v| v.to_string()));
        field("page_size", self.page_size.map(|v| v.to_string()));
        field("depth", self.depth.map(|v| v.to_string()));
        field("branch_pages", self.branch_pages.map(|v| v.to_string()));
        field("leaf_pages", self.leaf_pages.map(|v| v.to_string()));
        field("overflow_pages", self.overflow_pages.map(|v| v.to_string()));
        field("entries", self.entries.map(|v| v.to_string()));
        field("txn_id", self.txn_id.map(|v| v.to_string()));
        field("readers_used", self.readers_used.map(|v| v.to_string()));
        field("readers_max", self.readers_max.map(|v| v.to_string()));
        field(
            "tables",
            self.tables
                .as_ref()
                .map(|t| format!("<{} tables>", t.bind(py).len())),
        );
        field(
            "foreign_writes",
            self.foreign_writes.map(|b| bool_repr(b).to_string()),
        );
        field("feed_entries", self.feed_entries.map(|v| v.to_string()));
        field(
            "last_revocation",
            self.last_revocation.map(|v| v.to_string()),
        );
        field(
            "maxmemory_policy",
            self.maxmemory_policy.as_ref().map(|p| format!("'{p}'")),
        );
        field(
            "cache_problem",
            self.cache_problem.as_ref().map(|p| format!("{p:?}")),
        );
        text.push(')');
        text
    }
}

/// One entry of the revocation feed: the library's `Revocation`, plus (from a watcher) the
/// ids of this process's connections of the cookie.
#[pyclass(module = "cookiestore", name = "Revocation", frozen, eq, hash)]
#[derive(PartialEq, Eq, Hash)]
pub(crate) struct PyRevocation {
    /// Its sequence number (the first is 1; increasing in commit order).
    #[pyo3(get)]
    seq: u64,
    /// When it was revoked (ns since the epoch, the writer's clock).
    #[pyo3(get)]
    at_ns: u64,
    kind: RevocationKind,
    /// The cookie's value (empty for `purged` and `flush`, or when its record could not be
    /// decoded).
    #[pyo3(get)]
    value: String,
    oid: String,
    connections: Vec<u64>,
}

impl PyRevocation {
    /// An entry as a feed read gives it (no connections).
    pub(crate) fn new(r: &Revocation) -> Self {
        PyRevocation::with_connections(r, Vec::new())
    }

    /// An entry as a watcher reports it, with the connection ids registered for its value.
    pub(crate) fn with_connections(r: &Revocation, connections: Vec<u64>) -> Self {
        PyRevocation {
            seq: r.seq,
            at_ns: r.at_ns,
            kind: r.kind,
            value: r.value.clone(),
            oid: r.oid.to_string(),
            connections,
        }
    }
}

#[pymethods]
impl PyRevocation {
    /// Why it was written: one of `REVOCATION_KINDS`.
    #[getter]
    fn kind(&self) -> &'static str {
        self.kind.as_str()
    }

    /// Whether it revokes the cookie (its live connections should be closed): `logout`,
    /// `authid`, `maintenance`. The other kinds only tell caches what changed.
    #[getter]
    fn revokes(&self) -> bool {
        self.kind.revokes()
    }

    /// The cookie's oid (canonical UUID string; the nil UUID for `purged` and `flush`).
    #[getter]
    fn oid(&self) -> &str {
        &self.oid
    }

    /// From a watcher: the ids `Connections` held for the value when it was reported; from a
    /// feed read: `()`.
    #[getter]
    fn connections<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(py, &self.connections)
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let ids = self
            .connections
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>();
        let ids = match ids.len() {
            1 => format!("({},)", ids[0]),
            _ => format!("({})", ids.join(", ")),
        };
        Ok(format!(
            "Revocation(seq={}, at_ns={}, kind={}, value={}, oid={}, connections={ids})",
            self.seq,
            self.at_ns,
            str_repr(py, self.kind.as_str())?,
            str_repr(py, &self.value)?,
            str_repr(py, &self.oid)?,
        ))
    }
}

/// Every feed kind's name, in the order of their codes (the library's `RevocationKind::ALL`).
pub(crate) fn revocation_kinds(py: Python<'_>) -> PyResult<Bound<'_, PyTuple>> {
    PyTuple::new(py, RevocationKind::ALL.map(RevocationKind::as_str))
}

/// The names of the kinds that revoke a cookie (`RevocationKind::revokes`).
pub(crate) fn revoking_kinds(py: Python<'_>) -> PyResult<Bound<'_, PyFrozenSet>> {
    let names = RevocationKind::ALL
        .into_iter()
        .filter(|k| k.revokes())
        .map(RevocationKind::as_str)
        .collect::<Vec<_>>();
    PyFrozenSet::new(py, &names)
}
