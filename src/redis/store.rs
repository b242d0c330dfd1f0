//! [`RedisStore`]: the Redis backend's handle behind the seam. Each operation of
//! [`Backend`] is one store call of [`RedisBackend`] (a deadline each: `deadline.rs`), at the
//! time of this handle's clock.

use std::any::Any;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use uuid::Uuid;

use super::RedisBackend;
use super::migrate::{Batch, Unpaced, WRITE_LANES};
use crate::backend::{
    Backend, FeedPosition, Live, MaintenanceTxn, MaintenanceView, Pacing, WriteKind,
};
use crate::cache::CacheStats;
use crate::cache::entry::CachedLookup;
use crate::clock::Clock;
use crate::config::location::{Location, RedisLocation};
use crate::config::options::StoreOptions;
use crate::error::{Error, Result};
use crate::feed::revocation::Revocations;
use crate::health::Health;
use crate::record::cookie::{Auth, AuthChange, AuthUpdate, Cookie, Lookup};
use crate::record::mark::ValueDigest;
use crate::stats::Stats;

/// A store on Redis: the connections and key names shared by clones, and this handle's
/// clock.
#[derive(Clone)]
pub(crate) struct RedisStore {
    pub(crate) redis: Arc<RedisBackend>,
    location: Location,
    readonly: bool,
    lazily: bool,
    clock: Arc<dyn Clock>,
}

impl RedisStore {
    /// Opens the store on the Redis server at `location` (see [`RedisBackend::open`]).
    pub(crate) fn open(location: RedisLocation, options: &StoreOptions) -> Result<RedisStore> {
        let redis = RedisBackend::open(&location, options)?;
        Ok(RedisStore {
            redis: Arc::new(redis),
            location: Location::Redis(location),
            readonly: options.readonly,
            lazily: options.redis.connect_lazily,
            clock: options.clock.clone(),
        })
    }

    pub(crate) fn now(&self) -> u64 {
        self.clock.now_ns()
    }
}

impl Backend for RedisStore {
    fn location(&self) -> &Location {
        &self.location
    }

