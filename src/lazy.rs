//! The lookup that builds nothing nobody reads: borrowed views inside the read transaction
//! ([`CookieStore::with_auth`], [`CookieStore::with_lookup`]) and an owned answer that copies
//! the auth strings once and keeps authextra as CBOR until asked ([`LazyAuth`]).
//!
//! [`CookieStore::get_auth`] returns an owned [`Auth`]: four `String`s and authextra decoded
//! from CBOR into JSON, which costs more than the lookup's two B-tree searches when the caller
//! only wants the authid. These read the same fields with the same checks (each string's
//! bounds and UTF-8 as it is read; see `reader.rs`) and decode authextra only on demand.

use std::ops::Range;

use serde_json::Value;
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::record::cbor::cbor_to_json_field;
use crate::record::cookie::Auth;
use crate::record::reader::AuthFields;
use crate::store::CookieStore;

/// The authentication of a live cookie, borrowed from the store's memory map for the
/// duration of one read transaction (see [`CookieStore::with_auth`]).
///
/// Its strings point into the record; authextra stays CBOR until [`AuthRef::authextra`]
/// decodes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthRef<'t> {
    oid: Uuid,
    fields: AuthFields<'t>,
}

impl<'t> AuthRef<'t> {
    /// The authid.
    pub fn authid(&self) -> &'t str {
        self.fields.authid
    }

    /// The role.
    pub fn authrole(&self) -> Option<&'t str> {
        self.fields.authrole
    }

    /// The method.
    pub fn authmethod(&self) -> Option<&'t str> {
        self.fields.authmethod
    }

    /// The realm.
    pub fn authrealm(&self) -> Option<&'t str> {
        self.fields.authrealm
    }

    /// authextra as stored: CBOR bytes, empty when the record has none (which
    /// [`AuthRef::authextra`] reads as `{}`). Not checked until decoded.
    pub fn authextra_cbor(&self) -> &'t [u8] {
        self.fields.authextra
    }

    /// authextra decoded to JSON (`{}` when none). [`Error::CorruptRecord`] when its CBOR
    /// does not decode.
    pub fn authextra(&self) -> Result<Value> {
        decode_authextra(self.oid, self.fields.authextra)
    }

    /// The object id of the cookie's record.
    pub fn oid(&self) -> Uuid {
        self.oid
    }

    /// The owned [`Auth`], as [`CookieStore::get_auth`] returns it (authextra decoded).
    pub fn to_auth(&self) -> Result<Auth> {
        Ok(Auth {
            authid: self.fields.authid.to_string(),
            authrole: self.fields.authrole.map(str::to_string),
            authmethod: self.fields.authmethod.map(str::to_string),
            authrealm: self.fields.authrealm.map(str::to_string),
            authextra: self.authextra()?,
        })
    }

    /// An owned copy that outlives the transaction, authextra still undecoded.
    pub fn to_lazy(&self) -> LazyAuth {
        LazyAuth::new(self.oid, &self.fields)
    }
}

/// A live cookie as [`CookieStore::with_lookup`] sees it, borrowed for one read transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LookupRef<'t> {
    oid: Uuid,
    expires_at: u64,
    max_age: u64,
    auth: Option<AuthRef<'t>>,
}

impl<'t> LookupRef<'t> {
    /// Its object id.
    pub fn oid(&self) -> Uuid {
        self.oid
    }

    /// When it expires (ns).
    pub fn expires_at(&self) -> u64 {
        self.expires_at
    }

    /// Its lifetime (s).
    pub fn max_age(&self) -> u64 {
        self.max_age
    }

    /// Its authentication, if it has an authid.
    pub fn auth(&self) -> Option<AuthRef<'t>> {
        self.auth
    }
}

/// An owned authentication whose strings were copied once (into one buffer) and whose
/// authextra stays CBOR until [`LazyAuth::authextra`] decodes it.
///
/// From [`CookieStore::get_auth_lazy`], [`AuthRef::to_lazy`] or
/// [`Tracker::track_lazy`](crate::Tracker::track_lazy). Two are equal when their fields and
/// authextra bytes are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LazyAuth {
    oid: Uuid,
    /// authid, authrole, authmethod, authrealm, one after the other.
    text: String,
    authid: Range<u32>,
    authrole: Option<Range<u32>>,
    authmethod: Option<Range<u32>>,
    authrealm: Option<Range<u32>>,
    authextra: Vec<u8>,
}

impl LazyAuth {
    fn new(oid: Uuid, f: &AuthFields<'_>) -> LazyAuth {
        let len = f.authid.len()
            + f.authrole.map_or(0, str::len)
            + f.authmethod.map_or(0, str::len)
            + f.authrealm.map_or(0, str::len);
        let mut text = String::with_capacity(len);
        // Records are at most a few MiB (LMDB values), so offsets fit in u32.
        let mut push = |s: &str| {
            let start = text.len() as u32;
            text.push_str(s);
            start..text.len() as u32
        };
        let authid = push(f.authid);
        let authrole = f.authrole.map(&mut push);
        let authmethod = f.authmethod.map(&mut push);
        let authrealm = f.authrealm.map(&mut push);
        LazyAuth {
            oid,
            text,
            authid,
            authrole,
            authmethod,
            authrealm,
            authextra: f.authextra.to_vec(),
        }
    }

