"""Two Crossbar.io nodes (node A, node B: own node directories and ports, started by
`crossbar-cookiestore`) on one store on Redis, as a fleet would run it (issue #21), in two
set-ups:

- ``tls``: a redis-server serving TLS only (``--port 0 --tls-port``), its certificate made
  at test time by a CA of the test (``openssl``); its ``default`` user off and an ACL user
  with a password. The nodes' store: ``rediss://cookies@127.0.0.1:P/0`` with ``tls_ca_file``
  and ``password_file`` (0600). The password is rotated while the nodes run (a new one
  in the file, the old one removed from the user), which they take without a restart; no
  password is in a node log or in ``crossbar-cookiestore check``'s output.
- ``sentinel``: a master, a replica and three sentinels; the nodes' store:
  ``redis+sentinel://S1,S2,S3/cookies``. The master is killed (SIGKILL) and, once the
  sentinels promote the replica, the nodes go on through them by themselves.

In both: a login at one node is welcomed by its cookie at the other, and a logout at one
closes the cookie's connection held at the other, after which both challenge the cookie."""

from __future__ import annotations

import contextlib
import secrets
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import pytest

from need import need  # noqa: E402

need("crossbar")
need("websockets")

from redis_server import need_redis, running  # noqa: E402

need_redis()

from redis_fleet import Sentinels, TlsRedis, command, need_tls, wait_until, write_private  # noqa: E402

from browser import Browser  # noqa: E402
from nodes import Node, free_ports, launcher, login, welcomed_by_cookie, write_node  # noqa: E402
from test_node import router_worker  # noqa: E402
from test_redis_nodes import CLOSE_WITHIN, KEY_PREFIX, challenged, redis_store, with_store  # noqa: E402

#: The master's name in the sentinels' ``sentinel monitor``.
MASTER = "cookies"


@dataclass
class Fleet:
    kind: str
    nodes: list[Node]
    #: The store's URL in the nodes' configs.
    url: str
    #: Runs a command on the store's Redis (the master the sentinels name now) and returns
    #: its reply.
    redis: Callable[..., Any]
    #: The Redis password the nodes read from their ``password_file`` (tls only).
    password: Optional[str] = None
    extra: dict = field(default_factory=dict)


@contextlib.contextmanager
def two_nodes(tmp_path_factory, store: dict):
    """Node A and node B, each with `store` in its cookie sections; stopped at the end."""
    started: list[Node] = []
    try:
        for name, port in zip("ab", free_ports(2)):
            config = {"version": 2, "controller": {}, "workers": [with_store(router_worker(port), store)]}
            node = write_node(tmp_path_factory.mktemp(f"host-{name}"), config, [port])
            started.append(node)
            node.start()
        yield started
    finally:
        for node in started:
            node.stop()


@contextlib.contextmanager
def tls_fleet(tmp_path_factory):
    need_tls()  # skips (or fails under CI) this set-up's tests only
    server = TlsRedis(tmp_path_factory.mktemp("redis-tls"))
    secrets_dir = tmp_path_factory.mktemp("secrets")
    password_file = write_private(secrets_dir / "redis.pw", server.password + "\n")
    store = dict(redis_store(server.url()), tls_ca_file=str(server.pki.ca), password_file=str(password_file))
    with server.running(), two_nodes(tmp_path_factory, store) as nodes:
        parts = {"server": server, "password_file": password_file, "retired": []}
        yield Fleet("tls", nodes, server.url(), server.command, password=server.password, extra=parts)


@contextlib.contextmanager
def sentinel_fleet(tmp_path_factory):
    with contextlib.ExitStack() as stack:
        master = stack.enter_context(running(tmp_path_factory.mktemp("redis-master")))
        replica = stack.enter_context(running(tmp_path_factory.mktemp("redis-replica")))
        # What `--replicaof 127.0.0.1 PORT` at start does (redis_server.py starts a plain
        # server; the sentinels find the replica through the master either way).
        assert replica.command("REPLICAOF", "127.0.0.1", str(master.port)).startswith(b"+OK")
        wait_until(
            "the replica syncs with the master",
            lambda: b"master_link_status:up" in replica.command("INFO", "replication"),
        )
        sentinels = stack.enter_context(Sentinels(tmp_path_factory.mktemp("sentinels"), MASTER, master.port).running())
        assert sentinels.master_addr() == ("127.0.0.1", master.port)

        def on_master(*args: str) -> Any:
            return command(sentinels.master_addr()[1], *args)

        nodes = stack.enter_context(two_nodes(tmp_path_factory, redis_store(sentinels.url())))
        parts = {"master": master, "replica": replica, "sentinels": sentinels}
        yield Fleet("sentinel", nodes, sentinels.url(), on_master, extra=parts)


