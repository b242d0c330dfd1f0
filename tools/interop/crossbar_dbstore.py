#!/usr/bin/env python3
"""Write a cookie store with Crossbar.io's own database cookie store, as a node would.

Run with the crossbar-today venv (<venv>-crossbar-today, made by setup.sh): Crossbar.io
25.12.1 with zlmdb 26.10.1 and cfxdb 26.6.1, what `pip install crossbar==25.12.1` installs
today. DBPATH must not hold a database yet. crossbar.router.cookiestore.
CookieStoreDatabaseBacked creates it (zlmdb 26: LMDB data format 3), and is driven as a router
drives it:

  1. create --count cookies (default 30) with store.create() (max_age --max-age, default 604800)
  2. authenticate two in three with store.setAuth(): unicode authids, roles, methods and
     realms, authextra None, {} or nested (lists, floats, 64-bit integers, unicode, None)
  3. re-authenticate every fourth authenticated one as someone else
  4. log out --logout cookies (default 6) with store.delAuth(), authenticated or not
  5. close; open the store again with max_age --short-max-age (default 60) and create
     --short cookies (default 6), authenticating every other one; close

Then the store is read back through cfxdb (zlmdb read-only), and Crossbar's own class answers
exists()/getAuth() for every value ever created (logged-out ones included) in a last,
read-only open (readonly=true, so that it writes nothing).

stdout: record JSON (see interop_common) of every cookie cfxdb reads back, sorted by oid.
stderr: one JSON line {"format": 3, "meta_versions": [3, 3], "created": [...], "logged_out":
[...], "short": [...], "crossbar": {value: [exists, [authid, authrole, authmethod, authrealm,
authextra]]}, "versions": {...}}.
Exit status: 0 on success; 1 on error (also when the format is not 3 or cfxdb's value index
is inconsistent); 3 "crossbar not installed".
"""

import argparse
import contextlib
import io
import json
import os
import sys

import interop_common as ic
from make_format3 import meta_versions


def config(dbpath, max_age, readonly=False):
    return {
        "type": "database",
        "name": "cbtid",
        "length": 24,
        "max_age": max_age,
        "store": {
            "type": "database",
            "path": dbpath,
            "purge_on_startup": False,
            "maxsize": ic.DEFAULT_MAXSIZE,
            "readonly": readonly,
            "sync": True,
        },
    }


