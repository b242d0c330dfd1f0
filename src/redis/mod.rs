//! The Redis backend: the same store API over one Redis server, for routers on several
//! hosts.
//!
//! Layout (every key starts with the store's prefix `P`: `""` by default, else a word and one
//! `:`, such as `cb1:`; see below why):
//! - `{P}cookie:{value}`: the cookie's FlatBuffers `Cookie` record (the bytes LMDB
//!   stores), expiring at created + max_age (`SET ... PXAT`, so Redis drops it by its clock).
//! - `{P}authid:{authid}`: a set of the cookie values authenticated as `authid`, for
//!   [`CookieStore::logout_authid`](crate::CookieStore::logout_authid); it expires with the
//!   last of its cookies, and members whose record no longer carries the authid are dropped
//!   lazily (at that authid's next logout).
//! - `{P}imported:{sha256 of a value, hex}`: an import mark (see
//!   `ImportMark` in `lmdb/keys.rs`): the cookie with that value was brought in by
//!   an import; it holds the cookie's expiry (ns) and expires then. A re-run import skips a
//!   marked value whose cookie is gone (logged out since).
//! - `{P}revocations`: the revocation feed, a stream capped at about
//!   [`StoreOptions::revocation_stream_max`](crate::StoreOptions) entries, with ids `0-seq`
//!   (seq = [`Revocation::seq`](crate::Revocation)) and, per entry, a random `tag` and the
//!   `prev` tag (the entry before it); each append is also PUBLISHed on the channel
//!   `{P}revocations` so that watchers wake at once.
//! - `{P}revocations:head`: the tag of the last entry appended. With `prev`, it lets a
//!   reader tell that the feed is still the history it read (`feed.rs`).
//! - `{P}feature_level`: the store's feature level (`policy.rs`).
//!
//! Deployments sharing one Redis database never see each other's keys: a non-empty prefix is
//! a word of `[A-Za-z0-9_.-]` and one `:` at its end, so no prefix begins another (each has
//! its only `:` last), and the word is none of the key words above (`cookie`, `authid`,
//! `imported`, `revocations`, `feature_level`: [`crate::config::location::KEY_WORDS`]), so no key of
//! a prefixed deployment begins like a key of the deployment with the empty prefix (the
//! prefix `cookie:` would give `cookie:cookie:X`, which the empty prefix's `SCAN MATCH
//! cookie:*` would take for its own). Every SCAN pattern is the prefix (glob characters
//! escaped) and one key word. The check is [`crate::config::location::check_key_prefix`], applied to
//! `?prefix=` and to [`StoreOptions::key_prefix`](crate::StoreOptions::key_prefix).
//!
//! A Redis that may evict keys is refused at open (opened lazily: at the first call) unless
//! allowed (`policy.rs`). Faults: a deadline per call (`deadline.rs`), a pool of
//! connections (`pool.rs`), a circuit breaker (`breaker.rs`) with its probe (`probe.rs`);
//! what an error means, `errors.rs`. The client: the URL, TLS and passwords (`client.rs`),
//! made again when its files change (`credentials.rs`).
//!
//! Writes are compare-and-set Lua scripts ([`scripts`]): the client reads a record, decides,
//! and the script writes only when the record is still what was read.

mod breaker;
mod bulk;
mod client;
mod credentials;
mod deadline;
mod errors;
mod feed;
mod migrate;
mod ops;
mod policy;
pub(crate) mod pool;
mod probe;
mod scripts;
pub(crate) mod store;
mod tracking;
pub(crate) mod watch;

pub(crate) use store::RedisStore;

use std::sync::Arc;

use redis::{Connection, RedisResult};

use crate::config::location::RedisLocation;
use crate::config::location::key_words::{AUTHID, COOKIE, IMPORTED, REVOCATIONS};
use crate::config::options::StoreOptions;
use crate::error::{Error, Result};
use crate::record::mark::{ValueDigest, hex, parse_hex};
use credentials::Credentials;
use pool::Pool;

/// How many times a compare-and-set is retried when the record keeps changing under it.
const CAS_ATTEMPTS: u32 = 32;

