//! The Redis backend: the same store API over one Redis server, for routers on several
//! hosts.
//!
//! Layout (every key starts with the store's prefix, `""` by default):
//! - `{prefix}cookie:{value}`: the cookie's FlatBuffers `Cookie` record (the bytes LMDB
//!   stores), expiring at created + max_age (`SET ... PXAT`, so Redis drops it by its clock).
//! - `{prefix}authid:{authid}`: a set of the cookie values authenticated as `authid`, for
//!   [`CookieStore::logout_authid`](crate::CookieStore::logout_authid); it expires with the
//!   last of its cookies, and members whose record no longer carries the authid are dropped
//!   lazily (at that authid's next logout).
//! - `{prefix}revocations`: the revocation feed, a stream capped at about
//!   [`StoreOptions::revocation_stream_max`](crate::StoreOptions) entries, with ids `0-seq`
//!   (seq = [`Revocation::seq`](crate::Revocation)); each append is also PUBLISHed on the
//!   channel `{prefix}revocations` so that watchers wake at once.
//!
//! Writes are compare-and-set Lua scripts ([`scripts`]): the client reads a record, decides,
//! and the script writes only when the record is still what was read.

mod feed;
mod location;
mod migrate;
mod ops;
pub(crate) mod pool;
mod scripts;
pub(crate) mod watch;

use std::time::Duration;

use redis::{Connection, RedisResult};

use crate::config::StoreOptions;
use crate::error::{Error, Result};
use pool::Pool;

pub(crate) use location::{is_redis, redact};

/// Checks a Redis URL's query options (`prefix`, `timeout_ms`) without connecting.
pub(crate) fn check_url(url: &str) -> Result<()> {
    location::parse(url).map(drop)
}

/// How many times a compare-and-set is retried when the record keeps changing under it.
const CAS_ATTEMPTS: u32 = 32;

/// Keys fetched per SCAN / MGET round when walking every cookie.
const SCAN_BATCH: usize = 1000;

/// One Redis store: a connection pool and the key names.
pub(crate) struct RedisBackend {
    pool: Pool,
    prefix: String,
    stream_max: u64,
}

impl std::fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBackend")
            .field("location", &self.pool.location())
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisBackend {
    /// Connects to the Redis store at `url` (one PING, so that a wrong address fails here).
    pub(crate) fn open(url: &str, options: &StoreOptions) -> Result<RedisBackend> {
        let location = location::parse(url)?;
        let timeout = location
            .timeout
            .unwrap_or(Duration::from_millis(options.timeout_ms));
        let prefix = location
            .prefix
            .clone()
            .unwrap_or_else(|| options.key_prefix.clone());
        let client = redis::Client::open(location.url.as_str()).map_err(|e| {
            let tls = location.url.to_ascii_lowercase().starts_with("rediss:");
            Error::Unavailable {
                location: location.display.clone(),
                problem: if tls {
                    format!(
                        "{e}; this build has no TLS support for Redis (rediss://): reach \
                         Redis over a local socket or a TLS tunnel"
                    )
                } else {
                    e.to_string()
                },
            }
        })?;
        let backend = RedisBackend {
            pool: Pool::new(client, timeout, location.display),
            prefix,
            stream_max: options.revocation_stream_max,
        };
        backend.run(|con| redis::cmd("PING").query::<()>(con))?;
        Ok(backend)
    }

    /// The location without its password.
    pub(crate) fn location(&self) -> &str {
        self.pool.location()
    }

    fn run<T>(&self, f: impl FnMut(&mut Connection) -> RedisResult<T>) -> Result<T> {
        self.pool.run(f)
    }

    fn cookie_key(&self, value: &str) -> String {
        format!("{}cookie:{value}", self.prefix)
    }

    fn authid_key(&self, authid: &str) -> String {
        format!("{}authid:{authid}", self.prefix)
    }

    fn stream_key(&self) -> String {
        format!("{}revocations", self.prefix)
    }

    /// Every cookie record (key, bytes), walked with SCAN in batches: `f` gets each batch
    /// and says whether to go on.
    /// Not one snapshot: cookies written during the walk may or may not be seen.
    fn for_each_record(
        &self,
        mut f: impl FnMut(Vec<(String, Vec<u8>)>) -> Result<bool>,
    ) -> Result<()> {
        let pattern = format!("{}cookie:*", glob_escape(&self.prefix));
        let mut cursor: u64 = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = self.run(|con| {
                redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(SCAN_BATCH)
                    .query(con)
            })?;
            if !keys.is_empty() {
                let values: Vec<Option<Vec<u8>>> =
                    self.run(|con| redis::cmd("MGET").arg(&keys).query(con))?;
                let batch = keys
                    .into_iter()
                    .zip(values)
                    .filter_map(|(k, v)| v.map(|v| (k, v)))
                    .collect();
                if !f(batch)? {
                    return Ok(());
                }
            }
            if next == 0 {
                return Ok(());
            }
            cursor = next;
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
