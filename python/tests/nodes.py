"""Starting and stopping a real Crossbar.io node with crossbar-cookiestore, for the tests."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest


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
