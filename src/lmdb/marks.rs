//! Import marks on LMDB (`record/mark.rs` says what they are for; the key layout is
//! [`ImportMark`]'s): found, written, walked for an export, and purged once their cookie
//! would have expired anyway.

use std::collections::BTreeMap;

use crate::error::{LmdbResult, Result};
use crate::lmdb::LmdbStore;
use crate::lmdb::batch::Batch;
use crate::lmdb::durability::Flush;
use crate::lmdb::keys::ImportMark;
use crate::lmdb::pacing::{PURGE_BATCH, Pacer};
use crate::lmdb::snapshot::Snapshot;
use crate::lmdb::txn::Growth;
use crate::record::mark::{Mark, ValueDigest, digest};

/// The mark of `value` in the store `s` reads.
pub(crate) fn find(s: &Snapshot<'_>, value: &str) -> Result<Mark> {
    let Some(slot) = s.tables.slots.state else {
        return Ok(Mark::Absent);
    };
    let key = ImportMark::key(slot, &digest(value));
    if s.tables.db.get(s.txn, &key).lmdb()?.is_some() {
        return Ok(Mark::Hashed);
    }
    if let Some(key) = ImportMark::legacy_key(slot, value)
        && s.tables.db.get(s.txn, &key).lmdb()?.is_some()
    {
        return Ok(Mark::Unhashed);
    }
    Ok(Mark::Absent)
}

/// Marks `value` as imported until `expires` (ns), replacing its unhashed mark if any.
pub(crate) fn mark(b: &mut Batch<'_, '_>, value: &str, expires: u64) -> Result<()> {
    mark_digest(b, &digest(value), expires)?;
    if let Some(slot) = b.tables.slots.state
        && let Some(key) = ImportMark::legacy_key(slot, value)
    {
        b.raw_delete(&key)?;
    }
    Ok(())
}

/// Marks the value whose SHA-256 is `digest` until `expires`, unless its mark already lasts
/// as long (a mark is never shortened).
pub(crate) fn mark_digest(b: &mut Batch<'_, '_>, digest: &ValueDigest, expires: u64) -> Result<()> {
    let Some(slot) = b.tables.slots.state else {
        return Ok(());
    };
    let key = ImportMark::key(slot, digest);
    if let Some(old) = b.raw_get(&key)? {
        let old = ImportMark::parse_value(&old);
        if old >= expires {
            return Ok(());
        }
        b.raw_delete(&ImportMark::due_key(slot, old, digest))?;
    }
    b.raw_put(&key, &ImportMark::value(expires))?;
    b.raw_put(&ImportMark::due_key(slot, expires, digest), &[])
}

/// Every mark, (SHA-256 of the value, expiry), in digest order, to `f`. An unhashed mark
/// expires with its cookie when the store holds it, else never (its expiry was not
/// recorded).
pub(crate) fn for_each(
    s: &Snapshot<'_>,
    mut f: impl FnMut(ValueDigest, u64) -> Result<()>,
) -> Result<()> {
    let Some(slot) = s.tables.slots.state else {
        return Ok(());
    };
    // Unhashed marks are few (only older stores have them, and a purge rewrites them):
    // merged into the ordered walk of the hashed ones.
    let mut unhashed: BTreeMap<ValueDigest, u64> = BTreeMap::new();
    for item in prefix_iter(s, &ImportMark::legacy_prefix(slot))? {
        let (key, _) = item?;
        if let Some(value) = ImportMark::parse_legacy_key(key) {
            unhashed.insert(digest(value), unhashed_expiry(s, value));
        }
    }
    let mut pending = unhashed.into_iter().peekable();
    for item in prefix_iter(s, &ImportMark::prefix(slot))? {
        let (key, bytes) = item?;
        let Some(digest) = ImportMark::parse_key(key) else {
            continue; // not a mark: a longer state name that shares the prefix
        };
        let mut expires = ImportMark::parse_value(bytes);
        while let Some((d, e)) = pending.next_if(|(d, _)| *d <= digest) {
            if d == digest {
                expires = expires.max(e);
            } else {
                f(d, e)?;
            }
        }
        f(digest, expires)?;
    }
    for (d, e) in pending {
        f(d, e)?;
    }
    Ok(())
}

