"""Type stubs of the Rust extension module cookiestore._cookiestore."""

from os import PathLike
from pathlib import Path
from typing import Any, Callable, Literal, Mapping, Optional, TypeAlias, Union, final

# Names annotated `TypeAlias` exist for type checkers only; every other name here is the
# module's (tests/test_stubs.py checks both ways).

# What authextra may hold: what CBOR and JSON both hold (no bytes: see AuthextraError).
AuthExtra: TypeAlias = Union[
    None, bool, int, float, str, list["AuthExtra"], tuple["AuthExtra", ...], dict[str, "AuthExtra"]
]
# (authid, authrole, authmethod, authrealm, authextra), as Crossbar.io's getAuth returns it.
AuthTuple: TypeAlias = tuple[str, Optional[str], Optional[str], Optional[str], Any]
# Why a feed entry was written: exactly REVOCATION_KINDS (the library's RevocationKind), in
# the order of their codes. The first three revoke the cookie (REVOKING_KINDS).
RevocationKind: TypeAlias = Literal["logout", "authid", "maintenance", "auth", "replaced", "purged", "flush"]

#: Every feed kind, in the order of their codes (from the library's RevocationKind::ALL).
REVOCATION_KINDS: tuple[RevocationKind, ...]
#: The kinds that revoke a cookie: its live connections are closed (RevocationKind::revokes).
REVOKING_KINDS: frozenset[RevocationKind]

# One class per error of the library (`cookiestore::Error` variant); the finer classes sit
# under the broader ones that caught them before, so `except StoreOpenError` still works.

class CookieStoreError(Exception):
    """Base class of every error the cookie store raises; the message says what to do."""

class ConfigError(CookieStoreError):
    """A configuration value is outside its allowed range or malformed (names the field)."""

class UnsupportedLocationError(ConfigError):
    """The location is a URL of a kind cookiestore does not serve (not a directory, not a
    Redis URL)."""

class InvalidValueError(CookieStoreError):
    """A cookie value or record cannot be stored (empty, too long, not cookie-safe, too
    large)."""

class InvalidAuthError(InvalidValueError):
    """An authentication cannot be stored as given (an empty authid)."""

class DuplicateValueError(InvalidValueError):
    """The cookie value already belongs to another cookie: values are unique."""

class StoreFullError(CookieStoreError):
    """The store reached its maxsize: purge expired cookies or raise maxsize."""

class DiskFullError(CookieStoreError):
    """The file system holding the store is full (or the quota is spent): free space there.
    Nothing of the failed write was written."""

class ReadOnlyError(CookieStoreError):
    """A write through a store opened read-only."""

class CorruptStoreError(CookieStoreError):
    """A record, an index or the metadata is damaged: `cookiestore check` / `repair`."""

class CorruptRecordError(CorruptStoreError):
    """A stored cookie record cannot be decoded: `cookiestore repair` quarantines it."""

class InvalidRecordError(CorruptStoreError):
    """Bytes that should hold a cookie record are not a valid record."""

class CorruptMetadataError(CorruptStoreError):
    """The store's table metadata or an index entry is damaged: `cookiestore repair`
    rebuilds the indexes."""

class DamagedStoreError(CorruptStoreError):
    """The store's files are damaged (data.mdb truncated or its pages damaged, or an
    impossible lock.mdb): restore from an export or a copy."""

class StoreOpenError(CookieStoreError):
    """The store cannot be opened or written: not a store, unsupported LMDB format, bad
    path, locked, newer, or an unsafe Redis."""

class NotAStoreError(StoreOpenError):
    """The path exists but is not an LMDB cookie store."""

class UnsupportedFormatError(StoreOpenError):
    """data.mdb was written by an LMDB whose data format this build cannot read."""

class PathError(StoreOpenError):
    """The path cannot be used: missing, not a directory, or without permission."""

class LockConflictError(StoreOpenError):
    """The store is open in another program whose LMDB cannot share lock.mdb (Crossbar.io's
    LMDB 0.9): stop it or wait until it closes the store."""

