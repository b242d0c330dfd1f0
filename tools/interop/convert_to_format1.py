#!/usr/bin/env python3
"""Copy a cookie store into a new database in LMDB data format 1 (LMDB 0.9), with zlmdb 26.

Run with the zlmdb-26 venv (<venv>-z26, made by setup.sh). SRC is any cfxdb cookie store
zlmdb 26 can open (LMDB 1.0 format 3, as zlmdb 26 creates by default, or format 1); DEST
must not hold a database yet. DEST is created with zlmdb.Database(lib_version="0.9"), which
writes data format 1, the format Crossbar.io 25.12 (zlmdb 25.12) and cookiestore read. Every
cookie is copied through cfxdb's CookieStoreSchema (so the value index is rebuilt by zlmdb),
in write transactions of --batch cookies, and then read back and compared.

This is one way to convert a format-3 store for cookiestore; the other is to export it with
cfxdb_read.py (zlmdb 26 venv) and `cookiestore restore` the JSON lines.

stdout: record JSON of every cookie copied, sorted by oid (as cfxdb_read.py).
stderr: one JSON line {"source_format": F, "dest_format": 1, "cookies": N}.
Exit status: 0 on success; 1 on error (DEST is then left as it is, for inspection).
"""

import argparse
import json
import os
import sys

import interop_common as ic

import make_format3


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("src", metavar="SRC", help="existing cookie store directory (format 3 or 1)")
    p.add_argument("dest", metavar="DEST", help="new database directory (format 1)")
    p.add_argument("--maxsize", type=int, default=ic.DEFAULT_MAXSIZE, metavar="BYTES", help="LMDB map size (default 1 GiB)")
    p.add_argument("--batch", type=int, default=1000, help="cookies per write transaction (default %(default)s)")
    args = p.parse_args()
    if args.batch < 1:
        ic.die("--batch must be >= 1", 2)

    ic.setup_stdout()
    zlmdb, cookiestore = ic.import_cfxdb()
    if int(zlmdb.__version__.split(".")[0]) < 26:
        ic.die("zlmdb {} has no lib_version: run with the zlmdb-26 venv (<venv>-z26/bin/python)".format(zlmdb.__version__))
    if os.path.exists(os.path.join(args.dest, "data.mdb")):
        ic.die("{} already holds a database: give a new path".format(args.dest))
    src_data = os.path.join(args.src, "data.mdb")
    if not os.path.isfile(src_data):
        ic.die("no LMDB database at {} (missing data.mdb)".format(args.src))
    _, src_versions, _ = make_format3.meta_versions(src_data)

    # Source: zlmdb 26 picks the engine from the data file's format.
    src = ic.open_db(args.src, readonly=True, maxsize=args.maxsize, create=False)
    try:
        dest = zlmdb.Database(dbpath=args.dest, maxsize=args.maxsize, readonly=False, sync=True, lib_version="0.9")
    except Exception as e:
        ic.close_db(src)
        ic.die("cannot create {} with lib_version=0.9: {}: {}".format(args.dest, type(e).__name__, e))
    try:
        src_schema = ic.attach_schema(src, readonly=True)
        dest_schema = ic.attach_schema(dest)
        with src.begin() as txn:
            cookies = [c for _, c in src_schema.cookies.select(txn)]
        for i in range(0, len(cookies), args.batch):
            with dest.begin(write=True) as txn:
                for c in cookies[i : i + args.batch]:
                    dest_schema.cookies[txn, c.oid] = c
        with dest.begin() as txn:
            back = sorted((ic.cookie_record(c) for _, c in dest_schema.cookies.select(txn)), key=lambda r: r["oid"])
            index = {v: str(o) for v, o in dest_schema.idx_cookies_by_value.select(txn)}
    except SystemExit:
        raise
    except Exception as e:
        ic.die("copying cookies failed: {}: {}".format(type(e).__name__, e))
    finally:
        ic.close_db(src)
        ic.close_db(dest)

    want = sorted((ic.cookie_record(c) for c in cookies), key=lambda r: r["oid"])
    if [ic.dumps(r) for r in back] != [ic.dumps(r) for r in want]:
        ic.die("the records read back from {} differ from the source".format(args.dest))
    if index != {r["value"]: r["oid"] for r in want}:
        ic.die("the value index of {} differs from the records".format(args.dest))
    _, dest_versions, _ = make_format3.meta_versions(os.path.join(args.dest, "data.mdb"))
    if any(v != 1 for v in dest_versions):
        ic.die("{} has LMDB data format {}, expected 1".format(args.dest, dest_versions))

    for rec in back:
        ic.print_record(rec)
    print(json.dumps({"source_format": src_versions[0], "dest_format": dest_versions[0], "cookies": len(back)}), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
