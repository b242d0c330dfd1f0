//! The FlatBuffers codec of a [`Cookie`] record: [`Cookie::encode`], [`Cookie::decode`] and
//! [`CookieView`], a verified zero-copy view of the encoded bytes.
//!
//! Records are byte-compatible with cfxdb's `Cookie` table (see `schema/cookiestore.fbs`).
//! Like cfxdb, the encoder writes a field only when it is "truthy" (not 0, not empty, not an
//! empty map), and readers give 0, `None` or `{}` for absent fields. Decoding verifies the
//! buffer first, so corrupt or truncated bytes give an error, never a panic.

use flatbuffers::{FlatBufferBuilder, VerifierOptions, WIPOffset};
use serde_json::Value;
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::record::cbor::{cbor_field, cbor_to_json_field};
use crate::record::cookie::{Auth, Cookie, MAX_RECORD_SIZE, expires_at};
use crate::record::generated as fb;

impl Cookie {
    /// Encodes the record as a finished FlatBuffers buffer.
    ///
    /// Errors when a CBOR field is nested deeper than 64 levels or the record exceeds 1 MiB.
    pub fn encode(&self) -> Result<Vec<u8>> {
        let transport = cbor_field(
            "authenticated_transport_info",
            &self.authenticated_transport_info,
        )?;
        let authextra = cbor_field("authextra", &self.authextra)?;
        self.encode_with(&transport, &authextra)
    }

    /// [`Self::encode`] with the two CBOR fields given as their bytes (`transport` and
    /// `authextra`; empty: unset) instead of this cookie's JSON values, which are not read.
    pub(crate) fn encode_with(&self, transport: &[u8], authextra: &[u8]) -> Result<Vec<u8>> {
        let mut fbb = FlatBufferBuilder::with_capacity(256 + transport.len() + authextra.len());
        let oid = (!self.oid.is_nil()).then(|| fbb.create_vector(self.oid.as_bytes()));
        let name = s(&mut fbb, &self.name);
        let value = (!self.value.is_empty()).then(|| fbb.create_string(&self.value));
        let node = self
            .authenticated_on_node
            .map(|u| fbb.create_vector(u.as_bytes()));
        let worker = s(&mut fbb, &self.authenticated_on_worker);
        let transport = (!transport.is_empty()).then(|| fbb.create_vector(transport));
        let session_method = s(&mut fbb, &self.authenticated_authmethod);
        let authid = s(&mut fbb, &self.authid);
        let authrole = s(&mut fbb, &self.authrole);
        let authmethod = s(&mut fbb, &self.authmethod);
        let authrealm = s(&mut fbb, &self.authrealm);
        let authextra = (!authextra.is_empty()).then(|| fbb.create_vector(authextra));

        let root = fb::Cookie::create(
            &mut fbb,
            &fb::CookieArgs {
                oid,
                created: self.created,
                max_age: self.max_age,
                name,
                value,
                authenticated: self.authenticated,
                authenticated_on_node: node,
                authenticated_on_worker: worker,
                authenticated_transport_info: transport,
                authenticated_session: self.authenticated_session,
                authenticated_joined_at: self.authenticated_joined_at,
                authenticated_authmethod: session_method,
                authid,
                authrole,
                authmethod,
                authrealm,
                authextra,
            },
        );
        fbb.finish_minimal(root);
        let bytes = fbb.finished_data();
        if bytes.len() > MAX_RECORD_SIZE {
            return Err(Error::InvalidValue {
                problem: format!(
                    "the encoded record is {} bytes, more than the {} allowed; store less in \
                     authextra or authenticated_transport_info",
                    bytes.len(),
                    MAX_RECORD_SIZE
                ),
            });
        }
        Ok(bytes.to_vec())
    }

    /// Decodes a record, verifying the buffer; every field is materialised.
    pub fn decode(bytes: &[u8]) -> Result<Cookie> {
        CookieView::new(bytes)
            .and_then(|view| view.to_cookie())
            .map_err(|problem| Error::InvalidRecord { problem })
    }
}

/// A record ready to be written, checked storable: its bytes, and the fields a store keys
/// and indexes it by. A writer that has the bytes already (a restore, which reads the CBOR fields straight from
/// JSON) needs no [`Cookie`] with its JSON values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Encoded {
    pub(crate) oid: Uuid,
    pub(crate) value: String,
    pub(crate) authid: Option<String>,
    /// When the cookie expires (ns).
    pub(crate) expires: u64,
    /// The record: [`Cookie::encode`]'s bytes.
    pub(crate) bytes: Vec<u8>,
}

