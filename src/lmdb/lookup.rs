//! The read path of a lookup on LMDB: this process's cache when it is current, else one
//! read transaction that brings the cache up to date (`cache.rs`) and answers.

use std::sync::Arc;

use crate::cache::CacheView;
use crate::cache::entry::CachedLookup;
use crate::error::{Error, Result};
use crate::feed::revocation::Revocations;
use crate::lmdb::LmdbStore;
use crate::lmdb::closure::in_closure;
use crate::lmdb::snapshot::Snapshot;

impl CacheView for Snapshot<'_> {
    fn txn_id(&self) -> u64 {
        Snapshot::txn_id(self)
    }

    fn now_ns(&self) -> u64 {
        self.now
    }

    fn last_revocation(&self) -> Result<u64> {
        Snapshot::last_revocation(self)
    }

    fn revocations_since(&self, after: u64) -> Result<Revocations> {
        Snapshot::revocations_since(self, after)
    }

    fn foreign_writes(&self) -> Result<bool> {
        Snapshot::foreign_writes(self)
    }
}

impl LmdbStore {
    /// `answer` applied to what a lookup of `value` finds: from this process's cache when it
    /// is on and current, else from a read transaction (which also brings the cache up to
    /// date and fills it).
    pub(crate) fn lookup_with<T>(
        &self,
        value: &str,
        answer: impl FnOnce(&CachedLookup) -> T,
    ) -> Result<Option<T>> {
        let Some(cache) = self.shared.cache() else {
            return Ok(self.read(|s| s.lookup_entry(value))?.map(|l| answer(&l)));
        };
        if in_closure() {
            return Err(Error::NestedTransaction);
        }
        let found = match self.lookup_cached(value) {
            Some(hit) => hit,
            None => self.read(|s| cache.read_through(s, value, |s| s.lookup_entry(value)))?,
        };
        Ok(found.map(|l| answer(&l)))
    }

    /// A lookup answered from this process's cache alone (see
    /// [`CookieStore::lookup_cached`](crate::CookieStore::lookup_cached)).
    #[inline]
    pub(crate) fn lookup_cached(&self, value: &str) -> Option<Option<Arc<CachedLookup>>> {
        let shared = &*self.shared;
        let cache = shared.cache()?;
        if in_closure() {
            return None;
        }
        // `None` outside the process that opened the environment, before the cache is locked.
        let last_txn = shared.last_txn_id_now()?;
        cache.hit(value, last_txn, self.now())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::record::cookie::Auth;

    /// A thread whose snapshot is older than the one the cache caught up to (another
    /// thread got the lock first) must not put what it read into the cache.
    #[test]
    fn a_snapshot_older_than_the_cache_leaves_it_alone() {
        use crate::{AuthContext, CookieStore, StoreOptions};
        use std::sync::Barrier;

        let dir = tempfile::tempdir().unwrap();
        let store = CookieStore::open(dir.path(), StoreOptions::default()).unwrap();
        let lmdb = store.as_lmdb().unwrap().clone();
        let cookie = store.create("cbtid", 24, 3600).unwrap();
        let value = cookie.value.clone();
        let alice = Auth::new("alice", "user", "ticket", "realm1");
        store
            .set_auth(&value, &alice, &AuthContext::default())
            .unwrap();
        let (opened, committed) = (Arc::new(Barrier::new(2)), Arc::new(Barrier::new(2)));
        let older = {
            let (lmdb, value) = (lmdb.clone(), value.clone());
            let (opened, committed) = (opened.clone(), committed.clone());
            std::thread::spawn(move || {
                lmdb.read(|snap| {
                    opened.wait(); // this snapshot is open
                    committed.wait(); // the logout is committed and seen by the cache
                    let cache = snap.shared.cache().unwrap();
                    cache.read_through(snap, &value, |s| s.lookup_entry(&value))
                })
                .unwrap()
            })
        };
        opened.wait();
        assert!(store.delete(&value).unwrap());
        assert_eq!(store.lookup(&value).unwrap(), None); // the cache catches up past the logout
        committed.wait();
        let answer = older.join().unwrap();
        assert_eq!(
            answer.and_then(|l| l.to_auth().unwrap()),
            Some(alice),
            "the older snapshot still sees the cookie"
        );
        assert_eq!(
            store.lookup(&value).unwrap(),
            None,
            "the older snapshot's answer went into the cache"
        );
        assert_eq!(lmdb.cache_stats().entries, 0);
    }
}
