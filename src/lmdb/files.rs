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

/// Checks data.mdb before LMDB maps it: the format version, and that the file is not shorter
/// than its current meta page says (touching a page of a mapped file beyond its end kills the
/// process with SIGBUS).
///
/// The current meta page is the newer one (the higher txnid). Every page up to its last used
/// page (`mm_last_pg`) is either part of that snapshot's trees or listed as free in its
/// free-page tree (lmdb's own invariant), and only free pages may be missing from the file:
/// LMDB never writes a page that one transaction allocated and freed again, so after such a
/// transaction the file can legitimately end a few pages short of the last used page. So a
/// file that reaches the last used page is whole; a shorter one is whole only when every page
/// it lacks is listed in the free-page tree (read here with plain reads, each page checked to
/// lie inside the file), else it is truncated and refused with [`Error::Damaged`].
///
/// Another process may commit meanwhile: it writes a transaction's pages before the meta page
/// that names them and never shrinks the file, so the length is taken after the meta page is
/// read, and a verdict about missing pages counts only when the meta page did not change
/// while the free-page tree was read.
pub(crate) fn check_data_file(data: &Path, len: u64) -> Result<()> {
    if len == 0 {
        return Ok(()); // LMDB initialises an empty file.
    }
    let damaged = |problem: String| Error::Damaged {
        path: data.to_path_buf(),
        problem,
    };
    let file = fs::File::open(data).map_err(|source| Error::Path {
        path: data.to_path_buf(),
        problem: "cannot read data.mdb".into(),
        source,
    })?;
    for _ in 0..CHECK_ATTEMPTS {
        let meta = read_meta(data, &file)?;
        let page = meta.page_size;
        // The length after the meta page was read (see above); the length given, taken
        // before, can only be smaller unless the file was cut meanwhile.
        let len = file.metadata().map_or(len, |m| m.len().max(len));
        let pages = len / page;
        for (name, root) in [("free-page", meta.free_root), ("main", meta.main_root)] {
            if root != P_INVALID && root >= pages {
                return Err(damaged(format!(
                    "data.mdb is truncated: it has {len} bytes ({pages} pages) but its {name} \
                     tree starts at page {root}; {TRUNCATED_ADVICE}"
                )));
            }
        }
        let needed = meta.last_pg.saturating_add(1).saturating_mul(page);
        if needed <= len {
            return Ok(());
        }
        // Pages `pages..=last_pg` are missing: whole only if every one of them is free.
        let verdict = missing_pages_are_free(&file, &meta, pages);
        if read_meta(data, &file)? != meta {
            continue; // a commit meanwhile: judge the new state
        }
        return match verdict {
            Ok(true) => Ok(()),
            Ok(false) => Err(damaged(format!(
                "data.mdb is truncated: it has {len} bytes, but its last used page (page {}, \
                 transaction {}) needs {needed} bytes, and pages that hold data are missing \
                 (a copy that was interrupted, or a disk error); {TRUNCATED_ADVICE}",
                meta.last_pg, meta.txnid
            ))),
            Err(problem) => Err(damaged(format!(
                "data.mdb is truncated: it has {len} bytes, but its last used page (page {}, \
                 transaction {}) needs {needed} bytes, and its free-page tree cannot be read \
                 ({problem}); {TRUNCATED_ADVICE}",
                meta.last_pg, meta.txnid
            ))),
        };
    }
    // Commits kept coming while the free pages were read: a live writer uses the file.
    Ok(())
}

/// What to do about a truncated data.mdb.
const TRUNCATED_ADVICE: &str = "restore the store from an export (`cookiestore restore`) or \
    from a good copy (`cookiestore copy`); `cookiestore repair` cannot fix a truncated file";

/// How often [`check_data_file`] reads the meta page again when commits keep changing it.
const CHECK_ATTEMPTS: usize = 8;

/// LMDB's "no page" (an empty tree's root).
const P_INVALID: u64 = u64::MAX;

/// The current meta page of data.mdb: what the checks need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Meta {
    page_size: u64,
    txnid: u64,
    last_pg: u64,
    free_root: u64,
    main_root: u64,
}

