//! The one error type of the crate.
//!
//! Every failure a caller can meet is its own variant, and its message says what was wrong and
//! what to do about it. Nothing read from disk, a header or a file panics: it ends up here.

use std::io;
use std::path::PathBuf;

use uuid::Uuid;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in `cookiestore`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration value is outside its allowed range or malformed.
    #[error("invalid configuration: `{field}` {problem}")]
    InvalidConfig {
        /// The offending field, as named in the configuration (`store.maxsize`, ...).
        field: String,
        /// What is wrong and what is allowed.
        problem: String,
    },

    /// A cookie value cannot be stored: too long for an LMDB key, empty, or not cookie-safe.
    #[error("cookie value rejected: {problem}")]
    InvalidValue {
        /// What is wrong with the value and what is allowed.
        problem: String,
    },

    /// An authentication cannot be stored as given (an empty authid).
    #[error("authentication rejected: {problem}")]
    InvalidAuth {
        /// What is wrong with it and what to do.
        problem: String,
    },

    /// A newer cookiestore wrote this store, with features this build does not know: writing
    /// could leave the other processes' caches or feed readers wrong. Reads still work.
    #[error(
        "{path}: this store needs cookiestore feature level {needed}, and this build knows up \
         to {known}: a newer cookiestore has written it; upgrade this program (every process of \
         the host that uses the store, library, CLI and Python package, together) before it \
         writes here"
    )]
    NewerStore {
        /// The store's directory.
        path: PathBuf,
        /// The level the store records.
        needed: u64,
        /// The highest level this build knows.
        known: u64,
    },

    /// A cookie value is already used by another cookie.
    #[error(
        "cookie value {value:?} already belongs to cookie {existing}: values are unique; \
         delete that cookie first or choose another value"
    )]
    DuplicateValue {
        /// The value in question.
        value: String,
        /// The cookie that holds it.
        existing: Uuid,
    },

    /// The memory map reached `maxsize` and cannot grow further.
    #[error(
        "cannot {operation}: the cookie store is full: its map reached maxsize ({maxsize} bytes); {}",
        map_full_advice(*deletion)
    )]
    MapFull {
        /// What was attempted (as in [`Error::ReadOnly`]).
        operation: &'static str,
        /// The configured maximum map size in bytes.
        maxsize: u64,
        /// Whether the operation deletes (purge, logout, delete, clear, repair): those already
        /// use the headroom kept for deletions, so only a larger map helps them.
        deletion: bool,
    },

    /// A write was attempted through a store opened read-only.
    #[error(
        "cannot {operation}: the cookie store was opened read-only; open it with readonly = false"
    )]
    ReadOnly {
        /// What was attempted.
        operation: &'static str,
    },

    /// A stored record could not be decoded.
    #[error(
        "corrupt cookie record {oid}: {problem}; run `cookiestore check` to list damage and \
         `cookiestore repair` to quarantine it"
    )]
    CorruptRecord {
        /// The oid under which the record is stored.
        oid: Uuid,
        /// What is wrong with its bytes.
        problem: String,
    },

    /// Bytes that should hold a cookie record are not a valid record.
    #[error("not a valid Cookie record: {problem}")]
    InvalidRecord {
        /// What is wrong with the bytes.
        problem: String,
    },

    /// The store's table metadata (slot 0) or an index entry is damaged.
    #[error(
        "corrupt cookie store metadata: {problem}; run `cookiestore check` for details, \
         `cookiestore repair` rebuilds the indexes"
    )]
    CorruptMetadata {
        /// What is wrong.
        problem: String,
    },

    /// The database was written by an LMDB whose data format this build cannot read.
    #[error(
        "{path}: LMDB data format {found} is not supported (this build reads format 1, \
         written by LMDB 0.9 as in Crossbar.io 25.12 / zlmdb 25.12); {hint}"
    )]
    UnsupportedFormat {
        /// The data file.
        path: PathBuf,
        /// The format version found in its meta page.
        found: u32,
        /// How to convert it.
        hint: &'static str,
    },

    /// The path exists but is not an LMDB cookie store.
    #[error("{path}: not a cookie store: {problem}")]
    NotAStore {
        /// The path that was opened.
        path: PathBuf,
        /// Why it is not a store.
        problem: String,
    },

    /// The path cannot be used: missing, not a directory, or without permission.
    #[error("{path}: {problem}: {source}")]
    Path {
        /// The path in question.
        path: PathBuf,
        /// What was being done and what to do about it.
        problem: String,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },

    /// Creating a cookie kept drawing values that already exist.
    #[error(
        "could not draw an unused cookie value in {attempts} attempts: the value length is too \
         short for the number of cookies; raise `length`"
    )]
    ValueSpaceExhausted {
        /// How many values were tried.
        attempts: u32,
    },

    /// LMDB's reader table is full.
    #[error(
        "LMDB reader table is full ({max} slots): too many processes or threads have the store \
         open; stale slots of dead processes are cleared at open"
    )]
    ReadersFull {
        /// Reader slots in the lock file.
        max: u32,
    },

    /// The store's files are damaged: data.mdb truncated or its pages damaged (LMDB reports
    /// corruption, or a walk's keys do not ascend), or a lock.mdb in use with an impossible
    /// reader table.
    #[error("{path}: the store is damaged: {problem}")]
    Damaged {
        /// The store or file.
        path: PathBuf,
        /// What is wrong and what to do.
        problem: String,
    },

    /// The store is open in another program whose LMDB cannot share `lock.mdb` with ours
    /// (Crossbar.io / zlmdb 25.12 bundle LMDB 0.9.33, whose lock format differs from heed's).
    #[error(
        "{path}: the store is open in another program whose LMDB cannot share lock.mdb with \
         cookiestore's (lock format {}; 0x00010001 is LMDB 0.9.x as in Crossbar.io/zlmdb \
         25.12): stop that program or wait until it closes the store, then retry; do not \
         delete lock.mdb while it runs",
        found.map_or("unknown".to_string(), |f| format!("{f:#010x}"))
    )]
    LockConflict {
        /// The store.
        path: PathBuf,
        /// The lock-format word found in lock.mdb, if it could be read.
        found: Option<u32>,
    },

    /// A store method was called inside the closure of
    /// [`LmdbStore::snapshot`](crate::LmdbStore::snapshot) or
    /// [`LmdbStore::batch`](crate::LmdbStore::batch): LMDB allows one transaction per
    /// thread, so the call would need a second one.
    #[error(
        "a store method was called inside a snapshot or batch closure; use the Snapshot's or \
         Batch's own methods, or call the store after the closure returns"
    )]
    NestedTransaction,

    /// A store handle was used in a process other than the one that opened it: a child
    /// made by `fork()` inherited it. LMDB environments cannot be used across fork(), so
    /// every call is refused before LMDB is touched (the parent's handle is unaffected).
    /// Open the store again in the child: [`CookieStore::open`](crate::CookieStore::open)
    /// of the same path there gives a fresh environment.
    #[error(
        "{location}: this store was opened in process {opened_by}, and this is process \
         {current} (a child made by fork()): an LMDB environment cannot be used across \
         fork(); open it again after fork() (CookieStore::open of the same path in this \
         process gives a fresh environment)"
    )]
    ForkedProcess {
        /// The store's directory.
        location: PathBuf,
        /// The process that opened the handle.
        opened_by: u32,
        /// This process.
        current: u32,
    },

    /// A store location that this build cannot open: a URL (`http://...`) where a directory
    /// path or a Redis URL is expected (text starting with `scheme://` is a URL, never a
    /// directory: see [`Location`](crate::Location)).
    #[error(
        "{location:?} is a URL of a kind cookiestore does not serve: give the store's \
         directory (LMDB, for example /var/crossbar/cookies; a directory whose name looks \
         like a URL as ./name) or a Redis URL (redis://, rediss://, redis+unix://, \
         redis+sentinel://, rediss+sentinel://; with the \
         `redis` feature, on by default)"
    )]
    UnsupportedLocation {
        /// The location as given, its password masked.
        location: String,
    },

    /// The store's server (Redis) cannot be reached, or did not answer within the timeout,
    /// or the handle's circuit breaker refused the call at once because an earlier call
    /// found it so (see [`CookieStore::health`](crate::CookieStore::health)). A write
    /// refused at once was not applied; one whose answer did not come in time may have
    /// been. The same handle works again once the server is back (a background probe
    /// finds it within about 2 s; connections are made anew).
    #[error(
        "the cookie store at {location} is unavailable: {problem}; check that the server \
         runs and is reachable (the handle reconnects by itself)"
    )]
    Unavailable {
        /// The store's location (a URL without its password).
        location: String,
        /// What failed.
        problem: String,
    },

    /// The store's server (Redis) answered with an error (out of memory, wrong key type, a
    /// script error, ...).
    #[error("the Redis store at {location} refused the operation: {problem}")]
    Redis {
        /// The store's location (a URL without its password).
        location: String,
        /// Redis's answer.
        problem: String,
    },

    /// Redis refused the store's credentials: a wrong password, or an ACL user that does not
    /// exist or is disabled. The error names the user, never the password. Like
    /// [`Error::RedisSetting`], it lasts until it is mended outside (the password or the
    /// user, on either side: a password file is read again when it changes, see
    /// docs/configuration.md, "Redis: the same store on several hosts"); a handle opened with
    /// [`StoreOptions::connect_lazily`](crate::StoreOptions::connect_lazily) keeps trying, and
    /// its first call after the mend connects.
    #[error(
        "the Redis store at {location}: Redis refused the credentials of the ACL user `{user}` \
         ({problem}): check the password (the URL's, password_file or password_env) and that \
         the user exists and is enabled (ACL LIST)"
    )]
    RedisCredentials {
        /// The store's location (a URL without its password).
        location: String,
        /// The ACL user (`default` when the URL names none).
        user: String,
        /// Redis's answer (without the password).
        problem: String,
    },

    /// A change (a logout, an authentication change) was made on the Redis master, but
    /// fewer replicas than [`RedisOptions::min_replicas_acked`](crate::RedisOptions) acknowledged
    /// it within `replica_ack_timeout_ms`. It is on the master and will reach the replicas
    /// when they catch up, unless the master fails before that and a replica without it is
    /// promoted (Sentinel failover): then it is lost.
    #[error(
        "the change is on the master of the Redis store at {location}, but only {acked} of \
         the {wanted} replica(s) required (min_replicas_acked) acknowledged it within \
         {timeout_ms} ms: a failover now could lose it; check that the replicas run \
         and keep up (INFO replication on the master)"
    )]
    NotReplicated {
        /// The store's location (a URL without its password).
        location: String,
        /// How many replicas acknowledged the change.
        acked: u64,
        /// How many were required.
        wanted: u64,
        /// How long they were waited for (`replica_ack_timeout_ms`).
        timeout_ms: u64,
    },

    /// The Redis server is set up so that it may drop the store's keys by itself: its
    /// `maxmemory-policy` evicts keys, or cannot be read. An evicted key could undo a
    /// logout, so such a Redis is refused unless the store is opened with
    /// [`StoreOptions::allow_eviction`](crate::StoreOptions::allow_eviction).
    #[error("the Redis store at {location} is not safe for cookies: `{setting}` {problem}")]
    RedisSetting {
        /// The store's location (a URL without its password).
        location: String,
        /// The Redis setting in question (`maxmemory-policy`).
        setting: String,
        /// Its value, why that is refused and what to do.
        problem: String,
    },

    /// An operation that this store's backend does not offer (snapshots, batches, copies,
    /// check and repair are LMDB's).
    #[error("cannot {operation}: this is a {backend} store, and that applies to LMDB stores only")]
    Unsupported {
        /// What was attempted.
        operation: &'static str,
        /// The store's backend (`redis`).
        backend: &'static str,
    },

    /// A restore or copy was refused because its destination already holds cookies.
    #[error(
        "{path}: the destination already holds {records} cookie record(s); refusing to mix \
         them with the incoming ones: restore into a new directory, or merge on purpose \
         (`cookiestore restore --merge`)"
    )]
    NotEmpty {
        /// The destination store or directory.
        path: PathBuf,
        /// How many records it holds (0 when the destination is a data file, not a store).
        records: u64,
    },

    /// A copy was refused because its destination exists (a directory, even an empty one, a
    /// file or a symbolic link): a copy creates a new directory.
    #[error(
        "{path} exists: a copy goes into a new directory that it creates (never into an \
         existing one, nor through a symbolic link, so that no store is overwritten and the \
         copy is private); give a path that does not exist yet"
    )]
    DestinationExists {
        /// What was found at the destination.
        path: PathBuf,
    },

    /// The file system holding the store is full (or the user's quota is spent): a write,
    /// or creating the store's files, found no space. Nothing of the failed transaction was
    /// written; earlier commits stay.
    #[error(
        "cannot {operation}: {path}: the disk is full (no space left on the file system holding \
         the store){}; free space there (or move the store to a larger file system), then retry",
        committed_note(*committed)
    )]
    DiskFull {
        /// The store (or the file that could not be created or extended).
        path: PathBuf,
        /// What was attempted (as in [`Error::ReadOnly`]).
        operation: &'static str,
        /// For an import or restore: the cookies written (committed, and kept) before the
        /// disk filled.
        committed: Option<u64>,
        /// The operating system's error (ENOSPC, EDQUOT, or LMDB's EIO on a full disk).
        #[source]
        source: io::Error,
    },

    /// Any other LMDB error.
    #[error("LMDB error: {0}")]
    Lmdb(#[source] LmdbError),

    /// An I/O error outside LMDB.
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
}

