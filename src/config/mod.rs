//! Configuration of the store ([`StoreOptions`]) and of the tracker ([`TrackerConfig`]), and
//! Crossbar.io's `cookie` section that holds both ([`CookieSection`]).
//!
//! A transport's `cookie` section from a Crossbar.io node config parses as it is: `name`,
//! `length`, `max_age`, Crossbar's attribute keys `secure`, `http_strict` (→ `HttpOnly`) and
//! `same_site`, and a `store` of type `database` (Crossbar's LMDB store, the same format) or
//! `cookiestore`, at a directory (`path`) or on Redis (`url`: `redis://...`). Every value is
//! checked, and a bad or misspelt one is reported by name.

pub(crate) mod location;

use std::path::Path;
use std::sync::{Arc, LazyLock};

use serde::Deserialize;
use serde_json::Value;

use crate::clock::{Clock, SystemClock};
use crate::config::location::{Location, check_key_prefix};
use crate::error::{Error, Result};
use crate::http::header::{CookieAttributes, SameSite, validate_attributes};
use crate::lmdb::durability::Durability;

/// Smallest allowed `maxsize`: 128 KiB.
pub const MIN_MAXSIZE: u64 = 128 * 1024;
/// Largest allowed `maxsize`: 128 GiB.
pub const MAX_MAXSIZE: u64 = 128 * 1024 * 1024 * 1024;
/// Default `maxsize`: 1 GiB, as Crossbar.io's database store.
pub const DEFAULT_MAXSIZE: u64 = 1024 * 1024 * 1024;
/// Default revocation retention: 10 minutes.
pub const DEFAULT_REVOCATION_RETENTION_SECS: u64 = 600;
/// Default timeout of a Redis store's connects, reads and writes: 2 s.
pub const DEFAULT_TIMEOUT_MS: u64 = 2_000;
/// Default cap of a Redis store's revocation stream (entries, approximately).
pub const DEFAULT_REVOCATION_STREAM_MAX: u64 = 100_000;
/// Default budget of the per-process cache: 10 MiB.
pub const DEFAULT_CACHE_BYTES: u64 = 10 * 1024 * 1024;
/// Default size the map starts at (it doubles on demand up to `maxsize`): 64 MiB.
pub const DEFAULT_INITIAL_MAPSIZE: u64 = 64 * 1024 * 1024;

