"""A Redis outage under a real node (started by `crossbar-cookiestore`, one router worker, its
cookie store on a private redis-server): the store never stops the router.

- while Redis hangs (SIGSTOP), a new connection is answered, served without its cookie
  (WAMP-CRA logs it in), never with Crossbar's "internal error", and its cookie is kept;
- a node starts while Redis is down, serves WAMP-CRA logins, and cookies work once Redis is
  up;
- a logout made after an outage still closes connections established before it;
- a logout attempted during an outage fails loudly (the client's connection is closed with
  the error) and is not applied.

Redis stays stopped while a client waits, so "answered" means answered during the hang; the
times are printed, not asserted (the benchmark python/bench/router_faults.py measures them).
"""

from __future__ import annotations

import json
import time

import pytest

from need import need  # noqa: E402

need("crossbar")
need("websockets")

from redis_server import RedisServer, need_redis, running  # noqa: E402

need_redis()

from browser import GOODBYE, WELCOME, Browser  # noqa: E402
from nodes import SECRET, Node, free_ports, login, returning_browser, started, welcomed_by_cookie, write_node  # noqa: E402
from test_node import router_worker  # noqa: E402
from test_redis_nodes import with_store  # noqa: E402
from websockets.exceptions import ConnectionClosed  # noqa: E402

TIMEOUT_MS = 500
KEY_PREFIX = "outage:"


def store(url: str) -> dict:
    return {"type": "cookiestore", "url": url, "key_prefix": KEY_PREFIX, "timeout_ms": TIMEOUT_MS}


def outage_node(root, redis: RedisServer) -> Node:
    """The node (one router worker) with its store on `redis`; not started."""
    (port,) = free_ports(1)
    config = {"version": 2, "controller": {}, "workers": [with_store(router_worker(port), store(redis.url()))]}
    return write_node(root, config, [port])


@pytest.fixture
def redis(tmp_path):
    with running(tmp_path) as server:
        yield server


@pytest.fixture
def node(tmp_path, redis):
    with started(outage_node(tmp_path, redis)) as n:
        yield n


def log_text(node: Node) -> str:
    return (node.cbdir / f"node-{node.starts}.log").read_text(errors="replace")


def wait_for_log(node: Node, needle: str, count: int = 1, within: float = 30) -> None:
    deadline = time.monotonic() + within
    while log_text(node).count(needle) < count:
        assert time.monotonic() < deadline, f"the node did not log {needle!r} ({count}x):\n{node.tail(60)}"
        time.sleep(0.1)


def closed_with(conn, within: float = 10):
    """The close frame (code, reason) the server closes `conn` with."""
    try:
        while True:
            conn.ws.recv(timeout=within)
    except ConnectionClosed as e:
        return (e.rcvd.code, e.rcvd.reason) if e.rcvd else (None, "")


def test_a_new_connection_during_a_redis_hang_is_served_without_its_cookie(node, redis):
    url = node.url(0)
    browser = returning_browser(url)
    cookie = browser.cookie

    redis.hang()
    try:
        # The first meets the hang (its lookup waits for the timeout, on a thread), the next
        # ones the open circuit breaker; each is challenged and logs in with WAMP-CRA.
        for i in range(3):
            t0 = time.monotonic()
            conn = browser.connect(url)
            assert conn.set_cookie is None, f"the cookie was replaced during the outage: {conn.set_cookie}"
            msg = conn.hello(secret=SECRET)
            took = time.monotonic() - t0
            assert "internal error" not in json.dumps(msg), msg
            assert msg[0] == WELCOME and conn.challenged, msg
            assert conn.details["authmethod"] == "wampcra"
            conn.close()
            print(f"connection {i + 1} with its cookie, Redis hung: WAMP-CRA login in {took * 1000:.0f} ms")
        fresh = Browser()
        conn = fresh.connect(url)
        assert conn.set_cookie is None, "a cookie that is not stored was set"
        msg = conn.hello(secret=SECRET)
        assert msg[0] == WELCOME and conn.challenged, msg
        conn.close()
        wait_for_log(node, "served without their cookie")  # the worker's health check saw it
    finally:
        redis.resume()

    # Back: the browser's cookie (kept, never replaced) is welcomed again.
    deadline = time.monotonic() + 30
    while True:
        conn = browser.connect(url)
        msg = conn.hello()
        conn.close()
        if msg[0] == WELCOME and not conn.challenged:
            break
        assert time.monotonic() < deadline, f"the cookie is not welcomed after the outage: {msg}"
        time.sleep(0.2)
    assert browser.cookie == cookie
    wait_for_log(node, "is available again")
    time.sleep(1)  # two more health checks: nothing more is logged
    text = log_text(node)
    # One warning when the outage started, one when it ended (two cookie sections, one store).
    assert text.count("served without their cookie") == 1, node.tail(80)
    assert text.count("is available again") == 1, node.tail(80)


