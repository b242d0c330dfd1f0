"""What a store fault does to a real Crossbar.io node on cookiestore (issue #19's table).

For each row, a node is started with ``crossbar-cookiestore`` (one router worker, a web
transport with a ``ws`` path whose cookie section names the store; auth: WAMP-CRA and
cookie), and driven on loopback as an operator would see it:

- one established session (logged in with WAMP-CRA) calls ``wamp.session.count`` and
  publishes with ``acknowledge`` every 50 ms; its *longest gap* is the longest time between
  two answers (healthy: ~50 ms);
- a new client connects every second, alternately a returning browser with its cookie
  (welcomed by the cookie, or challenged and logging in again with WAMP-CRA) and a new one
  without a cookie (gets one, is challenged, logs in with WAMP-CRA); each is timed from the
  TCP connect to its last answer (WELCOME or ABORT, or the failed handshake), and how it was
  answered is counted;
- the fault: Redis hung (SIGSTOP) for 5 s or 15 s (default ``timeout_ms`` and 200 ms),
  Redis killed and restarted 5 s later (no persistence: it comes back empty), ``cookiestore
  purge`` of 300,000 expired cookies (LMDB), ``cookiestore import`` of a 300,000-cookie
  ``cookies.dat`` (LMDB).

Prints a table (one row per fault) and writes JSON (``--json``). Fixtures (the expired
store and the cookies.dat) are built once under ``--fixtures`` (``target/router-faults``)
and reused. Everything is on loopback; each row is bounded in time.

    target/interop-venv/bin/python python/bench/router_faults.py --json /tmp/faults.json

Needs crossbar-cookiestore next to this Python, redis-server (``REDIS_SERVER``) and the
``cookiestore`` CLI (``--cli``, default ``target/release/cookiestore``).
"""

from __future__ import annotations

import argparse
import base64
import datetime
import hashlib
import hmac
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Optional

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE.parent / "tests"))

from browser import ABORT, AUTHENTICATE, CHALLENGE, HELLO, ROLES, WELCOME  # noqa: E402
from nodes import ALLOW_ALL, SECRET, free_ports, write_node  # noqa: E402
from redis_server import RedisServer  # noqa: E402
from websockets.exceptions import ConnectionClosed, InvalidStatus  # noqa: E402
from websockets.sync.client import connect  # noqa: E402

PUBLISH, PUBLISHED, CALL, RESULT, ERROR = 16, 17, 48, 50, 8
PERIOD = 0.05  # the established session's call + publish period
CLIENT_EVERY = 1.0  # a new client every second
CLIENT_TIMEOUT = 30.0  # a new client gives up after this long (reported as "hung")
MAX_AGE = 3600


# -- the node ------------------------------------------------------------------------------


def node_config(port: int, store: dict) -> dict:
    ws = {
        "type": "websocket",
        "serializers": ["json"],
        "cookie": {"name": "cbtid", "length": 24, "max_age": MAX_AGE, "store": store},
        "auth": {"wampcra": {"type": "static", "users": {"alice": {"secret": SECRET, "role": "user"}}}, "cookie": {}},
    }
    router = {
        "type": "router",
        "realms": [{"name": "realm1", "roles": [{"name": "user", "permissions": [ALLOW_ALL]}]}],
        "transports": [
            {
                "type": "web",
                "endpoint": {"type": "tcp", "port": port, "interface": "127.0.0.1"},
                "paths": {"/": {"type": "static", "directory": "."}, "ws": ws},
            }
        ],
    }
    return {"version": 2, "controller": {}, "workers": [router]}


# -- WAMP clients --------------------------------------------------------------------------


