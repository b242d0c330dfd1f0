"""Each library error reaches Python as its own exception class, raised by a real failing
operation (a damaged file, a read-only open, a bad value, a full map, another program holding
the store, ...), and stays catchable as the broader class it was before. The Redis ones are in
test_redis_errors.py."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

import cookiestore
from cookiestore import CookieStore
from lmdb_raw import hold_open, make_store, raw_put, raw_put_first_record

# Every class, the broader one it sits under (besides CookieStoreError).
HIERARCHY = {
    "ConfigError": "CookieStoreError",
    "UnsupportedLocationError": "ConfigError",
    "InvalidValueError": "CookieStoreError",
    "InvalidAuthError": "InvalidValueError",
    "DuplicateValueError": "InvalidValueError",
    "StoreFullError": "CookieStoreError",
    "DiskFullError": "CookieStoreError",
    "ReadOnlyError": "CookieStoreError",
    "CorruptStoreError": "CookieStoreError",
    "CorruptRecordError": "CorruptStoreError",
    "InvalidRecordError": "CorruptStoreError",
    "CorruptMetadataError": "CorruptStoreError",
    "DamagedStoreError": "CorruptStoreError",
    "StoreOpenError": "CookieStoreError",
    "NotAStoreError": "StoreOpenError",
    "UnsupportedFormatError": "StoreOpenError",
    "PathError": "StoreOpenError",
    "LockConflictError": "StoreOpenError",
    "NewerStoreError": "StoreOpenError",
    "RedisSettingError": "StoreOpenError",
    "RedisCredentialsError": "StoreOpenError",
    "AuthextraError": "CookieStoreError",
    "UnavailableError": "CookieStoreError",
    "NotReplicatedError": "CookieStoreError",
    "RedisError": "CookieStoreError",
    "ValueSpaceExhaustedError": "CookieStoreError",
    "ReadersFullError": "CookieStoreError",
    "NestedTransactionError": "CookieStoreError",
    "ForkedProcessError": "CookieStoreError",
    "UnsupportedError": "CookieStoreError",
    "NotEmptyError": "CookieStoreError",
    "DestinationExistsError": "CookieStoreError",
    "LmdbError": "CookieStoreError",
    "StoreIOError": "CookieStoreError",
}


def test_hierarchy_and_every_class_is_exported():
    errors = {n for n in cookiestore.__all__ if n.endswith("Error")} - {"CookieStoreError"}
    assert errors == set(HIERARCHY)
    for name, base in HIERARCHY.items():
        cls = getattr(cookiestore, name)
        assert cls.__bases__ == (getattr(cookiestore, base),), name
        assert issubclass(cls, cookiestore.CookieStoreError)
        assert cls.__module__ == "cookiestore"
    assert cookiestore.CookieStoreError.__bases__ == (Exception,)


# The class each variant of the library's `Error` (src/error.rs) raises (python/src/lib.rs,
# `to_py`).
VARIANTS = {
    "InvalidConfig": "ConfigError",
    "InvalidValue": "InvalidValueError",
    "InvalidAuth": "InvalidAuthError",
    "NewerStore": "NewerStoreError",
    "DuplicateValue": "DuplicateValueError",
    "MapFull": "StoreFullError",
    "ReadOnly": "ReadOnlyError",
    "CorruptRecord": "CorruptRecordError",
    "InvalidRecord": "InvalidRecordError",
    "CorruptMetadata": "CorruptMetadataError",
    "UnsupportedFormat": "UnsupportedFormatError",
    "NotAStore": "NotAStoreError",
    "Path": "PathError",
    "ValueSpaceExhausted": "ValueSpaceExhaustedError",
    "ReadersFull": "ReadersFullError",
    "Damaged": "DamagedStoreError",
    "LockConflict": "LockConflictError",
    "NestedTransaction": "NestedTransactionError",
    "ForkedProcess": "ForkedProcessError",
    "UnsupportedLocation": "UnsupportedLocationError",
    "Unavailable": "UnavailableError",
    "NotReplicated": "NotReplicatedError",
    "Redis": "RedisError",
    "RedisSetting": "RedisSettingError",
    "RedisCredentials": "RedisCredentialsError",
    "Unsupported": "UnsupportedError",
    "NotEmpty": "NotEmptyError",
    "DestinationExists": "DestinationExistsError",
    "DiskFull": "DiskFullError",
    "Lmdb": "LmdbError",
    "Io": "StoreIOError",
}


def test_every_library_error_has_its_own_class():
    """Read from the library's source: a variant added there fails here until it has a class
    (and `to_py` raises it)."""
    source = (Path(__file__).resolve().parents[2] / "src" / "error.rs").read_text()
    body = source[source.index("pub enum Error {") : source.index("\n}\n", source.index("pub enum Error {"))]
    variants = re.findall(r"^    ([A-Z][A-Za-z]*)\b", body, re.MULTILINE)
    assert sorted(variants) == sorted(VARIANTS)
    assert len(set(VARIANTS.values())) == len(VARIANTS)  # each its own
    assert set(VARIANTS.values()) <= set(HIERARCHY)


def _raises(cls, f):
    """Runs `f`; asserts it raised exactly `cls` (not a subclass, not the base); returns it."""
    with pytest.raises(cookiestore.CookieStoreError) as e:
        f()
    assert type(e.value) is cls, f"{type(e.value).__name__}: {e.value}"
    return e.value


def test_config_error(tmp_path):
    e = _raises(cookiestore.ConfigError, lambda: CookieStore(str(tmp_path / "s"), length=1))
    assert "`length`" in str(e)


def test_unsupported_location_error():
    e = _raises(cookiestore.UnsupportedLocationError, lambda: cookiestore.parse_location("http://example.com/x"))
    assert isinstance(e, cookiestore.ConfigError)  # caught as before
    assert "Redis URL" in str(e)


def test_invalid_value_error_for_a_record_too_large(tmp_path):
    store = CookieStore(str(tmp_path / "s"))
    value = store.create()[0]
    e = _raises(cookiestore.InvalidValueError, lambda: store.authenticate(value, "alice", authextra={"x": "y" * (1 << 20)}))
    assert "more than the 1048576 allowed" in str(e)
    assert store.get_auth(value) is None  # nothing written


def test_invalid_auth_error_for_an_empty_authid(tmp_path):
    store = CookieStore(str(tmp_path / "s"))
    value = store.create()[0]
    e = _raises(cookiestore.InvalidAuthError, lambda: store.authenticate(value, ""))
    assert isinstance(e, cookiestore.InvalidValueError)  # caught as before
    assert "authid is empty" in str(e)


def test_store_full_error(tmp_path):
    store = CookieStore(str(tmp_path / "s"), maxsize=128 * 1024, initial_mapsize=128 * 1024)

    def fill():
        for _ in range(100000):
            store.authenticate(store.create()[0], "alice", authextra={"pad": "x" * 2000})

    assert "maxsize" in str(_raises(cookiestore.StoreFullError, fill))


def test_read_only_error(tmp_path):
    path = str(tmp_path / "s")
    value = CookieStore(path).create()[0]
    ro = CookieStore(path, readonly=True)
    assert "read-only" in str(_raises(cookiestore.ReadOnlyError, lambda: ro.logout(value)))
    assert ro.exists(value)


def test_corrupt_record_error(tmp_path):
    path = tmp_path / "s"
    values = make_store(path)
    key = raw_put_first_record(path, 1, b"\x05\x00\x00\x00garbage-garbage")
    store = CookieStore(str(path))
    stats = store.stats()
    assert stats.corrupt == 1 and stats.live == 2
    assert {t.name: t.slot for t in stats.tables}["cfxdb.cookiestore._cookie.Cookies"] == 1
    failed = []
    for value in values:
        try:
            store.get_auth(value)
        except cookiestore.CookieStoreError as e:
            failed.append(e)
    assert len(failed) == 1, failed
    (e,) = failed
    assert type(e) is cookiestore.CorruptRecordError, f"{type(e).__name__}: {e}"
    assert isinstance(e, cookiestore.CorruptStoreError)
    oid = key[2:].hex()
    assert f"{oid[:8]}-{oid[8:12]}" in str(e) and "cookiestore repair" in str(e)


def test_corrupt_metadata_error(tmp_path):
    path = tmp_path / "s"
    make_store(path)
    raw_put(path, bytes([0, 0, 0, 1]), b"not cbor at all \xff")
    e = _raises(cookiestore.CorruptMetadataError, lambda: CookieStore(str(path), readonly=True).stats())
    assert "slot 1" in str(e)


def test_damaged_store_error_for_a_truncated_data_file(tmp_path):
    path = tmp_path / "s"
    make_store(path, 3000)
    data = path / "data.mdb"
    os.truncate(data, data.stat().st_size // 2)
    e = _raises(cookiestore.DamagedStoreError, lambda: CookieStore(str(path), readonly=True))
    assert isinstance(e, cookiestore.CorruptStoreError)
    assert "truncated" in str(e)


def test_not_a_store_error(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    e = _raises(cookiestore.NotAStoreError, lambda: CookieStore(str(tmp_path)))
    assert isinstance(e, cookiestore.StoreOpenError)
    assert not (tmp_path / "data.mdb").exists()


def test_unsupported_format_error(tmp_path):
    path = tmp_path / "s"
    make_store(path)
    with open(path / "data.mdb", "r+b") as f:
        for meta_page in (0, 4096):  # both meta pages: LMDB 1.0's data format 3
            f.seek(meta_page + 20)
            f.write((3).to_bytes(4, "little"))
    e = _raises(cookiestore.UnsupportedFormatError, lambda: CookieStore(str(path)))
    assert "format 3" in str(e)


def test_path_error(tmp_path):
    e = _raises(cookiestore.PathError, lambda: CookieStore(str(tmp_path / "missing"), readonly=True))
    assert isinstance(e, cookiestore.StoreOpenError)
    (tmp_path / "file").write_text("x")
    _raises(cookiestore.PathError, lambda: CookieStore(str(tmp_path / "file" / "store")))


def test_lock_conflict_error(tmp_path):
    path = tmp_path / "s"
    make_store(path)
    other = hold_open(path)
    try:
        e = _raises(cookiestore.LockConflictError, lambda: CookieStore(str(path)))
        assert "stop that program" in str(e)
    finally:
        assert other.stdin is not None
        other.stdin.close()
        other.wait(timeout=60)
    assert CookieStore(str(path)).stats().live == 3  # once it let go


def test_store_io_error(tmp_path):
    (tmp_path / "data.mdb").mkdir()
    e = _raises(cookiestore.StoreIOError, lambda: CookieStore(str(tmp_path), readonly=True))
    assert "Is a directory" in str(e)


def test_authextra_error(tmp_path):
    store = CookieStore(str(tmp_path / "s"))
    value = store.create()[0]
    _raises(cookiestore.AuthextraError, lambda: store.authenticate(value, "alice", authextra={"k": b"bytes"}))
