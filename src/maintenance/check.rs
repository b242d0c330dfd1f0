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
//! [`repair`] fixes everything but the metadata in one write transaction: records that cannot
//! be decoded (and the older of two records with one value) are appended to a quarantine file
//! first, as JSON lines with their oid and bytes in hex, and then deleted; the value index and
//! the expiry index are rebuilt from the records.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;

use serde::Serialize;
use uuid::Uuid;

use crate::clock::rfc3339::format_rfc3339_ns;
use crate::error::{Error, Result};
use crate::lmdb::layout::{
    AuthidKey, COOKIES, EXPIRY_INDEX, ExpiryKey, META_SLOT, RecordKey, STORE_STATE, Slots,
    TableDef, VALUE_INDEX, ValueKey, split_slot,
};
use crate::lmdb::snapshot::Snapshot;
use crate::record::codec::CookieView;
use crate::record::cookie::Cookie;
use crate::record::mark::hex;
use crate::record::value::{self, CookieValue};
use crate::store::CookieStore;

/// One kind of damage found by [`check`].
///
/// Its JSON form (serde) carries a `kind` tag in kebab case, e.g.
/// `{"kind": "value-index-orphan", "value": "…", "oid": "…"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Problem {
    /// A record whose bytes are not a valid `Cookie`.
    UndecodableRecord {
        /// The oid in the record's key.
        oid: Uuid,
        /// What is wrong with the bytes.
        problem: String,
    },
    /// A key of the Cookies table that is not the slot and a 16-byte oid.
    MalformedRecordKey {
        /// The whole key, in hex.
        key: String,
    },
    /// A record whose stored `oid` field differs from the oid in its key.
    RecordOidMismatch {
        /// The oid in the key (what the value index points at).
        oid: Uuid,
        /// The oid stored in the record.
        stored: Uuid,
    },
    /// A record whose value is empty or longer than an LMDB key allows: it can never be found.
    UnindexableValue {
        /// The record's oid.
        oid: Uuid,
        /// The value's length in bytes.
        len: usize,
    },
    /// Two or more records carry the same value (cfxdb does not prevent it).
    DuplicateValue {
        /// The value.
        value: String,
        /// The records, most recently created first.
        oids: Vec<Uuid>,
    },
    /// A value-index entry whose cookie record does not exist.
    ValueIndexOrphan {
        /// The indexed value.
        value: String,
        /// The oid it points at.
        oid: Uuid,
    },
    /// A value-index entry pointing at a record that carries another value.
    ValueIndexWrongCookie {
        /// The indexed value.
        value: String,
        /// The oid it points at.
        oid: Uuid,
        /// The value that record carries.
        record_value: String,
    },
    /// A value-index entry that cannot be read (value not UTF-8, oid not 16 bytes).
    MalformedValueIndexEntry {
        /// The key after the slot, in hex.
        key: String,
        /// What is wrong.
        problem: String,
    },
    /// A record whose value has no index entry, or one that points at another record.
    ValueIndexMissing {
        /// The record's oid.
        oid: Uuid,
        /// Its value.
        value: String,
        /// Where the index entry for that value points instead, if it exists.
        indexed_to: Option<Uuid>,
    },
    /// An expiry-index entry whose cookie record does not exist.
    ExpiryIndexOrphan {
        /// The oid in the entry.
        oid: Uuid,
        /// The expiry in the entry (ns).
        expires_at: u64,
    },
    /// A record without an expiry-index entry.
    ExpiryIndexMissing {
        /// The record's oid.
        oid: Uuid,
        /// When it expires (ns).
        expires_at: u64,
    },
    /// An expiry-index entry whose time is not the record's expiry.
    ExpiryIndexWrongTime {
        /// The record's oid.
        oid: Uuid,
        /// The time in the entry (ns).
        indexed: u64,
        /// When the record expires (ns).
        actual: u64,
    },
    /// An expiry-index entry that is not 8 bytes of time and a 16-byte oid.
    MalformedExpiryIndexEntry {
        /// The key after the slot, in hex.
        key: String,
    },
    /// A record created after the store's clock says it is now (the clock was set back, or the
    /// record was written with a wrong clock): it would live longer than its max_age.
    CreatedInFuture {
        /// The record's oid.
        oid: Uuid,
        /// When it claims to have been created (ns).
        created: u64,
        /// The store's clock when checked (ns).
        now: u64,
    },
    /// A record with an authid but no authid-index entry.
    AuthidIndexMissing {
        /// The record's oid.
        oid: Uuid,
        /// Its authid.
        authid: String,
    },
    /// An authid-index entry that no record carrying that authid matches.
    AuthidIndexExtra {
        /// The key after the slot, in hex.
        key: String,
    },
    /// The table metadata (slot 0) or the store state is damaged or inconsistent.
    Metadata {
        /// What is wrong.
        problem: String,
    },
}