    fn name(&self) -> &'static str {
        "redis"
    }

    fn is_readonly(&self) -> bool {
        self.readonly
    }

    fn now_ns(&self) -> u64 {
        self.now()
    }

    fn with_clock(&self, clock: Arc<dyn Clock>) -> Arc<dyn Backend> {
        Arc::new(RedisStore {
            clock,
            ..self.clone()
        })
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn health(&self) -> Health {
        let r = self.redis.health_record();
        Health {
            available: !r.open && !r.refusing,
            outages: r.outages,
            since: r.since,
            until: r.until,
            refused: r.refused,
            problem: r.problem,
        }
    }

    fn opened_lazily(&self) -> bool {
        self.lazily
    }

    fn connect(&self) -> Result<()> {
        self.redis.connect_now()
    }

    fn exists(&self, value: &str) -> Result<bool> {
        self.redis.exists(value, self.now())
    }

    fn get(&self, value: &str) -> Result<Option<Cookie>> {
        self.redis.get(value, self.now())
    }

    fn get_by_oid(&self, oid: Uuid) -> Result<Option<Cookie>> {
        self.redis.get_by_oid(oid, self.now())
    }

    /// Through the cache when there is one; else one GET, the record read from the reply
    /// as from LMDB's map.
    fn with_live(&self, value: &str, f: &mut dyn FnMut(Live<'_>) -> Result<()>) -> Result<()> {
        if let Some(found) = self.redis.cached_lookup(value, self.now()) {
            return match found? {
                Some(entry) => f(Live::Cached(&entry)),
                None => Ok(()),
            };
        }
        self.redis
            .with_live_record(value, self.now(), |oid, record| {
                f(Live::Record(oid, record))
            })
            .map(|_| ())
    }

    fn lookup(&self, value: &str) -> Result<Option<Lookup>> {
        self.redis.lookup(value, self.now())
    }

    fn get_auth(&self, value: &str) -> Result<Option<Auth>> {
        self.redis.get_auth(value, self.now())
    }

    fn cached_entry(&self, value: &str) -> Option<Option<Arc<CachedLookup>>> {
        self.redis.cached_answer(value, self.now())
    }

    fn cache_stats(&self) -> CacheStats {
        self.redis.cache_stats()
    }

    fn count(&self) -> Result<u64> {
        self.redis.count(self.now())
    }

    fn for_each_record(&self, f: &mut dyn FnMut(Result<Cookie>) -> Result<bool>) -> Result<()> {
        self.redis.for_each_cookie(f)
    }

    fn stats(&self) -> Result<Stats> {
        self.redis.stats(self.now())
    }

    fn create(&self, name: &str, length: usize, max_age: u64) -> Result<Cookie> {
        self.redis.create(name, length, max_age, self.now())
    }

    fn change_auth(&self, value: &str, change: AuthChange<'_>) -> Result<AuthUpdate> {
        self.redis.change_auth(value, change, self.now())
    }

    fn delete(&self, value: &str) -> Result<bool> {
        self.redis.delete(value, self.now())
    }

    fn put(&self, cookie: &Cookie) -> Result<()> {
        self.redis.put(cookie)
    }

    fn logout_authid(&self, authid: &str) -> Result<u64> {
        self.redis.logout_authid(authid, self.now())
    }

    /// Cookies and import marks expire by themselves (Redis drops each key at its expiry):
    /// only the feed is trimmed.
    fn purge_expired(&self, feed_cutoff: u64) -> Result<u64> {
        self.redis.trim_revocations(feed_cutoff)?;
        Ok(0)
    }

    fn clear(&self) -> Result<u64> {
        self.redis.clear(self.now())
    }

    fn export_scan(
        &self,
        record: &mut dyn FnMut(Result<Cookie>) -> Result<()>,
        mark: &mut dyn FnMut(ValueDigest, u64) -> Result<()>,
    ) -> Result<u64> {
        self.redis.export_scan(record, mark)?;
        Ok(0)
    }

    fn require_empty(&self) -> Result<()> {
        let records = self.redis.records()?;
        if records > 0 {
            return Err(Error::NotEmpty {
                path: self.redis.location().into(),
                records,
            });
        }
        Ok(())
    }

    fn pacing(&self, max: usize) -> Box<dyn Pacing> {
        Box::new(Unpaced(max))
    }

    fn write_lanes(&self) -> usize {
        WRITE_LANES
    }

    fn maintenance_read(
        &self,
        f: &mut dyn FnMut(&mut dyn MaintenanceView) -> Result<()>,
    ) -> Result<()> {
        f(&mut Batch::new(self))
    }

    /// `f`'s reads batched, its writes queued and then sent as one script per kind (see
    /// `migrate.rs`), each compared with what `f` read: Redis has no transaction that reads
    /// and writes as LMDB's does, so a record that changed meanwhile makes the script write
    /// nothing and `f` run again with fresh reads.
    fn maintenance_write(
        &self,
        operation: &'static str,
        _kind: WriteKind,
        f: &mut dyn FnMut(&mut dyn MaintenanceTxn) -> Result<()>,
    ) -> Result<()> {
        for _ in 0..super::CAS_ATTEMPTS {
            let mut batch = Batch::new(self);
            f(&mut batch)?;
            if batch.flush()? {
                return Ok(());
            }
        }
        Err(self.redis.contended(operation))
    }

    fn revocations_since(&self, after: u64) -> Result<Revocations> {
        self.redis.revocations_since(after)
    }

    fn feed_end(&self) -> Result<FeedPosition> {
        let (next, anchor) = self.redis.last_revocation()?;
        Ok(FeedPosition {
            next,
            anchor: Some(anchor),
            ..FeedPosition::default()
        })
    }

    fn feed_poll(&self, position: &mut FeedPosition) -> Result<Revocations> {
        position.reads += 1;
        let (found, anchor) = self
            .redis
            .revocations_after(position.next, position.anchor.as_deref())?;
        position.next = found.next;
        position.anchor = Some(anchor);
        Ok(found)
    }

    fn watch(
        &self,
        poll: &mut dyn FnMut() -> Result<Revocations>,
        stop: &AtomicBool,
        interval: Duration,
        deliver: &mut dyn FnMut(Result<Revocations>),
    ) {
        super::watch::run(&self.redis, poll, stop, interval, deliver);
    }
}
