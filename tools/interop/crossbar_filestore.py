#!/usr/bin/env python3
"""Drive Crossbar.io's file-backed cookie store and show its deleted-cookies-come-back defect.

With crossbar.router.cookiestore.CookieStoreFileBacked (Crossbar 25.12.1) on OUTFILE (created
or appended to; pass a fresh path for a clean run):

  1. create --count cookies (default 20) with store.create()
  2. authenticate half of them with store.setAuth() (authid userI, role frontend, ticket,
     realm1, authextra {"i": I})
  3. re-authenticate some of those (every third authenticated one: authid userI-renamed,
     role admin, wampcra, authextra {"i": I, "renamed": true})
  4. log out --delete cookies (default 5) with store.delAuth(), both authenticated and not
  5. "restart": construct a new CookieStoreFileBacked on the same file (purge_on_startup false)

stdout: what the restarted Crossbar store believes, one JSON line per cookie sorted by cbtid,
keys authextra, authid, authmethod, authrealm, authrole, cbtid, created, max_age (the format
of shared/fixtures/crossbar-cookies.expected.jsonl). Because of the defect the deleted cookies
are back.
OUTFILE.expected.jsonl: the correct final state in the same format: deleted cookies removed.
stderr: a one-line JSON summary (created, deleted, after_restart, resurrected values).

Exit status: 0 on success (the defect is reported, not an error), 3 with "crossbar not
installed" when crossbar cannot be imported, 1 on other errors.
"""

import argparse
import contextlib
import io
import json
import os
import sys

KEYS = ("authextra", "authid", "authmethod", "authrealm", "authrole", "cbtid", "created", "max_age")


def state_lines(cookies):
    """cookies: {cbtid: cookie dict as Crossbar keeps it} -> sorted JSON lines."""
    out = []
    for cbtid in sorted(cookies):
        c = cookies[cbtid]
        rec = {k: c.get(k) for k in KEYS if k != "cbtid"}
        rec["cbtid"] = cbtid
        out.append(json.dumps(rec, sort_keys=True))
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("outfile", metavar="OUTFILE", help="cookie file for Crossbar's file store")
    p.add_argument("--count", type=int, default=20, help="cookies to create (default %(default)s)")
    p.add_argument("--delete", type=int, default=5, help="cookies to log out (default %(default)s)")
    p.add_argument("--max-age", type=int, default=604800, help="cookie max_age (default %(default)s)")
    args = p.parse_args()
    if args.count < 0 or args.delete < 0 or args.delete > args.count:
        print("crossbar_filestore.py: error: need 0 <= --delete <= --count", file=sys.stderr)
        return 2

    chatter = io.StringIO()
    try:
        with contextlib.redirect_stdout(chatter):
            from crossbar.router.cookiestore import CookieStoreFileBacked
    except ImportError as e:
        print("crossbar not installed ({})".format(e), file=sys.stderr)
        return 3

    config = {
        "type": "file",
        "name": "cbtid",
        "length": 24,
        "max_age": args.max_age,
        "store": {"type": "file", "filename": os.path.basename(args.outfile), "purge_on_startup": False},
    }

    try:
        with contextlib.redirect_stdout(chatter):
            store = CookieStoreFileBacked(args.outfile, config)
            preexisting = set(store._cookies)
            created = []
            for _ in range(args.count):
                cbtid, _header = store.create()
                created.append(cbtid)

            authenticated = created[::2]
            for i, cbtid in enumerate(created):
                if cbtid in authenticated:
                    store.setAuth(cbtid, "user{}".format(i), "frontend", "ticket", {"i": i}, "realm1")
            for i, cbtid in enumerate(created):
                if cbtid in authenticated[::3]:
                    store.setAuth(cbtid, "user{}-renamed".format(i), "admin", "wampcra", {"i": i, "renamed": True}, "realm1")

            # log out: alternate between authenticated and unauthenticated cookies
            unauth = [c for c in created if c not in authenticated]
            to_delete = []
            a, u = list(authenticated), list(unauth)
            while len(to_delete) < args.delete:
                src = a if (len(to_delete) % 2 == 0 and a) or not u else u
                to_delete.append(src.pop(0))
            for cbtid in to_delete:
                if not store.delAuth(cbtid):
                    raise RuntimeError("delAuth({}) returned False".format(cbtid))

            # correct state: what the store held in memory before the restart
            expected = {k: dict(v) for k, v in store._cookies.items()}
            store._cookie_file.close()

            # "restart"
            store2 = CookieStoreFileBacked(args.outfile, config)
            believed = {k: dict(v) for k, v in store2._cookies.items()}
            store2._cookie_file.close()
    except Exception as e:
        print("crossbar_filestore.py: error: {}: {}".format(type(e).__name__, e), file=sys.stderr)
        return 1

    for line in state_lines(believed):
        print(line)
    with open(args.outfile + ".expected.jsonl", "w") as f:
        for line in state_lines(expected):
            f.write(line + "\n")

    resurrected = sorted(set(believed) - set(expected))
    print(
        json.dumps(
            {
                "preexisting": len(preexisting),
                "created": len(created),
                "authenticated": len(authenticated),
                "deleted": len(to_delete),
                "expected": len(expected),
                "after_restart": len(believed),
                "resurrected": resurrected,
            }
        ),
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
