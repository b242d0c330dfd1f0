//! A never-stale per-process cache on Redis (`redis_cache_bytes`): Redis's
//! server-assisted client-side caching, made exact by a lease.
//!
//! **What keeps it current.** Each process with a cache holds one connection of its own
//! that speaks RESP3 and has `CLIENT TRACKING ON BCAST PREFIX {P}cookie:`: from then on
//! Redis pushes on it an invalidation message naming every cookie key any client changes
//! or deletes (and that expires or is evicted), and a null one when the database is
//! flushed. The process reads that connection only when it renews its lease (below), and
//! drops the entries the messages name (a null one: every entry). The cache is flushed
//! whenever that connection is made anew, so it only ever holds lookups read while Redis
//! was tracking for it.
//!
//! **Why the messages alone are not enough.** Redis sends the invalidation to the tracking
//! connection and the reply to the writer in the same turn of its event loop, but in no
//! promised order, and the two travel different sockets (and, across hosts, different
//! network paths): when a writer's logout returns, the message may still be on its way,
//! and a cache that answered without waiting for it would be stale for that moment.
//!
//! **The lease.** The store's lease `L` (the key `{P}cache_lease`, in milliseconds; set by
//! the first process that caches, 20 by default) closes that window:
//! - A process answers from its cache only while less than `0.9 L` has passed since it
//!   *sent* the last renewal that Redis answered. A renewal is one round trip on the
//!   tracking connection (`ROLE` and `GET {P}cache_lease`, pipelined); its replies come
//!   after every message Redis queued on that connection before them, and those are
//!   applied first. A server that says it is not a master fails the renewal: a replica
//!   (such as a master a failover demoted) learns of writes late, by replication.
//! - A writer, after Redis answered its logout, authid logout or authentication change,
//!   reads `{P}cache_lease` on the same connection and, when it exists, waits `L` before
//!   the call returns.
//!
//! So when an answer is given after a change's call returned (at time `t`), its renewal was
//! sent after `t - L`, which is after Redis answered the change, so after Redis made it:
//! the renewal's reply came after the change's invalidation message, which was applied
//! before the answer. This holds across hosts and needs no synchronised clocks, only
//! clocks that measure durations alike (the 10% margin covers far more drift than real
//! clocks have). A writer that found no `{P}cache_lease` after its change need not wait:
//! a process registers the key (`SET NX`) on its tracking connection after tracking is on
//! and before it caches anything, so a process that could hold an entry read before the
//! change registered before it too.
//!
//! What it costs: a renewal round trip per process every `0.9 L` at most (only when
//! lookups come), and `L` more for each logout and authentication change once any process
//! caches. What it does not cover: writes of other programs (`redis-cli DEL`, which only
//! Redis's message reaches, shortly after), and restores and imports that overwrite a
//! record (maintenance, which does not wait out the lease).
//!
//! **Idle processes.** Redis queues the messages of every cookie change for each tracking
//! connection until it is read; a process that makes no lookup for a while would let them
//! pile up in Redis's memory. A thread per process and store (the drainer) renews the lease
//! about once a second while no lookup did.
//!
//! **Failures.** Any error on the tracking connection (Redis restarted, the connection
//! reset, a reply that is not what was asked) flushes the cache and drops the connection;
//! lookups then read Redis, uncached, until a new connection is made (at the next lookup
//! after one second, or at once when the breaker closes). After fork() the child makes its
//! own connection: the parent's is never read by two processes.
//!
//! **Failover** (`redis+sentinel://`): the tracking connection is made to the master the
//! sentinels name; when that server dies or is demoted, the next renewal fails and a new
//! connection goes to the new master (the cache emptied). Not covered: a split brain, where
//! the old master still believes it is one while writes go to the new one (Sentinel loses
//! those writers' changes then too).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::{Connection, PushKind, RedisResult, Value};

use super::pool::Pool;
use crate::cache::entry::CachedLookup;
use crate::cache::{Cache, CacheStats};
use crate::error::Result;
use crate::fork::{self, gated};

/// The lease a store gets when the first process caches (ms).
pub(crate) const DEFAULT_LEASE_MS: u64 = 20;
/// The longest lease a process accepts from `{P}cache_lease`, and what a writer waits when
/// the key holds something else than milliseconds (ms).
const MAX_LEASE_MS: u64 = 1000;
/// How long after a failed renewal lookups read Redis uncached before the next try.
const RETRY: Duration = Duration::from_secs(1);
/// How often an idle process reads its tracking connection (the drainer).
const DRAIN_EVERY: Duration = Duration::from_secs(1);

