#!/usr/bin/env python3
"""Write N random cookies with cfxdb's CookieStoreSchema and print their record JSON.

The database at DBPATH is created if missing (zlmdb 25.12 creates LMDB data format 1); an
existing database gets the cookies added. Each line printed on stdout is the record JSON of
one cookie written, in write order (see interop_common.py for the record JSON rules).

Content is random but reproducible for a given --seed (oids included): unicode strings with
emoji, CJK, RTL, combining marks, control characters and NUL, some empty strings, some 0
numbers, nested CBOR (dicts, lists, ints, floats, bools, None) in authextra and
authenticated_transport_info, values of 6..64 base64-alphabet characters, max_age from
0 and small values up to 2**64-1, created around 2026-11-22 (ns).
"""

import argparse
import random
import sys
import uuid

import interop_common as ic

B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

# 2026-11-22T00:00:00Z in ns
BASE_NS = 1795305600 * 10**9
DAY_NS = 86400 * 10**9

CHAR_POOLS = [
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
    "-_.:@/+=~ ",
    "äöüßéèñçøåÄÖÜŁœ",
    "漢字テストユーザー管理者한국어中文",
    "😀🍪🚀🔐✅👍🏽",
    "שלוםمرحبا",
    "e\u0301a\u0308",
    "\"\\'\t\n\r{}[]<>;,",
    "\u0000\u0007\u001f\u007f\u00a0\u2028\ufeff\U0001f9d1\u200d\U0001f4bb",
]
POOL_WEIGHTS = [40, 8, 8, 8, 6, 3, 2, 3, 1]

MAX_AGES = [0, 1, 60, 3600, 86400, 604800, 2592000, 31536000, 315360000, 2**31 - 1, 2**32, 2**53, 2**63 - 1, 2**64 - 1]


def rand_text(rng, min_len=0, max_len=24):
    n = rng.randint(min_len, max_len)
    out = []
    for _ in range(n):
        pool = rng.choices(CHAR_POOLS, weights=POOL_WEIGHTS)[0]
        out.append(rng.choice(pool))
    return "".join(out)


def maybe_text(rng, p_empty=0.1, min_len=1, max_len=24):
    """A string, empty with probability p_empty (cfxdb does not store empty strings)."""
    if rng.random() < p_empty:
        return ""
    return rand_text(rng, min_len, max_len)


def rand_float(rng):
    return rng.choice(
        [0.0, -0.0, 1.5, -2.25, 1e-300, 1.7976931348623157e308, 3.141592653589793, rng.uniform(-1e6, 1e6), float(rng.randint(-5, 5))]
    )


def rand_int(rng):
    return rng.choice([0, 1, -1, 23, 24, 255, 256, 65535, 65536, -65537, 2**31, 2**53 + 1, -(2**63), 2**63 - 1, rng.randint(-10**9, 10**9)])