impl Problem {
    /// The kebab-case name of the kind of damage, as in the JSON form.
    pub fn kind(&self) -> &'static str {
        match self {
            Problem::UndecodableRecord { .. } => "undecodable-record",
            Problem::MalformedRecordKey { .. } => "malformed-record-key",
            Problem::RecordOidMismatch { .. } => "record-oid-mismatch",
            Problem::UnindexableValue { .. } => "unindexable-value",
            Problem::DuplicateValue { .. } => "duplicate-value",
            Problem::ValueIndexOrphan { .. } => "value-index-orphan",
            Problem::ValueIndexWrongCookie { .. } => "value-index-wrong-cookie",
            Problem::MalformedValueIndexEntry { .. } => "malformed-value-index-entry",
            Problem::ValueIndexMissing { .. } => "value-index-missing",
            Problem::ExpiryIndexOrphan { .. } => "expiry-index-orphan",
            Problem::ExpiryIndexMissing { .. } => "expiry-index-missing",
            Problem::ExpiryIndexWrongTime { .. } => "expiry-index-wrong-time",
            Problem::MalformedExpiryIndexEntry { .. } => "malformed-expiry-index-entry",
            Problem::CreatedInFuture { .. } => "created-in-future",
            Problem::AuthidIndexMissing { .. } => "authid-index-missing",
            Problem::AuthidIndexExtra { .. } => "authid-index-extra",
            Problem::Metadata { .. } => "metadata",
        }
    }

    /// Whether `repair` fixes this kind of damage (everything but the metadata and a
    /// creation time in the future).
    pub fn repairable(&self) -> bool {
        !matches!(
            self,
            Problem::Metadata { .. } | Problem::CreatedInFuture { .. }
        )
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = format_rfc3339_ns;
        match self {
            Problem::UndecodableRecord { oid, problem } => {
                write!(f, "record {oid} cannot be decoded: {problem}")
            }
            Problem::MalformedRecordKey { key } => {
                write!(f, "Cookies key {key} is not the slot and a 16-byte oid")
            }
            Problem::RecordOidMismatch { oid, stored } => {
                write!(f, "record {oid} stores another oid, {stored}")
            }
            Problem::UnindexableValue { oid, len } => write!(
                f,
                "record {oid} has a {len}-byte value, which cannot be an index key \
                 (1 to {} bytes)",
                CookieValue::MAX_LEN
            ),
            Problem::DuplicateValue { value, oids } => {
                let oids: Vec<String> = oids.iter().map(Uuid::to_string).collect();
                write!(
                    f,
                    "value {value:?} is carried by {} records: {}",
                    oids.len(),
                    oids.join(", ")
                )
            }
            Problem::ValueIndexOrphan { value, oid } => {
                write!(
                    f,
                    "value index entry {value:?} points at {oid}, which has no record"
                )
            }
            Problem::ValueIndexWrongCookie {
                value,
                oid,
                record_value,
            } => write!(
                f,
                "value index entry {value:?} points at {oid}, whose value is {record_value:?}"
            ),
            Problem::MalformedValueIndexEntry { key, problem } => {
                write!(f, "value index entry {key} cannot be read: {problem}")
            }
            Problem::ValueIndexMissing {
                oid,
                value,
                indexed_to: None,
            } => write!(f, "record {oid} (value {value:?}) has no value index entry"),
            Problem::ValueIndexMissing {
                oid,
                value,
                indexed_to: Some(other),
            } => write!(
                f,
                "record {oid} (value {value:?}): the value index points at {other} instead"
            ),
            Problem::ExpiryIndexOrphan { oid, expires_at } => write!(
                f,
                "expiry index entry ({}, {oid}) has no record",
                t(*expires_at)
            ),
            Problem::ExpiryIndexMissing { oid, expires_at } => write!(
                f,
                "record {oid} (expires {}) has no expiry index entry",
                t(*expires_at)
            ),
            Problem::ExpiryIndexWrongTime {
                oid,
                indexed,
                actual,
            } => write!(
                f,
                "expiry index entry for {oid} says {}, the record expires {}",
                t(*indexed),
                t(*actual)
            ),
            Problem::MalformedExpiryIndexEntry { key } => {
                write!(
                    f,
                    "expiry index key {key} is not 8 bytes of time and a 16-byte oid"
                )
            }
            Problem::CreatedInFuture { oid, created, now } => write!(
                f,
                "record {oid} was created at {}, after now ({}): check the clock",
                t(*created),
                t(*now)
            ),
            Problem::AuthidIndexMissing { oid, authid } => {
                write!(
                    f,
                    "record {oid} (authid {authid:?}) has no authid index entry"
                )
            }
            Problem::AuthidIndexExtra { key } => {
                write!(f, "authid index entry {key} matches no record")
            }
            Problem::Metadata { problem } => write!(f, "metadata: {problem}"),
        }
    }
}

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
struct RecInfo {
    value: String,
    created: u64,
    expires_at: u64,
}