impl Encoded {
    /// `cookie`, checked storable ([`Error::InvalidValue`] when it is not) and encoded.
    pub(crate) fn of(cookie: &Cookie) -> Result<Encoded> {
        cookie.check_storable()?;
        let bytes = cookie.encode()?;
        Ok(Encoded {
            oid: cookie.oid,
            value: cookie.value.clone(),
            authid: cookie.authid.clone(),
            expires: cookie.expires_at(),
            bytes,
        })
    }

    /// `cookie` whose record is `bytes` (its encoding, which the caller made), checked
    /// storable as [`Self::of`].
    pub(crate) fn with_bytes(cookie: Cookie, bytes: Vec<u8>) -> Result<Encoded> {
        cookie.check_storable()?;
        Ok(Encoded {
            oid: cookie.oid,
            expires: cookie.expires_at(),
            value: cookie.value,
            authid: cookie.authid,
            bytes,
        })
    }

    /// Whether `cookie` is the record this one holds: they encode to the same bytes.
    pub(crate) fn is(&self, cookie: &Cookie) -> bool {
        cookie.encode().is_ok_and(|bytes| bytes == self.bytes)
    }
}

/// A verified, zero-copy view of an encoded record: fields are read on demand from the bytes.
#[derive(Clone, Copy)]
pub struct CookieView<'a> {
    table: fb::Cookie<'a>,
}

impl std::fmt::Debug for CookieView<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CookieView")
            .field("value", &self.value())
            .field("created", &self.created())
            .field("max_age", &self.max_age())
            .finish_non_exhaustive()
    }
}

fn verifier_options() -> VerifierOptions {
    VerifierOptions {
        max_depth: 8,
        max_tables: 16,
        max_apparent_size: 1 << 31,
        ignore_missing_null_terminator: true,
    }
}

impl<'a> CookieView<'a> {
    /// Verifies `bytes` as a `Cookie` buffer; the error says what is wrong.
    pub fn new(bytes: &'a [u8]) -> std::result::Result<Self, String> {
        fb::root_as_cookie_with_opts(&verifier_options(), bytes)
            .map(|table| CookieView { table })
            .map_err(|e| e.to_string())
    }

    /// The stored oid, if present and 16 bytes long.
    pub fn oid(&self) -> Option<Uuid> {
        self.table.oid().and_then(|v| uuid_of(v.bytes()))
    }
    /// Creation time (ns), 0 if absent.
    pub fn created(&self) -> u64 {
        self.table.created()
    }
    /// max_age (s), 0 if absent.
    pub fn max_age(&self) -> u64 {
        self.table.max_age()
    }
    /// Expiry time (ns).
    pub fn expires_at(&self) -> u64 {
        expires_at(self.created(), self.max_age())
    }
    /// Whether the cookie is expired at `now_ns`.
    pub fn is_expired(&self, now_ns: u64) -> bool {
        now_ns >= self.expires_at()
    }
    /// Cookie value ("" if absent).
    pub fn value(&self) -> &'a str {
        self.table.value().unwrap_or("")
    }
    /// Cookie name.
    pub fn name(&self) -> Option<&'a str> {
        self.table.name()
    }
    /// authid.
    pub fn authid(&self) -> Option<&'a str> {
        self.table.authid()
    }
    /// authrole.
    pub fn authrole(&self) -> Option<&'a str> {
        self.table.authrole()
    }
    /// authmethod.
    pub fn authmethod(&self) -> Option<&'a str> {
        self.table.authmethod()
    }
    /// authrealm.
    pub fn authrealm(&self) -> Option<&'a str> {
        self.table.authrealm()
    }
    /// The raw CBOR bytes of authextra (empty if absent).
    pub fn authextra_cbor(&self) -> &'a [u8] {
        self.table.authextra().map(|v| v.bytes()).unwrap_or(&[])
    }
    /// authextra decoded to JSON (`{}` if absent).
    pub fn authextra(&self) -> std::result::Result<Value, String> {
        cbor_to_json_field("authextra", self.authextra_cbor())
    }

    /// The authentication stored on the cookie, if it has an authid.
    pub fn auth(&self) -> std::result::Result<Option<Auth>, String> {
        let Some(authid) = self.authid() else {
            return Ok(None);
        };
        Ok(Some(Auth {
            authid: authid.to_string(),
            authrole: self.authrole().map(str::to_string),
            authmethod: self.authmethod().map(str::to_string),
            authrealm: self.authrealm().map(str::to_string),
            authextra: self.authextra()?,
        }))
    }

    /// Materialises every field.
    pub fn to_cookie(&self) -> std::result::Result<Cookie, String> {
        let t = &self.table;
        let uuid_field = |name: &str, v: Option<flatbuffers::Vector<'a, u8>>| match v {
            None => Ok(None),
            Some(v) => uuid_of(v.bytes())
                .map(Some)
                .ok_or_else(|| format!("field {name} holds {} bytes, not a 16-byte uuid", v.len())),
        };
        let owned = |v: Option<&str>| v.map(str::to_string);
        Ok(Cookie {
            oid: uuid_field("oid", t.oid())?.unwrap_or_else(Uuid::nil),
            created: t.created(),
            max_age: t.max_age(),
            name: owned(t.name()),
            value: owned(t.value()).unwrap_or_default(),
            authenticated: t.authenticated(),
            authenticated_on_node: uuid_field("authenticated_on_node", t.authenticated_on_node())?,
            authenticated_on_worker: owned(t.authenticated_on_worker()),
            authenticated_transport_info: cbor_to_json_field(
                "authenticated_transport_info",
                t.authenticated_transport_info()
                    .map(|v| v.bytes())
                    .unwrap_or(&[]),
            )?,
            authenticated_session: t.authenticated_session(),
            authenticated_joined_at: t.authenticated_joined_at(),
            authenticated_authmethod: owned(t.authenticated_authmethod()),
            authid: owned(t.authid()),
            authrole: owned(t.authrole()),
            authmethod: owned(t.authmethod()),
            authrealm: owned(t.authrealm()),
            authextra: self.authextra()?,
        })
    }
}

