//! Where a store is: the one rule that tells a store directory from a URL, for the library,
//! the configuration, the `cookiestore` tool and the Python package.
//!
//! - Text that starts with `scheme://` (a letter, then letters, digits, `+`, `-` or `.`) is a
//!   URL, never a path: `redis://`, `rediss://`, `redis+unix://`, `unix://`,
//!   `redis+sentinel://` (a master found through Redis Sentinel:
//!   `redis+sentinel://[user:pass@]host1:port1,host2:port2/MASTERNAME[/db]`) and
//!   `rediss+sentinel://` (the same, the sentinels and the master reached over TLS) name a
//!   store on Redis ([`Location::Redis`]); any other scheme is [`Error::UnsupportedLocation`]. A
//!   directory whose name looks like a URL is written with a leading `./`.
//! - Anything else is a store directory ([`Location::Lmdb`]).
//!
//! A Redis URL's password is never shown: [`Display`](std::fmt::Display) and
//! [`Debug`](std::fmt::Debug) of a [`Location`], every error that names one, and
//! [`Location::mask`] replace it by `***` (the user name stays: it is not a secret). The
//! password goes in the URL's user info (`redis://:PASSWORD@host`,
//! `redis://user:PASSWORD@host`), percent-encoded where it holds `/`, `?`, `#` or `%` (as
//! in any URL), or, for a Unix socket, in `?pass=`.

use std::ffi::OsStr;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use crate::error::{Error, Result};

mod keys;
mod query;

pub(crate) use keys::{check_key_prefix, key_words};
use query::{SECRET_PARAMS, percent_decode};

/// The URL schemes of a store on Redis.
const REDIS_SCHEMES: [&str; 6] = [
    "redis",
    "rediss",
    "redis+unix",
    "unix",
    "redis+sentinel",
    SENTINEL_TLS_SCHEME,
];

/// The scheme of a master found through Redis Sentinel:
/// `redis+sentinel://[user:pass@]host1:port1,host2:port2/MASTERNAME[/db][?...]`.
const SENTINEL_SCHEME: &str = "redis+sentinel";

/// [`SENTINEL_SCHEME`] over TLS: the sentinels and the master are both reached over TLS,
/// with the TLS options of a `rediss://` URL (the master's URL is then `rediss://`).
const SENTINEL_TLS_SCHEME: &str = "rediss+sentinel";

/// The port of a sentinel written without one.
const SENTINEL_PORT: u16 = 26379;

/// Of those, the schemes of a Unix socket (the password goes in `?pass=`).
const UNIX_SCHEMES: [&str; 2] = ["redis+unix", "unix"];

/// Where a store is: a directory (LMDB) or a Redis URL.
///
/// [`Location::parse`] is the one rule that decides; [`CookieStore::open`](crate::CookieStore)
/// applies it to whatever it is given. Display and Debug mask a Redis password.
///
/// ```
/// use cookiestore::Location;
/// let lmdb = Location::parse("/var/crossbar/cookies")?;
/// assert_eq!(lmdb.kind(), "lmdb");
/// let redis = Location::parse("redis://:s3cret@10.0.0.5:6379/0?prefix=cb1:")?;
/// assert_eq!(redis.kind(), "redis");
/// assert_eq!(redis.to_string(), "redis://:***@10.0.0.5:6379/0?prefix=cb1:");
/// assert!(!format!("{redis:?}").contains("s3cret"));
/// let err = Location::parse("ftp://joe:s3cret@example.com/cookies").unwrap_err();
/// assert!(!err.to_string().contains("s3cret"));
/// # Ok::<(), cookiestore::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Location {
    /// A store directory (LMDB), as given (a relative path is relative to the current
    /// directory, or, in a node config, to the node directory).
    Lmdb(PathBuf),
    /// A store on a Redis server.
    Redis(RedisLocation),
}