/// How to open a [`CookieStore`](crate::CookieStore): Crossbar.io's database store options,
/// set with builder methods.
///
/// ```
/// use cookiestore::StoreOptions;
/// let options = StoreOptions::default().readonly(true).maxsize(64 << 20);
/// assert!(options.validate().is_ok());
/// assert!(StoreOptions::default().maxsize(1).validate().is_err());
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct StoreOptions {
    /// Largest size the memory map (and so the database) may grow to, in bytes:
    /// 128 KiB to 128 GiB, default 1 GiB.
    pub maxsize: u64,
    /// Size the map starts at when the database is smaller; it doubles on demand up to
    /// `maxsize`. Default 64 MiB (or `maxsize`, when smaller).
    pub initial_mapsize: u64,
    /// Open for reading only: every write returns [`Error::ReadOnly`]. Default false.
    pub readonly: bool,
    /// Flush to disk at every commit (crash-safe). With false a system crash may lose the
    /// last commits, never consistency. Default true. With true, [`durability`](Self::durability)
    /// says which commits are flushed and how; with false, none is ([`Durability::None`]).
    pub sync: bool,
    /// Which commits are flushed to disk when [`sync`](Self::sync) is on: by default
    /// ([`Durability::SafeLazyCreates`]) every commit but a new cookie's meta page, so that
    /// logouts, deletions and auth changes survive a power cut the moment they return.
    pub durability: Durability,
    /// Purge expired cookies when the store is opened. Default false. (Crossbar's database
    /// store wipes every cookie here; that is [`CookieStore::clear`](crate::CookieStore::clear).)
    pub purge_on_startup: bool,
    /// Permission bits for the store's files when they are created. Default `0o600`.
    pub file_mode: u32,
    /// How long a revocation (logout) stays in the revocation feed, in seconds, before
    /// [`CookieStore::purge_expired`](crate::CookieStore::purge_expired) trims it. A
    /// subscriber that falls further behind learns that it missed entries. Default 600.
    pub revocation_retention_secs: u64,
    /// Redis stores: the prefix of every key, so that several deployments share one Redis
    /// (`cb1:` gives `cb1:cookie:...`). A URL's `?prefix=` takes precedence. Default `""`.
    /// A non-empty prefix is a word of letters, digits, `_`, `-` and `.` followed by one
    /// `:`, and not one of the words cookiestore's keys start with (`cookie:`, `authid:`,
    /// `imported:`, `revocations:`, `feature_level:`), so that no two deployments in one
    /// Redis database ever see each other's keys (see the README's "Layout on Redis").
    pub key_prefix: String,
    /// Redis stores: how long a call may wait for Redis, in ms, in total (connecting, a
    /// retry on a dead pooled connection and every round trip of the call; a walk over every
    /// key, as `count` or an export, has it per batch of 1,000 keys); the call fails with
    /// [`Error::Unavailable`] after it. A URL's `?timeout_ms=` takes precedence. Default
    /// 2000.
    pub timeout_ms: u64,
    /// Redis stores: the revocation stream is capped at about this many entries (besides
    /// the time-based trimming of `revocation_retention_secs`). Default 100,000.
    pub revocation_stream_max: u64,
    /// Redis stores: open even though the Redis may evict keys (a `maxmemory-policy` other
    /// than `noeviction`, or one that cannot be read). Default false: such a Redis is
    /// refused at open (a read-only handle is not checked). A URL's `?allow_eviction=true`
    /// sets it too.
    ///
    /// What it costs: Redis may then drop any of the store's keys when it runs out of
    /// memory. An evicted cookie is a user who must log in again; an evicted revocation
    /// feed makes every watcher report [`WatchEvent::Missed`](crate::WatchEvent) and
    /// re-check its connections; an evicted authid index is not trusted:
    /// [`logout_authid`](crate::CookieStore::logout_authid) then walks every cookie (`SCAN`,
    /// two round trips per 1,000 cookies) instead of reading the user's set, so that it
    /// still finds every cookie of the user.
    pub allow_eviction: bool,
    /// Redis stores: open without waiting for Redis. Default false: the open connects (one
    /// `PING`) and runs the open-time checks (a Redis that may evict keys, a newer store),
    /// so that an unreachable or unsuitable Redis fails the open, as a command-line tool
    /// wants. With true the open makes no round trip and succeeds while Redis is down, as a
    /// router starting before its Redis wants: a background thread connects at once, the
    /// checks run before the first call that reaches Redis, and their refusal
    /// ([`Error::RedisSetting`], [`Error::NewerStore`]) is that call's error (and every
    /// call's for 2 s, then they run again); [`CookieStore::health`](crate::CookieStore::health)
    /// reports it. `purge_on_startup` is then done by that thread, and skipped when Redis
    /// cannot be reached.
    pub connect_lazily: bool,
    /// LMDB stores: the byte budget of this process's cache of live cookies' lookups, which
    /// answers [`CookieStore::lookup`](crate::CookieStore::lookup),
    /// [`get_auth`](crate::CookieStore::get_auth) and
    /// [`exists`](crate::CookieStore::exists) without a transaction while nothing was
    /// committed, and is never stale (see [`CacheStats`](crate::CacheStats)). 0 turns it
    /// off. Default 10 MiB. One cache serves every handle of a path in a process; the first
    /// open sizes it.
    pub cache_bytes: u64,
    /// Where "now" comes from when deciding expiry. Default: the system clock.
    #[serde(skip)]
    pub clock: Arc<dyn Clock>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            maxsize: DEFAULT_MAXSIZE,
            initial_mapsize: DEFAULT_INITIAL_MAPSIZE,
            readonly: false,
            sync: true,
            durability: Durability::default(),
            purge_on_startup: false,
            file_mode: 0o600,
            revocation_retention_secs: DEFAULT_REVOCATION_RETENTION_SECS,
            key_prefix: String::new(),
            timeout_ms: DEFAULT_TIMEOUT_MS,
            revocation_stream_max: DEFAULT_REVOCATION_STREAM_MAX,
            allow_eviction: false,
            connect_lazily: false,
            cache_bytes: DEFAULT_CACHE_BYTES,
            clock: Arc::new(SystemClock),
        }
    }
}

