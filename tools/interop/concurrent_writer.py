#!/usr/bin/env python3
"""Create and read back cookies through cfxdb in a loop, for concurrency tests.

For S seconds: create a cookie with value PREFIX + counter (0, 1, 2, ...) in its own write
transaction, then, in its own read transaction, read back a random cookie created so far by
this process (index lookup by value, then the cookie by oid) and check its value and oid.
Runs against a database another process (e.g. the Rust cookiestore) uses at the same time:
LMDB's lock file (lock=True) serializes the writers. With --ready-file PATH, PATH exists exactly
while the database is open (created after opening, removed before closing). Opening fails with
VersionMismatchError when the store is held open by an LMDB whose lock file format differs
(for example cookiestore's LMDB, see docs/interop.md): exit 1, message on stderr.

At the end prints one JSON object on stdout:
  {"created": [values...], "errors": [messages...], "reads": N, "seconds": S}
"created" lists the values whose write transaction committed, in order. Exit status 0 even
with errors (they are reported in "errors"); 1 on setup failure.
"""

import argparse
import json
import os
import random
import sys
import time
import uuid

import interop_common as ic

MAX_ERRORS = 200


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dbpath", metavar="DBPATH", help="LMDB database directory (created if missing)")
    p.add_argument("--seconds", type=float, required=True, metavar="S", help="how long to run")
    p.add_argument("--prefix", required=True, metavar="P", help="value prefix (must not be empty)")
    p.add_argument("--max-age", type=int, default=604800, metavar="S", help="max_age of created cookies")
    p.add_argument("--maxsize", type=int, default=ic.DEFAULT_MAXSIZE, metavar="BYTES", help="LMDB map size (default 1 GiB)")
    p.add_argument("--seed", type=int, default=None, help="seed for the choice of cookies read back")
    p.add_argument(
        "--ready-file",
        metavar="PATH",
        help="create PATH once the database is open and the schema attached (before the loop), "
        "and remove it just before the database is closed: while PATH exists, this process "
        "holds the database open",
    )
    args = p.parse_args()
    if not args.prefix:
        ic.die("--prefix must not be empty", 2)

    ic.setup_stdout()
    _, cookiestore = ic.import_cfxdb()
    import numpy as np

    rng = random.Random(args.seed)
    db = ic.open_db(args.dbpath, readonly=False, maxsize=args.maxsize, create=True)
    schema = ic.attach_schema(db)
    if args.ready_file:
        with open(args.ready_file, "w") as f:
            f.write("ready\n")

    created = []
    oids = {}
    errors = []
    reads = 0

    def err(msg):
        if len(errors) < MAX_ERRORS:
            errors.append(msg)
        elif len(errors) == MAX_ERRORS:
            errors.append("... more errors dropped")

    t0 = time.monotonic()
    counter = 0
    try:
        while time.monotonic() - t0 < args.seconds:
            value = "{}{}".format(args.prefix, counter)
            counter += 1
            c = cookiestore.Cookie()
            c.oid = uuid.uuid4()
            c.created = np.datetime64(time.time_ns(), "ns")
            c.max_age = args.max_age
            c.name = "cbtid"
            c.value = value
            try:
                with db.begin(write=True) as txn:
                    schema.cookies[txn, c.oid] = c
                created.append(value)
                oids[value] = c.oid
            except Exception as e:
                err("create {!r}: {}: {}".format(value, type(e).__name__, e))
                continue

            probe = rng.choice(created)
            try:
                with db.begin() as txn:
                    oid = schema.idx_cookies_by_value[txn, probe]
                    if oid is None:
                        err("read {!r}: not in the value index".format(probe))
                    elif oid != oids[probe]:
                        err("read {!r}: index points at {}, created as {}".format(probe, oid, oids[probe]))
                    else:
                        cookie = schema.cookies[txn, oid]
                        if cookie is None:
                            err("read {!r}: index -> {} but no such cookie".format(probe, oid))
                        elif cookie.value != probe:
                            err("read {!r}: cookie {} has value {!r}".format(probe, oid, cookie.value))
                reads += 1
            except Exception as e:
                err("read {!r}: {}: {}".format(probe, type(e).__name__, e))
    finally:
        if args.ready_file:
            os.remove(args.ready_file)
        ic.close_db(db)

    print(
        json.dumps(
            {"created": created, "errors": errors, "reads": reads, "seconds": round(time.monotonic() - t0, 3)},
            ensure_ascii=False,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
