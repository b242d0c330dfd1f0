"""Type stubs of the Rust extension module cookiestore._cookiestore."""

from os import PathLike
from pathlib import Path
from typing import Any, Callable, Literal, Mapping, Optional, Union, final

# What authextra may hold: what CBOR and JSON both hold (no bytes: see AuthextraError).
AuthExtra = Union[None, bool, int, float, str, list["AuthExtra"], tuple["AuthExtra", ...], dict[str, "AuthExtra"]]
# (authid, authrole, authmethod, authrealm, authextra), as Crossbar.io's getAuth returns it.
AuthTuple = tuple[str, Optional[str], Optional[str], Optional[str], Any]
# (seq, kind, value, oid); kind is "logout", "authid" or "maintenance".
Revocation = tuple[int, str, str, str]

class CookieStoreError(Exception):
    """Base class of every error the cookie store raises; the message says what to do."""

class ConfigError(CookieStoreError):
    """A configuration value is outside its allowed range or malformed (names the field)."""

class InvalidValueError(CookieStoreError):
    """A cookie value cannot be stored (empty, too long, not cookie-safe, already used)."""

class StoreFullError(CookieStoreError):
    """The store reached its maxsize: purge expired cookies or raise maxsize."""

class ReadOnlyError(CookieStoreError):
    """A write through a store opened read-only."""

class CorruptStoreError(CookieStoreError):
    """A record, an index or the metadata is damaged: `cookiestore check` / `repair`."""

class StoreOpenError(CookieStoreError):
    """The store cannot be opened: not a store, unsupported LMDB format, bad path, locked."""

class AuthextraError(CookieStoreError):
    """authextra holds what the store cannot keep: bytes, a non-str dict key, an int beyond
    64 bits, NaN or infinity, or another type. The message names where (`authextra["k"][1]`)."""

class UnavailableError(CookieStoreError):
    """The store's server (Redis) cannot be reached or did not answer in time; the same store
    object works again once it is back."""

@final
class Tracked:
    """The cookie in use for one connection."""

    @property
    def value(self) -> str: ...
    @property
    def is_new(self) -> bool: ...
    @property
    def set_cookie(self) -> str:
        """`name=value;max-age=N` plus the configured attributes."""
    @property
    def auth(self) -> Optional[AuthTuple]: ...
    @property
    def authid(self) -> str:
        """The stored authid, or (unauthenticated) the cookie value."""

@final
class RevocationFeed:
    """A reader of the store's revocation feed that remembers where it is."""

    def poll(self) -> tuple[list[Revocation], int, bool]:
        """(entries since the last poll, position, missed)."""
    @property
    def position(self) -> int: ...

@final
class Connections:
    """Which connections of this process carry which cookie (the library's registry), over
    connection ids the caller assigns."""

    def __init__(self) -> None: ...
    def register(self, value: str, id: int) -> None: ...
    def unregister(self, value: str, id: int) -> bool: ...
    def connections(self, value: str) -> list[int]: ...
    def cookies(self) -> int: ...

class Watch:
    """A running watcher of the revocation feed (``CookieStore.watch``)."""

    def stop(self) -> None: ...
    @property
    def running(self) -> bool: ...

