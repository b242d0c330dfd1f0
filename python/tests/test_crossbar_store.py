"""cookiestore.crossbar.CookieStoreCookiestore against Crossbar.io 25.12.1's cookie store
interface, as router/protocol.py, router/session.py and worker/proxy.py call it."""

from __future__ import annotations

import pytest

from need import need  # noqa: E402

crossbar_cookiestore = need("crossbar.router.cookiestore")

import cookiestore  # noqa: E402
from cookiestore.crossbar import CROSSBAR_DEFAULT_MAX_AGE, CookieStoreCookiestore  # noqa: E402


class Proto:
    """A stand-in for WampWebSocketServerProtocol: counts sendClose()."""

    def __init__(self, name):
        self.name = name
        self.closed = 0

    def sendClose(self, *args, **kwargs):
        self.closed += 1

    def __repr__(self):
        return f"Proto({self.name})"


def section(**kw):
    store = {"type": "cookiestore", "path": "cookies", "maxsize": 10485760}
    store.update(kw.pop("store", {}))
    return dict({"name": "cbtid", "length": 24, "max_age": 600, "store": store}, **kw)


@pytest.fixture
def cs(tmp_path):
    return CookieStoreCookiestore(section(), str(tmp_path), poll_interval=None, purge_interval=None)


def test_is_a_crossbar_cookie_store(cs, tmp_path):
    assert isinstance(cs, crossbar_cookiestore.CookieStore)
    assert str(cs.store.path) == str(tmp_path / "cookies")  # relative to the node directory


def test_parse_is_crossbars(cs):
    assert cs.parse({"cookie": "theme=dark; cbtid=abc"}) == "abc"
    assert cs.parse({}) is None


def test_create_exists(cs):
    cbtid, header = cs.create()
    assert header == f"cbtid={cbtid};max-age=600"  # no attributes: Crossbar appends them
    assert isinstance(cbtid, str) and len(cbtid) == 24
    assert cs.exists(cbtid) and not cs.exists("nope")


def test_default_max_age_is_crossbars(tmp_path):
    cs = CookieStoreCookiestore({"store": {"type": "cookiestore", "path": "c"}}, str(tmp_path), poll_interval=None, purge_interval=None)
    assert cs.create()[1].endswith(f";max-age={CROSSBAR_DEFAULT_MAX_AGE}")


def test_get_set_del_auth_in_crossbars_argument_order(cs):
    cbtid, _ = cs.create()
    assert cs.getAuth(cbtid) == (None, None, None, None, None)
    assert cs.getAuth("unknown") == (None, None, None, None, None)
    # setAuth(cbtid, authid, authrole, authmethod, authextra, authrealm)
    assert cs.setAuth(cbtid, "alice", "user", "wampcra", {"x": 1}, "realm1") is True
    assert cs.setAuth(cbtid, "alice", "user", "wampcra", {"x": 1}, "realm1") is False
    assert cs.getAuth(cbtid) == ("alice", "user", "wampcra", "realm1", {"x": 1})
    assert cs.setAuth("unknown", "alice", "user", "wampcra", None, "realm1") is False
    # the proxy worker clears auth with all None
    assert cs.setAuth(cbtid, None, None, None, None, None) is True
    assert cs.getAuth(cbtid) == (None, None, None, None, None) and cs.exists(cbtid)
    assert cs.delAuth(cbtid) is True
    assert not cs.exists(cbtid) and cs.delAuth(cbtid) is False


def test_set_auth_with_bytes_is_logged_not_raised(cs):
    """Crossbar calls setAuth in onJoin: the login must go on; the cookie stays
    unauthenticated and the error is logged (the Python API raises AuthextraError)."""
    logged = []
    cs.log = type("L", (), {"error": lambda self, fmt, **kw: logged.append(kw), "info": lambda *a, **k: None})()
    cbtid, _ = cs.create()
    assert cs.setAuth(cbtid, "alice", "user", "wampcra", {"k": b"\x00"}, "realm1") is False
    assert cs.getAuth(cbtid) == (None, None, None, None, None)
    assert "bytes" in str(logged[0]["err"]) and logged[0]["authid"] == "alice"
    with pytest.raises(cookiestore.AuthextraError, match="bytes"):
        cs.store.authenticate(cbtid, "alice", authextra={"k": b"\x00"})


