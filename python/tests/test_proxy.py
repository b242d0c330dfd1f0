"""End to end through a proxy worker: a node started by `crossbar-cookiestore` with a router
worker (behind a Unix socket, anonymous-proxy) and a proxy worker whose WebSocket front end
tracks cookies in a cookiestore store."""

from __future__ import annotations

import json

import pytest

from need import need  # noqa: E402

need("crossbar")
need("websockets")

from browser import CHALLENGE, WELCOME, Browser  # noqa: E402
from nodes import Node, free_ports  # noqa: E402

SECRET = "secret1"
PERMISSION = {
    "uri": "",
    "match": "prefix",
    "allow": {"call": True, "register": True, "publish": True, "subscribe": True},
    "disclose": {"caller": False, "publisher": False},
    "cache": True,
}


@pytest.fixture(scope="module")
def proxy_node(tmp_path_factory):
    root = tmp_path_factory.mktemp("proxynode")
    cbdir = root / ".crossbar"
    cbdir.mkdir()
    (port,) = free_ports(1)
    backend = {"type": "rawsocket", "endpoint": {"type": "unix", "path": "router.sock"}}
    router = {
        "type": "router",
        "realms": [{"name": "realm1", "roles": [{"name": "user", "permissions": [PERMISSION]}]}],
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
    (cbdir / "config.json").write_text(json.dumps(config, indent=2))
    n = Node(cbdir, [port])
    try:
        n.start()
        yield n
    finally:
        n.stop()


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
