//! How a store is opened: [`StoreOptions`], Crossbar.io's database store options, in three
//! parts: what every backend reads (here), LMDB's ([`LmdbOptions`]) and Redis's
//! ([`RedisOptions`]).
//!
//! A node config writes them as one flat `store` object, so they are parsed from one: each
//! key goes to the part whose struct has the field (the structs' field names are the one
//! list of keys; [`StoreSection::keys`](crate::StoreSection::keys) reads it from the parser).

use std::path::PathBuf;
use std::sync::{Arc, LazyLock};

use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

use crate::clock::{Clock, SystemClock};
use crate::config::fields::field_names;
use crate::config::lmdb_options::{Durability, LmdbOptions};
use crate::config::location::{Location, RedisLocation};
use crate::config::redis_options::RedisOptions;
use crate::error::{Error, Result};

/// Default revocation retention: 10 minutes.
pub const DEFAULT_REVOCATION_RETENTION_SECS: u64 = 600;
/// Default timeout of a store call: 2 s.
pub const DEFAULT_TIMEOUT_MS: u64 = 2_000;

/// How to open a [`CookieStore`](crate::CookieStore): what every backend reads, and each
/// backend's own part ([`lmdb`](Self::lmdb), [`redis`](Self::redis)), set with builder
/// methods.
///
/// ```
/// use cookiestore::StoreOptions;
/// let options = StoreOptions::default().readonly(true).maxsize(64 << 20);
/// assert_eq!(options.lmdb.maxsize, 64 << 20);
/// assert!(options.validate().is_ok());
/// assert!(StoreOptions::default().maxsize(1).validate().is_err());
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct StoreOptions {
    /// Open for reading only: every write returns [`Error::ReadOnly`]. Default false.
    pub readonly: bool,
    /// Purge expired cookies when the store is opened. Default false. (Crossbar's database
    /// store wipes every cookie here; that is [`CookieStore::clear`](crate::CookieStore::clear).)
    pub purge_on_startup: bool,
    /// How long a revocation (logout) stays in the revocation feed, in seconds, before
    /// [`CookieStore::purge_expired`](crate::CookieStore::purge_expired) trims it. A
    /// subscriber that falls further behind learns that it missed entries. Default 600.
    pub revocation_retention_secs: u64,
    /// Redis stores: how long a call may wait for Redis, in ms, in total (connecting, a
    /// retry on a dead pooled connection and every round trip of the call; a walk over every
    /// key, as `count` or an export, has it per batch of 1,000 keys); the call fails with
    /// [`Error::Unavailable`] after it. A URL's `?timeout_ms=` takes precedence. Default
    /// 2000.
    pub timeout_ms: u64,
    /// Where "now" comes from when deciding expiry. Default: the system clock.
    pub clock: Arc<dyn Clock>,
    /// What only an LMDB store reads: the map, flushing, file modes, the cache.
    pub lmdb: LmdbOptions,
    /// What only a Redis store reads: the key prefix, the feed's cap, eviction, connecting.
    pub redis: RedisOptions,
}

/// The keys every backend reads, as a node config writes them (`StoreOptions`'s own
/// fields but the clock).
#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Common {
    readonly: bool,
    purge_on_startup: bool,
    revocation_retention_secs: u64,
    timeout_ms: u64,
}

impl Default for Common {
    fn default() -> Self {
        let d = StoreOptions::default();
        Common {
            readonly: d.readonly,
            purge_on_startup: d.purge_on_startup,
            revocation_retention_secs: d.revocation_retention_secs,
            timeout_ms: d.timeout_ms,
        }
    }
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            readonly: false,
            purge_on_startup: false,
            revocation_retention_secs: DEFAULT_REVOCATION_RETENTION_SECS,
            timeout_ms: DEFAULT_TIMEOUT_MS,
            clock: Arc::new(SystemClock),
            lmdb: LmdbOptions::default(),
            redis: RedisOptions::default(),
        }
    }
}

/// Every key of a `store` object's options: the common ones, LMDB's, Redis's.
static KEYS: LazyLock<Vec<&'static str>> = LazyLock::new(|| {
    let mut keys = field_names::<Common>().to_vec();
    keys.extend_from_slice(field_names::<LmdbOptions>());
    keys.extend_from_slice(field_names::<RedisOptions>());
    keys
});