def test_protos_survive_del_auth_so_crossbar_kicks_them(cs):
    cbtid, _ = cs.create()
    a, b, c = Proto("a"), Proto("b"), Proto("c")
    assert cs.addProto(cbtid, a) == 1
    assert cs.addProto(cbtid, b) == 2
    assert cs.addProto(cbtid, c) == 3
    assert cs.dropProto(cbtid, c) == 2
    cs.setAuth(cbtid, "alice", "user", "wampcra", None, "realm1")
    # router/session.py onLeave(wamp.close.logout): delAuth, then kick getProtos but itself
    assert cs.delAuth(cbtid)
    kicked = [p for p in cs.getProtos(cbtid) if p is not a]
    assert set(kicked) == {b}  # Crossbar's database store returns [] here
    for p in kicked:
        p.sendClose()
    assert cs.dropProto(cbtid, b) == 1
    assert cs.dropProto(cbtid, a) == 0
    assert cs.getProtos(cbtid) == []


def test_revocations_from_another_store_close_local_connections(tmp_path):
    here = CookieStoreCookiestore(section(), str(tmp_path), poll_interval=None, purge_interval=None)
    there = CookieStoreCookiestore(section(), str(tmp_path), poll_interval=None, purge_interval=None)  # "another worker"
    here.start_polling(3600)  # creates the feed; polled by hand below
    here.stop_polling()
    mine, _ = here.create()
    theirs_only, _ = there.create()
    p1, p2, p3 = Proto("1"), Proto("2"), Proto("3")
    here.addProto(mine, p1)
    here.addProto(mine, p2)
    here.addProto(theirs_only, p3)
    assert here.poll_revocations() == 0
    there.delAuth(mine)
    assert here.poll_revocations() == 2
    assert (p1.closed, p2.closed, p3.closed) == (1, 1, 0)
    assert here.getProtos(mine) == []
    # logout by authid elsewhere (cookiestore logout --authid, or another worker)
    there.setAuth(theirs_only, "bob", "user", "wampcra", None, "realm1")
    there.store.logout_authid("bob")
    assert here.poll_revocations() == 1 and p3.closed == 1
    assert here.closed_by_feed == 3


def test_own_logout_is_not_closed_twice(tmp_path):
    cs = CookieStoreCookiestore(section(), str(tmp_path), poll_interval=None, purge_interval=None)
    cs.start_polling(3600)
    cs.stop_polling()
    cbtid, _ = cs.create()
    me, other = Proto("me"), Proto("other")
    cs.addProto(cbtid, me)
    cs.addProto(cbtid, other)
    cs.delAuth(cbtid)
    for p in cs.getProtos(cbtid):  # what Crossbar does right after delAuth
        if p is not me:
            p.sendClose()
    assert cs.poll_revocations() == 0  # the feed entry of our own logout is skipped
    assert (me.closed, other.closed) == (0, 1)


def test_expired_cookie_is_absent(tmp_path):
    import time

    cs = CookieStoreCookiestore(section(max_age=1), str(tmp_path), poll_interval=None, purge_interval=None)
    cbtid, _ = cs.create()
    cs.setAuth(cbtid, "alice", "user", "wampcra", None, "realm1")
    time.sleep(1.2)
    assert not cs.exists(cbtid)
    assert cs.getAuth(cbtid) == (None, None, None, None, None)


def test_checkconfig_hook(tmp_path):
    from crossbar.common.checkconfig import InvalidConfigException

    from cookiestore.launcher import Personality

    Personality.check_transport_cookie(Personality, section())
    Personality.check_transport_cookie(Personality, {"store": {"type": "memory"}})  # Crossbar's own
    for bad, fragment in [
        (section(store={"maxsize": 10}), "maxsize"),
        (section(store={"maxsze": 10}), "maxsze"),
        (section(store={"sync": "yes"}), "sync"),
        ({"store": {"type": "cookiestore"}}, "path"),
        (section(max_age=0), "max_age"),
        ({"store": {"type": "nosuch"}}, "nosuch"),
    ]:
        with pytest.raises(InvalidConfigException) as e:
            Personality.check_transport_cookie(Personality, bad)
        assert fragment in str(e.value), str(e.value)


def test_purge_on_the_reactor(tmp_path):
    from twisted.internet import task

    clock = task.Clock()
    cs = CookieStoreCookiestore(section(max_age=1), str(tmp_path), reactor=clock, poll_interval=10, purge_interval=60)
    cs.create()
    import time

    time.sleep(1.2)
    clock.advance(60)
    assert cs.purged == 1
    cs.stop()
    assert cs._poller is None and cs._purger is None