/// An error reported by LMDB that has no variant of its own in [`Error`]. Its message is
/// LMDB's; the type stays opaque so that a new major version of the LMDB binding is not a
/// breaking change of this crate.
#[derive(Debug)]
pub struct LmdbError(pub(crate) heed::Error);

impl std::fmt::Display for LmdbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for LmdbError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

/// Wraps heed's errors as [`Error::Lmdb`]; the transaction core (`store.rs`) then gives the
/// ones with a meaning of their own (map full, readers full, damage) their variants.
pub(crate) trait LmdbResult<T> {
    fn lmdb(self) -> Result<T>;
}

impl<T> LmdbResult<T> for heed::Result<T> {
    fn lmdb(self) -> Result<T> {
        self.map_err(|e| Error::Lmdb(LmdbError(e)))
    }
}

impl Error {
    pub(crate) fn config(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Error::InvalidConfig {
            field: field.into(),
            problem: problem.into(),
        }
    }

    /// [`Error::Damaged`] met inside a transaction, where the store's path is not at hand:
    /// the transaction core (`Shared::resolve`) names data.mdb in it.
    pub(crate) fn damaged_tree(problem: &str) -> Self {
        Error::Damaged {
            path: PathBuf::new(),
            problem: format!("{problem}; {DAMAGED_ADVICE}"),
        }
    }

