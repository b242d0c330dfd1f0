//! LMDB's own file formats, read before or beside LMDB: the meta page of `data.mdb` (format
//! version, page size, B-tree roots) and the lock file `lock.mdb` (lock format, reader table).
//!
//! The layouts are those of LMDB 0.9 (mdb.master, as heed 0.23 and zlmdb 25.12 bundle it) on
//! 64-bit Unix; LMDB 1.0's meta page (format 3) is recognised so it can be refused clearly.
//! Anything that does not look as expected is an error (`data.mdb`) or `None` (`lock.mdb`,
//! whose figures are a best effort).

use std::fs::{self, File};
use std::io::Read;
use std::path::Path;

use serde::Serialize;

use crate::error::{Error, Result};

const LMDB_MAGIC: u32 = 0xBEEF_C0DE;

/// Checks data.mdb's meta pages before LMDB maps it: the format version, and that the file
/// is not shorter than its meta page says (mapping a truncated file would fault on access).
pub(crate) fn check_data_file(data: &Path, len: u64) -> Result<()> {
    if len == 0 {
        return Ok(()); // LMDB initialises an empty file.
    }
    let damaged = |problem: String| Error::Damaged {
        path: data.to_path_buf(),
        problem,
    };
    let mut head = vec![0u8; 4096 * 2];
    let mut file = fs::File::open(data).map_err(|source| Error::Path {
        path: data.to_path_buf(),
        problem: "cannot read data.mdb".into(),
        source,
    })?;
    let mut filled = 0;
    while filled < head.len() {
        match file.read(&mut head[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::Io(e)),
        }
    }
    let head = &head[..filled];
    let u32_at = |off: usize| {
        head.get(off..off + 4)
            .map(|b| u32::from_le_bytes(b.try_into().expect("4")))
    };
    let u64_at = |off: usize| {
        head.get(off..off + 8)
            .map(|b| u64::from_le_bytes(b.try_into().expect("8")))
    };
    // Meta page 0: a page header (16 bytes in LMDB 0.9; 24 in LMDB 1.0, which adds the
    // page's txnid), then MDB_meta (magic, version, ...).
    let version = if u32_at(16) == Some(LMDB_MAGIC) {
        u32_at(20).unwrap_or(0)
    } else if u32_at(24) == Some(LMDB_MAGIC) {
        u32_at(28).unwrap_or(0)
    } else {
        return Err(Error::NotAStore {
            path: data.to_path_buf(),
            problem: "data.mdb is not an LMDB file (no LMDB magic in its first page)".into(),
        });
    };
    if version != 1 {
        return Err(Error::UnsupportedFormat {
            path: data.to_path_buf(),
            found: version,
            hint: if version == 3 {
                "it was written by LMDB 1.0 (zlmdb 26 creates this format by default, as \
                 Crossbar.io 25.12 installed with pip today does): copy its cookies into a new \
                 store with `cookiestore import NEW_DIR THIS_DIR` (which reads it with the \
                 helper cookiestore-format3, built beside cookiestore; README, \"LMDB format \
                 3\")"
            } else {
                "this LMDB format is not known to cookiestore"
            },
        });
    }
    // MDB_meta: magic 0, version 4, address 8, mapsize 16, dbs 24..120 (free db's md_pad is
    // the page size), last_pg 120, txnid 128.
    let page = u32_at(16 + 24).unwrap_or(0) as u64;
    if !(512..=65536).contains(&page) || !page.is_power_of_two() {
        return Err(damaged(format!(
            "its meta page gives a page size of {page}"
        )));
    }
    // The newer meta page (higher txnid) is the current one. LMDB may leave the file shorter
    // than its last allocated page (pages allocated and freed in one transaction are never
    // written), so the check is that both B-tree roots lie inside the file: a file cut short
    // loses its newest pages, and the roots are written last.
    let base = |meta: usize| meta * page as usize + 16;
    let txnid = |meta: usize| u64_at(base(meta) + 128);
    let current = match (txnid(0), txnid(1), u32_at(base(1))) {
        (Some(t0), Some(t1), Some(LMDB_MAGIC)) if t1 > t0 => 1,
        (Some(_), _, _) => 0,
        _ => return Err(damaged("its meta page is cut short".into())),
    };
    // The length after the meta pages were read: a writer in another process writes a
    // commit's pages before its meta page and never shrinks the file, so the roots the meta
    // page names lie within this length unless the file really is cut short. (The length
    // given, taken before the read, can predate a commit that grew the file meanwhile.)
    let len = file.metadata().map_or(len, |m| m.len().max(len));
    let pages = len / page;
    for (name, offset) in [("free-page", 24 + 40), ("main", 72 + 40)] {
        let root = u64_at(base(current) + offset).unwrap_or(u64::MAX);
        if root != u64::MAX && root >= pages {
            return Err(damaged(format!(
                "data.mdb is truncated: it has {len} bytes ({pages} pages) but its {name} tree \
                 starts at page {root}; restore the store from a copy (`cookiestore copy`) or \
                 an export"
            )));
        }
    }
    Ok(())
}

