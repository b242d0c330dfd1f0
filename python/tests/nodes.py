"""Starting and stopping a real Crossbar.io node with crossbar-cookiestore, and what its
clients check, for the tests and the benchmarks (python/bench puts this folder on sys.path)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

#: alice's WAMP-CRA secret in the nodes' configs.
SECRET = "secret1"

#: The role ``user``'s permission in the nodes' configs: everything on every URI.
ALLOW_ALL = {
    "uri": "",
    "match": "prefix",
    "allow": {"call": True, "register": True, "publish": True, "subscribe": True},
    "disclose": {"caller": False, "publisher": False},
    "cache": True,
}


def launcher() -> str:
    exe = shutil.which("crossbar-cookiestore", path=os.path.dirname(sys.executable)) or shutil.which(
        "crossbar-cookiestore"
    )
    if not exe:
        pytest.fail("crossbar-cookiestore is not installed next to this Python (pip install ./python)")
    return exe


def free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class Node:
    def __init__(self, cbdir: Path, ports: list[int]):
        self.cbdir = cbdir
        self.ports = ports
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def url(self, worker: int, path: str = "ws") -> str:
        return f"ws://127.0.0.1:{self.ports[worker]}/{path}"

    def port_url(self, index: int, path: str = "") -> str:
        return f"ws://127.0.0.1:{self.ports[index]}/{path}"

    def start(self, timeout: float = 90) -> None:
        self.starts += 1
        self.log = open(self.cbdir / f"node-{self.starts}.log", "w")
        self.proc = subprocess.Popen(
            [launcher(), "start", "--cbdir", str(self.cbdir)],
            cwd=str(self.cbdir.parent),
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stop() ends it and its workers
        )
        deadline = time.monotonic() + timeout
        for port in self.ports:
            while True:
                if self.proc.poll() is not None:
                    raise AssertionError(f"node exited with {self.proc.returncode}:\n{self.tail()}")
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise AssertionError(f"node did not listen on {port} in {timeout} s:\n{self.tail()}")
                    time.sleep(0.2)

    def tail(self, n: int = 40) -> str:
        try:
            lines = (self.cbdir / f"node-{self.starts}.log").read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-n:])

    def stop(self) -> None:
        if self.proc is None:
            return
        pgid = self.proc.pid
        if self.proc.poll() is None:
            try:
                os.killpg(pgid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
        # The workers are in the node's process group: none may outlive the test.
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if self.proc.poll() is None:
            self.proc.wait(timeout=10)
        self.proc = None
        self.log.close()


def write_node(root: Path, config: dict, ports: list[int]) -> Node:
    """The node of `config` (its ``config.json``) in ``root/.crossbar`` (made unless it
    exists), listening on `ports`; not started."""
    cbdir = root / ".crossbar"
    cbdir.mkdir(exist_ok=True)
    (cbdir / "config.json").write_text(json.dumps(config, indent=2))
    return Node(cbdir, ports)


@contextlib.contextmanager
def started(node: Node) -> Iterator[Node]:
    """`node` started, and stopped at the end (also when starting it failed)."""
    try:
        node.start()
        yield node
    finally:
        node.stop()


def login(browser, url: str):
    """A WAMP-CRA login as alice (challenged, then welcomed); the open connection."""
    from browser import WELCOME

    conn = browser.connect(url)
    msg = conn.hello(secret=SECRET)
    assert msg[0] == WELCOME and conn.challenged, (url, msg)
    return conn


def welcomed_by_cookie(browser, url: str):
    """A connection whose cookie is known and authenticates alice, unchallenged; open."""
    from browser import WELCOME

    conn = browser.connect(url)
    assert conn.set_cookie is None, f"{url}: the cookie was not known: {conn.set_cookie}"
    msg = conn.hello()
    assert msg[0] == WELCOME and not conn.challenged, (url, msg)
    assert conn.details["authid"] == "alice" and conn.details["authprovider"] == "cookie"
    return conn


def returning_browser(url: str):
    """A browser that logged in at `url` and is welcomed by its cookie there since."""
    from browser import Browser

    browser = Browser()
    login(browser, url).close()
    # The node stores a login on its writer thread and waits for it at most 30 ms before it
    # welcomes the client, so on a loaded machine the next connection can come first and be
    # challenged. Wait (at most 10 s) until the cookie stands for alice.
    deadline = time.monotonic() + 10
    while True:
        try:
            welcomed_by_cookie(browser, url).close()
            return browser
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
