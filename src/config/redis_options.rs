//! Redis's options ([`RedisOptions`]: the key prefix, the feed's cap, eviction, when to
//! connect, TLS files, where the password is, the sentinels' credentials). A URL's query (`?prefix=`,
//! `?allow_eviction=true`, `?tls_ca_file=`, ...) takes precedence over them.

use std::path::PathBuf;

use serde::Deserialize;

use crate::config::location::check_key_prefix;
use crate::error::{Error, Result};

/// Default cap of a Redis store's revocation stream (entries, approximately).
pub const DEFAULT_REVOCATION_STREAM_MAX: u64 = 100_000;

/// Default of [`RedisOptions::replica_ack_timeout_ms`].
const DEFAULT_REPLICA_ACK_TIMEOUT_MS: u64 = 500;

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
    /// one round trip per 1,000 cookies) instead of reading the user's set, so that it
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
    /// reports it. [`StoreOptions::purge_on_startup`](crate::StoreOptions::purge_on_startup)
    /// is then done by that thread, and skipped when Redis cannot be reached.
    pub connect_lazily: bool,
    /// TLS (`rediss://` only): a PEM file of the CA certificate(s) that the server's
    /// certificate must chain to, instead of the system's trust store (the default). A
    /// URL's `?tls_ca_file=` takes precedence.
    pub tls_ca_file: Option<PathBuf>,
    /// TLS (`rediss://` only): a PEM file of the client certificate (chain) shown to a
    /// server that asks for one (mutual TLS: `tls-auth-clients yes`); with
    /// [`Self::tls_key_file`]. A URL's `?tls_cert_file=` takes precedence.
    pub tls_cert_file: Option<PathBuf>,
    /// TLS (`rediss://` only): the PEM file of [`Self::tls_cert_file`]'s private key. It
    /// must not be readable by others (mode 0600; 0640 when owned by root, as in a
    /// `ssl-cert` group), else the open is refused. A URL's `?tls_key_file=` takes
    /// precedence.
    pub tls_key_file: Option<PathBuf>,
    /// A file holding the Redis password (one line; a trailing newline is dropped), so that
    /// it need not sit in `config.json` or the URL. The ACL user is the URL's
    /// (`redis://user@host`, `?user=` for a Unix socket), else `default`. Same permission
    /// rule as [`Self::tls_key_file`]. Give one of: the URL's password, this,
    /// [`Self::password_env`]; two are refused. A URL's `?password_file=` takes
    /// precedence.
    ///
    /// This file, [`Self::sentinel_password_file`] and the three TLS files are read again
    /// before a new connection when one of them changed (a password or a certificate
    /// rotated while the process runs): see docs/configuration.md, "Redis: the same store
    /// on several hosts".
    pub password_file: Option<PathBuf>,
    /// The name of an environment variable holding the Redis password (read at each open;
    /// an unset or empty variable is an error). See [`Self::password_file`]. A URL's
    /// `?password_env=` takes precedence.
    pub password_env: Option<String>,
    /// `redis+sentinel://` only: a file holding the password of the sentinels themselves
    /// (their `requirepass`, or [`Self::sentinel_user`]'s ACL password), with which each
    /// sentinel is asked for the master. One line; same permission rule as
    /// [`Self::password_file`]. Give it or [`Self::sentinel_password_env`], not both; the
    /// master's password is given apart ([`Self::password_file`], ...). Refused on any
    /// other URL. A URL's `?sentinel_password_file=` takes precedence. Default none: the
    /// sentinels are asked without a password.
    pub sentinel_password_file: Option<PathBuf>,
    /// `redis+sentinel://` only: the name of an environment variable holding the
    /// sentinels' password (read at each open; an unset or empty variable is an error).
    /// See [`Self::sentinel_password_file`]. A URL's `?sentinel_password_env=` takes
    /// precedence.
    pub sentinel_password_env: Option<String>,
    /// `redis+sentinel://` only: the ACL user the sentinels are asked as, with the password
    /// of [`Self::sentinel_password_file`] or [`Self::sentinel_password_env`] (one of them
    /// is then required). Default none: the user `default`. A URL's `?sentinel_user=` takes
    /// precedence.
    pub sentinel_user: Option<String>,
    /// After each change that must not come back (a logout, an authid's logout, a clear, a
    /// change of a cookie's authentication), wait until this many replicas have
    /// acknowledged it (Redis `WAIT`), at most [`Self::replica_ack_timeout_ms`]; when fewer
    /// did, the call fails with [`Error::NotReplicated`] (the change is on the master, not
    /// yet on that many replicas). Default 0: no wait. Redis replicates asynchronously: a
    /// change acknowledged by a master that fails before a replica received it is lost
    /// when that replica is promoted (Sentinel failover); this narrows that window to the
    /// changes whose call failed. See docs/redis.md, "Failover with Sentinel".
    pub min_replicas_acked: u32,
    /// How long [`Self::min_replicas_acked`] waits for the replicas' acknowledgement, in
    /// milliseconds: at least 1, and less than the call's timeout (`timeout_ms`), which the
    /// wait is part of. Default 500.
    pub replica_ack_timeout_ms: u64,
    /// The byte budget of this process's never-stale cache of live cookies' lookups on
    /// Redis (node-config key `redis_cache_bytes`). Default 0: no cache, every lookup is a
    /// round trip. With a budget, a lookup of a cached cookie makes no round trip; Redis
    /// tells the process which cookies changed (`CLIENT TRACKING`, on a connection of its
    /// own), and the cache answers only while it has heard from Redis within the store's
    /// lease (20 ms; one round trip renews it). The price: once any process of the store
    /// caches, each logout and authentication change waits out that lease before it
    /// returns, so that no process answers from an older entry after the change returned.
    /// Needs Redis 6 or later. See docs/redis.md, "A cache on Redis".
    #[serde(rename = "redis_cache_bytes")]
    pub cache_bytes: u64,
}

impl Default for RedisOptions {
    fn default() -> Self {
        RedisOptions {
            key_prefix: String::new(),
            revocation_stream_max: DEFAULT_REVOCATION_STREAM_MAX,
            allow_eviction: false,
            connect_lazily: false,
            tls_ca_file: None,
            tls_cert_file: None,
            tls_key_file: None,
            password_file: None,
            password_env: None,
            sentinel_password_file: None,
            sentinel_password_env: None,
            sentinel_user: None,
            min_replicas_acked: 0,
            replica_ack_timeout_ms: DEFAULT_REPLICA_ACK_TIMEOUT_MS,
            cache_bytes: 0,
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
        if self.replica_ack_timeout_ms == 0 {
            return Err(Error::config(
                "replica_ack_timeout_ms",
                "is 0; give milliseconds, at least 1 (default 500)",
            ));
        }
        for (field, name) in [
            ("password_env", &self.password_env),
            ("sentinel_password_env", &self.sentinel_password_env),
        ] {
            if let Some(name) = name
                && (name.is_empty() || name.contains(['=', '\0']))
            {
                return Err(Error::config(
                    field,
                    format!("is {name:?}; give the name of an environment variable"),
                ));
            }
        }
        if self.sentinel_user.as_deref() == Some("") {
            return Err(Error::config(
                "sentinel_user",
                "is empty; give the sentinels' ACL user, or leave it out for `default`",
            ));
        }
        check_key_prefix(&self.key_prefix).map_err(|problem| Error::config("key_prefix", problem))
    }
}
