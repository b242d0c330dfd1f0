"""A private redis-server for a test module, as tests/common/redis_server.rs does for the Rust
tests: a free loopback port, a temporary directory, no RDB snapshots and no AOF, killed at
teardown (also when the test fails)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

from nodes import free_ports


def redis_server_bin() -> str:
    """The redis-server binary (``REDIS_SERVER`` overrides)."""
    return os.environ.get("REDIS_SERVER", "/usr/bin/redis-server")


def need_redis() -> None:
    """Skips the module (with the reason printed) when redis-server cannot run here, or fails
    when ``CI`` is set to anything (CI never passes by skipping)."""
    try:
        ok = subprocess.run([redis_server_bin(), "--version"], capture_output=True, timeout=20).returncode == 0
        problem = "" if ok else f"{redis_server_bin()} --version failed"
    except (OSError, subprocess.TimeoutExpired) as e:
        problem = f"{redis_server_bin()}: {e}"
    if not problem:
        return
    msg = f"needs redis-server ({problem}); apt-get install redis-server, or set REDIS_SERVER"
    if os.environ.get("CI"):
        pytest.fail(msg, pytrace=False)
    print(f"SKIP: {msg}", file=sys.stderr)
    pytest.skip(msg, allow_module_level=True)


class RedisServer:
    def __init__(self, directory: Path):
        self.dir = directory
        self.port = free_ports(1)[0]
        self.proc: subprocess.Popen | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self, timeout: float = 20) -> None:
        self.log = open(self.dir / "redis.log", "w")
        self.proc = subprocess.Popen(
            [
                redis_server_bin(),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.dir),
                "--daemonize",
                "no",
                "--protected-mode",
                "yes",
            ],
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while not self.answers_ping():
            if self.proc.poll() is not None:
                raise AssertionError(f"redis-server exited with {self.proc.returncode}: {self.tail()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"redis-server on port {self.port} did not answer in {timeout} s")
            time.sleep(0.05)

    def command(self, *args: str) -> bytes:
        """One command over RESP; the raw reply."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            parts = [f"*{len(args)}\r\n".encode()]
            for a in args:
                b = a.encode()
                parts.append(b"$%d\r\n%s\r\n" % (len(b), b))
            s.sendall(b"".join(parts))
            return s.recv(65536)

    def answers_ping(self) -> bool:
        try:
            return self.command("PING").startswith(b"+PONG")
        except OSError:
            return False

    def tail(self) -> str:
        try:
            return (self.dir / "redis.log").read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    def hang(self) -> None:
        """Stops the server (SIGSTOP): it keeps its connections and answers nothing."""
        assert self.proc is not None, "redis-server is not running"
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        """Lets a hung server go on (SIGCONT); nothing when it is not running."""
        if self.proc is not None:
            try:
                os.kill(self.proc.pid, signal.SIGCONT)
            except ProcessLookupError:
                pass

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.proc = None
            self.log.close()


@contextlib.contextmanager
def running(directory: Path) -> Iterator[RedisServer]:
    """A redis-server in `directory`, started; resumed if hung and stopped at the end."""
    server = RedisServer(directory)
    try:
        server.start()
        yield server
    finally:
        server.resume()
        server.stop()


def section(url: str, prefix: str) -> dict:
    """A cookie section (``cbtid``, 600 s) with its store on Redis at `url` under `prefix`."""
    return {"name": "cbtid", "max_age": 600, "store": {"type": "cookiestore", "url": url, "key_prefix": prefix}}
