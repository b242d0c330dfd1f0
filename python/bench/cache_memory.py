#!/usr/bin/env python3
"""Private memory per entry of the per-process cache, measured through the binding.

Fills a new store with N cookies as ``bench_stores.py`` does (same values and auth; kept, with
their values in ``PATH.values``, so a second run reuses them), opens it with a budget that
holds every cookie, looks each cookie up once, and compares the process's private memory
(``RssAnon``) before and after with the cache's own estimate (``cache_stats()["bytes"]``)::

    target/interop-venv/bin/python python/bench/cache_memory.py /tmp/cache-mem 100000
"""

from __future__ import annotations

import gc
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_stores as b  # noqa: E402

import cookiestore  # noqa: E402


def anon_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    raise RuntimeError("no RssAnon in /proc/self/status")


def main() -> None:
    path, n = sys.argv[1], int(sys.argv[2])
    values_file = path + ".values"
    if not os.path.exists(values_file):
        t = time.time()
        b.populate_ours(path, n, values_file)
        print(f"filled {n} cookies in {time.time() - t:.1f} s")
    values = open(values_file).read().split()
    store = cookiestore.CookieStore(
        path, name=b.NAME, length=b.LENGTH, max_age=b.MAX_AGE, maxsize=b.MAXSIZE, cache_bytes=4 << 30
    )
    store.exists(values[0])  # the cache's first catch-up, and the module's own allocations
    gc.collect()
    before = anon_kib()
    for v in values:
        store.exists(v)
    gc.collect()
    after = anon_kib()
    st = store.cache_stats()
    print(
        f"{st['entries']} entries: estimated {st['bytes'] / 2**20:.1f} MiB ({st['bytes'] / st['entries']:.0f} B each), "
        f"private memory +{(after - before) / 1024:.1f} MiB ({(after - before) * 1024 / st['entries']:.0f} B each)"
    )


if __name__ == "__main__":
    main()
