//! [`repair`] fixes everything but the metadata in one write transaction: records that cannot
//! be decoded (and the older of two records with one value) are appended to a quarantine file
//! first, as JSON lines with their oid and bytes in hex, and then deleted; the value index and
//! the expiry index are rebuilt from the records.

use std::collections::{BTreeMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;

use serde::Serialize;
use uuid::Uuid;

use super::check::{RecInfo, record_problem};
use crate::clock::rfc3339::format_rfc3339_ns;
use crate::error::{Error, Result};
use crate::lmdb::LmdbStore;
use crate::lmdb::keys::{RecordKey, ValueKey};
use crate::lmdb::layout::Slots;
use crate::record::cookie::Cookie;
use crate::record::mark::hex;
use crate::record::value::{self};

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
pub fn repair(store: &LmdbStore, quarantine: &Path) -> Result<RepairReport> {
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
