"""The Redis errors as their own exception classes, each raised by a real redis-server: a
newer store's feature level, an evicting maxmemory-policy, an out-of-memory answer, no server
at all."""

from __future__ import annotations

import re

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
