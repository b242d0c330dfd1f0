#!/usr/bin/env python3
"""Create a cookie store database in LMDB 1.0 format (data format 3) with zlmdb 26.

Run with the zlmdb-26 venv (<venv>-z26, made by setup.sh). DBPATH must not hold a database
yet. The database is opened with zlmdb.Database(lib_version="1.0") (zlmdb 26's default for
new databases) and --count random cookies (default 5, same generator as cfxdb_write.py) are
written through cfxdb's CookieStoreSchema, so the slot layout is exactly cfxdb's.

Then data.mdb is checked: in both meta pages (pages 0 and 1) the uint32 right after the
magic 0xBEEFC0DE (little-endian) is the data format version, which must be 3. The magic's
offset depends on the format's page header: 16 in format 1 (LMDB 0.9: pgno, pad, flags,
lower/upper), 24 in format 3 (LMDB 1.0 adds a txnid to the page header); the script finds it.

stdout: record JSON lines of the cookies written (as cfxdb_write.py).
stderr: one JSON line {"format": 3, "magic_offset": 24, "meta_versions": [3, 3], ...}.
Exit status: 0 when the format is 3; 1 otherwise or on error.
"""

import argparse
import json
import os
import random
import struct
import sys

import interop_common as ic

MAGIC = 0xBEEFC0DE


def meta_versions(data_mdb):
    """Return (offset of magic within a page, [version of meta page 0, meta page 1], page size)."""
    with open(data_mdb, "rb") as f:
        head = f.read(65536 * 2)
    magic = struct.pack("<I", MAGIC)
    off = head.find(magic)
    if off < 0 or off > 64:
        raise ValueError("LMDB magic 0xBEEFC0DE not found in the first meta page of {}".format(data_mdb))
    versions = [struct.unpack_from("<I", head, off + 4)[0]]
    # second meta page: find the magic again at the same offset in the next page
    nxt = head.find(magic, off + 4)
    page_size = nxt - off if nxt > 0 else None
    if page_size:
        versions.append(struct.unpack_from("<I", head, nxt + 4)[0])
    return off, versions, page_size


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dbpath", metavar="DBPATH", help="new LMDB database directory")
    p.add_argument("--count", type=int, default=5, help="cookies to write (default %(default)s)")
    p.add_argument("--seed", type=int, default=3, help="random seed (default %(default)s)")
    p.add_argument("--maxsize", type=int, default=ic.DEFAULT_MAXSIZE, metavar="BYTES", help="LMDB map size (default 1 GiB)")
    args = p.parse_args()

    ic.setup_stdout()
    zlmdb, cookiestore = ic.import_cfxdb()
    import numpy as np

    import cfxdb_write

    major = int(zlmdb.__version__.split(".")[0])
    if major < 26:
        ic.die("zlmdb {} cannot create LMDB format 3: run with the zlmdb-26 venv (<venv>-z26/bin/python)".format(zlmdb.__version__))
    data_mdb = os.path.join(args.dbpath, "data.mdb")
    if os.path.exists(data_mdb):
        ic.die("{} already holds a database: give a new path".format(args.dbpath))

    try:
        db = zlmdb.Database(dbpath=args.dbpath, maxsize=args.maxsize, readonly=False, sync=True, lib_version="1.0")
    except Exception as e:
        ic.die("cannot create LMDB 1.0 database at {}: {}: {}".format(args.dbpath, type(e).__name__, e))
    records = []
    try:
        schema = ic.attach_schema(db)
        rng = random.Random(args.seed)
        taken = set()
        with db.begin(write=True) as txn:
            for i in range(args.count):
                c = cfxdb_write.make_cookie(rng, i, cfxdb_write.rand_value(rng, taken), cookiestore, np)
                schema.cookies[txn, c.oid] = c
                records.append(ic.cookie_record(c))
        # read back through cfxdb
        with db.begin() as txn:
            back = sorted((ic.cookie_record(c) for _, c in schema.cookies.select(txn)), key=lambda r: r["oid"])
            idx = {v: str(o) for v, o in schema.idx_cookies_by_value.select(txn)}
        lib_version = db._env.lib_version() if hasattr(db._env, "lib_version") else None
    except SystemExit:
        raise
    except Exception as e:
        ic.die("writing cookies failed: {}: {}".format(type(e).__name__, e))
    finally:
        ic.close_db(db)

    if [ic.dumps(r) for r in back] != sorted((ic.dumps(r) for r in records), key=lambda s: json.loads(s)["oid"]):
        ic.die("records read back through cfxdb differ from the records written")
    if idx != {r["value"]: r["oid"] for r in records}:
        ic.die("value index read back differs from the records written")

    try:
        off, versions, page_size = meta_versions(data_mdb)
    except (OSError, ValueError) as e:
        ic.die(str(e))

    for rec in records:
        ic.print_record(rec)
    info = {
        "format": versions[0],
        "magic_offset": off,
        "meta_versions": versions,
        "page_size": page_size,
        "lmdb_lib_version": list(lib_version) if lib_version else None,
        "zlmdb": zlmdb.__version__,
        "cookies": len(records),
    }
    print(json.dumps(info), file=sys.stderr)
    if any(v != 3 for v in versions):
        ic.die("LMDB data format version is {}, expected 3".format(versions))
    return 0


if __name__ == "__main__":
    sys.exit(main())