/// The expiry to give an unhashed mark of `value`: its cookie's, or never when the store no
/// longer holds it (or cannot decode it).
fn unhashed_expiry(s: &Snapshot<'_>, value: &str) -> u64 {
    match s.tables.lookup(s.txn, value) {
        Ok(Some((_, view))) => view.expires_at(),
        _ => u64::MAX,
    }
}

type Entries<'t> = Box<dyn Iterator<Item = Result<(&'t [u8], &'t [u8])>> + 't>;

fn prefix_iter<'t>(s: &Snapshot<'t>, prefix: &[u8]) -> Result<Entries<'t>> {
    let iter = s.tables.db.prefix_iter(s.txn, prefix).lmdb()?;
    Ok(Box::new(iter.map(|item| item.lmdb())))
}

/// Whether a purge has work: a mark due at `now`, or an unhashed mark to rewrite.
fn purge_due(s: &Snapshot<'_>, now: u64) -> Result<bool> {
    let Some(slot) = s.tables.slots.state else {
        return Ok(false);
    };
    if let Some(item) = prefix_iter(s, &ImportMark::due_prefix(slot))?.next() {
        let (key, _) = item?;
        match ImportMark::parse_due_key(key) {
            Some((expires, _)) if expires <= now => return Ok(true),
            Some(_) => {}
            None => return Ok(true), // damaged: the purge drops it
        }
    }
    Ok(prefix_iter(s, &ImportMark::legacy_prefix(slot))?
        .next()
        .is_some())
}

/// Drops the marks due at `now` (their cookies would be expired by now: a re-import drops
/// those anyway) and rewrites unhashed marks as hashed ones, in batches. Returns how many
/// marks were dropped.
pub(crate) fn purge(store: &LmdbStore, now: u64) -> Result<u64> {
    if !store.read(|s| purge_due(s, now))? {
        return Ok(0);
    }
    let mut total = 0;
    let mut pacer = Pacer::new(PURGE_BATCH);
    loop {
        let mut limit = 0;
        let (processed, dropped) = pacer.run(|l| {
            limit = l;
            store.write("purge import marks", Growth::Headroom, Flush::Lazy, |b| {
                purge_some(b, now, l)
            })
        })?;
        total += dropped;
        if processed < limit {
            return Ok(total);
        }
    }
}

/// One batch of [`purge`]: up to `limit` entries. Returns (entries processed, marks dropped).
fn purge_some(b: &mut Batch<'_, '_>, now: u64, limit: usize) -> Result<(usize, u64)> {
    let Some(slot) = b.tables.slots.state else {
        return Ok((0, 0));
    };
    let mut due: Vec<Vec<u8>> = Vec::new();
    for item in prefix_iter(&b.view(), &ImportMark::due_prefix(slot))?.take(limit) {
        let (key, _) = item?;
        match ImportMark::parse_due_key(key) {
            Some((expires, _)) if expires > now => break,
            _ => due.push(key.to_vec()),
        }
    }
    let mut dropped = 0;
    for key in &due {
        b.raw_delete(key)?;
        if let Some((expires, digest)) = ImportMark::parse_due_key(key) {
            let mark = ImportMark::key(slot, &digest);
            // Only the mark this entry describes (a mark is re-indexed when it is extended).
            if b.raw_get(&mark)?.as_deref() == Some(&ImportMark::value(expires)[..]) {
                b.raw_delete(&mark)?;
                dropped += 1;
            }
        }
    }
    let mut unhashed: Vec<(Vec<u8>, String, u64)> = Vec::new();
    {
        let view = b.view();
        for item in prefix_iter(&view, &ImportMark::legacy_prefix(slot))?.take(limit - due.len()) {
            let (key, _) = item?;
            let value = ImportMark::parse_legacy_key(key).map(str::to_string);
            let expires = value.as_deref().map_or(0, |v| unhashed_expiry(&view, v));
            unhashed.push((key.to_vec(), value.unwrap_or_default(), expires));
        }
    }
    for (key, value, expires) in &unhashed {
        // A key that is not UTF-8 was never a cookie value: nothing to carry over.
        if !value.is_empty() {
            mark_digest(b, &digest(value), *expires)?;
        }
        b.raw_delete(key)?;
    }
    Ok((due.len() + unhashed.len(), dropped))
}
