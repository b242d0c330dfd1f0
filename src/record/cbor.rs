//! The two CBOR fields of a record (`authextra`, `authenticated_transport_info`) as JSON
//! values: encoding with a depth limit, and decoding that never allocates more than the bytes
//! declare and converts what JSON cannot hold.

use serde_json::Value;

use crate::error::{Error, Result};

/// Deepest nesting accepted in `authextra` and `authenticated_transport_info`.
pub const MAX_CBOR_DEPTH: usize = 64;

/// Whether `v` is what an unset map field reads as (null or `{}`).
pub(crate) fn is_empty_map(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        _ => false,
    }
}

/// The value of an unset map field: `{}`.
pub(crate) fn empty_map() -> Value {
    Value::Object(serde_json::Map::new())
}

pub(crate) fn cbor_field(field: &str, value: &Value) -> Result<Vec<u8>> {
    if is_empty_map(value) {
        return Ok(Vec::new());
    }
    check_depth(field, value)?;
    let mut out = Vec::new();
    ciborium::into_writer(value, &mut out).map_err(|e| Error::InvalidValue {
        problem: format!("{field} cannot be encoded as CBOR: {e}"),
    })?;
    Ok(out)
}

/// Refuses a value nested deeper than [`MAX_CBOR_DEPTH`], without recursing: call it before
/// anything that recurses over the value (clone, compare, serialize).
pub(crate) fn check_depth(field: &str, value: &Value) -> Result<()> {
    if depth(value) > MAX_CBOR_DEPTH {
        return Err(Error::InvalidValue {
            problem: format!("{field} is nested deeper than {MAX_CBOR_DEPTH} levels; flatten it"),
        });
    }
    Ok(())
}

/// Nesting depth without recursion (so a hostile value cannot overflow the stack here).
fn depth(value: &Value) -> usize {
    let mut max = 0;
    let mut stack = vec![(value, 1usize)];
    while let Some((v, d)) = stack.pop() {
        max = max.max(d);
        if d > MAX_CBOR_DEPTH {
            break;
        }
        match v {
            Value::Array(items) => stack.extend(items.iter().map(|i| (i, d + 1))),
            Value::Object(map) => stack.extend(map.values().map(|i| (i, d + 1))),
            _ => {}
        }
    }
    max
}

pub(crate) fn cbor_to_json_field(field: &str, bytes: &[u8]) -> std::result::Result<Value, String> {
    if bytes.is_empty() {
        return Ok(empty_map());
    }
    // The decoder sizes buffers by the lengths an item declares: check them against the bytes
    // there are first, so a damaged record is an error, never a huge allocation.
    if !cbor_lengths_fit(bytes) {
        return Err(format!(
            "field {field} is not valid CBOR: an item declares more content than the field holds \
             (or an indefinite length)"
        ));
    }
    // Fast path: text-keyed maps of JSON-representable values (what Crossbar writes) decode
    // straight into JSON. Anything else (byte strings, tags, non-text keys, NaN) takes the
    // general path through ciborium's own value type.
    // A small scratch buffer: ciborium's default zeroes 4 KiB per call, which costs more than
    // decoding a typical authextra. Longer strings are read without it.
    let mut scratch = [0u8; 64];
    if let Ok(v) = ciborium::de::from_reader_with_buffer::<Value, _>(bytes, &mut scratch) {
        return Ok(v);
    }
    let cbor: ciborium::Value =
        ciborium::de::from_reader_with_recursion_limit(bytes, MAX_CBOR_DEPTH * 2)
            .map_err(|e| format!("field {field} is not valid CBOR: {e}"))?;
    Ok(cbor_to_json(cbor))
}

/// Longest JSON text a non-text map key becomes.
const MAX_KEY_TEXT: usize = 1024;

