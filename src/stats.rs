//! Figures about a store ([`Stats`]): the cookie figures every backend gives (counted here,
//! once), and each backend's own ([`LmdbStats`], [`RedisStats`]), which its folder fills.

use crate::lmdb::layout::TableMeta;
use crate::record::codec::CookieView;

/// Figures about a store: the cookie figures every backend gives, and the backend's own
/// ([`LmdbStats`] or [`RedisStats`]). On LMDB, all from one snapshot.
///
/// Serialized flat (`serde`): the cookie figures and the backend's, side by side, as
/// `cookiestore stats --json` prints them.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
#[non_exhaustive]
pub struct Stats {
    /// Cookie records, live and expired.
    pub records: u64,
    /// Live (unexpired) cookies.
    pub live: u64,
    /// Expired cookies not yet purged.
    pub expired: u64,
    /// Live cookies with an authid.
    pub authenticated: u64,
    /// Records that could not be decoded.
    pub corrupt: u64,
    /// Creation time of the oldest live cookie (ns).
    pub oldest_created: Option<u64>,
    /// Creation time of the newest live cookie (ns).
    pub newest_created: Option<u64>,
    /// When the next live cookie expires (ns).
    pub next_expiry: Option<u64>,
    /// LMDB's figures (`None` on another backend).
    #[serde(flatten)]
    pub lmdb: Option<LmdbStats>,
    /// Redis's figures (`None` on another backend).
    #[serde(flatten)]
    pub redis: Option<RedisStats>,
}

/// LMDB's figures about a store ([`Stats::lmdb`]): indexes, map, pages, reader slots and
/// tables, from the same snapshot as the cookie figures.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
#[non_exhaustive]
pub struct LmdbStats {
    /// Entries in the value index.
    pub value_index_entries: u64,
    /// Entries in the expiry index.
    pub expiry_index_entries: u64,
    /// Current map size (bytes).
    pub map_size: u64,
    /// Bytes in use: (last page + 1) × page size.
    pub map_used: u64,
    /// The configured maxsize (bytes).
    pub maxsize: u64,
    /// LMDB page size.
    pub page_size: u32,
    /// B-tree depth of the unnamed database.
    pub depth: u32,
    /// Branch pages.
    pub branch_pages: u64,
    /// Leaf pages.
    pub leaf_pages: u64,
    /// Overflow pages.
    pub overflow_pages: u64,
    /// Entries in the unnamed database (all tables and metadata).
    pub entries: u64,
    /// Id of the snapshot's transaction.
    pub txn_id: u64,
    /// Reader slots ever used in the lock file (LMDB's high-water mark, live and stale).
    pub readers_used: u32,
    /// Reader slots in the lock file.
    pub readers_max: u32,
    /// Slot metadata: every table of the database.
    pub tables: Vec<TableMeta>,
    /// Whether another program (cfxdb, Crossbar) wrote since cookiestore's last write, so
    /// the expiry index will be reconciled at the next open or purge.
    pub foreign_writes: bool,
}

/// Redis's figures about a store ([`Stats::redis`]). The cookie figures come from a walk
/// over the store's keys (`SCAN`), not one snapshot; these from one round trip each after it.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
#[non_exhaustive]
pub struct RedisStats {
    /// Entries in the revocation feed (a stream: `XLEN`).
    pub feed_entries: u64,
    /// The sequence number of the feed's last entry (0: none yet).
    pub last_revocation: u64,
    /// The server's `maxmemory-policy` (`noeviction` unless the store was opened with
    /// `allow_eviction`); `None` when the server does not say (`CONFIG` and `INFO` refused).
    pub maxmemory_policy: Option<String>,
    /// Why this process's cache on Redis ([`StoreOptions::redis_cache_bytes`](crate::StoreOptions::redis_cache_bytes))
    /// last stopped answering (its tracking connection failed; lookups read Redis until it
    /// is made again), if it did.
    pub cache_problem: Option<String>,
}

impl Stats {
    /// Counts one stored record at `now`: records, corrupt, expired or live (authenticated,
    /// oldest/newest creation, next expiry).
    pub(crate) fn count_record(&mut self, bytes: &[u8], now: u64) {
        self.records += 1;
        let Ok(view) = CookieView::new(bytes) else {
            self.corrupt += 1;
            return;
        };
        if view.is_expired(now) {
            self.expired += 1;
            return;
        }
        self.live += 1;
        if view.authid().is_some() {
            self.authenticated += 1;
        }
        let c = view.created();
        self.oldest_created = Some(self.oldest_created.map_or(c, |o| o.min(c)));
        self.newest_created = Some(self.newest_created.map_or(c, |o| o.max(c)));
        let e = view.expires_at();
        self.next_expiry = Some(self.next_expiry.map_or(e, |o| o.min(e)));
    }
}