impl Location {
    /// Tells what `location` names: a Redis store (`redis://`, `rediss://`,
    /// `redis+unix://`, `unix://`, `redis+sentinel://`, `rediss+sentinel://`), or a store
    /// directory. Any other `scheme://` is
    /// [`Error::UnsupportedLocation`]; a Redis URL that is malformed, or whose query options
    /// (`prefix`, `timeout_ms`, `allow_eviction`, `tls_ca_file`, `tls_cert_file`,
    /// `tls_key_file`, `password_file`, `password_env`, `sentinel_password_file`,
    /// `sentinel_password_env`, `sentinel_user`) are bad, is
    /// [`Error::InvalidConfig`].
    /// Nothing is opened or connected.
    pub fn parse(location: impl AsRef<Path>) -> Result<Location> {
        let os: &OsStr = location.as_ref().as_os_str();
        let bytes = os.as_encoded_bytes();
        let Some(scheme_len) = scheme_len(bytes) else {
            return Ok(Location::Lmdb(PathBuf::from(os)));
        };
        let Some(text) = os.to_str() else {
            return Err(Error::UnsupportedLocation {
                location: mask(&os.to_string_lossy()),
            });
        };
        let scheme = text[..scheme_len].to_ascii_lowercase();
        if !REDIS_SCHEMES.contains(&scheme.as_str()) {
            return Err(Error::UnsupportedLocation {
                location: mask(text),
            });
        }
        RedisLocation::parse(text, &scheme).map(Location::Redis)
    }

    /// `"lmdb"` or `"redis"`: the backend that serves the location (as
    /// [`CookieStore::backend`](crate::CookieStore::backend) says).
    pub fn kind(&self) -> &'static str {
        match self {
            Location::Lmdb(_) => "lmdb",
            Location::Redis(_) => "redis",
        }
    }

    /// The store directory; `None` for a store on Redis.
    pub fn as_path(&self) -> Option<&Path> {
        match self {
            Location::Lmdb(path) => Some(path),
            Location::Redis(_) => None,
        }
    }

    /// `text` with the password of a URL in it replaced by `***` (in the user info and in a
    /// `pass=` or `password=` query parameter), for messages about text that may not parse.
    /// Text that is not a URL comes back unchanged.
    ///
    /// ```
    /// use cookiestore::Location;
    /// assert_eq!(Location::mask("redis://joe:p/a?s#s@h:6379/0"), "redis://joe:***@h:6379/0");
    /// assert_eq!(Location::mask("unix:///run/r.sock?db=1&pass=x"), "unix:///run/r.sock?db=1&pass=***");
    /// assert_eq!(Location::mask("/var/crossbar/cookies"), "/var/crossbar/cookies");
    /// ```
    pub fn mask(text: &str) -> String {
        mask(text)
    }
}

impl fmt::Display for Location {
    /// The directory, or the URL with its password masked.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Lmdb(path) => write!(f, "{}", path.display()),
            Location::Redis(redis) => fmt::Display::fmt(redis, f),
        }
    }
}

impl FromStr for Location {
    type Err = Error;

    /// As [`Location::parse`].
    fn from_str(text: &str) -> Result<Location> {
        Location::parse(text)
    }
}

/// What [`CookieStore::open`](crate::CookieStore::open) and
/// [`Tracker::open`](crate::Tracker::open) accept as a store's location: a [`Location`], or
/// a path or string, which goes through [`Location::parse`].
pub trait IntoLocation {
    /// The location, or why it is not one.
    fn into_location(self) -> Result<Location>;
}

impl<T: AsRef<Path>> IntoLocation for T {
    fn into_location(self) -> Result<Location> {
        Location::parse(self)
    }
}

impl IntoLocation for Location {
    fn into_location(self) -> Result<Location> {
        Ok(self)
    }
}

impl IntoLocation for &Location {
    fn into_location(self) -> Result<Location> {
        Ok(self.clone())
    }
}