class NewerStoreError(StoreOpenError):
    """A newer cookiestore wrote this store: this build reads it but does not write it;
    upgrade every program using it."""

class RedisSettingError(StoreOpenError):
    """The Redis server may drop the store's keys by itself (its maxmemory-policy evicts):
    set it to noeviction, or open with allow_eviction."""

class RedisCredentialsError(StoreOpenError):
    """Redis refused the store's credentials (a wrong password, or an ACL user that does not
    exist or is disabled); the message names the user, never the password."""

class AuthextraError(CookieStoreError):
    """authextra holds what the store cannot keep: bytes, a non-str dict key, an int beyond
    64 bits, NaN or infinity, or another type. The message names where (`authextra["k"][1]`)."""

class UnavailableError(CookieStoreError):
    """The store's server (Redis) cannot be reached or did not answer in time; the same store
    object works again once it is back."""

class NotReplicatedError(CookieStoreError):
    """The change is on the Redis master, but fewer replicas than min_replicas_acked
    acknowledged it in time: a failover before they catch up could lose it."""

class RedisError(CookieStoreError):
    """The Redis server answered the store's command with an error (out of memory, wrong key
    type, a script error, ...)."""

class ValueSpaceExhaustedError(CookieStoreError):
    """Creating a cookie kept drawing values that already exist: raise `length`."""

class ReadersFullError(CookieStoreError):
    """LMDB's reader table is full: too many processes or threads have the store open."""

class NestedTransactionError(CookieStoreError):
    """A store method was called inside a snapshot or batch of the same thread."""

class ForkedProcessError(CookieStoreError):
    """A store handle was used in a child made by fork() (the package normally opens the
    store again there by itself)."""

class UnsupportedError(CookieStoreError):
    """The operation applies to LMDB stores only, and this store is on another backend."""

class NotEmptyError(CookieStoreError):
    """A restore or copy was refused: its destination already holds cookies."""

class DestinationExistsError(CookieStoreError):
    """A copy was refused: its destination exists (a copy creates a new directory)."""

class LmdbError(CookieStoreError):
    """An LMDB error without a class of its own; the message is LMDB's."""

class StoreIOError(CookieStoreError):
    """An I/O error outside LMDB; the message is the operating system's."""

