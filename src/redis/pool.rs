//! A small pool of synchronous Redis connections with timeouts and reconnect.
//!
//! A connection is taken from the idle list (or made with the configured timeout), used for
//! one call and put back. A connection that failed at the transport level (reset, timeout,
//! protocol error) is dropped, never reused: the next call makes a new one, so a store
//! handle recovers by itself once Redis is back. Errors are [`Error::Unavailable`] (Redis
//! cannot be reached or answered too late) or [`Error::Redis`] (Redis answered with an
//! error).
//!
//! **fork().** A child made by fork() inherits the idle connections, which are the parent's
//! sockets: a command sent on one by both processes gets the other's answer. The idle list
//! remembers the process it belongs to ([`fork::generation`]); in another process it is
//! emptied before use (closing the child's copies of the descriptors leaves the parent's
//! sockets open), so a child makes connections of its own, and a connection taken before
//! fork() is never put back in the child. The idle lists are touched only under the shared
//! side of [`FORK_GATE`], which the fork() prepare handler takes exclusively: no idle list
//! is locked when a process forks.

use std::sync::{Mutex, RwLock, RwLockWriteGuard};
use std::time::Duration;

use redis::{Client, Connection, ConnectionLike, ErrorKind, RedisError, RedisResult};

use crate::error::{Error, Result};
use crate::fork;
use crate::location::RedisLocation;

/// Idle connections kept per store (more may be open while in use).
const MAX_IDLE: usize = 16;

/// Held shared while an idle list is locked; exclusively across fork() (`fork.rs`).
static FORK_GATE: RwLock<()> = RwLock::new(());

/// The gate, held exclusively: no idle list is in use until it is dropped.
pub(crate) fn fork_gate_exclusive() -> RwLockWriteGuard<'static, ()> {
    FORK_GATE.write().unwrap_or_else(|e| e.into_inner())
}

pub(crate) struct Pool {
    client: Client,
    idle: Mutex<Idle>,
    timeout: Duration,
    /// Where: its Display masks the password, and it takes the URL and password out of
    /// error texts that would echo them.
    location: RedisLocation,
}

/// The idle connections, and the process (generation, `fork.rs`) they were made in.
struct Idle {
    generation: u64,
    connections: Vec<Connection>,
}

impl Idle {
    /// The list of this process: one inherited from the parent is emptied first.
    fn here(&mut self) -> &mut Vec<Connection> {
        let now = fork::generation();
        if self.generation != now {
            self.connections.clear();
            self.generation = now;
        }
        &mut self.connections
    }
}

impl Pool {
    pub(crate) fn new(client: Client, timeout: Duration, location: RedisLocation) -> Pool {
        fork::install_hooks();
        Pool {
            client,
            idle: Mutex::new(Idle {
                generation: fork::generation(),
                connections: Vec::new(),
            }),
            timeout,
            location,
        }
    }

    /// An idle connection of this process, if any.
    fn take(&self) -> Option<Connection> {
        let _gate = FORK_GATE.read().unwrap_or_else(|e| e.into_inner());
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        idle.here().pop()
    }

    pub(crate) fn location(&self) -> &RedisLocation {
        &self.location
    }

    /// A new connection with the configured connect, read and write timeouts.
    pub(crate) fn connect(&self) -> Result<Connection> {
        let con = self
            .client
            .get_connection_with_timeout(self.timeout)
            .map_err(|e| self.error(e))?;
        con.set_read_timeout(Some(self.timeout))
            .map_err(|e| self.error(e))?;
        con.set_write_timeout(Some(self.timeout))
            .map_err(|e| self.error(e))?;
        Ok(con)
    }

    /// Runs `f` on a pooled connection. When a reused connection turns out to be broken
    /// before Redis could have answered (reset, closed: typically Redis restarted since it
    /// was last used), `f` runs once more on a new connection; a timeout is never retried
    /// (the command may have run).
    pub(crate) fn run<T>(&self, mut f: impl FnMut(&mut Connection) -> RedisResult<T>) -> Result<T> {
        let generation = fork::generation();
        if let Some(mut con) = self.take() {
            match f(&mut con) {
                Ok(out) => {
                    self.put_back(con, generation);
                    return Ok(out);
                }
                Err(e) if is_stale(&e) => {} // dropped; a fresh connection below
                Err(e) => {
                    if !is_transport(&e) {
                        self.put_back(con, generation);
                    }
                    return Err(self.error(e));
                }
            }
        }
        let mut con = self.connect()?;
        match f(&mut con) {
            Ok(out) => {
                self.put_back(con, generation);
                Ok(out)
            }
            Err(e) => {
                if !is_transport(&e) {
                    self.put_back(con, generation);
                }
                Err(self.error(e))
            }
        }
    }

    /// Keeps `con`, taken or made in process `generation`, for the next call: unless it
    /// is closed, or this is another process now (fork() was called while it was in use).
    fn put_back(&self, con: Connection, generation: u64) {
        if !con.is_open() || generation != fork::generation() {
            return;
        }
        let _gate = FORK_GATE.read().unwrap_or_else(|e| e.into_inner());
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let idle = idle.here();
        if idle.len() < MAX_IDLE {
            idle.push(con);
        }
    }

    /// The crate's error for a Redis error.
    pub(crate) fn error(&self, e: RedisError) -> Error {
        unavailable_or_redis(&self.location, self.timeout, e)
    }
}

/// Whether the error means the connection can no longer be used.
fn is_transport(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_unrecoverable_error()
        || matches!(e.kind(), ErrorKind::Parse)
}

/// A reused connection found closed before any answer: safe to retry on a new one.
fn is_stale(e: &RedisError) -> bool {
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
