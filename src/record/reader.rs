//! A bounds-checked reader of single fields of a `Cookie` record, for the lookup path.
//!
//! [`CookieView`](crate::CookieView) verifies a whole buffer before any field is read, which
//! costs more than the two B-tree searches of a lookup. A lookup reads eight fields; this
//! reader checks exactly what it reads, as it reads it: the root and vtable offsets, each
//! field's position, each string's length and UTF-8. Nothing is read unchecked, no `unsafe`
//! is involved, and a malformed record is an error, never a panic. Full verification stays
//! where whole records are handled (`get`, iteration, `check`).

use serde_json::Value;

use uuid::Uuid;

use crate::error::{Error, Result};
use crate::record::cbor::cbor_to_json_field;
use crate::record::cookie::{Auth, Lookup, expires_at};

// vtable slots, by field order in schema/cookiestore.fbs.
const OID: usize = 0;
const CREATED: usize = 1;
const MAX_AGE: usize = 2;
const VALUE: usize = 4;
const AUTHID: usize = 12;
const AUTHROLE: usize = 13;
const AUTHMETHOD: usize = 14;
const AUTHREALM: usize = 15;
const AUTHEXTRA: usize = 16;

/// The fields a lookup needs, read from an encoded record.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RecordReader<'a> {
    buf: &'a [u8],
    table: usize,
    vtable: usize,
    vtable_len: usize,
}

fn u16_at(buf: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        buf.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}

fn u32_at(buf: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        buf.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

fn u64_at(buf: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        buf.get(at..at.checked_add(8)?)?.try_into().ok()?,
    ))
}

impl<'a> RecordReader<'a> {
    /// Locates the root table and its vtable.
    pub(crate) fn new(buf: &'a [u8]) -> Result<Self, String> {
        let bad = |what: &str| format!("not a valid Cookie record: {what}");
        let table = u32_at(buf, 0).ok_or_else(|| bad("shorter than its root offset"))? as usize;
        let soffset = u32_at(buf, table).ok_or_else(|| bad("root table out of range"))? as i32;
        let vtable = (table as i64)
            .checked_sub(i64::from(soffset))
            .filter(|v| *v >= 0)
            .ok_or_else(|| bad("vtable out of range"))? as usize;
        let vtable_len = u16_at(buf, vtable).ok_or_else(|| bad("vtable out of range"))? as usize;
        // As FlatBuffers' verifier: the vtable lies in the buffer; a vtable shorter than its
        // 4-byte header has no fields (every field reads as absent).
        if vtable
            .checked_add(vtable_len)
            .is_none_or(|end| end > buf.len())
        {
            return Err(bad("vtable out of range"));
        }
        Ok(RecordReader {
            buf,
            table,
            vtable,
            vtable_len,
        })
    }

    /// The position of field `slot` in the table, if present.
    fn field(&self, slot: usize) -> Option<usize> {
        let entry = 4 + 2 * slot;
        if entry + 2 > self.vtable_len {
            return None;
        }
        match u16_at(self.buf, self.vtable + entry)? {
            0 => None,
            off => self.table.checked_add(off as usize),
        }
    }

    fn u64(&self, slot: usize) -> Result<u64, String> {
        match self.field(slot) {
            None => Ok(0),
            Some(at) => u64_at(self.buf, at).ok_or_else(|| format!("field {slot} out of range")),
        }
    }

