//! The circuit breaker of a Redis store handle, and the health record it keeps.
//!
//! When a round trip fails because Redis could not be reached or did not answer in time
//! (not when Redis answered with an error), the breaker opens: every call of the handle (and
//! of its clones) is refused at once with [`Error::Unavailable`] ([`Breaker::refusal`]),
//! without touching the network, until the probe (`probe.rs`) finds Redis back and closes
//! it; the next call that fails opens it again. The breaker also records the outages for
//! [`crate::Health`] ([`Record`]): how many, since and until when, the first failure, the
//! calls refused, and whether the store refuses this Redis (`policy.rs`), which is an outage
//! for the record without the breaker.
//!
//! **fork().** The breaker remembers the process it was opened in: the probe thread does
//! not exist in a child, so there the breaker counts as closed, and a failure in the child
//! opens it with a probe of the child's own. Its record is locked only under the shared side
//! of the pools' gate ([`fork::gated`]), which the fork() prepare handler takes exclusively.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::Error;
use crate::fork::{self, gated};

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

pub(super) struct Breaker {
    /// The generation + 1 of the process in which the breaker is open (a probe of that
    /// process runs); 0 when closed.
    open_in: AtomicU64,
    /// Whether failures open it: false during an eager open, whose errors go to the opener.
    armed: AtomicBool,
    /// Calls refused at once during the current (or last) outage.
    refused: AtomicU64,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
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

impl State {
    /// The record of this process: one inherited from the parent starts over (its probe
    /// thread does not exist here).
    fn here(&mut self) -> &mut State {
        let now = fork::generation();
        if self.generation != now {
            *self = State {
                generation: now,
                ..State::default()
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
    /// A closed breaker that failures open only once [`Self::arm`] is called.
    pub(super) fn new() -> Breaker {
        Breaker {
            open_in: AtomicU64::new(0),
            armed: AtomicBool::new(false),
            refused: AtomicU64::new(0),
            state: Mutex::new(State {
                generation: fork::generation(),
                ..State::default()
            }),
        }
    }

    /// From now on, a failure to reach Redis opens the breaker.
    pub(super) fn arm(&self) {
        self.armed.store(true, Ordering::Release);
    }

    /// Whether it is open in this process.
    pub(super) fn is_open(&self) -> bool {
        let open_in = self.open_in.load(Ordering::Acquire);
        open_in != 0 && open_in == fork::generation() + 1
    }

    /// Whether it is still open in process `generation` (the probe of that process goes on).
    pub(super) fn is_open_in(&self, generation: u64) -> bool {
        self.open_in.load(Ordering::Acquire) == generation + 1
    }

    /// Opens the breaker in process `generation` after `problem`, unless it is open (the
    /// problem is then the latest one) or not armed. True when it opened now: the caller
    /// starts the probe.
    pub(super) fn open(&self, problem: &str, generation: u64) -> bool {
        if !self.armed.load(Ordering::Acquire) {
            return false;
        }
        gated(&self.state, |st| {
            let st = st.here();
            if self.is_open() {
                st.latest = Some(problem.to_string());
                return false;
            }
            st.begin(problem, &self.refused);
            self.open_in.store(generation + 1, Ordering::Release);
            true
        })
    }

    /// The probe thread started for this outage, woken when the pool is dropped.
    pub(super) fn set_probe(&self, thread: std::thread::Thread) {
        gated(&self.state, |st| st.here().probe = Some(thread));
    }

    /// The probe thread, if any, taken out (to be woken).
    pub(super) fn take_probe(&self) -> Option<std::thread::Thread> {
        gated(&self.state, |st| st.here().probe.take())
    }

    /// The probe's latest failure.
    pub(super) fn note_latest(&self, problem: String) {
        gated(&self.state, |st| st.here().latest = Some(problem));
    }

    /// Closes the breaker: Redis answered the probe.
    pub(super) fn close(&self) {
        gated(&self.state, |st| {
            let st = st.here();
            self.open_in.store(0, Ordering::Release);
            st.probe = None;
            if !st.refusing {
                st.until = Some(SystemTime::now());
            }
        });
    }

    /// The breaker cannot probe: it closes again (the outage is over for the record), and
    /// calls try Redis themselves.
    pub(super) fn no_probe(&self, why: &str) {
        gated(&self.state, |st| {
            let st = st.here();
            self.open_in.store(0, Ordering::Release);
            st.latest = Some(format!("no probe: {why}"));
            if !st.refusing {
                st.until = Some(SystemTime::now());
            }
        });
    }

    /// The error of a call refused by the open breaker, with the outage's record; `location`
    /// is the masked location.
    pub(super) fn refusal(&self, location: &str) -> Error {
        let n = self.refused.fetch_add(1, Ordering::Relaxed) + 1;
        let (since, problem, latest) = gated(&self.state, |st| {
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
            location: location.to_string(),
            problem: text,
        }
    }

    /// The store refuses this Redis (`problem`) or no longer does (`None`): an outage for
    /// [`Self::record`], without the breaker.
    pub(super) fn set_refusing(&self, problem: Option<&str>) {
        gated(&self.state, |st| {
            let st = st.here();
            match problem {
                Some(problem) => {
                    st.begin(problem, &self.refused);
                    st.refusing = true;
                }
                None => {
                    st.refusing = false;
                    if st.ongoing() && !self.is_open() {
                        st.until = Some(SystemTime::now());
                    }
                }
            }
        });
    }

    /// A call refused without a round trip (the store refuses this Redis): counted.
    pub(super) fn count_refused(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
    }

    /// The health record, in this process.
    pub(super) fn record(&self) -> Record {
        let open = self.is_open();
        gated(&self.state, |st| {
            let st = st.here();
            Record {
                outages: st.outages,
                since: st.since,
                until: st.until,
                problem: st.problem.clone(),
                refused: if st.since.is_some() {
                    self.refused.load(Ordering::Relaxed)
                } else {
                    0
                },
                open,
                refusing: st.refusing,
            }
        })
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