/// A store on Redis: its URL, whose password is kept private (Display and Debug mask it),
/// and the query options cookiestore reads from it (`prefix`, `timeout_ms`,
/// `allow_eviction`, and the TLS and password options of
/// [`RedisOptions`](crate::RedisOptions) of the same names; the others, such as `db`,
/// `pass`, `user`, `protocol`, are the `redis` crate's).
#[derive(Clone, PartialEq, Eq)]
pub struct RedisLocation {
    /// The URL given to the `redis` crate (cookiestore's query options removed).
    url: String,
    /// The URL as given, its password masked: what every message shows.
    masked: String,
    /// The password as written in the URL and percent-decoded, for taking it out of the
    /// texts of errors (see [`RedisLocation::sanitize`]).
    secrets: Vec<String>,
    prefix: Option<String>,
    timeout: Option<Duration>,
    allow_eviction: Option<bool>,
    /// `?tls_ca_file=` ... `?sentinel_user=` (the last eight of `query::OUR_PARAMS`), decoded.
    files: Vec<(String, String)>,
    /// The ACL user, once the client is made (`redis/client.rs`), for messages.
    user: Option<String>,
    /// `redis+sentinel://`: the sentinels and the master's name. `url` is then the master's
    /// URL with the first sentinel's address in place of the master's, which is asked of
    /// the sentinels at each new connection (`redis/pool.rs`). Boxed: a [`Location`] is
    /// mostly a directory, and is passed by value.
    sentinel: Option<Box<Sentinels>>,
}

/// The sentinels of a `redis+sentinel://` location, the name of the master they watch, and
/// the credentials they are asked with. Debug shows the password as `***`.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Sentinels {
    /// Each sentinel's host (an IPv6 address without its brackets) and port, in the URL's
    /// order: the one asked first.
    pub(crate) nodes: Vec<(String, u16)>,
    /// The master's name (`sentinel monitor NAME ...` in sentinel.conf).
    pub(crate) master: String,
    /// The ACL user the sentinels are asked as (`sentinel_user`; `None`: `default`), set
    /// with the password by `redis/client.rs`.
    pub(crate) user: Option<String>,
    /// The sentinels' password (`sentinel_password_file` or `sentinel_password_env`), once
    /// read by `redis/client.rs`; `None`: they are asked without one. Never shown: it is
    /// among the location's secrets too.
    pub(crate) password: Option<String>,
}

impl fmt::Debug for Sentinels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sentinels")
            .field("nodes", &self.nodes)
            .field("master", &self.master)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .finish()
    }
}

impl fmt::Display for RedisLocation {
    /// The URL with its password masked.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked)
    }
}

impl fmt::Debug for RedisLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisLocation")
            .field("url", &self.masked)
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .field("allow_eviction", &self.allow_eviction)
            .field("files", &self.files)
            .field("sentinel", &self.sentinel)
            .finish()
    }
}

impl RedisLocation {
    /// Parses a URL whose scheme (lowercased) is one of [`REDIS_SCHEMES`].
    fn parse(text: &str, scheme: &str) -> Result<RedisLocation> {
        let masked = mask(text);
        let bad = |problem: String| Error::config("url", format!("{masked}: {problem}"));
        if text.contains('#') {
            return Err(bad(
                "a Redis URL has no `#` part; a `#` in a password is written \
                            %23"
                .into(),
            ));
        }
        let rest = &text[scheme.len() + 3..];
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let last_at = rest.rfind('@');
        let unix = UNIX_SCHEMES.contains(&scheme);
        match last_at {
            Some(_) if unix && rest[..authority_end].contains('@') => {
                return Err(bad(
                    "a Unix socket's URL takes its password as `?pass=` (and user \
                                name as `?user=`), not before an `@`"
                        .into(),
                ));
            }
            Some(at) if !unix && at > authority_end => {
                return Err(bad(
                    "its user name or password holds a `/` or `?` (or its query \
                                an `@`): percent-encode them in a password (`/` as %2F, `?` \
                                as %3F, `@` as %40)"
                        .into(),
                ));
            }
            _ => {}
        }
        let mut secrets = Vec::new();
        if !unix
            && let Some(at) = last_at
            && let Some((_, password)) = rest[..at].split_once(':')
        {
            secrets.push(password.to_string());
        }
        let (base, query) = match text.split_once('?') {
            Some((base, query)) => (base, Some(query)),
            None => (text, None),
        };
        let query = query::parse(query, unix, &masked)?;
        secrets.extend(query.secrets);
        let decoded: Vec<String> = secrets
            .iter()
            .filter_map(|s| percent_decode(&s.replace('+', " ")))
            .chain(secrets.iter().filter_map(|s| percent_decode(s)))
            .collect();
        secrets.extend(decoded);
        secrets.retain(|s| !s.is_empty());
        secrets.sort();
        secrets.dedup();
        let (base, sentinel) = if scheme == SENTINEL_SCHEME || scheme == SENTINEL_TLS_SCHEME {
            let (base, sentinels) = sentinel_base(base, scheme).map_err(bad)?;
            (base, Some(Box::new(sentinels)))
        } else {
            (base.to_string(), None)
        };
        let url = if query.rest.is_empty() {
            base
        } else {
            format!("{base}?{}", query.rest.join("&"))
        };
        Ok(RedisLocation {
            url,
            masked,
            secrets,
            prefix: query.prefix,
            timeout: query.timeout,
            allow_eviction: query.allow_eviction,
            files: query.files,
            user: None,
            sentinel,
        })
    }