/// Reads both meta pages and returns the current one (the higher txnid); errors when data.mdb
/// is not an LMDB file, has another format version, or its meta page is damaged.
fn read_meta(data: &Path, file: &File) -> Result<Meta> {
    let damaged = |problem: String| Error::Damaged {
        path: data.to_path_buf(),
        problem,
    };
    // The page size is in the first meta page; the second meta page starts at that offset.
    let head = read_at_most(file, 0, 2 * 65536).map_err(Error::Io)?;
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
                 helper cookiestore-format3, built beside cookiestore; docs/interop.md, \"LMDB \
                 format 3\")"
            } else {
                "this LMDB format is not known to cookiestore"
            },
        });
    }
    // MDB_meta: magic 0, version 4, address 8, mapsize 16, dbs 24..120 (two MDB_db of 48
    // bytes: the free-page tree's, whose md_pad is the page size, and the main tree's, each
    // with its root at 40), last_pg 120, txnid 128.
    let page = u32_at(16 + 24).unwrap_or(0) as u64;
    if !(512..=65536).contains(&page) || !page.is_power_of_two() {
        return Err(damaged(format!(
            "its meta page gives a page size of {page}"
        )));
    }
    let base = |meta: usize| meta * page as usize + 16;
    let txnid = |meta: usize| u64_at(base(meta) + 128);
    let current = match (txnid(0), txnid(1), u32_at(base(1))) {
        (Some(t0), Some(t1), Some(LMDB_MAGIC)) if t1 > t0 => 1,
        (Some(_), _, _) => 0,
        _ => return Err(damaged("its meta page is cut short".into())),
    };
    let field = |off: usize| u64_at(base(current) + off).unwrap_or(P_INVALID);
    Ok(Meta {
        page_size: page,
        txnid: field(128),
        last_pg: field(120),
        free_root: field(24 + 40),
        main_root: field(72 + 40),
    })
}

/// Up to `max` bytes of `file` from `offset` (fewer at its end).
fn read_at_most(file: &File, offset: u64, max: usize) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; max];
    let mut filled = 0;
    while filled < max {
        match read_at(file, &mut buf[filled..], offset + filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    buf.truncate(filled);
    Ok(buf)
}

#[cfg(unix)]
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(file, buf, offset)
}

#[cfg(windows)]
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    std::os::windows::fs::FileExt::seek_read(file, buf, offset)
}

/// LMDB 0.9's page layout (64-bit): page number (8), pad (2), flags (2), lower/upper bounds
/// of the free space (2 + 2; an overflow page's page count instead), then the node offsets.
const PAGE_HEADER: usize = 16;
const P_BRANCH: u16 = 0x01;
const P_LEAF: u16 = 0x02;
const P_OVERFLOW: u16 = 0x04;
/// A leaf node whose data lies on overflow pages (its data is their first page number).
const F_BIGDATA: u16 = 0x01;
/// LMDB's cursor stack depth: no tree is deeper.
const MAX_DEPTH: usize = 32;

