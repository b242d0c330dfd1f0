"""Several hosts on one Redis: two Crossbar.io nodes started by `crossbar-cookiestore`, each
with its own node directory and port (as two hosts would be), whose cookie sections name the
same Redis store with `"store": {"type": "cookiestore", "url": "redis://..."}`. A cookie
authenticated at one node is welcomed at the other, and a logout at one closes the cookie's
connections held at the other. Each test runs twice: the nodes without a cache on Redis (every
lookup a round trip), then with one (``redis_cache_bytes``: each worker answers lookups from its
own cache, kept exact by Redis's invalidation messages and a lease)."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import time

import pytest

from need import need  # noqa: E402

need("crossbar")
need("websockets")

from redis_server import need_redis, running  # noqa: E402

need_redis()

from browser import CHALLENGE, Browser  # noqa: E402
from nodes import free_ports, launcher, login, welcomed_by_cookie, write_node  # noqa: E402
from test_node import router_worker  # noqa: E402

KEY_PREFIX = "cbtest:"
TIMEOUT_MS = 1500
#: How long a logout at one node may take to close the cookie's connections at the other.
CLOSE_WITHIN = 10.0


def redis_store(url: str, cache: bool = False) -> dict:
    store = {"type": "cookiestore", "url": url, "key_prefix": KEY_PREFIX, "timeout_ms": TIMEOUT_MS}
    if cache:
        store["redis_cache_bytes"] = 16 << 20
    return store


def with_store(config, store: dict):
    """`config` with every cookie section's store replaced by `store`."""
    config = copy.deepcopy(config)

    def walk(v):
        if isinstance(v, dict):
            if isinstance(v.get("cookie"), dict) and "store" in v["cookie"]:
                v["cookie"]["store"] = dict(store)
            for x in v.values():
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)

    walk(config)
    return config


def node_config(port: int, url: str, cache: bool = False) -> dict:
    return {"version": 2, "controller": {}, "workers": [with_store(router_worker(port), redis_store(url, cache))]}