/// A string field is written only when set and non-empty (cfxdb's truthiness rule).
fn s<'f>(fbb: &mut FlatBufferBuilder<'f>, v: &Option<String>) -> Option<WIPOffset<&'f str>> {
    v.as_deref()
        .filter(|v| !v.is_empty())
        .map(|v| fbb.create_string(v))
}

pub(crate) fn uuid_of(bytes: &[u8]) -> Option<Uuid> {
    Uuid::from_slice(bytes).ok()
}

/// The record `view` stored under `oid`, every field; a record without an oid field takes
/// `oid`. [`Error::CorruptRecord`] naming `oid` when a field cannot be decoded.
pub(crate) fn materialise(oid: Uuid, view: CookieView<'_>) -> Result<Cookie> {
    let mut cookie = view
        .to_cookie()
        .map_err(|problem| Error::CorruptRecord { oid, problem })?;
    if cookie.oid.is_nil() {
        cookie.oid = oid;
    }
    Ok(cookie)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::generated as fb;
    use serde_json::json;

    /// A record whose authextra holds exactly `cbor`.
    fn record_with_raw_authextra(cbor: &[u8]) -> Vec<u8> {
        let mut fbb = FlatBufferBuilder::new();
        let value = fbb.create_string("abcdef");
        let authextra = fbb.create_vector(cbor);
        let root = fb::Cookie::create(
            &mut fbb,
            &fb::CookieArgs {
                value: Some(value),
                authextra: Some(authextra),
                ..Default::default()
            },
        );
        fbb.finish_minimal(root);
        fbb.finished_data().to_vec()
    }

    #[test]
    fn cbor_that_json_cannot_hold_is_converted_not_rejected() {
        let mut cbor = vec![0xA4]; // map(4)
        cbor.extend_from_slice(&[0x61, b'b', 0x42, 0xDE, 0xAD]); // "b": h'dead'
        cbor.extend_from_slice(&[0x01, 0x61, b'x']); // 1: "x"
        cbor.extend_from_slice(&[0x61, b't', 0xC1, 0x10]); // "t": 1(16)
        cbor.extend_from_slice(&[0x61, b'n', 0xF9, 0x7E, 0x00]); // "n": NaN (half float)
        let c = Cookie::decode(&record_with_raw_authextra(&cbor)).unwrap();
        assert_eq!(
            c.authextra,
            json!({"b": "dead", "1": "x", "t": 16, "n": null})
        );
    }
}