    fn part(&self, r: &Range<u32>) -> &str {
        // The ranges were made at char boundaries of `text` by `new`.
        self.text
            .get(r.start as usize..r.end as usize)
            .unwrap_or_default()
    }

    /// The authid.
    pub fn authid(&self) -> &str {
        self.part(&self.authid)
    }

    /// The role.
    pub fn authrole(&self) -> Option<&str> {
        self.authrole.as_ref().map(|r| self.part(r))
    }

    /// The method.
    pub fn authmethod(&self) -> Option<&str> {
        self.authmethod.as_ref().map(|r| self.part(r))
    }

    /// The realm.
    pub fn authrealm(&self) -> Option<&str> {
        self.authrealm.as_ref().map(|r| self.part(r))
    }

    /// authextra as stored: CBOR bytes, empty when there is none.
    pub fn authextra_cbor(&self) -> &[u8] {
        &self.authextra
    }

    /// authextra decoded to JSON (`{}` when none). [`Error::CorruptRecord`] when its CBOR
    /// does not decode.
    pub fn authextra(&self) -> Result<Value> {
        decode_authextra(self.oid, &self.authextra)
    }

    /// The object id of the cookie's record.
    pub fn oid(&self) -> Uuid {
        self.oid
    }

    /// The owned [`Auth`] (authextra decoded).
    pub fn to_auth(&self) -> Result<Auth> {
        Ok(Auth {
            authid: self.authid().to_string(),
            authrole: self.authrole().map(str::to_string),
            authmethod: self.authmethod().map(str::to_string),
            authrealm: self.authrealm().map(str::to_string),
            authextra: self.authextra()?,
        })
    }
}

fn decode_authextra(oid: Uuid, cbor: &[u8]) -> Result<Value> {
    cbor_to_json_field("authextra", cbor).map_err(|problem| Error::CorruptRecord { oid, problem })
}

impl CookieStore {
    /// Runs `f` on the authentication of the live cookie with `value`, borrowed inside the
    /// read transaction: nothing is copied, authextra is not decoded unless `f` asks.
    /// `Ok(None)` (and `f` not called) when there is no such cookie, it expired, or it is not
    /// authenticated — as [`CookieStore::get_auth`].
    ///
    /// `f` runs inside the read transaction: keep it short, and do not call the store from
    /// it (that returns [`Error::NestedTransaction`]).
    ///
    /// ```
    /// use cookiestore::{Auth, CookieStore, StoreOptions};
    /// # let dir = tempfile::tempdir().unwrap();
    /// let store = CookieStore::open(dir.path(), StoreOptions::default())?;
    /// let c = store.create("cbtid", 24, 86_400)?;
    /// store.set_auth(&c.value, &Auth::new("alice", "user", "wampcra", "realm1"), &Default::default())?;
    /// let role = store.with_auth(&c.value, |a| a.authrole() == Some("user"))?;
    /// assert_eq!(role, Some(true));
    /// # Ok::<(), cookiestore::Error>(())
    /// ```
    pub fn with_auth<T>(&self, value: &str, f: impl FnOnce(AuthRef<'_>) -> T) -> Result<Option<T>> {
        let mut f = Some(f);
        let mut out = None;
        self.seam().with_live_record(value, &mut |oid, record| {
            let fields = record
                .auth_fields()
                .map_err(|problem| Error::CorruptRecord { oid, problem })?;
            if let (Some(fields), Some(f)) = (fields, f.take()) {
                out = Some(f(AuthRef { oid, fields }));
            }
            Ok(())
        })?;
        Ok(out)
    }

    /// Runs `f` on the live cookie with `value` (expiry, lifetime, borrowed authentication),
    /// inside the read transaction: what [`CookieStore::lookup`] answers, without copying or
    /// decoding. `Ok(None)` (and `f` not called) when there is no live cookie with `value`.
    /// The same rules as [`CookieStore::with_auth`] hold for `f`.
    pub fn with_lookup<T>(
        &self,
        value: &str,
        f: impl FnOnce(LookupRef<'_>) -> T,
    ) -> Result<Option<T>> {
        let mut f = Some(f);
        let mut out = None;
        self.seam().with_live_record(value, &mut |oid, record| {
            let corrupt = |problem| Error::CorruptRecord { oid, problem };
            let auth = record
                .auth_fields()
                .map_err(corrupt)?
                .map(|fields| AuthRef { oid, fields });
            let lookup = LookupRef {
                oid,
                expires_at: record.expires_at().map_err(corrupt)?,
                max_age: record.max_age().map_err(corrupt)?,
                auth,
            };
            if let Some(f) = f.take() {
                out = Some(f(lookup));
            }
            Ok(())
        })?;
        Ok(out)
    }

    /// As [`CookieStore::get_auth`], but owned lazily: the strings copied once, authextra
    /// left as CBOR until [`LazyAuth::authextra`].
    pub fn get_auth_lazy(&self, value: &str) -> Result<Option<LazyAuth>> {
        self.with_auth(value, |a| a.to_lazy())
    }
}