impl StoreOptions {
    /// Sets [`maxsize`](Self::maxsize): 128 KiB to 128 GiB.
    pub fn maxsize(mut self, bytes: u64) -> Self {
        self.maxsize = bytes;
        self
    }

    /// Sets [`initial_mapsize`](Self::initial_mapsize).
    pub fn initial_mapsize(mut self, bytes: u64) -> Self {
        self.initial_mapsize = bytes;
        self
    }

    /// Sets [`readonly`](Self::readonly).
    pub fn readonly(mut self, readonly: bool) -> Self {
        self.readonly = readonly;
        self
    }

    /// Sets [`sync`](Self::sync).
    pub fn sync(mut self, sync: bool) -> Self {
        self.sync = sync;
        self
    }

    /// Sets [`cache_bytes`](Self::cache_bytes) (0: no cache).
    pub fn cache_bytes(mut self, bytes: u64) -> Self {
        self.cache_bytes = bytes;
        self
    }

    /// Sets [`durability`](Self::durability).
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// The policy in effect: [`durability`](Self::durability), or [`Durability::None`] when
    /// [`sync`](Self::sync) is off.
    pub fn effective_durability(&self) -> Durability {
        if self.sync {
            self.durability
        } else {
            Durability::None
        }
    }

    /// Sets [`purge_on_startup`](Self::purge_on_startup).
    pub fn purge_on_startup(mut self, purge: bool) -> Self {
        self.purge_on_startup = purge;
        self
    }

    /// Sets [`file_mode`](Self::file_mode).
    pub fn file_mode(mut self, mode: u32) -> Self {
        self.file_mode = mode;
        self
    }

    /// Sets [`revocation_retention_secs`](Self::revocation_retention_secs).
    pub fn revocation_retention_secs(mut self, seconds: u64) -> Self {
        self.revocation_retention_secs = seconds;
        self
    }

    /// Sets [`key_prefix`](Self::key_prefix).
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = prefix.into();
        self
    }

    /// Sets [`timeout_ms`](Self::timeout_ms).
    pub fn timeout_ms(mut self, ms: u64) -> Self {
        self.timeout_ms = ms;
        self
    }

    /// Sets [`revocation_stream_max`](Self::revocation_stream_max).
    pub fn revocation_stream_max(mut self, entries: u64) -> Self {
        self.revocation_stream_max = entries;
        self
    }

    /// Sets [`allow_eviction`](Self::allow_eviction) (read what it costs there).
    pub fn allow_eviction(mut self, allow: bool) -> Self {
        self.allow_eviction = allow;
        self
    }

    /// Sets [`connect_lazily`](Self::connect_lazily).
    pub fn connect_lazily(mut self, lazily: bool) -> Self {
        self.connect_lazily = lazily;
        self
    }

    /// Sets [`clock`](Self::clock).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Checks every field; the error names the field and its allowed range.
    pub fn validate(&self) -> Result<()> {
        if !(MIN_MAXSIZE..=MAX_MAXSIZE).contains(&self.maxsize) {
            return Err(Error::config(
                "maxsize",
                format!(
                    "is {} bytes; it must be between 131072 (128 KiB) and 137438953472 (128 GiB)",
                    self.maxsize
                ),
            ));
        }
        if self.initial_mapsize == 0 {
            return Err(Error::config(
                "initial_mapsize",
                "is 0; it must be at least 1 byte (it is rounded up to whole pages)",
            ));
        }
        if self.timeout_ms == 0 {
            return Err(Error::config(
                "timeout_ms",
                "is 0; give the Redis timeout in milliseconds, at least 1 (default 2000)",
            ));
        }
        if self.revocation_stream_max == 0 {
            return Err(Error::config(
                "revocation_stream_max",
                "is 0; it must be at least 1 (default 100000)",
            ));
        }
        check_key_prefix(&self.key_prefix)
            .map_err(|problem| Error::config("key_prefix", problem))?;
        if self.file_mode & !0o777 != 0 || self.file_mode & 0o600 != 0o600 {
            return Err(Error::config(
                "file_mode",
                format!(
                    "is {:o}; it must be permission bits within 0o777 that include owner \
                     read and write (0o600)",
                    self.file_mode
                ),
            ));
        }
        Ok(())
    }
}

