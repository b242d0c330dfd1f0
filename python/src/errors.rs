//! The exception classes of the binding (`cookiestore.CookieStoreError` and its subclasses,
//! one per library error variant) and the mapping of the library's [`Error`] onto them
//! ([`to_py`]), with the message of a refused authextra ([`authextra_err`]).

use cookiestore::Error;
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;

create_exception!(
    cookiestore,
    CookieStoreError,
    PyException,
    "Base class of every error the cookie store raises."
);
create_exception!(
    cookiestore,
    ConfigError,
    CookieStoreError,
    "A configuration value is outside its allowed range or malformed (names the field)."
);
create_exception!(
    cookiestore,
    UnsupportedLocationError,
    ConfigError,
    "The location is a URL of a kind cookiestore does not serve (not a directory, not a \
     Redis URL)."
);
create_exception!(
    cookiestore,
    InvalidValueError,
    CookieStoreError,
    "A cookie value or record cannot be stored (empty, too long, not cookie-safe, too large)."
);
create_exception!(
    cookiestore,
    InvalidAuthError,
    InvalidValueError,
    "An authentication cannot be stored as given (an empty authid)."
);
create_exception!(
    cookiestore,
    DuplicateValueError,
    InvalidValueError,
    "The cookie value already belongs to another cookie: values are unique."
);
create_exception!(
    cookiestore,
    StoreFullError,
    CookieStoreError,
    "The store reached its maxsize: purge expired cookies or raise maxsize."
);
create_exception!(
    cookiestore,
    DiskFullError,
    CookieStoreError,
    "The file system holding the store is full (or the quota is spent): free space there."
);
create_exception!(
    cookiestore,
    ReadOnlyError,
    CookieStoreError,
    "A write through a store opened read-only."
);
create_exception!(
    cookiestore,
    CorruptStoreError,
    CookieStoreError,
    "A record, an index or the metadata is damaged: run `cookiestore check` / `repair`."
);
create_exception!(
    cookiestore,
    CorruptRecordError,
    CorruptStoreError,
    "A stored cookie record cannot be decoded: `cookiestore repair` quarantines it."
);
create_exception!(
    cookiestore,
    InvalidRecordError,
    CorruptStoreError,
    "Bytes that should hold a cookie record are not a valid record."
);
create_exception!(
    cookiestore,
    CorruptMetadataError,
    CorruptStoreError,
    "The store's table metadata or an index entry is damaged: `cookiestore repair` \
     rebuilds the indexes."
);
create_exception!(
    cookiestore,
    DamagedStoreError,
    CorruptStoreError,
    "The store's files are damaged (data.mdb truncated or its pages damaged, or an \
     impossible lock.mdb): restore from an export or a copy."
);
create_exception!(
    cookiestore,
    StoreOpenError,
    CookieStoreError,
    "The store cannot be opened or written: not a store, unsupported LMDB format, bad \
     path, locked, newer, or an unsafe Redis."
);
create_exception!(
    cookiestore,
    NotAStoreError,
    StoreOpenError,
    "The path exists but is not an LMDB cookie store."
);
create_exception!(
    cookiestore,
    UnsupportedFormatError,
    StoreOpenError,
    "data.mdb was written by an LMDB whose data format this build cannot read."
);
create_exception!(
    cookiestore,
    PathError,
    StoreOpenError,
    "The path cannot be used: missing, not a directory, or without permission."
);
create_exception!(
    cookiestore,
    LockConflictError,
    StoreOpenError,
    "The store is open in another program whose LMDB cannot share lock.mdb (Crossbar.io's \
     LMDB 0.9): stop it or wait until it closes the store."
);
create_exception!(
    cookiestore,
    NewerStoreError,
    StoreOpenError,
    "A newer cookiestore wrote this store: this build reads it but does not write it; \
     upgrade every program using it."
);
create_exception!(
    cookiestore,
    RedisSettingError,
    StoreOpenError,
    "The Redis server may drop the store's keys by itself (its maxmemory-policy evicts): \
     set it to noeviction, or open with allow_eviction."
);
create_exception!(
    cookiestore,
    RedisCredentialsError,
    StoreOpenError,
    "Redis refused the store's credentials (a wrong password, or an ACL user that does not \
     exist or is disabled); the message names the user, never the password."
);
create_exception!(
    cookiestore,
    AuthextraError,
    CookieStoreError,
    "authextra holds a value the store cannot keep (bytes, a non-str key, ...)."
);
create_exception!(
    cookiestore,
    UnavailableError,
    CookieStoreError,
    "The store's server (Redis) cannot be reached or did not answer in time; the same store \
     object works again once it is back."
);
create_exception!(
    cookiestore,
    NotReplicatedError,
    CookieStoreError,
    "The change is on the Redis master, but fewer replicas than min_replicas_acked \
     acknowledged it in time: a failover before they catch up could lose it."
);
create_exception!(
    cookiestore,
    RedisError,
    CookieStoreError,
    "The Redis server answered the store's command with an error (out of memory, wrong \
     key type, a script error, ...)."
);
create_exception!(
    cookiestore,
    ValueSpaceExhaustedError,
    CookieStoreError,
    "Creating a cookie kept drawing values that already exist: raise `length`."
);
create_exception!(
    cookiestore,
    ReadersFullError,
    CookieStoreError,
    "LMDB's reader table is full: too many processes or threads have the store open."
);
create_exception!(
    cookiestore,
    NestedTransactionError,
    CookieStoreError,
    "A store method was called inside a snapshot or batch of the same thread."
);
create_exception!(
    cookiestore,
    ForkedProcessError,
    CookieStoreError,
    "A store handle was used in a child made by fork() (the package normally opens the \
     store again there by itself)."
);
create_exception!(
    cookiestore,
    UnsupportedError,
    CookieStoreError,
    "The operation applies to LMDB stores only, and this store is on another backend."
);
create_exception!(
    cookiestore,
    NotEmptyError,
    CookieStoreError,
    "A restore or copy was refused: its destination already holds cookies."
);
create_exception!(
    cookiestore,
    DestinationExistsError,
    CookieStoreError,
    "A copy was refused: its destination exists (a copy creates a new directory)."
);
create_exception!(
    cookiestore,
    LmdbError,
    CookieStoreError,
    "An LMDB error without a class of its own; the message is LMDB's."
);
create_exception!(
    cookiestore,
    StoreIOError,
    CookieStoreError,
    "An I/O error outside LMDB; the message is the operating system's."
);