/// Keys fetched per SCAN / MGET round when walking every cookie.
const SCAN_BATCH: usize = 1000;

/// One Redis store: a connection pool and the key names.
pub(crate) struct RedisBackend {
    pool: Pool,
    prefix: String,
    stream_max: u64,
    /// Redis may evict keys (opted in): the authid sets are not trusted.
    allow_eviction: bool,
    /// The open-time checks, until they passed (`policy.rs`).
    checks: policy::Checks,
    /// `min_replicas_acked` (when not 0) and `replica_ack_timeout_ms`: what a logout or an
    /// authentication change waits for (`WAIT`, see `ops.rs`).
    replicas: Option<(u32, u64)>,
    /// This process's cache (`redis_cache_bytes`), if any (`tracking.rs`).
    tracking: Option<Arc<tracking::Tracking>>,
}

impl std::fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBackend")
            .field("location", &self.pool.location().masked())
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisBackend {
    /// The Redis store at `location`. Unless `options.redis.connect_lazily`: connects (one PING,
    /// so that a wrong address fails here) and, unless read-only, runs the open-time checks
    /// (`policy.rs`: a Redis that may evict keys, a newer store). Lazily: no round trip here;
    /// the checks run before the first call that reaches Redis.
    pub(crate) fn open(location: &RedisLocation, options: &StoreOptions) -> Result<RedisBackend> {
        let timeout = options.redis_timeout(location);
        // Both were checked (`check_key_prefix`): `?prefix=` by the parser, `key_prefix` by
        // `StoreOptions::validate`.
        let prefix = location
            .prefix()
            .unwrap_or(&options.redis.key_prefix)
            .to_string();
        // The location comes back with the password, if read from a file or the
        // environment, among the secrets its messages are cleaned of.
        let replicas = (options.redis.min_replicas_acked > 0).then_some((
            options.redis.min_replicas_acked,
            options.redis.replica_ack_timeout_ms,
        ));
        if let Some((_, wait_ms)) = replicas
            && u128::from(wait_ms) >= timeout.as_millis()
        {
            return Err(Error::config(
                "replica_ack_timeout_ms",
                format!(
                    "is {wait_ms}, not less than the timeout of a call to {location} ({} ms), \
                     which the wait for the replicas is part of: give a shorter wait, or a \
                     longer timeout_ms",
                    timeout.as_millis()
                ),
            ));
        }
        let (credentials, location) = Credentials::open(location, &options.redis)?;
        let allow_eviction = location
            .allow_eviction()
            .unwrap_or(options.redis.allow_eviction);
        let backend = RedisBackend {
            pool: Pool::new(credentials, timeout, location),
            prefix: prefix.clone(),
            stream_max: options.redis.revocation_stream_max,
            allow_eviction,
            checks: policy::Checks::new(options.readonly, allow_eviction),
            replicas,
            tracking: (options.redis.cache_bytes > 0).then(|| {
                Arc::new(tracking::Tracking::new(
                    options.redis.cache_bytes,
                    &prefix,
                    timeout,
                ))
            }),
        };
        if options.redis.connect_lazily {
            backend.pool.arm();
            return Ok(backend);
        }
        // Eagerly, within one timeout: the errors go to the opener, and the breaker is armed
        // once open.
        backend.pool.within_deadline(|| {
            backend
                .pool
                .run(|con| redis::cmd("PING").query::<()>(con))?;
            backend.run_checks()
        })?;
        backend.checked();
        backend.pool.arm();
        Ok(backend)
    }

    /// Connects, and runs the open-time checks, if not done yet (a lazy open's background
    /// connection: see [`CookieStore::open`](crate::CookieStore::open)).
    pub(crate) fn connect_now(&self) -> Result<()> {
        self.ready()?;
        self.run(|con| redis::cmd("PING").query::<()>(con))
    }

    /// What [`CookieStore::health`](crate::CookieStore::health) reports.
    pub(crate) fn health_record(&self) -> breaker::Record {
        self.pool.record()
    }

    /// The location without its password.
    pub(crate) fn location(&self) -> &str {
        self.pool.location().masked()
    }

    /// One round trip, once the open-time checks passed (`policy.rs`).
    fn run<T>(&self, f: impl FnMut(&mut Connection) -> RedisResult<T>) -> Result<T> {
        self.ready()?;
        self.pool.run(f)
    }

    fn cookie_key(&self, value: &str) -> String {
        format!("{}{COOKIE}:{value}", self.prefix)
    }

    fn authid_key(&self, authid: &str) -> String {
        format!("{}{AUTHID}:{authid}", self.prefix)
    }

    /// The import mark of the value whose SHA-256 is `digest` (Redis's home of that key).
    fn mark_key(&self, digest: &ValueDigest) -> String {
        format!("{}{IMPORTED}:{}", self.prefix, hex(digest))
    }

    /// The digest named by the import mark key `key`, if it is one.
    fn parse_mark_key(&self, key: &str) -> Option<ValueDigest> {
        parse_hex(
            key.strip_prefix(self.prefix.as_str())?
                .strip_prefix(IMPORTED)?
                .strip_prefix(':')?,
        )
    }

    fn stream_key(&self) -> String {
        format!("{}{REVOCATIONS}", self.prefix)
    }

    /// The tag of the last entry appended to the feed (see `feed.rs`).
    fn head_key(&self) -> String {
        format!("{}{REVOCATIONS}:head", self.prefix)
    }

    /// Every cookie record (key, bytes), walked with SCAN in batches: `f` gets each batch
    /// and says whether to go on.
    /// Not one snapshot: cookies written during the walk may or may not be seen.
    fn for_each_record(&self, f: impl FnMut(Vec<(String, Vec<u8>)>) -> Result<bool>) -> Result<()> {
        self.scan(&format!("{}{COOKIE}:*", glob_escape(&self.prefix)), f)
    }

    /// Every import mark (key, value), walked as [`Self::for_each_record`] walks cookies.
    fn for_each_mark(&self, f: impl FnMut(Vec<(String, Vec<u8>)>) -> Result<bool>) -> Result<()> {
        self.scan(&format!("{}{IMPORTED}:*", glob_escape(&self.prefix)), f)
    }

    /// Every string key matching `pattern` (key, value), in SCAN + MGET batches: the MGET
    /// of one batch and the SCAN of the next are one round trip (pipelined).
    fn scan(
        &self,
        pattern: &str,
        mut f: impl FnMut(Vec<(String, Vec<u8>)>) -> Result<bool>,
    ) -> Result<()> {
        let scan = |cursor: u64| {
            let mut cmd = redis::cmd("SCAN");
            cmd.arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(SCAN_BATCH);
            cmd
        };
        // Each batch has the timeout (a call's deadline would not let a large store be
        // walked).
        self.pool.restart_deadline();
        let (mut cursor, mut keys): (u64, Vec<String>) = self.run(|con| scan(0).query(con))?;
        loop {
            self.pool.restart_deadline();
            let values: Vec<Option<Vec<u8>>>;
            let last = cursor == 0;
            let mut next = (0, Vec::new());
            if keys.is_empty() {
                if last {
                    return Ok(());
                }
                next = self.run(|con| scan(cursor).query(con))?;
                values = Vec::new();
            } else if last {
                values = self.run(|con| redis::cmd("MGET").arg(&keys).query(con))?;
            } else {
                (values, next) = self.run(|con| {
                    redis::pipe()
                        .add_command(redis::cmd("MGET").arg(&keys).clone())
                        .add_command(scan(cursor))
                        .query(con)
                })?;
            }
            if !keys.is_empty() {
                let batch = keys
                    .into_iter()
                    .zip(values)
                    .filter_map(|(k, v)| v.map(|v| (k, v)))
                    .collect();
                if !f(batch)? {
                    return Ok(());
                }
            }
            if last {
                return Ok(());
            }
            (cursor, keys) = next;
        }
    }
}

/// `text` with the glob characters of SCAN's MATCH escaped.
fn glob_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The PXAT (ms) for a record expiring at `expires_at` ns: rounded up, so Redis never drops
/// a cookie before the store's own expiry check would.
fn pxat_ms(expires_at: u64) -> u64 {
    expires_at.div_ceil(1_000_000).max(1)
}
