//! A [`Watcher`](crate::Watcher)'s loop on Redis: it polls the stream, then waits for a
//! PUBLISH on the feed's channel (or the interval) before polling again. A lost connection
//! is reported once as a failure and made again; the subscriber then catches up from its
//! position.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::RedisBackend;
use crate::error::Result;
use crate::revocations::{Revocations, Subscriber};

/// Runs until `stop` is set; `deliver` gets each poll's outcome.
pub(crate) fn run(
    redis: &RedisBackend,
    subscriber: &mut Subscriber,
    stop: &AtomicBool,
    interval: Duration,
    deliver: &mut dyn FnMut(Result<Revocations>),
) {
    let channel = redis.stream_key();
    let interval = interval.max(Duration::from_millis(1));
    while !stop.load(Ordering::Acquire) {
        let mut con = match redis.pool.connect() {
            Ok(con) => con,
            Err(e) => {
                deliver(Err(e));
                std::thread::park_timeout(interval);
                continue;
            }
        };
        let mut pubsub = con.as_pubsub();
        if let Err(e) = pubsub
            .subscribe(&channel)
            .and_then(|()| pubsub.set_read_timeout(Some(interval)))
        {
            deliver(Err(redis.pool.error(e)));
            std::thread::park_timeout(interval);
            continue;
        }
        // Subscribed first, then polled: nothing published from here on is missed.
        while !stop.load(Ordering::Acquire) {
            deliver(subscriber.poll());
            match pubsub.get_message() {
                Ok(_) => {}
                Err(e) if e.is_timeout() => {}
                Err(e) => {
                    deliver(Err(redis.pool.error(e)));
                    break; // a new connection
                }
            }
        }
    }
}
