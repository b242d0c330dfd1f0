//! The `Cookie` record: the owned type, a zero-copy view, and the FlatBuffers codec.
//!
//! Records are byte-compatible with cfxdb's `Cookie` table (see `schema/cookiestore.fbs`).
//! Like cfxdb, the encoder writes a field only when it is "truthy" (not 0, not empty, not
//! an empty map), and readers give 0, `None` or `{}` for absent fields. The two CBOR fields
//! (`authextra`, `authenticated_transport_info`) are exposed as [`serde_json::Value`].
//!
//! Decoding verifies the buffer first, so corrupt or truncated bytes give an error, never a
//! panic. [`CookieView`] reads single fields straight from the (memory-mapped) bytes; that
//! is what the lookup path uses.

use std::borrow::Cow;

use flatbuffers::{FlatBufferBuilder, VerifierOptions, WIPOffset};
use heed::{BoxedError, BytesDecode, BytesEncode};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::record::generated as fb;

/// Largest encoded record accepted for writing (1 MiB): a bound for huge `authextra`.
pub const MAX_RECORD_SIZE: usize = 1024 * 1024;

/// Deepest nesting accepted in `authextra` and `authenticated_transport_info`.
pub const MAX_CBOR_DEPTH: usize = 64;

/// A cookie, with every field of cfxdb's `Cookie` table.
///
/// Timestamps are nanoseconds since the Unix epoch (0 = not set); `max_age` is in seconds.
/// Its JSON form (serde) is the one cfxdb's tools and our `export` use: uuids as strings,
/// timestamps as integers, unset fields left out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Cookie {
    /// Object ID: the key of the record in the Cookies table.
    pub oid: Uuid,
    /// Creation time (ns since the Unix epoch).
    #[serde(skip_serializing_if = "is_zero")]
    pub created: u64,
    /// Lifetime in seconds: the cookie expires at `created + max_age`.
    #[serde(skip_serializing_if = "is_zero")]
    pub max_age: u64,
    /// Cookie name, for example `cbtid`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Cookie value: the random ID the browser sends back. Unique in a store.
    pub value: String,
    /// When the cookie was authenticated (ns), 0 if never.
    #[serde(skip_serializing_if = "is_zero")]
    pub authenticated: u64,
    /// Node on which it was authenticated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authenticated_on_node: Option<Uuid>,
    /// Router worker on which it was authenticated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authenticated_on_worker: Option<String>,
    /// Transport details at authentication (a CBOR map on disk); `{}` when unset.
    #[serde(skip_serializing_if = "is_empty_map")]
    pub authenticated_transport_info: Value,
    /// WAMP session ID that authenticated the cookie, 0 if none.
    #[serde(skip_serializing_if = "is_zero")]
    pub authenticated_session: u64,
    /// When that session joined (ns), 0 if unknown.
    #[serde(skip_serializing_if = "is_zero")]
    pub authenticated_joined_at: u64,
    /// Authentication method of that session (for example `wampcra`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authenticated_authmethod: Option<String>,
    /// Authentication ID stored on the cookie.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authid: Option<String>,
    /// Authentication role.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authrole: Option<String>,
    /// Authentication method (usually `cookie`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authmethod: Option<String>,
    /// Realm.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authrealm: Option<String>,
    /// Extra authentication data (a CBOR map on disk); `{}` when unset.
    #[serde(skip_serializing_if = "is_empty_map")]
    pub authextra: Value,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn is_empty_map(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        _ => false,
    }
}

fn empty_map() -> Value {
    Value::Object(serde_json::Map::new())
}

impl Default for Cookie {
    fn default() -> Self {
        Cookie {
            oid: Uuid::nil(),
            created: 0,
            max_age: 0,
            name: None,
            value: String::new(),
            authenticated: 0,
            authenticated_on_node: None,
            authenticated_on_worker: None,
            authenticated_transport_info: empty_map(),
            authenticated_session: 0,
            authenticated_joined_at: 0,
            authenticated_authmethod: None,
            authid: None,
            authrole: None,
            authmethod: None,
            authrealm: None,
            authextra: empty_map(),
        }
    }
}

