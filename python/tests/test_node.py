"""End to end: a real Crossbar.io node started by `crossbar-cookiestore`, two router workers on
two loopback ports sharing one cookiestore store, and a browser speaking WAMP over JSON."""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from need import need  # noqa: E402

need("crossbar")
need("websockets")

from browser import ABORT, CHALLENGE, WELCOME, Browser  # noqa: E402
from nodes import ALLOW_ALL, SECRET, free_ports, launcher, started, write_node  # noqa: E402

MAX_AGE = 600
SHORT_MAX_AGE = 2


def ws_config(max_age: int = MAX_AGE) -> dict:
    return {
        "type": "websocket",
        "cookie": {
            "name": "cbtid",
            "length": 24,
            "max_age": max_age,
            "store": {"type": "cookiestore", "path": "cookies", "maxsize": 10485760, "sync": True},
        },
        "auth": {"wampcra": {"type": "static", "users": {"alice": {"secret": SECRET, "role": "user"}}}, "cookie": {}},
    }


def router_worker(port: int, extra_transports=()) -> dict:
    return {
        "type": "router",
        "realms": [
            {
                "name": "realm1",
                "roles": [
                    {
                        "name": "user",
                        "permissions": [ALLOW_ALL],
                    }
                ],
            }
        ],
        "transports": [
            {
                "type": "web",
                "endpoint": {"type": "tcp", "port": port, "interface": "127.0.0.1"},
                "paths": {
                    "/": {"type": "static", "directory": "."},
                    "ws": ws_config(MAX_AGE),
                    # The same store, cookies made here live SHORT_MAX_AGE seconds.
                    "short": ws_config(SHORT_MAX_AGE),
                },
            },
            *extra_transports,
        ],
    }


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    ports = free_ports(4)
    # Worker 1 also has the other transport kinds that take a cookie store: a standalone
    # WebSocket transport and a universal one.
    standalone = dict(ws_config(), endpoint={"type": "tcp", "port": ports[2], "interface": "127.0.0.1"})
    universal = {
        "type": "universal",
        "endpoint": {"type": "tcp", "port": ports[3], "interface": "127.0.0.1"},
        "websocket": {"ws": ws_config()},
    }
    config = {
        "version": 2,
        "controller": {},
        "workers": [router_worker(ports[0]), router_worker(ports[1], [standalone, universal])],
    }
    with started(write_node(tmp_path_factory.mktemp("node"), config, ports)) as n:
        yield n


def login(browser: Browser, url: str):
    conn = browser.connect(url)
    msg = conn.hello(secret=SECRET)
    assert msg[0] == WELCOME, msg
    return conn


