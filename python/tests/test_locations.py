"""Where a store is, from Python: the library's one rule (``cookiestore.parse_location``), and
a Redis password that never shows (``repr``, ``location``, exceptions); ``path`` is a
directory or None, never a URL taken for a path."""

from __future__ import annotations

from pathlib import Path

import pytest

import cookiestore
from redis_server import RedisServer, need_redis

PASSWORD = "p/a?s#s@w%2Frd"
ENCODED = "p%2Fa%3Fs%23s%40w%252Frd"


def assert_no_password(text: str) -> None:
    for piece in (PASSWORD, ENCODED, "p/a?s", "s#s@w", "w%2Frd", "p%2Fa"):
        assert piece not in text, f"{piece!r} in {text!r}"


def test_parse_location_is_the_librarys_rule(tmp_path):
    assert cookiestore.parse_location(str(tmp_path)) == ("lmdb", str(tmp_path))
    assert cookiestore.parse_location(tmp_path / "redis://h") == ("lmdb", str(tmp_path / "redis://h"))
    assert cookiestore.parse_location("./redis://h")[0] == "lmdb"
    kind, display = cookiestore.parse_location(f"redis://joe:{ENCODED}@10.0.0.5:6379/0?prefix=cb1:")
    assert (kind, display) == ("redis", "redis://joe:***@10.0.0.5:6379/0?prefix=cb1:")
    assert cookiestore.parse_location("unix:///run/r.sock?pass=x") == ("redis", "unix:///run/r.sock?pass=***")
    for bad in (f"ftp://:{ENCODED}@h/x", f"redis://:{PASSWORD}@h/0", "redis://h/0?prefix=cookie:"):
        with pytest.raises(cookiestore.ConfigError) as e:
            cookiestore.parse_location(bad)
        assert_no_password(str(e.value))


def test_an_lmdb_store_has_a_path(tmp_path):
    s = cookiestore.CookieStore(tmp_path / "s")
    assert s.backend == "lmdb"
    assert s.path == tmp_path / "s"
    assert s.location == str(tmp_path / "s")
    assert repr(s).startswith(f'CookieStore("{tmp_path / "s"}"')


@pytest.fixture
def redis(tmp_path):
    need_redis()
    server = RedisServer(tmp_path / "redis")
    server.dir.mkdir()
    try:
        server.start()
        assert server.command("CONFIG", "SET", "requirepass", PASSWORD).startswith(b"+OK")
        yield server
    finally:
        server.stop()


def test_a_redis_password_never_shows(redis, tmp_path):
    url = f"redis://:{ENCODED}@127.0.0.1:{redis.port}/0?prefix=py:"
    s = cookiestore.CookieStore.from_section({"store": {"type": "cookiestore", "url": url}}, tmp_path)
    value, _ = s.create()
    assert s.exists(value)
    assert s.backend == "redis"
    assert s.path is None
    assert s.location == f"redis://:***@127.0.0.1:{redis.port}/0?prefix=py:"
    for text in (repr(s), s.location, str(s.stats())):
        assert_no_password(text)
    # A store path given as the URL names the Redis store too (the same rule).
    t = cookiestore.CookieStore(url)
    assert t.exists(value) and t.path is None
    assert_no_password(repr(t))
    # Refused: a wrong user, nothing listening, a malformed URL.
    for bad in (
        f"redis://joe:{ENCODED}@127.0.0.1:{redis.port}/0",
        f"redis://:{ENCODED}@127.0.0.1:1/0?timeout_ms=300",
        f"redis://:{PASSWORD}@127.0.0.1:{redis.port}/0",
    ):
        with pytest.raises(cookiestore.CookieStoreError) as e:
            cookiestore.CookieStore(bad)
        assert_no_password(str(e.value))
        assert_no_password(repr(e.value))
    assert not Path("redis:").exists()