/// The JSON text of a non-text map key, cut at [`MAX_KEY_TEXT`] bytes: keys nested in keys are
/// escaped again at every level, which would otherwise grow without bound.
fn key_text(key: Value) -> String {
    let mut text = key.to_string();
    if text.len() > MAX_KEY_TEXT {
        let mut end = MAX_KEY_TEXT;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}

/// Whether every length a CBOR item declares (string bytes, array items, map entries) fits in
/// what is left of `bytes`, for one top-level item. Indefinite lengths are refused.
fn cbor_lengths_fit(bytes: &[u8]) -> bool {
    let mut pos = 0usize;
    let mut pending: u64 = 1;
    while pending > 0 {
        let Some(&initial) = bytes.get(pos) else {
            return false;
        };
        pos += 1;
        pending -= 1;
        let (major, info) = (initial >> 5, initial & 0x1f);
        let size = match info {
            0..=23 => 0,
            24 => 1,
            25 => 2,
            26 => 4,
            27 => 8,
            _ => return false, // reserved, or an indefinite length
        };
        let Some(arg_bytes) = bytes.get(pos..pos + size) else {
            return false;
        };
        pos += size;
        let arg = if size == 0 {
            u64::from(info)
        } else {
            arg_bytes.iter().fold(0u64, |a, b| (a << 8) | u64::from(*b))
        };
        let left = (bytes.len() - pos) as u64;
        match major {
            2 | 3 => {
                if arg > left {
                    return false;
                }
                pos += arg as usize;
            }
            4 => {
                if arg > left {
                    return false;
                }
                pending += arg;
            }
            5 => {
                if arg > left / 2 {
                    return false;
                }
                pending += 2 * arg;
            }
            6 => pending += 1,
            _ => {} // integers, simple values, floats: the argument was the value
        }
        if pending > bytes.len() as u64 {
            return false;
        }
    }
    true
}

/// CBOR to JSON. Byte strings become lowercase hex strings, non-text map keys their JSON
/// text, tags are dropped, and non-finite floats become null: JSON has no other form.
fn cbor_to_json(value: ciborium::Value) -> Value {
    use ciborium::Value as C;
    match value {
        C::Integer(i) => {
            let i = i128::from(i);
            if let Ok(u) = u64::try_from(i) {
                Value::from(u)
            } else if let Ok(s) = i64::try_from(i) {
                Value::from(s)
            } else {
                Value::from(i as f64)
            }
        }
        C::Bytes(b) => Value::String(b.iter().map(|x| format!("{x:02x}")).collect()),
        C::Float(f) => serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number),
        C::Text(s) => Value::String(s),
        C::Bool(b) => Value::Bool(b),
        C::Null => Value::Null,
        C::Tag(_, inner) => cbor_to_json(*inner),
        C::Array(items) => Value::Array(items.into_iter().map(cbor_to_json).collect()),
        C::Map(entries) => Value::Object(
            entries
                .into_iter()
                .map(|(k, v)| {
                    let key = match k {
                        C::Text(s) => s,
                        other => key_text(cbor_to_json(other)),
                    };
                    (key, cbor_to_json(v))
                })
                .collect(),
        ),
        _ => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_keys_nested_in_map_keys_stay_bounded() {
        // {{{...{"x": 1}...: 1}: 1}: 1}, 40 levels: every level's key is the JSON text of the
        // one inside it, escaped again.
        fn nest(depth: usize) -> Vec<u8> {
            if depth == 0 {
                return vec![0x61, b'x'];
            }
            let mut out = vec![0xa1];
            out.extend(nest(depth - 1));
            out.push(0x01);
            out
        }
        let mut bytes = vec![0xa1];
        bytes.extend(nest(40));
        bytes.push(0x01);
        let v = cbor_to_json_field("authextra", &bytes).unwrap();
        let key = v.as_object().unwrap().keys().next().unwrap();
        assert!(key.len() <= MAX_KEY_TEXT + '…'.len_utf8(), "{}", key.len());
    }

    #[test]
    fn declared_lengths_beyond_the_field_are_errors_not_allocations() {
        // A byte string, a text string, an array and a map each declaring 2^62 entries.
        for head in [0x5b_u8, 0x7b, 0x9b, 0xbb] {
            let mut bytes = vec![0xa1, 0x61, b'k', head];
            bytes.extend_from_slice(&(1u64 << 62).to_be_bytes());
            let err = cbor_to_json_field("authextra", &bytes).unwrap_err();
            assert!(err.contains("declares more content"), "{err}");
        }
        // Indefinite lengths are refused; well-formed maps still decode.
        assert!(cbor_to_json_field("authextra", &[0xbf, 0xff]).is_err());
        assert_eq!(
            cbor_to_json_field("authextra", &[0xa1, 0x61, b'k', 0x82, 0x01, 0x40]).unwrap(),
            serde_json::json!({"k": [1, ""]})
        );
    }

    use serde_json::json;

    #[test]
    fn plain_maps_take_the_fast_path_and_agree_with_the_general_one() {
        let v = json!({"a": [1, -2, 1.5, null, true, "s"], "m": {"k": {}}});
        let mut cbor = Vec::new();
        ciborium::into_writer(&v, &mut cbor).unwrap();
        let general = cbor_to_json(ciborium::from_reader(&cbor[..]).unwrap());
        assert_eq!(cbor_to_json_field("authextra", &cbor).unwrap(), v);
        assert_eq!(general, v);
    }

    #[test]
    fn garbage_cbor_names_the_field() {
        let e = cbor_to_json_field("authextra", &[0xFC]).unwrap_err();
        assert!(e.contains("authextra"), "{e}");
    }
}