def test_check_accepts_the_config_and_refuses_a_bad_store(node, tmp_path):
    ok = subprocess.run([launcher(), "check", "--cbdir", str(node.cbdir)], capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "looks good" in ok.stdout
    bad_dir = tmp_path / ".crossbar"
    bad_dir.mkdir()
    config = json.loads((node.cbdir / "config.json").read_text())
    config["workers"][0]["transports"][0]["paths"]["ws"]["cookie"]["store"]["maxsize"] = 1000
    (bad_dir / "config.json").write_text(json.dumps(config))
    bad = subprocess.run([launcher(), "check", "--cbdir", str(bad_dir)], capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0
    assert "maxsize" in bad.stdout + bad.stderr and "cookiestore" in bad.stdout + bad.stderr


def test_login_then_cookie_on_the_other_worker_and_after_restart(node):
    browser = Browser()
    first = browser.connect(node.url(0))
    assert first.set_cookie and first.set_cookie.startswith("cbtid=")
    assert first.set_cookie.endswith(f";max-age={MAX_AGE}")
    msg = first.hello(secret=SECRET)
    assert msg[0] == WELCOME and first.challenged
    assert first.details["authid"] == "alice" and first.details["authmethod"] == "wampcra"
    cookie = browser.cookie
    first.close()

    # The other worker: welcomed at once by the cookie, no new cookie.
    second = browser.connect(node.url(1))
    assert second.set_cookie is None
    msg = second.hello()
    assert msg[0] == WELCOME, msg
    assert not second.challenged
    assert second.details["authid"] == "alice" and second.details["authprovider"] == "cookie"
    second.close()

    # A node restart: still known.
    node.stop()
    node.start()
    third = browser.connect(node.url(0))
    assert third.set_cookie is None and browser.cookie == cookie
    msg = third.hello()
    assert msg[0] == WELCOME and not third.challenged, msg
    third.close()


def test_logout_closes_the_cookies_connections_on_both_workers(node):
    browser = Browser()
    login(browser, node.url(0)).close()
    same_worker = browser.connect(node.url(0))
    assert same_worker.hello()[0] == WELCOME and not same_worker.challenged
    other_worker = browser.connect(node.url(1))
    assert other_worker.hello()[0] == WELCOME and not other_worker.challenged
    leaving = browser.connect(node.url(0))
    assert leaving.hello()[0] == WELCOME

    t0 = time.monotonic()
    leaving.logout()
    assert same_worker.wait_closed(timeout=10), f"the other connection on its worker stayed open:\n{node.tail(80)}"
    assert other_worker.wait_closed(timeout=10), f"the connection on the other worker stayed open:\n{node.tail(80)}"
    elapsed = time.monotonic() - t0
    print(f"logout -> both other connections closed in {elapsed * 1000:.0f} ms")
    leaving.close()

    # The cookie is gone: challenged, and a new cookie is set.
    old = browser.cookie
    after = browser.connect(node.url(1))
    assert after.set_cookie and browser.cookie != old
    assert after.hello()[0] == CHALLENGE
    after.close()


def test_expired_cookie_is_challenged_and_replaced(node):
    browser = Browser()
    conn = browser.connect(node.url(0, "short"))
    assert conn.set_cookie.endswith(f";max-age={SHORT_MAX_AGE}")
    assert conn.hello(secret=SECRET)[0] == WELCOME
    conn.close()
    cookie = browser.cookie
    # Still valid at once, on the other worker's long-lived path too (one store).
    soon = browser.connect(node.url(1))
    assert soon.set_cookie is None and soon.hello()[0] == WELCOME and not soon.challenged
    soon.close()
    time.sleep(SHORT_MAX_AGE + 0.5)
    late = browser.connect(node.url(1))
    assert late.set_cookie and browser.cookie != cookie, "an expired cookie was accepted"
    msg = late.hello()
    assert msg[0] in (CHALLENGE, ABORT) and late.challenged
    late.close()


def test_standalone_and_universal_websocket_transports_use_the_store(node):
    browser = Browser()
    login(browser, node.url(0)).close()
    for url in (node.port_url(2), node.port_url(3, "ws")):
        conn = browser.connect(url)
        assert conn.set_cookie is None, url  # the cookie is known there
        msg = conn.hello()
        assert msg[0] == WELCOME and not conn.challenged, (url, msg)
        conn.close()
    fresh = Browser().connect(node.port_url(2))
    assert fresh.set_cookie and fresh.set_cookie.endswith(f";max-age={MAX_AGE}")
    fresh.close()


def test_logout_by_authid_from_another_process_closes_every_connection(node):
    """Logging an authid out from outside the node (what `cookiestore logout --authid` does:
    another process opening the store) closes that user's connections on every worker."""
    import cookiestore

    browsers = [Browser(), Browser()]  # alice on two devices
    conns = []
    for i, b in enumerate(browsers):
        login(b, node.url(i)).close()
        for worker in (0, 1):
            c = b.connect(node.url(worker))
            assert c.hello()[0] == WELCOME and not c.challenged
            conns.append(c)
    store = cookiestore.CookieStore(str(node.cbdir / "cookies"), maxsize=10485760)
    assert store.logout_authid("alice") >= 2
    t0 = time.monotonic()
    for i, c in enumerate(conns):
        assert c.wait_closed(timeout=10), f"connection {i} of the logged-out authid stayed open:\n{node.tail(80)}"
    print(f"logout_authid -> {len(conns)} connections on 2 workers closed in {(time.monotonic() - t0) * 1000:.0f} ms")
    for b in browsers:
        again = b.connect(node.url(0))
        assert again.set_cookie and again.hello()[0] == CHALLENGE
        again.close()
