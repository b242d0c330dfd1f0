//! The deadline of a store call: every round trip of one call (connecting, the retry on a
//! dead pooled connection, each command) shares one deadline, `timeout_ms` from the call's
//! start, kept per thread ([`within`]); a round trip outside such a scope gets one of its
//! own ([`deadline`]). Walks (SCAN in batches) start it anew at each batch ([`restart`]).
//! The pool (`pool.rs`) gives each attempt's socket what is [`left`] of it.

use std::cell::Cell;
use std::time::{Duration, Instant};

thread_local! {
    /// The deadline of the store call running on this thread, if it set one.
    static DEADLINE: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// The deadline of the call on this thread, or one `timeout` from now.
pub(super) fn deadline(timeout: Duration) -> Instant {
    DEADLINE
        .with(Cell::get)
        .unwrap_or_else(|| Instant::now() + timeout)
}

/// Puts the previous deadline back when a scope ends (also by a panic).
struct Scope(Option<Option<Instant>>);

impl Drop for Scope {
    fn drop(&mut self) {
        if let Some(previous) = self.0 {
            DEADLINE.with(|d| d.set(previous));
        }
    }
}

/// Runs `f` as one store call: every round trip in it shares one deadline, `timeout` from
/// now (a call already running on this thread keeps its own).
pub(super) fn within<T>(timeout: Duration, f: impl FnOnce() -> T) -> T {
    let _scope = DEADLINE.with(|d| {
        if d.get().is_some() {
            Scope(None)
        } else {
            d.set(Some(Instant::now() + timeout));
            Scope(Some(None))
        }
    });
    f()
}

/// In a call's scope, starts its deadline anew, `timeout` from now.
pub(super) fn restart(timeout: Duration) {
    DEADLINE.with(|d| {
        if d.get().is_some() {
            d.set(Some(Instant::now() + timeout));
        }
    });
}

/// What is left until `deadline`, if anything.
pub(super) fn left(deadline: Instant) -> Option<Duration> {
    let left = deadline.saturating_duration_since(Instant::now());
    (!left.is_zero()).then_some(left)
}