@pytest.fixture(scope="module")
def redis(tmp_path_factory):
    with running(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture(scope="module", params=["uncached", "cached"])
def nodes(tmp_path_factory, redis, request):
    """Node A and node B: two node directories, two ports, one Redis; with a cache on Redis in
    each worker for the "cached" run."""
    started = []
    cache = request.param == "cached"
    try:
        for name, port in zip("ab", free_ports(2)):
            config = node_config(port, redis.url(), cache)
            node = write_node(tmp_path_factory.mktemp(f"host-{name}"), config, [port])
            started.append(node)
            node.start()
        yield started
    finally:
        for node in started:
            node.stop()


def challenged(cookie: str, url: str) -> None:
    """A browser holding `cookie` is challenged at `url` and given a new cookie."""
    browser = Browser()
    browser.cookie = cookie
    conn = browser.connect(url)
    try:
        assert conn.set_cookie and browser.cookie != cookie, f"{url}: the logged-out cookie was accepted"
        msg = conn.hello()
        assert msg[0] == CHALLENGE and conn.challenged, (url, msg)
    finally:
        conn.close()


def test_check_accepts_a_redis_url_and_refuses_path_and_url_both(nodes, redis, tmp_path):
    a, _ = nodes
    ok = subprocess.run([launcher(), "check", "--cbdir", str(a.cbdir)], capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "looks good" in ok.stdout
    for name, store, needle in [
        ("both", dict(redis_store(redis.url()), path="cookies"), "store.url"),
        ("not-redis", redis_store("http://127.0.0.1:6379/0"), "store.url"),
    ]:
        bad_dir = tmp_path / name / ".crossbar"
        bad_dir.mkdir(parents=True)
        (bad_dir / "config.json").write_text(json.dumps(node_config(a.ports[0], "redis://unused/0")))
        config = json.loads((bad_dir / "config.json").read_text())
        (bad_dir / "config.json").write_text(json.dumps(with_store(config, store)))
        bad = subprocess.run([launcher(), "check", "--cbdir", str(bad_dir)], capture_output=True, text=True, timeout=120)
        out = bad.stdout + bad.stderr
        assert bad.returncode != 0, out
        assert needle in out and "cookiestore" in out, out


def test_login_at_one_node_is_welcomed_at_the_other(nodes, redis):
    a, b = nodes
    browser = Browser()
    login(browser, a.url(0)).close()
    cookie = browser.cookie
    conn = welcomed_by_cookie(browser, b.url(0))
    conn.close()
    assert browser.cookie == cookie

    # The cookie is in Redis under the configured prefix, and in no node directory.
    assert redis.command("EXISTS", f"{KEY_PREFIX}cookie:{cookie}").startswith(b":1"), "not in Redis"
    import cookiestore

    elsewhere = cookiestore.CookieStore.from_section({"store": redis_store(redis.url())}, str(a.cbdir))
    assert elsewhere.location == redis.url()  # not joined to the node directory
    assert elsewhere.get_auth(cookie)[0] == "alice"
    for node in nodes:
        assert not (node.cbdir / "cookies").exists()
        assert not any(p.name.startswith("redis") for p in node.cbdir.iterdir()), list(node.cbdir.iterdir())


def test_logout_at_one_node_closes_the_connection_at_the_other(nodes):
    a, b = nodes
    browser = Browser()
    login(browser, a.url(0)).close()
    cookie = browser.cookie
    held_at_a = welcomed_by_cookie(browser, a.url(0))
    leaving = welcomed_by_cookie(browser, b.url(0))

    t0 = time.monotonic()
    leaving.logout()
    closed = held_at_a.wait_closed(timeout=CLOSE_WITHIN)
    elapsed = time.monotonic() - t0
    leaving.close()
    assert closed, f"the connection at node A stayed open {CLOSE_WITHIN} s after the logout at B:\n{a.tail(80)}"
    print(f"logout at node B -> the connection at node A closed in {elapsed * 1000:.0f} ms")

    # Gone for both nodes: challenged, and a new cookie is set.
    challenged(cookie, a.url(0))
    challenged(cookie, b.url(0))


def test_a_redis_outage_is_logged_once_by_each_node(nodes, redis):
    """Redis killed for 3 s under both nodes (each worker watches the feed, from two cookie
    sections, and looks at the store's health every 0.5 s): each node logs one warning when
    it starts, one when it ends, and no per-poll line or traceback. Runs last: Redis comes
    back empty."""
    logs = [node.cbdir / f"node-{node.starts}.log" for node in nodes]
    marks = [log.stat().st_size for log in logs]

    def since_mark(i: int) -> str:
        with open(logs[i], "rb") as f:
            f.seek(marks[i])
            return f.read().decode(errors="replace")

    redis.stop()
    time.sleep(3)
    redis.start()
    deadline = time.monotonic() + 30
    while not all("available again" in since_mark(i) for i in range(len(nodes))):
        assert time.monotonic() < deadline, "no node said Redis was back:\n" + since_mark(0)[-3000:]
        time.sleep(0.2)
    time.sleep(0.5)  # a few polls after it is back: nothing more is logged
    for i, node in enumerate(nodes):
        text = since_mark(i)
        down = [line for line in text.splitlines() if "is unavailable since" in line]
        back = [line for line in text.splitlines() if "available again" in line]
        assert len(down) == 1 and len(back) == 1, text[-4000:]
        assert redis.url() in down[0] and "served without their cookie" in down[0], down[0]
        m = re.search(r"after ([\d.]+) s \(unavailable since .*; (\d+) calls refused at once meanwhile\)", back[0])
        assert m and float(m.group(1)) >= 2.5, back[0]
        assert "poll failed" not in text and "Traceback" not in text, text[-4000:]
        print(f"node {'ab'[i]}: {back[0].split('] ', 1)[-1]}")
