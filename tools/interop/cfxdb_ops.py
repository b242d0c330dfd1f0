#!/usr/bin/env python3
"""Small cfxdb write operations on a cookie store, for turn-taking tests.

Each operation runs in its own zlmdb write transaction (committed before exit) through
cfxdb's CookieStoreSchema, so the value index is maintained by zlmdb exactly as Crossbar does.

  auth VALUE [--authid A] [--authrole R] [--authmethod M] [--authrealm REALM]
             [--authextra JSON] [--authenticated NS]
      Update an existing cookie's auth fields (an option left out leaves its field
      unchanged; an empty string clears it) and set authenticated = now (ns) or NS.
      Prints the updated record JSON.
  delete VALUE
      Delete the cookie with that value and its index entry. Prints {"deleted": VALUE, "oid": ...}.
  create VALUE [--max-age S] [--created NS] [--name NAME] [--oid UUID] [--allow-duplicate]
      Store a new cookie with a new oid (uuid4 unless --oid). Refuses a value that already
      exists unless --allow-duplicate (then the index entry silently moves to the new cookie,
      as zlmdb does). Prints the new record JSON.
  get VALUE
      Print the record JSON of the cookie with that value (read-only transaction).
  batch
      Read operations from stdin, one JSON object per line, and run them in order, each in
      its own transaction, on one open database (one Python start for many operations):
        {"op": "auth", "value": V, "authid": A, "authrole": R, "authmethod": M,
         "authrealm": REALM, "authextra": {...}, "authenticated": NS}
        {"op": "delete", "value": V}
        {"op": "create", "value": V, "max_age": S, "created": NS, "name": N, "oid": U,
         "allow_duplicate": true}
        {"op": "get", "value": V}
        {"op": "scan"}
      scan (batch only) reads every cookie and checks the value index both ways, as
      cfxdb_read.py does, and prints {"scan": [record, ...] sorted by oid, "index_entries": N,
      "problems": [...], "slots": [cookies, index]}; problems do not stop the batch.
      Keys are the options of the single operations (dashes as underscores); a key left out
      is the option left out. Prints one line per operation, as the single operation does.
      Stops at the first failing operation (exit 1; the earlier ones stay committed).

Exit status: 0 on success, 1 on error (e.g. no cookie with that value), 2 on usage errors.
"""

import argparse
import json
import sys
import time
import uuid

import interop_common as ic


def find(schema, txn, value):
    oid = schema.idx_cookies_by_value[txn, value]
    if oid is None:
        return None, None
    cookie = schema.cookies[txn, oid]
    if cookie is None:
        ic.die("index entry {!r} -> {} points at no cookie (inconsistent index)".format(value, oid))
    return oid, cookie


def op_auth(db, schema, args, np):
    with db.begin(write=True) as txn:
        oid, cookie = find(schema, txn, args.value)
        if cookie is None:
            ic.die("no cookie with value {!r}".format(args.value))
        for f in ("authid", "authrole", "authmethod", "authrealm"):
            v = getattr(args, f)
            if v is not None:
                setattr(cookie, f, v if v != "" else None)
        if args.authextra is not None:
            cookie.authextra = args.authextra
        ns = args.authenticated if args.authenticated is not None else time.time_ns()
        cookie.authenticated = np.datetime64(ns, "ns")
        schema.cookies[txn, oid] = cookie
        rec = ic.cookie_record(cookie)
    ic.print_record(rec)


def op_delete(db, schema, args, np):
    with db.begin(write=True) as txn:
        oid, cookie = find(schema, txn, args.value)
        if cookie is None:
            ic.die("no cookie with value {!r}".format(args.value))
        del schema.cookies[txn, oid]
    ic.print_record({"deleted": args.value, "oid": str(oid)})


def op_create(db, schema, args, np):
    _, cookiestore = ic.import_cfxdb()
    if not args.value:
        ic.die("a cookie value must not be empty (the value index is not nullable)", 2)
    with db.begin(write=True) as txn:
        oid, existing = find(schema, txn, args.value)
        if existing is not None and not args.allow_duplicate:
            ic.die("a cookie with value {!r} already exists (oid {})".format(args.value, oid))
        c = cookiestore.Cookie()
        c.oid = uuid.UUID(args.oid) if args.oid else uuid.uuid4()
        if schema.cookies[txn, c.oid] is not None:
            ic.die("a cookie with oid {} already exists".format(c.oid))
        c.created = np.datetime64(args.created if args.created is not None else time.time_ns(), "ns")
        c.max_age = args.max_age
        c.name = args.name
        c.value = args.value
        schema.cookies[txn, c.oid] = c
        rec = ic.cookie_record(c)
    ic.print_record(rec)


def op_get(db, schema, args, np):
    with db.begin() as txn:
        _, cookie = find(schema, txn, args.value)
        if cookie is None:
            ic.die("no cookie with value {!r}".format(args.value))
        rec = ic.cookie_record(cookie)
    ic.print_record(rec)


