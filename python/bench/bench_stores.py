#!/usr/bin/env python3
"""Time per cookie lookup and per login through Python: cookiestore vs Crossbar.io's stores.

Stores, all in one run, all holding the same cookies (same values, same auth):

- ``cookiestore.crossbar.CookieStoreCookiestore`` (the Crossbar store class, no reactor:
  the revocation-feed poller and the purger are off; they run beside the hot path anyway);
- ``cookiestore.CookieStore``, the raw binding, on a copy of the same store (each copy has its
  own per-process cache, so that no subject warms another's);
- the raw binding on a copy opened with ``cache_bytes=0``: no per-process cache, every lookup
  a read transaction;
- the raw binding on a copy whose cache budget holds every cookie (``cache_bytes`` = 1,600 bytes per
  cookie), the memory Crossbar's file store spends, bounded;
- Crossbar.io's ``CookieStoreDatabaseBacked`` (zlmdb/cfxdb), twice: with txaio's global log
  level at ``info`` (Crossbar's default ``--loglevel``: its ``getAuth`` emits an info event per
  call; here the events go to Twisted's in-memory start-up buffer, not to a file, so this is a
  lower bound of what a node pays) and at ``warn`` (log calls are no-ops, though their
  arguments, ``hltype(...)`` and the like, are still built);
- Crossbar.io's ``CookieStoreFileBacked`` (a dict in memory + an append-only JSON-lines file).

Operations, as Crossbar's router calls them:

- lookup: ``exists(cbtid)`` then ``getAuth(cbtid)`` of a known, authenticated cookie
  (raw binding: ``exists`` + ``get_auth``), over every cookie in a shuffled order (each equally
  likely: the worst case for a cache; ours' default 384 MiB holds 1M of these cookies), and over a hot set of ``--hot`` cookies (the
  users connected now: what the cache holds whole);
- login: ``create()`` then ``setAuth(cbtid, authid, authrole, authmethod, authextra, authrealm)``
  (raw binding: ``create`` + ``authenticate``).

Durability is the same for all: every write is flushed to disk before the call returns
(ours: ``sync: true``; Crossbar's database store: ``sync: true``, zlmdb's default, i.e. LMDB
without MDB_NOSYNC; the file store always ``fsync``s after each appended line, it has no
setting). So a login is two fsynced commits (two fsynced appends for the file store).

Method: each store gets its own directory (Crossbar's LMDB build and ours use different lock
file formats and must not have one store open at once). Ours is filled in a subprocess (sync
off while filling), Crossbar's database store in batched write transactions through its own
cfxdb schema with the same values, and the file store from a ``cookies.dat`` written as
Crossbar writes it (a ``created`` and a ``modified`` line per cookie), whose loading is timed.
Lookups follow one shuffled order (the same for every store), in blocks of ``--block``; within
each block every store runs the same slice, the store order rotating from block to block, so
drift and load changes hit all stores alike. Logins likewise, in blocks of ``--login-block``.
One warm-up pass over every cookie precedes the rounds; the figure is the median of
``--rounds`` rounds (per-round time / operations), with the spread (min..max) in the JSON.
Python's loop overhead (a few tens of ns) is included in every figure alike.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

NAME = "cbtid"
LENGTH = 24
MAX_AGE = 604800
MAXSIZE = 1 << 30  # 1 GiB map limit for both LMDB stores (Crossbar's database default)
AUTHROLE, AUTHMETHOD, AUTHREALM = "user", "wampcra", "realm1"


def auth_of(i: int):
    """(authid, authrole, authmethod, authrealm, authextra) of cookie number i."""
    return (f"user{i}", AUTHROLE, AUTHMETHOD, AUTHREALM, {"i": i, "plan": "pro", "tags": ["x"]})


def cookie_section(store: dict) -> dict:
    return {"name": NAME, "length": LENGTH, "max_age": MAX_AGE, "store": store}


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


# -- filling --------------------------------------------------------------------------------


def populate_ours(path: str, n: int, values_out: str) -> None:
    """Runs in a subprocess: n authenticated cookies into a new store (sync off while filling),
    their values written to values_out (one per line, cookie i on line i)."""
    import cookiestore

    store = cookiestore.CookieStore(path, name=NAME, length=LENGTH, max_age=MAX_AGE, maxsize=MAXSIZE, sync=False)
    values = []
    for i in range(n):
        value, _header = store.create()
        authid, authrole, authmethod, authrealm, authextra = auth_of(i)
        done = store.authenticate(value, authid, authrole, authmethod, authrealm, authextra)
        assert done == "written", done
        values.append(value)
    with open(values_out, "w") as f:
        f.write("\n".join(values) + "\n")


def write_cookies_dat(path: str, values: list[str]) -> None:
    """A cookies.dat as CookieStoreFileBacked writes it: created line, then modified line."""
    from autobahn import util

    with open(path, "w") as f:
        for i, value in enumerate(values):
            authid, authrole, authmethod, authrealm, authextra = auth_of(i)
            now = util.utcnow()
            base = {"cbtid": value, "created": now, "max_age": MAX_AGE}
            empty = {"authid": None, "authrole": None, "authmethod": None, "authrealm": None, "authextra": None}
            f.write(json.dumps({**base, "status": "created", "modified": None, "deleted": None, **empty}) + "\n")
            auth = {
                "authid": authid,
                "authrole": authrole,
                "authmethod": authmethod,
                "authrealm": authrealm,
                "authextra": authextra,
            }
            f.write(json.dumps({**base, "status": "modified", "modified": now, "deleted": None, **auth}) + "\n")
        f.flush()
        os.fsync(f.fileno())


def populate_crossbar_db(store, values: list[str], batch: int = 10000) -> None:
    """The same cookies into Crossbar's database store, through its own cfxdb schema."""
    import numpy as np
    from cfxdb import cookiestore as cfx
    from txaio import time_ns

    for start in range(0, len(values), batch):
        with store._db.begin(write=True) as txn:
            for i in range(start, min(start + batch, len(values))):
                authid, authrole, authmethod, authrealm, authextra = auth_of(i)
                c = cfx.Cookie()
                c.oid = uuid.uuid4()
                c.created = np.datetime64(time_ns(), "ns")
                c.max_age = MAX_AGE
                c.name = NAME
                c.value = values[i]
                c.authenticated = c.created
                c.authid, c.authrole, c.authmethod = authid, authrole, authmethod
                c.authrealm, c.authextra = authrealm, authextra
                store._schema.cookies[txn, c.oid] = c