    /// The sentinels, for a `redis+sentinel://` or `rediss+sentinel://` location.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn sentinel(&self) -> Option<&Sentinels> {
        self.sentinel.as_deref()
    }

    /// The query option `name` (one of `tls_ca_file`, `tls_cert_file`, `tls_key_file`,
    /// `password_file`, `password_env`, `sentinel_password_file`, `sentinel_password_env`,
    /// `sentinel_user`), when given.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn file_option(&self, name: &str) -> Option<&str> {
        self.files
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The ACL user the client logs in as (`default` when the URL names none), once known.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// Records the sentinels' ACL user and password (`redis+sentinel://` only; nothing
    /// otherwise), and takes the password out of error texts (see [`Self::sanitize`]).
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn set_sentinel_credentials(&mut self, user: Option<&str>, password: Option<&str>) {
        if let Some(password) = password {
            self.add_secret(password);
        }
        if let Some(sentinels) = &mut self.sentinel {
            sentinels.user = user.map(str::to_string);
            sentinels.password = password.map(str::to_string);
        }
    }

    /// Records the ACL user (see [`Self::user`]).
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn set_user(&mut self, user: &str) {
        self.user = Some(user.to_string());
    }

    /// Takes `secret` (a password read from a file or the environment) out of error texts
    /// too (see [`Self::sanitize`]).
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn add_secret(&mut self, secret: &str) {
        if !self.secrets.iter().any(|s| s == secret) {
            self.secrets.push(secret.to_string());
        }
    }

    /// Takes the secrets of `earlier` (the location of a client made before this one's,
    /// whose passwords may have been replaced since) out of error texts too.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn keep_secrets_of(&mut self, earlier: &RedisLocation) {
        for secret in &earlier.secrets {
            self.add_secret(secret);
        }
    }

    /// The URL for the `redis` crate, password included: never to be shown.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn secret_url(&self) -> &str {
        &self.url
    }

    /// The URL with its password masked.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn masked(&self) -> &str {
        &self.masked
    }

    /// `?prefix=`, when given.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn prefix(&self) -> Option<&str> {
        self.prefix.as_deref()
    }

    /// `?timeout_ms=`, when given.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// `?allow_eviction=`, when given.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn allow_eviction(&self) -> Option<bool> {
        self.allow_eviction
    }

    /// `text` (a message from the `redis` crate or the system) with this location's URL and
    /// password taken out, should it echo them. A password shorter than 4 characters is
    /// left (it would garble any message, and is no secret worth the name).
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn sanitize(&self, text: &str) -> String {
        let mut out = text.replace(&self.url, &self.masked);
        for secret in &self.secrets {
            if secret.chars().count() >= 4 {
                out = out.replace(secret.as_str(), "***");
            }
        }
        out
    }
}