/// Whether every page `first..=meta.last_pg` is listed in the free-page tree of `meta`'s
/// snapshot; `Err` says why the tree cannot be read (a page of it outside the file or not
/// what it should be). Reads only the tree's pages; memory grows with the free pages listed
/// at or past `first`, which the file itself bounds.
fn missing_pages_are_free(file: &File, meta: &Meta, first: u64) -> Result<bool, String> {
    let page = meta.page_size;
    let in_file = first; // pages wholly inside the file
    let last = meta.last_pg;
    if meta.free_root == P_INVALID {
        return Ok(false); // nothing is free
    }
    let read_page = |pgno: u64| -> Result<Vec<u8>, String> {
        if pgno >= in_file {
            return Err(format!("its page {pgno} lies past the end of the file"));
        }
        let bytes = read_at_most(file, pgno * page, page as usize).map_err(|e| e.to_string())?;
        if bytes.len() as u64 != page {
            return Err(format!("its page {pgno} is cut short"));
        }
        let stored = u64::from_le_bytes(bytes[..8].try_into().expect("8"));
        if stored != pgno {
            return Err(format!("page {pgno} says it is page {stored}"));
        }
        Ok(bytes)
    };
    let u16_at = |b: &[u8], off: usize| {
        b.get(off..off + 2)
            .map(|x| u16::from_le_bytes(x.try_into().expect("2")))
    };
    let mut free: Vec<u64> = Vec::new();
    let mut keep = |pgno: u64| {
        if (first..=last).contains(&pgno) {
            free.push(pgno);
        }
    };
    let mut stack = vec![(meta.free_root, 0usize)];
    let mut visited = 0u64;
    while let Some((pgno, depth)) = stack.pop() {
        visited += 1;
        if depth >= MAX_DEPTH || visited > in_file {
            return Err("it is deeper or larger than the file allows".into());
        }
        let p = read_page(pgno)?;
        let flags = u16_at(&p, 10).unwrap_or(0);
        let lower = u16_at(&p, 12).unwrap_or(0) as usize;
        if lower < PAGE_HEADER || lower > p.len() {
            return Err(format!("page {pgno} has a bad header"));
        }
        let nodes = (lower - PAGE_HEADER) / 2;
        for i in 0..nodes {
            let at = u16_at(&p, PAGE_HEADER + 2 * i).unwrap_or(0) as usize;
            let bad = || format!("page {pgno} has a node outside it");
            let header = p.get(at..at + 8).ok_or_else(bad)?;
            let lo = u16::from_le_bytes([header[0], header[1]]) as u64;
            let hi = u16::from_le_bytes([header[2], header[3]]) as u64;
            let node_flags = u16::from_le_bytes([header[4], header[5]]);
            let ksize = u16::from_le_bytes([header[6], header[7]]) as usize;
            if flags & P_BRANCH != 0 {
                stack.push((lo | hi << 16 | (node_flags as u64) << 32, depth + 1));
                continue;
            }
            if flags & P_LEAF == 0 {
                return Err(format!("page {pgno} is neither a branch nor a leaf"));
            }
            let size = lo | hi << 16;
            let data = at + 8 + ksize;
            if node_flags & F_BIGDATA != 0 {
                let ov = p.get(data..data + 8).ok_or_else(bad)?;
                let ov = u64::from_le_bytes(ov.try_into().expect("8"));
                let head = read_page(ov)?;
                if u16_at(&head, 10).unwrap_or(0) & P_OVERFLOW == 0 {
                    return Err(format!("page {ov} should be an overflow page"));
                }
                let span = (PAGE_HEADER as u64 + size).div_ceil(page);
                if ov.checked_add(span).is_none_or(|end| end > in_file) {
                    return Err(format!("the overflow pages from {ov} lie past the end"));
                }
                read_idl(file, ov * page + PAGE_HEADER as u64, size, &mut keep)?;
            } else {
                let bytes = p.get(data..data + size as usize).ok_or_else(bad)?;
                idl_entries(bytes, &mut keep)?;
            }
        }
    }
    free.sort_unstable();
    free.dedup();
    Ok(free.len() as u64 == last - first + 1)
}

/// Calls `keep` with each page number of the IDL (a count, then that many page numbers, all
/// u64) held in `bytes`.
fn idl_entries(bytes: &[u8], keep: &mut impl FnMut(u64)) -> Result<(), String> {
    let mut words = bytes
        .chunks_exact(8)
        .map(|w| u64::from_le_bytes(w.try_into().expect("8")));
    let count = words.next().unwrap_or(0);
    if count > (bytes.len() / 8).saturating_sub(1) as u64 {
        return Err(format!("a free-page list claims {count} pages"));
    }
    words.take(count as usize).for_each(keep);
    Ok(())
}

