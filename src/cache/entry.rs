//! One entry of the per-process cache (`cache/mod.rs`): a live cookie's lookup in one
//! allocation besides its header.
//!
//! The auth strings and authextra's CBOR are kept end to end in one buffer, as the record
//! holds them (authextra stays CBOR: a JSON tree of a three-key map costs ~900 bytes in
//! small heap chunks, its CBOR ~20). Readers borrow the fields ([`CachedLookup::auth_fields`],
//! what `borrowed.rs` and the Python binding read) or decode them into an owned [`Lookup`]
//! ([`CachedLookup::to_lookup`]). authextra's CBOR is decoded once when the entry is made,
//! so that a damaged one is reported then, as an uncached lookup reports it.

use uuid::Uuid;

use crate::error::{Error, Result};
use crate::record::cbor::cbor_to_json_field;
use crate::record::cookie::{Auth, Lookup};
use crate::record::reader::{AuthFields, RecordReader};

/// A live cookie's lookup as the cache keeps it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct CachedLookup {
    pub(crate) oid: Uuid,
    /// When it expires (ns).
    pub(crate) expires_at: u64,
    /// Its lifetime (s).
    pub(crate) max_age: u64,
    /// authid, authrole, authmethod, authrealm, then authextra's CBOR, end to end; empty when
    /// the cookie is not authenticated.
    buf: Box<[u8]>,
    /// Where each of those five ends in `buf`.
    ends: [u32; 5],
    /// Bit `i`: string `i` (authid, authrole, authmethod, authrealm) is present; 0 when the
    /// cookie is not authenticated.
    present: u8,
}

impl CachedLookup {
    /// The entry of `record`, stored under `oid`, which the caller found live.
    pub(crate) fn from_record(oid: Uuid, record: &RecordReader<'_>) -> Result<CachedLookup> {
        let corrupt = |problem| Error::CorruptRecord { oid, problem };
        let expires_at = record.expires_at().map_err(corrupt)?;
        let max_age = record.max_age().map_err(corrupt)?;
        let fields = record.auth_fields().map_err(corrupt)?;
        if let Some(f) = &fields
            && !f.authextra.is_empty()
        {
            cbor_to_json_field("authextra", f.authextra).map_err(corrupt)?;
        }
        CachedLookup::new(oid, expires_at, max_age, fields.as_ref()).map_err(corrupt)
    }

    /// An entry of these fields; refused when they exceed 4 GiB together (no record does).
    pub(crate) fn new(
        oid: Uuid,
        expires_at: u64,
        max_age: u64,
        auth: Option<&AuthFields<'_>>,
    ) -> std::result::Result<CachedLookup, String> {
        let mut entry = CachedLookup {
            oid,
            expires_at,
            max_age,
            buf: Box::default(),
            ends: [0; 5],
            present: 0,
        };
        let Some(a) = auth else {
            return Ok(entry);
        };
        let strings = [Some(a.authid), a.authrole, a.authmethod, a.authrealm];
        let len = strings.iter().flatten().map(|s| s.len()).sum::<usize>() + a.authextra.len();
        let mut buf = Vec::with_capacity(len);
        for (i, s) in strings.iter().enumerate() {
            if let Some(s) = s {
                buf.extend_from_slice(s.as_bytes());
                entry.present |= 1 << i;
            }
            entry.ends[i] = end(buf.len())?;
        }
        buf.extend_from_slice(a.authextra);
        entry.ends[4] = end(buf.len())?;
        entry.buf = buf.into_boxed_slice();
        Ok(entry)
    }

    /// Bytes of its buffer (its one heap chunk besides the entry itself).
    pub(crate) fn buf_len(&self) -> usize {
        self.buf.len()
    }

    fn part(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        self.buf
            .get(start..self.ends[i] as usize)
            .unwrap_or_default()
    }

    fn string(&self, i: usize) -> Option<&str> {
        if self.present & (1 << i) == 0 {
            return None;
        }
        let bytes = self.part(i);
        // SAFETY: `new` copied string `i` from a `&str` into exactly `buf[ends[i-1]..ends[i]]`
        // (what `part(i)` borrows; an empty slice otherwise), and neither `buf` nor `ends`
        // changes afterwards (private fields, no `&mut self` method): the bytes are UTF-8.
        // Checking them again cost ~150 instructions a string on every cache hit.
        Some(unsafe { std::str::from_utf8_unchecked(bytes) })
    }

    /// Its authentication, borrowed (authextra as CBOR), if it has an authid.
    pub(crate) fn auth_fields(&self) -> Option<AuthFields<'_>> {
        Some(AuthFields {
            authid: self.string(0)?,
            authrole: self.string(1),
            authmethod: self.string(2),
            authrealm: self.string(3),
            authextra: self.part(4),
        })
    }

    /// Its authentication, owned (authextra decoded), if it has an authid.
    pub(crate) fn to_auth(&self) -> Result<Option<Auth>> {
        let Some(f) = self.auth_fields() else {
            return Ok(None);
        };
        let authextra = cbor_to_json_field("authextra", f.authextra).map_err(|problem| {
            Error::CorruptRecord {
                oid: self.oid,
                problem,
            }
        })?;
        Ok(Some(Auth {
            authid: f.authid.to_owned(),
            authrole: f.authrole.map(str::to_owned),
            authmethod: f.authmethod.map(str::to_owned),
            authrealm: f.authrealm.map(str::to_owned),
            authextra,
        }))
    }

    /// The owned [`Lookup`] it stands for.
    pub(crate) fn to_lookup(&self) -> Result<Lookup> {
        Ok(Lookup {
            oid: self.oid,
            expires_at: self.expires_at,
            max_age: self.max_age,
            auth: self.to_auth()?,
        })
    }
}

fn end(len: usize) -> std::result::Result<u32, String> {
    u32::try_from(len).map_err(|_| format!("its auth fields hold {len} bytes, over 4 GiB"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_come_back_as_they_went_in() {
        let extra =
            crate::record::cbor::cbor_field("authextra", &serde_json::json!({"i": 7})).unwrap();
        let fields = AuthFields {
            authid: "alice",
            authrole: None,
            authmethod: Some(""),
            authrealm: Some("realm1"),
            authextra: &extra,
        };
        let oid = Uuid::new_v4();
        let entry = CachedLookup::new(oid, 5, 6, Some(&fields)).unwrap();
        assert_eq!(entry.auth_fields(), Some(fields));
        let auth = entry.to_auth().unwrap().unwrap();
        assert_eq!(auth.authextra, serde_json::json!({"i": 7}));
        assert_eq!(auth.authrole, None);
        assert_eq!(auth.authmethod.as_deref(), Some(""));
        let anonymous = CachedLookup::new(oid, 5, 6, None).unwrap();
        assert_eq!(anonymous.auth_fields(), None);
        assert_eq!(anonymous.to_lookup().unwrap().auth, None);
        assert_eq!(anonymous.buf_len(), 0);
    }
}
