"""Helpers that make stores and damage them from outside cookiestore: a store made in another
process (so that no handle of this one holds it), raw puts into data.mdb with zlmdb's own
LMDB (another program writing, as Crossbar.io does), and that program holding the store open."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from need import need

_MAKE = """
import sys
from cookiestore import CookieStore
store = CookieStore(sys.argv[1], sync=False)
for _ in range(int(sys.argv[2])):
    print(store.create()[0])
"""

# argv: store, key (hex; "none": no write), value (hex), and "hold" to keep the environment
# open until stdin closes (printing "open" once it is).
_RAW_PUT = """
import sys
from zlmdb import _lmdb_vendor as lmdb
env = lmdb.open(sys.argv[1], subdir=True, max_dbs=0, map_size=1 << 26)
with env.begin(write=sys.argv[2] != "none") as txn:
    if sys.argv[2] == "none":
        pass
    elif sys.argv[2] == "first-record":
        cursor = txn.cursor()
        assert cursor.set_range(bytes.fromhex(sys.argv[4]))
        key = cursor.key()
        if sys.argv[3] == "same":  # rewritten unchanged: a commit of another program
            sys.argv[3] = cursor.value().hex()
        print(key.hex(), flush=True)
    else:
        key = bytes.fromhex(sys.argv[2])
    if sys.argv[2] != "none":
        txn.put(key, bytes.fromhex(sys.argv[3]))
if sys.argv[-1] == "hold":
    print("open", flush=True)
    sys.stdin.read()
env.close()
"""


# Every helper runs Python with the store's parent directory as its working directory: `python
# -c` puts the working directory first on sys.path, and the tests run from python/, whose
# cookiestore/ source directory (without the built extension) would shadow the installed
# package.


def make_store(path: Path, cookies: int = 3) -> list[str]:
    """A store with `cookies` cookies, made by another process (no handle here holds it);
    their values."""
    out = subprocess.run(
        [sys.executable, "-c", _MAKE, str(path), str(cookies)], check=True,
        timeout=120,
        capture_output=True,
        text=True,
        cwd=path.parent,
    )
    return out.stdout.split()


def raw_put(path: Path, key: bytes, value: bytes) -> None:
    """Puts `key` = `value` into data.mdb with zlmdb's LMDB (another program's write)."""
    need("zlmdb")
    subprocess.run(
        [sys.executable, "-c", _RAW_PUT, str(path), key.hex(), value.hex()], check=True, timeout=60, cwd=path.parent
    )


def raw_put_first_record(path: Path, slot: int, value: bytes | None) -> bytes:
    """Overwrites the first record of table `slot` with `value` (None: with itself, a
    change cookiestore cannot itemize); returns its key."""
    need("zlmdb")
    new = "same" if value is None else value.hex()
    out = subprocess.run(
        [sys.executable, "-c", _RAW_PUT, str(path), "first-record", new, slot.to_bytes(2, "big").hex()],
        check=True,
        timeout=60,
        capture_output=True,
        text=True,
        cwd=path.parent,
    )
    return bytes.fromhex(out.stdout.split()[0])


def hold_open(path: Path) -> subprocess.Popen:
    """Another program (zlmdb's LMDB 0.9) with the store open; close its stdin to let it go."""
    need("zlmdb")
    proc = subprocess.Popen(
        [sys.executable, "-c", _RAW_PUT, str(path), "none", "", "hold"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=path.parent,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "open"
    return proc
