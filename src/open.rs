//! Opening an environment: the directory, the data file's format and length checks, and
//! heed's (unsafe) open, kept in this one place.

use std::path::{Path, PathBuf};

use heed::types::Bytes;

use crate::config::StoreOptions;
use crate::error::{Error, Result};
use crate::store::{Shared, page_size};
use heed::{CommitOrAbort, EnvFlags, EnvOpenOptions, MdbError};
use std::fs;
use std::io::Read;
use std::sync::{OnceLock, RwLock};

pub(crate) fn prepare_dir(path: &Path, options: &StoreOptions) -> Result<PathBuf> {
    let path_err = |problem: &str, source| Error::Path {
        path: path.to_path_buf(),
        problem: problem.to_string(),
        source,
    };
    match fs::metadata(path) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => {
            return Err(Error::NotAStore {
                path: path.to_path_buf(),
                problem: "it is a file; a store is a directory holding data.mdb and lock.mdb"
                    .into(),
            });
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !options.readonly => {
            create_dir_with_mode(path)
                .map_err(|e| path_err("cannot create the store directory", e))?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(path_err(
                "no cookie store here (the directory does not exist); check the path, or \
                 open it writable once to create it",
                e,
            ));
        }
        Err(e) => return Err(path_err("cannot access the store directory", e)),
    }
    let path = path
        .canonicalize()
        .map_err(|e| path_err("cannot resolve the store path", e))?;
    let data = path.join("data.mdb");
    match fs::metadata(&data) {
        Ok(meta) => check_data_file(&data, meta.len())?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if options.readonly {
                return Err(Error::NotAStore {
                    path: path.clone(),
                    problem: "the directory has no data.mdb; check the path".into(),
                });
            }
            let foreign = fs::read_dir(&path)
                .map_err(|e| path_err("cannot list the store directory", e))?
                .filter_map(|e| e.ok())
                .map(|e| e.file_name())
                .find(|n| n != "lock.mdb");
            if let Some(name) = foreign {
                return Err(Error::NotAStore {
                    path: path.clone(),
                    problem: format!(
                        "the directory holds other files ({}) but no data.mdb; refusing to \
                         create a store among them: use an empty or new directory",
                        name.to_string_lossy()
                    ),
                });
            }
        }
        Err(e) => return Err(path_err("cannot access data.mdb", e)),
    }
    Ok(path)
}

pub(crate) fn create_dir_with_mode(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(path)
    }
    #[cfg(not(unix))]
    fs::create_dir_all(path)
}

pub(crate) const LMDB_MAGIC: u32 = 0xBEEF_C0DE;

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
                "it was written by LMDB 1.0 (zlmdb 26 creates this format by default): convert \
                 it by re-creating it with zlmdb's lib_version=\"0.9\", or by exporting the \
                 cookies with zlmdb 26 and loading them with `cookiestore restore` (README, \
                 \"Format 3\")"
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

pub(crate) fn open_env(path: &Path, options: &StoreOptions) -> Result<Shared> {
    let data = path.join("data.mdb");
    let lock = path.join("lock.mdb");
    let new_files = !data.exists();
    let new_lock = !lock.exists();
    let mut flags = EnvFlags::NO_READ_AHEAD;
    if options.readonly {
        flags |= EnvFlags::READ_ONLY;
    }
    if !options.sync {
        flags |= EnvFlags::NO_SYNC;
    }
    let page = page_size();
    let map_size = options.initial_mapsize.min(options.maxsize).div_ceil(page) * page;
    let mut env_options = EnvOpenOptions::new();
    env_options.map_size(map_size as usize);
    // SAFETY: `flags` holds only READ_ONLY, NO_SYNC and NO_READ_AHEAD, none of which
    // weakens LMDB's locking; NO_SYNC trades durability of the last commits on a system crash,
    // never consistency, and only when the caller asked for sync = false.
    unsafe { env_options.flags(flags) };
    // SAFETY: the process-wide registry (held locked by our caller) guarantees this path is
    // opened at most once in this process; the files are used only through LMDB, with its
    // lock file; and the data file was checked above: format 1, B-tree roots inside the file.
    let env = unsafe { env_options.open(path) }.map_err(|e| match e {
        heed::Error::Mdb(MdbError::Invalid) => Error::NotAStore {
            path: path.to_path_buf(),
            problem: "data.mdb is not a valid LMDB file".into(),
        },
        heed::Error::Mdb(MdbError::VersionMismatch) => Error::LockConflict {
            path: path.to_path_buf(),
            found: read_lock_format(&path.join("lock.mdb")),
        },
        heed::Error::Io(source) => Error::Path {
            path: path.to_path_buf(),
            problem: "cannot open the LMDB files (check permissions)".into(),
            source,
        },
        other => Error::from(other),
    })?;
    #[cfg(unix)]
    if options.file_mode != 0o600 {
        use std::os::unix::fs::PermissionsExt;
        // Only files this open created: LMDB may have created none (a read-only open on a
        // read-only file system runs without a lock file).
        for (file, new) in [(&data, new_files), (&lock, new_lock)] {
            if new && file.exists() {
                let set = fs::set_permissions(file, fs::Permissions::from_mode(options.file_mode));
                if let Err(e) = set
                    && !options.readonly
                {
                    return Err(e.into());
                }
            }
        }
    }
    // Reader slots of dead processes would pin old pages forever: clear them.
    let _ = env.clear_stale_readers();
    let db = if options.readonly {
        let rtxn = env.read_txn().map_err(Error::from)?;
        env.open_databases_and_commit(rtxn, |opener, rtxn| {
            opener
                .open_database::<Bytes, Bytes>(rtxn, None)
                .map(CommitOrAbort::<_, ()>::Commit)
        })
        .map_err(Error::from)?
        .unwrap_commit()
        .ok_or_else(|| Error::NotAStore {
            path: path.to_path_buf(),
            problem: "LMDB has no main database here".into(),
        })?
    } else {
        let wtxn = env.write_txn().map_err(Error::from)?;
        env.create_databases_and_commit(wtxn, |opener, wtxn| {
            opener
                .create_database::<Bytes, Bytes>(wtxn, None)
                .map(CommitOrAbort::<_, ()>::Commit)
        })
        .map_err(Error::from)?
        .unwrap_commit()
    };
    Ok(Shared {
        env,
        db,
        path: path.to_path_buf(),
        env_readonly: options.readonly,
        maxsize: options.maxsize,
        slots: OnceLock::new(),
        resize: RwLock::new(()),
    })
}

/// The lock-format word of a lock file (bytes 4..8), read after LMDB refused to open it, so
/// that this process holds no lock on it that closing the file could drop.
fn read_lock_format(lock: &Path) -> Option<u32> {
    let mut word = [0u8; 8];
    let mut f = fs::File::open(lock).ok()?;
    f.read_exact(&mut word).ok()?;
    Some(u32::from_le_bytes(word[4..8].try_into().ok()?))
}