impl StoreOptions {
    /// Every option key a flat `store` object may hold (the common ones, then LMDB's, then
    /// Redis's).
    pub(crate) fn keys() -> &'static [&'static str] {
        &KEYS
    }
}

/// From one flat object of options, as a node config's `store` section holds them: each
/// key goes to its part; a key of none is an unknown field.
impl<'de> Deserialize<'de> for StoreOptions {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        use serde::de::Error as _;
        let all = Map::<String, Value>::deserialize(d)?;
        let (mut common, mut lmdb, mut redis) = (Map::new(), Map::new(), Map::new());
        for (key, value) in all {
            let part = if field_names::<LmdbOptions>().contains(&key.as_str()) {
                &mut lmdb
            } else if field_names::<RedisOptions>().contains(&key.as_str()) {
                &mut redis
            } else if field_names::<Common>().contains(&key.as_str()) {
                &mut common
            } else {
                return Err(D::Error::unknown_field(&key, StoreOptions::keys()));
            };
            part.insert(key, value);
        }
        let Common {
            readonly,
            purge_on_startup,
            revocation_retention_secs,
            timeout_ms,
        } = Common::deserialize(Value::Object(common)).map_err(D::Error::custom)?;
        Ok(StoreOptions {
            readonly,
            purge_on_startup,
            revocation_retention_secs,
            timeout_ms,
            clock: Arc::new(SystemClock),
            lmdb: LmdbOptions::deserialize(Value::Object(lmdb)).map_err(D::Error::custom)?,
            redis: RedisOptions::deserialize(Value::Object(redis)).map_err(D::Error::custom)?,
        })
    }
}

impl StoreOptions {
    /// Sets [`lmdb.maxsize`](LmdbOptions::maxsize): 128 KiB to 128 GiB.
    pub fn maxsize(mut self, bytes: u64) -> Self {
        self.lmdb.maxsize = bytes;
        self
    }

    /// Sets [`lmdb.initial_mapsize`](LmdbOptions::initial_mapsize).
    pub fn initial_mapsize(mut self, bytes: u64) -> Self {
        self.lmdb.initial_mapsize = bytes;
        self
    }

    /// Sets [`readonly`](Self::readonly).
    pub fn readonly(mut self, readonly: bool) -> Self {
        self.readonly = readonly;
        self
    }

    /// Sets [`lmdb.sync`](LmdbOptions::sync).
    pub fn sync(mut self, sync: bool) -> Self {
        self.lmdb.sync = sync;
        self
    }

    /// Sets [`lmdb.cache_bytes`](LmdbOptions::cache_bytes) (0: no cache).
    pub fn cache_bytes(mut self, bytes: u64) -> Self {
        self.lmdb.cache_bytes = bytes;
        self
    }

    /// Sets [`lmdb.durability`](LmdbOptions::durability).
    pub fn durability(mut self, durability: Durability) -> Self {
        self.lmdb.durability = durability;
        self
    }

    /// Sets [`purge_on_startup`](Self::purge_on_startup).
    pub fn purge_on_startup(mut self, purge: bool) -> Self {
        self.purge_on_startup = purge;
        self
    }

    /// Sets [`lmdb.file_mode`](LmdbOptions::file_mode).
    pub fn file_mode(mut self, mode: u32) -> Self {
        self.lmdb.file_mode = mode;
        self
    }

    /// Sets [`revocation_retention_secs`](Self::revocation_retention_secs).
    pub fn revocation_retention_secs(mut self, seconds: u64) -> Self {
        self.revocation_retention_secs = seconds;
        self
    }