@final
class TableMeta:
    """One table of the store (its slot metadata, as zlmdb writes it)."""

    @property
    def oid(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def description(self) -> Optional[str]: ...
    @property
    def tags(self) -> Optional[tuple[str, ...]]: ...
    @property
    def creator(self) -> str: ...
    @property
    def slot(self) -> int: ...

@final
class Stats:
    """Figures about a store: the library's Stats, flat as its JSON form. The cookie
    figures are every backend's; LMDB's (map, pages, indexes, reader slots, tables) are None
    on Redis, and Redis's (``feed_entries``, ``last_revocation``, ``maxmemory_policy``, ``cache_problem``) None
    on LMDB. Times are nanoseconds since the epoch. Read-only."""

    @property
    def records(self) -> int:
        """Cookie records, live and expired."""
    @property
    def live(self) -> int: ...
    @property
    def expired(self) -> int:
        """Expired cookies not yet purged."""
    @property
    def authenticated(self) -> int:
        """Live cookies with an authid."""
    @property
    def corrupt(self) -> int:
        """Records that could not be decoded."""
    @property
    def oldest_created(self) -> Optional[int]: ...
    @property
    def newest_created(self) -> Optional[int]: ...
    @property
    def next_expiry(self) -> Optional[int]: ...
    @property
    def value_index_entries(self) -> Optional[int]: ...
    @property
    def expiry_index_entries(self) -> Optional[int]: ...
    @property
    def map_size(self) -> Optional[int]: ...
    @property
    def map_used(self) -> Optional[int]: ...
    @property
    def maxsize(self) -> Optional[int]: ...
    @property
    def page_size(self) -> Optional[int]: ...
    @property
    def depth(self) -> Optional[int]: ...
    @property
    def branch_pages(self) -> Optional[int]: ...
    @property
    def leaf_pages(self) -> Optional[int]: ...
    @property
    def overflow_pages(self) -> Optional[int]: ...
    @property
    def entries(self) -> Optional[int]: ...
    @property
    def txn_id(self) -> Optional[int]: ...
    @property
    def readers_used(self) -> Optional[int]: ...
    @property
    def readers_max(self) -> Optional[int]: ...
    @property
    def tables(self) -> Optional[tuple[TableMeta, ...]]: ...
    @property
    def foreign_writes(self) -> Optional[bool]: ...
    @property
    def feed_entries(self) -> Optional[int]:
        """Redis: entries in the revocation feed."""
    @property
    def last_revocation(self) -> Optional[int]:
        """Redis: the sequence number of the feed's last entry (0: none yet)."""
    @property
    def maxmemory_policy(self) -> Optional[str]:
        """Redis: the server's maxmemory-policy (None when it does not say)."""
    @property
    def cache_problem(self) -> Optional[str]:
        """Redis: why this process's cache on Redis (``redis_cache_bytes``) last stopped
        answering (None when it did not, or there is none)."""
    def to_dict(self) -> dict[str, Any]:
        """The figures of the store's backend as a dict (``tables`` as a list of dicts),
        e.g. for ``json.dumps``."""

@final
class Revocation:
    """One entry of the revocation feed. Read-only; equal entries compare equal and hash
    alike."""

    @property
    def seq(self) -> int:
        """Its sequence number (the first is 1; increasing in commit order)."""
    @property
    def at_ns(self) -> int:
        """When it was revoked (ns since the epoch, the writer's clock)."""
    @property
    def kind(self) -> RevocationKind: ...
    @property
    def revokes(self) -> bool:
        """Whether it revokes the cookie (kind in REVOKING_KINDS): close its connections."""
    @property
    def value(self) -> str:
        """The cookie's value (empty for ``purged`` and ``flush``)."""
    @property
    def oid(self) -> str:
        """The cookie's oid (the nil UUID for ``purged`` and ``flush``)."""
    @property
    def connections(self) -> tuple[int, ...]:
        """From a watcher: the ids ``Connections`` held for the value; from a feed read: ()."""

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

    def __new__(cls) -> "Connections": ...
    def register(self, value: str, id: int) -> None: ...
    def unregister(self, value: str, id: int) -> bool: ...
    def connections(self, value: str) -> list[int]: ...
    def cookies(self) -> int: ...

@final
class Watch:
    """A running watcher of the revocation feed (``CookieStore.watch``)."""

    def stop(self) -> None: ...
    @property
    def running(self) -> bool: ...

@final
class CookieStore:
    """An LMDB cookie store with cookie tracking, byte-compatible with Crossbar.io's database
    store; every process opening the same path shares it. LMDB calls release the GIL
    (a lookup answered from the cache, which reads no file, keeps it). In a child made by
    fork() the object opens the store again on its first call there and carries on."""

    def __new__(
        cls,
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
    ) -> "CookieStore":
        """``cache_bytes``: the budget of this process's never-stale cache of live cookies'
        auth (default 384 MiB, a bound; 0 turns it off)."""
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
        callback: Callable[[Literal["revoked", "missed", "failed"], list[Revocation], Optional[BaseException]], None],
        interval: float = 0.1,
    ) -> Watch:
        """Watches the revocation feed on a library thread; callback(event, entries, error)
        runs on that thread: "revoked" with the revoking entries (each with its
        ``connections``), "missed", or "failed" with the exception."""
    def logout(self, value: str) -> bool: ...
    def logout_authid(self, authid: str) -> int: ...
    def purge_expired(self) -> int: ...
    def stats(self) -> Stats: ...
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
    @property
    def timeout_ms(self) -> int:
        """A store call's deadline (ms): a Redis URL's ``?timeout_ms=``, else the section's
        ``timeout_ms``, else 2000."""

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
