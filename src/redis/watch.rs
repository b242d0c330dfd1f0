//! A [`Watcher`](crate::Watcher)'s loop on Redis: it polls the stream, then waits for a
//! PUBLISH on the feed's channel (or the interval) before polling again.
//!
//! Nothing in it waits for Redis longer than the store's timeout: each poll is a store call
//! (one deadline), and the subscription reads with the interval as its timeout. When Redis
//! cannot be reached, the failure is reported once ([`WatchEvent::Failed`](crate::WatchEvent)),
//! and the loop then waits, without touching the network, until the store's circuit breaker
//! closes (its probe found Redis back: `probe.rs`); it then subscribes again and the
//! subscriber catches up from its position (or reports a miss).
//!
//! A subscription closed under it (by a proxy's idle timeout, `CLIENT KILL`, Redis's
//! output buffer limit) is no outage: the loop subscribes again at once, without a report,
//! and its first poll catches up. Only when that new connection cannot be made is the
//! failure reported (and the breaker opened). A subscription closed within
//! [`QUIET_RECONNECT`] of being made is reported as a failure, so that a server that keeps
//! closing it is waited for, not reconnected to in a loop.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::RedisBackend;
use super::errors::is_stale;
use crate::error::{Error, Result};
use crate::feed::revocation::Revocations;

/// How long a subscription must have lasted for its loss to be made good at once, without
/// a report.
const QUIET_RECONNECT: Duration = Duration::from_secs(1);

/// Runs until `stop` is set; `deliver` gets each poll's outcome.
pub(crate) fn run(
    redis: &RedisBackend,
    poll: &mut dyn FnMut() -> Result<Revocations>,
    stop: &AtomicBool,
    interval: Duration,
    deliver: &mut dyn FnMut(Result<Revocations>),
) {
    let channel = redis.stream_key();
    let interval = interval.max(Duration::from_millis(1));
    // An outage (or a refusal of the Redis) is reported once, at its first failure.
    let mut reported = false;
    while !stop.load(Ordering::Acquire) {
        if !redis.pool.is_available() {
            // Calls are refused at once meanwhile: wait for the breaker's probe.
            if !reported {
                report(redis.pool.refusal(), &mut reported, deliver);
            }
            std::thread::park_timeout(interval);
            continue;
        }
        let mut con = match redis.pool.connect() {
            Ok(con) => con,
            Err(e) => {
                report(e, &mut reported, deliver);
                std::thread::park_timeout(interval);
                continue;
            }
        };
        let mut pubsub = con.as_pubsub();
        if let Err(e) = pubsub
            .subscribe(&channel)
            .and_then(|()| pubsub.set_read_timeout(Some(interval)))
        {
            report(redis.pool.failed(e), &mut reported, deliver);
            std::thread::park_timeout(interval);
            continue;
        }
        let subscribed = Instant::now();
        // Subscribed first, then polled: nothing published from here on is missed.
        while !stop.load(Ordering::Acquire) {
            match poll() {
                Ok(found) => {
                    reported = false;
                    deliver(Ok(found));
                }
                Err(e @ Error::Unavailable { .. }) => {
                    report(e, &mut reported, deliver);
                    break; // the subscription waits for Redis too
                }
                Err(e) if lasting(&e) => report(e, &mut reported, deliver),
                Err(e) => deliver(Err(e)),
            }
            match pubsub.get_message() {
                Ok(_) => {}
                Err(e) if e.is_timeout() => {}
                // Closed under it: a new subscription at once, which catches up.
                Err(e) if is_stale(&e) && subscribed.elapsed() >= QUIET_RECONNECT => break,
                Err(e) => {
                    report(redis.pool.failed(e), &mut reported, deliver);
                    break; // a new connection
                }
            }
        }
    }
}

/// Whether `e` lasts until something changes outside (Redis comes back, a setting is fixed):
/// reported once, not at every poll.
fn lasting(e: &Error) -> bool {
    matches!(
        e,
        Error::Unavailable { .. }
            | Error::RedisSetting { .. }
            | Error::RedisCredentials { .. }
            | Error::NewerStore { .. }
    )
}

/// Delivers `e`, unless it lasts and was reported already.
fn report(e: Error, reported: &mut bool, deliver: &mut dyn FnMut(Result<Revocations>)) {
    let lasting = lasting(&e);
    if !(lasting && *reported) {
        deliver(Err(e));
    }
    *reported |= lasting;
}