    /// Sets [`redis.key_prefix`](RedisOptions::key_prefix).
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.redis.key_prefix = prefix.into();
        self
    }

    /// Sets [`timeout_ms`](Self::timeout_ms).
    pub fn timeout_ms(mut self, ms: u64) -> Self {
        self.timeout_ms = ms;
        self
    }

    /// Sets [`redis.revocation_stream_max`](RedisOptions::revocation_stream_max).
    pub fn revocation_stream_max(mut self, entries: u64) -> Self {
        self.redis.revocation_stream_max = entries;
        self
    }

    /// Sets [`redis.allow_eviction`](RedisOptions::allow_eviction) (read what it costs there).
    pub fn allow_eviction(mut self, allow: bool) -> Self {
        self.redis.allow_eviction = allow;
        self
    }

    /// Sets [`redis.connect_lazily`](RedisOptions::connect_lazily).
    pub fn connect_lazily(mut self, lazily: bool) -> Self {
        self.redis.connect_lazily = lazily;
        self
    }

    /// Sets [`redis.tls_ca_file`](RedisOptions::tls_ca_file).
    pub fn tls_ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.redis.tls_ca_file = Some(path.into());
        self
    }

    /// Sets [`redis.tls_cert_file`](RedisOptions::tls_cert_file) and
    /// [`redis.tls_key_file`](RedisOptions::tls_key_file) (mutual TLS).
    pub fn tls_client_cert(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.redis.tls_cert_file = Some(cert.into());
        self.redis.tls_key_file = Some(key.into());
        self
    }

    /// Sets [`redis.password_file`](RedisOptions::password_file).
    pub fn password_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.redis.password_file = Some(path.into());
        self
    }

    /// Sets [`redis.password_env`](RedisOptions::password_env).
    pub fn password_env(mut self, name: impl Into<String>) -> Self {
        self.redis.password_env = Some(name.into());
        self
    }

    /// Sets [`redis.sentinel_password_file`](RedisOptions::sentinel_password_file)
    /// (`redis+sentinel://` only).
    pub fn sentinel_password_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.redis.sentinel_password_file = Some(path.into());
        self
    }

    /// Sets [`redis.sentinel_password_env`](RedisOptions::sentinel_password_env)
    /// (`redis+sentinel://` only).
    pub fn sentinel_password_env(mut self, name: impl Into<String>) -> Self {
        self.redis.sentinel_password_env = Some(name.into());
        self
    }

    /// Sets [`redis.sentinel_user`](RedisOptions::sentinel_user) (`redis+sentinel://` only).
    pub fn sentinel_user(mut self, user: impl Into<String>) -> Self {
        self.redis.sentinel_user = Some(user.into());
        self
    }

    /// Sets [`redis.cache_bytes`](RedisOptions::cache_bytes): the budget of a cache on
    /// Redis (0: none, the default).
    pub fn redis_cache_bytes(mut self, bytes: u64) -> Self {
        self.redis.cache_bytes = bytes;
        self
    }

    /// Sets [`redis.min_replicas_acked`](RedisOptions::min_replicas_acked) and
    /// [`redis.replica_ack_timeout_ms`](RedisOptions::replica_ack_timeout_ms).
    pub fn min_replicas_acked(mut self, replicas: u32, timeout_ms: u64) -> Self {
        self.redis.min_replicas_acked = replicas;
        self.redis.replica_ack_timeout_ms = timeout_ms;
        self
    }

    /// Sets [`clock`](Self::clock).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Checks every field, each part's too; the error names the field and its allowed range.
    pub fn validate(&self) -> Result<()> {
        if self.timeout_ms == 0 {
            return Err(Error::config(
                "timeout_ms",
                "is 0; give the timeout in milliseconds, at least 1 (default 2000)",
            ));
        }
        self.lmdb.validate()?;
        self.redis.validate()
    }
}

impl StoreOptions {
    /// The deadline (milliseconds) of a store call at `location`, as the store opened there
    /// applies it: a Redis URL's `?timeout_ms=` when given, else
    /// [`timeout_ms`](StoreOptions::timeout_ms).
    ///
    /// ```
    /// use cookiestore::{Location, StoreOptions};
    /// let options = StoreOptions::default().timeout_ms(700);
    /// let url = Location::parse("redis://127.0.0.1/?timeout_ms=300")?;
    /// assert_eq!(options.effective_timeout_ms(&url), 300);
    /// assert_eq!(options.effective_timeout_ms(&Location::parse("/var/cookies")?), 700);
    /// # Ok::<(), cookiestore::Error>(())
    /// ```
    pub fn effective_timeout_ms(&self, location: &Location) -> u64 {
        match location {
            Location::Redis(redis) => {
                u64::try_from(self.redis_timeout(redis).as_millis()).unwrap_or(u64::MAX)
            }
            Location::Lmdb(_) => self.timeout_ms,
        }
    }

    /// The deadline of a call to the Redis store at `location` (the one home of the rule).
    pub(crate) fn redis_timeout(&self, location: &RedisLocation) -> std::time::Duration {
        location
            .timeout()
            .unwrap_or(std::time::Duration::from_millis(self.timeout_ms))
    }
}
