//! [`Watcher`]: polls the revocation feed on a thread and hands the process its connections
//! of revoked cookies.

use std::collections::HashSet;
use std::hash::Hash;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::feed::connections::Connections;
use crate::feed::revocation::{Revocation, Revocations};
use crate::feed::subscriber::Subscriber;
use crate::fork::Opener;
use crate::store::CookieStore;

/// What a [`Watcher`] reports to its callback.
#[derive(Debug)]
#[non_exhaustive]
pub enum WatchEvent<H> {
    /// Cookies were revoked: the entries, and this process's connections of those cookies
    /// (from the registry, each once).
    Revoked {
        /// The feed entries that revoke ([`RevocationKind::revokes`](crate::RevocationKind::revokes)).
        revocations: Vec<Revocation>,
        /// The local connections of the revoked cookies.
        connections: Vec<H>,
    },
    /// Revocations were trimmed before this process read them: some connections of revoked
    /// cookies may be unknown. Re-check every connection's cookie.
    Missed,
    /// Polling failed (it is retried at the next interval).
    Failed(Error),
}

/// Polls the revocation feed on a thread and reports the local connections of revoked
/// cookies. Stops (and joins its thread) when dropped.
///
/// Its thread does not survive `fork()`: in a child, a watcher inherited from the parent
/// does nothing (dropping it there does not wait for the thread), and its store refuses
/// calls ([`Error::ForkedProcess`]); start one in the child, on a store opened there.
#[derive(Debug)]
pub struct Watcher {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    /// The process whose thread it is.
    opener: Opener,
}

impl Watcher {
    /// The default poll interval: 100 ms.
    pub const DEFAULT_INTERVAL: Duration = Duration::from_millis(100);

    /// Starts watching `store` from the end of its feed: every `interval`, polls once and
    /// calls `callback` with what it found (nothing when nothing was revoked). On Redis it
    /// also wakes at once when a revocation is published, and after a lost connection it
    /// reconnects and catches up from its position (or reports [`WatchEvent::Missed`]).
    pub fn spawn<H, F>(
        store: &CookieStore,
        registry: Arc<Connections<H>>,
        interval: Duration,
        mut callback: F,
    ) -> Result<Watcher>
    where
        H: Clone + Eq + Hash + Send + Sync + 'static,
        F: FnMut(WatchEvent<H>) + Send + 'static,
    {
        let mut subscriber = Subscriber::new(store)?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let backend = store.seam().clone();
        let thread = std::thread::Builder::new()
            .name("cookiestore-watcher".into())
            .spawn(move || {
                let mut report =
                    |found: Result<Revocations>| deliver(found, &registry, &mut callback);
                backend.watch(&mut || subscriber.poll(), &flag, interval, &mut report);
            })
            .map_err(Error::Io)?;
        Ok(Watcher {
            stop,
            thread: Some(thread),
            opener: Opener::current(),
        })
    }
}

/// Reports one poll's outcome to a watcher's callback: the revoked entries with this
/// process's connections of them (each once), a miss, or the failure.
fn deliver<H, F>(found: Result<Revocations>, registry: &Connections<H>, callback: &mut F)
where
    H: Clone + Eq + Hash + Send,
    F: FnMut(WatchEvent<H>),
{
    match found {
        Ok(found) => {
            if found.missed {
                callback(WatchEvent::Missed);
            }
            let revocations: Vec<Revocation> = found
                .entries
                .into_iter()
                .filter(|e| e.kind.revokes())
                .collect();
            if !revocations.is_empty() {
                let mut seen = HashSet::new();
                let mut connections = Vec::new();
                for entry in &revocations {
                    for handle in registry.connections(&entry.value) {
                        if seen.insert(handle.clone()) {
                            connections.push(handle);
                        }
                    }
                }
                callback(WatchEvent::Revoked {
                    revocations,
                    connections,
                });
            }
        }
        Err(e) => callback(WatchEvent::Failed(e)),
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        if !self.opener.is_current() {
            // A child of fork(): the thread is the parent's and does not exist here, so a
            // join would wait forever. What it holds is left as it is.
            std::mem::forget(self.thread.take());
            return;
        }
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}