/// [`idl_entries`] for an IDL of `size` bytes at `offset` of `file`, read in chunks.
fn read_idl(file: &File, offset: u64, size: u64, keep: &mut impl FnMut(u64)) -> Result<(), String> {
    const CHUNK: u64 = 1 << 16;
    let mut count: Option<u64> = None;
    let mut seen = 0u64;
    let mut at = 0u64;
    while at < size {
        let want = CHUNK.min(size - at) as usize;
        let bytes = read_at_most(file, offset + at, want).map_err(|e| e.to_string())?;
        if bytes.len() != want {
            return Err("a free-page list is cut short".into());
        }
        for w in bytes.chunks_exact(8) {
            let w = u64::from_le_bytes(w.try_into().expect("8"));
            match count {
                None => {
                    if w > (size / 8).saturating_sub(1) {
                        return Err(format!("a free-page list claims {w} pages"));
                    }
                    count = Some(w);
                }
                Some(n) if seen < n => {
                    keep(w);
                    seen += 1;
                }
                Some(_) => return Ok(()),
            }
        }
        at += want as u64;
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

/// Checks lock.mdb (open as `file`) before LMDB maps it. LMDB trusts a lock file that another
/// process holds (it initialises one only when no process has it open): a count of used
/// reader slots beyond the slots the file holds makes every reader and writer walk past the
/// end of the map and crash (SIGSEGV). Such a file is refused with [`Error::Damaged`]; one
/// that nobody holds is left to LMDB, which rebuilds it.
#[cfg(unix)]
pub(crate) fn check_lock_file(lock: &Path, file: &File) -> Result<()> {
    // The lock is asked about first, and the file read after: a shared lock is taken only once
    // the lock file is initialised, so what is read after seeing one is the initialised file.
    // (Read before, it could be a new file's zeros that its creator has since initialised.)
    if !in_use_by_another_process(file) {
        return Ok(());
    }
    let Ok(size) = file.metadata().map(|m| m.len()) else {
        return Ok(());
    };
    let Ok(head) = read_at_most(file, 0, 24) else {
        return Ok(());
    };
    let u32_at = |off: usize| {
        head.get(off..off + 4)
            .map(|b| u32::from_le_bytes(b.try_into().expect("4")))
    };
    if head.is_empty() {
        return Ok(());
    }
    let damaged = |problem: String| Error::Damaged {
        path: lock.to_path_buf(),
        problem: format!(
            "{problem}, and another process has it open, so LMDB would trust it and crash; \
             stop every process that has the store open (router workers, cookiestore \
             commands): the first open after that rebuilds lock.mdb (should it not, delete \
             lock.mdb then, and never while any process may still have the store open)"
        ),
    };
    if u32_at(0) != Some(LMDB_MAGIC) {
        return Err(damaged(
            "lock.mdb is not an LMDB lock file (no LMDB magic)".into(),
        ));
    }
    // LMDB's lock table: the header lines, then at least one reader slot.
    if size < (LOCK_HEADER + LOCK_SLOT) as u64 {
        return Err(damaged(format!(
            "lock.mdb has {size} bytes, less than LMDB's lock table needs"
        )));
    }
    let slots = (size - LOCK_HEADER as u64) / LOCK_SLOT as u64;
    let used = u32_at(16).unwrap_or(u32::MAX) as u64;
    if used > slots {
        return Err(damaged(format!(
            "lock.mdb says {used} reader slots are in use, but it holds {slots}"
        )));
    }
    Ok(())
}

/// Whether another process has the environment open and initialised: every such process
/// holds a shared lock on lock.mdb's first byte (LMDB's "is anyone using it" lock). An
/// exclusive lock there is a process initialising a new lock file, which LMDB makes every
/// other opener wait for (the file is in flux until then, so it is not judged). Asking
/// (F_GETLK) takes no lock.
#[cfg(unix)]
fn in_use_by_another_process(file: &File) -> bool {
    use std::os::fd::AsRawFd;
    // SAFETY: flock is plain data; all-zero is a valid value for every field.
    let mut probe: libc::flock = unsafe { std::mem::zeroed() };
    probe.l_type = libc::F_WRLCK as _;
    probe.l_whence = libc::SEEK_SET as _;
    probe.l_start = 0;
    probe.l_len = 1;
    // SAFETY: a valid descriptor and a pointer to a flock struct that F_GETLK fills in.
    let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETLK, &mut probe) };
    rc == 0 && i32::from(probe.l_type) == libc::F_RDLCK
}

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