class Client:
    """A WAMP-over-JSON WebSocket client with a cookie jar (one cookie)."""

    def __init__(self, url: str, cookie: Optional[str], timeout: float):
        headers = {"Cookie": f"cbtid={cookie}"} if cookie else {}
        self.ws = connect(
            url,
            subprotocols=["wamp.2.json"],
            additional_headers=headers,
            compression=None,
            proxy=None,
            open_timeout=timeout,
            close_timeout=1,
        )
        self.cookie = cookie
        set_cookie = self.ws.response.headers.get("Set-Cookie")
        self.set_cookie = set_cookie
        if set_cookie:
            m = re.match(r"cbtid=([^;]*)", set_cookie)
            self.cookie = m.group(1) if m else None

    def send(self, msg: list) -> None:
        self.ws.send(json.dumps(msg))

    def recv(self, timeout: float) -> list:
        return json.loads(self.ws.recv(timeout=timeout))

    def login(self, timeout: float) -> tuple[str, list]:
        """HELLO offering cookie and WAMP-CRA; answers a CHALLENGE. Returns (how, last message):
        how is "cookie" (welcomed without a challenge), "wampcra" (challenged, then welcomed) or
        "abort"."""
        self.send([HELLO, "realm1", {"roles": ROLES, "authmethods": ["cookie", "wampcra"], "authid": "alice"}])
        msg = self.recv(timeout)
        how = "cookie"
        if msg[0] == CHALLENGE:
            how = "wampcra"
            challenge = msg[2]["challenge"]
            sig = base64.b64encode(hmac.new(SECRET.encode(), challenge.encode(), hashlib.sha256).digest())
            self.send([AUTHENTICATE, sig.decode(), {}])
            msg = self.recv(timeout)
        if msg[0] == WELCOME:
            return how, msg
        if msg[0] == ABORT:
            return "abort", msg
        return "unexpected", msg

    def close(self) -> None:
        try:
            self.ws.close()
        except Exception:
            pass


class Established(threading.Thread):
    """The established session: a call of wamp.session.count and an acknowledged publish every
    50 ms; records when each answer came."""

    def __init__(self, url: str):
        super().__init__(daemon=True)
        self.client = Client(url, None, 10)
        how, msg = self.client.login(10)
        assert how == "wampcra", (how, msg)
        self.cookie = self.client.cookie
        self.answers: list[float] = []
        self.errors: list[str] = []
        self.stop_flag = threading.Event()
        self.request = 0

    def run(self) -> None:
        c = self.client
        next_at = time.monotonic()
        try:
            while not self.stop_flag.is_set():
                self.request += 1
                c.send([CALL, self.request, {}, "wamp.session.count"])
                msg = c.recv(60)
                if msg[0] != RESULT:
                    self.errors.append(f"call: {msg}")
                self.answers.append(time.monotonic())
                self.request += 1
                c.send([PUBLISH, self.request, {"acknowledge": True}, "bench.tick", [self.request]])
                msg = c.recv(60)
                if msg[0] != PUBLISHED:
                    self.errors.append(f"publish: {msg}")
                self.answers.append(time.monotonic())
                next_at += PERIOD
                pause = next_at - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
                else:
                    next_at = time.monotonic()
        except Exception as e:  # noqa: BLE001 - reported in the row
            self.errors.append(f"{type(e).__name__}: {e}")

    def longest_gap(self, start: float, end: float) -> tuple[float, float]:
        """The longest time between two answers (or an answer and the window's edges) in
        [start, end]; and when it began (seconds after `start`)."""
        times = [start] + [t for t in self.answers if start <= t <= end] + [min(end, time.monotonic())]
        best, at = 0.0, 0.0
        for a, b in zip(times, times[1:]):
            if b - a > best:
                best, at = b - a, a - start
        return best, at


class Returning:
    """A returning browser: its cookie jar survives its connections."""

    def __init__(self, cookie: Optional[str]):
        self.cookie = cookie


