//! What a router worker calls on every connection.
//!
//! [`Tracker::track`] takes the request's `Cookie` header and answers with the cookie value
//! in use, whether it is new, the `Set-Cookie` value to send, and the stored authentication.
//! [`Tracker::authenticate`] attaches auth after a login, [`Tracker::logout`] drops the cookie.
//! Expired cookies are absent: a browser that sends one gets a new cookie.

use crate::borrowed::AuthRef;
use crate::clock::ns_to_secs_ceil;
use crate::config::location::IntoLocation;
use crate::config::options::StoreOptions;
use crate::config::tracker::TrackerConfig;
use crate::error::Result;
use crate::http::header::cookie_values;
use crate::http::set_cookie::set_cookie_value;
use crate::record::cookie::{Auth, AuthContext, AuthUpdate};
use crate::store::CookieStore;

/// Cookie tracking over a [`CookieStore`], configured like Crossbar.io's `cookie` section.
///
/// ```
/// use cookiestore::{Auth, StoreOptions, Tracker, TrackerConfig};
/// # let dir = tempfile::tempdir().unwrap();
/// let tracker = Tracker::open(dir.path(), StoreOptions::default(), TrackerConfig::default())?;
///
/// // First connection: no cookie yet.
/// let first = tracker.track(None)?;
/// assert!(first.is_new);
/// assert!(first.set_cookie.starts_with("cbtid="));
/// assert_eq!(first.authid(), first.value); // unauthenticated: the value is the authid
///
/// // The client logs in; the router stores the auth on the cookie.
/// tracker.authenticate(&first.value, &Auth::new("alice", "user", "cookie", "realm1"), &Default::default())?;
///
/// // Next connection sends the cookie and is authenticated by it alone.
/// let header = format!("theme=dark; cbtid={}", first.value);
/// let again = tracker.track(Some(header.as_bytes()))?;
/// assert!(!again.is_new);
/// assert_eq!(again.auth.unwrap().authid, "alice");
///
/// tracker.logout(&first.value)?;
/// assert!(tracker.track(Some(header.as_bytes()))?.is_new);
/// # Ok::<(), cookiestore::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Tracker {
    store: CookieStore,
    config: TrackerConfig,
}

/// The answer to [`Tracker::track`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Tracked {
    /// The cookie value in use for this connection.
    pub value: String,
    /// Whether the cookie was created now (none, an unknown, or an expired one was sent).
    pub is_new: bool,
    /// The `Set-Cookie` header value to send: `name=value;max-age=N` plus the configured
    /// attributes. For a known cookie, `max-age` is its remaining lifetime, so the browser
    /// drops it when the store does.
    pub set_cookie: String,
    /// The stored authentication, when the cookie is authenticated.
    pub auth: Option<Auth>,
}

impl Tracked {
    /// The authid to use: the stored one, or (unauthenticated) the cookie value itself, as
    /// Crossbar.io does.
    pub fn authid(&self) -> &str {
        self.auth.as_ref().map_or(&self.value, |a| &a.authid)
    }
}

/// One connection's answer as [`Tracker::track_with`] lends it: [`Tracked`] without copies.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct TrackedRef<'a> {
    /// The cookie value in use for this connection.
    pub value: &'a str,
    /// Whether the cookie was created now (none, an unknown, or an expired one was sent).
    pub is_new: bool,
    /// The `Set-Cookie` header value to send, as in [`Tracked::set_cookie`].
    pub set_cookie: &'a str,
    /// The stored authentication, borrowed, when the cookie is authenticated.
    pub auth: Option<AuthRef<'a>>,
}

impl TrackedRef<'_> {
    /// The authid to use: the stored one, or (unauthenticated) the cookie value itself.
    pub fn authid(&self) -> &str {
        self.auth.as_ref().map_or(self.value, |a| a.authid())
    }
}

impl Tracker {
    /// A tracker over `store`; the config is validated.
    pub fn new(store: CookieStore, config: TrackerConfig) -> Result<Self> {
        config.validate()?;
        Ok(Tracker { store, config })
    }

    /// Opens the store at `location` (a directory or a Redis URL, as
    /// [`CookieStore::open`] takes it) and tracks over it.
    pub fn open(
        location: impl IntoLocation,
        options: StoreOptions,
        config: TrackerConfig,
    ) -> Result<Self> {
        config.validate()?;
        Self::new(CookieStore::open(location, options)?, config)
    }

    /// The store.
    pub fn store(&self) -> &CookieStore {
        &self.store
    }

    /// The configuration.
    pub fn config(&self) -> &TrackerConfig {
        &self.config
    }

