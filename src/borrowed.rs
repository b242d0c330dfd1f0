//! The reads that copy nothing: [`CookieStore::with_auth`] and [`CookieStore::with_lookup`]
//! run a closure on a borrowed view of the live cookie.
//!
//! The view borrows this process's cached answer when the cache holds it (or takes it on
//! this read), else the record itself inside the read transaction (LMDB with `cache_bytes`
//! 0, Redis). [`CookieStore::get_auth`] and [`CookieStore::lookup`] return owned copies:
//! four `String`s and authextra as JSON, which costs more than the read itself when the
//! caller only wants the authid. From a record, these read the same fields with the same
//! checks (each string's bounds and UTF-8 as it is read; see `record/reader.rs`) and decode
//! authextra only on demand.

use serde_json::Value;
use uuid::Uuid;

use crate::backend::Live;
use crate::error::{Error, Result};
use crate::record::cbor::cbor_to_json_field;
use crate::record::cookie::Auth;
use crate::record::reader::AuthFields;
use crate::store::CookieStore;

/// The authentication of a live cookie, borrowed for the duration of one call of the
/// closure given to [`CookieStore::with_auth`] or [`CookieStore::with_lookup`].
///
/// Its strings point into this process's cache or into the record; from a record,
/// authextra stays CBOR until [`AuthRef::authextra`] decodes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthRef<'t> {
    oid: Uuid,
    fields: Fields<'t>,
}

/// Where an [`AuthRef`]'s fields are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fields<'t> {
    /// In the record (authextra CBOR).
    Record(AuthFields<'t>),
    /// In the cache's answer (authextra JSON).
    Cached(&'t Auth),
}

impl<'t> AuthRef<'t> {
    /// The authid.
    pub fn authid(&self) -> &'t str {
        match self.fields {
            Fields::Record(f) => f.authid,
            Fields::Cached(a) => &a.authid,
        }
    }

    /// The role.
    pub fn authrole(&self) -> Option<&'t str> {
        match self.fields {
            Fields::Record(f) => f.authrole,
            Fields::Cached(a) => a.authrole.as_deref(),
        }
    }

    /// The method.
    pub fn authmethod(&self) -> Option<&'t str> {
        match self.fields {
            Fields::Record(f) => f.authmethod,
            Fields::Cached(a) => a.authmethod.as_deref(),
        }
    }

    /// The realm.
    pub fn authrealm(&self) -> Option<&'t str> {
        match self.fields {
            Fields::Record(f) => f.authrealm,
            Fields::Cached(a) => a.authrealm.as_deref(),
        }
    }

    /// authextra as JSON (`{}` when none): decoded from the record's CBOR, or copied from
    /// the cache. [`Error::CorruptRecord`] when its CBOR does not decode.
    pub fn authextra(&self) -> Result<Value> {
        match self.fields {
            Fields::Record(f) => cbor_to_json_field("authextra", f.authextra).map_err(|problem| {
                Error::CorruptRecord {
                    oid: self.oid,
                    problem,
                }
            }),
            Fields::Cached(a) => Ok(a.authextra.clone()),
        }
    }

    /// The object id of the cookie's record.
    pub fn oid(&self) -> Uuid {
        self.oid
    }

    /// The owned [`Auth`], as [`CookieStore::get_auth`] returns it.
    pub fn to_auth(&self) -> Result<Auth> {
        match self.fields {
            Fields::Cached(a) => Ok(a.clone()),
            Fields::Record(f) => Ok(Auth {
                authid: f.authid.to_string(),
                authrole: f.authrole.map(str::to_string),
                authmethod: f.authmethod.map(str::to_string),
                authrealm: f.authrealm.map(str::to_string),
                authextra: self.authextra()?,
            }),
        }
    }
}

/// A live cookie as [`CookieStore::with_lookup`] sees it, borrowed for one call of its
/// closure.
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

impl CookieStore {
    /// Runs `f` on the authentication of the live cookie with `value`, borrowed: nothing is
    /// copied, authextra is not decoded unless `f` asks. `Ok(None)` (and `f` not called)
    /// when there is no such cookie, it expired, or it is not authenticated, as
    /// [`CookieStore::get_auth`].
    ///
    /// Answered from this process's cache when it can (as `get_auth`; a miss fills it).
    /// Otherwise (no cache: Redis, or `cache_bytes` 0) `f` runs inside the read
    /// transaction: keep it short, and do not call the store from it (that returns
    /// [`Error::NestedTransaction`]).
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
        Ok(self.with_lookup(value, |l| l.auth().map(f))?.flatten())
    }

    /// Runs `f` on the live cookie with `value` (expiry, lifetime, borrowed authentication):
    /// what [`CookieStore::lookup`] answers, without copying or decoding. `Ok(None)` (and
    /// `f` not called) when there is no live cookie with `value`. The same rules as
    /// [`CookieStore::with_auth`] hold for `f`.
    ///
    /// ```
    /// use cookiestore::{CookieStore, StoreOptions};
    /// # let dir = tempfile::tempdir().unwrap();
    /// let store = CookieStore::open(dir.path(), StoreOptions::default())?;
    /// let c = store.create("cbtid", 24, 3600)?;
    /// let max_age = store.with_lookup(&c.value, |l| (l.max_age(), l.auth().is_some()))?;
    /// assert_eq!(max_age, Some((3600, false)));
    /// # Ok::<(), cookiestore::Error>(())
    /// ```
    pub fn with_lookup<T>(
        &self,
        value: &str,
        f: impl FnOnce(LookupRef<'_>) -> T,
    ) -> Result<Option<T>> {
        let mut f = Some(f);
        let mut out = None;
        self.seam().with_live(value, &mut |live| {
            let lookup = match live {
                Live::Cached(l) => LookupRef {
                    oid: l.oid,
                    expires_at: l.expires_at,
                    max_age: l.max_age,
                    auth: l.auth.as_ref().map(|a| AuthRef {
                        oid: l.oid,
                        fields: Fields::Cached(a),
                    }),
                },
                Live::Record(oid, record) => {
                    let corrupt = |problem| Error::CorruptRecord { oid, problem };
                    LookupRef {
                        oid,
                        expires_at: record.expires_at().map_err(corrupt)?,
                        max_age: record.max_age().map_err(corrupt)?,
                        auth: record
                            .auth_fields()
                            .map_err(corrupt)?
                            .map(|fields| AuthRef {
                                oid,
                                fields: Fields::Record(fields),
                            }),
                    }
                }
            };
            if let Some(f) = f.take() {
                out = Some(f(lookup));
            }
            Ok(())
        })?;
        Ok(out)
    }
}