def one_client(url: str, jar: Optional[Returning], t0: float, out: list, lock: threading.Lock) -> None:
    """Connects (with the jar's cookie, or without one), logs in; records the outcome."""
    start = time.monotonic()
    kind = "with cookie" if jar is not None else "without cookie"
    outcome: dict[str, Any] = {"at": round(start - t0, 3), "kind": kind}
    client = None
    try:
        client = Client(url, jar.cookie if jar else None, CLIENT_TIMEOUT)
        how, msg = client.login(CLIENT_TIMEOUT)
        if how == "abort":
            outcome["answer"] = f"ABORT {msg[2]}: {msg[1].get('message', '')}"[:160]
        else:
            outcome["answer"] = {"cookie": "welcomed by cookie", "wampcra": "challenged, WAMP-CRA"}.get(how, how)
            if jar is not None and client.cookie:
                jar.cookie = client.cookie
        outcome["set_cookie"] = client.set_cookie is not None
    except InvalidStatus as e:
        outcome["answer"] = f"HTTP {e.response.status_code} {e.response.reason_phrase}"
    except TimeoutError:
        outcome["answer"] = f"no answer in {CLIENT_TIMEOUT:.0f} s"
    except ConnectionClosed as e:
        rcvd = e.rcvd
        outcome["answer"] = f"closed {rcvd.code if rcvd else ''} {rcvd.reason if rcvd else ''}".strip()[:160]
    except Exception as e:  # noqa: BLE001 - counted as the answer
        outcome["answer"] = f"{type(e).__name__}: {e}"[:160]
    finally:
        if client is not None:
            client.close()
    outcome["seconds"] = round(time.monotonic() - start, 4)
    with lock:
        out.append(outcome)


# -- fixtures ------------------------------------------------------------------------------


def write_cookies_dat(path: Path, n: int, created: datetime.datetime, max_age: int) -> None:
    """A cookies.dat as Crossbar's file store writes it: a created and a modified line each."""
    stamp = created.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w") as f:
        for i in range(n):
            value = secrets.token_urlsafe(18)
            base = {"cbtid": value, "created": stamp, "max_age": max_age}
            empty = {"authid": None, "authrole": None, "authmethod": None, "authrealm": None, "authextra": None}
            f.write(json.dumps({**base, "status": "created", "modified": None, "deleted": None, **empty}) + "\n")
            auth = {
                "authid": f"user{i % 50000}",
                "authrole": "user",
                "authmethod": "wampcra",
                "authrealm": "realm1",
                "authextra": {},
            }
            f.write(json.dumps({**base, "status": "modified", "modified": stamp, "deleted": None, **auth}) + "\n")
    tmp.rename(path)