    /// Tracks one connection from its `Cookie` request header (raw bytes, `None` when absent).
    ///
    /// Every cookie with the configured name is tried in header order; the first that is
    /// live in the store is used. Otherwise a new cookie is created. Malformed headers are
    /// never an error: they simply carry no usable cookie.
    pub fn track(&self, cookie_header: Option<&[u8]>) -> Result<Tracked> {
        if let Some(header) = cookie_header {
            for value in cookie_values(header, &self.config.name) {
                if let Some(found) = self.store.lookup(value)? {
                    let now = self.store.now_ns();
                    // At most its max_age, even with the clock before `created`.
                    let remaining =
                        ns_to_secs_ceil(found.expires_at.saturating_sub(now)).min(found.max_age);
                    return Ok(Tracked {
                        value: value.to_string(),
                        is_new: false,
                        set_cookie: self.set_cookie(value, remaining),
                        auth: found.auth,
                    });
                }
            }
        }
        let cookie =
            self.store
                .create(&self.config.name, self.config.length, self.config.max_age)?;
        Ok(Tracked {
            set_cookie: self.set_cookie(&cookie.value, self.config.max_age),
            value: cookie.value,
            is_new: true,
            auth: None,
        })
    }

    /// As [`Tracker::track`], but `f` gets the answer borrowed ([`TrackedRef`]; it is called
    /// once): the stored
    /// authentication is neither copied nor decoded unless `f` asks, as
    /// [`CookieStore::with_lookup`] lends it (from this process's cache when it holds the
    /// cookie, else from the record; the same rules hold for `f`). The cheaper call when a
    /// connection needs the authid and role, not an owned copy.
    ///
    /// ```
    /// use cookiestore::{Auth, StoreOptions, Tracker, TrackerConfig};
    /// # let dir = tempfile::tempdir().unwrap();
    /// let tracker = Tracker::open(dir.path(), StoreOptions::default(), TrackerConfig::default())?;
    /// let first = tracker.track(None)?;
    /// tracker.authenticate(&first.value, &Auth::new("alice", "user", "cookie", "realm1"), &Default::default())?;
    /// let header = format!("cbtid={}", first.value);
    /// let role = tracker.track_with(Some(header.as_bytes()), |t| t.auth.and_then(|a| a.authrole()) == Some("user"))?;
    /// assert!(role);
    /// # Ok::<(), cookiestore::Error>(())
    /// ```
    pub fn track_with<T>(
        &self,
        cookie_header: Option<&[u8]>,
        mut f: impl FnMut(TrackedRef<'_>) -> T,
    ) -> Result<T> {
        if let Some(header) = cookie_header {
            for value in cookie_values(header, &self.config.name) {
                let now = self.store.now_ns();
                let found = self.store.with_lookup(value, |l| {
                    // At most its max_age, even with the clock before `created`.
                    let remaining =
                        ns_to_secs_ceil(l.expires_at().saturating_sub(now)).min(l.max_age());
                    let set_cookie = self.set_cookie(value, remaining);
                    f(TrackedRef {
                        value,
                        is_new: false,
                        set_cookie: &set_cookie,
                        auth: l.auth(),
                    })
                })?;
                if let Some(out) = found {
                    return Ok(out);
                }
            }
        }
        let cookie =
            self.store
                .create(&self.config.name, self.config.length, self.config.max_age)?;
        let set_cookie = self.set_cookie(&cookie.value, self.config.max_age);
        Ok(f(TrackedRef {
            value: &cookie.value,
            is_new: true,
            set_cookie: &set_cookie,
            auth: None,
        }))
    }

    /// Stores `auth` (and where it happened) on the cookie after a successful login.
    pub fn authenticate(
        &self,
        value: &str,
        auth: &Auth,
        context: &AuthContext,
    ) -> Result<AuthUpdate> {
        self.store.set_auth(value, auth, context)
    }

    /// The authentication stored on the live cookie `value`.
    pub fn get_auth(&self, value: &str) -> Result<Option<Auth>> {
        self.store.get_auth(value)
    }

    /// Whether a live cookie has `value`.
    pub fn exists(&self, value: &str) -> Result<bool> {
        self.store.exists(value)
    }

    /// Logs out: deletes the cookie. Returns whether it existed.
    pub fn logout(&self, value: &str) -> Result<bool> {
        self.store.delete(value)
    }

    fn set_cookie(&self, value: &str, max_age: u64) -> String {
        set_cookie_value(&self.config.name, value, max_age, &self.config.attributes)
    }
}
