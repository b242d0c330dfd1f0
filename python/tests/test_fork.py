"""A store used across fork(): what Python servers do (a gunicorn master that used the store
and forks workers, multiprocessing with the 'fork' start method, a daemon).

The package's choice: a store object inherited by a child keeps working there. The library
refuses an LMDB environment in a process other than the one that opened it; the binding then
opens the store again in the child (its first call there; the ``os.register_at_fork`` hook
lets every object drop the inherited handle at once) and carries on. Opening the store again
in the child works as well.

Each scenario runs in a fresh interpreter (``python test_fork.py SCENARIO DIR``), so that the
process that forks did nothing before: pytest's own process may have drawn cookie values on
its main thread, whose random generator every forked child would copy (and then draw the
same values: a matter of the value generator, not of these tests), and may run threads.
"""

from __future__ import annotations

import ctypes
import json
import multiprocessing
import os
import random
import subprocess
import sys
import threading
import traceback
from pathlib import Path

import pytest

from cookiestore import CookieStore

WORKERS = 4
#: Calls per gunicorn worker.
CALLS = 5000


def _open(path) -> CookieStore:
    # Commits unflushed: what is tested is which process owns an environment, not durability.
    return CookieStore(str(path), max_age=3600, sync=False)


def _create_elsewhere(store: CookieStore) -> str:
    """A cookie made on another thread: the random generator of the forking thread would
    otherwise be copied into every child, which would then draw the same cookie values (the
    generator is not what these tests are about)."""
    made = []
    t = threading.Thread(target=lambda: made.append(store.create()[0]))
    t.start()
    t.join()
    return made[0]


def _fork(work) -> int:
    """Forks; the child runs ``work()`` and leaves with os._exit (0 when it returned)."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            work()
            code = 0
        except BaseException:  # noqa: BLE001 - reported, then the child's exit status says it
            traceback.print_exc()
        finally:
            os._exit(code)
    return pid


def _wait(pid: int) -> None:
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, f"child {pid} failed: status {status:#x}"


def _mixed_calls(store: CookieStore, n: int, seed: int, tag: str) -> dict:
    """``n`` calls on the caller's own cookies (create, exists, get_auth, authenticate,
    logout), every answer checked against what the caller did."""
    rng = random.Random(seed)
    mine: dict[str, str | None] = {}
    order: list[str] = []
    errors = wrong = 0
    first = None
    for call in range(n):
        roll = rng.randrange(100)
        try:
            if not order or roll < 20:
                value, _header = store.create()
                mine[value] = None
                order.append(value)
                continue
            i = rng.randrange(len(order))
            value = order[i]
            if roll < 45:
                wrong += store.exists(value) is not True
            elif roll < 70:
                auth = store.get_auth(value)
                wrong += (auth[0] if auth else None) != mine[value]
            elif roll < 90:
                authid = f"{tag}-{call}"
                wrong += store.authenticate(value, authid, "user", "ticket", "realm1") != "written"
                mine[value] = authid
            else:
                wrong += store.logout(value) is not True
                del mine[value]
                order[i] = order[-1]
                order.pop()
                wrong += store.exists(value) is not False
        except Exception as e:  # noqa: BLE001 - counted: the test asserts there are none
            errors += 1
            first = first or f"{type(e).__name__}: {e}"
    return {"errors": errors, "wrong": wrong, "first_error": first, "live": mine}


def _assert_results(store: CookieStore, results: list[dict], others: int = 1) -> None:
    """No error, no wrong answer, every live cookie there with its auth, indexes in step."""
    live = 0
    for r in results:
        assert r["errors"] == 0, r["first_error"]
        assert r["wrong"] == 0
        for value, authid in r["live"].items():
            auth = store.get_auth(value)
            assert (auth[0] if auth else None) == authid
            assert store.exists(value)
            live += 1
    stats = store.stats()
    assert stats.live == live + others
    assert stats.corrupt == 0
    assert stats.value_index_entries == stats.records == stats.expiry_index_entries


def _data_maps(path) -> int:
    """How many memory maps of the store's data.mdb this process has."""
    data = str(Path(path).resolve() / "data.mdb")
    with open("/proc/self/maps") as maps:
        return sum(1 for line in maps if line.rstrip().endswith(data))


