//! Opening an environment: the directory, the data file's checks (`lmdb_files`), and heed's
//! (unsafe) open, kept in this one place.

use std::path::{Path, PathBuf};

use heed::types::Bytes;

use crate::cache::Cache;
use crate::config::lmdb_options::Durability;
use crate::config::options::StoreOptions;
use crate::error::{Error, LmdbError, LmdbResult, Result, is_disk_full};
use crate::lmdb::env::{Shared, page_size};
#[cfg(unix)]
use crate::lmdb::files::check_lock_file;
use crate::lmdb::files::{check_data_file, read_lock_format};
use crate::lmdb::local_env::LocalEnv;
use crate::lmdb::reserve::DiskReserve;
use heed::{CommitOrAbort, EnvFlags, EnvOpenOptions, MdbError};
use std::fs;
use std::sync::{OnceLock, RwLock};

pub(crate) fn prepare_dir(path: &Path, readonly: bool) -> Result<PathBuf> {
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
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !readonly => {
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
    for name in ["data.mdb", "lock.mdb"] {
        if fs::symlink_metadata(path.join(name)).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(Error::NotAStore {
                path: path.clone(),
                problem: format!(
                    "{name} is a symbolic link; refusing to open it (LMDB would write through \
                     it): replace the link with the file itself"
                ),
            });
        }
    }
    let data = path.join("data.mdb");
    match fs::metadata(&data) {
        Ok(meta) => check_data_file(&data, meta.len())?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if readonly {
                return Err(Error::NotAStore {
                    path: path.clone(),
                    problem: "the directory has no data.mdb; check the path".into(),
                });
            }
            let foreign = fs::read_dir(&path)
                .map_err(|e| path_err("cannot list the store directory", e))?
                .filter_map(|e| e.ok())
                .map(|e| e.file_name())
                // A data.mdb listed now was made by a concurrent creator after the check
                // above: LMDB's lock serialises its initialisation, so it is not foreign.
                .find(|n| n != "lock.mdb" && n != "data.mdb");
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

pub(crate) fn open_env(path: &Path, readonly: bool, options: &StoreOptions) -> Result<Shared> {
    let data = path.join("data.mdb");
    let new_files = !data.exists();
    let opened = open_env_files(path, readonly, options, new_files);
    if opened.is_err() && new_files && !readonly {
        // A creation that failed (a full disk, most often) must not leave a half-made
        // data.mdb behind, which every later open would refuse as "not a valid LMDB file".
        // Only an unusable one is removed: a concurrent creator may have made it whole.
        let unusable = fs::metadata(&data)
            .is_ok_and(|m| m.len() < 2 * page_size() || check_data_file(&data, m.len()).is_err());
        if unusable {
            let _ = fs::remove_file(&data);
        }
    }
    opened
}

/// Bytes reserved for a new data.mdb before LMDB writes its first pages: the two meta pages
/// and the first commits (the tables' metadata) with room to spare.
const INITIAL_DATA_RESERVE: i64 = 64 * 1024;

/// LMDB's lock file for its default 126 reader slots: 125 × 64-byte slots after the 192-byte
/// header (LMDB keeps a larger file's size, and derives the slot count from it).
const LOCK_FILE_SIZE: i64 = 8192;

/// Makes sure the space LMDB will use through its memory maps exists before it maps the
/// files: a page of a mapped file that the file system cannot back kills the process with
/// SIGBUS when touched (lock.mdb is extended with ftruncate, which allocates nothing). The
/// lock file (created if missing, as LMDB would) is allocated in full, and a new data.mdb
/// gets its first pages reserved. A full file system is reported as [`Error::DiskFull`].
/// Files this function cannot open for writing (read-only file system or permissions) are
/// left to LMDB, which knows how to run without them.
/// A lock.mdb another process holds is checked here too, before LMDB trusts it
/// ([`check_lock_file`]).
#[cfg(unix)]
fn reserve_space(path: &Path, readonly: bool, new_data: bool) -> Result<()> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    let full = |file: &Path, source: std::io::Error| {
        Error::from_io(file, "create or open the store's files", source)
    };
    let lock = path.join("lock.mdb");
    let lock_existed = lock.exists();
    let file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&lock);
    if let Ok(file) = file {
        let len = file.metadata().map(|m| m.len() as i64).unwrap_or(0);
        // SAFETY: a valid descriptor of a regular file opened for writing; posix_fallocate
        // allocates blocks and extends the size, never changing bytes already there.
        let rc = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, len.max(LOCK_FILE_SIZE)) };
        if rc == libc::ENOSPC || rc == libc::EDQUOT {
            drop(file);
            if !lock_existed {
                let _ = fs::remove_file(&lock);
            }
            return Err(full(&lock, std::io::Error::from_raw_os_error(rc)));
        }
        check_lock_file(&lock, &file)?;
    } else if let Ok(file) = fs::File::open(&lock) {
        // Readable only (a read-only open in a directory not ours): LMDB may still use it.
        check_lock_file(&lock, &file)?;
    }
    if new_data && !readonly {
        let data = path.join("data.mdb");
        let created = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&data);
        if let Ok(file) = created {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            {
                // SAFETY: a valid descriptor of a regular file opened for writing; with
                // KEEP_SIZE the size stays 0 (LMDB initialises an empty file) and only blocks
                // are reserved.
                let rc = unsafe {
                    libc::fallocate(
                        file.as_raw_fd(),
                        libc::FALLOC_FL_KEEP_SIZE,
                        0,
                        INITIAL_DATA_RESERVE,
                    )
                };
                let err = std::io::Error::last_os_error();
                drop(file);
                if rc != 0 && matches!(err.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT)) {
                    let _ = fs::remove_file(&data);
                    return Err(full(path, err));
                }
            }
            #[cfg(not(any(target_os = "linux", target_os = "android")))]
            drop((file, INITIAL_DATA_RESERVE));
        }
    }
    Ok(())
}

