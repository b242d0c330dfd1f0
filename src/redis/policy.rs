//! The checks at open of a writable handle: that Redis never evicts the store's keys, and
//! that this build knows the store's feature level.
//!
//! A Redis with `maxmemory` and an evicting `maxmemory-policy` (`allkeys-*`, or
//! `volatile-*`: every cookie key has a TTL) drops keys when it runs out of memory. An
//! evicted authid set lets [`logout_authid`](crate::CookieStore::logout_authid) miss the
//! user's cookies that were kept, so such a Redis is refused unless the store is opened with
//! [`StoreOptions::allow_eviction`](crate::StoreOptions::allow_eviction). The policy is read
//! with `CONFIG GET`, or from `INFO memory` where `CONFIG` is renamed or forbidden (as on
//! managed Redis services). It is read once, at open: a policy changed later is not seen.
//!
//! The feature level ([`FEATURE_LEVEL`]) is kept in the key `P feature_level`: a writable open
//! raises it to this build's level and refuses ([`Error::NewerStore`]) a store whose level
//! is higher. On LMDB every commit checks it; on Redis only the open does (a check per
//! write would cost a round trip), so a process opened before a newer build raised the
//! level keeps writing until it is restarted: upgrade every process together.

use super::RedisBackend;
use super::scripts::RAISE_LEVEL;
use crate::error::{Error, Result};
use crate::tables::FEATURE_LEVEL;

/// The only policy that never evicts.
const NO_EVICTION: &str = "noeviction";

const FIX: &str = "set `maxmemory-policy noeviction` on that Redis (CONFIG SET \
                   maxmemory-policy noeviction, and in redis.conf), or give cookiestore a Redis \
                   of its own with noeviction; or accept the cost with the store option \
                   `allow_eviction` (URL `?allow_eviction=true`; its documentation says what \
                   it costs)";

impl RedisBackend {
    /// The server's `maxmemory-policy`: from `CONFIG GET`, else from `INFO memory`.
    pub(crate) fn eviction_policy(&self) -> Result<std::result::Result<String, String>> {
        let config: Result<Vec<String>> = self.run(|con| {
            redis::cmd("CONFIG")
                .arg("GET")
                .arg("maxmemory-policy")
                .query(con)
        });
        let config_problem = match config {
            Ok(pair) => match &pair[..] {
                [_, policy] => return Ok(Ok(policy.clone())),
                _ => format!("answered {pair:?}"),
            },
            Err(Error::Redis { problem, .. }) => problem,
            Err(other) => return Err(other),
        };
        let info: Result<String> = self.run(|con| redis::cmd("INFO").arg("memory").query(con));
        let info_problem = match info {
            Ok(text) => {
                let policy = text
                    .lines()
                    .find_map(|l| l.trim().strip_prefix("maxmemory_policy:"));
                match policy {
                    Some(policy) => return Ok(Ok(policy.to_string())),
                    None => "has no maxmemory_policy line".to_string(),
                }
            }
            Err(Error::Redis { problem, .. }) => problem,
            Err(other) => return Err(other),
        };
        Ok(Err(format!(
            "CONFIG GET: {config_problem}; INFO memory: {info_problem}"
        )))
    }

    /// Refuses a Redis that may evict keys (see the module docs).
    pub(crate) fn check_eviction(&self) -> Result<()> {
        let problem = match self.eviction_policy()? {
            Ok(policy) if policy == NO_EVICTION => return Ok(()),
            Ok(policy) => format!(
                "is {policy}: Redis may evict the store's keys when it reaches maxmemory, and \
                 an evicted authid index or revocation feed could let a logout miss cookies \
                 or connections; {FIX}"
            ),
            Err(why) => format!(
                "cannot be read ({why}), so cookiestore cannot check that Redis never evicts \
                 the store's keys: allow this client `CONFIG GET` or `INFO` (ACL), or {FIX}"
            ),
        };
        Err(Error::RedisSetting {
            location: self.location().to_string(),
            setting: "maxmemory-policy".to_string(),
            problem,
        })
    }
}

impl RedisBackend {
    /// Raises the store's feature level to this build's, or refuses a store whose level is
    /// higher (see the module docs).
    pub(crate) fn check_feature_level(&self) -> Result<()> {
        let key = format!("{}feature_level", self.prefix);
        let level: u64 = self.run(|con| {
            RAISE_LEVEL
                .prepare_invoke()
                .key(&key)
                .arg(FEATURE_LEVEL)
                .invoke(con)
        })?;
        if level > FEATURE_LEVEL {
            return Err(Error::NewerStore {
                path: self.location().into(),
                needed: level,
                known: FEATURE_LEVEL,
            });
        }
        Ok(())
    }
}