/// Default cookie name.
pub const DEFAULT_NAME: &str = "cbtid";
/// Default cookie value length in characters (144 bits of randomness).
pub const DEFAULT_LENGTH: usize = 24;
/// Default max_age: one day, as Crossbar.io's documentation says.
pub const DEFAULT_MAX_AGE: u64 = 86_400;
/// Longest allowed max_age: ten years (of 365 days).
pub const MAX_MAX_AGE: u64 = 10 * 365 * 86_400;

/// What a router worker tracks: Crossbar.io's `cookie` configuration without its `store`.
///
/// It deserializes from the keys Crossbar.io reads (`name`, `length`, `max_age`, `secure`,
/// `http_strict`, `same_site`) and from an `attributes` object of ours (`http_only`, `secure`,
/// `same_site`, `path`, `domain`); a key given both ways is an error.
///
/// ```
/// use cookiestore::TrackerConfig;
/// let config: TrackerConfig = serde_json::from_str(
///     r#"{"name": "cbtid", "length": 24, "max_age": 604800, "http_strict": true}"#,
/// ).unwrap();
/// config.validate().unwrap();
/// assert_eq!(config.max_age, 604_800);
/// assert!(config.attributes.http_only);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RawTracker")]
#[non_exhaustive]
pub struct TrackerConfig {
    /// Cookie name: matches `^[a-z][a-z0-9_]+$`. Default `cbtid`.
    pub name: String,
    /// Length of generated values in characters, 6 to 64. Default 24.
    pub length: usize,
    /// Cookie lifetime in seconds, 1 to 315360000 (10 years). Default 86400 (1 day).
    pub max_age: u64,
    /// Opt-in attributes for the `Set-Cookie` header (HttpOnly, Secure, SameSite, Path,
    /// Domain). Default none, as Crossbar.io sends.
    pub attributes: CookieAttributes,
}

/// The JSON form of [`TrackerConfig`], before Crossbar's attribute keys are folded in.
#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawTracker {
    name: String,
    length: usize,
    max_age: u64,
    secure: Option<bool>,
    http_strict: Option<bool>,
    same_site: Option<SameSite>,
    attributes: Option<Value>,
}

impl Default for RawTracker {
    fn default() -> Self {
        let d = TrackerConfig::default();
        RawTracker {
            name: d.name,
            length: d.length,
            max_age: d.max_age,
            secure: None,
            http_strict: None,
            same_site: None,
            attributes: None,
        }
    }
}

impl TryFrom<RawTracker> for TrackerConfig {
    type Error = String;

    fn try_from(raw: RawTracker) -> std::result::Result<Self, String> {
        let given = raw.attributes_given();
        let mut attributes = match &raw.attributes {
            None => CookieAttributes::default(),
            Some(v) => CookieAttributes::deserialize(v).map_err(|e| format!("attributes: {e}"))?,
        };
        for (flat, ours, set) in [
            ("secure", "secure", raw.secure.is_some()),
            ("http_strict", "http_only", raw.http_strict.is_some()),
            ("same_site", "same_site", raw.same_site.is_some()),
        ] {
            if set && given.contains(&ours) {
                return Err(format!(
                    "`{flat}` and `attributes.{ours}` are both given; keep one of them"
                ));
            }
        }
        if let Some(secure) = raw.secure {
            attributes.secure = secure;
        }
        if let Some(http_strict) = raw.http_strict {
            attributes.http_only = http_strict;
        }
        if raw.same_site.is_some() {
            attributes.same_site = raw.same_site;
        }
        Ok(TrackerConfig {
            name: raw.name,
            length: raw.length,
            max_age: raw.max_age,
            attributes,
        })
    }
}

impl RawTracker {
    fn attributes_given(&self) -> Vec<&'static str> {
        let Some(Value::Object(map)) = &self.attributes else {
            return Vec::new();
        };
        ["secure", "http_only", "same_site"]
            .into_iter()
            .filter(|k| map.contains_key(*k))
            .collect()
    }
}

impl Default for TrackerConfig {
    fn default() -> Self {
        TrackerConfig {
            name: DEFAULT_NAME.to_string(),
            length: DEFAULT_LENGTH,
            max_age: DEFAULT_MAX_AGE,
            attributes: CookieAttributes::default(),
        }
    }
}