    /// The bytes of a string or `[uint8]` field.
    fn bytes(&self, slot: usize) -> Result<Option<&'a [u8]>, String> {
        let Some(at) = self.field(slot) else {
            return Ok(None);
        };
        let out_of_range = || format!("field {slot} out of range");
        let rel = u32_at(self.buf, at).ok_or_else(out_of_range)? as usize;
        let start = at.checked_add(rel).ok_or_else(out_of_range)?;
        let len = u32_at(self.buf, start).ok_or_else(out_of_range)? as usize;
        let data = start.checked_add(4).ok_or_else(out_of_range)?;
        let end = data.checked_add(len).ok_or_else(out_of_range)?;
        self.buf.get(data..end).map(Some).ok_or_else(out_of_range)
    }

    fn str(&self, slot: usize) -> Result<Option<&'a str>, String> {
        match self.bytes(slot)? {
            None => Ok(None),
            Some(b) => std::str::from_utf8(b)
                .map(Some)
                .map_err(|_| format!("field {slot} is not UTF-8")),
        }
    }

    /// The cookie value ("" when absent).
    #[cfg(any(test, feature = "fuzzing"))]
    pub(crate) fn value(&self) -> Result<&'a str, String> {
        Ok(self.str(VALUE)?.unwrap_or(""))
    }

    /// Whether the cookie value is `value` (bytes compared: equal bytes of a `&str` are
    /// UTF-8, so no separate check is needed).
    pub(crate) fn value_is(&self, value: &str) -> Result<bool, String> {
        Ok(self.bytes(VALUE)?.unwrap_or(b"") == value.as_bytes())
    }

    /// Its lifetime (s).
    pub(crate) fn max_age(&self) -> Result<u64, String> {
        self.u64(MAX_AGE)
    }

    /// When the cookie expires (ns).
    pub(crate) fn expires_at(&self) -> Result<u64, String> {
        Ok(expires_at(self.u64(CREATED)?, self.u64(MAX_AGE)?))
    }

    /// The stored oid, when present and 16 bytes long.
    pub(crate) fn oid(&self) -> Result<Option<Uuid>, String> {
        Ok(self.bytes(OID)?.and_then(|b| Uuid::from_slice(b).ok()))
    }

    /// The stored authentication's fields, borrowed from the record (authextra left as its
    /// CBOR bytes), if the record has an authid. Strings are UTF-8 checked here.
    pub(crate) fn auth_fields(&self) -> Result<Option<AuthFields<'a>>, String> {
        let Some(authid) = self.str(AUTHID)? else {
            return Ok(None);
        };
        Ok(Some(AuthFields {
            authid,
            authrole: self.str(AUTHROLE)?,
            authmethod: self.str(AUTHMETHOD)?,
            authrealm: self.str(AUTHREALM)?,
            authextra: self.bytes(AUTHEXTRA)?.unwrap_or(&[]),
        }))
    }

    /// The stored authentication, if the record has an authid.
    pub(crate) fn auth(&self) -> Result<Option<Auth>, String> {
        let Some(authid) = self.str(AUTHID)? else {
            return Ok(None);
        };
        let owned = |v: Option<&str>| v.map(str::to_string);
        let authextra = match self.bytes(AUTHEXTRA)? {
            Some(cbor) => cbor_to_json_field("authextra", cbor)?,
            None => Value::Object(serde_json::Map::new()),
        };
        Ok(Some(Auth {
            authid: authid.to_string(),
            authrole: owned(self.str(AUTHROLE)?),
            authmethod: owned(self.str(AUTHMETHOD)?),
            authrealm: owned(self.str(AUTHREALM)?),
            authextra,
        }))
    }
}

/// What a lookup of `value` answers from `bytes`, the record stored under it as `oid` (a nil
/// `oid`: read it from the record), at `now`: `None` when the record carries another value
/// or has expired. Reads only the fields a lookup needs ([`RecordReader`]), on every backend.
pub(crate) fn lookup(oid: Uuid, bytes: &[u8], value: &str, now: u64) -> Result<Option<Lookup>> {
    let read = || -> std::result::Result<Option<Lookup>, String> {
        let record = RecordReader::new(bytes)?;
        let expires_at = record.expires_at()?;
        if !record.value_is(value)? || now >= expires_at {
            return Ok(None);
        }
        let oid = if oid.is_nil() {
            record.oid()?.unwrap_or(oid)
        } else {
            oid
        };
        Ok(Some(Lookup {
            oid,
            expires_at,
            max_age: record.max_age()?,
            auth: record.auth()?,
        }))
    };
    read().map_err(|problem| Error::CorruptRecord {
        oid: if oid.is_nil() { oid_hint(bytes) } else { oid },
        problem,
    })
}

/// The oid a record's bytes carry, for errors about it (nil when it cannot be read).
pub(crate) fn oid_hint(bytes: &[u8]) -> Uuid {
    RecordReader::new(bytes)
        .ok()
        .and_then(|r| r.oid().ok().flatten())
        .unwrap_or_else(Uuid::nil)
}

/// The auth fields of a record, borrowed from its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AuthFields<'a> {
    pub(crate) authid: &'a str,
    pub(crate) authrole: Option<&'a str>,
    pub(crate) authmethod: Option<&'a str>,
    pub(crate) authrealm: Option<&'a str>,
    /// CBOR; empty when the record has no authextra.
    pub(crate) authextra: &'a [u8],
}