def rand_cbor(rng, depth=0):
    kinds = ["int", "float", "bool", "none", "str"]
    if depth < 3:
        kinds += ["list", "dict"]
    kind = rng.choice(kinds)
    if kind == "int":
        return rand_int(rng)
    if kind == "float":
        return rand_float(rng)
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "none":
        return None
    if kind == "str":
        return rand_text(rng, 0, 16)
    if kind == "list":
        return [rand_cbor(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return rand_dict(rng, depth + 1, rng.randint(0, 4))


def rand_dict(rng, depth=0, n=None):
    if n is None:
        n = rng.randint(1, 5)
    d = {}
    for _ in range(n):
        d[rand_text(rng, 0, 12)] = rand_cbor(rng, depth)
    return d


def rand_transport_info(rng, i):
    d = {
        "type": rng.choice(["websocket", "rawsocket", "longpoll", "mqtt"]),
        "peer": "tcp4:127.0.0.1:{}".format(40000 + i % 20000),
        "protocol": rng.choice(["wamp.2.json", "wamp.2.cbor", "wamp.2.msgpack"]),
        "http_headers_received": {"user-agent": "Mozilla/5.0 " + rand_text(rng, 0, 12), "host": "localhost:8080"},
    }
    if rng.random() < 0.5:
        d.update(rand_dict(rng, 1, rng.randint(1, 3)))
    return d


def rand_value(rng, taken):
    while True:
        v = "".join(rng.choice(B64) for _ in range(rng.randint(6, 64)))
        if v not in taken:
            taken.add(v)
            return v


def make_cookie(rng, i, value, cookiestore, np):
    c = cookiestore.Cookie()
    c.oid = uuid.UUID(int=rng.getrandbits(128), version=4)
    created = BASE_NS + rng.randint(-2 * DAY_NS, 2 * DAY_NS)
    if rng.random() < 0.05:
        created = 0
    c.created = np.datetime64(created, "ns")
    c.max_age = rng.choice(MAX_AGES)
    c.name = rng.choice(["cbtid", "cbtid", "cbtid", "my_cookie", ""]) if rng.random() < 0.9 else rand_text(rng, 1, 10)
    c.value = value

    profile = rng.random()
    if profile < 0.3:
        # unauthenticated cookie, as created by Crossbar
        return c
    full = profile >= 0.6  # every field non-empty; otherwise random subset of empty / 0 values

    def pick(gen, p_empty=0.25):
        if not full and rng.random() < p_empty:
            return None
        return gen()

    authenticated = max(created, BASE_NS) + rng.randint(0, 3600 * 10**9)
    c.authenticated = np.datetime64(pick(lambda: authenticated) or 0, "ns")
    node = pick(lambda: uuid.UUID(int=rng.getrandbits(128), version=4))
    if node is not None and rng.random() < 0.03:
        node = uuid.UUID(int=0)
    c.authenticated_on_node = node
    c.authenticated_on_worker = pick(lambda: maybe_text(rng, 0.0 if full else 0.1, 1, 16))
    c.authenticated_transport_info = pick(lambda: rand_transport_info(rng, i)) or ({} if rng.random() < 0.5 else None)
    c.authenticated_session = pick(lambda: rng.choice([rng.randint(1, 2**53), 2**53, 2**64 - 1])) or 0
    c.authenticated_joined_at = np.datetime64(pick(lambda: authenticated + rng.randint(0, 10**9)) or 0, "ns")
    c.authenticated_authmethod = pick(lambda: rng.choice(["wampcra", "ticket", "scram", "cryptosign", "anonymous", rand_text(rng, 1, 10)]))
    c.authid = pick(lambda: maybe_text(rng, 0.0 if full else 0.1, 1, 20))
    c.authrole = pick(lambda: rng.choice(["frontend", "backend", "admin", "anonymous", rand_text(rng, 1, 12)]))
    c.authmethod = pick(lambda: rng.choice(["cookie", "cookie", rand_text(rng, 1, 8)]))
    c.authrealm = pick(lambda: rng.choice(["realm1", "com.example.app", rand_text(rng, 1, 16)]))
    ae = pick(lambda: rand_dict(rng))
    if ae is None:
        ae = rng.choice([None, {}])
    c.authextra = ae
    return c


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dbpath", metavar="DBPATH", help="LMDB database directory (created if missing)")
    p.add_argument("--count", "-n", type=int, required=True, metavar="N", help="number of cookies to write")
    p.add_argument("--seed", "-s", type=int, required=True, metavar="S", help="random seed")
    p.add_argument(
        "--maxsize",
        type=int,
        default=ic.DEFAULT_MAXSIZE,
        metavar="BYTES",
        help="LMDB map size (default %(default)s = 1 GiB, Crossbar's default)",
    )
    p.add_argument("--batch", type=int, default=1000, help="cookies per write transaction (default %(default)s)")
    args = p.parse_args()
    if args.count < 0:
        ic.die("--count must be >= 0")
    if args.batch < 1:
        ic.die("--batch must be >= 1")

    ic.setup_stdout()
    zlmdb, cookiestore = ic.import_cfxdb()
    import numpy as np

    rng = random.Random(args.seed)
    db = ic.open_db(args.dbpath, readonly=False, maxsize=args.maxsize, create=True)
    schema = ic.attach_schema(db)

    # values already present, so that new ones are unique
    taken = set()
    with db.begin() as txn:
        for value in schema.idx_cookies_by_value.select(txn, return_values=False):
            taken.add(value)

    records = []
    try:
        written = 0
        while written < args.count:
            n = min(args.batch, args.count - written)
            with db.begin(write=True) as txn:
                for k in range(n):
                    i = written + k
                    c = make_cookie(rng, i, rand_value(rng, taken), cookiestore, np)
                    schema.cookies[txn, c.oid] = c
                    records.append(ic.cookie_record(c))
            written += n
    except Exception as e:
        ic.die("writing cookies failed after {} cookies: {}: {}".format(len(records), type(e).__name__, e))
    finally:
        ic.close_db(db)

    for rec in records:
        ic.print_record(rec)
    return 0


if __name__ == "__main__":
    sys.exit(main())
