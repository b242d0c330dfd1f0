"""docs/crossbar.md, "Running Crossbar.io on cookiestore", followed as a new user would: the
Configuration table's keys (docs/configuration.md) pass `crossbar-cookiestore check`, its
Configure blocks pasted into a node made by `crossbar-cookiestore init` log alice in (WAMP-CRA,
then her cookie), and its Install lines work as written. Everything is read from the docs, not
copied."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from need import need  # noqa: E402

need("crossbar")
need("websockets")

import cookiestore  # noqa: E402
from browser import ABORT, WELCOME, Browser  # noqa: E402
from nodes import Node, free_ports, launcher  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
CROSSBAR = "docs/crossbar.md"
CONFIGURATION = "docs/configuration.md"


def section(doc: str, heading: str) -> str:
    """The text of `doc` (a path in the repository) under `heading` (a whole heading line), up
    to the next heading of the same or a higher level."""
    level = heading.split(" ")[0]
    lines = (REPO / doc).read_text().splitlines()
    start = lines.index(heading) + 1
    end = next(
        (i for i in range(start, len(lines)) if re.match(r"#{1,%d} " % len(level), lines[i])),
        len(lines),
    )
    return "\n".join(lines[start:end])


def blocks(text: str, lang: str) -> list[str]:
    return re.findall(r"^```%s\n(.*?)^```$" % re.escape(lang), text, re.S | re.M)


def table_keys() -> dict[str, list[str]]:
    """The Configuration table: each row's keys (first column) -> the row's cells."""
    rows = {}
    # The table is in the file's opening section, before its first `##` heading.
    opening = section(CONFIGURATION, "# Configuration").split("\n## ")[0]
    for line in opening.splitlines():
        if not line.startswith("| `"):
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        for key in re.findall(r"`([\w.]+)`", cells[0]):
            rows[key] = cells
    return rows


#: A valid value of each key of the table (a new row needs one here).
SAMPLES = {
    "name": "cbtid",
    "length": 24,
    "max_age": 3600,
    "secure": True,
    "http_strict": True,
    "same_site": "Lax",
    "store.type": "cookiestore",
    "store.path": "cookies",
    "store.url": "redis://127.0.0.1:6379/0",
    "store.key_prefix": "cb1:",
    "store.timeout_ms": 1500,
    "store.maxsize": 104857600,
    "store.initial_mapsize": 1048576,
    "store.readonly": True,
    "store.sync": True,
    "store.durability": "full",
    "store.purge_on_startup": True,
    "store.file_mode": 0o640,
    "store.revocation_retention_secs": 60,
    "store.revocation_stream_max": 1000,
    "store.min_replicas_acked": 1,
    "store.replica_ack_timeout_ms": 300,
    "store.cache_bytes": 0,
    "store.redis_cache_bytes": 1048576,
    "store.allow_eviction": True,
    "store.connect_lazily": True,
    "store.tls_ca_file": "/etc/cookiestore/redis-ca.pem",
    "store.tls_cert_file": "/etc/cookiestore/client.pem",
    "store.tls_key_file": "/etc/cookiestore/client.key",
    "store.password_file": "/etc/cookiestore/redis.pw",
    "store.password_env": "COOKIESTORE_REDIS_PASSWORD",
    "store.sentinel_password_file": "/etc/cookiestore/sentinel.pw",
    "store.sentinel_password_env": "COOKIESTORE_SENTINEL_PASSWORD",
    "store.sentinel_user": "cookiestore",
}


@pytest.fixture(scope="module")
def init_app(tmp_path_factory):
    """An application directory made by `crossbar-cookiestore init`."""
    root = tmp_path_factory.mktemp("init")
    done = subprocess.run(
        [launcher(), "init", "--appdir", str(root / "app")], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return root / "app"


def node_dir(init_app: Path, dest: Path, edit) -> Path:
    """A copy of the init'ed application directory whose config `edit` changed; returns its
    node directory."""
    app = dest / "app"
    shutil.copytree(init_app, app)
    config_file = app / ".crossbar" / "config.json"
    config = json.loads(config_file.read_text())
    edit(config)
    config_file.write_text(json.dumps(config, indent=2))
    return app / ".crossbar"


def web_transport(config: dict) -> dict:
    (router,) = [w for w in config["workers"] if w["type"] == "router"]
    (web,) = [t for t in router["transports"] if t["type"] == "web"]
    return web


def check(cbdir: Path) -> subprocess.CompletedProcess:
    return subprocess.run([launcher(), "check", "--cbdir", str(cbdir)], capture_output=True, text=True, timeout=300)


def test_every_key_of_the_configuration_table_passes_check(init_app, tmp_path):
    rows = table_keys()
    store_rows = {k.removeprefix("store."): v for k, v in rows.items() if k.startswith("store.")}
    # The table documents exactly the keys the library's parser takes.
    assert set(store_rows) == set(cookiestore.store_keys()), "docs/configuration.md table vs cookiestore.store_keys()"
    missing = set(rows) - set(SAMPLES) - {"attributes"}
    assert not missing, f"add a sample value of {missing} to SAMPLES"

    # One cookie section at a directory with every key but `url`, one on Redis with `url`.
    top = {k: SAMPLES[k] for k in rows if "." not in k and k != "attributes"}
    at_path = {k: SAMPLES[f"store.{k}"] for k in store_rows if k != "url"}
    on_redis = {k: SAMPLES[f"store.{k}"] for k in ("type", "url", "key_prefix", "timeout_ms")}

    def edit(store_a, store_b, extra=None):
        def apply(config):
            paths = web_transport(config)["paths"]
            paths["ws"]["cookie"] = dict(top, store=store_a, **(extra or {}))
            paths["ws2"] = dict(paths["ws"], cookie=dict(top, store=store_b))

        return apply

    cbdir = node_dir(init_app, tmp_path / "all", edit(at_path, on_redis))
    done = check(cbdir)
    assert done.returncode == 0 and "looks good" in done.stdout, done.stdout + done.stderr

    # A misspelt key, a value of the wrong type, and ours `attributes` (the library's, not a
    # node config's: Crossbar writes Set-Cookie itself) are refused, named.
    assert "not in a Crossbar.io node config" in rows["attributes"][3]
    for name, store, extra, needle in [
        ("misspelt", dict(at_path, maxsze=1), None, "maxsze"),
        ("type", dict(at_path, sync="yes"), None, "store.sync"),
        ("attributes", at_path, {"attributes": {"path": "/"}}, "attributes"),
    ]:
        bad = check(node_dir(init_app, tmp_path / name, edit(store, on_redis, extra)))
        out = bad.stdout + bad.stderr
        assert bad.returncode != 0 and needle in out, out


def test_the_configure_blocks_log_alice_in_and_her_cookie_stands_for_her(init_app, tmp_path):
    keys_block, role_block = (json.loads(b) for b in blocks(section(CROSSBAR, "## Configure"), "json"))
    secret = keys_block["auth"]["wampcra"]["users"]["alice"]["secret"]
    web_port, raw_port = free_ports(2)

    def paste(with_role: bool):
        def apply(config):
            (router,) = [w for w in config["workers"] if w["type"] == "router"]
            # The test's ports, on loopback only; nothing else of init's config changes.
            for transport in router["transports"]:
                port = web_port if transport["type"] == "web" else raw_port
                transport["endpoint"].update(port=port, interface="127.0.0.1")
            web_transport(config)["paths"]["ws"].update(json.loads(json.dumps(keys_block)))
            (realm,) = [r for r in router["realms"] if r["name"] == "realm1"]
            if with_role:
                realm["roles"].append(role_block)

        return apply

    # As docs/crossbar.md says: without alice's role, her login is refused.
    cbdir = node_dir(init_app, tmp_path / "no-role", paste(with_role=False))
    node = Node(cbdir, [web_port])
    try:
        node.start()
        conn = Browser().connect(node.url(0))
        msg = conn.hello(secret=secret)
        conn.close()
        assert msg[0] == ABORT and 'has no role "user"' in msg[1]["message"], msg
    finally:
        node.stop()

    cbdir = node_dir(init_app, tmp_path / "pasted", paste(with_role=True))
    done = check(cbdir)
    assert done.returncode == 0, done.stdout + done.stderr
    node = Node(cbdir, [web_port])
    try:
        node.start()
        browser = Browser()
        conn = browser.connect(node.url(0))
        assert conn.set_cookie and "HttpOnly" in conn.set_cookie, conn.set_cookie
        msg = conn.hello(secret=secret)
        conn.close()
        assert msg[0] == WELCOME and conn.challenged, f"{msg}\n{node.tail()}"
        assert (conn.details["authid"], conn.details["authrole"]) == ("alice", "user")
        again = browser.connect(node.url(0))
        assert again.set_cookie is None, "the cookie was not known"
        msg = again.hello()
        again.close()
        assert msg[0] == WELCOME and not again.challenged, msg
        assert again.details["authid"] == "alice" and again.details["authprovider"] == "cookie"
        assert (cbdir / "cookies" / "data.mdb").exists()  # the store the snippet names
    finally:
        node.stop()


def test_the_install_lines_work_as_written(tmp_path):
    """Runs the Install block of docs/crossbar.md with bash from the repository's root, in a new home
    directory, with no virtualenv activated; it builds the wheel (pip fetches maturin; the
    workspace's target/ keeps cargo's work) and installs Crossbar.io from the pip cache or
    PyPI. Slow: runs under CI, or with COOKIESTORE_README_INSTALL=1."""
    if not (os.environ.get("CI") or os.environ.get("COOKIESTORE_README_INSTALL")):
        pytest.skip("builds a wheel and installs Crossbar.io into a new venv (minutes): CI runs it; "
                    "COOKIESTORE_README_INSTALL=1 runs it here")
    (install,) = blocks(section(CROSSBAR, "## Install"), "sh")
    home = tmp_path / "home"
    home.mkdir()
    real = Path.home()
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    # Not activated: no virtualenv's bin on PATH (maturin, pip, python of another venv).
    env["PATH"] = os.pathsep.join(
        p for p in env.get("PATH", "").split(os.pathsep) if p and not (Path(p) / "activate").exists()
    )
    env["HOME"] = str(home)
    # The tools' own homes stay where they are (the toolchain, pyenv, caches).
    for var, default in [
        ("CARGO_HOME", real / ".cargo"),
        ("RUSTUP_HOME", real / ".rustup"),
        ("PYENV_ROOT", real / ".pyenv"),
        ("PIP_CACHE_DIR", real / ".cache" / "pip"),
    ]:
        if var not in env and default.exists():
            env[var] = str(default)
    done = subprocess.run(
        ["bash", "-e", "-x", "-c", install],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-6000:]
    assert "Crossbar.io" in out and "25.12.1" in out, out[-3000:]
    venv = home / "crossbar-venv"
    keys = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import cookiestore; print(' '.join(cookiestore.store_keys()))"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert keys.returncode == 0 and "cache_bytes" in keys.stdout.split(), keys.stdout + keys.stderr
