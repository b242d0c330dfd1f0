"""The Crossbar.io plug-in on a Redis store whose feed goes back in time: Redis killed and
restarted from its last RDB snapshot (the default persistence), then a logout by authid at
another node. The worker's next poll closes every connection of the user's cookies (the
feed reports the rollback as missed, and the plug-in re-checks its connections)."""

from __future__ import annotations

import time

import pytest

from need import need  # noqa: E402

need("crossbar.router.cookiestore")

from redis_server import RedisServer, need_redis  # noqa: E402

need_redis()

from cookiestore.crossbar import CookieStoreCookiestore  # noqa: E402
from test_crossbar_store import Proto  # noqa: E402


@pytest.fixture
def redis(tmp_path):
    server = RedisServer(tmp_path / "redis")
    server.dir.mkdir()
    try:
        server.start()
        yield server
    finally:
        server.stop()


def plugin(url: str, node_dir) -> CookieStoreCookiestore:
    section = {"name": "cbtid", "length": 24, "max_age": 600, "store": {"type": "cookiestore", "url": url}}
    return CookieStoreCookiestore(section, str(node_dir), poll_interval=None, purge_interval=None)


def test_rdb_rollback_then_logout_by_authid_closes_every_connection(redis, tmp_path):
    url = redis.url() + "?prefix=feed:"
    here = plugin(url, tmp_path)  # the worker holding the connections
    there = plugin(url, tmp_path)  # another node
    here.start_polling(3600)  # creates the feed; polled by hand below
    here.stop_polling()
    protos = []
    for i in range(4):
        cbtid, _ = there.create()
        there.setAuth(cbtid, "alice", "user", "wampcra", None, "realm1")
        p = Proto(str(i))
        here.addProto(cbtid, p)
        protos.append(p)
    other, _ = there.create()
    there.delAuth(other)
    assert redis.command("SAVE").startswith(b"+OK")  # dump.rdb: the feed at 1
    for _ in range(3):
        cbtid, _ = there.create()
        there.delAuth(cbtid)
    assert here.poll_revocations() == 0  # read up to 4; none of its connections
    redis.stop()  # SIGKILL: no save
    redis.start()  # loads dump.rdb: the feed is back at 1
    assert there.store.logout_authid("alice") == 4  # seqs 2..5 again
    # The first polls after the restart may meet the store's reconnect (a poll that cannot
    # reach Redis closes nothing and retries next time): poll until they are closed, 10 s.
    closed, deadline = 0, time.monotonic() + 10
    while closed < 4 and time.monotonic() < deadline:
        closed += here.poll_revocations()
        time.sleep(0.05)
    assert closed == 4
    assert [p.closed for p in protos] == [1, 1, 1, 1]
