"""Shared helpers of the cookiestore interop scripts (record JSON, opening databases).

Record JSON ("record JSON", as in shared/fixtures/cfxdb-db.expected.jsonl): one JSON object
per cookie, keys = cfxdb ``Cookie`` field names, sorted, ``json.dumps(sort_keys=True,
ensure_ascii=False)``:

- timestamps (created, authenticated, authenticated_joined_at) as integer ns since the epoch,
- uuids (oid, authenticated_on_node) as canonical lowercase strings,
- authextra / authenticated_transport_info as JSON objects (decoded CBOR),
- fields that cfxdb never writes (falsy: 0, "", None, {}) are left out,
- except ``authextra``: it is emitted (as ``{}`` when nothing is stored) whenever the cookie
  carries authentication, i.e. ``authid`` or ``authenticated`` is set. That is what the
  shared fixture does (its authenticated cookies with an empty authextra show ``{}``), and
  what a reader can reproduce: cfxdb itself returns ``{}`` for an absent authextra.
"""

import json
import os
import sys
import uuid

# Field order of the FlatBuffers Cookie table (vtable slot order).
FIELDS = (
    "oid",
    "created",
    "max_age",
    "name",
    "value",
    "authenticated",
    "authenticated_on_node",
    "authenticated_on_worker",
    "authenticated_transport_info",
    "authenticated_session",
    "authenticated_joined_at",
    "authenticated_authmethod",
    "authid",
    "authrole",
    "authmethod",
    "authrealm",
    "authextra",
)

TIMESTAMP_FIELDS = ("created", "authenticated", "authenticated_joined_at")
UUID_FIELDS = ("oid", "authenticated_on_node")
CBOR_FIELDS = ("authenticated_transport_info", "authextra")

# Crossbar's default maxsize for its database-backed cookie store (1 GiB). It only sizes the
# memory map: data.mdb does not grow to it.
DEFAULT_MAXSIZE = 1024 * 2**20


def die(msg, code=1):
    prog = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "interop"
    print("{}: error: {}".format(prog, msg), file=sys.stderr)
    sys.exit(code)


def _ns(v):
    """np.datetime64 / int / None -> int ns (0 for None)."""
    if v is None:
        return 0
    return int(v)


def cookie_record(cookie):
    """Record dict of a cfxdb Cookie (read from the database or built in memory)."""
    rec = {}
    for f in FIELDS:
        v = getattr(cookie, f)
        if f in TIMESTAMP_FIELDS:
            v = _ns(v)
        elif f in UUID_FIELDS:
            v = str(v) if v is not None else None
        elif f in ("max_age", "authenticated_session"):
            v = int(v) if v is not None else 0
        if f in CBOR_FIELDS:
            if v:
                rec[f] = v
        elif v:
            rec[f] = v
    if "authextra" not in rec and ("authid" in rec or "authenticated" in rec):
        rec["authextra"] = {}
    return rec


def dumps(rec):
    return json.dumps(rec, sort_keys=True, ensure_ascii=False)


def print_record(rec, out=None):
    out = out or sys.stdout
    out.write(dumps(rec) + "\n")


def setup_stdout():
    """UTF-8 stdout regardless of the locale (records hold emoji and CJK)."""
    try:
        sys.stdout.reconfigure(encoding="utf-8", errors="strict")
    except AttributeError:  # pragma: no cover
        pass


def import_cfxdb():
    try:
        import zlmdb  # noqa: F401
        from cfxdb import cookiestore  # noqa: F401
    except ImportError as e:
        die(
            "cannot import cfxdb/zlmdb ({}): run tools/interop/setup.sh and use the "
            "interop venv's python".format(e)
        )
    return zlmdb, cookiestore


def open_db(dbpath, readonly=False, maxsize=DEFAULT_MAXSIZE, create=True):
    """Open the LMDB environment at dbpath with zlmdb (lock=True, sync=True, subdir mode)."""
    zlmdb, _ = import_cfxdb()
    if readonly or not create:
        if not os.path.isfile(os.path.join(dbpath, "data.mdb")):
            die("no LMDB database at {} (missing data.mdb)".format(dbpath))
    try:
        # zlmdb.Database() directly: zlmdb.Database.open() prints to stdout.
        return zlmdb.Database(dbpath=dbpath, maxsize=maxsize, readonly=readonly, sync=True, create=create)
    except Exception as e:
        die("cannot open LMDB database at {}: {}: {}".format(dbpath, type(e).__name__, e))


def attach_schema(db, readonly=False):
    """Attach cfxdb's CookieStoreSchema; a missing table is created unless readonly."""
    _, cookiestore = import_cfxdb()
    try:
        return cookiestore.CookieStoreSchema.attach(db)
    except Exception as e:
        if readonly:
            die(
                "database {} has no cookie store tables (slot metadata for "
                "cfxdb.cookiestore Cookies/IndexCookiesByValue missing; attaching them "
                "read-only failed: {}: {})".format(db.dbpath, type(e).__name__, e)
            )
        die("cannot attach cfxdb CookieStoreSchema: {}: {}".format(type(e).__name__, e))


def scan(db, schema, verify=True):
    """Read every cookie and check the value index both ways, in one read transaction.

    Returns (records, index, problems, slots): records as [(key oid str, record dict, value)]
    in key order, index as {value: oid str}, problems as a list of messages (empty when the
    Cookies table and IndexCookiesByValue agree), slots as (cookies slot, index slot).
    """
    problems = []
    records = []
    index = {}
    try:
        with db.begin() as txn:
            for oid, cookie in schema.cookies.select(txn):
                try:
                    rec = cookie_record(cookie)
                except Exception as e:
                    problems.append("cookie {}: cannot decode: {}: {}".format(oid, type(e).__name__, e))
                    continue
                if rec.get("oid") != str(oid):
                    problems.append("cookie stored under key {} has oid field {!r}".format(oid, rec.get("oid")))
                records.append((str(oid), rec, cookie.value))
            if verify:
                for value, oid in schema.idx_cookies_by_value.select(txn):
                    index[value] = str(oid)
                for key_oid, rec, value in records:
                    if not value:
                        problems.append("cookie {} has no value (cannot be in the value index)".format(key_oid))
                        continue
                    ioid = index.get(value)
                    if ioid is None:
                        problems.append("cookie {} value {!r}: no index entry".format(key_oid, value))
                    elif ioid != key_oid:
                        problems.append("cookie {} value {!r}: index points at {} instead".format(key_oid, value, ioid))
                for value, ioid in sorted(index.items()):
                    c = schema.cookies[txn, uuid.UUID(ioid)]
                    if c is None:
                        problems.append("index entry {!r} -> {}: no such cookie".format(value, ioid))
                    elif c.value != value:
                        problems.append("index entry {!r} -> {}: that cookie's value is {!r}".format(value, ioid, c.value))
    except Exception as e:
        problems.append("reading the database failed: {}: {}".format(type(e).__name__, e))
    records.sort(key=lambda r: r[0])
    return records, index, problems, (schema.cookies._slot, schema.idx_cookies_by_value._slot)


def close_db(db):
    db.__exit__(None, None, None)


def parse_uuid(s):
    return uuid.UUID(s)