# -- the stores under test ------------------------------------------------------------------


class Subject:
    """A store under test: lookup(values) and login(indices) loops, timed by the caller."""

    def __init__(self, key, label, store, raw=False, log_level=None):
        self.key, self.label, self.store, self.raw, self.log_level = key, label, store, raw, log_level

    def enter(self):
        if self.log_level is not None:
            import txaio

            txaio.set_global_log_level(self.log_level)

    def lookups(self, values):
        s = self.store
        if self.raw:
            exists, get_auth = s.exists, s.get_auth
            for v in values:
                if exists(v):
                    get_auth(v)
        else:
            exists, get_auth = s.exists, s.getAuth
            for v in values:
                if exists(v):
                    get_auth(v)

    def check(self, values, first_index):
        """Every cookie of values is found with its auth (not timed)."""
        for k, v in enumerate(values):
            i = first_index[v]
            want = auth_of(i)
            if self.raw:
                assert self.store.exists(v), (self.key, v)
                got = self.store.get_auth(v)
            else:
                assert self.store.exists(v), (self.key, v)
                got = self.store.getAuth(v)
            assert got is not None and tuple(got[:4]) == want[:4], (self.key, v, got, want)
            assert dict(got[4]) == want[4], (self.key, v, got, want)

    def logins(self, indices):
        s = self.store
        if self.raw:
            for i in indices:
                authid, authrole, authmethod, authrealm, authextra = auth_of(i)
                value, _ = s.create()
                s.authenticate(value, authid, authrole, authmethod, authrealm, authextra)
        else:
            for i in indices:
                authid, authrole, authmethod, authrealm, authextra = auth_of(i)
                value, _ = s.create()
                s.setAuth(value, authid, authrole, authmethod, authextra, authrealm)


