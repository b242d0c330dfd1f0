//! Redis's options ([`RedisOptions`]: the key prefix, the feed's cap, eviction, when to
//! connect). A URL's query (`?prefix=`, `?allow_eviction=true`) takes precedence over them.

use serde::Deserialize;

use crate::config::location::check_key_prefix;
use crate::error::{Error, Result};

/// Default cap of a Redis store's revocation stream (entries, approximately).
pub const DEFAULT_REVOCATION_STREAM_MAX: u64 = 100_000;

/// The options only a Redis store reads ([`StoreOptions::redis`](crate::StoreOptions::redis));
/// set them with [`StoreOptions`](crate::StoreOptions)'s builder methods (`.key_prefix(..)`,
/// ...). In a node config they sit in the `store` object beside the others.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct RedisOptions {
    /// The prefix of every key, so that several deployments share one Redis
    /// (`cb1:` gives `cb1:cookie:...`). A URL's `?prefix=` takes precedence. Default `""`.
    /// A non-empty prefix is a word of letters, digits, `_`, `-` and `.` followed by one
    /// `:`, and not one of the words cookiestore's keys start with (`cookie:`, `authid:`,
    /// `imported:`, `revocations:`, `feature_level:`), so that no two deployments in one
    /// Redis database ever see each other's keys (see docs/redis.md, "Redis: layout and round trips").
    pub key_prefix: String,
    /// The revocation stream is capped at about this many entries (besides
    /// the time-based trimming of `revocation_retention_secs`). Default 100,000.
    pub revocation_stream_max: u64,
    /// Open even though the Redis may evict keys (a `maxmemory-policy` other
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
    /// Open without waiting for Redis. Default false: the open connects (one
    /// `PING`) and runs the open-time checks (a Redis that may evict keys, a newer store),
    /// so that an unreachable or unsuitable Redis fails the open, as a command-line tool
    /// wants. With true the open makes no round trip and succeeds while Redis is down, as a
    /// router starting before its Redis wants: a background thread connects at once, the
    /// checks run before the first call that reaches Redis, and their refusal
    /// ([`Error::RedisSetting`], [`Error::NewerStore`]) is that call's error (and every
    /// call's for 2 s, then they run again); [`CookieStore::health`](crate::CookieStore::health)
    /// reports it. [`StoreOptions::purge_on_startup`](crate::StoreOptions::purge_on_startup) is then done by that thread, and skipped when Redis
    /// cannot be reached.
    pub connect_lazily: bool,
}

impl Default for RedisOptions {
    fn default() -> Self {
        RedisOptions {
            key_prefix: String::new(),
            revocation_stream_max: DEFAULT_REVOCATION_STREAM_MAX,
            allow_eviction: false,
            connect_lazily: false,
        }
    }
}

impl RedisOptions {
    /// Checks every field; the error names the field and what it must be.
    pub(crate) fn validate(&self) -> Result<()> {
        if self.revocation_stream_max == 0 {
            return Err(Error::config(
                "revocation_stream_max",
                "is 0; it must be at least 1 (default 100000)",
            ));
        }
        check_key_prefix(&self.key_prefix).map_err(|problem| Error::config("key_prefix", problem))
    }
}
