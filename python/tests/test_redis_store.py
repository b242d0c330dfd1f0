"""The Crossbar.io store class and the binding on a Redis store (a private redis-server):
clearing a cookie's authentication, and what a worker logs while Redis is down."""

from __future__ import annotations

import queue
import re
import threading

import pytest

from need import need  # noqa: E402

need("crossbar.router.cookiestore")

from redis_server import RedisServer, need_redis, running, section  # noqa: E402

need_redis()

import cookiestore  # noqa: E402
from cookiestore.crossbar import CONNECT_THREADS, CookieStoreCookiestore, StoreOutage  # noqa: E402
from twisted.internet.task import Clock  # noqa: E402

NO_AUTH = (None, None, None, None, None)


@pytest.fixture(scope="module")
def redis(tmp_path_factory):
    with running(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture(params=["lmdb", "redis"])
def cs(request, tmp_path, redis):
    """The Crossbar store class on each backend."""
    if request.param == "lmdb":
        config = {"name": "cbtid", "max_age": 600, "store": {"type": "cookiestore", "path": "cookies"}}
    else:
        # A prefix is one word and a colon: the test's name, its punctuation replaced.
        word = re.sub(r"[^A-Za-z0-9_.-]", "-", request.node.name)
        config = section(redis.url(), f"{word}:")
    return CookieStoreCookiestore(config, str(tmp_path), poll_interval=None, purge_interval=None)


def test_set_auth_none_clears_the_authentication_on_both_backends(cs):
    """Crossbar's proxy worker and onHello call setAuth(cbtid, None, ...): the cookie stays,
    anonymous; its authid no longer finds it."""
    cbtid, _ = cs.create()
    assert cs.setAuth(cbtid, None, None, None, None, None) is False  # nothing to clear
    assert cs.setAuth(cbtid, "alice", "user", "wampcra", {"plan": "pro"}, "realm1") is True
    assert cs.getAuth(cbtid) == ("alice", "user", "wampcra", "realm1", {"plan": "pro"})
    assert cs.setAuth(cbtid, None, None, None, None, None) is True
    assert cs.getAuth(cbtid) == NO_AUTH and cs.exists(cbtid)
    assert cs.setAuth(cbtid, None, None, None, None, None) is False
    assert cs.setAuth("unknown-cookie", None, None, None, None, None) is False
    assert cs.store.logout_authid("alice") == 0 and cs.exists(cbtid)
    # A new login after it, and its logout by authid, as usual.
    assert cs.setAuth(cbtid, "bob", "user", "wampcra", None, "realm1") is True
    assert cs.store.logout_authid("bob") == 1 and not cs.exists(cbtid)
    assert cs.setAuth(cbtid, None, None, None, None, None) is False


def test_the_binding_clears_auth_on_redis(redis):
    store = cookiestore.CookieStore.from_section(section(redis.url(), "binding:"))
    value = store.track().value
    assert store.clear_auth(value) is False
    assert store.authenticate(value, "alice", "user", "wampcra", "realm1") == "written"
    other = cookiestore.CookieStore.from_section(section(redis.url(), "binding:"))  # another handle
    assert other.get_auth(value)[0] == "alice"
    assert store.clear_auth(value) is True
    assert other.get_auth(value) is None and other.exists(value)
    assert store.clear_auth(value) is False


class Captured:
    """A logger that keeps what the outage tracker logs (level, formatted text)."""

    def __init__(self):
        self.lines: list[tuple[str, str]] = []

    def _keep(self, level, fmt, **kw):
        kw.pop("failure", None)
        self.lines.append((level, fmt.format(**kw)))

    def warn(self, fmt, **kw):
        self._keep("warn", fmt, **kw)

    def failure(self, fmt, **kw):
        self._keep("failure", fmt, **kw)

    def info(self, fmt, **kw):
        self._keep("info", fmt, **kw)


class ManualClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_an_outage_is_logged_once_from_the_stores_health(tmp_path):
    """Redis killed and restarted under a worker's store: its health (the circuit breaker,
    no round trip), looked at every 0.5 s in a worker, gives one warning when the outage
    starts, one line a minute with the count of refused calls while it lasts, one warning
    when it ends."""
    import time

    server = RedisServer(tmp_path)
    server.start()
    try:
        cs = CookieStoreCookiestore(section(server.url(), "outage:"), str(tmp_path), poll_interval=None, purge_interval=None)
        log, clock = Captured(), ManualClock()
        cs.outage = StoreOutage(log, cs.store.location, report_interval=60, clock=clock)
        cs.check_health()
        assert log.lines == [] and cs.available()

        server.stop()
        with pytest.raises(cookiestore.UnavailableError):
            cs.exists("any-cookie")  # the call that finds Redis gone opens the breaker
        for _ in range(30):  # 3 s of looks at 100 ms
            cs.check_health()
            clock.now += 0.1
        assert len(log.lines) == 1, log.lines
        level, text = log.lines[0]
        assert level == "warn" and "unavailable since" in text and server.url() in text, text
        assert "served without their cookie" in text and "Traceback" not in text
        assert cs.outage.down and not cs.available()
        for _ in range(5):
            with pytest.raises(cookiestore.UnavailableError):
                cs.exists("any-cookie")  # refused at once by the breaker

        clock.now += 60  # a minute on: one count
        cs.check_health()
        cs.check_health()
        assert len(log.lines) == 2, log.lines
        m = re.search(r"still unavailable \(\d+ s, (\d+) calls refused at once so far\)", log.lines[1][1])
        assert m and int(m.group(1)) >= 5, log.lines  # the 5 above, and any other refused call

        server.start()
        deadline = time.monotonic() + 30
        while not cs.available():  # the breaker's probe finds Redis back
            assert time.monotonic() < deadline, "the store did not become available again"
            time.sleep(0.05)
        clock.now += 0.1
        cs.check_health()
        assert len(log.lines) == 3, log.lines
        level, text = log.lines[2]
        assert level == "warn" and "available again after 63.1 s" in text and "calls refused at once" in text, text
        assert not cs.outage.down
        for _ in range(10):
            cs.check_health()
        assert len(log.lines) == 3 and cs.outage.outages == 1
        cbtid, _ = cs.create()  # the same store object works again
        assert cs.exists(cbtid)
    finally:
        server.stop()


def test_timeout_ms_is_the_librarys_and_sets_the_connect_wait(redis, tmp_path):
    """``CookieStore.timeout_ms`` is the deadline the library applies (a URL's ``?timeout_ms=``
    before the section's ``timeout_ms``, 2000 by default), and the Crossbar store's
    ``connect_wait`` follows it."""
    url = redis.url()

    def opened(store: dict) -> int:
        return cookiestore.CookieStore.from_section({"store": dict(store, type="cookiestore")}).timeout_ms

    assert opened({"url": url}) == 2000
    assert opened({"url": url, "timeout_ms": 700}) == 700
    assert opened({"url": f"{url}?timeout_ms=300"}) == 300
    assert opened({"url": f"{url}?timeout_ms=300", "timeout_ms": 700}) == 300
    assert cookiestore.CookieStore(f"{url}?timeout_ms=300").timeout_ms == 300
    assert cookiestore.CookieStore(str(tmp_path / "lmdb")).timeout_ms == 2000
    assert opened({"path": str(tmp_path / "lmdb2"), "timeout_ms": 700}) == 700

    def wait(store: dict) -> float:
        config = {"name": "cbtid", "max_age": 600, "store": dict(store, type="cookiestore")}
        return CookieStoreCookiestore(config, str(tmp_path), poll_interval=None, purge_interval=None).connect_wait

    assert wait({"url": f"{url}?timeout_ms=300", "timeout_ms": 700}) == 0.3
    assert wait({"url": url, "timeout_ms": 700}) == 0.7
    assert wait({"url": url}) == 2.0
    assert wait({"path": "cookies"}) == 2.0


class _Reactor(Clock):
    """Twisted's manual clock with ``callFromThread``: calls from the store's threads are
    queued and run by :meth:`drain` (on the test's thread, as the reactor would)."""

    def __init__(self):
        super().__init__()
        self.queue: "queue.Queue" = queue.Queue()

    def callFromThread(self, f, *args, **kw):  # noqa: N802 - Twisted's name
        self.queue.put((f, args, kw))

    def drain(self) -> None:
        while True:
            try:
                f, args, kw = self.queue.get_nowait()
            except queue.Empty:
                return
            f(*args, **kw)


def test_a_new_connection_waits_at_most_connect_wait(redis, tmp_path):
    """A new connection whose store calls get no answer (every thread that makes them is
    busy: as when each waits on a store that does not answer) is served without its cookie
    once ``connect_wait`` (the URL's ``timeout_ms``) has passed on the reactor's clock, not
    left waiting. No real time is measured: the reactor is a manual clock."""
    config = section(f"{redis.url()}?timeout_ms=300", "connect-wait:")
    reactor = _Reactor()
    cs = CookieStoreCookiestore(
        config, str(tmp_path), reactor=reactor, poll_interval=None, purge_interval=None, background=True
    )
    cookie, _ = cs._store.create()
    assert cs.connect_wait == 0.3
    gate = threading.Event()
    busy = [cs._pool(False).submit(gate.wait, 60) for _ in range(CONNECT_THREADS)]
    try:
        answers = []
        cs.prepare_connection(cookie).addCallback(answers.append)
        reactor.advance(0.2)
        reactor.drain()
        assert answers == [], "answered before the lookup could run or connect_wait passed"
        reactor.advance(0.2)
        reactor.drain()
        assert len(answers) == 1, "still waiting after connect_wait"
        (prepared,) = answers
        assert prepared.degraded and prepared.cbtid == cookie and prepared.exists
        assert prepared.auth == NO_AUTH and prepared.created is None
    finally:
        gate.set()
        for f in busy:
            f.result(timeout=60)
        # The lookup queued behind them still runs; its late answer is dropped.
        cs._pool(False).shutdown(wait=True)
        reactor.drain()
    assert len(answers) == 1
