//! The checks at open of a writable handle: that Redis never evicts the store's keys, and
//! that this build knows the store's feature level.
//!
//! They run at open, or, when the store is opened with
//! [`StoreOptions::connect_lazily`](crate::StoreOptions::connect_lazily), before the first
//! call that reaches Redis ([`RedisBackend::ready`]): that call returns their refusal
//! ([`Error::RedisSetting`], [`Error::NewerStore`]), and so does every call after it, at once,
//! for [`RECHECK`]; the call after that checks again (a setting fixed meanwhile is seen
//! without a restart). Until they passed, every call runs them (calls at the same time may
//! each run them: they are idempotent).
//!
//! A Redis with `maxmemory` and an evicting `maxmemory-policy` (`allkeys-*`, or
//! `volatile-*`: every cookie key has a TTL) drops keys when it runs out of memory. An
//! evicted authid set lets [`logout_authid`](crate::CookieStore::logout_authid) miss the
//! user's cookies that were kept, so such a Redis is refused unless the store is opened with
//! [`StoreOptions::allow_eviction`](crate::StoreOptions::allow_eviction). The policy is read
//! with `CONFIG GET`, or from `INFO memory` where `CONFIG` is renamed or forbidden (as on
//! managed Redis services). It is read once, at open (or at the first call: see above): a policy changed later is not
//! seen.
//!
//! The feature level ([`FEATURE_LEVEL`]) is kept in the key `P feature_level`: a writable open
//! raises it to this build's level and refuses ([`Error::NewerStore`]) a store whose level
//! is higher. On LMDB every commit checks it; on Redis only the open does (a check per
//! write would cost a round trip), so a process opened before a newer build raised the
//! level keeps writing until it is restarted: upgrade every process together.

use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use super::RedisBackend;
use super::probe::PROBE_MAX;
use super::scripts::RAISE_LEVEL;
use crate::error::{Error, Result};
use crate::fork::gated;
use crate::lmdb::tables::FEATURE_LEVEL;

/// How long a refusal by the checks is answered from memory before they run again.
pub(crate) const RECHECK: std::time::Duration = PROBE_MAX;

/// What is left to check before the first call (see the module docs).
pub(crate) struct Checks {
    /// Nothing is (any longer) to be checked.
    done: AtomicBool,
    eviction: bool,
    feature_level: bool,
    /// The last refusal and when it was made (locked under the pools' fork gate, never
    /// across a round trip).
    refusal: Mutex<Option<(Refusal, Instant)>>,
}

/// A refusal by the checks, kept to be returned again.
#[derive(Clone)]
enum Refusal {
    Setting { setting: String, problem: String },
    Newer { path: PathBuf, needed: u64 },
    Credentials { user: String, problem: String },
    Redis(String),
}

impl Refusal {
    fn of(e: &Error) -> Refusal {
        match e {
            Error::RedisSetting {
                setting, problem, ..
            } => Refusal::Setting {
                setting: setting.clone(),
                problem: problem.clone(),
            },
            Error::NewerStore { path, needed, .. } => Refusal::Newer {
                path: path.clone(),
                needed: *needed,
            },
            Error::RedisCredentials { user, problem, .. } => Refusal::Credentials {
                user: user.clone(),
                problem: problem.clone(),
            },
            Error::Redis { problem, .. } => Refusal::Redis(problem.clone()),
            other => Refusal::Redis(other.to_string()),
        }
    }

    fn error(&self, location: &str) -> Error {
        match self.clone() {
            Refusal::Setting { setting, problem } => Error::RedisSetting {
                location: location.to_string(),
                setting,
                problem,
            },
            Refusal::Newer { path, needed } => Error::NewerStore {
                path,
                needed,
                known: FEATURE_LEVEL,
            },
            Refusal::Credentials { user, problem } => Error::RedisCredentials {
                location: location.to_string(),
                user,
                problem,
            },
            Refusal::Redis(problem) => Error::Redis {
                location: location.to_string(),
                problem,
            },
        }
    }
}

impl Checks {
    /// The checks a handle opened with `readonly` and `allow_eviction` needs.
    pub(crate) fn new(readonly: bool, allow_eviction: bool) -> Checks {
        let eviction = !readonly && !allow_eviction;
        let feature_level = !readonly;
        Checks {
            done: AtomicBool::new(!eviction && !feature_level),
            eviction,
            feature_level,
            refusal: Mutex::new(None),
        }
    }

    fn refusal<R>(&self, f: impl FnOnce(&mut Option<(Refusal, Instant)>) -> R) -> R {
        gated(&self.refusal, f)
    }
}

impl RedisBackend {
    /// `Ok` once the open-time checks passed; else runs them (or returns their recent
    /// refusal at once). One atomic load once they passed.
    #[inline]
    pub(crate) fn ready(&self) -> Result<()> {
        if self.checks.done.load(Ordering::Acquire) {
            return Ok(());
        }
        self.check_now()
    }

    #[cold]
    fn check_now(&self) -> Result<()> {
        let remembered = self.checks.refusal(|r| {
            r.as_ref()
                .filter(|(_, at)| at.elapsed() < RECHECK)
                .map(|(refusal, _)| refusal.clone())
        });
        if let Some(refusal) = remembered {
            self.pool.count_refused();
            return Err(refusal.error(self.location()));
        }
        match self.pool.within_deadline(|| self.run_checks()) {
            Ok(()) => {
                self.checks.done.store(true, Ordering::Release);
                let was_refused = self.checks.refusal(|r| r.take().is_some());
                if was_refused {
                    self.pool.set_refusing(None);
                }
                Ok(())
            }
            Err(e @ Error::Unavailable { .. }) => Err(e),
            Err(e) => {
                let refusal = Refusal::of(&e);
                self.checks
                    .refusal(|r| *r = Some((refusal, Instant::now())));
                self.pool.set_refusing(Some(&e.to_string()));
                Err(e)
            }
        }
    }

    /// The open-time checks this handle needs, now.
    ///
    /// A `PING` comes first: a connection refused (a wrong password, TLS) is then reported
    /// as itself, not as a setting that cannot be read.
    pub(crate) fn run_checks(&self) -> Result<()> {
        self.pool
            .run(|con| redis::cmd("PING").query::<String>(con))?;
        if self.checks.eviction {
            self.check_eviction()?;
        }
        if self.checks.feature_level {
            self.check_feature_level()?;
        }
        Ok(())
    }

    /// The checks passed at open.
    pub(crate) fn checked(&self) {
        self.checks.done.store(true, Ordering::Release);
    }
}

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
        let config: Result<Vec<String>> = self.pool.run(|con| {
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
        let info: Result<String> = self
            .pool
            .run(|con| redis::cmd("INFO").arg("memory").query(con));
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
        let key = format!(
            "{}{}",
            self.prefix,
            crate::config::location::key_words::FEATURE_LEVEL
        );
        let level: u64 = self.pool.run(|con| {
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
