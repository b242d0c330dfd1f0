"""A cache on Redis from Python (``redis_cache_bytes`` in the node config's store object):
lookups are answered from the process's cache, and a logout or authentication change made by
another handle is seen as soon as its call returned."""

from __future__ import annotations

import re

import pytest

from cookiestore import CookieStore
from redis_server import need_redis, running, section

need_redis()


@pytest.fixture(scope="module")
def redis(tmp_path_factory):
    with running(tmp_path_factory.mktemp("redis")) as server:
        yield server


def test_a_cached_handle_sees_each_change_once_it_returned(redis, request):
    prefix = re.sub(r"[^A-Za-z0-9_.-]", "-", request.node.name) + ":"
    cached_section = section(redis.url(), prefix)
    cached_section["store"]["redis_cache_bytes"] = 1 << 20
    reader = CookieStore.from_section(cached_section)
    writer = CookieStore.from_section(section(redis.url(), prefix))
    for _ in range(5):
        value = writer.create()[0]
        writer.authenticate(value, "alice", "user")
        assert reader.get_auth(value)[1] == "user"
        # A hit within 5 lookups: one made while the drainer thread renews the lease, or
        # after this thread was descheduled past it (18 ms), reads Redis instead.
        for _ in range(5):
            hits = reader.cache_stats()["hits"]
            assert reader.get_auth(value)[1] == "user"
            if reader.cache_stats()["hits"] == hits + 1:
                break
        else:
            pytest.fail("5 lookups in a row: none answered from the cache")
        writer.authenticate(value, "alice", "admin")
        assert reader.get_auth(value)[1] == "admin"
        assert reader.exists(value)
        assert writer.logout(value)
        assert not reader.exists(value)
        assert reader.get_auth(value) is None
    assert reader.stats().cache_problem is None