/// One Redis store's cache in this process and what keeps it current.
pub(crate) struct Tracking {
    cache: Cache,
    /// `{P}cookie:`: what every key named by an invalidation message starts with.
    cookie_prefix: String,
    /// `{P}cache_lease`.
    lease_key: String,
    base: Instant,
    /// A call's timeout (`timeout_ms`): the drainer's round trips wait at most this long.
    timeout: Duration,
    /// Until when (ns since `base`) the cache may answer; 0: not now.
    valid_until: AtomicU64,
    link: Mutex<Link>,
}

/// The tracking connection, and who renews.
#[derive(Default)]
struct Link {
    con: Option<Connection>,
    /// The process (`fork::generation`) `con` and `renewing` belong to.
    generation: u64,
    /// A thread of this process is renewing (the others answer uncached meanwhile).
    renewing: bool,
    /// No new connection before then (after a failure).
    retry_at: Option<Instant>,
    /// The last failure, for `stats`.
    problem: Option<String>,
    /// The process (`fork::generation`) whose drainer thread runs, if any.
    drainer: Option<u64>,
}

impl Tracking {
    pub(crate) fn new(capacity_bytes: u64, prefix: &str, timeout: Duration) -> Tracking {
        Tracking {
            cache: Cache::new(capacity_bytes),
            cookie_prefix: format!("{prefix}{}:", crate::config::location::key_words::COOKIE),
            lease_key: lease_key(prefix),
            base: Instant::now(),
            timeout,
            valid_until: AtomicU64::new(0),
            link: Mutex::new(Link {
                generation: fork::generation(),
                ..Link::default()
            }),
        }
    }

    /// The live cookie `value` as of `now`: from the cache while its lease holds (renewed
    /// here when it ran out), else `read` (one GET), cached when no invalidation came
    /// meanwhile. Without a current lease, `read` uncached.
    pub(crate) fn lookup(
        self: &Arc<Self>,
        pool: &Pool,
        value: &str,
        now: u64,
        read: impl FnOnce() -> Result<Option<CachedLookup>>,
    ) -> Result<Option<Arc<CachedLookup>>> {
        // The renewal and the read share the call's deadline.
        pool.within_deadline(|| {
            if !self.current(pool) {
                self.cache.count_miss();
                return Ok(read()?.map(Arc::new));
            }
            if let Some(answer) = self.cache.answer(value, now) {
                return Ok(answer);
            }
            let since = self.cache.invalidations();
            Ok(read()?.map(|entry| self.cache.fill(since, value, entry)))
        })
    }

    /// The cache's answer alone, when its lease holds now (no round trip).
    pub(crate) fn cached(&self, value: &str, now: u64) -> Option<Option<Arc<CachedLookup>>> {
        if self.elapsed_ns() >= self.valid_until.load(Ordering::Acquire) {
            return None;
        }
        self.cache.answer(value, now)
    }

    pub(crate) fn stats(&self) -> CacheStats {
        self.cache.stats()
    }

    /// Why the cache last stopped answering, if it did.
    pub(crate) fn problem(&self) -> Option<String> {
        gated(&self.link, |link| link.problem.clone())
    }

