#!/usr/bin/env python3
"""Ask Crossbar.io's own database-backed cookie store about cookie values.

Opens DBPATH with crossbar.router.cookiestore.CookieStoreDatabaseBacked (Crossbar 25.12.1),
configured with purge_on_startup=false (true would wipe the database!), readonly=false
(Crossbar always attaches the schema, which writes slot metadata into an empty database),
and prints for each VALUE one JSON line:

  {"value": V, "exists": bool, "auth": [authid, authrole, authmethod, authrealm, authextra]}

"exists" comes from store.exists(V), "auth" from store.getAuth(V): all null for an unknown
value; for a known cookie, absent strings are null and an absent authextra is {} (cfxdb).

Exit status: 0 on success, 3 with "crossbar not installed" when crossbar cannot be imported,
1 on other errors.
"""

import argparse
import contextlib
import io
import json
import os
import sys

import interop_common as ic


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dbpath", metavar="DBPATH", help="LMDB database directory (holding data.mdb)")
    p.add_argument("values", metavar="VALUE", nargs="+", help="cookie values to look up")
    p.add_argument("--maxsize", type=int, default=ic.DEFAULT_MAXSIZE, metavar="BYTES", help="store maxsize (default 1 GiB)")
    p.add_argument("--readonly", action="store_true", help="open the store with readonly=true")
    args = p.parse_args()

    ic.setup_stdout()
    # crossbar/zlmdb write chatter (zlmdb.Database.open prints) to stdout: keep stdout for our JSON.
    chatter = io.StringIO()
    try:
        with contextlib.redirect_stdout(chatter):
            from crossbar.router.cookiestore import CookieStoreDatabaseBacked
    except ImportError as e:
        print("crossbar not installed ({})".format(e), file=sys.stderr)
        return 3

    if not os.path.isfile(os.path.join(args.dbpath, "data.mdb")):
        ic.die("no LMDB database at {} (missing data.mdb)".format(args.dbpath))

    config = {
        "type": "database",
        "name": "cbtid",
        "length": 24,
        "max_age": 604800,
        "store": {
            "type": "database",
            "path": args.dbpath,
            "purge_on_startup": False,
            "maxsize": args.maxsize,
            "readonly": args.readonly,
            "sync": True,
        },
    }
    try:
        with contextlib.redirect_stdout(chatter):
            store = CookieStoreDatabaseBacked(args.dbpath, config)
    except Exception as e:
        ic.die("cannot open Crossbar's CookieStoreDatabaseBacked on {}: {}: {}".format(args.dbpath, type(e).__name__, e))

    try:
        for v in args.values:
            with contextlib.redirect_stdout(chatter):
                exists = store.exists(v)
                auth = store.getAuth(v)
            # key order as documented: value, exists, auth
            print(json.dumps({"value": v, "exists": bool(exists), "auth": list(auth)}, ensure_ascii=False))
    finally:
        with contextlib.redirect_stdout(chatter):
            store._db.__exit__(None, None, None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
