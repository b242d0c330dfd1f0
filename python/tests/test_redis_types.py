"""Stats of a Redis store (a private redis-server): the cookie figures and Redis's own, and
None for LMDB's."""

from __future__ import annotations

import re

import pytest

from cookiestore import CookieStore
from redis_server import need_redis, running, section

need_redis()

LMDB_ONLY = (
    "value_index_entries",
    "expiry_index_entries",
    "map_size",
    "map_used",
    "maxsize",
    "page_size",
    "depth",
    "branch_pages",
    "leaf_pages",
    "overflow_pages",
    "entries",
    "txn_id",
    "readers_used",
    "readers_max",
    "tables",
    "foreign_writes",
)


@pytest.fixture(scope="module")
def redis(tmp_path_factory):
    with running(tmp_path_factory.mktemp("redis")) as server:
        yield server


def test_stats_on_redis_are_the_cookie_figures_and_redis_own(redis, request):
    prefix = re.sub(r"[^A-Za-z0-9_.-]", "-", request.node.name) + ":"
    store = CookieStore.from_section(section(redis.url(), prefix))
    values = [store.create()[0] for _ in range(3)]
    store.authenticate(values[0], "alice")
    assert store.logout(values[1])
    stats = store.stats()
    assert (stats.records, stats.live, stats.authenticated) == (2, 2, 1)
    # The logout is one feed entry; the server runs with noeviction.
    assert stats.feed_entries == 1 and stats.last_revocation >= 1
    assert stats.maxmemory_policy == "noeviction"
    for name in LMDB_ONLY:
        assert getattr(stats, name) is None, name
    d = stats.to_dict()
    assert not set(LMDB_ONLY) & set(d)
    assert d["feed_entries"] == 1 and d["maxmemory_policy"] == "noeviction"
    assert "feed_entries=1" in repr(stats) and "map_size" not in repr(stats)
