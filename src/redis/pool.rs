//! A small pool of synchronous Redis connections, used within each store call's deadline
//! (`deadline.rs`), behind a circuit breaker (`breaker.rs`, with its probe: `probe.rs`).
//!
//! **Connections.** A connection is taken from the idle list (or made), used for one round
//! trip and put back. A connection that failed at the transport level (reset, timeout,
//! protocol error) is dropped, never reused. Errors are [`Error::Unavailable`] (Redis cannot
//! be reached or answered too late) or [`Error::Redis`] (Redis answered with an error).
//! Each attempt's socket read and write timeouts are what is left of the call's deadline.
//! A failure to reach Redis opens the breaker (once armed); while it is open, calls are
//! refused at once. A new connection is made with the client of `credentials.rs`, made
//! again when a credential file changed since the last one.
//!
//! **Sentinel.** For a `redis+sentinel://` location every new connection (a call's, the
//! watcher's, the probe's) asks the sentinels for the master first ([`master`]), within the
//! same deadline, with the sentinels' own credentials when given (`sentinel_user`,
//! `sentinel_password_file`, `sentinel_password_env`). For `rediss+sentinel://` (the client's
//! address is `rediss://`) the sentinels and the master are reached over TLS with the
//! client's TLS settings ([`at`]); each one's certificate must name the host connected to
//! (for the master, the address the sentinels give).
//!
//! **A demoted master.** A write answered `READONLY` (the server was demoted while this
//! connection stayed open: a Sentinel failover, or one behind a DNS name, a load balancer or
//! a Kubernetes Service, which send new connections to the new master while old ones stay
//! with the old) drops the idle connections and runs once more on a new connection, if time
//! is left: to the master the sentinels name now, or wherever the address leads now. The
//! refused command did not run. A server that is a replica for good (a store pointed at
//! one) answers the second try `READONLY` too, which is the call's error, saying so.
//!
//! **fork().** A child made by fork() inherits the idle connections, which are the parent's
//! sockets: a command sent on one by both processes gets the other's answer. The idle list
//! remembers the process it belongs to ([`fork::generation`]); in another process it is
//! emptied before use (closing the child's copies of the descriptors leaves the parent's
//! sockets open), so a child makes connections of its own, and a connection taken before
//! fork() is never put back in the child. The idle list is locked only under the shared side
//! of the pools' gate ([`fork::gated`]), which the fork() prepare handler takes
//! exclusively: it is never locked when a process forks.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::{
    Client, Connection, ConnectionAddr, ConnectionInfo, ConnectionLike, IntoConnectionInfo,
    ProtocolVersion, RedisError, RedisResult,
};

use super::breaker::{Breaker, Record};
use super::credentials::Credentials;
use super::deadline::{self, left};
use super::errors::{
    is_auth_failure, is_readonly, is_stale, is_tls_failure, is_transport, is_unreachable,
};
use super::probe::{self, Probed};
use crate::config::location::{RedisLocation, Sentinels};
use crate::error::{Error, Result};
use crate::fork::{self, gated};

/// Idle connections kept per store (more may be open while in use).
const MAX_IDLE: usize = 16;

pub(crate) struct Pool {
    shared: Arc<Shared>,
}

struct Shared {
    /// The client new connections are made with, made again when its credential files
    /// change (`credentials.rs`); it also cleans error texts of the passwords.
    credentials: Credentials,
    idle: Mutex<Idle>,
    timeout: Duration,
    /// Where: its Display masks the password.
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

impl Pool {
    /// A pool whose failures open the breaker only once [`Self::arm`] is called.
    pub(super) fn new(
        credentials: Credentials,
        timeout: Duration,
        location: RedisLocation,
    ) -> Pool {
        fork::install_hooks();
        Pool {
            shared: Arc::new(Shared {
                credentials,
                idle: Mutex::new(Idle {
                    generation: fork::generation(),
                    connections: Vec::new(),
                }),
                timeout,
                location,
                breaker: Breaker::new(),
            }),
        }
    }

    /// From now on, a failure to reach Redis opens the breaker.
    pub(crate) fn arm(&self) {
        self.shared.breaker.arm();
    }

    pub(crate) fn location(&self) -> &RedisLocation {
        &self.shared.location
    }