def fixtures(directory: Path, cli: str, n: int) -> dict[str, Path]:
    """The cookies.dat to import (live cookies) and a store of `n` expired cookies, built once."""
    directory.mkdir(parents=True, exist_ok=True)
    live_dat = directory / f"cookies-live-{n}.dat"
    if not live_dat.exists():
        print(f"building {live_dat} ...", flush=True)
        write_cookies_dat(live_dat, n, datetime.datetime.now(datetime.timezone.utc), 10 * 365 * 86400)
    expired = directory / f"expired-{n}"
    if not (expired / "data.mdb").exists():
        # Cookies created two days ago that lived a day: imported at an instant when they
        # were live, expired now.
        created = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=2)
        dat = directory / f"cookies-old-{n}.dat"
        write_cookies_dat(dat, n, created, 86400)
        print(f"building {expired} ...", flush=True)
        shutil.rmtree(expired, ignore_errors=True)
        then = (created + datetime.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        subprocess.run([cli, "import", "--now", then, str(expired), str(dat)], check=True, stdout=subprocess.DEVNULL)
        dat.unlink()
    return {"live_dat": live_dat, "expired": expired}


# -- one row ------------------------------------------------------------------------------


ROWS = {
    "healthy-redis": "Redis store, no fault (10 s)",
    "redis-hang-5": "Redis store, Redis hung (SIGSTOP) 5 s",
    "redis-hang-15": "Redis store, Redis hung 15 s",
    "redis-hang-5-200ms": "Redis store, Redis hung 5 s, `timeout_ms: 200`",
    "redis-kill": "Redis store, Redis killed, restarted 5 s later",
    "lmdb-purge": "LMDB store, `cookiestore purge` of {n} expired cookies, 1 login/s",
    "lmdb-import": "LMDB store, `cookiestore import` of {n}",
}


def run_row(name: str, args, fx: dict[str, Path], workdir: Path) -> dict:
    root = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=workdir))
    cbdir = root / ".crossbar"
    cbdir.mkdir()
    (port,) = free_ports(1)
    redis = None
    timeout_ms = 200 if name.endswith("200ms") else 2000
    if name.startswith(("redis", "healthy")):
        redis = RedisServer(root)
        redis.start()
        store = {"type": "cookiestore", "url": redis.url(), "timeout_ms": timeout_ms}
        if args.lazily:
            store["connect_lazily"] = True
    else:
        store = {"type": "cookiestore", "path": "cookies", "maxsize": 2 * 2**30}
        if name == "lmdb-purge":
            shutil.copytree(fx["expired"], cbdir / "cookies")
    node = write_node(root, node_config(port, store), [port])
    row: dict[str, Any] = {"row": name, "fault": ROWS[name].format(n=f"{args.cookies:,}"), "timeout_ms": timeout_ms}
    fault_proc = None
    try:
        node.start()
        url = node.url(0)
        # Warm up: a first login (the worker's first store calls, imports, scripts).
        warm = Client(url, None, 10)
        warm.login(10)
        warm.close()
        est = Established(url)
        jar = Returning(est.cookie)
        clients: list[dict] = []
        lock = threading.Lock()
        stop_clients = threading.Event()
        est.start()
        # A Crossbar WAMP session has a one-off stall of 100-230 ms about 12 s after it
        # joins, with or without a cookie store (measured on a transport without any cookie
        # section): the measurement starts after it.
        time.sleep(args.settle)
        t0 = time.monotonic()

        def spawn_clients():
            i = 0
            threads = []
            while not stop_clients.wait(CLIENT_EVERY if i else 0):
                j = jar if i % 2 == 0 else None
                th = threading.Thread(target=one_client, args=(url, j, t0, clients, lock), daemon=True)
                th.start()
                threads.append(th)
                i += 1
            for th in threads:
                th.join(CLIENT_TIMEOUT + 5)

        spawner = threading.Thread(target=spawn_clients, daemon=True)
        spawner.start()
        time.sleep(3)  # healthy first
        fault_start = time.monotonic()
        if name == "healthy-redis":
            time.sleep(10)
        elif name.startswith("redis-hang"):
            secs = 15 if name == "redis-hang-15" else 5
            redis.hang()
            try:
                time.sleep(secs)
            finally:
                redis.resume()
        elif name == "redis-kill":
            redis.proc.kill()
            redis.proc.wait(10)
            redis.proc = None
            redis.log.close()
            time.sleep(5)
            redis.start()
        else:
            store_dir = cbdir / "cookies"
            if name == "lmdb-purge":
                cmd = [args.cli, "purge", "--maxsize", "2GiB", str(store_dir)]
            else:
                cmd = [args.cli, "import", "--maxsize", "2GiB", str(store_dir), str(fx["live_dat"])]
            fault_proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.fault_timeout)
            row["command"] = " ".join(["cookiestore"] + cmd[1:2] + ["STORE"] + (["cookies.dat"] if "import" in cmd else []))
            row["command_output"] = (fault_proc.stdout + fault_proc.stderr).strip()[-300:]
            row["command_exit"] = fault_proc.returncode
        fault_end = time.monotonic()
        row["fault_seconds"] = round(fault_end - fault_start, 2)
        time.sleep(args.after)  # recovery
        stop_clients.set()
        spawner.join(CLIENT_TIMEOUT + 10)
        est.stop_flag.set()
        est.join(70)
        end = time.monotonic()
        gap, gap_at = est.longest_gap(t0, end)
        fault_gap, _ = est.longest_gap(fault_start, fault_end + args.after)
        row["longest_gap_ms"] = round(gap * 1000, 1)
        answers_in = [t for t in est.answers if t0 <= t <= end]
        gaps = sorted(b - a for a, b in zip(answers_in, answers_in[1:]))
        row["gaps_over_100ms"] = sum(1 for g in gaps if g > 0.1)
        # The same from the fault's start to `--after` seconds after its end: what the fault
        # costs, apart from a stall of the healthy node before it.
        row["fault_gap_ms"] = round(fault_gap * 1000, 1)
        row["healthy_gap_ms"] = round(est.longest_gap(t0, fault_start)[0] * 1000, 1)
        row["gap_p99_ms"] = round(gaps[int(len(gaps) * 0.99)] * 1000, 1) if gaps else None
        row["longest_gap_at_s"] = round(gap_at, 2)
        row["fault_starts_at_s"] = round(fault_start - t0, 2)
        row["established_answers"] = len(est.answers)
        row["established_errors"] = est.errors[:5]
        row["clients"] = sorted(clients, key=lambda c: c["at"])
        slowest = max(clients, key=lambda c: c["seconds"]) if clients else None
        row["slowest_client_s"] = slowest["seconds"] if slowest else None
        row["slowest_client"] = slowest
        answers: dict[str, int] = {}
        for c in clients:
            answers[c["answer"]] = answers.get(c["answer"], 0) + 1
        row["answers"] = answers
        return row
    finally:
        node.stop()
        if redis is not None:
            redis.resume()
            redis.stop()
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
        else:
            row["node_dir"] = str(root)


