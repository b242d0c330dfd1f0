#!/usr/bin/env python3
"""Read every cookie of a cfxdb cookie store and print record JSON lines, sorted by oid.

Opens the LMDB database read-only through zlmdb (lock=True, so lock.mdb is created if it is
missing; data.mdb is never written) and reads the Cookies table through cfxdb's
CookieStoreSchema. Then it verifies the value index (IndexCookiesByValue) both ways:

- every cookie has a value, and the index maps that value to the cookie's oid;
- every index entry points at an existing cookie whose value is the index key.

Exit status: 0 when everything is consistent; 1 (problems listed on stderr) otherwise, after
still printing the records that could be read.
"""

import argparse
import json
import sys

import interop_common as ic


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dbpath", metavar="DBPATH", help="LMDB database directory (holding data.mdb)")
    p.add_argument("--maxsize", type=int, default=ic.DEFAULT_MAXSIZE, metavar="BYTES", help="LMDB map size (default 1 GiB)")
    p.add_argument("--no-verify", action="store_true", help="skip the index verification")
    p.add_argument(
        "-v", "--verbose", action="store_true", help="print slot numbers and counts as JSON on stderr"
    )
    args = p.parse_args()

    ic.setup_stdout()
    db = ic.open_db(args.dbpath, readonly=True, maxsize=args.maxsize, create=False)
    schema = ic.attach_schema(db, readonly=True)

    try:
        records, index, problems, slots = ic.scan(db, schema, verify=not args.no_verify)
    finally:
        ic.close_db(db)

    for _, rec, _ in records:
        ic.print_record(rec)

    if args.verbose:
        print(
            json.dumps(
                {
                    "slot_cookies": slots[0],
                    "slot_index": slots[1],
                    "cookies": len(records),
                    "index_entries": len(index),
                    "problems": len(problems),
                }
            ),
            file=sys.stderr,
        )
    if problems:
        print("cfxdb_read.py: {} problem(s) in {}:".format(len(problems), args.dbpath), file=sys.stderr)
        for pr in problems:
            print("  - " + pr, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