    /// Runs `f` as one store call: every round trip in it shares one deadline, `timeout`
    /// from now (a call already running on this thread keeps its own).
    pub(crate) fn within_deadline<T>(&self, f: impl FnOnce() -> T) -> T {
        deadline::within(self.shared.timeout, f)
    }

    /// In a call's scope, starts its deadline anew: for walks, once per batch.
    pub(crate) fn restart_deadline(&self) {
        deadline::restart(self.shared.timeout);
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
        let deadline = deadline::deadline(s.timeout);
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
                Err(e) if is_readonly(&e) => {
                    // Another server is the master now: forget every connection to this
                    // one and make a new one (below, if time is left).
                    gated(&s.idle, |idle| idle.here().clear());
                    if left(deadline).is_none() {
                        return Err(s.failed(e));
                    }
                }
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
                if !is_transport(&e) && !is_readonly(&e) {
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

    /// Runs `f` on `con`, a connection of its own (not pooled), within the call's deadline
    /// (its read and write timeouts what is left). Refused at once while the breaker is
    /// open; a failure to reach Redis opens it, unless the connection was merely closed
    /// ([`Self::lost`]).
    pub(crate) fn run_on<T>(
        &self,
        con: &mut Connection,
        f: impl FnOnce(&mut Connection) -> RedisResult<T>,
    ) -> Result<T> {
        let s = &self.shared;
        if s.breaker.is_open() {
            return Err(s.refusal());
        }
        s.limit(con, deadline::deadline(s.timeout))?;
        f(con).map_err(|e| self.lost(e))
    }

    /// The crate's error for a failed round trip on a connection of its own (the
    /// watcher's subscription, the cache's tracking connection). A connection found closed
    /// (by Redis, by a proxy's idle timeout, by `CLIENT KILL`) is the caller's to replace,
    /// as [`Self::run`] replaces a pooled one: it opens the breaker only if the new one
    /// cannot be made. Any other failure to reach Redis opens it.
    fn lost(&self, e: RedisError) -> Error {
        let s = &self.shared;
        if is_stale(&e) {
            s.credentials.error(s.timeout, e)
        } else {
            s.failed(e)
        }
    }

    /// A new connection of its own that speaks RESP3 (so that Redis can push invalidation
    /// messages on it: `tracking.rs`), as [`Self::connect`] otherwise.
    pub(crate) fn connect_resp3(&self) -> Result<Connection> {
        let s = &self.shared;
        if s.breaker.is_open() {
            return Err(s.refusal());
        }
        let (client, sentinels) = s.credentials.client();
        let info = client.get_connection_info().clone();
        let settings = info
            .redis_settings()
            .clone()
            .set_protocol(ProtocolVersion::RESP3);
        let client = Client::open(info.set_redis_settings(settings)).map_err(|e| s.failed(e))?;
        s.connect_with(&client, sentinels, deadline::deadline(s.timeout))
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
        self.shared.breaker.set_refusing(problem);
    }

    /// A call refused without a round trip (the store refuses this Redis): counted.
    pub(crate) fn count_refused(&self) {
        self.shared.breaker.count_refused();
    }

    /// The health record of this handle, in this process.
    pub(crate) fn record(&self) -> Record {
        self.shared.breaker.record()
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        // Wakes the probe, if any: it finds the pool gone and ends.
        if let Some(probe) = self.shared.breaker.take_probe() {
            probe.unpark();
        }
    }
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
        let (client, sentinels) = self.credentials.client();
        self.connect_with(&client, sentinels, deadline)
    }

    /// [`Self::connect_by`] with `client`'s settings, through `sentinels` if any.
    fn connect_with(
        self: &Arc<Shared>,
        client: &Client,
        sentinels: Option<Sentinels>,
        deadline: Instant,
    ) -> Result<Connection> {
        let left = left(deadline).ok_or_else(|| self.out_of_time())?;
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let for_thread = client.clone();
        let for_here = sentinels.clone();
        let spawned = std::thread::Builder::new()
            .name("cookiestore-redis-connect".into())
            .spawn(move || {
                let _ = tx.send(open(&for_thread, sentinels.as_ref(), deadline));
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
            Err(_) => open(client, for_here.as_ref(), deadline),
        };
        let con = made.map_err(|e| self.failed(e))?;
        self.limit(&con, deadline)?;
        Ok(con)
    }

    /// The crate's error for `e`; when Redis could not be reached or did not answer in
    /// time, the breaker opens (and the probe starts).
    fn failed(self: &Arc<Shared>, e: RedisError) -> Error {
        let unreachable = is_unreachable(&e);
        let err = self.credentials.error(self.timeout, e);
        if unreachable && let Error::Unavailable { problem, .. } = &err {
            let generation = fork::generation();
            if self.breaker.open(problem, generation) {
                // The connections kept were made to a Redis that failed: none is reused.
                gated(&self.idle, |idle| idle.here().clear());
                probe::start(self, generation);
            }
        }
        err
    }

    /// The problem text of `e`, as in [`Error::Unavailable`].
    fn describe(&self, e: RedisError) -> String {
        match self.credentials.error(self.timeout, e) {
            Error::Unavailable { problem, .. } | Error::Redis { problem, .. } => problem,
            other => other.to_string(),
        }
    }

    /// The error of a call refused by the open breaker, with the outage's record.
    fn refusal(&self) -> Error {
        self.breaker.refusal(self.location.masked())
    }
}

impl Probed for Shared {
    fn breaker(&self) -> &Breaker {
        &self.breaker
    }

    fn ping(&self) -> std::result::Result<Connection, String> {
        let deadline = Instant::now() + self.timeout;
        let (client, sentinels) = self.credentials.client();
        let mut con = open(&client, sentinels.as_ref(), deadline).map_err(|e| self.describe(e))?;
        let left = left(deadline)
            .ok_or_else(|| format!("no answer within the timeout of {:?}", self.timeout))?;
        con.set_read_timeout(Some(left))
            .and_then(|()| con.set_write_timeout(Some(left)))
            .and_then(|()| redis::cmd("PING").query::<()>(&mut con))
            .map_err(|e| self.describe(e))?;
        Ok(con)
    }

    fn keep(&self, con: Connection, generation: u64) {
        self.put_back(con, generation);
    }
}

/// A new connection of `client` made by `deadline`; for a sentinel location, to the master
/// the sentinels name now ([`master`]), with the client's credentials and database.
fn open(
    client: &Client,
    sentinels: Option<&Sentinels>,
    deadline: Instant,
) -> RedisResult<Connection> {
    let timeout = |what: &str| {
        RedisError::from(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("{what} took longer than the timeout"),
        ))
    };
    let Some(sentinels) = sentinels else {
        let left = left(deadline).ok_or_else(|| timeout("connecting"))?;
        return client.get_connection_with_timeout(left);
    };
    let info = client.get_connection_info().clone();
    let (host, port) = master(sentinels, info.addr(), deadline)?;
    let addr = at(info.addr(), host, port);
    let info = info.set_addr(addr);
    let left = left(deadline).ok_or_else(|| timeout("asking the sentinels for the master"))?;
    Client::open(info)?.get_connection_with_timeout(left)
}

/// The address `host`:`port` reached as `client` (the client's address) is: over TLS with
/// its TLS settings (CA, client certificate, `insecure`) when it is `TcpTls`
/// (`rediss+sentinel://`), else plain TCP.
fn at(client: &ConnectionAddr, host: String, port: u16) -> ConnectionAddr {
    match client {
        ConnectionAddr::TcpTls {
            insecure,
            tls_params,
            ..
        } => ConnectionAddr::TcpTls {
            host,
            port,
            insecure: *insecure,
            tls_params: tls_params.clone(),
        },
        _ => ConnectionAddr::Tcp(host, port),
    }
}

/// How sentinel `host`:`port` is reached: as the client's address `client` is ([`at`]:
/// plain TCP, or TLS for `rediss+sentinel://`), with the sentinels' ACL user and password
/// when one is given (`sentinel_user`, `sentinel_password_file`, `sentinel_password_env`:
/// `redis/client.rs`), sent as `AUTH` in the handshake.
fn sentinel_info(
    sentinels: &Sentinels,
    client: &ConnectionAddr,
    host: &str,
    port: u16,
) -> RedisResult<ConnectionInfo> {
    let info = at(client, host.to_string(), port).into_connection_info()?;
    let Some(password) = &sentinels.password else {
        return Ok(info);
    };
    let mut settings = info.redis_settings().clone().set_password(password);
    if let Some(user) = &sentinels.user {
        settings = settings.set_username(user);
    }
    Ok(info.set_redis_settings(settings))
}

/// What to say of sentinel `host`:`port` refusing to answer for want of credentials, or
/// refusing those given (`e`, whose text holds no password: redis-rs says "Password
/// authentication failed", the sentinel `NOAUTH` or `WRONGPASS`).
fn refused(sentinels: &Sentinels, host: &str, port: u16, e: &RedisError) -> String {
    match &sentinels.password {
        None => format!("sentinel {host}:{port} asks for a password ({e})"),
        Some(_) => format!(
            "sentinel {host}:{port} refused the credentials of the ACL user `{}` ({e})",
            sentinels.user.as_deref().unwrap_or("default")
        ),
    }
}

/// What to check when the sentinels named no master; `refusals`: whether any of them
/// refused the credentials (or their absence); `tls`: whether every one failed its TLS
/// handshake (the error's first words then say what to do about TLS: `errors.rs`).
fn sentinel_advice(sentinels: &Sentinels, refusals: bool, tls: bool) -> &'static str {
    match (refusals, &sentinels.password) {
        (false, _) if tls => {
            "check the sentinels' TLS: their certificates must be signed by the CA given \
             (tls_ca_file) and name the hosts in the URL"
        }
        (false, _) => {
            "check that the sentinels run and monitor it under that name (SENTINEL MASTERS)"
        }
        (true, None) => {
            "give the sentinels' password with sentinel_password_file or sentinel_password_env \
             (and their ACL user with sentinel_user, if not `default`)"
        }
        (true, Some(_)) => {
            "check the sentinels' password in sentinel_password_file or sentinel_password_env \
             (their requirepass, or the ACL password of sentinel_user) and sentinel_user"
        }
    }
}

/// The address of the master named `sentinels.master`, as the first sentinel that answers
/// (in the URL's order; each reached as the client's address `client` is: [`sentinel_info`])
/// names it, by `deadline`. Each sentinel is given an equal share of
/// what is left of the deadline for the sentinels not asked yet (the last, all that is
/// left), so that a hung one does not use up the call's time; one that is down (connection
/// refused) costs next to nothing. When none names it, an I/O error (Redis unreachable: the
/// breaker opens, and its probe asks again) listing what each said, and what to check (the
/// sentinels' credentials, when one refused them).
fn master(
    sentinels: &Sentinels,
    client: &ConnectionAddr,
    deadline: Instant,
) -> RedisResult<(String, u16)> {
    let mut problems = Vec::new();
    let mut refusals = false;
    let mut tls_failures = 0;
    let count = sentinels.nodes.len();
    for (i, (host, port)) in sentinels.nodes.iter().enumerate() {
        let Some(left) = left(deadline) else {
            problems.push("no time left for the others".to_string());
            break;
        };
        // An equal share of what is left for each sentinel not asked yet, so that a hung
        // one leaves time for the next.
        let left = left / u32::try_from(count - i).unwrap_or(u32::MAX);
        let asked = sentinel_info(sentinels, client, host, *port)
            .and_then(Client::open)
            .and_then(|sentinel| {
                let mut con = sentinel.get_connection_with_timeout(left)?;
                con.set_read_timeout(Some(left))?;
                con.set_write_timeout(Some(left))?;
                redis::cmd("SENTINEL")
                    .arg("get-master-addr-by-name")
                    .arg(&sentinels.master)
                    .query::<Option<(String, String)>>(&mut con)
            });
        match asked {
            Ok(Some((master_host, master_port))) => match master_port.parse::<u16>() {
                Ok(master_port) => return Ok((master_host, master_port)),
                Err(_) => problems.push(format!(
                    "sentinel {host}:{port} gave the port {master_port:?}"
                )),
            },
            Ok(None) => problems.push(format!(
                "sentinel {host}:{port} knows no master named {:?}",
                sentinels.master
            )),
            Err(e) if is_auth_failure(&e) => {
                refusals = true;
                problems.push(refused(sentinels, host, *port, &e));
            }
            Err(e) => {
                tls_failures += usize::from(is_tls_failure(&e));
                problems.push(format!("sentinel {host}:{port}: {e}"));
            }
        }
    }
    Err(RedisError::from(std::io::Error::new(
        std::io::ErrorKind::NotConnected,
        format!(
            "no sentinel named the master {:?} ({}); {}",
            sentinels.master,
            problems.join("; "),
            sentinel_advice(sentinels, refusals, tls_failures == count)
        ),
    )))
}
