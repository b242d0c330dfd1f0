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
use crate::cache::entry::CachedLookup;
use crate::error::{Error, Result};
use crate::record::cbor::cbor_to_json_field;
use crate::record::cookie::Auth;
use crate::record::reader::AuthFields;
use crate::store::CookieStore;

/// The authentication of a live cookie, borrowed for the duration of one call of the
/// closure given to [`CookieStore::with_auth`] or [`CookieStore::with_lookup`].
///
/// Its strings point into this process's cache or into the record; authextra stays CBOR
/// (as stored) until [`AuthRef::authextra`] decodes it.
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

    /// authextra as JSON (`{}` when none), decoded from its CBOR.
    /// [`Error::CorruptRecord`] when its CBOR does not decode.
    pub fn authextra(&self) -> Result<Value> {
        cbor_to_json_field("authextra", self.fields.authextra).map_err(|problem| {
            Error::CorruptRecord {
                oid: self.oid,
                problem,
            }
        })
    }

    /// authextra's CBOR as stored (empty when none): what [`Self::authextra`] decodes, for a
    /// caller that builds its own objects from it (the Python binding). Every store the cache
    /// holds decoded once; from a record it is checked only when decoded.
    pub fn authextra_cbor(&self) -> &'t [u8] {
        self.fields.authextra
    }

    /// The object id of the cookie's record.
    pub fn oid(&self) -> Uuid {
        self.oid
    }

    /// The owned [`Auth`], as [`CookieStore::get_auth`] returns it.
    pub fn to_auth(&self) -> Result<Auth> {
        let f = self.fields;
        Ok(Auth {
            authid: f.authid.to_string(),
            authrole: f.authrole.map(str::to_string),
            authmethod: f.authmethod.map(str::to_string),
            authrealm: f.authrealm.map(str::to_string),
            authextra: self.authextra()?,
        })
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
    fn cached(l: &'t CachedLookup) -> LookupRef<'t> {
        LookupRef {
            oid: l.oid,
            expires_at: l.expires_at,
            max_age: l.max_age,
            auth: l.auth_fields().map(|fields| AuthRef { oid: l.oid, fields }),
        }
    }

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

    /// [`Self::with_lookup`] answered from this process's cache alone, as
    /// [`Self::lookup_cached`] answers: `Some(Some(f(lookup)))` when the cache is current and
    /// holds the live cookie, `Some(None)` (and `f` not called) when the cached cookie has
    /// expired, `None` when only a read can answer (call [`Self::with_lookup`]), and always
    /// on a store without a cache. Opens no transaction: for bindings that release their own
    /// lock (Python's GIL) only when the store must be read.
    ///
    /// ```
    /// use cookiestore::{CookieStore, StoreOptions};
    /// # let dir = tempfile::tempdir().unwrap();
    /// let store = CookieStore::open(dir.path(), StoreOptions::default())?;
    /// let c = store.create("cbtid", 24, 3600)?;
    /// assert_eq!(store.with_cached_lookup(&c.value, |l| l.max_age()), None); // not cached yet
    /// assert!(store.exists(&c.value)?); // a read, which caches it
    /// assert_eq!(store.with_cached_lookup(&c.value, |l| l.max_age()), Some(Some(3600)));
    /// # Ok::<(), cookiestore::Error>(())
    /// ```
    pub fn with_cached_lookup<T>(
        &self,
        value: &str,
        f: impl FnOnce(LookupRef<'_>) -> T,
    ) -> Option<Option<T>> {
        let entry = self.seam().cached_entry(value)?;
        Some(entry.map(|l| f(LookupRef::cached(&l))))
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
                Live::Cached(l) => LookupRef::cached(l),
                Live::Record(oid, record) => {
                    let corrupt = |problem| Error::CorruptRecord { oid, problem };
                    LookupRef {
                        oid,
                        expires_at: record.expires_at().map_err(corrupt)?,
                        max_age: record.max_age().map_err(corrupt)?,
                        auth: record
                            .auth_fields()
                            .map_err(corrupt)?
                            .map(|fields| AuthRef { oid, fields }),
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
