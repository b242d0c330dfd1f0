#!/usr/bin/env python3
"""Try to open an LMDB environment with one of zlmdb's bundled LMDB engines, and report.

Opens DBPATH (a directory holding data.mdb) with zlmdb's low-level binding
(zlmdb._lmdb_vendor.open, i.e. py-lmdb's API), read-only with lock=True, begins a read
transaction (which takes a reader slot in lock.mdb), reads the main database's entry count
and closes it. It never writes data.mdb. With zlmdb 26 (the -z26 venv),
--engine picks the engine: 0 = LMDB 0.9.36 (data format 1), 1 = LMDB 1.0.2 (data format 3);
without it the engine is chosen from the data file's format. zlmdb 25.12 has one engine
(LMDB 0.9.33) and ignores --engine 0 (any other value is an error there).

stdout: one JSON line {"opened": bool, "entries": N or null, "engine": [major, minor, patch]
or null, "error": "ExceptionName: message" or null, "lock_format": "0x...." or null}.
"lock_format" is the second uint32 of lock.mdb after the attempt (LMDB's lock file format
signature). Exit status 0 whether or not it opened (the JSON says); 2 on usage errors.
"""

import argparse
import json
import os
import struct
import sys


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dbpath", metavar="DBPATH", help="LMDB environment directory")
    p.add_argument("--engine", type=int, choices=(0, 1), help="LMDB major version of the engine (zlmdb 26)")
    args = p.parse_args()

    from zlmdb import _lmdb_vendor as lmdb

    kwargs = {"map_size": 1 << 30, "readonly": True, "subdir": True, "lock": True}
    if args.engine is not None:
        try:
            lmdb.version(lib_version=args.engine)
            kwargs["lib_version"] = args.engine
        except TypeError:
            if args.engine != 0:
                print("lmdb_probe.py: error: this zlmdb has no LMDB {}.x engine".format(args.engine), file=sys.stderr)
                return 2
    result = {"opened": False, "entries": None, "engine": None, "error": None, "lock_format": None}
    try:
        env = lmdb.open(args.dbpath, **kwargs)
        result["opened"] = True
        result["engine"] = list(env.lib_version()) if hasattr(env, "lib_version") else list(lmdb.version())
        with env.begin():
            result["entries"] = env.stat()["entries"]
        env.close()
    except Exception as e:
        result["error"] = "{}: {}".format(type(e).__name__, e)
    try:
        with open(os.path.join(args.dbpath, "lock.mdb"), "rb") as f:
            result["lock_format"] = "0x{:08x}".format(struct.unpack("<II", f.read(8))[1])
    except (OSError, struct.error):
        pass
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
