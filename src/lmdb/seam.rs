//! [`LmdbStore`] behind the seam: each operation of [`Backend`] as one or more LMDB
//! transactions (`txn.rs`), how each is flushed (`durability.rs`) and how far it may grow
//! the map.

use std::any::Any;
use std::sync::Arc;

use uuid::Uuid;

use crate::backend::{
    Backend, FeedPosition, Live, MaintenanceTxn, MaintenanceView, Pacing, WriteKind,
};
use crate::cache::CacheStats;
use crate::cache::entry::CachedLookup;
use crate::clock::Clock;
use crate::config::location::Location;
use crate::error::{Error, Result};
use crate::feed::revocation::Revocations;
use crate::lmdb::LmdbStore;
use crate::lmdb::batch::Batch;
use crate::lmdb::closure::ClosureGuard;
use crate::lmdb::durability::Flush;
use crate::lmdb::marks;
use crate::lmdb::pacing::Pacer;
use crate::lmdb::snapshot::Snapshot;
use crate::lmdb::txn::Growth;
use crate::record::codec::Encoded;
use crate::record::cookie::{Auth, AuthChange, AuthUpdate, Cookie, Lookup};
use crate::record::mark::{Mark, ValueDigest};
use crate::stats::Stats;

impl Backend for LmdbStore {
    fn location(&self) -> &Location {
        LmdbStore::location(self)
    }