def table(rows: list[dict]) -> str:
    lines = [
        "| fault | longest gap, established session (gaps > 100 ms) | of which: before the fault / from it to its end + after "
        "| slowest new connection | new connections answered |",
        "|---|---:|---:|---:|---|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['fault']} | failed: {r['error']} | | | |")
            continue
        answers = "; ".join(f"{n}× {a}" for a, n in sorted(r["answers"].items(), key=lambda x: -x[1]))
        lines.append(
            f"| {r['fault']} | {r['longest_gap_ms']:.0f} ms ({r['gaps_over_100ms']}) "
            + (
                f"| {r['healthy_gap_ms']:.0f} ms / {r['fault_gap_ms']:.0f} ms "
                if "fault_gap_ms" in r
                else "| "
            )
            + f"| {r['slowest_client_s'] * 1000:.0f} ms | {answers} |"
        )
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated, of: {', '.join(ROWS)}")
    p.add_argument("--cookies", type=int, default=300_000)
    p.add_argument("--cli", default=str(REPO / "target" / "release" / "cookiestore"))
    p.add_argument("--fixtures", default=str(REPO / "target" / "router-faults"))
    p.add_argument("--after", type=float, default=5.0, help="seconds measured after the fault ends")
    p.add_argument("--settle", type=float, default=20.0, help="seconds between the established session's start and the measurement")
    p.add_argument("--fault-timeout", type=float, default=600.0)
    p.add_argument("--lazily", action="store_true", help="Redis stores with connect_lazily")
    p.add_argument("--keep", action="store_true", help="keep the node directories (logs)")
    p.add_argument("--json", help="write the rows here")
    p.add_argument("--table-from", help="print the table of a JSON written before, and exit")
    args = p.parse_args()
    if args.table_from:
        print(table(json.loads(Path(args.table_from).read_text())["rows"]))
        return 0
    names = [n.strip() for n in args.rows.split(",") if n.strip()]
    for n in names:
        if n not in ROWS:
            p.error(f"unknown row {n!r}")
    fx = {}
    if any(n.startswith("lmdb") for n in names):
        if not os.access(args.cli, os.X_OK):
            p.error(f"{args.cli}: no cookiestore CLI (cargo build --release -p cookiestore-cli, or --cli)")
        fx = fixtures(Path(args.fixtures), args.cli, args.cookies)
    workdir = Path(tempfile.mkdtemp(prefix="router-faults-"))
    rows = []
    started = time.time()
    try:
        for n in names:
            print(f"row {n} ...", flush=True)
            try:
                row = run_row(n, args, fx, workdir)
            except Exception as e:  # noqa: BLE001 - one row's failure is reported, the rest run
                row = {"row": n, "fault": ROWS[n].format(n=f"{args.cookies:,}"), "error": f"{type(e).__name__}: {e}"}
            rows.append(row)
            brief = {k: row.get(k) for k in ("longest_gap_ms", "slowest_client_s", "answers", "error")}
            print(f"  {brief}", flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    result = {
        "started": datetime.datetime.fromtimestamp(started, datetime.timezone.utc).isoformat(timespec="seconds"),
        "seconds": round(time.time() - started, 1),
        "load_at_end": os.getloadavg(),
        "rows": rows,
    }
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