def open_subjects(workdir: str, n: int, values: list[str], info: dict) -> list[Subject]:
    import txaio
    from crossbar.router.cookiestore import CookieStoreDatabaseBacked, CookieStoreFileBacked

    import cookiestore
    from cookiestore.crossbar import CookieStoreCookiestore

    ours_dir = os.path.join(workdir, "ours")
    def copy(suffix: str, cache_bytes=None):
        where = os.path.join(workdir, f"ours-{suffix}")
        shutil.copytree(ours_dir, where)
        kw = {} if cache_bytes is None else {"cache_bytes": cache_bytes}
        return cookiestore.CookieStore(where, name=NAME, length=LENGTH, max_age=MAX_AGE, maxsize=MAXSIZE, sync=True,
                                       **kw)

    raw = copy("raw")
    nocache = copy("nocache", 0)
    big = copy("big", n * 1600)
    cls = CookieStoreCookiestore(
        cookie_section({"type": "cookiestore", "path": ours_dir, "maxsize": MAXSIZE, "sync": True}),
        workdir,
        poll_interval=None,
        purge_interval=None,
    )

    txaio.set_global_log_level("info")
    db_dir = os.path.join(workdir, "crossbar-db")
    with contextlib.redirect_stdout(io.StringIO()):  # zlmdb prints on open
        db = CookieStoreDatabaseBacked(
            db_dir, cookie_section({"type": "database", "path": db_dir, "maxsize": MAXSIZE, "sync": True})
        )
    t = time.perf_counter()
    populate_crossbar_db(db, values)
    info["crossbar_db_fill_s"] = time.perf_counter() - t

    dat = os.path.join(workdir, "cookies.dat")
    write_cookies_dat(dat, values)
    info["cookies_dat_mib"] = os.path.getsize(dat) / 2**20
    gc.collect()
    rss0 = rss_mib()
    t = time.perf_counter()
    fs = CookieStoreFileBacked(dat, cookie_section({"type": "file", "filename": dat}))
    info["file_store_load_s"] = time.perf_counter() - t
    gc.collect()
    info["file_store_load_rss_mib"] = rss_mib() - rss0
    assert len(fs._cookies) == n

    return [
        Subject("ours_class", "ours: CookieStoreCookiestore", cls),
        Subject("ours_raw", "ours: cookiestore.CookieStore (raw binding)", raw, raw=True),
        Subject("ours_nocache", "ours: raw binding, cache off", nocache, raw=True),
        Subject("ours_big", "ours: raw binding, cache holds every cookie", big, raw=True),
        Subject("crossbar_db_info", "Crossbar database store (log level info)", db, log_level="info"),
        Subject("crossbar_db_warn", "Crossbar database store (log level warn)", db, log_level="warn"),
        Subject("crossbar_file", "Crossbar file store (dict + cookies.dat)", fs, log_level="info"),
    ]


# -- timing ---------------------------------------------------------------------------------


def interleaved(subjects, items, block, run, rot0=0):
    """Total ns per subject over items, in blocks, the subject order rotating per block."""
    totals = {s.key: 0 for s in subjects}
    k = len(subjects)
    for b, start in enumerate(range(0, len(items), block)):
        chunk = items[start : start + block]
        r = (b + rot0) % k
        for s in subjects[r:] + subjects[:r]:
            s.enter()
            t0 = time.perf_counter_ns()
            run(s, chunk)
            totals[s.key] += time.perf_counter_ns() - t0
    return totals


