//! The probe: while the breaker (`breaker.rs`) is open, one background thread tries Redis
//! with a fresh connection and a `PING` after 100 ms, then after waits doubling up to 2 s
//! ([`PROBE_MIN`], [`PROBE_MAX`]), each try bounded by the timeout. Its successful `PING` is
//! the half-open trial: it closes the breaker (its connection is kept for the next call).
//! A trial made by a probe rather than by a caller means that no caller ever waits for a
//! Redis that is still gone: a hung Redis costs the first call one timeout and the calls
//! after it nothing, until it answers again. The probe ends when the breaker closes, or
//! when the pool is dropped (it is woken, and ends after the `PING` in progress, if any,
//! without being waited for).

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use redis::Connection;

use super::breaker::Breaker;
use super::deadline::left;

/// The probe's first wait after the breaker opens.
pub(crate) const PROBE_MIN: Duration = Duration::from_millis(100);
/// The probe's longest wait between two tries (the wait doubles after each failed try).
pub(crate) const PROBE_MAX: Duration = Duration::from_secs(2);

/// What the probe works on: the pool's shared part.
pub(super) trait Probed: Send + Sync + 'static {
    /// The breaker the probe closes.
    fn breaker(&self) -> &Breaker;
    /// One try: a new connection and a `PING`, within the timeout; the problem text of a
    /// failure (as in [`crate::Error::Unavailable`]).
    fn ping(&self) -> Result<Connection, String>;
    /// Keeps the probe's connection, made in process `generation`, for the next call.
    fn keep(&self, con: Connection, generation: u64);
}

/// Starts the probe of the breaker of `target`, just opened in process `generation`; with
/// no thread to be had, the breaker closes again ([`Breaker::no_probe`]).
pub(super) fn start<S: Probed>(target: &Arc<S>, generation: u64) {
    let weak = Arc::downgrade(target);
    let spawned = std::thread::Builder::new()
        .name("cookiestore-probe".into())
        .spawn(move || probe(weak, generation));
    match spawned {
        // Not joined: it ends by itself (see the module docs).
        Ok(thread) => target.breaker().set_probe(thread.thread().clone()),
        Err(e) => target
            .breaker()
            .no_probe(&format!("cannot start a thread: {e}")),
    }
}

/// Tries Redis after waits doubling from [`PROBE_MIN`] to [`PROBE_MAX`], and closes the
/// breaker at the first `PING` answered. Ends then, or when the pool is gone.
fn probe<S: Probed>(pool: Weak<S>, generation: u64) {
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
        if !shared.breaker().is_open_in(generation) {
            return; // closed meanwhile (the probe's record was replaced)
        }
        match shared.ping() {
            Ok(con) => {
                shared.keep(con, generation);
                shared.breaker().close();
                return;
            }
            Err(problem) => shared.breaker().note_latest(problem),
        }
        drop(shared);
        wait = (wait * 2).min(PROBE_MAX);
    }
}