@pytest.fixture(scope="module", params=["tls", "sentinel"])
def fleet(tmp_path_factory, request):
    """One set-up at a time (pytest runs every test of one before it starts the other)."""
    make = {"tls": tls_fleet, "sentinel": sentinel_fleet}[request.param]
    with make(tmp_path_factory) as f:
        yield f


def welcomed_at(cookie: str, url: str, within: float = 10) -> None:
    """A browser holding `cookie` is welcomed by it at `url` (retried for `within` s: the
    node that made the login stores it on its writer thread, waiting at most 30 ms)."""
    deadline = time.monotonic() + within
    while True:
        browser = Browser()
        browser.cookie = cookie
        try:
            welcomed_by_cookie(browser, url).close()
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def login_welcomed_at_the_other(a: Node, b: Node) -> str:
    """A login at `a` whose cookie `b` welcomes; the cookie."""
    browser = Browser()
    login(browser, a.url(0)).close()
    assert browser.cookie, f"{a.url(0)}: no cookie set at the login:\n{a.tail(40)}"
    welcomed_at(browser.cookie, b.url(0))
    return browser.cookie


def logout_closes_the_connection_at_the_other(a: Node, b: Node) -> None:
    """A logout at `b` closes the cookie's connection held at `a`; both then challenge it."""
    cookie = login_welcomed_at_the_other(a, b)
    browser = Browser()
    browser.cookie = cookie
    held_at_a = welcomed_by_cookie(browser, a.url(0))
    leaving = welcomed_by_cookie(browser, b.url(0))
    t0 = time.monotonic()
    leaving.logout()
    closed = held_at_a.wait_closed(timeout=CLOSE_WITHIN)
    elapsed = time.monotonic() - t0
    leaving.close()
    held_at_a.close()
    assert closed, f"the connection at node A stayed open {CLOSE_WITHIN} s after the logout at B:\n{a.tail(80)}"
    print(f"logout at node B -> the connection at node A closed in {elapsed * 1000:.0f} ms")
    challenged(cookie, a.url(0))
    challenged(cookie, b.url(0))


def test_login_at_one_node_is_welcomed_at_the_other(fleet):
    a, b = fleet.nodes
    cookie = login_welcomed_at_the_other(a, b)
    # And back: B's login is welcomed at A.
    login_welcomed_at_the_other(b, a)
    # The cookie is on that Redis, under the configured prefix.
    assert fleet.redis("EXISTS", f"{KEY_PREFIX}cookie:{cookie}") == 1, f"{fleet.kind}: the cookie is not in Redis"


def test_logout_at_one_node_closes_the_connection_at_the_other(fleet):
    a, b = fleet.nodes
    logout_closes_the_connection_at_the_other(a, b)


@pytest.mark.parametrize("fleet", ["tls"], indirect=True)
def test_a_password_rotated_while_the_nodes_run_is_taken_without_a_restart(fleet):
    """The rotation an operator makes: the new password added to the ACL user, the nodes'
    ``password_file`` replaced (renamed over), the old password removed and the
    connections made with it closed. The nodes, not restarted, go on: their new connections
    read the file again."""
    a, b = fleet.nodes
    server = fleet.extra["server"]
    login_welcomed_at_the_other(a, b)
    logs = [node.cbdir / f"node-{node.starts}.log" for node in fleet.nodes]
    marks = [log.stat().st_size for log in logs]

    old, new = server.password, "pw-" + secrets.token_urlsafe(24)
    server.command("ACL", "SETUSER", server.user, f">{new}")
    password_file = Path(fleet.extra["password_file"])
    write_private(password_file.with_suffix(".next"), new + "\n").rename(password_file)
    server.command("ACL", "SETUSER", server.user, f"<{old}")
    server.password = new
    fleet.extra["retired"].append(old)
    t0 = time.monotonic()
    killed = server.command("CLIENT", "KILL", "USER", server.user)
    assert killed >= 2, f"the nodes' connections were not closed: {killed}"

    # Logins at A welcomed at B, at once: every new connection of both nodes uses the file.
    login_welcomed_at_the_other(a, b)
    first_ok = time.monotonic() - t0
    login_welcomed_at_the_other(b, a)
    logout_closes_the_connection_at_the_other(a, b)
    clients = server.command("CLIENT", "LIST")
    assert clients.count(f"user={server.user}") >= 3, clients  # node A, node B, this command
    # The closed connections were replaced, not taken for an outage of Redis.
    for log, mark in zip(logs, marks):
        with open(log, "rb") as f:
            f.seek(mark)
            text = f.read().decode(errors="replace")
        assert "is unavailable since" not in text and "Traceback" not in text, text[-4000:]
    print(f"password rotated: {killed} connections closed; a login at node A welcomed at node B {first_ok:.2f} s later")


