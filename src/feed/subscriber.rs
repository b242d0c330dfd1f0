//! [`Subscriber`]: a reader of the revocation feed that remembers where it is, on any
//! backend.

use crate::backend::FeedPosition;
use crate::error::{Error, Result};
use crate::feed::revocation::Revocations;
use crate::store::CookieStore;

/// A per-process reader of the revocation feed that remembers where it is.
///
/// [`poll`](Self::poll) returns what was appended since the last poll. On LMDB, when no
/// transaction was committed since (the environment's last transaction id is unchanged), it
/// returns nothing without opening a transaction: polling an idle store often is cheap. On
/// Redis each poll is one round trip (a script that reads the stream after the position),
/// and the subscriber also checks that the feed is still the history it read: when Redis
/// lost the feed or went back to older data (restarted without persistence or from an older
/// snapshot, flushed, failed over to a replica that lagged), `missed` is set (see
/// `src/redis/feed.rs`).
///
/// ```
/// use cookiestore::{CookieStore, StoreOptions, Subscriber};
/// # let dir = tempfile::tempdir().unwrap();
/// let store = CookieStore::open(dir.path(), StoreOptions::default())?;
/// let mut feed = Subscriber::new(&store)?;
/// let cookie = store.create("cbtid", 24, 3600)?;
/// store.delete(&cookie.value)?;
/// let found = feed.poll()?;
/// assert!(found.entries.iter().any(|e| e.value == cookie.value && e.kind.revokes()));
/// # Ok::<(), cookiestore::Error>(())
/// ```
#[derive(Debug)]
pub struct Subscriber {
    store: CookieStore,
    position: FeedPosition,
    /// The end of the feed could not be read when this subscriber was made (its store could
    /// not be reached); the first poll that reaches it starts there and reports a miss.
    start_pending: bool,
}

impl Subscriber {
    /// A subscriber that starts at the end of the feed: it sees revocations made from now.
    ///
    /// It is made also while the store cannot be reached (Redis down, or a lazily opened
    /// store that refuses its Redis: [`Error::Unavailable`], [`Error::RedisSetting`],
    /// [`Error::RedisCredentials`], [`Error::NewerStore`]): its first poll that reaches the store then starts at the end
    /// of the feed and reports `missed` (revocations made before that poll are not known to
    /// it: re-check the connections made meanwhile).
    pub fn new(store: &CookieStore) -> Result<Subscriber> {
        let (position, start_pending) = match store.seam().feed_end() {
            Ok(mut position) => {
                position.reads = 1;
                (position, false)
            }
            Err(
                Error::Unavailable { .. }
                | Error::RedisSetting { .. }
                | Error::RedisCredentials { .. }
                | Error::NewerStore { .. },
            ) => (
                FeedPosition {
                    reads: 1,
                    ..FeedPosition::default()
                },
                true,
            ),
            Err(e) => return Err(e),
        };
        Ok(Subscriber {
            store: store.clone(),
            position,
            start_pending,
        })
    }

    /// A subscriber that starts after sequence number `after` (0: every retained entry).
    /// On Redis, a number alone cannot show whether the feed went back in time before the
    /// first poll (only whether it is now shorter than `after`, or trimmed); from its first
    /// poll on, the subscriber checks that too.
    pub fn starting_after(store: &CookieStore, after: u64) -> Subscriber {
        Subscriber {
            store: store.clone(),
            position: FeedPosition {
                next: after,
                ..FeedPosition::default()
            },
            start_pending: false,
        }
    }

    /// The revocations appended since the last poll. `missed` is true when some were
    /// trimmed before this subscriber read them, and on Redis also when the feed is not
    /// the history this subscriber read (the entries are then every retained one).
    pub fn poll(&mut self) -> Result<Revocations> {
        let backend = self.store.seam();
        if self.start_pending {
            let reads = self.position.reads + 1;
            self.position = backend.feed_end()?;
            self.position.reads = reads;
            self.start_pending = false;
            return Ok(Revocations {
                entries: Vec::new(),
                next: self.position.next,
                missed: true,
            });
        }
        backend.feed_poll(&mut self.position)
    }

    /// The sequence number this subscriber reads after.
    pub fn position(&self) -> u64 {
        self.position.next
    }

    /// How many reads this subscriber has made (on LMDB, polls that found no new commit
    /// open no transaction and make none).
    pub fn reads(&self) -> u64 {
        self.position.reads
    }
}