impl TrackerConfig {
    /// Sets [`name`](Self::name).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Sets [`length`](Self::length).
    pub fn length(mut self, length: usize) -> Self {
        self.length = length;
        self
    }

    /// Sets [`max_age`](Self::max_age) (seconds).
    pub fn max_age(mut self, seconds: u64) -> Self {
        self.max_age = seconds;
        self
    }

    /// Sets [`attributes`](Self::attributes).
    pub fn attributes(mut self, attributes: CookieAttributes) -> Self {
        self.attributes = attributes;
        self
    }

    /// Checks every field; the error names the field and its allowed range.
    pub fn validate(&self) -> Result<()> {
        let bytes = self.name.as_bytes();
        let name_ok = bytes.len() >= 2
            && bytes[0].is_ascii_lowercase()
            && bytes[1..]
                .iter()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_');
        if !name_ok {
            return Err(Error::config(
                "name",
                format!(
                    "is {:?}; it must match ^[a-z][a-z0-9_]+$ (for example \"cbtid\")",
                    self.name
                ),
            ));
        }
        if !(6..=64).contains(&self.length) {
            return Err(Error::config(
                "length",
                format!("is {}; it must be between 6 and 64", self.length),
            ));
        }
        if !(1..=MAX_MAX_AGE).contains(&self.max_age) {
            return Err(Error::config(
                "max_age",
                format!(
                    "is {} seconds; it must be between 1 second and 315360000 (10 years)",
                    self.max_age
                ),
            ));
        }
        validate_attributes(&self.attributes)
            .map_err(|problem| Error::config("attributes", problem))
    }
}

/// A transport's `cookie` section from a Crossbar.io node config: the tracker and its store.
///
/// ```
/// use cookiestore::CookieSection;
/// let section = CookieSection::from_json(r#"{
///     "name": "cbtid", "length": 24, "max_age": 604800, "secure": true,
///     "store": {"type": "database", "path": "cookies", "maxsize": 10485760}
/// }"#)?;
/// assert!(section.tracker.attributes.secure);
/// let store = section.store.unwrap();
/// assert_eq!(store.options.maxsize, 10_485_760);
/// assert_eq!(store.location_in("/srv/node/.crossbar").to_string(), "/srv/node/.crossbar/cookies");
/// # Ok::<(), cookiestore::Error>(())
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CookieSection {
    /// Name, length, max_age and `Set-Cookie` attributes.
    pub tracker: TrackerConfig,
    /// The store, when the section has one (Crossbar's default without one is its memory
    /// store, which is not served here).
    pub store: Option<StoreSection>,
}

/// A cookie section's `store`: where the store is and how to open it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct StoreSection {
    /// The `type` given: `database` (Crossbar.io's LMDB store, which cookiestore reads and
    /// writes in the same format) or `cookiestore`.
    pub kind: String,
    /// Where the store is: its directory as given in `path` (a relative path is relative to
    /// the node directory: see [`Self::location_in`]), or the Redis URL given in `url`
    /// (`redis://...`, `redis+unix://...`). Both go through [`Location::parse`]: a Redis URL
    /// given as `path` names the Redis store too, and a `url` that is not a Redis URL is an
    /// error.
    pub location: Location,
    /// `maxsize`, `readonly`, `sync`, `purge_on_startup`, and ours: `initial_mapsize`,
    /// `file_mode`. Crossbar's database store wipes every cookie on `purge_on_startup`;
    /// cookiestore purges the expired ones.
    pub options: StoreOptions,
}

/// Store types served: Crossbar.io's LMDB store (same format) and ours.
const STORE_TYPES: [&str; 2] = ["database", "cookiestore"];

impl CookieSection {
    /// Parses a `cookie` section (a JSON object), checking every value.
    pub fn from_json(json: &str) -> Result<CookieSection> {
        let value: Value =
            serde_json::from_str(json).map_err(|e| Error::config("cookie", e.to_string()))?;
        Self::from_value(&value)
    }

