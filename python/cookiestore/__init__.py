"""cookiestore: a persistent, expiring LMDB cookie store for Crossbar.io routers.

The store is byte-compatible with Crossbar.io's database cookie store (cfxdb), expires
cookies by ``max_age`` and is shared by every worker process of a host. ``CookieStore`` is the
Rust library's tracker; :mod:`cookiestore.crossbar` is a Crossbar.io cookie store class on it,
and ``crossbar-cookiestore`` (:mod:`cookiestore.launcher`) runs Crossbar.io with it.

fork(): an LMDB environment cannot be used in a child of the process that opened it. The
objects of this package open their store again in the child on first use (a gunicorn master
that used the store, ``multiprocessing`` with the ``fork`` start method, a daemon): keep
using them, or open the store again, both work. The hook below lets every object drop its
inherited handle right after ``os.fork()``.
"""

import os as _os

from . import _cookiestore
from ._cookiestore import (
    REVOCATION_KINDS,
    REVOKING_KINDS,
    AuthextraError,
    ConfigError,
    Connections,
    CookieStore,
    CookieStoreError,
    CorruptMetadataError,
    CorruptRecordError,
    CorruptStoreError,
    DamagedStoreError,
    DestinationExistsError,
    DiskFullError,
    DuplicateValueError,
    ForkedProcessError,
    InvalidAuthError,
    InvalidRecordError,
    InvalidValueError,
    LmdbError,
    LockConflictError,
    NestedTransactionError,
    NewerStoreError,
    NotReplicatedError,
    NotAStoreError,
    NotEmptyError,
    PathError,
    ReadOnlyError,
    ReadersFullError,
    RedisError,
    RedisSettingError,
    RedisCredentialsError,
    Revocation,
    RevocationFeed,
    Stats,
    StoreFullError,
    StoreIOError,
    StoreOpenError,
    TableMeta,
    Tracked,
    UnavailableError,
    UnsupportedError,
    UnsupportedFormatError,
    UnsupportedLocationError,
    ValueSpaceExhaustedError,
    Watch,
    check_section,
    parse_location,
    store_keys,
)

__all__ = [
    "REVOCATION_KINDS",
    "REVOKING_KINDS",
    "AuthextraError",
    "ConfigError",
    "Connections",
    "CookieStore",
    "CookieStoreError",
    "CorruptMetadataError",
    "CorruptRecordError",
    "CorruptStoreError",
    "DamagedStoreError",
    "DestinationExistsError",
    "DiskFullError",
    "DuplicateValueError",
    "ForkedProcessError",
    "InvalidAuthError",
    "InvalidRecordError",
    "InvalidValueError",
    "LmdbError",
    "LockConflictError",
    "NestedTransactionError",
    "NewerStoreError",
    "NotReplicatedError",
    "NotAStoreError",
    "NotEmptyError",
    "PathError",
    "ReadOnlyError",
    "ReadersFullError",
    "RedisError",
    "RedisSettingError",
    "RedisCredentialsError",
    "Revocation",
    "RevocationFeed",
    "Stats",
    "StoreFullError",
    "StoreIOError",
    "StoreOpenError",
    "TableMeta",
    "Tracked",
    "UnavailableError",
    "UnsupportedError",
    "UnsupportedFormatError",
    "UnsupportedLocationError",
    "ValueSpaceExhaustedError",
    "Watch",
    "check_section",
    "parse_location",
    "store_keys",
]

# Right after os.fork() in the child: every store object drops the handle it inherited
# (the parent's) and opens the store again on first use.
_os.register_at_fork(after_in_child=_cookiestore._after_fork_in_child)
