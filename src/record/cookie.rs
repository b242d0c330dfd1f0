//! The cookie record and its rules, whatever stores it: [`Cookie`] (every field of cfxdb's
//! `Cookie` table), the authentication it carries ([`Auth`], [`AuthContext`]), what a lookup
//! answers ([`Lookup`]), when it expires, what an authentication change does to it, and how a
//! new cookie is drawn.
//!
//! Timestamps are nanoseconds since the Unix epoch (0 = not set) and `max_age` is in seconds
//! (`crate::clock` converts). The two CBOR fields are exposed as [`serde_json::Value`]
//! (`cbor.rs`); the bytes on disk are `codec.rs`'s.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::record::cbor::{check_depth, empty_map, is_empty_map};
use crate::record::value::{self, CookieValue, DRAW_ATTEMPTS};

/// Largest encoded record accepted for writing (1 MiB): a bound for huge `authextra`.
pub const MAX_RECORD_SIZE: usize = 1024 * 1024;

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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
        value::check(&self.value).map_err(|problem| Error::InvalidValue {
            problem: problem.to_string(),
        })
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
}

/// A live cookie as a lookup sees it: what a router needs on each connection.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Lookup {
    /// Its object id.
    pub oid: Uuid,
    /// When it expires (ns).
    pub expires_at: u64,
    /// Its lifetime (s): what is left of it never exceeds this.
    pub max_age: u64,
    /// Its authentication, if it has an authid.
    pub auth: Option<Auth>,
}

/// What [`CookieStore::set_auth`](crate::CookieStore::set_auth) or
/// [`CookieStore::clear_auth`](crate::CookieStore::clear_auth) did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthUpdate {
    /// The authentication was stored (or cleared).
    Written,
    /// The cookie already carried exactly this authentication (or, for `clear_auth`, none):
    /// nothing was written.
    Unchanged,
    /// No live cookie has this value (never existed, logged out, or expired).
    NoSuchCookie,
}

/// A change of a cookie's authentication: set (after a login) or cleared (Crossbar.io's
/// `setAuth(cbtid, None, ...)`).
#[derive(Debug, Clone, Copy)]
pub(crate) enum AuthChange<'a> {
    /// Store this authentication, with where it happened.
    Set(&'a Auth, &'a AuthContext),
    /// Make the cookie anonymous.
    Clear,
}

/// What an [`AuthChange`] does to the stored record.
#[derive(Debug)]
pub(crate) enum AuthOutcome {
    /// Nothing to do: [`AuthUpdate::NoSuchCookie`] or [`AuthUpdate::Unchanged`].
    Done(AuthUpdate),
    /// Write `cookie` in place of the record, whose authid was `old_authid` (same oid,
    /// value and expiry: only the record and the authid index change).
    Write {
        /// The record to store (boxed: a record is large, and `Done` is the common outcome).
        cookie: Box<Cookie>,
        /// The authid the record carried.
        old_authid: Option<String>,
    },
}

impl AuthChange<'_> {
    /// Refuses a change that cannot be stored, before anything is read: an empty authid (it
    /// would read back as "not authenticated", so a login would be reported written while
    /// the cookie stays anonymous), or JSON values nested deeper than
    /// [`MAX_CBOR_DEPTH`](crate::record::cbor::MAX_CBOR_DEPTH).
    pub(crate) fn check(&self) -> Result<()> {
        let AuthChange::Set(auth, context) = self else {
            return Ok(());
        };
        if auth.authid.is_empty() {
            return Err(Error::InvalidAuth {
                problem: "the authid is empty; an authenticated cookie needs a non-empty \
                          authid (to make a cookie anonymous again, log it out or clear its \
                          authentication)"
                    .into(),
            });
        }
        check_depth("authextra", &auth.authextra)?;
        check_depth("authenticated_transport_info", &context.transport_info)
    }

    /// The change applied to `record`, the record stored under the value (`None`: none) at
    /// `now`, the same on every backend. An expired record is no cookie. A `Set` that finds
    /// exactly this authentication, or a `Clear` that finds none, writes nothing. A `Set`
    /// stamps `authenticated` and the `authenticated_*` fields; a `Clear` clears the five
    /// fields `getAuth` answers and keeps the `authenticated_*` ones (where and when it was
    /// last authenticated, as Crossbar.io's stores keep them).
    pub(crate) fn apply(&self, record: Option<Cookie>, now: u64) -> AuthOutcome {
        let Some(mut cookie) = record.filter(|c| !c.is_expired(now)) else {
            return AuthOutcome::Done(AuthUpdate::NoSuchCookie);
        };
        let old_authid = cookie.authid.clone();
        match self {
            AuthChange::Set(auth, context) => {
                if cookie.authid.as_deref() == Some(auth.authid.as_str())
                    && cookie.authrole == auth.authrole
                    && cookie.authmethod == auth.authmethod
                    && cookie.authrealm == auth.authrealm
                    && cookie.authextra == auth.authextra
                {
                    return AuthOutcome::Done(AuthUpdate::Unchanged);
                }
                cookie.authid = Some(auth.authid.clone());
                cookie.authrole = auth.authrole.clone();
                cookie.authmethod = auth.authmethod.clone();
                cookie.authrealm = auth.authrealm.clone();
                cookie.authextra = auth.authextra.clone();
                cookie.authenticated = now;
                cookie.authenticated_on_node = context.node;
                cookie.authenticated_on_worker = context.worker.clone();
                cookie.authenticated_transport_info = context.transport_info.clone();
                cookie.authenticated_session = context.session;
                cookie.authenticated_joined_at = context.joined_at;
                cookie.authenticated_authmethod = context.authmethod.clone();
            }
            AuthChange::Clear => {
                if cookie.authid.is_none() {
                    return AuthOutcome::Done(AuthUpdate::Unchanged);
                }
                cookie.authid = None;
                cookie.authrole = None;
                cookie.authmethod = None;
                cookie.authrealm = None;
                cookie.authextra = empty_map();
            }
        }
        AuthOutcome::Write {
            cookie: Box::new(cookie),
            old_authid,
        }
    }
}

/// Creates a cookie named `name` with a fresh random value of `length` characters, created at
/// `now`, living `max_age` seconds: the draw loop of every backend. `insert` stores a new
/// cookie unless its value (or oid) is taken, and says whether it did; a taken one is never
/// trusted or overwritten: a new value and oid are drawn, up to [`DRAW_ATTEMPTS`] times.
pub(crate) fn create_with(
    name: &str,
    length: usize,
    max_age: u64,
    now: u64,
    mut insert: impl FnMut(&Cookie) -> Result<bool>,
) -> Result<Cookie> {
    value::check_length(length)?;
    for _ in 0..DRAW_ATTEMPTS {
        let cookie = Cookie {
            oid: Uuid::new_v4(),
            created: now,
            max_age,
            name: Some(name.to_string()),
            value: CookieValue::random(length)?.into_string(),
            ..Cookie::default()
        };
        if insert(&cookie)? {
            return Ok(cookie);
        }
    }
    Err(Error::ValueSpaceExhausted {
        attempts: DRAW_ATTEMPTS,
    })
}
