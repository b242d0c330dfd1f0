"""Redis set-ups a fleet of nodes shares, for tests/test_redis_fleet_nodes.py: a redis-server
serving TLS only, with an ACL user and a password (certificates made at test time with the
``openssl`` command), and a master, a replica and three sentinels (``redis-server
--sentinel``). Each process runs on a free loopback port with its own directory and is killed
when its context ends (also when the test fails). A small RESP client (plain or TLS) asks
them what the tests check."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import pytest

from nodes import free_ports
from redis_server import need_redis, redis_server_bin


class RedisReplyError(Exception):
    """An error reply (``-ERR ...``) of a Redis server."""


def _read_reply(f) -> Any:
    line = f.readline()
    if not line.endswith(b"\r\n"):
        raise ConnectionError(f"connection closed in a reply: {line!r}")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        return RedisReplyError(rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)
        return data[:-2].decode(errors="replace")
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [_read_reply(f) for _ in range(n)]
    raise ConnectionError(f"unexpected reply line {line!r}")


def command(
    port: int,
    *args: str,
    tls: Optional[ssl.SSLContext] = None,
    auth: Optional[tuple[str, str]] = None,
    timeout: float = 5,
) -> Any:
    """Runs `args` on the server at 127.0.0.1:`port` (over TLS with `tls`, after ``AUTH user
    password`` with `auth`) and returns its parsed reply; an error reply is raised."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw:
        sock = tls.wrap_socket(raw, server_hostname="127.0.0.1") if tls else raw
        with sock, sock.makefile("rb") as f:
            commands = ([("AUTH", *auth)] if auth else []) + [args]
            for cmd in commands:
                parts = [f"*{len(cmd)}\r\n".encode()]
                for a in cmd:
                    b = str(a).encode()
                    parts.append(b"$%d\r\n%s\r\n" % (len(b), b))
                sock.sendall(b"".join(parts))
                reply = _read_reply(f)
                if isinstance(reply, RedisReplyError):
                    raise reply
            return reply


def wait_until(what: str, check: Callable[[], bool], timeout: float = 60) -> None:
    """Polls `check` every 100 ms until it holds; fails with `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except (OSError, RedisReplyError, ConnectionError):
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.1)


@contextlib.contextmanager
def spawned(args: list[str], log: Path) -> Iterator[subprocess.Popen]:
    """`args` started with its output in `log`; killed (SIGKILL) and reaped at the end."""
    with open(log, "w") as out:
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)


def _skip_or_fail(msg: str) -> None:
    """The project's rule: skip with the reason printed, or fail under CI."""
    if os.environ.get("CI"):
        pytest.fail(msg, pytrace=False)
    print(f"SKIP: {msg}", file=sys.stderr)
    pytest.skip(msg, allow_module_level=True)


def openssl_bin() -> str:
    """The openssl command (``OPENSSL`` overrides)."""
    return os.environ.get("OPENSSL") or shutil.which("openssl") or "/usr/bin/openssl"


