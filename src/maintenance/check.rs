//! Consistency checks and repair.
//!
//! [`check`] reads one snapshot of a store and lists every kind of damage it finds:
//!
//! - records that cannot be decoded, keys of the Cookies table that are not an oid, records
//!   whose stored oid differs from their key, records whose value cannot be indexed;
//! - the value index (cfxdb's `IndexCookiesByValue`) against the records, both ways: entries
//!   whose cookie is gone, entries pointing at a cookie with another value, records without
//!   an entry, two records with one value;
//! - our expiry index against the records, both ways;
//! - the table metadata (slot 0) and data in slots no table owns.
//!
//! cfxdb and Crossbar.io do not maintain the expiry index. When another program wrote since
//! cookiestore's last write ([`Snapshot::foreign_writes`](crate::Snapshot::foreign_writes)),
//! expiry-index differences are expected, not damage: the next writable open or purge
//! reconciles them. They are then reported in [`CheckReport::deferred`], not as problems.
//!
//!
//! The kinds of damage are [`Problem`] (`problem.rs`); [`repair`](super::repair) fixes them
//! (`repair.rs`).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use serde::Serialize;
use uuid::Uuid;

use super::problem::Problem;
use crate::error::{Error, Result};
use crate::lmdb::LmdbStore;
use crate::lmdb::keys::{AuthidKey, ExpiryKey, RecordKey, split_slot};
use crate::lmdb::layout::{
    COOKIES, EXPIRY_INDEX, META_SLOT, STORE_STATE, Slots, TableDef, VALUE_INDEX,
};
use crate::lmdb::snapshot::Snapshot;
use crate::record::codec::CookieView;
use crate::record::cookie::Cookie;
use crate::record::mark::hex;
use crate::record::value::{self};

/// What [`check`] found, from one snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct CheckReport {
    /// The id of the transaction the snapshot read.
    pub txn_id: u64,
    /// Cookie records (decodable or not).
    pub records: u64,
    /// Value-index entries.
    pub value_index_entries: u64,
    /// Expiry-index entries.
    pub expiry_index_entries: u64,
    /// Whether another program (cfxdb, Crossbar.io) wrote since cookiestore's last write.
    pub foreign_writes: bool,
    /// The damage found.
    pub problems: Vec<Problem>,
    /// Expiry-index differences that are not damage because another program wrote since
    /// cookiestore's last write: the next writable open or purge reconciles them.
    pub deferred: Vec<Problem>,
    /// Remarks that are not damage.
    pub notes: Vec<String>,
}

impl CheckReport {
    /// Whether no problem was found (deferred differences and notes are not problems).
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }
}

/// What a decodable record contributes to the cross-checks.
pub(super) struct RecInfo {
    pub(super) value: String,
    pub(super) created: u64,
    pub(super) expires_at: u64,
}

