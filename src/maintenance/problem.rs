//! The kinds of damage [`check`](super::check) reports, with what each means and what to do.

use std::fmt;

use serde::Serialize;
use uuid::Uuid;

use crate::clock::rfc3339::format_rfc3339_ns;
use crate::record::value::CookieValue;

/// One kind of damage found by [`check`](super::check()).
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