    fn elapsed_ns(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Whether the cache may answer now: its lease holds, or was renewed here.
    fn current(self: &Arc<Self>, pool: &Pool) -> bool {
        if self.elapsed_ns() < self.valid_until.load(Ordering::Acquire) {
            return true;
        }
        let (ok, start_drainer) = self.renew(Some(pool));
        if let Some(generation) = start_drainer {
            self.start_drainer(generation);
        }
        ok
    }

    /// Renews the lease: one round trip on the tracking connection, or (with `pool`) a new
    /// connection. False when another thread is renewing, when a failure was recent, or on
    /// failure (then the cache is flushed and the connection dropped); without `pool`, also
    /// when there is no connection. Also says whether this process needs its drainer.
    fn renew(&self, pool: Option<&Pool>) -> (bool, Option<u64>) {
        let generation = fork::generation();
        let taken = gated(&self.link, |link| {
            if link.generation != generation {
                // Inherited from the parent: its socket is the parent's to read.
                *link = Link {
                    generation,
                    ..Link::default()
                };
            }
            if link.renewing
                || link.retry_at.is_some_and(|at| Instant::now() < at)
                || (pool.is_none() && link.con.is_none())
            {
                return None;
            }
            link.renewing = true;
            Some(link.con.take())
        });
        let Some(con) = taken else {
            return (false, None);
        };
        let renewed = match (con, pool) {
            (Some(mut con), _) => {
                let sent = self.elapsed_ns();
                match (self.lease(pool, &mut con, false), pool) {
                    (Ok(lease), _) => Ok((con, sent, lease)),
                    // A connection that failed: start over on a new one (which flushes).
                    (Err(_), Some(pool)) => self.connect(pool),
                    (Err(problem), None) => Err(problem),
                }
            }
            (None, Some(pool)) => self.connect(pool),
            (None, None) => Err("no tracking connection".to_string()),
        };
        let ok = renewed.is_ok();
        let kept = match renewed {
            Ok((con, sent, lease)) => {
                let lease_ns = lease.as_nanos() as u64 / 10 * 9;
                self.valid_until.store(sent + lease_ns, Ordering::Release);
                Ok(con)
            }
            Err(problem) => {
                self.valid_until.store(0, Ordering::Release);
                self.cache.flush();
                Err(problem)
            }
        };
        let start_drainer = gated(&self.link, |link| {
            if link.generation != generation {
                return None;
            }
            link.renewing = false;
            match kept {
                Ok(con) => {
                    link.con = Some(con);
                    link.retry_at = None;
                }
                Err(problem) => {
                    link.retry_at = Some(Instant::now() + RETRY);
                    link.problem = Some(problem);
                }
            }
            (ok && link.drainer != Some(generation)).then(|| {
                link.drainer = Some(generation);
                generation
            })
        });
        (ok, start_drainer)
    }

    /// Starts this process's drainer: a thread that, about every second while no lookup
    /// renews the lease (the process is idle), renews it once, so that the invalidation
    /// messages for this process do not pile up in Redis (its output buffer for the
    /// connection grows with every cookie change in the store, and nothing else reads it).
    /// It ends with the store, and does not run in a forked child (which starts its own).
    fn start_drainer(self: &Arc<Self>, generation: u64) {
        let weak = Arc::downgrade(self);
        let spawned = std::thread::Builder::new()
            .name("cookiestore-redis-cache".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(DRAIN_EVERY);
                    let Some(tracking) = weak.upgrade() else {
                        return;
                    };
                    let idle =
                        tracking.elapsed_ns() >= tracking.valid_until.load(Ordering::Acquire);
                    if idle {
                        let _ = tracking.renew(None);
                    }
                }
            });
        if spawned.is_err() {
            // No thread to be had: lookups still renew; an idle process's messages wait.
            gated(&self.link, |link| {
                if link.drainer == Some(generation) {
                    link.drainer = None;
                }
            });
        }
    }

    /// A new tracking connection: RESP3, tracking on, the cache flushed, the store's lease
    /// registered and read. Returns it with the time its lease counts from.
    fn connect(&self, pool: &Pool) -> std::result::Result<(Connection, u64, Duration), String> {
        let mut con = pool.connect_resp3().map_err(|e| e.to_string())?;
        let tracking = redis::cmd("CLIENT")
            .arg("TRACKING")
            .arg("ON")
            .arg("BCAST")
            .arg("PREFIX")
            .arg(&self.cookie_prefix)
            .get_packed_command();
        pool.run_on(&mut con, |con| {
            let mut reply = self.exchange(con, &tracking, 1)?;
            reply.pop().map(Value::extract_error).transpose()
        })
        .map_err(|e| format!("turning CLIENT TRACKING on: {e}"))?;
        // Only lookups read from now on are cached.
        self.cache.flush();
        let sent = self.elapsed_ns();
        let lease = self.lease(Some(pool), &mut con, true)?;
        Ok((con, sent, lease))
    }

    /// One renewal round trip: the server's role and the store's lease (registered first
    /// with `register`: `SET NX`), with every message before their replies applied. A server
    /// that is not a master (a failover demoted it: the writes it is told of come late, by
    /// replication) fails the renewal; its replies are not looked at.
    /// With `pool`, within the call's deadline and through the breaker; without (the
    /// drainer), within a call's timeout.
    fn lease(
        &self,
        pool: Option<&Pool>,
        con: &mut Connection,
        register: bool,
    ) -> std::result::Result<Duration, String> {
        let mut renewal = redis::pipe();
        renewal.cmd("ROLE");
        if register {
            renewal
                .cmd("SET")
                .arg(&self.lease_key)
                .arg(DEFAULT_LEASE_MS)
                .arg("NX");
        }
        renewal.cmd("GET").arg(&self.lease_key);
        let packed = renewal.get_packed_pipeline();
        let replies = if register { 3 } else { 2 };
        let mut reply = match pool {
            Some(pool) => pool
                .run_on(con, |con| self.exchange(con, &packed, replies))
                .map_err(|e| e.to_string()),
            None => con
                .set_read_timeout(Some(self.timeout))
                .and_then(|()| con.set_write_timeout(Some(self.timeout)))
                .and_then(|()| self.exchange(con, &packed, replies))
                .map_err(|e| e.to_string()),
        }
        .map_err(|e| format!("renewing the cache's lease: {e}"))?;
        let role = match reply.first() {
            Some(Value::Array(items)) => items.first().and_then(text),
            _ => None,
        };
        if role != Some("master") {
            return Err(format!(
                "the server is not a master (ROLE says {role:?}): the cache answers only from \
                 the master's tracking"
            ));
        }
        if register {
            let set = reply.remove(1);
            set.extract_error()
                .map_err(|e| format!("registering the cache's lease: {e}"))?;
        }
        match reply.get(1).map(lease_ms) {
            Some(Some(ms)) => Ok(Duration::from_millis(ms)),
            _ => Err(format!(
                "{} holds {:?}, not a lease of 1 to {MAX_LEASE_MS} ms",
                self.lease_key,
                reply.get(1)
            )),
        }
    }

    /// Sends `packed` and reads `replies` replies (error replies among them, as values),
    /// applying the invalidation messages that come before them.
    fn exchange(
        &self,
        con: &mut Connection,
        packed: &[u8],
        replies: usize,
    ) -> RedisResult<Vec<Value>> {
        con.send_packed_command(packed)?;
        let mut out = Vec::with_capacity(replies);
        while out.len() < replies {
            match con.recv_response()? {
                Value::Push { kind, data } => self.apply(&kind, data),
                reply => out.push(reply),
            }
        }
        Ok(out)
    }

    /// Applies one push message: an invalidation drops the cookies it names (null: all).
    fn apply(&self, kind: &PushKind, data: Vec<Value>) {
        if *kind != PushKind::Invalidate {
            return;
        }
        match data.into_iter().next() {
            Some(Value::Array(keys)) => {
                let values: Vec<String> = keys
                    .into_iter()
                    .filter_map(|key| match key {
                        Value::BulkString(bytes) => String::from_utf8(bytes).ok(),
                        Value::SimpleString(s) => Some(s),
                        _ => None,
                    })
                    .collect();
                self.cache.invalidate(
                    values
                        .iter()
                        .filter_map(|k| k.strip_prefix(self.cookie_prefix.as_str())),
                );
            }
            // Null (a flush) or anything unexpected: drop everything.
            _ => self.cache.flush(),
        }
    }
}

/// `{P}cache_lease`.
pub(crate) fn lease_key(prefix: &str) -> String {
    format!(
        "{prefix}{}",
        crate::config::location::key_words::CACHE_LEASE
    )
}

/// A reply's text, when it is a string.
fn text(reply: &Value) -> Option<&str> {
    match reply {
        Value::BulkString(bytes) => std::str::from_utf8(bytes).ok(),
        Value::SimpleString(s) => Some(s.as_str()),
        _ => None,
    }
}

/// The lease `reply` holds, when it is 1 to [`MAX_LEASE_MS`] ms.
fn lease_ms(reply: &Value) -> Option<u64> {
    text(reply)?
        .parse::<u64>()
        .ok()
        .filter(|ms| (1..=MAX_LEASE_MS).contains(ms))
}

/// What a writer waits after a change, given what `GET {P}cache_lease` answered: nothing
/// when no process caches (no key), the lease, or the longest lease when the key holds
/// something else.
pub(crate) fn writer_wait(reply: &Value) -> Option<Duration> {
    match reply {
        Value::Nil => None,
        other => Some(Duration::from_millis(
            lease_ms(other).unwrap_or(MAX_LEASE_MS),
        )),
    }
}