def auth_for(i, again=False):
    """(authid, authrole, authmethod, authextra, authrealm) for the i-th authentication."""
    extras = [
        None,
        {},
        {"i": i, "plan": "pro"},
        {"i": i, "nested": {"list": [1, 2.5, "ü🎉", None, True], "empty": {}}, "big": 2**63 - 1, "neg": -(2**63)},
        {"名前": "ユーザー", "emoji": "🍪", "float": 1e-300},
    ]
    if again:
        return ("someone-else-{}".format(i), "admin", "wampcra", {"again": True, "i": i}, "realm2")
    return (
        ["alice", "bob", "ユーザー{}".format(i), "user-{}-🎉".format(i)][i % 4],
        ["user", "frontend", None][i % 3],
        ["wampcra", "ticket", "cookie", "scram"][i % 4],
        extras[i % len(extras)],
        ["realm1", "ré", None][i % 3],
    )


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dbpath", metavar="DBPATH", help="new database directory")
    p.add_argument("--count", type=int, default=30, help="cookies (default %(default)s)")
    p.add_argument("--logout", type=int, default=6, help="of those, logged out (default %(default)s)")
    p.add_argument("--max-age", type=int, default=604800, help="their max_age (default %(default)s)")
    p.add_argument("--short", type=int, default=6, help="short-lived cookies (default %(default)s)")
    p.add_argument("--short-max-age", type=int, default=60, help="their max_age (default %(default)s)")
    args = p.parse_args()
    if not 0 <= args.logout <= args.count:
        ic.die("need 0 <= --logout <= --count")

    ic.setup_stdout()
    # Crossbar and zlmdb print to stdout (zlmdb.Database.open): keep stdout for our JSON.
    chatter = io.StringIO()
    try:
        with contextlib.redirect_stdout(chatter):
            import cfxdb
            import crossbar
            import zlmdb
            from crossbar.router.cookiestore import CookieStoreDatabaseBacked
    except ImportError as e:
        print("crossbar not installed ({})".format(e), file=sys.stderr)
        return 3
    if os.path.exists(os.path.join(args.dbpath, "data.mdb")):
        ic.die("{} already holds a database: give a new path".format(args.dbpath))
    os.makedirs(args.dbpath, exist_ok=True)

    def opened(max_age, readonly=False):
        with contextlib.redirect_stdout(chatter):
            return CookieStoreDatabaseBacked(args.dbpath, config(args.dbpath, max_age, readonly))

    def close(store):
        with contextlib.redirect_stdout(chatter):
            store._db.__exit__(None, None, None)

    created, logged_out, short = [], [], []
    try:
        store = opened(args.max_age)
        with contextlib.redirect_stdout(chatter):
            for _ in range(args.count):
                created.append(store.create()[0])
            authenticated = [v for i, v in enumerate(created) if i % 3 != 2]
            for i, v in enumerate(authenticated):
                if not store.setAuth(v, *auth_for(i)):
                    ic.die("setAuth of a new cookie changed nothing")
            for i, v in enumerate(authenticated[::4]):
                if not store.setAuth(v, *auth_for(i, again=True)):
                    ic.die("re-authentication changed nothing")
            # Log out authenticated and unauthenticated cookies alike: every fifth one first.
            order = created[::5] + [v for v in created if v not in created[::5]]
            for v in order[: args.logout]:
                if not store.delAuth(v):
                    ic.die("delAuth found no cookie")
                logged_out.append(v)
        close(store)

        store = opened(args.short_max_age)
        with contextlib.redirect_stdout(chatter):
            for i in range(args.short):
                v = store.create()[0]
                short.append(v)
                if i % 2 == 0:
                    store.setAuth(v, *auth_for(100 + i))
        close(store)
    except SystemExit:
        raise
    except Exception as e:
        ic.die("driving CookieStoreDatabaseBacked failed: {}: {}".format(type(e).__name__, e))

    try:
        off, versions, page_size = meta_versions(os.path.join(args.dbpath, "data.mdb"))
    except (OSError, ValueError) as e:
        ic.die(str(e))

    # cfxdb's reading, read-only.
    db = ic.open_db(args.dbpath, readonly=True)
    try:
        schema = ic.attach_schema(db, readonly=True)
        records, index, problems, slots = ic.scan(db, schema)
    finally:
        ic.close_db(db)
    if problems:
        ic.die("cfxdb finds the store inconsistent: {}".format("; ".join(problems[:5])))

    # Crossbar's own answers, from a read-only open.
    answers = {}
    try:
        store = opened(args.max_age, readonly=True)
        with contextlib.redirect_stdout(chatter):
            for v in created + short:
                answers[v] = [bool(store.exists(v)), list(store.getAuth(v))]
        close(store)
    except Exception as e:
        ic.die("reading back with CookieStoreDatabaseBacked failed: {}: {}".format(type(e).__name__, e))

    for _, rec, _ in records:
        ic.print_record(rec)
    info = {
        "format": versions[0],
        "meta_versions": versions,
        "magic_offset": off,
        "page_size": page_size,
        "created": created,
        "logged_out": logged_out,
        "short": short,
        "slots": list(slots),
        "crossbar": answers,
        "versions": {"crossbar": crossbar.__version__, "zlmdb": zlmdb.__version__, "cfxdb": cfxdb.__version__},
    }
    print(json.dumps(info, ensure_ascii=False), file=sys.stderr)
    if any(v != 3 for v in versions):
        ic.die("LMDB data format version is {}, expected 3".format(versions))
    return 0


if __name__ == "__main__":
    sys.exit(main())
