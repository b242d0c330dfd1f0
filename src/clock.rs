//! Where the store gets "now" from.
//!
//! Expiry is evaluated against a [`Clock`]. Production code uses [`SystemClock`]; tests and the
//! CLI's `--now` use a [`ManualClock`] so that nothing ever sleeps or depends on today's date.

use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

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
        crate::timefmt::now_ns()
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
        self.0
            .fetch_add(secs.saturating_mul(1_000_000_000), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ns(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}
