//! Whether a caller's snapshot or batch closure runs on this thread ([`ClosureGuard`]): a
//! store call inside one would need a second transaction on the thread, which LMDB does not
//! allow, so the transaction core refuses it ([`Error::NestedTransaction`]).
//!
//! [`Error::NestedTransaction`]: crate::Error::NestedTransaction

use std::cell::Cell;

thread_local! {
    /// Snapshot and batch closures running on this thread: a store call inside one would
    /// need a second transaction on this thread, which LMDB does not allow.
    static IN_CLOSURE: Cell<u32> = const { Cell::new(0) };
}

/// Whether a caller's snapshot or batch closure runs on this thread.
#[inline]
pub(crate) fn in_closure() -> bool {
    IN_CLOSURE.with(Cell::get) > 0
}

/// Marks a caller's closure as running on this thread until dropped, also when the closure
/// panics (the count is restored while unwinding).
pub(crate) struct ClosureGuard;

impl ClosureGuard {
    pub(crate) fn enter() -> ClosureGuard {
        IN_CLOSURE.with(|c| c.set(c.get() + 1));
        ClosureGuard
    }
}

impl Drop for ClosureGuard {
    fn drop(&mut self) {
        IN_CLOSURE.with(|c| c.set(c.get().saturating_sub(1)));
    }
}