/// The lock-format word of a lock file (bytes 4..8), read after LMDB refused to open it, so
/// that this process holds no lock on it that closing the file could drop.
pub(crate) fn read_lock_format(lock: &Path) -> Option<u32> {
    let mut word = [0u8; 8];
    let mut f = fs::File::open(lock).ok()?;
    f.read_exact(&mut word).ok()?;
    Some(u32::from_le_bytes(word[4..8].try_into().ok()?))
}

/// Lock file: a 64-byte header (magic, format, last txnid, slots used), a 64-byte writer-mutex
/// line, then one 64-byte line per reader slot (txnid, pid, thread).
const LOCK_HEADER: usize = 128;
const LOCK_SLOT: usize = 64;

/// Reader slots of one lock file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ReaderSlots {
    /// Slots ever used (LMDB's high-water mark).
    pub used: u32,
    /// Slots of live processes reading a snapshot right now.
    pub reading: u32,
    /// Slots of live processes kept for their next read (no snapshot open).
    pub idle: u32,
    /// Slots of processes that no longer exist (LMDB clears them at the next open).
    pub stale: u32,
    /// Whether process liveness could be checked (`/proc`); without it, `stale` is 0.
    pub liveness_checked: bool,
}

/// Reads the reader table of the store in `dir` (`None` when it cannot be read or does not
/// look like LMDB 0.9's).
///
/// Call it before the store is open in this process: closing a descriptor of the lock file
/// drops the process's own POSIX locks on it.
pub fn reader_slots(dir: &Path) -> Option<ReaderSlots> {
    let mut bytes = Vec::new();
    File::open(dir.join("lock.mdb"))
        .ok()?
        .take(16 << 20)
        .read_to_end(&mut bytes)
        .ok()?;
    let u32_at = |off: usize| {
        Some(u32::from_le_bytes(
            bytes.get(off..off + 4)?.try_into().ok()?,
        ))
    };
    let u64_at = |off: usize| {
        Some(u64::from_le_bytes(
            bytes.get(off..off + 8)?.try_into().ok()?,
        ))
    };
    if u32_at(0)? != LMDB_MAGIC {
        return None;
    }
    let used = u32_at(16)?;
    if LOCK_HEADER + used as usize * LOCK_SLOT > bytes.len() {
        return None;
    }
    let proc_fs = Path::new("/proc/self").exists();
    let mut slots = ReaderSlots {
        used,
        liveness_checked: proc_fs,
        ..ReaderSlots::default()
    };
    for i in 0..used as usize {
        let base = LOCK_HEADER + i * LOCK_SLOT;
        let txnid = u64_at(base)?;
        let pid = u32_at(base + 8)?;
        if pid == 0 {
            continue;
        }
        if proc_fs && !Path::new("/proc").join(pid.to_string()).exists() {
            slots.stale += 1;
        } else if txnid == u64::MAX {
            slots.idle += 1;
        } else {
            slots.reading += 1;
        }
    }
    Some(slots)
}
