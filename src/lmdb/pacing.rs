//! How maintenance shares LMDB's writer lock with the routers: [`Pacer`].
//!
//! LMDB has one writer at a time, and a router's create, login or logout waits for the
//! writer lock while another process (or thread) holds it. Purges, clears, imports and
//! restores write many cookies; one transaction for all of them, or for a fixed count,
//! would hold the lock for as long as that takes (seconds for 300,000 cookies, and more on
//! a slow disk). So they work in transactions sized by time: each writes as many items as
//! fit in about [`Pacer::SLICE`] of work, measured on the transactions before it (the count
//! adapts to the disk, the cache and the contention), commits, and then pauses for
//! [`Pacer::PAUSE`]. The pause matters: LMDB's writer lock is a mutex without hand-over, and
//! a thread that releases it and asks again at once usually wins it back before a waiting
//! process has been scheduled.
//!
//! What stays one transaction, on purpose: [`CookieStore::logout_authid`] (all of a user's
//! cookies or none: a half-done logout-everywhere must not be possible), `repair` (a store
//! is repaired whole), and caller-given batches.
//!
//! [`CookieStore::logout_authid`]: crate::CookieStore::logout_authid

use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::lmdb::txn::last_work;

/// Cookies deleted per write transaction by a purge or a clear at most, so the writer lock
/// is never held long.
pub(crate) const PURGE_BATCH: usize = 5_000;

/// Sizes a maintenance operation's write transactions by time (see the module docs).
#[derive(Debug)]
pub(crate) struct Pacer {
    limit: usize,
    max: usize,
}

impl Pacer {
    /// How long the work of one maintenance transaction aims to take (its commit's flush
    /// comes on top: a few milliseconds on a disk, whatever the transaction's size).
    pub(crate) const SLICE: Duration = Duration::from_millis(4);
    /// The pause after each maintenance transaction, in which waiting writers take the lock.
    pub(crate) const PAUSE: Duration = Duration::from_millis(1);
    /// Items in the first transaction, before any has been timed.
    const FIRST: usize = 64;

    /// A pacer for transactions of at most `max` items.
    pub(crate) fn new(max: usize) -> Pacer {
        Pacer {
            limit: Self::FIRST.min(max).max(1),
            max: max.max(1),
        }
    }

    /// How many items the next transaction may write.
    #[cfg(test)]
    fn limit(&self) -> usize {
        self.limit
    }

    /// Runs one transaction with `f`, given [`Self::limit`]; then adapts the limit to how
    /// long it took and pauses. A transaction that meets a full map ([`Error::MapFull`]) is
    /// run again with half as many items, down to one (deleting needs fresh pages too:
    /// smaller transactions free space step by step); so is one that meets a full disk
    /// ([`Error::DiskFull`]).
    pub(crate) fn run<T>(&mut self, mut f: impl FnMut(usize) -> Result<T>) -> Result<T> {
        loop {
            let start = Instant::now();
            match f(self.limit) {
                // On a full disk even the space kept for deletions (`reserve.rs`) may not
                // hold a whole transaction: smaller ones free space step by step too.
                Err(Error::MapFull { .. } | Error::DiskFull { .. }) if self.limit > 1 => {
                    self.limit /= 2
                }
                Err(e) => return Err(e),
                Ok(out) => {
                    // The work inside the transaction, without its commit: a flush costs
                    // about the same whatever the size, and smaller transactions would
                    // only make more of them.
                    self.adapt(last_work().min(start.elapsed()));
                    std::thread::sleep(Self::PAUSE);
                    return Ok(out);
                }
            }
        }
    }

    /// The next limit: scaled toward [`Self::SLICE`], at most doubled or halved at a time.
    fn adapt(&mut self, took: Duration) {
        let ratio = Self::SLICE.as_secs_f64() / took.as_secs_f64().max(1e-6);
        let next = (self.limit as f64 * ratio.clamp(0.5, 2.0)).round() as usize;
        self.limit = next.clamp(1, self.max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_follows_the_time_a_transaction_takes() {
        let mut p = Pacer::new(10_000);
        assert_eq!(p.limit(), Pacer::FIRST);
        p.adapt(Pacer::SLICE / 4);
        assert_eq!(p.limit(), 2 * Pacer::FIRST, "at most doubled");
        p.adapt(Pacer::SLICE * 10);
        assert_eq!(p.limit(), Pacer::FIRST, "at most halved");
        p.adapt(Pacer::SLICE);
        assert_eq!(p.limit(), Pacer::FIRST, "on target: kept");
        for _ in 0..100 {
            p.adapt(Duration::ZERO);
        }
        assert_eq!(p.limit(), 10_000, "never above the maximum");
        for _ in 0..100 {
            p.adapt(Duration::from_secs(1));
        }
        assert_eq!(p.limit(), 1, "never below one");
    }

    #[test]
    fn a_full_map_halves_the_transaction_and_chunks_cover_every_item() {
        let mut p = Pacer::new(64);
        let mut attempts = Vec::new();
        let out = p.run(|limit| {
            attempts.push(limit);
            if limit > 16 {
                Err(Error::MapFull {
                    operation: "test",
                    maxsize: 0,
                    deletion: true,
                })
            } else {
                Ok(limit)
            }
        });
        assert_eq!(out.unwrap(), 16);
        assert_eq!(attempts, vec![64, 32, 16]);

        let items: Vec<u32> = (0..1000).collect();
        let mut seen = Vec::new();
        let mut p = Pacer::new(100);
        crate::backend::chunks(&mut p, &items, |chunk| {
            assert!(chunk.len() <= 100);
            seen.extend_from_slice(chunk);
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, items);
    }
}
