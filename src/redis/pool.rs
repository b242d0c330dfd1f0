//! A small pool of synchronous Redis connections, a deadline per store call, and a circuit
//! breaker.
//!
//! **Connections.** A connection is taken from the idle list (or made), used for one round
//! trip and put back. A connection that failed at the transport level (reset, timeout,
//! protocol error) is dropped, never reused. Errors are [`Error::Unavailable`] (Redis cannot
//! be reached or answered too late) or [`Error::Redis`] (Redis answered with an error).
//!
//! **Deadline.** A store call waits for Redis at most `timeout_ms` in total: connecting, the
//! retry on a dead pooled connection and every round trip of the call share one deadline
//! ([`Pool::within_deadline`]; a round trip outside such a scope gets one of its own), and
//! each attempt's socket read and write timeouts are what is left of it. Calls that walk
//! every key (SCAN in batches) start a new deadline at each batch
//! ([`Pool::restart_deadline`]), so that a large store can still be walked.
//!
//! **Circuit breaker.** When a round trip fails because Redis could not be reached or did
//! not answer in time (not when Redis answered with an error), the breaker opens: every
//! call of the handle (and of its clones) is refused at once with [`Error::Unavailable`],
//! without touching the network, and one background thread (the probe) tries Redis with a
//! fresh connection and a `PING` after 100 ms, then after waits doubling up to 2 s
//! ([`PROBE_MIN`], [`PROBE_MAX`]), each try bounded by the timeout. The probe's successful
//! `PING` is the half-open trial: it closes the breaker (its connection is kept for the next
//! call), and the next call that fails opens it again. A trial made by a probe rather than
//! by a caller means that no caller ever waits for a Redis that is still gone: a hung Redis
//! costs the first call one timeout and the calls after it nothing, until it answers again.
//! The probe ends when the breaker closes, or when the pool is dropped (it is woken, and
//! ends after the `PING` in progress, if any, without being waited for).
//!
//! **fork().** A child made by fork() inherits the idle connections, which are the parent's
//! sockets: a command sent on one by both processes gets the other's answer. The idle list
//! remembers the process it belongs to ([`fork::generation`]); in another process it is
//! emptied before use (closing the child's copies of the descriptors leaves the parent's
//! sockets open), so a child makes connections of its own, and a connection taken before
//! fork() is never put back in the child. The breaker remembers the process it was opened
//! in: the probe thread does not exist in a child, so there the breaker counts as closed,
//! and a failure in the child opens it with a probe of the child's own. The idle list and
//! the breaker's record are locked only under the shared side of the pools' gate
//! ([`fork::gated`]), which the fork() prepare handler takes exclusively: neither is locked
//! when a process forks.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use redis::{Client, Connection, ConnectionLike, RedisError, RedisResult};

use super::errors::{is_stale, is_transport, is_unreachable, unavailable_or_redis};
use crate::config::location::RedisLocation;
use crate::error::{Error, Result};
use crate::fork::{self, gated};

/// Idle connections kept per store (more may be open while in use).
const MAX_IDLE: usize = 16;

/// The probe's first wait after the breaker opens.
pub(crate) const PROBE_MIN: Duration = Duration::from_millis(100);
/// The probe's longest wait between two tries (the wait doubles after each failed try).
pub(crate) const PROBE_MAX: Duration = Duration::from_secs(2);