    pub(crate) fn metadata(problem: impl Into<String>) -> Self {
        Error::CorruptMetadata {
            problem: problem.into(),
        }
    }
}

/// What to do about a data.mdb whose pages are damaged.
pub(crate) const DAMAGED_ADVICE: &str = "restore the store from an export (`cookiestore \
    restore`) or a copy, or copy out what can still be read (`cookiestore export \
    --skip-corrupt`, which stops at the damage) and restore that into a new store; \
    `cookiestore repair` cannot mend damaged pages";

fn committed_note(committed: Option<u64>) -> String {
    match committed {
        Some(n) => format!(
            "; {n} cookie(s) went in before (committed in earlier batches, and kept), the rest \
             did not"
        ),
        None => String::new(),
    }
}

impl Error {
    /// The error for `source`, an I/O error on the store at `path`: [`Error::DiskFull`] when
    /// it means the file system is full, else [`Error::Io`].
    pub(crate) fn from_io(
        path: &std::path::Path,
        operation: &'static str,
        source: io::Error,
    ) -> Self {
        if is_disk_full(path, &source) {
            Error::DiskFull {
                path: path.to_path_buf(),
                operation,
                committed: None,
                source,
            }
        } else {
            Error::Io(source)
        }
    }

    /// Adds, to a [`Error::DiskFull`], the cookies an import or restore committed before
    /// it; to the error of a Redis store ([`Error::Redis`], [`Error::Unavailable`]), the same
    /// said in its problem (when `n` > 0). `n` counts the whole operation: callers pass it
    /// once.
    pub(crate) fn with_committed(self, n: u64) -> Self {
        match self {
            Error::DiskFull {
                path,
                operation,
                source,
                ..
            } => Error::DiskFull {
                path,
                operation,
                committed: Some(n),
                source,
            },
            Error::Redis { location, problem } if n > 0 => Error::Redis {
                location,
                problem: problem + &written_before(n),
            },
            Error::Unavailable { location, problem } if n > 0 => Error::Unavailable {
                location,
                problem: problem + &written_before(n),
            },
            other => other,
        }
    }
}

