//! Crossbar.io `cookie` sections and store locations, for the launcher and the plug-in:
//! [`check_section`], [`parse_location`], [`store_keys`], and [`open_section`] (a
//! [`Store`] from a parsed section).

use std::path::PathBuf;

use cookiestore::{CookieSection, Location, StoreSection};
use pyo3::prelude::*;
use serde_json::Value;

use crate::convert::to_json;
use crate::errors::{ConfigError, to_py};
use crate::handle::Handle;
use crate::store::Store;

/// Checks a Crossbar.io `cookie` section (a dict) without opening anything: raises
/// `ConfigError` naming the field, else returns None.
#[pyfunction]
pub(crate) fn check_section(py: Python<'_>, section: &Bound<'_, PyAny>) -> PyResult<()> {
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
pub(crate) fn parse_location(location: PathBuf) -> PyResult<(&'static str, String)> {
    let parsed = Location::parse(&location).map_err(to_py)?;
    Ok((parsed.kind(), parsed.to_string()))
}

/// The keys a `cookie` section's `store` object accepts (`type`, `path`, `url`, `maxsize`,
/// ..., `cache_bytes`), from the library's parser: any other key is refused, named.
#[pyfunction]
pub(crate) fn store_keys() -> Vec<&'static str> {
    StoreSection::keys().to_vec()
}

pub(crate) fn open_section(
    py: Python<'_>,
    section: &Value,
    node_dir: Option<PathBuf>,
) -> PyResult<Store> {
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