@pytest.mark.parametrize("fleet", ["tls"], indirect=True)
def test_the_password_is_in_no_node_log_and_not_in_check_output(fleet):
    """Also once Redis refused it: the password is changed on the server and node A
    restarted, so that it logs the refusal. Runs last in its set-up."""
    a, b = fleet.nodes
    server = fleet.extra["server"]
    # The nodes logged in as the ACL user (the default user is off): the password was read.
    login_welcomed_at_the_other(a, b)
    clients = fleet.redis("CLIENT", "LIST")
    assert clients.count("user=cookies") >= 3, clients  # node A, node B, this command

    fleet.extra["retired"].append(server.password)
    server.command("ACL", "SETUSER", server.user, "resetpass", f">{server.password}-changed")
    server.password += "-changed"
    a.stop()
    a.start()  # opens the store anew, with the password it was given, now refused
    refused = f"Redis refused the credentials of the ACL user `{server.user}`"
    log = a.cbdir / f"node-{a.starts}.log"

    def logged_refusal() -> bool:
        login(Browser(), a.url(0)).close()
        return refused in log.read_text(errors="replace")

    wait_until("node A logs that Redis refused its credentials", logged_refusal, timeout=30)

    for node in fleet.nodes:
        check = subprocess.run(
            [launcher(), "check", "--cbdir", str(node.cbdir)], capture_output=True, text=True, timeout=120
        )
        out = check.stdout + check.stderr
        assert check.returncode == 0 and "looks good" in out, out
        passwords = [fleet.password, server.password, *fleet.extra["retired"]]
        assert not any(p in out for p in passwords), "crossbar-cookiestore check printed a Redis password"
        logs = sorted(node.cbdir.glob("node-*.log"))
        assert logs, list(node.cbdir.iterdir())
        for log in logs:
            text = log.read_text(errors="replace")
            # The log names the store (its URL, without the password it was opened with).
            assert f"cookie store active: url={fleet.url}," in text, text[-3000:]
            assert not any(p in text for p in passwords), f"{log} holds a Redis password"
        assert not any(p in (node.cbdir / "config.json").read_text() for p in passwords)


@pytest.mark.parametrize("fleet", ["sentinel"], indirect=True)
def test_after_the_master_is_killed_the_nodes_go_on_through_the_sentinels(fleet):
    a, b = fleet.nodes
    master, replica, sentinels = fleet.extra["master"], fleet.extra["replica"], fleet.extra["sentinels"]
    login_welcomed_at_the_other(a, b)

    promoted_after: list[float] = []

    def watch_promotion(t0: float) -> None:
        deadline = t0 + 60
        while time.monotonic() < deadline:
            try:
                if sentinels.master_addr()[1] == replica.port:
                    promoted_after.append(time.monotonic() - t0)
                    return
            except (OSError, ConnectionError):
                pass
            time.sleep(0.1)

    t0 = time.monotonic()
    master.stop()  # SIGKILL
    watcher = threading.Thread(target=watch_promotion, args=(t0,), daemon=True)
    watcher.start()

    # Logins at A until one gets a cookie (the store took it) that B welcomes.
    attempts, first_ok, last_problem = 0, None, ""
    while first_ok is None:
        assert time.monotonic() - t0 < 60, (
            f"no login through node A in 60 s after the kill: {last_problem}\n{a.tail(60)}"
        )
        attempts += 1
        browser = Browser()
        try:
            login(browser, a.url(0)).close()
            if browser.cookie:
                welcomed_at(browser.cookie, b.url(0), within=3)
                first_ok = time.monotonic() - t0
            else:
                last_problem = "a login without a cookie (the store unavailable)"
        except (AssertionError, OSError, TimeoutError) as e:
            last_problem = f"{type(e).__name__}: {e}"
        if first_ok is None:
            time.sleep(0.1)
    watcher.join(timeout=70)
    assert promoted_after, "the sentinels did not promote the replica within 60 s of the kill"
    print(
        f"failover: master killed; the sentinels named the replica master after {promoted_after[0]:.2f} s; "
        f"the first login through node A welcomed at node B after {first_ok:.2f} s ({attempts} attempts)"
    )
    assert sentinels.master_addr() == ("127.0.0.1", replica.port)

    # On the new master, both checks again.
    cookie = login_welcomed_at_the_other(a, b)
    assert fleet.redis("EXISTS", f"{KEY_PREFIX}cookie:{cookie}") == 1
    assert replica.command("ROLE").startswith(b"*3\r\n$6\r\nmaster"), replica.command("ROLE")
    logout_closes_the_connection_at_the_other(a, b)
