//! Values crossing between Python and the library: authextra and config sections as JSON
//! ([`to_json`], [`from_json`]), a `Cookie` header as bytes ([`header_bytes`]), the
//! `getAuth` 5-tuple ([`auth_tuple`]) and the `health()` dict ([`health_dict`]).

use cookiestore::{Auth, Health};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use serde_json::{Map, Number, Value};

use crate::errors::authextra_err;

/// A Python object (authextra, a config section) as a JSON value; refuses what JSON cannot
/// hold, naming where it is (`["key"][2]`).
pub(crate) fn to_json(obj: &Bound<'_, PyAny>, at: &mut String, depth: usize) -> PyResult<Value> {
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
pub(crate) fn from_json<'py>(py: Python<'py>, value: &Value) -> PyResult<Bound<'py, PyAny>> {
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
pub(crate) fn header_bytes(obj: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
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
pub(crate) fn auth_tuple<'py>(py: Python<'py>, auth: &Auth) -> PyResult<Bound<'py, PyTuple>> {
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

fn epoch_secs(t: Option<std::time::SystemTime>) -> Option<f64> {
    t.and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs_f64())
}

pub(crate) fn health_dict<'py>(py: Python<'py>, h: &Health) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("available", h.available)?;
    d.set_item("outages", h.outages)?;
    d.set_item("since", epoch_secs(h.since))?;
    d.set_item("until", epoch_secs(h.until))?;
    d.set_item("refused", h.refused)?;
    d.set_item("problem", h.problem.as_deref())?;
    Ok(d)
}
