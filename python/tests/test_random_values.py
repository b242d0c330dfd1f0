"""Cookie values come from the operating system's generator at every draw: a process and the
children it forks (os.fork, multiprocessing's 'fork' start method) never hand out the same
value. Each process draws from a store of its own, opened in that process."""

from __future__ import annotations

import json
import multiprocessing
import os

import pytest

from cookiestore import CookieStore

DRAWS = 1000


def draw(path: str, n: int = DRAWS) -> list[str]:
    store = CookieStore(path, max_age=3600, maxsize=16 << 20, sync=False)
    return [store.create()[0] for _ in range(n)]


def test_a_forked_child_never_draws_the_parents_values(tmp_path):
    before = draw(str(tmp_path / "parent-before"), 1)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: draws, reports, exits without running the parent's cleanup
        code = 1
        try:
            os.close(read_end)
            values = draw(str(tmp_path / "child"))
            with os.fdopen(write_end, "w") as out:
                json.dump(values, out)
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end) as child_out:
        child = json.load(child_out)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    parent = set(draw(str(tmp_path / "parent")) + before)
    assert len(child) == DRAWS and len(set(child)) == DRAWS
    shared = parent.intersection(child)
    assert not shared, f"{len(shared)} values drawn in both parent and child"


def _draw_in_worker(path: str) -> list[str]:
    return draw(path)


def test_multiprocessing_fork_workers_never_share_values(tmp_path):
    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("no fork start method on this platform")
    draw(str(tmp_path / "parent"), 1)  # the parent drew before forking its workers
    ctx = multiprocessing.get_context("fork")
    paths = [str(tmp_path / f"worker{i}") for i in range(3)]
    with ctx.Pool(3) as pool:
        results = pool.map(_draw_in_worker, paths)
    values = [v for r in results for v in r]
    assert len(values) == 3 * DRAWS
    assert len(set(values)) == len(values), "two fork workers drew the same value"