thread_local! {
    /// The deadline of the store call running on this thread, if it set one.
    static DEADLINE: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// The deadline of the call on this thread, or one `timeout` from now.
fn deadline(timeout: Duration) -> Instant {
    DEADLINE
        .with(Cell::get)
        .unwrap_or_else(|| Instant::now() + timeout)
}

/// Puts the previous deadline back when a scope ends (also by a panic).
struct DeadlineScope(Option<Option<Instant>>);

impl Drop for DeadlineScope {
    fn drop(&mut self) {
        if let Some(previous) = self.0 {
            DEADLINE.with(|d| d.set(previous));
        }
    }
}

/// What the health of a store handle is made of (see [`crate::Health`]).
#[derive(Debug, Clone, Default)]
pub(crate) struct Record {
    pub(crate) outages: u64,
    pub(crate) since: Option<SystemTime>,
    pub(crate) until: Option<SystemTime>,
    pub(crate) problem: Option<String>,
    pub(crate) refused: u64,
    /// Redis cannot be reached (the breaker is open in this process).
    pub(crate) open: bool,
    /// The store refuses this Redis (a lazy open's checks failed).
    pub(crate) refusing: bool,
}

pub(crate) struct Pool {
    shared: Arc<Shared>,
}

struct Shared {
    client: Client,
    idle: Mutex<Idle>,
    timeout: Duration,
    /// Where: its Display masks the password, and it takes the URL and password out of
    /// error texts that would echo them.
    location: RedisLocation,
    breaker: Breaker,
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

struct Breaker {
    /// The generation + 1 of the process in which the breaker is open (a probe of that
    /// process runs); 0 when closed.
    open_in: AtomicU64,
    /// Whether failures open it: false during an eager open, whose errors go to the opener.
    armed: AtomicBool,
    /// Calls refused at once during the current (or last) outage.
    refused: AtomicU64,
    state: Mutex<BreakerState>,
}

#[derive(Default)]
struct BreakerState {
    /// The process this record belongs to.
    generation: u64,
    outages: u64,
    /// When the current (or last) outage started and ended.
    since: Option<SystemTime>,
    until: Option<SystemTime>,
    /// The first failure of the current (or last) outage.
    problem: Option<String>,
    /// The latest failure of the probe.
    latest: Option<String>,
    /// The store refuses this Redis (see `policy.rs`).
    refusing: bool,
    /// The probe thread, woken when the pool is dropped.
    probe: Option<std::thread::Thread>,
}

impl BreakerState {
    /// The record of this process: one inherited from the parent starts over (its probe
    /// thread does not exist here).
    fn here(&mut self) -> &mut BreakerState {
        let now = fork::generation();
        if self.generation != now {
            *self = BreakerState {
                generation: now,
                ..BreakerState::default()
            };
        }
        self
    }

    fn ongoing(&self) -> bool {
        self.since.is_some() && self.until.is_none()
    }

    /// Starts an outage unless one is going on; records `problem` as its cause.
    fn begin(&mut self, problem: &str, refused: &AtomicU64) {
        if !self.ongoing() {
            self.outages += 1;
            self.since = Some(SystemTime::now());
            self.until = None;
            self.problem = Some(problem.to_string());
            self.latest = None;
            refused.store(0, Ordering::Relaxed);
        }
    }
}

impl Breaker {
    fn is_open(&self) -> bool {
        let open_in = self.open_in.load(Ordering::Acquire);
        open_in != 0 && open_in == fork::generation() + 1
    }
}

impl Pool {
    /// A pool whose failures open the breaker only once [`Self::arm`] is called.
    pub(crate) fn new(client: Client, timeout: Duration, location: RedisLocation) -> Pool {
        fork::install_hooks();
        Pool {
            shared: Arc::new(Shared {
                client,
                idle: Mutex::new(Idle {
                    generation: fork::generation(),
                    connections: Vec::new(),
                }),
                timeout,
                location,
                breaker: Breaker {
                    open_in: AtomicU64::new(0),
                    armed: AtomicBool::new(false),
                    refused: AtomicU64::new(0),
                    state: Mutex::new(BreakerState {
                        generation: fork::generation(),
                        ..BreakerState::default()
                    }),
                },
            }),
        }
    }

    /// From now on, a failure to reach Redis opens the breaker.
    pub(crate) fn arm(&self) {
        self.shared.breaker.armed.store(true, Ordering::Release);
    }

    pub(crate) fn location(&self) -> &RedisLocation {
        &self.shared.location
    }

    /// Runs `f` as one store call: every round trip in it shares one deadline, `timeout`
    /// from now (a call already running on this thread keeps its own).
    pub(crate) fn within_deadline<T>(&self, f: impl FnOnce() -> T) -> T {
        let _scope = DEADLINE.with(|d| {
            if d.get().is_some() {
                DeadlineScope(None)
            } else {
                d.set(Some(Instant::now() + self.shared.timeout));
                DeadlineScope(Some(None))
            }
        });
        f()
    }

    /// In a call's scope, starts its deadline anew: for walks, once per batch.
    pub(crate) fn restart_deadline(&self) {
        DEADLINE.with(|d| {
            if d.get().is_some() {
                d.set(Some(Instant::now() + self.shared.timeout));
            }
        });
    }

    /// Runs `f` on a pooled connection, within the call's deadline. When a reused
    /// connection turns out to be broken before Redis could have answered (reset, closed:
    /// typically Redis restarted since it was last used), `f` runs once more on a new
    /// connection if time is left; a timeout is never retried (the command may have run).
    /// Refused at once while the breaker is open.
    pub(crate) fn run<T>(&self, mut f: impl FnMut(&mut Connection) -> RedisResult<T>) -> Result<T> {
        let s = &self.shared;
        if s.breaker.is_open() {
            return Err(s.refusal());
        }
        let deadline = deadline(s.timeout);
        let generation = fork::generation();
        if let Some(mut con) = s.take() {
            if let Err(e) = s.limit(&con, deadline) {
                s.put_back(con, generation);
                return Err(e);
            }
            match f(&mut con) {
                Ok(out) => {
                    s.put_back(con, generation);
                    return Ok(out);
                }
                Err(e) if is_stale(&e) && left(deadline).is_some() => {} // a fresh one below
                Err(e) => {
                    if !is_transport(&e) {
                        s.put_back(con, generation);
                    }
                    return Err(s.failed(e));
                }
            }
        }
        let mut con = s.connect_by(deadline)?;
        match f(&mut con) {
            Ok(out) => {
                s.put_back(con, generation);
                Ok(out)
            }
            Err(e) => {
                if !is_transport(&e) {
                    s.put_back(con, generation);
                }
                Err(s.failed(e))
            }
        }
    }

    /// A new connection of its own (not pooled: the watcher's subscription), with read and
    /// write timeouts of `timeout`. Refused at once while the breaker is open; a failure
    /// opens it.
    pub(crate) fn connect(&self) -> Result<Connection> {
        let s = &self.shared;
        if s.breaker.is_open() {
            return Err(s.refusal());
        }
        s.connect_by(Instant::now() + s.timeout)
    }

    /// Whether calls reach Redis now (the breaker is closed in this process).
    pub(crate) fn is_available(&self) -> bool {
        !self.shared.breaker.is_open()
    }

    /// The error of a call refused by the open breaker.
    pub(crate) fn refusal(&self) -> Error {
        self.shared.refusal()
    }

    /// The crate's error for a failed round trip outside [`Self::run`] (the watcher's
    /// subscription): a failure to reach Redis opens the breaker.
    pub(crate) fn failed(&self, e: RedisError) -> Error {
        self.shared.failed(e)
    }

    /// The store refuses this Redis (`problem`) or no longer does (`None`): an outage for
    /// [`Self::record`], without the breaker.
    pub(crate) fn set_refusing(&self, problem: Option<&str>) {
        let b = &self.shared.breaker;
        gated(&b.state, |st| {
            let st = st.here();
            match problem {
                Some(problem) => {
                    st.begin(problem, &b.refused);
                    st.refusing = true;
                }
                None => {
                    st.refusing = false;
                    if st.ongoing() && !b.is_open() {
                        st.until = Some(SystemTime::now());
                    }
                }
            }
        });
    }

    /// A call refused without a round trip (the store refuses this Redis): counted.
    pub(crate) fn count_refused(&self) {
        self.shared.breaker.refused.fetch_add(1, Ordering::Relaxed);
    }

    /// The health record of this handle, in this process.
    pub(crate) fn record(&self) -> Record {
        let b = &self.shared.breaker;
        let open = b.is_open();
        gated(&b.state, |st| {
            let st = st.here();
            Record {
                outages: st.outages,
                since: st.since,
                until: st.until,
                problem: st.problem.clone(),
                refused: if st.since.is_some() {
                    b.refused.load(Ordering::Relaxed)
                } else {
                    0
                },
                open,
                refusing: st.refusing,
            }
        })
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        // Wakes the probe, if any: it finds the pool gone and ends.
        let probe = gated(&self.shared.breaker.state, |st| st.here().probe.take());
        if let Some(probe) = probe {
            probe.unpark();
        }
    }
}

/// What is left until `deadline`, if anything.
fn left(deadline: Instant) -> Option<Duration> {
    let left = deadline.saturating_duration_since(Instant::now());
    (!left.is_zero()).then_some(left)
}

impl Shared {
    /// An idle connection of this process, if any.
    fn take(&self) -> Option<Connection> {
        gated(&self.idle, |idle| idle.here().pop())
    }

    /// Keeps `con`, taken or made in process `generation`, for the next call: unless it
    /// is closed, or this is another process now (fork() was called while it was in use).
    fn put_back(&self, con: Connection, generation: u64) {
        if !con.is_open() || generation != fork::generation() {
            return;
        }
        gated(&self.idle, |idle| {
            let idle = idle.here();
            if idle.len() < MAX_IDLE {
                idle.push(con);
            }
        });
    }

    /// The error of a call whose deadline passed before its next round trip: Redis answered
    /// every earlier one, so the breaker stays as it is.
    fn out_of_time(&self) -> Error {
        Error::Unavailable {
            location: self.location.masked().to_string(),
            problem: format!(
                "the call's round trips took longer than the timeout of {:?} in total",
                self.timeout
            ),
        }
    }

    /// Gives `con` read and write timeouts of what is left until `deadline`.
    fn limit(self: &Arc<Shared>, con: &Connection, deadline: Instant) -> Result<()> {
        let left = left(deadline).ok_or_else(|| self.out_of_time())?;
        con.set_read_timeout(Some(left))
            .and_then(|()| con.set_write_timeout(Some(left)))
            .map_err(|e| self.failed(e))
    }

    /// A new connection made by `deadline`, with read and write timeouts of what is left.
    ///
    /// redis-rs bounds the TCP connect by the timeout it is given, but not the handshake
    /// after it in total: the handshake is one pipeline (`CLIENT SETINFO` twice, `AUTH` with
    /// a password, `SELECT` for a database other than 0), and each of its replies is read
    /// with the whole remaining time, a read that times out not ending the pipeline. A hung
    /// Redis (one that accepts connections and answers nothing) then cost 2 to 4 timeouts,
    /// and a host name that does not resolve has no bound at all. So the connection is
    /// made on a thread of its own and waited for until `deadline` only; one that comes
    /// later is dropped by that thread.
    fn connect_by(self: &Arc<Shared>, deadline: Instant) -> Result<Connection> {
        let left = left(deadline).ok_or_else(|| self.out_of_time())?;
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let client = self.client.clone();
        let spawned = std::thread::Builder::new()
            .name("cookiestore-redis-connect".into())
            .spawn(move || {
                let _ = tx.send(client.get_connection_with_timeout(left));
            });
        let made = match spawned {
            Ok(_) => match rx.recv_timeout(left) {
                Ok(made) => made,
                Err(_) => Err(RedisError::from(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "connecting and the handshake took longer than the timeout",
                ))),
            },
            // No thread to be had: connect here, bounded as redis-rs bounds it.
            Err(_) => self.client.get_connection_with_timeout(left),
        };
        let con = made.map_err(|e| self.failed(e))?;
        self.limit(&con, deadline)?;
        Ok(con)
    }

    /// The crate's error for `e`; when Redis could not be reached or did not answer in
    /// time, the breaker opens.
    fn failed(self: &Arc<Shared>, e: RedisError) -> Error {
        let unreachable = is_unreachable(&e);
        let err = unavailable_or_redis(&self.location, self.timeout, e);
        if unreachable && let Error::Unavailable { problem, .. } = &err {
            self.open_breaker(problem);
        }
        err
    }

    /// Opens the breaker (unless it is open, or not armed) and starts the probe.
    fn open_breaker(self: &Arc<Shared>, problem: &str) {
        let b = &self.breaker;
        if !b.armed.load(Ordering::Acquire) {
            return;
        }
        let generation = fork::generation();
        let opened = gated(&b.state, |st| {
            let st = st.here();
            if b.is_open() {
                st.latest = Some(problem.to_string());
                return false;
            }
            st.begin(problem, &b.refused);
            b.open_in.store(generation + 1, Ordering::Release);
            true
        });
        if !opened {
            return;
        }
        // The connections kept were made to a Redis that failed: none is reused.
        gated(&self.idle, |idle| idle.here().clear());
        let weak = Arc::downgrade(self);
        let spawned = std::thread::Builder::new()
            .name("cookiestore-probe".into())
            .spawn(move || probe(weak, generation));
        match spawned {
            // Not joined: it ends by itself (see the module docs).
            Ok(thread) => gated(&b.state, |st| {
                st.here().probe = Some(thread.thread().clone())
            }),
            Err(e) => self.no_probe(&format!("cannot start a thread: {e}")),
        }
    }

    /// Closes the breaker: Redis answered the probe.
    fn close_breaker(&self) {
        let b = &self.breaker;
        gated(&b.state, |st| {
            let st = st.here();
            b.open_in.store(0, Ordering::Release);
            st.probe = None;
            if !st.refusing {
                st.until = Some(SystemTime::now());
            }
        });
    }

    /// One try of the probe: a new connection and a PING, within the timeout.
    fn ping(&self) -> std::result::Result<Connection, String> {
        let deadline = Instant::now() + self.timeout;
        let mut con = self
            .client
            .get_connection_with_timeout(self.timeout)
            .map_err(|e| self.describe(e))?;
        let left = left(deadline)
            .ok_or_else(|| format!("no answer within the timeout of {:?}", self.timeout))?;
        con.set_read_timeout(Some(left))
            .and_then(|()| con.set_write_timeout(Some(left)))
            .and_then(|()| redis::cmd("PING").query::<()>(&mut con))
            .map_err(|e| self.describe(e))?;
        Ok(con)
    }

    /// The problem text of `e`, as in [`Error::Unavailable`].
    fn describe(&self, e: RedisError) -> String {
        match unavailable_or_redis(&self.location, self.timeout, e) {
            Error::Unavailable { problem, .. } | Error::Redis { problem, .. } => problem,
            other => other.to_string(),
        }
    }

    /// The breaker cannot probe: it closes again (the outage is over for the record), and
    /// calls try Redis themselves.
    fn no_probe(&self, why: &str) {
        let b = &self.breaker;
        gated(&b.state, |st| {
            let st = st.here();
            b.open_in.store(0, Ordering::Release);
            st.latest = Some(format!("no probe: {why}"));
            if !st.refusing {
                st.until = Some(SystemTime::now());
            }
        });
    }

    /// The error of a call refused by the open breaker, with the outage's record.
    fn refusal(&self) -> Error {
        let b = &self.breaker;
        let n = b.refused.fetch_add(1, Ordering::Relaxed) + 1;
        let (since, problem, latest) = gated(&b.state, |st| {
            let st = st.here();
            (st.since, st.problem.clone(), st.latest.clone())
        });
        let since = since.map_or_else(|| "a moment ago".to_string(), format_time);
        let mut text = format!(
            "down since {since}, after: {}",
            problem.as_deref().unwrap_or("a failure")
        );
        if let Some(latest) = latest {
            text.push_str(&format!("; latest try: {latest}"));
        }
        text.push_str(&format!(
            " ({n} calls refused at once meanwhile; retrying in the background)"
        ));
        Error::Unavailable {
            location: self.location.masked().to_string(),
            problem: text,
        }
    }
}

/// The probe: tries Redis after waits doubling from [`PROBE_MIN`] to [`PROBE_MAX`], and
/// closes the breaker at the first `PING` answered. Ends then, or when the pool is gone.
fn probe(pool: Weak<Shared>, generation: u64) {
    let mut wait = PROBE_MIN;
    loop {
        let until = Instant::now() + wait;
        while let Some(left) = left(until) {
            std::thread::park_timeout(left);
            if pool.strong_count() == 0 {
                return;
            }
        }
        let Some(shared) = pool.upgrade() else {
            return;
        };
        if shared.breaker.open_in.load(Ordering::Acquire) != generation + 1 {
            return; // closed meanwhile (the probe's record was replaced)
        }
        match shared.ping() {
            Ok(con) => {
                shared.put_back(con, generation);
                shared.close_breaker();
                return;
            }
            Err(problem) => {
                gated(&shared.breaker.state, |st| st.here().latest = Some(problem));
            }
        }
        drop(shared);
        wait = (wait * 2).min(PROBE_MAX);
    }
}

/// `t` as RFC 3339 (UTC).
fn format_time(t: SystemTime) -> String {
    let ns = t
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    let text = crate::clock::rfc3339::format_rfc3339_ns(ns);
    // Milliseconds are enough for a message.
    match text.split_once('.') {
        Some((secs, _)) => format!("{secs}.{:03}Z", (ns / 1_000_000) % 1000),
        None => text,
    }
}