/// What an import or restore into Redis that failed after `n` cookies went in left: its
/// writes are each one script or transaction (all or none: an imported cookie never without
/// its mark), so what went in is whole writes: those of earlier batches and, for a restore,
/// those of the batch's other share (`maintenance/json_lines.rs`).
fn written_before(n: u64) -> String {
    format!(
        "; {n} cookie(s) went in before it stopped (in other writes, each all or nothing, and \
         kept), the rest did not: run the same import again, or the restore again with \
         --merge, to bring in the rest (what went in counts as unchanged)"
    )
}

/// Whether `e`, met on the store at `path`, means "no space": ENOSPC or EDQUOT, or EIO (what
/// LMDB may report for a failed write) while the file system has (almost) no space left.
pub(crate) fn is_disk_full(path: &std::path::Path, e: &io::Error) -> bool {
    #[cfg(unix)]
    {
        match e.raw_os_error() {
            Some(libc::ENOSPC | libc::EDQUOT) => true,
            Some(libc::EIO) => free_bytes(path).is_some_and(|free| free < 1 << 20),
            _ => false,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        e.kind() == io::ErrorKind::StorageFull
    }
}

/// Bytes available to unprivileged users on the file system holding `path`.
#[cfg(unix)]
#[allow(
    clippy::unnecessary_cast,
    reason = "statvfs's field types differ between platforms"
)]
fn free_bytes(path: &std::path::Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::zeroed();
    // SAFETY: `c` is a NUL-terminated path and `st` points to writable memory of the
    // struct's size; statvfs writes only into it.
    let rc = unsafe { libc::statvfs(c.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: statvfs returned 0, so it filled the struct.
    let st = unsafe { st.assume_init() };
    Some((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}

/// What to do about a full map: purging frees space for writes, but a deletion that failed
/// can only be helped by a larger map.
fn map_full_advice(deletion: bool) -> &'static str {
    if deletion {
        "reopen with a larger maxsize (the CLI's `--maxsize` flag, e.g. \
         `cookiestore --maxsize 64MiB purge STORE`; at most 128 GiB)"
    } else {
        "purge expired cookies (`cookiestore purge`), or reopen with a larger maxsize \
         (at most 128 GiB)"
    }
}