    /// Parses a `cookie` section given as a JSON value, checking every value.
    pub fn from_value(value: &Value) -> Result<CookieSection> {
        let Value::Object(map) = value else {
            return Err(Error::config(
                "cookie",
                format!("is {value}; it must be a JSON object such as {{\"name\": \"cbtid\"}}"),
            ));
        };
        let mut rest = map.clone();
        let store = rest
            .remove("store")
            .map(|s| StoreSection::from_value(&s))
            .transpose()?;
        let tracker = TrackerConfig::deserialize(Value::Object(rest))
            .map_err(|e| Error::config("cookie", e.to_string()))?;
        tracker.validate()?;
        Ok(CookieSection { tracker, store })
    }
}

impl CookieSection {
    /// Every key a `cookie` section accepts (Crossbar's `name`, `length`, `max_age`,
    /// `secure`, `http_strict`, `same_site`; ours, `attributes`; and `store`): the fields
    /// [`Self::from_value`] parses, read from its parser, so that tools (the Python launcher)
    /// need no list of their own. The store's keys are [`StoreSection::keys`].
    pub fn keys() -> &'static [&'static str] {
        static KEYS: LazyLock<Vec<&'static str>> = LazyLock::new(|| {
            let mut keys = field_names::<TrackerConfig>().to_vec();
            keys.push("store");
            keys
        });
        &KEYS
    }
}

impl StoreSection {
    /// Every key a `store` object accepts: `type`, `path`, `url` and the
    /// [`StoreOptions`] fields (`maxsize`, ..., `cache_bytes`), read from the parser
    /// [`Self::from_value`] uses, so this list and the parser cannot disagree. Any other key
    /// is refused with its name.
    ///
    /// ```
    /// use cookiestore::StoreSection;
    /// assert!(StoreSection::keys().contains(&"cache_bytes"));
    /// assert!(!StoreSection::keys().contains(&"clock"));
    /// ```
    pub fn keys() -> &'static [&'static str] {
        static KEYS: LazyLock<Vec<&'static str>> = LazyLock::new(|| {
            let mut keys = vec!["type", "path", "url"];
            keys.extend_from_slice(field_names::<StoreOptions>());
            keys
        });
        &KEYS
    }

    /// Parses a cookie section's `store` object, checking every value.
    pub fn from_value(value: &Value) -> Result<StoreSection> {
        let Value::Object(map) = value else {
            return Err(Error::config(
                "store",
                format!("is {value}; it must be a JSON object with a \"type\""),
            ));
        };
        let kind = match map.get("type") {
            Some(Value::String(kind)) => kind.clone(),
            Some(other) => {
                return Err(Error::config(
                    "store.type",
                    format!("is {other}; it must be a string: one of {STORE_TYPES:?}"),
                ));
            }
            None => {
                return Err(Error::config(
                    "store.type",
                    format!("is missing; give one of {STORE_TYPES:?}"),
                ));
            }
        };
        match kind.as_str() {
            "database" | "cookiestore" => {}
            "memory" => {
                return Err(Error::config(
                    "store.type",
                    "is \"memory\", Crossbar.io's per-process store, which cookiestore does not \
                     serve: use {\"type\": \"database\", \"path\": ...} so that every worker \
                     shares one store that survives restarts",
                ));
            }
            "file" => {
                return Err(Error::config(
                    "store.type",
                    "is \"file\", Crossbar.io's cookies.dat, which cookiestore does not serve: \
                     move its cookies into a store with `cookiestore import STORE cookies.dat`, \
                     then use {\"type\": \"database\", \"path\": \"STORE\"}",
                ));
            }
            other => {
                return Err(Error::config(
                    "store.type",
                    format!("is {other:?}; cookiestore serves one of {STORE_TYPES:?}"),
                ));
            }
        }
        let location = match (map.get("path"), map.get("url")) {
            (Some(_), Some(_)) => {
                return Err(Error::config(
                    "store.path",
                    "and `store.url` are both given; give exactly one: `path` (the store's \
                     directory) or `url` (a Redis URL such as redis://127.0.0.1:6379/0)",
                ));
            }
            (None, None) => {
                return Err(Error::config(
                    "store.path",
                    "is missing, and so is `store.url`; give exactly one: `path` (the store's \
                     directory, relative to the node directory, or absolute) or `url` (a Redis \
                     URL such as redis://127.0.0.1:6379/0)",
                ));
            }
            (Some(Value::String(p)), None) if !p.is_empty() => {
                Location::parse(p).map_err(|e| located("store.path", e))?
            }
            (Some(other), None) => {
                return Err(Error::config(
                    "store.path",
                    format!("is {other}; it must be the store's directory, a non-empty string"),
                ));
            }
            (None, Some(url)) => redis_url(url)?,
        };
        let mut rest = map.clone();
        rest.remove("type");
        rest.remove("path");
        rest.remove("url");
        let options = StoreOptions::deserialize(Value::Object(rest.clone())).map_err(|e| {
            // serde names an unknown key, but not the key whose value has the wrong type.
            let bad = rest.iter().find(|(key, value)| {
                let one = serde_json::Map::from_iter([((*key).clone(), (*value).clone())]);
                Self::keys().contains(&key.as_str())
                    && StoreOptions::deserialize(Value::Object(one)).is_err()
            });
            match bad {
                Some((key, _)) => Error::config(format!("store.{key}"), e.to_string()),
                None => Error::config("store", e.to_string()),
            }
        })?;
        options.validate()?;
        Ok(StoreSection {
            kind,
            location,
            options,
        })
    }

    /// The store's location for a node whose directory is `node_dir`: a relative `path` is
    /// relative to it, as in Crossbar.io; a Redis location is returned as it is.
    pub fn location_in(&self, node_dir: impl AsRef<Path>) -> Location {
        match &self.location {
            Location::Lmdb(path) => Location::Lmdb(node_dir.as_ref().join(path)),
            other => other.clone(),
        }
    }
}