/// Adds every exception class to the module (`CookieStoreError` and its subclasses).
pub(crate) fn add_exceptions(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    macro_rules! add {
        ($($class:ident),* $(,)?) => {
            $(m.add(stringify!($class), py.get_type::<$class>())?;)*
        };
    }
    add!(
        CookieStoreError,
        ConfigError,
        UnsupportedLocationError,
        InvalidValueError,
        InvalidAuthError,
        DuplicateValueError,
        StoreFullError,
        DiskFullError,
        ReadOnlyError,
        CorruptStoreError,
        CorruptRecordError,
        InvalidRecordError,
        CorruptMetadataError,
        DamagedStoreError,
        StoreOpenError,
        NotAStoreError,
        UnsupportedFormatError,
        PathError,
        LockConflictError,
        NewerStoreError,
        RedisSettingError,
        RedisCredentialsError,
        AuthextraError,
        UnavailableError,
        NotReplicatedError,
        RedisError,
        ValueSpaceExhaustedError,
        ReadersFullError,
        NestedTransactionError,
        ForkedProcessError,
        UnsupportedError,
        NotEmptyError,
        DestinationExistsError,
        LmdbError,
        StoreIOError,
    );
    Ok(())
}

/// The library's error as a Python exception of its own class, with its message: one class
/// per variant, each under the broader class that caught it before (`StoreOpenError`,
/// `CorruptStoreError`, ...), so that code catching those still catches it.
pub(crate) fn to_py(e: Error) -> PyErr {
    let msg = e.to_string();
    match e {
        Error::InvalidConfig { .. } => ConfigError::new_err(msg),
        Error::UnsupportedLocation { .. } => UnsupportedLocationError::new_err(msg),
        Error::InvalidValue { .. } => InvalidValueError::new_err(msg),
        Error::InvalidAuth { .. } => InvalidAuthError::new_err(msg),
        Error::DuplicateValue { .. } => DuplicateValueError::new_err(msg),
        Error::MapFull { .. } => StoreFullError::new_err(msg),
        Error::DiskFull { .. } => DiskFullError::new_err(msg),
        Error::ReadOnly { .. } => ReadOnlyError::new_err(msg),
        Error::CorruptRecord { .. } => CorruptRecordError::new_err(msg),
        Error::InvalidRecord { .. } => InvalidRecordError::new_err(msg),
        Error::CorruptMetadata { .. } => CorruptMetadataError::new_err(msg),
        Error::Damaged { .. } => DamagedStoreError::new_err(msg),
        Error::NotAStore { .. } => NotAStoreError::new_err(msg),
        Error::UnsupportedFormat { .. } => UnsupportedFormatError::new_err(msg),
        Error::Path { .. } => PathError::new_err(msg),
        Error::LockConflict { .. } => LockConflictError::new_err(msg),
        Error::NewerStore { .. } => NewerStoreError::new_err(msg),
        Error::RedisSetting { .. } => RedisSettingError::new_err(msg),
        Error::RedisCredentials { .. } => RedisCredentialsError::new_err(msg),
        Error::Unavailable { .. } => UnavailableError::new_err(msg),
        Error::NotReplicated { .. } => NotReplicatedError::new_err(msg),
        Error::Redis { .. } => RedisError::new_err(msg),
        Error::ValueSpaceExhausted { .. } => ValueSpaceExhaustedError::new_err(msg),
        Error::ReadersFull { .. } => ReadersFullError::new_err(msg),
        Error::NestedTransaction => NestedTransactionError::new_err(msg),
        Error::ForkedProcess { .. } => ForkedProcessError::new_err(msg),
        Error::Unsupported { .. } => UnsupportedError::new_err(msg),
        Error::NotEmpty { .. } => NotEmptyError::new_err(msg),
        Error::DestinationExists { .. } => DestinationExistsError::new_err(msg),
        Error::Lmdb(_) => LmdbError::new_err(msg),
        Error::Io(_) => StoreIOError::new_err(msg),
        // `Error` is non-exhaustive: a variant added later is at least a CookieStoreError.
        _ => CookieStoreError::new_err(msg),
    }
}

pub(crate) fn authextra_err(at: &str, problem: impl std::fmt::Display) -> PyErr {
    AuthextraError::new_err(format!(
        "authextra{at}: {problem}; the store keeps authextra as dict (str keys), list, str, \
         int (64-bit), float (finite), bool and None"
    ))
}