    fn name(&self) -> &'static str {
        "lmdb"
    }

    fn is_readonly(&self) -> bool {
        self.readonly
    }

    fn now_ns(&self) -> u64 {
        self.now()
    }

    fn with_clock(&self, clock: Arc<dyn Clock>) -> Arc<dyn Backend> {
        Arc::new(LmdbStore::with_clock(self, clock))
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn exists(&self, value: &str) -> Result<bool> {
        Ok(self.lookup_with(value, |_| ())?.is_some())
    }

    fn get(&self, value: &str) -> Result<Option<Cookie>> {
        self.snapshot(|s| s.get(value))
    }

    fn get_by_oid(&self, oid: Uuid) -> Result<Option<Cookie>> {
        self.snapshot(|s| s.get_by_oid(oid))
    }

    fn with_live(&self, value: &str, f: &mut dyn FnMut(Live<'_>) -> Result<()>) -> Result<()> {
        if self.shared.cache().is_some() {
            // The cache answers, or reads through and keeps the answer for the next call.
            return self
                .lookup_with(value, |l| f(Live::Cached(l)))?
                .unwrap_or(Ok(()));
        }
        self.snapshot(|s| match s.live_record(value)? {
            Some((oid, record)) => f(Live::Record(oid, &record)),
            None => Ok(()),
        })
    }

    fn lookup(&self, value: &str) -> Result<Option<Lookup>> {
        if self.shared.cache().is_none() {
            // Read straight into the answer: a cache entry made only to be decoded again
            // would decode authextra twice.
            return self.read(|s| s.lookup(value));
        }
        self.lookup_with(value, CachedLookup::to_lookup)?
            .transpose()
    }

    fn get_auth(&self, value: &str) -> Result<Option<Auth>> {
        if self.shared.cache().is_none() {
            return self.read(|s| Ok(s.lookup(value)?.and_then(|l| l.auth)));
        }
        Ok(self
            .lookup_with(value, CachedLookup::to_auth)?
            .transpose()?
            .flatten())
    }

    fn cache_stats(&self) -> CacheStats {
        self.shared.cache.stats()
    }

    fn cached_entry(&self, value: &str) -> Option<Option<Arc<CachedLookup>>> {
        LmdbStore::lookup_cached(self, value)
    }

    fn count(&self) -> Result<u64> {
        self.snapshot(|s| s.count_live())
    }

    fn for_each_record(&self, f: &mut dyn FnMut(Result<Cookie>) -> Result<bool>) -> Result<()> {
        self.snapshot(|s| {
            for item in s.records()? {
                if !f(item)? {
                    break;
                }
            }
            Ok(())
        })
    }

    fn stats(&self) -> Result<Stats> {
        LmdbStore::stats(self)
    }

    fn create(&self, name: &str, length: usize, max_age: u64) -> Result<Cookie> {
        self.write("create a cookie", Growth::UpToMaxsize, Flush::Lazy, |b| {
            let _closure = ClosureGuard::enter();
            b.create(name, length, max_age)
        })
    }

    fn change_auth(&self, value: &str, change: AuthChange<'_>) -> Result<AuthUpdate> {
        let operation = match change {
            AuthChange::Set(..) => "set auth",
            AuthChange::Clear => "clear auth",
        };
        self.write(operation, Growth::UpToMaxsize, Flush::Durable, |b| {
            let _closure = ClosureGuard::enter();
            b.change_auth(value, change)
        })
    }

    fn delete(&self, value: &str) -> Result<bool> {
        self.write("delete a cookie", Growth::Headroom, Flush::Durable, |b| {
            let _closure = ClosureGuard::enter();
            b.delete(value)
        })
    }

    fn put(&self, cookie: &Cookie) -> Result<()> {
        self.write("put a cookie", Growth::UpToMaxsize, Flush::Durable, |b| {
            let _closure = ClosureGuard::enter();
            b.put(cookie)
        })
    }

    fn logout_authid(&self, authid: &str) -> Result<u64> {
        self.write("log out an authid", Growth::Headroom, Flush::Durable, |b| {
            let _closure = ClosureGuard::enter();
            b.logout_authid(authid)
        })
    }

    fn purge_expired(&self, feed_cutoff: u64) -> Result<u64> {
        LmdbStore::purge_expired(self, feed_cutoff)
    }

    fn clear(&self) -> Result<u64> {
        LmdbStore::clear(self)
    }

    fn export_scan(
        &self,
        record: &mut dyn FnMut(Result<Cookie>) -> Result<()>,
        mark: &mut dyn FnMut(ValueDigest, u64) -> Result<()>,
    ) -> Result<u64> {
        // One snapshot for both: it stays open while the caller writes, so a slow consumer
        // keeps LMDB from reusing pages freed meanwhile (writers are never blocked).
        self.read(|s| {
            for item in s.records()? {
                record(item)?;
            }
            marks::for_each(s, &mut *mark)?;
            Ok(s.txn_id())
        })
    }

    fn require_empty(&self) -> Result<()> {
        let records = self.read(|s| Ok(s.raw_records()?.count() as u64))?;
        if records > 0 {
            return Err(Error::NotEmpty {
                path: self.path().to_path_buf(),
                records,
            });
        }
        Ok(())
    }

    fn pacing(&self, max: usize) -> Box<dyn Pacing> {
        Box::new(Pacer::new(max))
    }

    fn write_lanes(&self) -> usize {
        1
    }

    fn maintenance_read(
        &self,
        f: &mut dyn FnMut(&mut dyn MaintenanceView) -> Result<()>,
    ) -> Result<()> {
        self.read(|s| f(&mut SnapshotView(s)))
    }

    fn maintenance_write(
        &self,
        operation: &'static str,
        kind: WriteKind,
        f: &mut dyn FnMut(&mut dyn MaintenanceTxn) -> Result<()>,
    ) -> Result<()> {
        let (growth, flush) = match kind {
            WriteKind::Import => (Growth::UpToMaxsize, Flush::Lazy),
            WriteKind::Logout => (Growth::Headroom, Flush::Durable),
        };
        self.write(operation, growth, flush, |b| {
            let _closure = ClosureGuard::enter();
            f(&mut BatchTxn(b))
        })
    }

    fn revocations_since(&self, after: u64) -> Result<Revocations> {
        self.snapshot(|s| s.revocations_since(after))
    }

    fn feed_end(&self) -> Result<FeedPosition> {
        LmdbStore::feed_end(self)
    }

    fn feed_poll(&self, position: &mut FeedPosition) -> Result<Revocations> {
        LmdbStore::feed_poll(self, position)
    }
}

impl Pacing for Pacer {
    fn run(&mut self, f: &mut dyn FnMut(usize) -> Result<()>) -> Result<()> {
        Pacer::run(self, f)
    }
}

/// A snapshot as maintenance reads it.
struct SnapshotView<'a, 's>(&'a Snapshot<'s>);

impl MaintenanceView for SnapshotView<'_, '_> {
    fn counterpart(&mut self, oid: Uuid, _value: &str) -> Result<Option<Cookie>> {
        self.0.get_any_by_oid(oid)
    }

    fn get_any_by_value(&mut self, value: &str) -> Result<Option<Cookie>> {
        self.0.get_any_by_value(value)
    }

    fn mark_of(&mut self, value: &str) -> Result<Mark> {
        marks::find(self.0, value)
    }
}

/// A write transaction as maintenance writes in it.
struct BatchTxn<'a, 't, 'e>(&'a mut Batch<'t, 'e>);

impl MaintenanceView for BatchTxn<'_, '_, '_> {
    fn counterpart(&mut self, oid: Uuid, _value: &str) -> Result<Option<Cookie>> {
        self.0.view().get_any_by_oid(oid)
    }

    fn get_any_by_value(&mut self, value: &str) -> Result<Option<Cookie>> {
        self.0.view().get_any_by_value(value)
    }

    fn mark_of(&mut self, value: &str) -> Result<Mark> {
        marks::find(&self.0.view(), value)
    }
}

impl MaintenanceTxn for BatchTxn<'_, '_, '_> {
    fn put_encoded(&mut self, record: &Encoded) -> Result<()> {
        self.0.put_encoded(record)
    }

    fn put_imported(&mut self, cookie: &Cookie) -> Result<()> {
        // One transaction: the mark after the put, so that a refused record is not marked.
        self.0.put(cookie)?;
        marks::mark(self.0, &cookie.value, cookie.expires_at())
    }

    fn mark(&mut self, value: &str, expires: u64) -> Result<()> {
        marks::mark(self.0, value, expires)
    }

    fn mark_digest(&mut self, digest: &ValueDigest, expires: u64) -> Result<()> {
        marks::mark_digest(self.0, digest, expires)
    }

    fn delete(&mut self, value: &str) -> Result<bool> {
        self.0.delete(value)
    }
}