def batch_argv(dbpath, maxsize, line):
    """One JSON operation of a batch -> the argv of the single operation."""
    try:
        spec = json.loads(line)
    except ValueError as e:
        ic.die("batch: not a JSON object: {!r}: {}".format(line, e), 2)
    if isinstance(spec, dict) and spec.get("op") == "scan":
        return None
    if not isinstance(spec, dict) or "op" not in spec or "value" not in spec:
        ic.die("batch: each line needs \"op\" and \"value\" (or is {{\"op\": \"scan\"}}): {!r}".format(line), 2)
    argv = [dbpath, "--maxsize", str(maxsize), str(spec.pop("op")), str(spec.pop("value"))]
    for key, v in spec.items():
        flag = "--" + key.replace("_", "-")
        if v is True:
            argv.append(flag)
        elif v is False or v is None:
            continue
        elif isinstance(v, (dict, list)):
            argv += [flag, json.dumps(v)]
        else:
            argv += [flag, str(v)]
    return argv


def run_batch(parser, args):
    """Run the operations on stdin against one open database."""
    import numpy as np

    ops = []
    for line in sys.stdin:
        if line.strip():
            argv = batch_argv(args.dbpath, args.maxsize, line)
            ops.append(parser.parse_args(argv) if argv is not None else None)
    if any(o is not None and o.op == "batch" for o in ops):
        ic.die("batch: operations cannot be nested", 2)
    create = any(o is not None and o.op == "create" for o in ops)
    readonly = all(o is None or o.op == "get" for o in ops)
    db = ic.open_db(args.dbpath, readonly=readonly, maxsize=args.maxsize, create=create)
    try:
        schema = ic.attach_schema(db, readonly=readonly)
        for o in ops:
            if o is None:
                records, index, problems, slots = ic.scan(db, schema)
                out = {"scan": [r for _, r, _ in records], "index_entries": len(index), "problems": problems, "slots": list(slots)}
                print(ic.dumps(out))
                sys.stdout.flush()
                continue
            try:
                o.func(db, schema, o, np)
            except SystemExit:
                raise
            except Exception as e:
                ic.die("{} {!r} failed: {}: {}".format(o.op, o.value, type(e).__name__, e))
            sys.stdout.flush()
    finally:
        ic.close_db(db)
    return 0


def json_object(s):
    try:
        v = json.loads(s)
    except ValueError as e:
        raise argparse.ArgumentTypeError("not valid JSON: {}".format(e))
    if not isinstance(v, dict):
        raise argparse.ArgumentTypeError("must be a JSON object")
    return v


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dbpath", metavar="DBPATH", help="LMDB database directory")
    p.add_argument("--maxsize", type=int, default=ic.DEFAULT_MAXSIZE, metavar="BYTES", help="LMDB map size (default 1 GiB)")
    sub = p.add_subparsers(dest="op", metavar="OP", required=True)

    a = sub.add_parser("auth", help="update auth fields of an existing cookie, authenticated=now")
    a.add_argument("value", metavar="VALUE")
    a.add_argument("--authid")
    a.add_argument("--authrole")
    a.add_argument("--authmethod")
    a.add_argument("--authrealm")
    a.add_argument("--authextra", type=json_object, metavar="JSON", help="JSON object")
    a.add_argument("--authenticated", type=int, metavar="NS", help="timestamp in ns (default: now)")
    a.set_defaults(func=op_auth)

    d = sub.add_parser("delete", help="delete a cookie and its index entry")
    d.add_argument("value", metavar="VALUE")
    d.set_defaults(func=op_delete)

    c = sub.add_parser("create", help="create a new cookie")
    c.add_argument("value", metavar="VALUE")
    c.add_argument("--max-age", type=int, default=604800, metavar="S", help="seconds (default %(default)s)")
    c.add_argument("--created", type=int, metavar="NS", help="timestamp in ns (default: now)")
    c.add_argument("--name", default="cbtid", help="cookie name (default %(default)s)")
    c.add_argument("--oid", help="cookie oid (default: random uuid4)")
    c.add_argument("--allow-duplicate", action="store_true", help="store even if the value exists")
    c.set_defaults(func=op_create)

    g = sub.add_parser("get", help="print the record of a cookie")
    g.add_argument("value", metavar="VALUE")
    g.set_defaults(func=op_get)

    b = sub.add_parser("batch", help="run operations read from stdin as JSON lines")
    b.set_defaults(func=None)

    args = p.parse_args()
    if args.op == "batch":
        return run_batch(p, args)
    ic.setup_stdout()
    ic.import_cfxdb()
    import numpy as np

    readonly = args.op == "get"
    db = ic.open_db(args.dbpath, readonly=readonly, maxsize=args.maxsize, create=(args.op == "create"))
    try:
        schema = ic.attach_schema(db, readonly=readonly)
        try:
            args.func(db, schema, args, np)
        except SystemExit:
            raise
        except Exception as e:
            ic.die("{} failed: {}: {}".format(args.op, type(e).__name__, e))
    finally:
        ic.close_db(db)
    return 0


if __name__ == "__main__":
    sys.exit(main())