class CookieStore:
    """An LMDB cookie store with cookie tracking, byte-compatible with Crossbar.io's database
    store; every process opening the same path shares it. LMDB calls release the GIL
    (a lookup answered from the cache, which reads no file, keeps it). In a child made by
    fork() the object opens the store again on its first call there and carries on."""

    def __init__(
        self,
        path: Union[str, PathLike[str]],
        *,
        name: Optional[str] = None,
        length: Optional[int] = None,
        max_age: Optional[int] = None,
        secure: Optional[bool] = None,
        http_strict: Optional[bool] = None,
        same_site: Optional[Literal["Strict", "Lax", "None"]] = None,
        maxsize: Optional[int] = None,
        initial_mapsize: Optional[int] = None,
        readonly: Optional[bool] = None,
        sync: Optional[bool] = None,
        purge_on_startup: Optional[bool] = None,
        file_mode: Optional[int] = None,
        cache_bytes: Optional[int] = None,
    ) -> None:
        """``cache_bytes``: the budget of this process's never-stale cache of live cookies'
        auth (default 10 MiB; 0 turns it off)."""
    @staticmethod
    def from_section(
        section: Mapping[str, Any], node_dir: Optional[Union[str, PathLike[str]]] = None
    ) -> "CookieStore":
        """Opens the store a Crossbar.io `cookie` section names (`path` relative to node_dir, or
        a Redis `url` as it is)."""
    def track(self, cookie_header: Optional[Union[bytes, str]] = None) -> Tracked: ...
    def create(self) -> tuple[str, str]:
        """(value, "name=value;max-age=N") without attributes, as Crossbar's create()."""
    def authenticate(
        self,
        value: str,
        authid: str,
        authrole: Optional[str] = None,
        authmethod: Optional[str] = None,
        authrealm: Optional[str] = None,
        authextra: AuthExtra = None,
        *,
        session: Optional[int] = None,
        worker: Optional[str] = None,
    ) -> Literal["written", "unchanged", "no-such-cookie"]: ...
    def clear_auth(self, value: str) -> bool:
        """Clears the live cookie's authentication, keeping the cookie (LMDB and Redis); True
        when it was authenticated."""
    def get_auth(self, value: str) -> Optional[AuthTuple]: ...
    def exists(self, value: str) -> bool: ...
    def lookup(self, value: str) -> tuple[bool, Optional[AuthTuple]]:
        """(found, auth) from one read: exists and get_auth at once."""
    def unstored_cookie(self) -> tuple[str, str]:
        """A fresh (value, header) that is not stored (for a connection served while the
        store is unavailable)."""
    def health(self) -> dict[str, Any]:
        """available, outages, since, until (epoch seconds or None), refused, problem; no
        round trip."""
    def watch(
        self,
        connections: Connections,
        callback: Callable[[str, list[tuple[int, str, str, list[int]]], Optional[BaseException]], None],
        interval: float = 0.1,
    ) -> Watch:
        """Watches the revocation feed on a library thread; callback(kind, entries, error)
        runs on that thread."""
    def logout(self, value: str) -> bool: ...
    def logout_authid(self, authid: str) -> int: ...
    def purge_expired(self) -> int: ...
    def stats(self) -> dict[str, Any]: ...
    def cache_stats(self) -> dict[str, Any]:
        """This process's cache: ``entries``, ``bytes``, ``capacity_bytes``, ``hits``,
        ``misses``, ``hit_rate``, ``catch_ups``, ``invalidated``, ``flushes``, ``evicted``."""
    def revocation_feed(self, after: Optional[int] = None) -> RevocationFeed: ...
    def revocations_since(self, after: int) -> tuple[list[Revocation], int, bool]: ...
    @property
    def path(self) -> Optional[Path]:
        """The store's directory; None for a store on Redis (read ``location``)."""
    @property
    def location(self) -> str:
        """The store's directory, or its Redis URL with the password masked (``***``)."""
    @property
    def backend(self) -> Literal["lmdb", "redis"]: ...
    @property
    def name(self) -> str: ...
    @property
    def length(self) -> int: ...
    @property
    def max_age(self) -> int: ...
    @property
    def readonly(self) -> bool: ...

def _after_fork_in_child() -> None:
    """Run by the package in the child after os.fork(): every store object drops its inherited
    handle and opens the store again on first use."""

def check_section(section: Mapping[str, Any]) -> None:
    """Checks a Crossbar.io cookie section without opening anything; raises ConfigError."""

def parse_location(location: Union[str, PathLike[str]]) -> tuple[Literal["lmdb", "redis"], str]:
    """(kind, display) of a store location, by the library's rule (``scheme://`` is a URL,
    never a directory); display masks a password. Raises ConfigError for a URL cookiestore
    does not serve."""
def store_keys() -> list[str]:
    """The keys a cookie section's ``store`` accepts, from the library's parser (any other
    key is refused, named)."""