/// A `redis+sentinel://` (`scheme`: or `rediss+sentinel://`) URL without its query: the
/// `redis://` (`rediss://`) URL of the master, with the first sentinel's address in place of
/// the master's (the user info and database kept), and the sentinels. The problem, if it is
/// malformed.
fn sentinel_base(base: &str, scheme: &str) -> std::result::Result<(String, Sentinels), String> {
    let tls = scheme == SENTINEL_TLS_SCHEME;
    let form = format!("write {scheme}://[user:password@]host1:port1,host2:port2/MASTERNAME[/db]");
    let rest = &base[scheme.len() + 3..];
    let (user_info, rest) = match rest.rfind('@') {
        Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
        None => (None, rest),
    };
    let (hosts, path) = rest
        .split_once('/')
        .ok_or_else(|| format!("it names no master; {form}"))?;
    let mut nodes = Vec::new();
    for node in hosts.split(',') {
        let (host, port) = match node.rsplit_once(':') {
            Some((host, port))
                if !host.is_empty() && (!host.contains(':') || host.ends_with(']')) =>
            {
                let port = port
                    .parse::<u16>()
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| format!("the sentinel {node:?} has a bad port; {form}"))?;
                (host, port)
            }
            _ if !node.is_empty() && (!node.contains(':') || node.ends_with(']')) => {
                (node, SENTINEL_PORT)
            }
            _ => return Err(format!("the sentinel {node:?} is not host:port; {form}")),
        };
        let bare = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if bare.is_empty() {
            return Err(format!("a sentinel has no host; {form}"));
        }
        nodes.push((bare.to_string(), port));
    }
    let mut parts = path.split('/');
    let master = parts.next().unwrap_or_default();
    if master.is_empty()
        || !master
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
    {
        return Err(format!(
            "the master's name {master:?} is empty or holds other than letters, digits, `_`, \
             `-` and `.`; {form}"
        ));
    }
    let db = match (parts.next(), parts.next()) {
        (None, _) | (Some(""), None) => "0",
        (Some(db), None) if !db.is_empty() && db.bytes().all(|b| b.is_ascii_digit()) => db,
        _ => {
            return Err(format!(
                "the path after the master's name is not a database number; {form}"
            ));
        }
    };
    let (first_host, first_port) = &nodes[0];
    let host = if first_host.contains(':') {
        format!("[{first_host}]")
    } else {
        first_host.clone()
    };
    let user_info = user_info.map(|u| format!("{u}@")).unwrap_or_default();
    let master_scheme = if tls { "rediss" } else { "redis" };
    let url = format!("{master_scheme}://{user_info}{host}:{first_port}/{db}");
    Ok((
        url,
        Sentinels {
            nodes,
            master: master.to_string(),
            user: None,
            password: None,
        },
    ))
}

/// The length of the scheme when `bytes` start with `scheme://`.
fn scheme_len(bytes: &[u8]) -> Option<usize> {
    let end = bytes.windows(3).position(|w| w == b"://")?;
    let scheme = &bytes[..end];
    let ok = scheme.first().is_some_and(u8::is_ascii_alphabetic)
        && scheme
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    ok.then_some(end)
}

/// `text` with a URL's password replaced by `***`: in the user info (everything up to the
/// last `@`, so a password holding `/`, `?`, `#` or `@` is masked whole), and in each
/// `pass=` / `password=` query parameter (up to the next `&`).
fn mask(text: &str) -> String {
    let Some(scheme_len) = scheme_len(text.as_bytes()) else {
        return text.to_string();
    };
    let (scheme, rest) = text.split_at(scheme_len + 3);
    let rest = match rest.rfind('@') {
        Some(at) => match rest[..at].split_once(':') {
            Some((user, _)) => format!("{user}:***@{}", &rest[at + 1..]),
            None => rest.to_string(),
        },
        None => rest.to_string(),
    };
    let mut out = format!("{scheme}{rest}");
    for name in SECRET_PARAMS {
        for separator in ['?', '&'] {
            let needle = format!("{separator}{name}=");
            let mut from = 0;
            while let Some(i) = out[from..].find(&needle) {
                let start = from + i + needle.len();
                let end = out[start..].find('&').map_or(out.len(), |j| start + j);
                out.replace_range(start..end, "***");
                from = start + 3;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;
