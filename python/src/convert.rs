//! Values crossing between Python and the library: authextra and config sections as JSON
//! ([`to_json`], [`from_json`]), a `Cookie` header as bytes ([`header_bytes`]), the
//! `getAuth` 5-tuple ([`auth_tuple`]; from the cache, [`auth_ref_tuple`], with authextra
//! built straight from its CBOR, [`cbor_to_py`]) and the `health()` dict ([`health_dict`]).

use cookiestore::{Auth, AuthRef, Health};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use serde_json::{Map, Number, Value};

use crate::errors::{authextra_err, to_py};

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

/// The 5-tuple of a borrowed authentication (from this process's cache): authextra built
/// straight from its stored CBOR ([`cbor_to_py`]), a fresh dict per call.
pub(crate) fn auth_ref_tuple<'py>(
    py: Python<'py>,
    auth: &AuthRef<'_>,
) -> PyResult<Bound<'py, PyTuple>> {
    let extra = match cbor_to_py(py, auth.authextra_cbor())? {
        Some(obj) => obj,
        // What only the library's decoder reads (or reports as damaged), as get_auth does.
        None => from_json(py, &auth.authextra().map_err(to_py)?)?,
    };
    PyTuple::new(
        py,
        [
            PyString::new(py, auth.authid()).into_any(),
            opt_str(py, auth.authrole()),
            opt_str(py, auth.authmethod()),
            opt_str(py, auth.authrealm()),
            extra,
        ],
    )
}

/// Deepest nesting [`cbor_to_py`] follows (the library refuses deeper authextra).
const MAX_CBOR_DEPTH: usize = 64;

/// authextra's CBOR as the Python objects `from_json` would give (empty bytes: `{}`), without
/// the JSON value in between. `Ok(None)` for anything but what JSON holds (text-keyed maps,
/// arrays, text, integers within 64 bits, finite floats, booleans, null): byte strings, tags,
/// other keys, indefinite lengths, NaN and damaged bytes are left to the library's decoder.
pub(crate) fn cbor_to_py<'py>(
    py: Python<'py>,
    bytes: &[u8],
) -> PyResult<Option<Bound<'py, PyAny>>> {
    if bytes.is_empty() {
        return Ok(Some(PyDict::new(py).into_any()));
    }
    let mut reader = CborReader { py, bytes, pos: 0 };
    let item = reader.item(0)?;
    Ok(item.filter(|_| reader.pos == bytes.len()))
}

struct CborReader<'a, 'py> {
    py: Python<'py>,
    bytes: &'a [u8],
    pos: usize,
}

impl<'a, 'py> CborReader<'a, 'py> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let taken = self.bytes.get(self.pos..end)?;
        self.pos = end;
        Some(taken)
    }

    /// The argument of an initial byte's additional information `info`.
    fn argument(&mut self, info: u8) -> Option<u64> {
        let be = |b: &[u8]| b.iter().fold(0u64, |n, &x| (n << 8) | u64::from(x));
        match info {
            0..=23 => Some(u64::from(info)),
            24 => self.take(1).map(be),
            25 => self.take(2).map(be),
            26 => self.take(4).map(be),
            27 => self.take(8).map(be),
            _ => None,
        }
    }

    /// A text string as a Python str, `initial` being its initial byte, at the position
    /// (which it passes). Python checks the UTF-8 as it decodes; `None` when it is not.
    fn text(&mut self, initial: u8) -> Option<Bound<'py, PyString>> {
        if initial >> 5 != 3 {
            return None;
        }
        self.take(1)?;
        let len = usize::try_from(self.argument(initial & 0x1f)?).ok()?;
        PyString::from_bytes(self.py, self.take(len)?).ok()
    }

    fn item(&mut self, depth: usize) -> PyResult<Option<Bound<'py, PyAny>>> {
        let py = self.py;
        if depth > MAX_CBOR_DEPTH {
            return Ok(None);
        }
        let Some(&initial) = self.take(1).and_then(|b| b.first()) else {
            return Ok(None);
        };
        let (major, info) = (initial >> 5, initial & 0x1f);
        if major == 7 {
            let float = match info {
                20 => return Ok(Some(PyBool::new(py, false).to_owned().into_any())),
                21 => return Ok(Some(PyBool::new(py, true).to_owned().into_any())),
                22 => return Ok(Some(py.None().into_bound(py))),
                25 => self.argument(info).map(|h| f16_to_f64(h as u16)),
                26 => self
                    .argument(info)
                    .map(|f| f64::from(f32::from_bits(f as u32))),
                27 => self.argument(info).map(f64::from_bits),
                _ => None,
            };
            return match float.filter(|f| f.is_finite()) {
                Some(f) => Ok(Some(f.into_pyobject(py)?.into_any())),
                None => Ok(None),
            };
        }
        if major == 3 {
            self.pos -= 1;
            return Ok(self.text(initial).map(Bound::into_any));
        }
        let Some(n) = self.argument(info) else {
            return Ok(None);
        };
        Ok(match major {
            0 => Some(n.into_pyobject(py)?.into_any()),
            1 => match i64::try_from(n) {
                Ok(n) => Some((-1 - n).into_pyobject(py)?.into_any()),
                Err(_) => None,
            },
            4 => {
                let list = PyList::empty(py);
                for _ in 0..n {
                    match self.item(depth + 1)? {
                        Some(item) => list.append(item)?,
                        None => return Ok(None),
                    }
                }
                Some(list.into_any())
            }
            5 => {
                let dict = PyDict::new(py);
                for _ in 0..n {
                    let Some(&key_initial) = self.bytes.get(self.pos) else {
                        return Ok(None);
                    };
                    let Some(key) = self.text(key_initial) else {
                        return Ok(None);
                    };
                    match self.item(depth + 1)? {
                        Some(value) => dict.set_item(key, value)?,
                        None => return Ok(None),
                    }
                }
                Some(dict.into_any())
            }
            _ => None,
        })
    }
}

/// An IEEE 754 half-precision float's value.
fn f16_to_f64(h: u16) -> f64 {
    let sign = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = i32::from((h >> 10) & 0x1f);
    let frac = f64::from(h & 0x3ff);
    sign * match exp {
        0 => frac * 2f64.powi(-24),
        31 if frac == 0.0 => f64::INFINITY,
        31 => f64::NAN,
        _ => (1.0 + frac / 1024.0) * 2f64.powi(exp - 15),
    }
}
