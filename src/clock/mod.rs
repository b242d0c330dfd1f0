//! Time: where the store gets "now" from, and the units.
//!
//! Every instant is nanoseconds since the Unix epoch (UTC) in a `u64`, as cfxdb stores them;
//! every duration a cookie carries (`max_age`) is whole seconds. The conversions between the
//! two live here. Expiry is evaluated against a [`Clock`]: production code uses
//! [`SystemClock`]; tests and the CLI's `--now` use a [`ManualClock`] so that nothing ever
//! sleeps or depends on today's date.

pub(crate) mod rfc3339;

use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Nanoseconds in a second.
pub(crate) const NS_PER_SEC: u64 = 1_000_000_000;

/// `secs` seconds in nanoseconds (saturating).
pub(crate) const fn secs_to_ns(secs: u64) -> u64 {
    secs.saturating_mul(NS_PER_SEC)
}

/// `ns` nanoseconds in whole seconds, rounded up (what is left of a lifetime, for max-age).
pub(crate) const fn ns_to_secs_ceil(ns: u64) -> u64 {
    ns.div_ceil(NS_PER_SEC)
}

/// The system clock now, in nanoseconds since the Unix epoch (0 before 1970).
pub(crate) fn system_now_ns() -> u64 {
    match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => u64::try_from(d.as_nanos()).unwrap_or(u64::MAX),
        Err(_) => 0,
    }
}

/// A source of the current time, in nanoseconds since the Unix epoch (UTC).
pub trait Clock: Debug + Send + Sync {
    /// The current time in nanoseconds since the Unix epoch.
    fn now_ns(&self) -> u64;
}

/// The operating system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ns(&self) -> u64 {
        system_now_ns()
    }
}

/// A clock that stands still until it is set or advanced; clones share the same time.
///
/// ```
/// use cookiestore::{Clock, ManualClock};
/// let clock = ManualClock::new(1_000);
/// let seen_by_store = clock.clone();
/// clock.advance_secs(2);
/// assert_eq!(seen_by_store.now_ns(), 2_000_001_000);
/// ```
#[derive(Debug, Clone, Default)]
pub struct ManualClock(Arc<AtomicU64>);

impl ManualClock {
    /// A clock showing `now_ns` nanoseconds since the Unix epoch.
    pub fn new(now_ns: u64) -> Self {
        ManualClock(Arc::new(AtomicU64::new(now_ns)))
    }

    /// Sets the time.
    pub fn set(&self, now_ns: u64) {
        self.0.store(now_ns, Ordering::SeqCst);
    }

    /// Moves the time forward by `secs` seconds.
    pub fn advance_secs(&self, secs: u64) {
        self.0.fetch_add(secs_to_ns(secs), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ns(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}
