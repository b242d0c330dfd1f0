//! Figures about a store's cookies ([`Stats`]), as every backend gives them. An LMDB store
//! has more (pages, the map, reader slots, tables): [`LmdbStats`](crate::LmdbStats).

use serde::Serialize;

use crate::record::codec::CookieView;

/// Figures about a store's cookies ([`CookieStore::stats`](crate::CookieStore::stats)), on
/// every backend.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
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