fn open_env_files(
    path: &Path,
    readonly: bool,
    options: &StoreOptions,
    new_files: bool,
) -> Result<Shared> {
    let data = path.join("data.mdb");
    let lock = path.join("lock.mdb");
    let new_lock = !lock.exists();
    #[cfg(unix)]
    reserve_space(path, readonly, new_files)?;
    let mut flags = EnvFlags::NO_READ_AHEAD;
    if readonly {
        flags |= EnvFlags::READ_ONLY;
    }
    let durability = options.lmdb.effective_durability();
    if durability == Durability::None {
        flags |= EnvFlags::NO_SYNC;
    }
    let page = page_size();
    let map_size = options
        .lmdb
        .initial_mapsize
        .min(options.lmdb.maxsize)
        .div_ceil(page)
        * page;
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
        heed::Error::Io(source) if is_disk_full(path, &source) => {
            Error::from_io(path, "create or open the store's files", source)
        }
        heed::Error::Io(source) => Error::Path {
            path: path.to_path_buf(),
            problem: "cannot open the LMDB files (check permissions)".into(),
            source,
        },
        other => Error::Lmdb(LmdbError(other)),
    })?;
    #[cfg(unix)]
    if options.lmdb.file_mode != 0o600 {
        use std::os::unix::fs::PermissionsExt;
        // Only files this open created: LMDB may have created none (a read-only open on a
        // read-only file system runs without a lock file).
        for (file, new) in [(&data, new_files), (&lock, new_lock)] {
            if new && file.exists() {
                let set =
                    fs::set_permissions(file, fs::Permissions::from_mode(options.lmdb.file_mode));
                if let Err(e) = set
                    && !readonly
                {
                    return Err(e.into());
                }
            }
        }
    }
    // Reader slots of dead processes would pin old pages forever: clear them.
    let _ = env.clear_stale_readers();
    let db = if readonly {
        let rtxn = adopting_resize(&env, |env| env.read_txn())?;
        env.open_databases_and_commit(rtxn, |opener, rtxn| {
            opener
                .open_database::<Bytes, Bytes>(rtxn, None)
                .map(CommitOrAbort::<_, ()>::Commit)
        })
        .lmdb()
        .map_err(|e| disk_full(path, e))?
        .unwrap_commit()
        .ok_or_else(|| Error::NotAStore {
            path: path.to_path_buf(),
            problem: "LMDB has no main database here".into(),
        })?
    } else {
        let wtxn = adopting_resize(&env, |env| env.write_txn())?;
        env.create_databases_and_commit(wtxn, |opener, wtxn| {
            opener
                .create_database::<Bytes, Bytes>(wtxn, None)
                .map(CommitOrAbort::<_, ()>::Commit)
        })
        .lmdb()
        .map_err(|e| disk_full(path, e))?
        .unwrap_commit()
    };
    Ok(Shared {
        env: LocalEnv::new(env),
        db,
        path: path.to_path_buf(),
        env_readonly: readonly,
        maxsize: options.lmdb.maxsize,
        durability,
        slots: OnceLock::new(),
        resize: RwLock::new(()),
        cache: Cache::new(options.lmdb.cache_bytes),
        reserve: DiskReserve::open(path, readonly),
    })
}

/// A write of the first transactions that found the disk full, as [`Error::DiskFull`].
fn disk_full(path: &Path, e: Error) -> Error {
    match e {
        Error::Lmdb(LmdbError(heed::Error::Io(io))) => {
            Error::from_io(path, "create or open the store's files", io)
        }
        other => other,
    }
}

/// Begins the first transaction of a fresh environment. Another process may grow the map
/// between our open and this begin (`MDB_MAP_RESIZED`): adopt the size it recorded and retry,
/// as `txn.rs` does for every later transaction.
fn adopting_resize<'e, X>(
    env: &'e heed::Env<heed::WithTls>,
    begin: impl Fn(&'e heed::Env<heed::WithTls>) -> heed::Result<X>,
) -> Result<X> {
    loop {
        match begin(env) {
            Err(heed::Error::Mdb(MdbError::MapResized)) => {
                // SAFETY: the environment was opened just now and is not shared yet (the
                // registry's lock is held by our caller); the begin above failed, so no
                // transaction is live. Size 0 adopts the size recorded in the meta page.
                unsafe { env.resize(0) }.lmdb()?;
            }
            other => return other.lmdb().map_err(|e| disk_full(env.path(), e)),
        }
    }
}
