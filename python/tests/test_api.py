"""The Python API of cookiestore: types, errors, authextra, the revocation feed, the GIL."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest

import cookiestore
import cookiestore.crossbar
from cookiestore import CookieStore


@pytest.fixture
def store(tmp_path):
    return CookieStore(str(tmp_path / "store"), max_age=3600, maxsize=16 << 20)


def test_track_new_and_known(store):
    first = store.track(None)
    assert isinstance(first, cookiestore.Tracked)
    assert first.is_new and first.auth is None
    assert first.set_cookie == f"cbtid={first.value};max-age=3600"
    assert first.authid == first.value  # unauthenticated: the value is the authid
    again = store.track(f"theme=dark; cbtid={first.value}".encode())
    assert not again.is_new and again.value == first.value
    # str headers work too, and an unknown cookie gets a new one
    other = store.track("cbtid=unknown-value")
    assert other.is_new and other.value != first.value


def test_track_refuses_other_types(store):
    with pytest.raises(TypeError):
        store.track(42)


def test_authenticate_get_auth_roundtrip(store):
    value = store.track().value
    extra = {"a": [1, -2, 2.5, None, True, "x"], "nested": {"k": {"deep": [1]}}, "big": 2**63}
    assert store.authenticate(value, "alice", "user", "wampcra", "realm1", extra) == "written"
    assert store.authenticate(value, "alice", "user", "wampcra", "realm1", extra) == "unchanged"
    auth = store.get_auth(value)
    assert auth == ("alice", "user", "wampcra", "realm1", extra)
    assert isinstance(auth, tuple) and type(auth[4]["big"]) is int
    tracked = store.track(f"cbtid={value}")
    assert tracked.auth == auth and tracked.authid == "alice"
    assert store.authenticate("no-such-value", "bob") == "no-such-cookie"


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"": ""},
        {"f": [0.5, -0.0, 1.5, 65504.0, 1e-7, 3.4e38, 1.5e300, -2.5e-310, 0.1]},
        {"i": [0, 23, 24, 255, 256, 65535, 65536, 2**32, 2**63 - 1, 2**63, 2**64 - 1]},
        {"n": [-1, -24, -25, -256, -257, -(2**32), -(2**63)]},
        {"s": ["", "é", "日本", "x" * 300], "ü-key": {"": [[], {}, [None, False, True]]}},
        {"deep": [[[[[[[[[[{"x": 1}]]]]]]]]]]},
    ],
)
def test_authextra_from_the_cache_equals_a_read(tmp_path, extra):
    # A hit builds authextra straight from the cached CBOR, a read (cache off) through JSON:
    # both give what was stored, each call a fresh dict.
    path = str(tmp_path / "store")
    cached = CookieStore(path, max_age=3600)
    uncached = CookieStore(path, max_age=3600, cache_bytes=0)
    value = cached.track().value
    assert cached.authenticate(value, "alice", "user", None, "realm1", extra) == "written"
    assert cached.exists(value)  # a read, which caches it
    hits = cached.cache_stats()["hits"]
    got = cached.get_auth(value)
    assert cached.cache_stats()["hits"] == hits + 1, "not answered from the cache"
    assert got == uncached.get_auth(value) == ("alice", "user", None, "realm1", extra)
    assert repr(got[4]) == repr(extra)  # ints stay ints, floats floats, -0.0 its sign
    assert cached.lookup(value) == (True, got)
    got[4]["mutated"] = True
    assert cached.get_auth(value)[4] == extra, "a caller's change reached the cache"


def test_authextra_tuple_becomes_list(store):
    value = store.track().value
    store.authenticate(value, "alice", authextra={"t": (1, 2)})
    assert store.get_auth(value)[4] == {"t": [1, 2]}


@pytest.mark.parametrize(
    "extra, where",
    [
        ({"k": b"bytes"}, 'authextra["k"]'),
        ({"k": [1, bytearray(b"x")]}, 'authextra["k"][1]'),
        ({1: "non-str key"}, "authextra"),
        ({"k": 2**70}, 'authextra["k"]'),
        ({"k": float("nan")}, 'authextra["k"]'),
        ({"k": {1, 2}}, 'authextra["k"]'),
    ],
)
def test_authextra_refused_clearly(store, extra, where):
    value = store.track().value
    with pytest.raises(cookiestore.AuthextraError) as e:
        store.authenticate(value, "alice", authextra=extra)
    assert str(e.value).startswith(where + ":")
    assert isinstance(e.value, cookiestore.CookieStoreError)
    assert store.get_auth(value) is None  # nothing written


def test_clear_auth_keeps_the_cookie(store):
    value = store.track().value
    assert not store.clear_auth(value)
    store.authenticate(value, "alice", "user", "wampcra", "realm1")
    assert store.clear_auth(value)
    assert store.get_auth(value) is None and store.exists(value)


def test_logout_and_exists(store):
    value = store.track().value
    assert store.exists(value)
    assert store.logout(value)
    assert not store.exists(value) and not store.logout(value)
    assert store.track(f"cbtid={value}").is_new


def test_logout_authid(store):
    values = [store.track().value for _ in range(3)]
    for v in values[:2]:
        store.authenticate(v, "alice")
    store.authenticate(values[2], "bob")
    assert store.logout_authid("alice") == 2
    assert [store.exists(v) for v in values] == [False, False, True]


def test_create_returns_crossbar_pair(store):
    value, header = store.create()
    assert header == f"cbtid={value};max-age=3600"
    assert len(value) == 24 and store.exists(value)


def test_expiry_and_purge(tmp_path):
    s = CookieStore(str(tmp_path / "s"), max_age=1)
    value = s.track().value
    time.sleep(1.2)
    assert not s.exists(value)
    assert s.get_auth(value) is None
    assert s.track(f"cbtid={value}").is_new
    assert s.purge_expired() >= 1


def test_stats_and_its_dict(store):
    store.track()
    stats = store.stats()
    assert isinstance(stats, cookiestore.Stats)
    assert stats.live == 1 and stats.maxsize == 16 << 20
    assert all(isinstance(t, cookiestore.TableMeta) for t in stats.tables)
    d = stats.to_dict()
    assert d["live"] == 1 and d["maxsize"] == 16 << 20
    assert isinstance(d["tables"], list)


def test_attributes_and_properties(tmp_path):
    s = CookieStore(str(tmp_path / "s"), name="sid", length=32, max_age=60, http_strict=True, same_site="Lax")
    t = s.track()
    assert len(t.value) == 32
    assert t.set_cookie == f"sid={t.value};max-age=60;HttpOnly;SameSite=Lax"
    assert (s.name, s.length, s.max_age, s.readonly) == ("sid", 32, 60, False)
    assert s.path == tmp_path / "s"
    # create() leaves the attributes to Crossbar
    assert s.create()[1].endswith(";max-age=60")


def test_from_section_relative_to_node_dir(tmp_path):
    section = {
        "name": "cbtid",
        "max_age": 604800,
        "http_strict": True,
        "store": {"type": "cookiestore", "path": "cookies", "maxsize": 10485760, "sync": False},
    }
    s = CookieStore.from_section(section, str(tmp_path))
    assert str(s.path) == str(tmp_path / "cookies")
    assert s.max_age == 604800


@pytest.mark.parametrize(
    "section, fragment",
    [
        ({"max_agee": 1, "store": {"type": "cookiestore", "path": "c"}}, "max_agee"),
        ({"store": {"type": "cookiestore", "path": "c", "maxsize": 10}}, "maxsize"),
        ({"store": {"type": "memory"}}, "memory"),
        ({"store": {"type": "cookiestore"}}, "store.path"),
        ({"length": 3, "store": {"type": "cookiestore", "path": "c"}}, "length"),
        ({"name": "cbtid"}, "cookie.store"),
    ],
)
def test_config_errors_name_the_field(tmp_path, section, fragment):
    with pytest.raises(cookiestore.ConfigError) as e:
        CookieStore.from_section(section, str(tmp_path))
    assert fragment in str(e.value)
    if "store" in section:
        with pytest.raises(cookiestore.ConfigError):
            cookiestore.check_section(section)


def test_error_hierarchy(tmp_path):
    for name in [
        "ConfigError",
        "InvalidValueError",
        "StoreFullError",
        "ReadOnlyError",
        "CorruptStoreError",
        "StoreOpenError",
        "AuthextraError",
    ]:
        assert issubclass(getattr(cookiestore, name), cookiestore.CookieStoreError)
    assert issubclass(cookiestore.CookieStoreError, Exception)
    with pytest.raises(cookiestore.ConfigError):
        CookieStore(str(tmp_path / "x"), max_age=0)
    with pytest.raises(cookiestore.StoreOpenError):
        CookieStore(str(tmp_path / "missing"), readonly=True)
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(cookiestore.StoreOpenError):
        CookieStore(str(tmp_path / "file"))


def test_read_only_store_refuses_writes(tmp_path):
    path = str(tmp_path / "s")
    value = CookieStore(path).track().value
    ro = CookieStore(path, readonly=True)
    assert ro.exists(value)
    with pytest.raises(cookiestore.ReadOnlyError) as e:
        ro.logout(value)
    assert "read-only" in str(e.value)


def test_store_full(tmp_path):
    s = CookieStore(str(tmp_path / "s"), maxsize=128 * 1024, initial_mapsize=128 * 1024)
    with pytest.raises(cookiestore.StoreFullError) as e:
        for _ in range(100000):
            v = s.track().value
            s.authenticate(v, "alice", authextra={"pad": "x" * 2000})
    assert "maxsize" in str(e.value)


def test_revocation_feed(store):
    feed = store.revocation_feed()
    assert feed.poll() == ([], feed.position, False)
    a, b = store.track().value, store.track().value
    store.authenticate(b, "bob")
    store.logout(a)
    store.logout_authid("bob")
    entries, position, missed = feed.poll()
    # The auth change is in the feed too (for caches); the plug-in closes connections only
    # for the revoking kinds.
    kinds = [(e.kind, e.value) for e in entries]
    assert kinds == [("auth", b), ("logout", a), ("authid", b)]
    assert [e.revokes for e in entries] == [False, True, True]
    assert {k for k, _ in kinds} - {"auth"} <= cookiestore.crossbar.REVOKING_KINDS
    assert not missed and position == entries[-1].seq == feed.position
    assert feed.poll()[0] == []
    everything, _, _ = store.revocations_since(0)
    assert [e.value for e in everything] == [b, a, b]
    assert everything == entries  # the same entries, however read


def test_cache_answers_hits_and_sees_other_processes_at_once(tmp_path):
    """Lookups are answered from the process's cache; a change made by another process is
    seen by the very next lookup (the cache checks the store's last transaction first)."""
    path = str(tmp_path / "store")
    store = CookieStore(path, max_age=3600)
    value = store.track().value
    store.authenticate(value, "alice", "user", "wampcra", "realm1", {"plan": "pro"})
    for _ in range(10):
        assert store.get_auth(value)[0] == "alice" and store.exists(value)
    stats = store.cache_stats()
    assert stats["hits"] >= 15 and stats["entries"] == 1 and 0 < stats["hit_rate"] < 1
    assert 0 < stats["bytes"] <= stats["capacity_bytes"] == 384 << 20

    def other_process(code):
        subprocess.run(
            [sys.executable, "-c", f"import cookiestore; s = cookiestore.CookieStore({path!r}); {code}"],
            check=True,
            timeout=60,
            cwd=tmp_path,  # not python/: the source tree would shadow the installed package
        )

    other_process(f"s.authenticate({value!r}, 'bob', 'user', 'wampcra', 'realm1', {{}})")
    assert store.get_auth(value) == ("bob", "user", "wampcra", "realm1", {})
    assert store.get_auth(value)[0] == "bob"  # a cache hit again
    other_process(f"assert s.clear_auth({value!r})")
    assert store.get_auth(value) is None and store.exists(value)
    assert store.logout_authid("bob") == 0  # the authid no longer finds the cookie
    other_process(f"assert s.logout({value!r})")
    assert store.get_auth(value) is None and not store.exists(value)

    off = CookieStore(str(tmp_path / "off"), cache_bytes=0)
    v = off.track().value
    off.authenticate(v, "carol")
    assert off.get_auth(v)[0] == "carol"
    assert off.cache_stats()["hits"] == 0 and off.cache_stats()["capacity_bytes"] == 0


def test_two_stores_same_path_share_cookies(tmp_path):
    one = CookieStore(str(tmp_path / "s"))
    two = CookieStore(str(tmp_path / "s"))
    value = one.track().value
    assert two.exists(value)


def test_gil_released_two_threads_look_up_concurrently(store):
    """Two threads each look cookies up in a loop; while one is inside the library the other
    must be able to run Python code. Measured: a pure-Python counter thread keeps counting
    while LMDB lookups run (with the GIL held it could only run between calls, at the
    interpreter's switch interval), and two lookup threads both make progress."""
    values = [store.track().value for _ in range(50)]
    for v in values:
        store.authenticate(v, "alice", "user", "wampcra", "realm1", {"k": "v" * 100})
    stop = time.monotonic() + 1.0
    counts = [0, 0]
    errors = []

    def lookups(i):
        try:
            while time.monotonic() < stop:
                for v in values:
                    assert store.get_auth(v)[0] == "alice"
                    counts[i] += 1
        except Exception as e:  # pragma: no cover
            errors.append(e)

    threads = [threading.Thread(target=lookups, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert counts[0] > 100 and counts[1] > 100


def test_gil_released_during_a_long_call(tmp_path):
    """A thread spins a pure-Python counter while another thread is inside one long library
    call (logging out 20,000 cookies in one transaction, ~0.1-0.2 s). With the GIL held for
    the call, the counter could only move at the call's edges (a switch interval, 5 ms);
    released, it moves at its normal rate throughout."""
    s = CookieStore(str(tmp_path / "s"), sync=False)
    for _ in range(20000):
        s.authenticate(s.track().value, "many")
    counter = [0]
    stop = threading.Event()

    def spin():
        while not stop.is_set():
            counter[0] += 1

    spinner = threading.Thread(target=spin)
    spinner.start()
    try:
        # The spinner's rate while this thread only sleeps (sleep releases the GIL).
        c0, t0 = counter[0], time.perf_counter()
        time.sleep(0.1)
        rate = (counter[0] - c0) / (time.perf_counter() - t0)
        # The same while this thread is inside the library.
        c0, t0 = counter[0], time.perf_counter()
        assert s.logout_authid("many") == 20000
        during = time.perf_counter() - t0
        moved = counter[0] - c0
    finally:
        stop.set()
        spinner.join()
    assert during > 0.02, during
    print(f"spinner moved {moved} in {during:.3f}s inside the call; {rate * during:.0f} expected at its free rate")
    assert moved > 0.1 * rate * during, (moved, rate, during)


def test_a_store_url_section_checks_and_is_not_joined_to_the_node_dir(tmp_path):
    url = {"type": "cookiestore", "url": "redis://127.0.0.1:6379/0", "key_prefix": "cb1:", "timeout_ms": 1500}
    cookiestore.check_section({"name": "cbtid", "store": url})
    for store, field in [
        (dict(url, path="cookies"), "store.url"),  # both
        ({"type": "cookiestore"}, "store.url"),  # neither
        (dict(url, url="http://127.0.0.1:6379/0"), "store.url"),  # not Redis
    ]:
        with pytest.raises(cookiestore.ConfigError, match=field.replace(".", r"\.")):
            cookiestore.check_section({"store": store})
    # `location` is the directory as a string (for Redis, the URL without password).
    s = CookieStore.from_section({"store": {"type": "cookiestore", "path": "cookies"}}, str(tmp_path))
    assert s.location == str(tmp_path / "cookies")