/// When a cookie created at `created` (ns) with `max_age` (s) expires, in ns.
pub fn expires_at(created: u64, max_age: u64) -> u64 {
    created.saturating_add(crate::clock::secs_to_ns(max_age))
}

/// The authentication a cookie carries: what Crossbar.io's `getAuth` returns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Auth {
    /// Authentication ID.
    pub authid: String,
    /// Role.
    pub authrole: Option<String>,
    /// Method (Crossbar sets the method the cookie was authenticated with, e.g. `cookie`).
    pub authmethod: Option<String>,
    /// Realm.
    pub authrealm: Option<String>,
    /// Extra data; `{}` when none.
    pub authextra: Value,
}

impl Auth {
    /// An authentication with every field set and no authextra.
    pub fn new(authid: &str, authrole: &str, authmethod: &str, authrealm: &str) -> Self {
        Auth {
            authid: authid.to_string(),
            authrole: Some(authrole.to_string()),
            authmethod: Some(authmethod.to_string()),
            authrealm: Some(authrealm.to_string()),
            authextra: empty_map(),
        }
    }

    /// The same with `authextra` set.
    pub fn with_authextra(mut self, authextra: Value) -> Self {
        self.authextra = authextra;
        self
    }
}

/// Where and how an authentication happened: the `authenticated_*` fields.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AuthContext {
    /// Node ID.
    pub node: Option<Uuid>,
    /// Router worker name.
    pub worker: Option<String>,
    /// Transport details (peer, headers, ...); `Null` or `{}` for none.
    pub transport_info: Value,
    /// WAMP session ID.
    pub session: u64,
    /// When the session joined (ns).
    pub joined_at: u64,
    /// The method the session authenticated with (for example `wampcra`).
    pub authmethod: Option<String>,
}

impl AuthContext {
    /// Sets [`node`](Self::node).
    pub fn node(mut self, node: Option<Uuid>) -> Self {
        self.node = node;
        self
    }

    /// Sets [`worker`](Self::worker).
    pub fn worker(mut self, worker: Option<String>) -> Self {
        self.worker = worker;
        self
    }

    /// Sets [`transport_info`](Self::transport_info).
    pub fn transport_info(mut self, transport_info: Value) -> Self {
        self.transport_info = transport_info;
        self
    }

    /// Sets [`session`](Self::session).
    pub fn session(mut self, session: u64) -> Self {
        self.session = session;
        self
    }

    /// Sets [`joined_at`](Self::joined_at) (ns).
    pub fn joined_at(mut self, joined_at: u64) -> Self {
        self.joined_at = joined_at;
        self
    }

    /// Sets [`authmethod`](Self::authmethod).
    pub fn authmethod(mut self, authmethod: Option<String>) -> Self {
        self.authmethod = authmethod;
        self
    }
}

impl Cookie {
    /// Whether a store can hold this record as it is: a non-nil oid and a valid value
    /// ([`CookieValue`](crate::CookieValue)'s rules); [`Error::InvalidValue`] says what is not.
    pub(crate) fn check_storable(&self) -> Result<()> {
        if self.oid.is_nil() {
            return Err(Error::InvalidValue {
                problem: "the cookie's oid is nil; give it a UUID (for example Uuid::new_v4())"
                    .into(),
            });
        }
        match crate::record::value::problem(&self.value) {
            Some(problem) => Err(Error::InvalidValue { problem }),
            None => Ok(()),
        }
    }

    /// When this cookie expires (ns since the Unix epoch).
    pub fn expires_at(&self) -> u64 {
        expires_at(self.created, self.max_age)
    }

    /// Whether the cookie is expired at `now_ns`: `now >= created + max_age`.
    pub fn is_expired(&self, now_ns: u64) -> bool {
        now_ns >= self.expires_at()
    }