/// Checks one snapshot of `store`: every record decodes, the records, the value index and the
/// expiry index agree both ways, and the metadata is sane.
///
/// Errors only when the store cannot be read at all (LMDB errors); damage is reported in the
/// [`CheckReport`]. Memory grows with the number of cookies (their values are held).
pub fn check(store: &LmdbStore) -> Result<CheckReport> {
    let now = store.now();
    store.snapshot(|s| {
        let mut report = CheckReport {
            txn_id: s.txn_id(),
            records: 0,
            value_index_entries: 0,
            expiry_index_entries: 0,
            foreign_writes: false,
            problems: Vec::new(),
            deferred: Vec::new(),
            notes: Vec::new(),
        };
        let catalog = match s.catalog() {
            Ok(catalog) => catalog,
            Err(e) => {
                report.problems.push(Problem::Metadata {
                    problem: format!("{e}; the tables cannot be located, nothing else was checked"),
                });
                return Ok(report);
            }
        };
        // Known tables: recorded names must be the ones zlmdb / cookiestore write.
        for meta in catalog.tables.values() {
            for def in [&COOKIES, &VALUE_INDEX, &EXPIRY_INDEX, &STORE_STATE] {
                if meta.oid == def.oid.to_string() && meta.name != def.name {
                    report.problems.push(Problem::Metadata {
                        problem: format!(
                            "slot {} holds table {} under the name {:?}, expected {:?}",
                            meta.slot, meta.oid, meta.name, def.name
                        ),
                    });
                }
            }
        }
        let has = |def: &TableDef| catalog.slot_of(def).is_some();
        let Some(slots) = s.slots() else {
            match (has(&COOKIES), has(&VALUE_INDEX)) {
                (false, false) if catalog.tables.is_empty() => report
                    .notes
                    .push("the database holds no tables yet: an empty store".into()),
                (false, false) => report.problems.push(Problem::Metadata {
                    problem: format!(
                        "none of the {} tables in the metadata is a cookie table: not a cookie \
                         store",
                        catalog.tables.len()
                    ),
                }),
                (c, _) => report.problems.push(Problem::Metadata {
                    problem: format!(
                        "the {} table is missing from the metadata",
                        if c { "IndexCookiesByValue" } else { "Cookies" }
                    ),
                }),
            }
            return Ok(report);
        };
        report.foreign_writes = match s.foreign_writes() {
            Ok(foreign) => foreign,
            Err(e) => {
                report.problems.push(Problem::Metadata {
                    problem: e.to_string(),
                });
                true
            }
        };
        if slots.by_expiry.is_none() {
            report.notes.push(
                "no expiry index yet (a database only cfxdb has written): it is built at the \
                 next writable open"
                    .into(),
            );
        } else if report.foreign_writes {
            report.notes.push(
                "another program (cfxdb, Crossbar.io) wrote since cookiestore's last write: \
                 expiry-index differences are reconciled at the next writable open or purge"
                    .into(),
            );
        }
        check_slots(s, &catalog.tables.keys().copied().collect(), &mut report)?;

        // Records.
        let mut recs: BTreeMap<Uuid, RecInfo> = BTreeMap::new();
        let mut undecodable: HashSet<Uuid> = HashSet::new();
        let mut by_value: BTreeMap<String, Vec<Uuid>> = BTreeMap::new();
        for item in s.raw_entries(slots.cookies)? {
            let (key, bytes) = item?;
            report.records += 1;
            let Some(oid) = RecordKey::parse_oid(key) else {
                report
                    .problems
                    .push(Problem::MalformedRecordKey { key: hex(key) });
                continue;
            };
            let cookie = match Cookie::decode(bytes) {
                Ok(cookie) => cookie,
                Err(e) => {
                    undecodable.insert(oid);
                    report.problems.push(Problem::UndecodableRecord {
                        oid,
                        problem: record_problem(e),
                    });
                    continue;
                }
            };
            if !cookie.oid.is_nil() && cookie.oid != oid {
                report.problems.push(Problem::RecordOidMismatch {
                    oid,
                    stored: cookie.oid,
                });
            }
            if cookie.created > now {
                report.problems.push(Problem::CreatedInFuture {
                    oid,
                    created: cookie.created,
                    now,
                });
            }
            if !value::fits_index(&cookie.value) {
                report.problems.push(Problem::UnindexableValue {
                    oid,
                    len: cookie.value.len(),
                });
            } else {
                by_value.entry(cookie.value.clone()).or_default().push(oid);
            }
            recs.insert(
                oid,
                RecInfo {
                    expires_at: cookie.expires_at(),
                    created: cookie.created,
                    value: cookie.value,
                },
            );
        }

        // Value index → records.
        let mut index: HashMap<String, Uuid> = HashMap::new();
        for item in s.raw_value_index()? {
            let (key, oid_bytes) = item?;
            report.value_index_entries += 1;
            let value = match std::str::from_utf8(key) {
                Ok(v) => v,
                Err(_) => {
                    report.problems.push(Problem::MalformedValueIndexEntry {
                        key: hex(key),
                        problem: "the value is not UTF-8".into(),
                    });
                    continue;
                }
            };
            let Ok(oid) = Uuid::from_slice(oid_bytes) else {
                report.problems.push(Problem::MalformedValueIndexEntry {
                    key: hex(key),
                    problem: format!("it holds {} bytes, not a 16-byte oid", oid_bytes.len()),
                });
                continue;
            };
            index.insert(value.to_string(), oid);
            match recs.get(&oid) {
                Some(rec) if rec.value != value => {
                    report.problems.push(Problem::ValueIndexWrongCookie {
                        value: value.to_string(),
                        oid,
                        record_value: rec.value.clone(),
                    })
                }
                Some(_) => {}
                // An undecodable record is reported as such; repair drops both.
                None if undecodable.contains(&oid) => {}
                None => report.problems.push(Problem::ValueIndexOrphan {
                    value: value.to_string(),
                    oid,
                }),
            }
        }

        // Records → value index.
        for (value, mut oids) in by_value {
            oids.sort_by_key(|oid| std::cmp::Reverse((recs[oid].created, *oid)));
            let indexed = index.get(&value).copied();
            if oids.len() > 1 {
                report.problems.push(Problem::DuplicateValue {
                    value: value.clone(),
                    oids: oids.clone(),
                });
            }
            if indexed.is_none_or(|i| !oids.contains(&i)) {
                report.problems.push(Problem::ValueIndexMissing {
                    oid: oids[0],
                    value,
                    indexed_to: indexed,
                });
            }
        }

        // Expiry index ↔ records.
        if let Some(slot) = slots.by_expiry {
            let mut expiry: Vec<Problem> = Vec::new();
            let mut entries: BTreeMap<Uuid, Vec<u64>> = BTreeMap::new();
            for item in s.raw_table(slot)? {
                let (key, _) = item?;
                report.expiry_index_entries += 1;
                match ExpiryKey::parse_rest(key) {
                    Some((at, oid)) => entries.entry(oid).or_default().push(at),
                    None => expiry.push(Problem::MalformedExpiryIndexEntry { key: hex(key) }),
                }
            }
            for (oid, rec) in &recs {
                let times = entries.remove(oid).unwrap_or_default();
                let actual = rec.expires_at;
                if times.is_empty() {
                    expiry.push(Problem::ExpiryIndexMissing {
                        oid: *oid,
                        expires_at: actual,
                    });
                }
                for indexed in times.into_iter().filter(|&t| t != actual) {
                    expiry.push(Problem::ExpiryIndexWrongTime {
                        oid: *oid,
                        indexed,
                        actual,
                    });
                }
            }
            for (oid, times) in entries {
                if undecodable.contains(&oid) {
                    continue;
                }
                for expires_at in times {
                    expiry.push(Problem::ExpiryIndexOrphan { oid, expires_at });
                }
            }
            if report.foreign_writes {
                report.deferred = expiry;
            } else {
                report.problems.extend(expiry);
            }
        }
        // Authid index ↔ records (deferred like the expiry index after foreign writes).
        let authid = check_authid_index(s, &slots)?;
        if report.foreign_writes {
            report.deferred.extend(authid);
        } else {
            report.problems.extend(authid);
        }
        Ok(report)
    })
}