def test_a_node_starts_while_redis_is_down(tmp_path):
    redis = RedisServer(tmp_path)  # its port, not started yet
    node = outage_node(tmp_path, redis)
    try:
        node.start()
        url = node.url(0)
        browser = Browser()
        conn = browser.connect(url)
        assert conn.set_cookie is None
        msg = conn.hello(secret=SECRET)
        assert msg[0] == WELCOME and conn.challenged, msg
        conn.close()

        redis.start()
        # Once the store answers, a login is stored in a new cookie, welcomed by it after.
        deadline = time.monotonic() + 30
        while True:
            browser = Browser()
            conn = browser.connect(url)
            msg = conn.hello(secret=SECRET)
            conn.close()
            assert msg[0] == WELCOME, msg
            if conn.set_cookie:
                break
            assert time.monotonic() < deadline, f"no cookie after Redis started:\n{node.tail(60)}"
            time.sleep(0.2)
        welcomed_by_cookie(browser, url).close()
        assert redis.command("EXISTS", f"{KEY_PREFIX}cookie:{browser.cookie}").startswith(b":1")
    finally:
        node.stop()
        redis.stop()


def test_a_logout_after_an_outage_closes_connections_from_before_it(node, redis):
    import cookiestore

    url = node.url(0)
    browser = returning_browser(url)
    held = welcomed_by_cookie(browser, url)

    redis.hang()
    try:
        wait_for_log(node, "served without their cookie")
    finally:
        redis.resume()
    wait_for_log(node, "is available again")

    # A logout elsewhere (another process, as `cookiestore logout --authid`).
    elsewhere = cookiestore.CookieStore.from_section({"store": store(redis.url())})
    assert elsewhere.logout_authid("alice") >= 1
    assert closed_with(held) is not None, "the connection from before the outage stayed open"


def test_a_logout_during_an_outage_fails_loudly_and_is_not_applied(node, redis):
    url = node.url(0)
    browser = returning_browser(url)
    held = welcomed_by_cookie(browser, url)
    leaving = welcomed_by_cookie(browser, url)

    redis.hang()
    try:
        wait_for_log(node, "served without their cookie")
        leaving.send([GOODBYE, {}, "wamp.close.logout"])
        assert leaving.recv()[0] == GOODBYE  # Crossbar answers GOODBYE before it logs out
        code, reason = closed_with(leaving)
        assert code == 1011 and "NOT applied" in reason, (code, reason)
        # Not applied: the cookie's other connection was not closed as if it were.
        assert not held.wait_closed(timeout=1)
    finally:
        redis.resume()
    wait_for_log(node, "is available again")
    # The cookie is still valid (the logout never looked applied): welcomed by it.
    welcomed_by_cookie(browser, url).close()
    held.close()


def test_a_new_connections_lookup_waits_at_most_connect_wait(node, redis):
    """Redis hung for longer than any wait here: a browser with a stored cookie connects
    right after the hang starts (its lookup meets the hang, before the circuit breaker has
    opened, or the open breaker answers at once). The open handshake completes well inside
    the client's 10 s open timeout (the worker waits at most ``connect_wait``, the store's
    ``timeout_ms`` of 0.5 s), and the connection is served without its cookie: challenged, the
    cookie neither welcomed nor replaced. Only the outer limit is asserted."""
    url = node.url(0)
    browser = returning_browser(url)
    cookie = browser.cookie

    redis.hang()
    try:
        t0 = time.monotonic()
        conn = browser.connect(url)  # raises TimeoutError after 10 s without an answer
        took = time.monotonic() - t0
        assert conn.set_cookie is None, f"the cookie was replaced during the hang: {conn.set_cookie}"
        msg = conn.hello(secret=SECRET)
        assert msg[0] == WELCOME and conn.challenged, msg
        assert conn.details["authmethod"] == "wampcra"
        conn.close()
        assert browser.cookie == cookie
        print(f"a connection with its cookie, Redis hung: handshake in {took * 1000:.0f} ms")
    finally:
        redis.resume()