    /// The stored authentication, if the cookie is authenticated (has an authid).
    pub fn auth(&self) -> Option<Auth> {
        Some(Auth {
            authid: self.authid.clone()?,
            authrole: self.authrole.clone(),
            authmethod: self.authmethod.clone(),
            authrealm: self.authrealm.clone(),
            authextra: self.authextra.clone(),
        })
    }

    /// Encodes the record as a finished FlatBuffers buffer.
    ///
    /// Errors when a CBOR field is nested deeper than 64 levels or the record exceeds 1 MiB.
    pub fn encode(&self) -> Result<Vec<u8>> {
        let transport = cbor_field(
            "authenticated_transport_info",
            &self.authenticated_transport_info,
        )?;
        let authextra = cbor_field("authextra", &self.authextra)?;

        let mut fbb = FlatBufferBuilder::with_capacity(256 + transport.len() + authextra.len());
        let oid = (!self.oid.is_nil()).then(|| fbb.create_vector(self.oid.as_bytes()));
        let name = s(&mut fbb, &self.name);
        let value = (!self.value.is_empty()).then(|| fbb.create_string(&self.value));
        let node = self
            .authenticated_on_node
            .map(|u| fbb.create_vector(u.as_bytes()));
        let worker = s(&mut fbb, &self.authenticated_on_worker);
        let transport = (!transport.is_empty()).then(|| fbb.create_vector(&transport));
        let session_method = s(&mut fbb, &self.authenticated_authmethod);
        let authid = s(&mut fbb, &self.authid);
        let authrole = s(&mut fbb, &self.authrole);
        let authmethod = s(&mut fbb, &self.authmethod);
        let authrealm = s(&mut fbb, &self.authrealm);
        let authextra = (!authextra.is_empty()).then(|| fbb.create_vector(&authextra));

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

fn uuid_of(bytes: &[u8]) -> Option<Uuid> {
    Uuid::from_slice(bytes).ok()
}

/// heed codec for records: encodes a [`Cookie`], decodes a verified [`CookieView`].
pub enum CookieCodec {}

impl<'a> BytesEncode<'a> for CookieCodec {
    type EItem = Cookie;
    fn bytes_encode(item: &'a Cookie) -> std::result::Result<Cow<'a, [u8]>, BoxedError> {
        Ok(Cow::Owned(item.encode()?))
    }
}

impl<'a> BytesDecode<'a> for CookieCodec {
    type DItem = CookieView<'a>;
    fn bytes_decode(bytes: &'a [u8]) -> std::result::Result<CookieView<'a>, BoxedError> {
        Ok(CookieView::new(bytes)?)
    }
}

// ---- CBOR <-> JSON -------------------------------------------------------------------------

fn cbor_field(field: &str, value: &Value) -> Result<Vec<u8>> {
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

/// Whether `auth` (with `context`) can be stored as a cookie's authentication, on any backend:
/// a non-empty authid (an empty one would read back as "not authenticated", so a login
/// would be reported written while the cookie stays anonymous), and JSON values no deeper
/// than [`MAX_CBOR_DEPTH`] (checked before anything recurses over them).
pub(crate) fn check_auth(auth: &Auth, context: &AuthContext) -> Result<()> {
    if auth.authid.is_empty() {
        return Err(Error::InvalidAuth {
            problem: "the authid is empty; an authenticated cookie needs a non-empty authid \
                      (to make a cookie anonymous again, log it out or clear its authentication)"
                .into(),
        });
    }
    check_depth("authextra", &auth.authextra)?;
    check_depth("authenticated_transport_info", &context.transport_info)
}

/// Makes `cookie` anonymous, as [`CookieStore::clear_auth`](crate::CookieStore::clear_auth)
/// does on any backend: the five fields `getAuth` answers are cleared; the
/// `authenticated_*` fields stay (where and when it was last authenticated, as Crossbar.io's
/// stores keep them).
pub(crate) fn clear_auth_fields(cookie: &mut Cookie) {
    cookie.authid = None;
    cookie.authrole = None;
    cookie.authmethod = None;
    cookie.authrealm = None;
    cookie.authextra = empty_map();
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
