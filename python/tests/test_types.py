"""The typed values of the Python API: Stats (one read-only attribute per field of the
library's Stats), TableMeta, and Revocation, whose kinds are the library's, each produced by a
real store action. `maintenance` (clear, repair) and `replaced` (put: restore, import) are
written by operations the Python API does not offer (the CLI's); the Rust tests cover them."""

from __future__ import annotations

import threading
import time

import pytest

import cookiestore
from cookiestore import CookieStore, Revocation, Stats, TableMeta
from lmdb_raw import make_store, raw_put_first_record

NIL = "00000000-0000-0000-0000-000000000000"


def _public(obj) -> set[str]:
    return {n for n in dir(obj) if not n.startswith("_")}


def test_stats_attributes(tmp_path):
    store = CookieStore(str(tmp_path / "s"), maxsize=16 << 20)
    store.authenticate(store.create()[0], "alice")
    store.create()
    stats = store.stats()
    assert isinstance(stats, Stats)
    assert (stats.records, stats.live, stats.expired, stats.authenticated, stats.corrupt) == (2, 2, 0, 1, 0)
    assert stats.value_index_entries == stats.expiry_index_entries == 2
    assert stats.maxsize == 16 << 20 and 0 < stats.map_used <= stats.map_size
    assert stats.page_size >= 4096 and stats.readers_max >= stats.readers_used >= 1
    assert stats.oldest_created <= stats.newest_created < stats.next_expiry
    assert stats.foreign_writes is False
    assert isinstance(stats.tables, tuple) and all(isinstance(t, TableMeta) for t in stats.tables)
    names = {t.name: t.slot for t in stats.tables}
    assert names["cfxdb.cookiestore._cookie.Cookies"] == 1 and "cookiestore.Revocations" in names
    assert "live=2" in repr(stats) and f"tables=<{len(stats.tables)} tables>" in repr(stats)
    assert repr(stats.tables[0]).startswith("TableMeta(slot=")
    # An empty store has no times.
    empty = CookieStore(str(tmp_path / "e")).stats()
    assert empty.live == 0 and empty.oldest_created is None and empty.next_expiry is None
    assert "oldest_created=None" in repr(empty)


def test_stats_has_one_attribute_per_field_of_the_library(tmp_path):
    """to_dict() is the library's own serialization of its Stats: every key is an attribute
    with the same value, and the attributes it lacks are the other backend's, None here."""
    store = CookieStore(str(tmp_path / "s"))
    store.authenticate(store.create()[0], "alice")
    stats = store.stats()
    d = stats.to_dict()
    redis_only = {"feed_entries", "last_revocation", "maxmemory_policy", "cache_problem"}
    assert _public(stats) - {"to_dict"} - redis_only == set(d)
    assert all(getattr(stats, name) is None for name in redis_only)
    for key, value in d.items():
        if key != "tables":
            assert getattr(stats, key) == value, key
    assert len(d["tables"]) == len(stats.tables)
    for as_dict, table in zip(d["tables"], stats.tables):
        assert _public(table) >= set(as_dict)
        for key in _public(table):
            expected = as_dict.get(key)
            got = getattr(table, key)
            assert (list(got) if isinstance(got, tuple) else got) == expected, key


def test_stats_are_immutable(tmp_path):
    store = CookieStore(str(tmp_path / "s"))
    store.create()
    stats = store.stats()
    for name in ("live", "tables", "maxsize", "foreign_writes"):
        with pytest.raises(AttributeError):
            setattr(stats, name, 0)
        with pytest.raises(AttributeError):
            delattr(stats, name)
    with pytest.raises(AttributeError):
        stats.extra = 1  # no __dict__
    with pytest.raises(AttributeError):
        stats.tables[0].name = "x"
    with pytest.raises(TypeError):
        Stats()
    assert stats.live == 1
    d = stats.to_dict()
    d["live"] = 99  # a copy
    assert stats.live == 1 and stats.to_dict()["live"] == 1


def test_every_kind_made_by_the_python_api_round_trips(tmp_path):
    """auth, logout, authid, purged from this process's calls; flush from another program's
    write (zlmdb's LMDB rewriting a record). Each entry's kind is one of REVOCATION_KINDS and
    revokes exactly when it is one of REVOKING_KINDS."""
    path = tmp_path / "s"
    make_store(path, 1)
    raw_put_first_record(path, 1, None)
    store = CookieStore(str(path), max_age=3600)
    a, b, c = (store.create()[0] for _ in range(3))
    store.authenticate(a, "alice")
    assert store.clear_auth(a) is True
    store.authenticate(b, "bob")
    assert store.logout(c) is True
    assert store.logout_authid("bob") == 1
    short = CookieStore(str(path), max_age=1)
    gone = short.create()[0]
    time.sleep(1.2)
    assert not store.exists(gone)
    assert store.purge_expired() == 1

    entries, position, missed = store.revocations_since(0)
    assert not missed and position == entries[-1].seq
    assert [e.seq for e in entries] == list(range(1, len(entries) + 1))
    got = [(e.kind, e.value) for e in entries]
    assert got == [("flush", ""), ("auth", a), ("auth", a), ("auth", b), ("logout", c), ("authid", b), ("purged", "")]
    for e in entries:
        assert isinstance(e, Revocation)
        assert e.kind in cookiestore.REVOCATION_KINDS
        assert e.revokes == (e.kind in cookiestore.REVOKING_KINDS)
        assert e.connections == ()
        assert e.at_ns > 0
        assert (e.oid == NIL) == (e.kind in ("flush", "purged"))
    assert {e.kind for e in entries} == set(cookiestore.REVOCATION_KINDS) - {"maintenance", "replaced"}


def test_revocations_are_immutable_values(tmp_path):
    store = CookieStore(str(tmp_path / "s"))
    feed = store.revocation_feed()
    value = store.create()[0]
    store.logout(value)
    (polled,), _, _ = feed.poll()
    (read,), _, _ = store.revocations_since(0)
    assert polled == read and hash(polled) == hash(read) and polled is not read
    assert len({polled, read}) == 1
    assert (read.kind, read.value, read.revokes) == ("logout", value, True)
    assert repr(read).startswith(f"Revocation(seq={read.seq}, at_ns={read.at_ns}, kind='logout', value='{value}'")
    for name in ("seq", "kind", "value", "oid", "revokes", "connections"):
        with pytest.raises(AttributeError):
            setattr(read, name, None)
    with pytest.raises(TypeError):
        Revocation()


def test_a_watcher_reports_revoking_entries_with_their_connections(tmp_path):
    path = str(tmp_path / "s")
    store = CookieStore(path)
    other = CookieStore(path)
    kept, revoked = store.create()[0], store.create()[0]
    connections = cookiestore.Connections()
    connections.register(revoked, 7)
    connections.register(revoked, 9)
    connections.register(kept, 8)
    reports: list = []
    got = threading.Event()

    def callback(event, entries, error):
        reports.append((event, entries, error))
        if event == "revoked":
            got.set()

    watch = store.watch(connections, callback, 0.05)
    try:
        other.authenticate(kept, "alice")  # an auth change: not a revocation
        other.logout(revoked)
        assert got.wait(60), reports
    finally:
        watch.stop()
    revoked_reports = [r for r in reports if r[0] == "revoked"]
    entries = [e for _, es, _ in revoked_reports for e in es]
    assert [(e.kind, e.value, e.connections) for e in entries] == [("logout", revoked, (7, 9))]
    assert all(isinstance(e, Revocation) and e.revokes for e in entries)
    assert all(err is None for _, _, err in revoked_reports)