/// An error of [`Location::parse`] for the configuration key `field`.
fn located(field: &str, e: Error) -> Error {
    match e {
        Error::InvalidConfig {
            field: option,
            problem,
        } if option == "url" => Error::config(field, problem),
        Error::InvalidConfig {
            field: option,
            problem,
        } => Error::config(field, format!("has a bad `{option}` option: {problem}")),
        Error::UnsupportedLocation { .. } => Error::config(field, e.to_string()),
        other => other,
    }
}

/// The field names serde's derive gives `T`'s `deserialize_struct` (for `try_from` types,
/// those of the type they are parsed from): the keys a struct with `deny_unknown_fields`
/// accepts. Empty for a type that does not deserialize from a struct.
fn field_names<T: for<'de> Deserialize<'de>>() -> &'static [&'static str] {
    use serde::de::{self, Visitor};

    /// A deserializer that only records the field names it is asked for.
    struct FieldNames<'a>(&'a mut &'static [&'static str]);

    impl<'de> de::Deserializer<'de> for FieldNames<'_> {
        type Error = de::value::Error;

        fn deserialize_any<V: Visitor<'de>>(
            self,
            _: V,
        ) -> std::result::Result<V::Value, Self::Error> {
            Err(de::Error::custom("not a struct"))
        }

        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> std::result::Result<V::Value, Self::Error> {
            *self.0 = fields;
            Err(de::Error::custom("field names read"))
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
            identifier ignored_any
        }
    }

    let mut fields: &'static [&'static str] = &[];
    // Always an error (nothing is deserialized): the names are what it leaves behind.
    let _ = T::deserialize(FieldNames(&mut fields));
    fields
}

/// Checks a store section's `url`: a string naming a Redis store (`redis://`,
/// `redis+unix://`, `unix://`), whose query options (`prefix`, `timeout_ms`,
/// `allow_eviction`) parse.
fn redis_url(value: &Value) -> Result<Location> {
    const EXAMPLE: &str = "redis://127.0.0.1:6379/0 or redis+unix:///run/redis.sock";
    let Value::String(url) = value else {
        return Err(Error::config(
            "store.url",
            format!("is {value}; it must be a Redis URL (a string) such as {EXAMPLE}"),
        ));
    };
    match Location::parse(url).map_err(|e| located("store.url", e))? {
        Location::Lmdb(_) => Err(Error::config(
            "store.url",
            format!(
                "is {:?}; it must be a Redis URL such as {EXAMPLE} (a store's directory goes in \
                 `store.path`)",
                Location::mask(url)
            ),
        )),
        #[cfg(feature = "redis")]
        redis => Ok(redis),
        #[cfg(not(feature = "redis"))]
        Location::Redis(_) => Err(Error::config(
            "store.url",
            "names a Redis store, but this build of cookiestore has no Redis backend (cargo \
             feature `redis`)",
        )),
    }
}
