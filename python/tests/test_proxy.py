"""End to end through a proxy worker: a node started by `crossbar-cookiestore` with a router
worker (behind a Unix socket, anonymous-proxy) and a proxy worker whose WebSocket front end
tracks cookies in a cookiestore store."""

from __future__ import annotations

import pytest

from need import need  # noqa: E402

need("crossbar")
need("websockets")

from browser import CHALLENGE, WELCOME, Browser  # noqa: E402
from nodes import ALLOW_ALL, SECRET, free_ports, started, write_node  # noqa: E402


@pytest.fixture(scope="module")
def proxy_node(tmp_path_factory):
    (port,) = free_ports(1)
    backend = {"type": "rawsocket", "endpoint": {"type": "unix", "path": "router.sock"}}
    router = {
        "type": "router",
        "realms": [{"name": "realm1", "roles": [{"name": "user", "permissions": [ALLOW_ALL]}]}],
        "transports": [dict(backend, serializers=["cbor"], auth={"anonymous-proxy": {"type": "static"}})],
    }
    ws = {
        "type": "websocket",
        "serializers": ["json"],
        "cookie": {"name": "cbtid", "max_age": 600, "store": {"type": "cookiestore", "path": "cookies"}},
        "auth": {"wampcra": {"type": "static", "users": {"alice": {"secret": SECRET, "role": "user"}}}, "cookie": {}},
    }
    proxy = {
        "type": "proxy",
        "transports": [
            {
                "type": "web",
                "endpoint": {"type": "tcp", "port": port, "interface": "127.0.0.1"},
                "paths": {"/": {"type": "static", "directory": "."}, "ws": ws},
            }
        ],
        "routes": {"realm1": {"user": "conn1"}},
        "connections": {
            "conn1": {
                "transport": dict(backend, url="ws://localhost", serializer="cbor"),
                "auth": {"anonymous-proxy": {"type": "static"}},
            }
        },
    }
    config = {"version": 2, "controller": {}, "workers": [router, proxy]}
    with started(write_node(tmp_path_factory.mktemp("proxynode"), config, [port])) as n:
        yield n


def test_proxy_worker_tracks_cookies_and_logs_out(proxy_node):
    url = proxy_node.url(0)
    browser = Browser()
    first = browser.connect(url)
    assert first.set_cookie and first.set_cookie.startswith("cbtid=")
    msg = first.hello(secret=SECRET)
    assert msg[0] == WELCOME and first.challenged, msg
    first.close()

    kept = browser.connect(url)
    assert kept.set_cookie is None
    assert kept.hello()[0] == WELCOME and not kept.challenged
    leaving = browser.connect(url)
    assert leaving.hello()[0] == WELCOME and not leaving.challenged
    leaving.logout()
    assert kept.wait_closed(timeout=10), f"the logout did not close the other connection:\n{proxy_node.tail(80)}"

    after = browser.connect(url)
    assert after.set_cookie
    assert after.hello()[0] == CHALLENGE
    after.close()
