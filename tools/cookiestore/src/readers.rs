//! LMDB's reader table, read from `lock.mdb`: which slots are held by live processes and which
//! by processes that are gone (stale).
//!
//! heed does not expose `mdb_reader_list`, so the table is read from the file. The layout is
//! that of LMDB 0.9 (mdb.master) on 64-bit Unix with POSIX robust mutexes: a 64-byte header
//! (magic, format, last txnid, number of slots used), a 64-byte writer-mutex line, then one
//! 64-byte line per reader slot (txnid, pid, thread). Anything that does not look like that
//! gives `None`: the figures are a best effort, never a reason to fail.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use serde::Serialize;

const LMDB_MAGIC: u32 = 0xBEEF_C0DE;
const HEADER: usize = 128;
const SLOT: usize = 64;

/// Reader slots of one lock file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
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

/// Reads the reader table of the store in `dir`.
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
    if HEADER + used as usize * SLOT > bytes.len() {
        return None;
    }
    let proc_fs = Path::new("/proc/self").exists();
    let mut slots = ReaderSlots {
        used,
        liveness_checked: proc_fs,
        ..ReaderSlots::default()
    };
    for i in 0..used as usize {
        let base = HEADER + i * SLOT;
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
