"""cookiestore: a persistent, expiring LMDB cookie store for Crossbar.io routers.

The store is byte-compatible with Crossbar.io's database cookie store (cfxdb), expires
cookies by ``max_age`` and is shared by every worker process of a host. ``CookieStore`` is the
Rust library's tracker; :mod:`cookiestore.crossbar` is a Crossbar.io cookie store class on it,
and ``crossbar-cookiestore`` (:mod:`cookiestore.launcher`) runs Crossbar.io with it.
"""

from ._cookiestore import (
    AuthextraError,
    ConfigError,
    CookieStore,
    CookieStoreError,
    CorruptStoreError,
    InvalidValueError,
    ReadOnlyError,
    RevocationFeed,
    StoreFullError,
    StoreOpenError,
    Tracked,
    UnavailableError,
    check_section,
    store_keys,
)

__all__ = [
    "AuthextraError",
    "ConfigError",
    "CookieStore",
    "CookieStoreError",
    "CorruptStoreError",
    "InvalidValueError",
    "ReadOnlyError",
    "RevocationFeed",
    "StoreFullError",
    "StoreOpenError",
    "Tracked",
    "UnavailableError",
    "check_section",
    "store_keys",
]
