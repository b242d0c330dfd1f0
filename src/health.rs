//! Whether a store handle reaches its store ([`Health`]): what a router polls to log an
//! outage of its Redis once when it starts and once when it ends.

use std::time::SystemTime;

/// What [`CookieStore::health`](crate::CookieStore::health) reports: whether calls reach the store now, and the current
/// outage (or, once it ended, the last one). Reading it costs no round trip.
///
/// An outage of a Redis store starts when a call cannot reach Redis, or Redis does not
/// answer in time: from then on every call of the handle (and of its clones) is refused at
/// once with [`Error::Unavailable`](crate::Error::Unavailable), while one background thread
/// tries Redis again (see docs/operations.md, "Redis: faults and durability"); it ends when Redis answers
/// that thread. A store opened with
/// [`StoreOptions::connect_lazily`](crate::StoreOptions::connect_lazily) whose open-time
/// checks refuse the Redis ([`Error::RedisSetting`](crate::Error::RedisSetting),
/// [`Error::RedisCredentials`](crate::Error::RedisCredentials),
/// [`Error::NewerStore`](crate::Error::NewerStore)) is unavailable as well, until a check
/// passes. An LMDB store is always available.
///
/// A poller logs a new outage when [`outages`](Self::outages) grew since its last look
/// (also one that started and ended between two looks), and its end when
/// [`available`](Self::available) is true again.
///
/// ```
/// use cookiestore::{CookieStore, StoreOptions};
/// # let dir = tempfile::tempdir().unwrap();
/// let store = CookieStore::open(dir.path(), StoreOptions::default())?;
/// let health = store.health();
/// assert!(health.available);
/// assert_eq!(health.outages, 0);
/// # Ok::<(), cookiestore::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Health {
    /// Calls reach the store now (no outage is going on).
    pub available: bool,
    /// Outages of this handle so far (in this process), the current one included.
    pub outages: u64,
    /// When the current outage (or the last one) started.
    pub since: Option<SystemTime>,
    /// When the last outage ended; `None` while one is going on, or before any.
    pub until: Option<SystemTime>,
    /// Calls refused at once during the current outage (or the last one).
    pub refused: u64,
    /// What started the current outage (or the last one): the error's text.
    pub problem: Option<String>,
}

impl Health {
    /// The health of a store that is always reachable (LMDB).
    pub(crate) fn always() -> Health {
        Health {
            available: true,
            outages: 0,
            since: None,
            until: None,
            refused: 0,
            problem: None,
        }
    }
}