/// Checks the reader against the fully verified decode: on a record that verifies, both give
/// the same value, expiry and auth (or both fail to decode authextra); on any other bytes the
/// reader may fail but never panics. Panics on disagreement (the fuzz target's oracle).
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn agrees_with_decode(bytes: &[u8]) {
    let reader = RecordReader::new(bytes);
    let Ok(view) = crate::record::codec::CookieView::new(bytes) else {
        if let Ok(r) = reader {
            let _ = (r.value(), r.expires_at(), r.auth());
        }
        return;
    };
    let r = reader.expect("the reader refused a record that verifies");
    assert_eq!(r.value(), Ok(view.value()), "value");
    assert_eq!(r.value_is(view.value()), Ok(true), "value_is");
    assert_eq!(r.expires_at(), Ok(view.expires_at()), "expires_at");
    assert_eq!(r.oid(), Ok(view.oid()), "oid");
    match (r.auth(), view.auth()) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "auth"),
        (Err(_), Err(_)) => {}
        (a, b) => panic!("auth: the reader gives {a:?}, the verified decode {b:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Cookie, CookieView};
    use serde_json::json;
    use uuid::Uuid;

    fn sample() -> Cookie {
        Cookie {
            oid: Uuid::new_v4(),
            created: 1_763_800_000_000_000_000,
            max_age: 86_400,
            name: Some("cbtid".into()),
            value: "abcdefghijklmnopqrstuvwx".into(),
            authid: Some("alice".into()),
            authrole: Some("user".into()),
            authmethod: Some("cookie".into()),
            authrealm: Some("realm1".into()),
            authextra: json!({"k": [1, 2]}),
            authenticated_authmethod: Some("wampcra".into()),
            ..Cookie::default()
        }
    }

    #[test]
    fn reads_what_the_full_view_reads() {
        let c = sample();
        let bytes = c.encode().unwrap();
        let r = RecordReader::new(&bytes).unwrap();
        let v = CookieView::new(&bytes).unwrap();
        assert_eq!(r.value().unwrap(), v.value());
        assert_eq!(r.expires_at().unwrap(), v.expires_at());
        assert_eq!(r.auth().unwrap(), v.auth().unwrap());
        let empty = Cookie::default().encode().unwrap();
        let r = RecordReader::new(&empty).unwrap();
        assert_eq!((r.value().unwrap(), r.expires_at().unwrap()), ("", 0));
        assert_eq!(r.auth().unwrap(), None);
    }

    #[test]
    fn every_truncation_and_byte_flip_is_an_error_or_a_value_never_a_panic() {
        let bytes = sample().encode().unwrap();
        for len in 0..bytes.len() {
            if let Ok(r) = RecordReader::new(&bytes[..len]) {
                let _ = (r.value(), r.expires_at(), r.auth());
            }
        }
        for i in 0..bytes.len() {
            for flip in [0x01, 0x80, 0xFF] {
                let mut b = bytes.clone();
                b[i] ^= flip;
                if let Ok(r) = RecordReader::new(&b) {
                    let _ = (r.value(), r.expires_at(), r.auth());
                }
            }
        }
        assert!(RecordReader::new(&[]).is_err());
        assert!(RecordReader::new(&[0xFF, 0xFF, 0xFF, 0x7F]).is_err());
    }

    #[test]
    fn agrees_on_a_record_the_fuzzer_found() {
        // fuzz/artifacts/reader/crash-360a2c925e26133fabd89dc5bfbb68164455390a
        let bytes: &[u8] = &[
            24, 0, 0, 0, 0, 0, 0, 0, 0, 0, 14, 0, 32, 0, 4, 0, 16, 0, 24, 0, 8, 0, 39, 0, 0, 0, 0,
            0, 0, 0, 12, 0, 14, 0, 0, 0, 72, 0, 0, 0, 55, 45, 45, 45, 45, 45, 45, 45, 45, 45, 45,
            45, 45, 45, 45, 45, 45, 45, 45, 45, 45, 45, 45, 45, 45, 45, 45, 0, 0, 0, 20, 0, 0, 0,
            0, 0, 162, 57, 33, 43, 122, 24, 128, 81, 1, 0, 0, 0, 0, 0, 24, 0, 0, 0, 65, 98, 67,
            118, 101, 108, 3, 102, 116, 101, 110, 100, 187, 153, 184, 151, 182, 149, 180, 145, 77,
            110, 79, 112, 81, 114, 83, 116, 85, 118, 87, 120, 0, 0, 0, 0, 40, 0, 0, 0, 34, 99, 98,
            116, 105, 150, 0, 0, 0, 0, 0, 30,
        ];
        agrees_with_decode(bytes);
    }

    #[test]
    fn agrees_on_every_corpus_entry() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus/reader");
        for entry in std::fs::read_dir(dir).unwrap() {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            agrees_with_decode(&bytes);
        }
    }

    #[test]
    fn agrees_with_the_verified_decode() {
        let bytes = sample().encode().unwrap();
        agrees_with_decode(&bytes);
        agrees_with_decode(&Cookie::default().encode().unwrap());
        for len in 0..bytes.len() {
            agrees_with_decode(&bytes[..len]);
        }
    }
}
