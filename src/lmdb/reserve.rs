//! Disk space kept for deletions: a logout must succeed on a full disk.
//!
//! LMDB writes every commit's pages with `pwrite` into data.mdb (never through the map: no
//! `MDB_WRITEMAP`), and copies on write: even a deletion needs fresh pages, which come from the
//! free list or else from the end of the file. Writing a page into a part of the file whose
//! blocks are already allocated needs no space from the file system (on ext4, XFS and tmpfs;
//! not on copy-on-write file systems such as btrfs or ZFS, where no reservation holds). So
//! data.mdb is kept allocated past its last used page (`fallocate` with `FALLOC_FL_KEEP_SIZE`:
//! blocks, not length, so its length still tells where the data ends):
//!
//! - [`DELETION_RESERVE`] bytes (less on a small file system) are for deletions (logout,
//!   `delete`, `logout_authid`, purge, clear): they commit into it whatever the file system
//!   says.
//! - Every other write (creates, logins, imports) commits only while the allocated space past
//!   the last used page also covers what that write itself may take: as much again, or 128
//!   bytes per write operation of a large batch. That is an estimate (a batch that scatters
//!   many writes over the store can take more, and then leaves less for deletions until the
//!   next top-up). The check runs just before the commit, while the transaction holds LMDB's
//!   writer lock, so no commit of any process comes between the check and the commit. When
//!   the space cannot be allocated, the write fails with [`Error::DiskFull`] before anything
//!   is written, and the reserve stays whole for deletions.
//! - After every commit the reserve is topped up again when the file system has room (a
//!   failure there is not an error: the commit is done, and the next non-deletion write
//!   checks again).
//!
//! The reserve is only as good as LMDB's free list is empty: deletions first reuse the pages
//! earlier commits freed, so on a full disk a long run of logouts goes on as long as no reader
//! keeps old snapshots alive; with one, each logout takes a few fresh pages (about 7 on a
//! small store) and the reserve lasts for dozens of them, until space is freed.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::error::{Error, Result, is_disk_full};

/// Bytes of data.mdb allocated past its last used page that only deletions may use: 256 KiB
/// (64 pages: a logout takes about 7 fresh pages when none can be reused), or 1/64 of a
/// smaller file system (at least 16 KiB), so that a store still fits on a tiny one.
const DELETION_RESERVE: u64 = 256 * 1024;
const MIN_DELETION_RESERVE: u64 = 16 * 1024;

/// What a non-deletion write may be assumed to take from the file per write operation it
/// made: about what a batch of new cookies takes (500 creates took 70 pages here, some 5 write
/// operations each); updates scattered over many leaf pages take more.
const BYTES_PER_WRITE: u64 = 128;

/// The space kept allocated past data.mdb's last used page, for one environment of this
/// process.
pub(crate) struct DiskReserve {
    /// data.mdb, open for writing (`None`: a read-only environment, or a platform or file
    /// system without `fallocate`: no reserve is kept).
    file: Option<File>,
    path: PathBuf,
    /// Bytes kept for deletions ([`DELETION_RESERVE`] or less on a small file system).
    deletion: u64,
    /// The file is known to be allocated up to here (bytes; other processes may have
    /// allocated more).
    allocated: AtomicU64,
    /// The file system refused `fallocate` as unsupported: keep no reserve.
    unsupported: AtomicBool,
}

impl DiskReserve {
    /// The reserve of the data.mdb in `dir`; none for a read-only environment.
    pub(crate) fn open(dir: &Path, readonly: bool) -> DiskReserve {
        let path = dir.join("data.mdb");
        let file = if readonly {
            None
        } else {
            open_for_reserve(&path)
        };
        let deletion = file_system_bytes(dir).map_or(DELETION_RESERVE, |total| {
            (total / 64).clamp(MIN_DELETION_RESERVE, DELETION_RESERVE) / 4096 * 4096
        });
        DiskReserve {
            file,
            path,
            deletion,
            allocated: AtomicU64::new(0),
            unsupported: AtomicBool::new(false),
        }
    }

