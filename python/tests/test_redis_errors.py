"""The Redis errors as their own exception classes, each raised by a real redis-server: a
newer store's feature level, an evicting maxmemory-policy, an out-of-memory answer, no server
at all."""

from __future__ import annotations

import re
import time

import pytest

import cookiestore
from cookiestore import CookieStore
from redis_server import free_ports, need_redis, running, section

need_redis()


@pytest.fixture(scope="module")
def redis(tmp_path_factory):
    with running(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture
def prefix(request) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "-", request.node.name) + ":"


def _raises(cls, f):
    with pytest.raises(cookiestore.CookieStoreError) as e:
        f()
    assert type(e.value) is cls, f"{type(e.value).__name__}: {e.value}"
    return e.value


def test_newer_store_error(redis, prefix):
    CookieStore.from_section(section(redis.url(), prefix)).create()
    assert redis.command("SET", f"{prefix}feature_level", "999").startswith(b"+OK")
    e = _raises(cookiestore.NewerStoreError, lambda: CookieStore.from_section(section(redis.url(), prefix)))
    assert isinstance(e, cookiestore.StoreOpenError)
    assert "feature level 999" in str(e)


def test_redis_setting_error(redis, prefix):
    assert redis.command("CONFIG", "SET", "maxmemory-policy", "allkeys-lru").startswith(b"+OK")
    try:
        e = _raises(cookiestore.RedisSettingError, lambda: CookieStore.from_section(section(redis.url(), prefix)).create())
        assert isinstance(e, cookiestore.StoreOpenError)
        assert "maxmemory-policy" in str(e)
    finally:
        redis.command("CONFIG", "SET", "maxmemory-policy", "noeviction")


def test_redis_error(redis, prefix):
    store = CookieStore.from_section(section(redis.url(), prefix))
    value = store.create()[0]
    assert redis.command("CONFIG", "SET", "maxmemory", "1").startswith(b"+OK")
    try:
        e = _raises(cookiestore.RedisError, lambda: store.authenticate(value, "alice"))
        assert "OOM" in str(e)
    finally:
        redis.command("CONFIG", "SET", "maxmemory", "0")
    assert store.authenticate(value, "alice") == "written"  # the same object, once Redis has room


def test_unavailable_error():
    (port,) = free_ports(1)  # nothing listens there
    e = _raises(cookiestore.UnavailableError, lambda: CookieStore.from_section(section(f"redis://127.0.0.1:{port}/0", "u:")))
    assert "unavailable" in str(e)


def test_not_replicated_error(tmp_path, prefix):
    """min_replicas_acked: a logout the replica did not acknowledge raises NotReplicatedError,
    and is on the master."""
    (tmp_path / "m").mkdir()
    (tmp_path / "r").mkdir()
    with running(tmp_path / "m") as master, running(tmp_path / "r") as replica:
        assert replica.command("REPLICAOF", "127.0.0.1", str(master.port)).startswith(b"+OK")
        deadline = time.monotonic() + 30
        while b"master_link_status:up" not in replica.command("INFO", "replication"):
            assert time.monotonic() < deadline, "the replica did not sync"
            time.sleep(0.05)
        config = section(master.url(), prefix)
        config["store"].update(min_replicas_acked=1, replica_ack_timeout_ms=200)
        store = CookieStore.from_section(config)
        value = store.create()[0]
        assert store.logout(value) is True  # acknowledged by the replica
        replica.stop()
        value = store.create()[0]
        e = _raises(cookiestore.NotReplicatedError, lambda: store.logout(value))
        assert "is on the master" in str(e) and "only 0 of the 1 replica" in str(e)
        assert not store.exists(value)  # the logout is on the master