/// Checks one snapshot of `store`: every record decodes, the records, the value index and the
/// expiry index agree both ways, and the metadata is sane.
///
/// Errors only when the store cannot be read at all (LMDB errors); damage is reported in the
/// [`CheckReport`]. Memory grows with the number of cookies (their values are held).
pub fn check(store: &CookieStore) -> Result<CheckReport> {
    let now = store.now_ns();
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
fn record_problem(e: Error) -> String {
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

/// One record that [`repair`] moved to the quarantine file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Quarantined {
    /// The oid in its key (none when the key itself is malformed).
    pub oid: Option<Uuid>,
    /// Why it was removed.
    pub reason: String,
}

/// What [`repair`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct RepairReport {
    /// Records moved to the quarantine file and deleted.
    pub quarantined: Vec<Quarantined>,
    /// Values carried by several records: (value, the record kept, the records quarantined).
    pub duplicates: Vec<(String, Uuid, Vec<Uuid>)>,
    /// Records whose stored oid was rewritten to the oid of their key.
    pub oid_fixed: Vec<Uuid>,
    /// Value-index entries before and after the rebuild.
    pub value_index_entries: (u64, u64),
    /// Expiry-index entries before and after the rebuild (0, 0 without an expiry index).
    pub expiry_index_entries: (u64, u64),
    /// Records left in the store.
    pub records: u64,
}