def need_tls() -> None:
    """Skips (or fails under CI) unless redis-server runs, was built with TLS, and the
    ``openssl`` command is there to make the certificates."""
    need_redis()
    try:
        with open(redis_server_bin(), "rb") as f:
            tls = b"SSL_CTX_new" in f.read()
    except OSError as e:
        tls = False
        _skip_or_fail(f"needs redis-server with TLS ({redis_server_bin()}: {e})")
    if not tls:
        _skip_or_fail(f"needs redis-server built with TLS (BUILD_TLS=yes); {redis_server_bin()} has none")
    try:
        ok = subprocess.run([openssl_bin(), "version"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        ok = False
    if not ok:
        _skip_or_fail(f"needs the openssl command ({openssl_bin()}) to make test certificates; apt-get install openssl")


def chmod_600(path: Path) -> Path:
    os.chmod(path, 0o600)
    return path


def write_private(path: Path, text: str) -> Path:
    """`text` in a new file `path` made readable by its owner only (0600) from the start."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return chmod_600(path)  # whatever the umask took away, exactly 0600


class Pki:
    """A CA and a server certificate for ``127.0.0.1`` and ``localhost`` (subjectAltName)
    signed by it, made with ``openssl`` in `directory` (EC P-256 keys, valid from an hour ago
    for two days, so on any date the test runs); keys are 0600."""

    def __init__(self, directory: Path):
        self.dir = directory
        self.ca = directory / "ca.pem"
        self.ca_key = directory / "ca.key"
        self.server_cert = directory / "server.pem"
        self.server_key = directory / "server.key"
        ext = directory / "server.ext"
        ext.write_text(
            "basicConstraints = critical, CA:FALSE\n"
            "keyUsage = critical, digitalSignature, keyEncipherment\n"
            "extendedKeyUsage = serverAuth\n"
            "subjectAltName = IP:127.0.0.1, DNS:localhost\n"
            "subjectKeyIdentifier = hash\n"
            "authorityKeyIdentifier = keyid\n"
        )
        csr = directory / "server.csr"
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        self._openssl(
            "req", "-x509", *ec, "-keyout", self.ca_key, "-out", self.ca, "-days", "2",
            "-subj", "/CN=cookiestore fleet test CA",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        )  # fmt: skip
        self._openssl("req", "-new", *ec, "-keyout", self.server_key, "-out", csr, "-subj", "/CN=localhost")
        self._openssl(
            "x509", "-req", "-in", csr, "-CA", self.ca, "-CAkey", self.ca_key,
            "-set_serial", str(secrets.randbits(63)), "-days", "2", "-extfile", ext, "-out", self.server_cert,
        )  # fmt: skip
        for key in (self.ca_key, self.server_key):
            chmod_600(key)

    def _openssl(self, *args) -> None:
        run = subprocess.run([openssl_bin(), *map(str, args)], capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, f"openssl {args[0]} failed: {run.stdout}{run.stderr}"

    def context(self) -> ssl.SSLContext:
        """A client context trusting this CA only, checking the server's name."""
        return ssl.create_default_context(cafile=str(self.ca))


class TlsRedis:
    """A redis-server that serves TLS only (``--port 0``, ``--tls-port``), without client
    certificates (``--tls-auth-clients no``); its ``default`` user is off and the ACL user
    `user` holds a random password: a client must log in as `user`."""

    def __init__(self, directory: Path, user: str = "cookies"):
        self.dir = directory
        self.user = user
        self.password = "pw-" + secrets.token_urlsafe(24)
        self.pki = Pki(directory)
        self.tls_port = free_ports(1)[0]
        self.proc: Optional[subprocess.Popen] = None

    def url(self, db: int = 0) -> str:
        """The URL the nodes name (the password is not in it: see ``password_file``)."""
        return f"rediss://{self.user}@127.0.0.1:{self.tls_port}/{db}"

    def args(self) -> list[str]:
        return [
            redis_server_bin(),
            "--port", "0",
            "--tls-port", str(self.tls_port),
            "--bind", "127.0.0.1",
            "--tls-cert-file", str(self.pki.server_cert),
            "--tls-key-file", str(self.pki.server_key),
            "--tls-ca-cert-file", str(self.pki.ca),
            "--tls-auth-clients", "no",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.dir),
            "--daemonize", "no",
            "--user", "default", "off",
            "--user", self.user, "on", f">{self.password}", "~*", "&*", "+@all",
        ]  # fmt: skip

    def command(self, *args: str) -> Any:
        """`args` over TLS, logged in as the ACL user."""
        return command(self.tls_port, *args, tls=self.pki.context(), auth=(self.user, self.password))

    @contextlib.contextmanager
    def running(self) -> Iterator["TlsRedis"]:
        with spawned(self.args(), self.dir / "redis.log") as self.proc:

            def up() -> bool:
                assert self.proc is not None and self.proc.poll() is None, (
                    f"redis-server exited: {(self.dir / 'redis.log').read_text(errors='replace')[-2000:]}"
                )
                return self.command("PING") == "PONG"

            wait_until(f"redis-server with TLS on port {self.tls_port} answers", up, timeout=20)
            yield self


class Sentinels:
    """Three sentinels (quorum 2) watching the master `name` at 127.0.0.1:`master_port`,
    each with its own directory and sentinel.conf; ready once each knows `replicas` replicas
    and its two peers. Failure is noticed after 1 s (``down-after-milliseconds``)."""

    def __init__(self, root: Path, name: str, master_port: int, replicas: int = 1):
        self.root = root
        self.name = name
        self.master_port = master_port
        self.replicas = replicas
        self.ports = free_ports(3)

    def url(self) -> str:
        return "redis+sentinel://" + ",".join(f"127.0.0.1:{p}" for p in self.ports) + f"/{self.name}"

    def master_addr(self, index: int = 0) -> tuple[str, int]:
        """The master's address as sentinel `index` names it."""
        host, port = command(self.ports[index], "SENTINEL", "get-master-addr-by-name", self.name)
        return host, int(port)

    def _ready(self, port: int) -> bool:
        replicas = command(port, "SENTINEL", "replicas", self.name)
        peers = command(port, "SENTINEL", "sentinels", self.name)
        return len(replicas) == self.replicas and len(peers) == 2

    @contextlib.contextmanager
    def running(self) -> Iterator["Sentinels"]:
        with contextlib.ExitStack() as stack:
            for i, port in enumerate(self.ports):
                d = self.root / f"sentinel-{i}"
                d.mkdir()
                conf = d / "sentinel.conf"
                conf.write_text(
                    f"port {port}\nbind 127.0.0.1\ndaemonize no\ndir {d}\n"
                    f"sentinel monitor {self.name} 127.0.0.1 {self.master_port} 2\n"
                    f"sentinel down-after-milliseconds {self.name} 1000\n"
                    f"sentinel failover-timeout {self.name} 3000\n"
                    f"sentinel parallel-syncs {self.name} 1\n"
                )
                stack.enter_context(spawned([redis_server_bin(), str(conf), "--sentinel"], d / "sentinel.log"))
            for port in self.ports:
                wait_until(f"the sentinel on {port} knows the replica and its two peers", lambda: self._ready(port))
            yield self