def _run(scenario: str, tmp_path: Path, *args: str) -> None:
    """Runs ``scenario`` of this file in a fresh interpreter; it asserts what it tests."""
    proc = subprocess.run(
        [sys.executable, __file__, scenario, str(tmp_path), *args],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, f"{scenario} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"


@pytest.mark.parametrize("reopen", [True, False], ids=["workers-reopen", "workers-keep-the-object"])
def test_gunicorn_pattern(tmp_path, reopen):
    """A master that used the store forks 4 workers, which open the store again (or keep
    using the master's object) and make 5,000 mixed calls each: no error, no wrong answer."""
    _run("gunicorn", tmp_path, "reopen" if reopen else "keep")


def gunicorn(tmp_path: Path, mode: str) -> None:
    reopen = mode == "reopen"
    path = tmp_path / "store"
    master = _open(path)
    seed = _create_elsewhere(master)
    # What the master does before forking: one look at the store (a reader slot of this
    # thread, the cache).
    assert master.exists(seed) and master.get_auth(seed) is None
    assert master.cache_stats()["hits"] >= 1
    base = random.randrange(1 << 32)
    pids = []
    for i in range(WORKERS):

        def work(i=i):
            store = _open(path) if reopen else master
            # The worker's store is its own, with a cache of its own, not the master's.
            assert store.cache_stats()["hits"] == 0
            result = _mixed_calls(store, CALLS, base + i, f"w{i}")
            (tmp_path / f"w{i}.json").write_text(json.dumps(result))

        pids.append(_fork(work))
    for pid in pids:
        _wait(pid)
    results = [json.loads((tmp_path / f"w{i}.json").read_text()) for i in range(WORKERS)]
    # The master's object still works in the master, and sees what the workers wrote.
    _assert_results(master, results)


# The store a multiprocessing pool's forked workers inherit, as a module-level object.
_MODULE_STORE: CookieStore | None = None


def _pool_task(args) -> dict:
    index, seed = args
    return _mixed_calls(_MODULE_STORE, 2000, seed, f"p{index}")


def test_multiprocessing_fork_pool_uses_the_module_level_store(tmp_path):
    _run("pool", tmp_path)


def pool(tmp_path: Path) -> None:
    global _MODULE_STORE
    _MODULE_STORE = _open(tmp_path / "store")
    try:
        seed = _create_elsewhere(_MODULE_STORE)
        assert _MODULE_STORE.exists(seed)
        base = random.randrange(1 << 32)
        with multiprocessing.get_context("fork").Pool(WORKERS) as pool:
            results = pool.map(_pool_task, [(i, base + i) for i in range(WORKERS)])
        _assert_results(_MODULE_STORE, results)
    finally:
        _MODULE_STORE = None


@pytest.mark.skipif(not os.path.exists("/proc/self/maps"), reason="needs /proc/self/maps")
def test_an_inherited_object_drops_the_parents_environment_and_reopens(tmp_path):
    """After os.fork() the hook lets go of the inherited environment at once (the child maps
    no data.mdb until its first call), and the first call opens a fresh one."""
    _run("drops", tmp_path)


def drops(tmp_path: Path) -> None:
    path = tmp_path / "store"
    store = _open(path)
    value = _create_elsewhere(store)
    store.authenticate(value, "alice")
    assert store.get_auth(value)[0] == "alice"
    assert _data_maps(path) == 1

    def child():
        assert _data_maps(path) == 0, "the inherited environment is still mapped"
        assert store.get_auth(value)[0] == "alice"
        assert _data_maps(path) == 1
        # A fresh environment: its own cache, empty before the call above.
        assert store.cache_stats()["hits"] == 0
        assert store.authenticate(value, "bob") == "written"

    _wait(_fork(child))
    assert store.get_auth(value)[0] == "bob"


@pytest.mark.skipif(not os.path.exists("/proc/self/maps"), reason="needs /proc/self/maps")
def test_a_fork_that_runs_no_python_hook_still_reopens(tmp_path):
    """fork() called from C (no os.register_at_fork hook runs): the library refuses the
    inherited environment, and the object opens the store again on that refusal."""
    _run("no_hook", tmp_path)


def no_hook(tmp_path: Path) -> None:
    path = tmp_path / "store"
    store = _open(path)
    value = _create_elsewhere(store)
    assert store.exists(value) and store.exists(value)
    assert store.cache_stats()["hits"] >= 1
    out = tmp_path / "child.json"
    # PyDLL: fork() is called with the GIL held, so the child holds it too.
    pid = ctypes.PyDLL(None).fork()
    if pid == 0:
        code = 1
        try:
            result = {"maps_before": _data_maps(path)}
            result["exists"] = store.exists(value)
            result["maps_after"] = _data_maps(path)
            # A fresh environment has a cache of its own: the lookup above was its first.
            result["hits"] = store.cache_stats()["hits"]
            result["logout"] = store.logout(value)
            out.write_text(json.dumps(result))
            code = 0
        except BaseException:  # noqa: BLE001
            traceback.print_exc()
        finally:
            os._exit(code)
    _wait(pid)
    result = json.loads(out.read_text())
    # The inherited environment was mapped until the first call replaced it.
    assert result == {"maps_before": 1, "exists": True, "maps_after": 1, "hits": 0, "logout": True}
    assert not store.exists(value)


def test_an_inherited_revocation_feed_goes_on_in_the_child(tmp_path):
    """A feed made before fork() reads on in the child from where it was, on the child's
    store; the parent's feed is unaffected."""
    _run("feed", tmp_path)


def feed(tmp_path: Path) -> None:
    path = tmp_path / "store"
    store = _open(path)
    ours, theirs = _create_elsewhere(store), _create_elsewhere(store)
    assert store.exists(ours) and store.exists(ours)
    assert store.cache_stats()["hits"] >= 1
    feed = store.revocation_feed()
    start = feed.position
    go_r, go_w = os.pipe()
    out = tmp_path / "child.json"

    def child():
        os.close(go_w)
        assert os.read(go_r, 1) == b"x"  # the parent logged `theirs` out
        entries, position, missed = feed.poll()
        assert store.logout(ours) is True
        later, _, _ = feed.poll()
        # The child's store is its own (a fresh cache), not the parent's.
        hits = store.cache_stats()["hits"]
        first = [(e.seq, e.kind, e.value) for e in entries]
        later = [(e.seq, e.kind, e.value) for e in later]
        out.write_text(json.dumps({"first": first, "later": later, "missed": missed, "hits": hits}))

    pid = _fork(child)
    os.close(go_r)
    assert store.logout(theirs) is True
    os.write(go_w, b"x")
    os.close(go_w)
    _wait(pid)
    got = json.loads(out.read_text())
    assert [(e[1], e[2]) for e in got["first"]] == [("logout", theirs)]
    assert got["first"][0][0] == start + 1
    assert [(e[1], e[2]) for e in got["later"]] == [("logout", ours)]
    assert not got["missed"]
    assert got["hits"] == 0
    # The parent's feed is its own: both logouts, from where it was.
    entries, _, _ = feed.poll()
    assert [(e.kind, e.value) for e in entries] == [("logout", theirs), ("logout", ours)]


def test_a_redis_store_inherited_by_forked_children(tmp_path):
    """On Redis the inherited object needs no reopen: the child's calls get connections of
    its own (the parent's pooled ones are its sockets)."""
    from redis_server import RedisServer, need_redis

    need_redis()
    server = RedisServer(tmp_path)
    server.start()
    try:
        _run("redis", tmp_path, server.url())
    finally:
        server.stop()


def redis(tmp_path: Path, url: str) -> None:
    store = CookieStore(url, max_age=3600)
    seed = _create_elsewhere(store)
    assert store.exists(seed)  # a pooled connection of the parent
    base = random.randrange(1 << 32)
    pids = []
    for i in range(WORKERS):

        def work(i=i):
            result = _mixed_calls(store, 1000, base + i, f"r{i}")
            (tmp_path / f"r{i}.json").write_text(json.dumps(result))

        pids.append(_fork(work))
    mine = _mixed_calls(store, 1000, base + WORKERS, "parent")
    for pid in pids:
        _wait(pid)
    results = [json.loads((tmp_path / f"r{i}.json").read_text()) for i in range(WORKERS)]
    for r in [*results, mine]:
        assert r["errors"] == 0, r["first_error"]
        assert r["wrong"] == 0
        for value, authid in r["live"].items():
            auth = store.get_auth(value)
            assert (auth[0] if auth else None) == authid


if __name__ == "__main__":
    scenario, directory, *rest = sys.argv[1:]
    {"gunicorn": gunicorn, "pool": pool, "drops": drops, "no_hook": no_hook, "feed": feed, "redis": redis}[
        scenario
    ](Path(directory), *rest)