/// Repairs `store` in one write transaction and returns what it did.
///
/// Records that cannot be decoded, that have a malformed key or a value that cannot be
/// indexed, and the older records of a value several records carry, are first appended to
/// `quarantine` (JSON lines: `oid`, `key` and `hex` of the bytes, `reason`, `quarantined_at`;
/// the file is fsynced), then deleted. A record whose stored oid differs from its key is
/// rewritten with its key's oid. Then the value index and the expiry index are rebuilt from
/// the records. Metadata damage is not repaired: [`Error::CorruptMetadata`] when the cookie
/// tables cannot be located.
///
/// The store must be writable.
pub fn repair(store: &CookieStore, quarantine: &Path) -> Result<RepairReport> {
    // Keys whose record is already in the quarantine file: the batch may run more than once.
    let mut written: HashSet<Vec<u8>> = HashSet::new();
    store.batch("repair the store", |b| {
        let slots: Slots = b.view().slots().ok_or_else(|| {
            Error::metadata("the cookie tables are missing from the metadata (slot 0)")
        })?;
        let now = b.now_ns();
        let mut keep: BTreeMap<Uuid, RecInfo> = BTreeMap::new();
        let mut dropped: Vec<(Vec<u8>, Option<Uuid>, String)> = Vec::new();
        let mut fix: Vec<Cookie> = Vec::new();
        for item in b.view().raw_entries(slots.cookies)? {
            let (key, bytes) = item?;
            let Some(oid) = RecordKey::parse_oid(key) else {
                dropped.push((
                    key.to_vec(),
                    None,
                    "the key is not the slot and a 16-byte oid".into(),
                ));
                continue;
            };
            match Cookie::decode(bytes) {
                Err(e) => dropped.push((key.to_vec(), Some(oid), record_problem(e))),
                Ok(c) if !value::fits_index(&c.value) => dropped.push((
                    key.to_vec(),
                    Some(oid),
                    format!("its {}-byte value cannot be an index key", c.value.len()),
                )),
                Ok(mut c) => {
                    if !c.oid.is_nil() && c.oid != oid {
                        c.oid = oid;
                        fix.push(c.clone());
                    }
                    keep.insert(
                        oid,
                        RecInfo {
                            expires_at: c.expires_at(),
                            created: c.created,
                            value: c.value,
                        },
                    );
                }
            }
        }

        // One record per value: the most recently created (then the highest oid) stays.
        let mut by_value: BTreeMap<&str, Vec<Uuid>> = BTreeMap::new();
        for (oid, rec) in &keep {
            by_value.entry(rec.value.as_str()).or_default().push(*oid);
        }
        let mut duplicates = Vec::new();
        for (value, mut oids) in by_value {
            if oids.len() < 2 {
                continue;
            }
            oids.sort_by_key(|oid| std::cmp::Reverse((keep[oid].created, *oid)));
            let kept = oids.remove(0);
            for oid in &oids {
                dropped.push((
                    record_key(slots.cookies, *oid),
                    Some(*oid),
                    format!("duplicate value {value:?}: the later record {kept} was kept"),
                ));
            }
            duplicates.push((value.to_string(), kept, oids));
        }
        for (_, oid, _) in &dropped {
            if let Some(oid) = oid {
                keep.remove(oid);
            }
        }
        fix.retain(|c| keep.contains_key(&c.oid));

        // Quarantine first (fsynced), then delete.
        let pending: Vec<_> = dropped
            .iter()
            .filter(|(k, ..)| !written.contains(k))
            .collect();
        if !pending.is_empty() {
            let mut lines = String::new();
            for (key, oid, reason) in &pending {
                let bytes = b.raw_get(key)?.unwrap_or_default();
                let line = serde_json::json!({
                    "oid": oid.map(|o| o.to_string()),
                    "key": hex(key),
                    "hex": hex(&bytes),
                    "reason": reason,
                    "quarantined_at": format_rfc3339_ns(now),
                });
                lines.push_str(&line.to_string());
                lines.push('\n');
            }
            append_synced(quarantine, lines.as_bytes())?;
            written.extend(pending.iter().map(|(k, ..)| k.clone()));
        }
        for (key, ..) in &dropped {
            b.raw_delete(key)?;
        }
        // Deletions by maintenance are revocations: live sessions of those cookies are cut.
        for (_, oid, _) in &dropped {
            if let Some(oid) = oid {
                b.append_revocation(crate::feed::kind::RevocationKind::Maintenance, *oid, "")?;
            }
        }
        for cookie in &fix {
            b.raw_put(&record_key(slots.cookies, cookie.oid), &cookie.encode()?)?;
        }

        // Rebuild both indexes.
        let value_before = b.clear_slot(slots.by_value)?;
        for (oid, rec) in &keep {
            let key = ValueKey::new(slots.by_value, &rec.value)?;
            b.raw_put(key.as_bytes(), oid.as_bytes())?;
        }
        let mut expiry = (0, 0);
        if let Some(slot) = slots.by_expiry {
            expiry.0 = b.view().raw_table(slot)?.count() as u64;
            b.rebuild_expiry_index()?;
            expiry.1 = b.view().raw_table(slot)?.count() as u64;
        }
        b.rebuild_authid_index()?;
        // The value index was rebuilt: a value may now lead to another record.
        b.append_revocation(crate::feed::kind::RevocationKind::Flush, Uuid::nil(), "")?;
        Ok(RepairReport {
            quarantined: dropped
                .iter()
                .map(|(_, oid, reason)| Quarantined {
                    oid: *oid,
                    reason: reason.clone(),
                })
                .collect(),
            duplicates,
            oid_fixed: fix.iter().map(|c| c.oid).collect(),
            value_index_entries: (value_before, keep.len() as u64),
            expiry_index_entries: expiry,
            records: keep.len() as u64,
        })
    })
}

fn record_key(slot: u16, oid: Uuid) -> Vec<u8> {
    RecordKey::new(slot, oid).as_bytes().to_vec()
}

/// Appends `bytes` to `path` and fsyncs it (and its directory when the file is new).
fn append_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let path_err = |problem: &str, source| Error::Path {
        path: path.to_path_buf(),
        problem: problem.to_string(),
        source,
    };
    let existed = path.exists();
    let mut options = OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // Never through a planted symlink; readable by the owner only (it holds cookies).
        options.custom_flags(libc::O_NOFOLLOW).mode(0o600);
    }
    let mut file = options
        .open(path)
        .map_err(|e| path_err("cannot open the quarantine file (a symlink is refused)", e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| path_err("cannot write the quarantine file", e))?;
    if !existed && let Some(dir) = path.parent() {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| path_err("cannot sync the quarantine file's directory", e))?;
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