/// The problem of a record that failed to decode, on one line, without the error's advice.
pub(super) fn record_problem(e: Error) -> String {
    let text = match e {
        Error::InvalidRecord { problem } | Error::CorruptRecord { problem, .. } => problem,
        other => other.to_string(),
    };
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Every key belongs to a slot that has metadata.
fn check_slots(
    s: &crate::Snapshot<'_>,
    known: &BTreeSet<u16>,
    report: &mut CheckReport,
) -> Result<()> {
    let mut unknown: BTreeMap<u16, u64> = BTreeMap::new();
    for item in s.raw_all()? {
        let (key, _) = item?;
        match split_slot(key) {
            Some((META_SLOT, _)) => {} // metadata: read by the catalog
            Some((slot, _)) => {
                if !known.contains(&slot) {
                    *unknown.entry(slot).or_default() += 1;
                }
            }
            None => report.problems.push(Problem::Metadata {
                problem: format!("key {} is shorter than a slot number", hex(key)),
            }),
        }
    }
    for (slot, n) in unknown {
        report.problems.push(Problem::Metadata {
            problem: format!("{n} keys in slot {slot}, which no table metadata describes"),
        });
    }
    Ok(())
}

/// The authid index's differences from the records, for `check`.
pub(crate) fn check_authid_index(s: &Snapshot<'_>, slots: &Slots) -> Result<Vec<Problem>> {
    let Some(slot) = slots.by_authid else {
        return Ok(Vec::new());
    };
    let mut expected: std::collections::BTreeMap<Vec<u8>, (Uuid, String)> = Default::default();
    // An undecodable record is reported as such; repair drops it and its entries.
    let mut undecodable = std::collections::HashSet::new();
    for item in s.raw_entries(slots.cookies)? {
        let (key, bytes) = item?;
        let Some(oid) = RecordKey::parse_oid(key) else {
            continue;
        };
        match CookieView::new(bytes) {
            Ok(view) => {
                if let Some(authid) = view.authid() {
                    expected.insert(AuthidKey::key(slot, authid, oid), (oid, authid.to_string()));
                }
            }
            Err(_) => {
                undecodable.insert(oid);
            }
        }
    }
    let mut problems = Vec::new();
    for item in s.raw_table(slot)? {
        let (rest, _) = item?;
        let key = AuthidKey::join(slot, rest);
        if expected.remove(&key).is_none()
            && !AuthidKey::parse_oid(&key).is_some_and(|oid| undecodable.contains(&oid))
        {
            problems.push(Problem::AuthidIndexExtra { key: hex(rest) });
        }
    }
    for (oid, authid) in expected.into_values() {
        problems.push(Problem::AuthidIndexMissing { oid, authid });
    }
    Ok(problems)
}