def bench_size(args, n: int) -> dict:
    info: dict = {"cookies": n}
    workdir = tempfile.mkdtemp(prefix=f"bench-stores-{n}-", dir=args.dir)
    try:
        values_file = os.path.join(workdir, "values.txt")
        t = time.perf_counter()
        subprocess.run(
            [sys.executable, os.path.abspath(__file__), "--populate-ours", os.path.join(workdir, "ours"),
             "--cookies", str(n), "--values-out", values_file],
            check=True,
        )
        info["ours_fill_s"] = time.perf_counter() - t
        with open(values_file) as f:
            values = f.read().split()
        assert len(values) == n
        first_index = {v: i for i, v in enumerate(values)}

        subjects = open_subjects(workdir, n, values, info)
        if args.only:
            subjects = [s for s in subjects if s.key in args.only.split(",")]

        rng = random.Random(args.seed)
        order = values[:]
        rng.shuffle(order)
        lookups = order if not args.lookups else order[: args.lookups]

        # correctness and warm-up: every cookie, every store (not timed)
        for s in subjects:
            s.enter()
            s.check(order, first_index)

        hot = order[: args.hot] * max(1, len(lookups) // max(1, args.hot))
        results = {
            s.key: {"label": s.label, "lookup_ns": [], "hot_ns": [], "login_ns": []} for s in subjects
        }
        login_i = n
        for rnd in range(args.rounds):
            gc.collect()
            tl = interleaved(subjects, lookups, args.block, lambda s, c: s.lookups(c), rot0=rnd)
            th = interleaved(subjects, hot, args.block, lambda s, c: s.lookups(c), rot0=rnd)
            idx = list(range(login_i, login_i + args.logins))
            login_i += args.logins
            tw = interleaved(subjects, idx, args.login_block, lambda s, c: s.logins(c), rot0=rnd)
            for s in subjects:
                results[s.key]["lookup_ns"].append(tl[s.key] / len(lookups))
                results[s.key]["hot_ns"].append(th[s.key] / len(hot))
                results[s.key]["login_ns"].append(tw[s.key] / args.logins)
            print(
                f"  n={n} round {rnd + 1}/{args.rounds}: "
                + ", ".join(f"{s.key} {tl[s.key] / len(lookups) / 1000:.2f}/{th[s.key] / len(hot) / 1000:.2f}"
                            f"/{tw[s.key] / args.logins / 1000:.0f} us"
                            for s in subjects),
                file=sys.stderr,
            )
        for r in results.values():
            r["lookup_median_ns"] = statistics.median(r["lookup_ns"])
            r["hot_median_ns"] = statistics.median(r["hot_ns"])
            r["login_median_ns"] = statistics.median(r["login_ns"])
        info["lookups_per_round"] = len(lookups)
        info["hot_cookies"] = min(args.hot, len(order))
        info["ours_cache"] = raw_cache_stats(subjects)
        info["logins_per_round"] = args.logins
        info["results"] = results
        for s in subjects:
            if hasattr(s.store, "stop"):
                s.store.stop()
        return info
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


def raw_cache_stats(subjects) -> dict:
    """The cache figures of ours: the class's (default budget) and the big one's."""
    out = {}
    for s in subjects:
        if s.key == "ours_class":
            out["default"] = s.store.store.cache_stats()
        if s.key == "ours_big":
            out["big"] = s.store.cache_stats()
    return out


def cache_line(caches: dict) -> str:
    if not caches:
        return "not measured"
    return "; ".join(
        f"{which}: {c['entries']:,} entries, {c['bytes'] / 2**20:.1f} MiB (estimated) of "
        f"{c['capacity_bytes'] / 2**20:.0f} MiB, hit rate {c['hit_rate']:.2f} over the whole run"
        for which, c in caches.items()
    )


def fmt_us(ns: float) -> str:
    us = ns / 1000
    if us >= 1000:
        return f"{us / 1000:.2f} ms"
    return f"{us:.2f} µs" if us < 10 else f"{us:.1f} µs" if us < 100 else f"{us:.0f} µs"


def table(runs: list[dict]) -> str:
    lines = [
        "| cookies | store | exists+getAuth, every cookie | vs ours | exists+getAuth, hot set | lookups/s "
        "| vs ours | create+setAuth (sync) | vs ours |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run in runs:
        res = run["results"]
        base = res.get("ours_class") or next(iter(res.values()))
        for key, r in res.items():
            lk, hk, lg = r["lookup_median_ns"], r["hot_median_ns"], r["login_median_ns"]
            lines.append(
                f"| {run['cookies']:,} | {r['label']} | {fmt_us(lk)} | {lk / base['lookup_median_ns']:.2f}x | "
                f"{fmt_us(hk)} | {1e9 / hk:,.0f} | {hk / base['hot_median_ns']:.2f}x | "
                f"{fmt_us(lg)} | {lg / base['login_median_ns']:.2f}x |"
            )
    notes = []
    for run in runs:
        notes.append(
            f"- {run['cookies']:,} cookies: file store loaded {run['cookies_dat_mib']:.1f} MiB of cookies.dat "
            f"in {run['file_store_load_s']:.2f} s (+{run['file_store_load_rss_mib']:.0f} MiB RSS); "
            f"{run['lookups_per_round']:,} lookups and {run['logins_per_round']:,} logins per store per round "
            f"(filling: ours {run['ours_fill_s']:.1f} s incl. subprocess start, sync off; "
            f"Crossbar database {run['crossbar_db_fill_s']:.1f} s in batches of 10,000); hot set "
            f"{run['hot_cookies']:,} cookies; ours' caches at the end: {cache_line(run['ours_cache'])}"
        )
    return "\n".join(lines) + "\n\n" + "\n".join(notes)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cookies", default="10000,100000", help="comma-separated store sizes (default 10000,100000)")
    p.add_argument("--rounds", type=int, default=3, help="rounds; the median is reported (default 3)")
    p.add_argument("--lookups", type=int, default=0, help="lookups per store per round (default: every cookie once)")
    p.add_argument("--hot", type=int, default=5000, help="cookies in the hot set (default 5000)")
    p.add_argument("--block", type=int, default=1000, help="lookups per interleaved block (default 1000)")
    p.add_argument("--logins", type=int, default=200, help="logins per store per round (default 200)")
    p.add_argument("--login-block", type=int, default=20, help="logins per interleaved block (default 20)")
    p.add_argument("--seed", type=int, default=1, help="seed of the shuffled lookup order")
    p.add_argument("--dir", default=None, help="where the stores are made (default: $TMPDIR)")
    p.add_argument("--only", default=None, help="comma-separated subset of store keys")
    p.add_argument("--keep", action="store_true", help="keep the store directories")
    p.add_argument("--json", default=None, help="write the results as JSON to this file")
    p.add_argument("--table-from", default=None, help="print the table of a saved --json file and exit")
    p.add_argument("--populate-ours", default=None, help=argparse.SUPPRESS)
    p.add_argument("--values-out", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()

    if args.table_from:
        with open(args.table_from) as f:
            saved = json.load(f)
        print(table(saved["runs"]))
        print()
        print(saved["env"])
        return

    if args.populate_ours:
        populate_ours(args.populate_ours, int(args.cookies), args.values_out)
        return

    import crossbar

    import cookiestore

    runs = []
    started = time.time()
    load0 = os.getloadavg()
    for n in (int(x) for x in args.cookies.split(",")):
        runs.append(bench_size(args, n))
    load1 = os.getloadavg()
    out = table(runs)
    env = (
        f"Python {sys.version.split()[0]}, Crossbar.io {crossbar.__version__}, cookiestore {cookiestore.__file__}; "
        f"loadavg at start {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}, at end {load1[0]:.2f} {load1[1]:.2f} "
        f"{load1[2]:.2f}; {os.cpu_count()} CPUs; nice {os.nice(0)}; {time.time() - started:.0f} s"
    )
    print(out)
    print()
    print(env)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"runs": runs, "env": env, "argv": sys.argv, "loadavg_start": load0, "loadavg_end": load1}, f,
                      indent=1)


if __name__ == "__main__":
    main()