    /// Before a non-deletion commit that made `writes` write operations, with the data ending
    /// at byte `used` (the last committed transaction's last page; the caller holds the
    /// writer lock): makes sure the file is allocated far enough past `used` that the
    /// deletion reserve survives this commit, else [`Error::DiskFull`].
    pub(crate) fn before_write(
        &self,
        used: u64,
        writes: u64,
        operation: &'static str,
    ) -> Result<()> {
        let own = self.deletion.max(writes.saturating_mul(BYTES_PER_WRITE));
        let need = used.saturating_add(self.deletion).saturating_add(own);
        match self.allocate(used, need) {
            Err(e) if is_disk_full(&self.path, &e) => Err(Error::DiskFull {
                path: self.path.clone(),
                operation,
                committed: None,
                source: e,
            }),
            // Any other failure (an I/O error): the commit will meet it too, or not.
            _ => Ok(()),
        }
    }

    /// After a commit, with the data now ending at byte `used`: tops the reserve up, with
    /// room for the next writes, when the file system has the space. Best effort.
    pub(crate) fn after_commit(&self, used: u64) {
        if self.allocated.load(Ordering::Relaxed) < used.saturating_add(2 * self.deletion) {
            let _ = self.allocate(used, used.saturating_add(4 * self.deletion));
        }
    }

    /// Allocates `from..to` of data.mdb unless this process knows it already is.
    fn allocate(&self, from: u64, to: u64) -> std::io::Result<()> {
        let Some(file) = &self.file else {
            return Ok(());
        };
        if self.unsupported.load(Ordering::Relaxed) || self.allocated.load(Ordering::Relaxed) >= to
        {
            return Ok(());
        }
        match fallocate_keep_size(file, from, to - from) {
            Ok(()) => {
                self.allocated.fetch_max(to, Ordering::Relaxed);
                Ok(())
            }
            Err(e) if unsupported(&e) => {
                self.unsupported.store(true, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}

/// The size of the file system holding `dir` (bytes).
#[cfg(unix)]
#[allow(
    clippy::unnecessary_cast,
    reason = "statvfs's field types differ between platforms"
)]
fn file_system_bytes(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::zeroed();
    // SAFETY: `c` is a NUL-terminated path and `st` points to writable memory of the
    // struct's size; statvfs writes only into it.
    if unsafe { libc::statvfs(c.as_ptr(), st.as_mut_ptr()) } != 0 {
        return None;
    }
    // SAFETY: statvfs returned 0, so it filled the struct.
    let st = unsafe { st.assume_init() };
    Some((st.f_blocks as u64).saturating_mul(st.f_frsize as u64))
}

#[cfg(not(unix))]
fn file_system_bytes(_dir: &Path) -> Option<u64> {
    None
}

/// Whether `fallocate` failed because the file system does not offer it.
fn unsupported(e: &std::io::Error) -> bool {
    #[cfg(unix)]
    if e.raw_os_error() == Some(libc::EOPNOTSUPP) {
        return true;
    }
    matches!(
        e.kind(),
        std::io::ErrorKind::Unsupported | std::io::ErrorKind::InvalidInput
    )
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn open_for_reserve(path: &Path) -> Option<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .ok()
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn open_for_reserve(_path: &Path) -> Option<File> {
    None
}

/// Allocates blocks for `len` bytes at `offset` without changing the file's length.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn fallocate_keep_size(file: &File, offset: u64, len: u64) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
        return Err(std::io::ErrorKind::InvalidInput.into());
    };
    if len == 0 {
        return Ok(());
    }
    loop {
        // SAFETY: a valid descriptor of a regular file opened for writing; with KEEP_SIZE,
        // fallocate only allocates blocks (zeroed where there were none) and never changes
        // bytes already there or the file's length.
        let rc =
            unsafe { libc::fallocate(file.as_raw_fd(), libc::FALLOC_FL_KEEP_SIZE, offset, len) };
        if rc == 0 {
            return Ok(());
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn fallocate_keep_size(_file: &File, _offset: u64, _len: u64) -> std::io::Result<()> {
    Ok(())
}
