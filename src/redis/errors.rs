//! What a redis-rs error means for a store call: whether the connection can still be used,
//! whether Redis could not be reached (which opens the breaker, `breaker.rs`), whether a reused
//! connection was merely stale, and the crate's error for it.

use std::time::Duration;

use redis::{ErrorKind, RedisError};

use crate::config::location::RedisLocation;
use crate::error::Error;

/// Whether the error means the connection can no longer be used.
pub(super) fn is_transport(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_unrecoverable_error()
        || matches!(e.kind(), ErrorKind::Parse)
}

/// Whether Redis could not be reached or did not answer in time (not an answer).
pub(super) fn is_unreachable(e: &RedisError) -> bool {
    is_transport(e) || e.is_connection_refusal()
}

/// A reused connection found closed before any answer: safe to retry on a new one.
pub(super) fn is_stale(e: &RedisError) -> bool {
    !e.is_timeout() && e.is_connection_dropped()
}

pub(crate) fn unavailable_or_redis(
    location: &RedisLocation,
    timeout: Duration,
    e: RedisError,
) -> Error {
    let text = location.sanitize(&e.to_string());
    let location = location.masked();
    let busy = [
        "LOADING",
        "MASTERDOWN",
        "READONLY",
        "TRYAGAIN",
        "CLUSTERDOWN",
        "BUSY",
    ]
    .iter()
    .any(|code| e.code() == Some(code));
    if e.is_timeout() {
        Error::Unavailable {
            location: location.to_string(),
            problem: format!("no answer within the timeout of {timeout:?} ({text})"),
        }
    } else if is_transport(&e) || e.is_connection_refusal() || busy {
        Error::Unavailable {
            location: location.to_string(),
            problem: text,
        }
    } else {
        Error::Redis {
            location: location.to_string(),
            problem: text,
        }
    }
}
