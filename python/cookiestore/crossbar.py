"""A Crossbar.io 25.12.1 cookie store on cookiestore.

:class:`CookieStoreCookiestore` implements the interface Crossbar.io's router and proxy
workers use (``crossbar.router.cookiestore.CookieStore``): ``parse`` (inherited), ``exists``,
``create``, ``getAuth``, ``setAuth``, ``delAuth``, ``addProto``, ``dropProto``,
``getProtos``. It differs from Crossbar's own stores where they are wrong:

- cookies expire: a cookie past ``max_age`` is absent (challenged, and a new cookie is set);
- a logout closes the cookie's other connections: ``getProtos`` still returns the
  connections of a cookie that ``delAuth`` just deleted (the registry is per process and
  never consults the store), so Crossbar's own kick loop after ``delAuth`` reaches them;
- a logout on another worker (or by ``cookiestore logout``) closes this worker's connections
  of that cookie too: the library's ``Watcher`` reads the store's revocation feed on its own
  thread (every ``poll_interval`` seconds, 0.1 by default; on Redis also at once when a
  logout is published) and hands the revocations to the reactor (``callFromThread``); the
  connections are the library's ``Connections`` registry;
- expired cookies are purged every ``purge_interval`` seconds (1 hour by default; with several
  workers, each purges, which is harmless: a purge with nothing expired writes nothing).

**The store never stops the router** (``background=True``, as the launcher builds it):
nothing on the reactor waits for the network or for LMDB's writer lock.

- A new connection's store calls (the lookup of its cookie, or the creation of a new one)
  run on a thread; the launcher's protocol (:mod:`cookiestore.launcher`) answers the
  WebSocket handshake when they are done (``onConnect`` returns a Deferred), and Crossbar's
  own ``onConnect`` then gets their answers from :meth:`answering`.
- Logins (``setAuth``) and logouts (``delAuth``) run on one writer thread, in order; the
  reactor waits at most ``write_wait`` (30 ms) for a login's answer (so that, as before, a
  login is stored before its WELCOME reaches the client) and ``logout_wait`` (100 ms) for a
  logout's, then lets it finish in the background.
- The periodic purge runs on a thread; the feed on the library's watcher thread.
- **While the store is unavailable** (Redis down or hung: the library's circuit breaker,
  :meth:`cookiestore.CookieStore.health`), a new connection is served without a usable
  cookie at once: its cookie is neither looked up nor replaced (no ``Set-Cookie``), so the
  transport's other authentication methods (WAMP-CRA, ticket, anonymous) log it in; a login
  is not stored in its cookie (logged); a logout raises, so that Crossbar does not report
  it applied (the client's connection is failed with the error). Established sessions go
  on. One warning when an outage starts, one when it ends (:class:`StoreOutage`).
- A Redis store is opened with ``connect_lazily`` (unless the section says
  ``"connect_lazily": false``), so a worker starts while Redis is down.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import datetime
import itertools
import os
import time
from typing import Any, Callable, Dict, Iterator, List, Optional, Set, Tuple

from crossbar.router.cookiestore import CookieStore as _CrossbarCookieStore
from twisted.python.failure import Failure
from txaio import make_logger

from . import (
    REVOKING_KINDS,
    AuthextraError,
    Connections,
    CookieStore,
    CookieStoreError,
    InvalidValueError,
    NotReplicatedError,
    Revocation,
    UnavailableError,
    parse_location,
)

__all__ = ["CookieStoreCookiestore", "CROSSBAR_DEFAULT_MAX_AGE", "StoreOutage", "Prepared"]

#: Crossbar.io's ``CookieStore`` uses 7 days when a cookie section has no ``max_age``
#: (its docs say 1 day; the code says 7); this class does as the code does.
CROSSBAR_DEFAULT_MAX_AGE = 86400 * 7

_NO_AUTH = (None, None, None, None, None)


# REVOKING_KINDS (imported above, from the library's RevocationKind::revokes): the feed entry
# kinds that revoke a cookie (its connections are closed); the others only tell caches what
# changed. Each entry says it too (Revocation.revokes).

#: While the store stays unavailable, one line every this many seconds says so (with a count).
OUTAGE_REPORT_INTERVAL = 60.0

#: How often (seconds) a worker looks at the store's health (no round trip).
HEALTH_INTERVAL = 0.5

#: The longest the reactor waits for a login's write to be answered (seconds).
WRITE_WAIT = 0.03

#: The longest the reactor waits for a logout to be answered (seconds); a logout not
#: answered by then raises (not confirmed), so it gets more time than a login.
LOGOUT_WAIT = 0.1

#: Threads for the store calls of new connections (lookups, creates) per store object.
CONNECT_THREADS = 4


def _utc(epoch: Optional[float]) -> str:
    if epoch is None:
        return "?"
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).isoformat(timespec="seconds")


class StoreOutage:
    """The store's availability as this process sees it, logged without flooding.

    Availability comes from :meth:`cookiestore.CookieStore.health` (no round trip; the
    library's circuit breaker): :meth:`observe` is given each store object's health
    regularly. One warning when an outage starts (since when, what failed, what the router
    does meanwhile), one line per ``report_interval`` seconds while it lasts (how many calls
    were refused), one warning when it ends (how long, how many calls refused). Several
    store objects on the same location (a worker has one per cookie section) share one:
    the store is down while any of them is.

    Other errors of background calls (a purge, the feed: a damaged LMDB file, a Redis
    setting refused) go to :meth:`failed`: logged once until :meth:`succeeded`; anything that
    is not the library's error (a bug) with its traceback, once.
    """

    def __init__(self, log, location: str, report_interval: float = OUTAGE_REPORT_INTERVAL, clock=time.monotonic):
        self.log = log
        self.location = location
        self.report_interval = report_interval
        self._clock = clock
        #: When the current outage started (``clock()``), or None while the store answers.
        self.since: Optional[float] = None
        self.since_utc: Optional[str] = None
        #: Outages seen so far (ended or not).
        self.outages = 0
        #: Calls refused at once in the current (or last) outage, over every store object.
        self.refused = 0
        self._reported = 0.0
        self._health: Dict[Any, dict] = {}
        #: Other failures: the message logged last (None: none since the last success).
        self.failing: Optional[str] = None
        self.failures = 0

    @property
    def down(self) -> bool:
        return self.since is not None

    def observe(self, source: Any, health: dict) -> None:
        """Takes the health of one store object (``source``: any key of it)."""
        before = self._health.get(source)
        self._health[source] = health
        now = self._clock()
        if before is not None and health["available"] and before["available"] and health["outages"] > before["outages"]:
            # An outage that started and ended between two looks.
            self.outages += 1
            self.log.warn(
                "cookiestore: the store at {location} was unavailable for a moment ({problem}); "
                "it answers again",
                location=self.location,
                problem=health.get("problem"),
            )
        down = [h for h in self._health.values() if not h["available"]]
        self.refused = sum(h["refused"] for h in down) if down else self.refused
        if down and self.since is None:
            first = min(down, key=lambda h: h["since"] or 0)
            self.since = self._reported = now
            self.since_utc = _utc(first["since"])
            self.outages += 1
            self.log.warn(
                "cookiestore: the store at {location} is unavailable since {since} ({problem}); "
                "meanwhile new connections are served without their cookie (WAMP-CRA, ticket and "
                "anonymous logins still work), logins are not stored in cookies, and logouts fail; "
                "one line when it is back (and every {every:.0f} s until then)",
                location=self.location,
                since=self.since_utc,
                problem=first.get("problem"),
                every=self.report_interval,
            )
        elif down and now - self._reported >= self.report_interval:
            self._reported = now
            self.log.warn(
                "cookiestore: the store at {location} is still unavailable ({secs:.0f} s, "
                "{n} calls refused at once so far)",
                location=self.location,
                secs=now - self.since,
                n=self.refused,
            )
        elif not down and self.since is not None:
            self.log.warn(
                "cookiestore: the store at {location} is available again after {secs:.1f} s "
                "(unavailable since {since}; {n} calls refused at once meanwhile)",
                location=self.location,
                secs=now - self.since,
                since=self.since_utc,
                n=self.refused,
            )
            self.since = self.since_utc = None

    def forget(self, source: Any) -> None:
        """A store object stopped: its health no longer counts."""
        self._health.pop(source, None)

    def failed(self, what: str, err: BaseException) -> None:
        """A background call failed with something other than the store's unavailability."""
        self.failures += 1
        text = f"{what}: {err}"
        if self.failing == text:
            return
        self.failing = text
        self.log.warn(
            "cookiestore: {what} failed on the store at {location}: {err} (logged once until it works again)",
            what=what,
            location=self.location,
            err=err,
        )
        if not isinstance(err, CookieStoreError):
            # Not the library's error: a bug worth its traceback.
            self.log.failure("cookiestore: {what} raised", failure=Failure(err), what=what)

    def succeeded(self) -> None:
        if self.failing is not None:
            self.log.info(
                "cookiestore: calls to the store at {location} work again (after: {what})",
                location=self.location,
                what=self.failing,
            )
        self.failing = None


#: One :class:`StoreOutage` per store location in this process.
_OUTAGES: Dict[str, StoreOutage] = {}


class Prepared:
    """What a new connection's store calls found, made on a thread before Crossbar's
    ``onConnect`` runs (:meth:`CookieStoreCookiestore.prepare_connection`), so that
    ``exists``, ``create`` and ``getAuth`` answer it without a store call."""

    __slots__ = ("cbtid", "exists", "auth", "created", "value", "degraded", "problem")

    def __init__(self, cbtid, exists, auth=_NO_AUTH, created=None, degraded=False, problem=None):
        #: The cookie the browser sent (or None).
        self.cbtid: Optional[str] = cbtid
        #: Whether Crossbar is told that it exists (not created anew).
        self.exists: bool = exists
        #: The cookie's authentication (Crossbar's 5-tuple; all None: not authenticated).
        self.auth = auth
        #: ``(value, header)`` for Crossbar's ``create()``, or None.
        self.created: Optional[Tuple[str, str]] = created
        #: The cookie the connection uses.
        self.value: Optional[str] = cbtid if exists else (created[0] if created else None)
        #: The store could not be asked: served without a usable cookie, no Set-Cookie.
        self.degraded = degraded
        self.problem = problem


def _is_redis(store: Dict[str, Any]) -> bool:
    where = store.get("url") or store.get("path")
    if not isinstance(where, str):
        return False
    try:
        return parse_location(where)[0] == "redis"
    except CookieStoreError:
        return False


class CookieStoreCookiestore(_CrossbarCookieStore):
    """Crossbar.io cookie store of ``"store": {"type": "cookiestore", ...}``.

    :param config: the transport's ``cookie`` section, as in the node config.
    :param cbdir: the node directory; a relative ``store.path`` is relative to it. A
        ``store.url`` (a Redis URL) is used as it is: nodes on several hosts naming the same
        Redis share cookies, and logouts (the revocation feed is watched on Redis too).
    :param reactor: the Twisted reactor (None: the global one). ``poll_interval=None`` (or 0)
        does not watch the feed: only this worker's own logouts close connections then.
        ``purge_interval=None`` (or 0) does not purge.
    :param background: run the store calls that may wait (on Redis, or for LMDB's writer
        lock) off the reactor, and serve connections without cookies while the store is
        unavailable (see the module's notes); the launcher sets it. Without it, every call
        is made where it is called and raises what the store raises.
    :param write_wait: with ``background``, the longest the reactor waits for a login's
        write (seconds).
    :param logout_wait: with ``background``, the longest the reactor waits for a logout.
    """

    log = make_logger()

    def __init__(
        self,
        config: Dict[str, Any],
        cbdir: Optional[str] = None,
        *,
        reactor: Any = None,
        poll_interval: Optional[float] = 0.1,
        purge_interval: Optional[float] = 3600.0,
        background: bool = False,
        write_wait: float = WRITE_WAIT,
        logout_wait: float = LOGOUT_WAIT,
    ):
        _CrossbarCookieStore.__init__(self, config)
        section = dict(config)
        section.setdefault("max_age", CROSSBAR_DEFAULT_MAX_AGE)
        store = section.get("store")
        if isinstance(store, dict) and _is_redis(store) and "connect_lazily" not in store:
            # A worker starts while Redis is down (and serves without cookies until it is back).
            section["store"] = dict(store, connect_lazily=True)
        self._store = CookieStore.from_section(section, os.path.abspath(cbdir or "."))
        self._reactor_given = reactor
        self.background = background
        self.write_wait = write_wait
        self.logout_wait = logout_wait
        #: With ``background``, the longest a new connection waits for its store calls
        #: (seconds): the store's ``timeout_ms`` as the library applies it (a Redis URL's
        #: ``?timeout_ms=`` first; a call may take longer than its deadline when it needs a
        #: new connection to a hung Redis), 2 s by default, on LMDB too (a writer holding
        #: LMDB's lock); then it is served without its cookie.
        self.connect_wait = self._store.timeout_ms / 1000.0
        # Per-process registry (the library's): cookie value -> connection ids. Never
        # consults the store, so the connections of a cookie logged out a moment ago are
        # still found. The connection objects by id, and each one's cookies:
        self._registry = Connections()
        self._next_id = itertools.count(1)
        self._id_of: Dict[Any, int] = {}
        self._proto_of: Dict[int, Any] = {}
        self._cookies_of: Dict[int, Set[str]] = {}
        # Cookies logged out by this instance: Crossbar kicks their other connections itself
        # right after delAuth, so the feed entry of such a logout is skipped once.
        self._revoked_here: Set[str] = set()
        self._feed = None
        self._watch = None
        self._poller = None  # kept for callers that look at it; the feed has no LoopingCall
        self.closed_by_feed = 0
        self.purged = 0
        self._purger = None
        self._purging = False
        self._health_check = None
        self._answer: Optional[Prepared] = None
        self._connect_pool: Optional[concurrent.futures.ThreadPoolExecutor] = None
        self._write_pool: Optional[concurrent.futures.ThreadPoolExecutor] = None
        #: Logins not stored in their cookie because the store could not be reached.
        self.logins_not_stored = 0
        #: Connections served without a usable cookie because the store could not be asked.
        self.degraded_connections = 0
        #: The store's availability as this process sees it (logged once per outage, not per
        #: call); shared by the instances of this process on the same store.
        self.outage = _OUTAGES.setdefault(self._store.location, StoreOutage(self.log, self._store.location))
        self._recheck_pending = False
        if poll_interval:
            self.start_polling(poll_interval, reactor)
        if purge_interval:
            from twisted.internet import task

            self._purger = task.LoopingCall(self._purge_tick if background else self.purge_expired)
            if reactor is not None:
                self._purger.clock = reactor
            self._purger.start(purge_interval, now=False)
        if background:
            from twisted.internet import task

            self._health_check = task.LoopingCall(self.check_health)
            if reactor is not None:
                self._health_check.clock = reactor
            self._health_check.start(HEALTH_INTERVAL, now=True)
        self.log.info(
            "cookiestore cookie store active: {where}={path}, max_age={max_age}s, revocation feed "
            "watched every {interval}s{mode}",
            where="url" if self._store.backend == "redis" else "path",
            path=self._store.location,
            max_age=self._store.max_age,
            interval=poll_interval or "never",
            mode=", store calls off the reactor" if background else "",
        )

    # -- plumbing --------------------------------------------------------------------------

    @property
    def _reactor(self):
        if self._reactor_given is not None:
            return self._reactor_given
        from twisted.internet import reactor

        return reactor

    def _pool(self, write: bool) -> concurrent.futures.ThreadPoolExecutor:
        if write:
            if self._write_pool is None:
                # One thread: logins and logouts of a cookie are applied in the order made.
                self._write_pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="cookiestore-write")
            return self._write_pool
        if self._connect_pool is None:
            self._connect_pool = concurrent.futures.ThreadPoolExecutor(
                CONNECT_THREADS, thread_name_prefix="cookiestore-connect"
            )
        return self._connect_pool

    def _in_thread(self, write: bool, fn: Callable, *args):
        """``fn(*args)`` on a thread of the pool; a Deferred fired on the reactor."""
        from twisted.internet.defer import Deferred

        d = Deferred()
        reactor = self._reactor

        def done(fut):
            try:
                result = fut.result()
            except BaseException as e:  # noqa: BLE001 - handed to the Deferred
                reactor.callFromThread(d.errback, Failure(e))
            else:
                reactor.callFromThread(d.callback, result)

        self._pool(write).submit(fn, *args).add_done_callback(done)
        return d

    def available(self) -> bool:
        """Whether the store answers now (no round trip: the circuit breaker's view)."""
        return bool(self._store.health()["available"])

    def _unavailable(self) -> UnavailableError:
        h = self._store.health()
        return UnavailableError(
            f"the cookie store at {self._store.location} is unavailable since {_utc(h['since'])} "
            f"({h['problem']})"
        )

    def check_health(self) -> None:
        """Looks at the store's health (no round trip) and logs an outage's start and end."""
        try:
            health = self._store.health()
        except CookieStoreError as e:
            self.outage.failed("health check", e)
            return
        self.outage.observe(id(self), health)

    # -- the store -------------------------------------------------------------------------

    @property
    def store(self) -> CookieStore:
        """The underlying :class:`cookiestore.CookieStore`."""
        return self._store

    def _degrade(self, what: str, err: BaseException, fallback):
        """A call of Crossbar's that the store could not answer (``background``): the
        fallback answer ("no usable cookie"); the store's unavailability is logged by
        :meth:`check_health`, anything else here (once)."""
        self.degraded_connections += 1
        if not isinstance(err, UnavailableError):
            self.outage.failed(what, err)
        return fallback

    def exists(self, cbtid: str) -> bool:
        p = self._answer
        if p is not None and cbtid == p.cbtid:
            return p.exists
        if not self.background:
            return self._store.exists(cbtid)
        if not self.available():
            return self._degrade("a cookie lookup", self._unavailable(), False)
        try:
            return self._store.exists(cbtid)
        except CookieStoreError as e:
            return self._degrade("a cookie lookup", e, False)

    def create(self) -> Tuple[str, str]:
        """A new cookie: ``(cbtid, "name=value;max-age=N")`` (Crossbar appends attributes)."""
        p = self._answer
        if p is not None and p.created is not None:
            created, p.created = p.created, None
            return created
        if not self.background:
            return self._store.create()
        try:
            if not self.available():
                raise self._unavailable()
            return self._store.create()
        except CookieStoreError as e:
            return self._degrade("a cookie creation", e, self._store.unstored_cookie())

    def getAuth(self, cbtid: str) -> Tuple[Any, Any, Any, Any, Any]:
        """``(authid, authrole, authmethod, authrealm, authextra)``; all None when the cookie
        is unknown, expired or not authenticated (as Crossbar's stores answer), and, with
        ``background``, while the store cannot be asked."""
        p = self._answer
        if p is not None and cbtid == p.value:
            return p.auth
        if self.background:
            if not self.available():
                return self._degrade("a cookie lookup", self._unavailable(), _NO_AUTH)
            try:
                auth = self._store.get_auth(cbtid)
            except CookieStoreError as e:
                return self._degrade("a cookie lookup", e, _NO_AUTH)
        else:
            auth = self._store.get_auth(cbtid)
        return tuple(auth) if auth is not None else _NO_AUTH

    # -- new connections, off the reactor ----------------------------------------------------

    def _lookup_or_create(self, cbtid: Optional[str]) -> Prepared:
        """On a thread: the sent cookie's lookup, or a new cookie."""
        if cbtid:
            try:
                found, auth = self._store.lookup(cbtid)
            except InvalidValueError:
                found, auth = False, None  # not a value the store could hold: a new cookie
            if found:
                return Prepared(cbtid, True, tuple(auth) if auth is not None else _NO_AUTH)
        return Prepared(cbtid, False, _NO_AUTH, self._store.create())

    def degraded(self, cbtid: Optional[str], err: BaseException) -> Prepared:
        """A connection served without a usable cookie: the sent cookie is kept as it is
        (neither looked up nor replaced: it may still be valid), a browser without one gets a
        value that is not stored (and no ``Set-Cookie``); not authenticated by it."""
        self._degrade("a new connection's cookie lookup", err, None)
        if cbtid:
            return Prepared(cbtid, True, _NO_AUTH, None, degraded=True, problem=str(err))
        return Prepared(None, False, _NO_AUTH, self._store.unstored_cookie(), degraded=True, problem=str(err))

    def prepare_connection(self, cbtid: Optional[str]):
        """The store calls of a new connection whose browser sent ``cbtid`` (or None), made
        on a thread: a Deferred firing with a :class:`Prepared` on the reactor (never with
        an error: a store that cannot be asked gives :meth:`degraded`). At once while the
        store is known to be unavailable, and :meth:`degraded` after ``connect_wait``
        without an answer."""
        from twisted.internet.defer import Deferred, succeed

        if not self.available():
            return succeed(self.degraded(cbtid, self._unavailable()))
        answer = Deferred()

        def settle(prepared: Prepared) -> None:
            if not answer.called:
                if timer.active():
                    timer.cancel()
                answer.callback(prepared)

        def failed(f: Failure) -> None:
            if not answer.called:
                settle(self.degraded(cbtid, f.value))

        def too_late() -> None:
            # The store call goes on; its answer is dropped (a cookie it creates is unused).
            settle(
                self.degraded(
                    cbtid,
                    CookieStoreError(
                        f"the cookie store at {self._store.location} did not answer a new "
                        f"connection's lookup within {self.connect_wait * 1000:.0f} ms"
                    ),
                )
            )

        timer = self._reactor.callLater(self.connect_wait, too_late)
        self._in_thread(False, self._lookup_or_create, cbtid).addCallbacks(settle, failed)
        return answer

    @contextlib.contextmanager
    def answering(self, prepared: Prepared) -> Iterator[None]:
        """While it lasts (on the reactor, around Crossbar's ``onConnect``), ``exists``,
        ``create`` and ``getAuth`` of the prepared cookie answer from ``prepared``."""
        before, self._answer = self._answer, prepared
        try:
            yield
        finally:
            self._answer = before

    # -- logins and logouts --------------------------------------------------------------------

    def setAuth(self, cbtid, authid, authrole, authmethod, authextra, authrealm) -> bool:
        """Crossbar's argument order (authextra before authrealm). ``authid`` None clears the
        cookie's authentication (the proxy worker and the router's onHello do that). Returns
        whether the cookie changed. An authextra the store cannot hold (bytes, ...) is not
        stored: the error is logged, the login goes on, the cookie stays unauthenticated.
        With ``background``: a store that cannot be reached does not stop the login either
        (it is not stored in the cookie: logged, counted in ``logins_not_stored``)."""
        if authid is None:
            call, args = self._store.clear_auth, (cbtid,)
        else:
            call = self._store.authenticate
            args = (cbtid, authid, authrole, authmethod, authrealm, authextra)
        if not self.background:
            return self._set_auth_answer(authid, lambda: call(*args))
        if not self.available():
            self._login_not_stored(authid, self._unavailable())
            return False
        fut = self._pool(True).submit(call, *args)
        try:
            fut.result(timeout=self.write_wait)
        except concurrent.futures.TimeoutError:
            # Answered later, on the reactor; the login goes on meanwhile.
            reactor = self._reactor
            fut.add_done_callback(lambda f: reactor.callFromThread(self._late_set_auth, authid, f))
            return False
        return self._set_auth_answer(authid, fut.result)

    def _set_auth_answer(self, authid, result: Callable) -> bool:
        try:
            done = result()
        except AuthextraError as e:
            # Crossbar calls this in the session's onJoin: raising would break the login.
            # The login goes on; the cookie stays unauthenticated (the next connection is
            # challenged), and the log says why.
            self.log.error(
                "cookiestore: the authentication of authid {authid} was not stored in its cookie: {err}",
                authid=authid,
                err=e,
            )
            return False
        except CookieStoreError as e:
            if not self.background:
                raise
            self._login_not_stored(authid, e)
            return False
        if isinstance(done, bool):
            return done
        return done == "written"

    def _late_set_auth(self, authid, fut) -> None:
        self._set_auth_answer(authid, fut.result)

    def _login_not_stored(self, authid, err: BaseException) -> None:
        self.logins_not_stored += 1
        self.log.warn(
            "cookiestore: the login of authid {authid} goes on, but is not stored in its cookie "
            "(the next connection is challenged again): {err}",
            authid=authid,
            err=err,
        )

    def delAuth(self, cbtid: str) -> bool:
        """Logs the cookie out (deletes it). Its connections stay in :meth:`getProtos` so that
        Crossbar closes the other ones; other workers close theirs from the revocation feed.

        A logout that the store did not apply raises (:class:`cookiestore.UnavailableError`
        while the store is unavailable, or the store's error): Crossbar then neither reports
        it applied nor closes the other connections, and the client's connection is failed
        with the error (WebSocket close 1011, "WAMP Internal Error (...)"). With
        ``background``, one not answered within ``logout_wait`` raises too (it may still be
        applied: the feed then closes the cookie's connections)."""
        if self.background:
            if not self.available():
                raise UnavailableError(f"cookie store unavailable: the logout was NOT applied; {self._unavailable()}")
            fut = self._pool(True).submit(self._store.logout, cbtid)
            try:
                existed = fut.result(timeout=self.logout_wait)
            except concurrent.futures.TimeoutError:
                reactor = self._reactor
                fut.add_done_callback(lambda f: reactor.callFromThread(self._late_logout, f))
                raise CookieStoreError(
                    f"cookie store did not answer the logout within {self.logout_wait * 1000:.0f} ms: "
                    "it is NOT confirmed (if it is applied later, the cookie's connections are closed then)"
                ) from None
            except NotReplicatedError as e:
                # Applied on the master (the feed closes the connections), not confirmed on
                # enough replicas (min_replicas_acked): a failover could still undo it.
                raise NotReplicatedError(f"cookie store: the logout is NOT confirmed on the replicas: {e}") from e
            except CookieStoreError as e:
                raise type(e)(f"cookie store: the logout was NOT applied: {e}") from e
        else:
            existed = self._store.logout(cbtid)
        if existed and self._watching():
            self._revoked_here.add(cbtid)
        return existed

    def _late_logout(self, fut) -> None:
        try:
            existed = fut.result()
        except Exception as e:  # noqa: BLE001 - logged
            self.log.error("cookiestore: a logout reported as not confirmed was not applied: {err}", err=e)
        else:
            self.log.info(
                "cookiestore: a logout reported as not confirmed was applied late (cookie existed: {e})",
                e=existed,
            )

    def _watching(self) -> bool:
        return self._watch is not None or self._feed is not None

    # -- connections (per process, the library's registry) ----------------------------------

    def addProto(self, cbtid: str, proto: Any) -> int:
        i = self._id_of.get(proto)
        if i is None:
            i = next(self._next_id)
            self._id_of[proto] = i
            self._proto_of[i] = proto
            self._cookies_of[i] = set()
        self._registry.register(cbtid, i)
        self._cookies_of[i].add(cbtid)
        return len(self._registry.connections(cbtid))

    def _forget(self, cbtid: str, i: int) -> None:
        self._registry.unregister(cbtid, i)
        cookies = self._cookies_of.get(i)
        if cookies is not None:
            cookies.discard(cbtid)
            if not cookies:
                del self._cookies_of[i]
                proto = self._proto_of.pop(i, None)
                self._id_of.pop(proto, None)

    def dropProto(self, cbtid: str, proto: Any) -> int:
        i = self._id_of.get(proto)
        if i is not None:
            self._forget(cbtid, i)
        return len(self._registry.connections(cbtid))

    def getProtos(self, cbtid: str) -> List[Any]:
        return [self._proto_of[i] for i in self._registry.connections(cbtid) if i in self._proto_of]

    def _served_cookies(self) -> List[str]:
        return sorted({v for cookies in self._cookies_of.values() for v in cookies})

    # -- the revocation feed -------------------------------------------------------------------

    def start_polling(self, interval: float, reactor: Any = None) -> None:
        """Watches the revocation feed (the library's watcher thread, every ``interval``
        seconds and, on Redis, at once when a logout is published); its revocations close
        connections on the reactor. Also makes the feed :meth:`poll_revocations` reads."""
        if reactor is not None:
            self._reactor_given = reactor
        if self._feed is None:
            self._feed = self._store.revocation_feed()
        self.stop_polling()
        self._watch = self._store.watch(self._registry, self._from_watcher, interval)

    def stop_polling(self) -> None:
        if self._watch is not None:
            self._watch.stop()
        self._watch = None

    def stop(self) -> None:
        """Stops watching the feed, purging and the health checks (the store stays usable)."""
        self.stop_polling()
        for loop in (self._purger, self._health_check):
            if loop is not None and loop.running:
                loop.stop()
        self._purger = self._health_check = None
        self.outage.forget(id(self))
        for pool in (self._connect_pool, self._write_pool):
            if pool is not None:
                pool.shutdown(wait=False)
        self._connect_pool = self._write_pool = None

    def _from_watcher(self, kind: str, entries: List[Revocation], error) -> None:
        """The watcher thread's report: handed to the reactor."""
        self._reactor.callFromThread(self._on_watch_event, kind, entries, error)

    def _on_watch_event(self, kind: str, entries: List[Revocation], error) -> None:
        if kind == "revoked":
            self.outage.succeeded()
            self.closed_by_feed += self._revoked(entries)
        elif kind == "missed":
            self._recheck_in_thread()
        elif kind == "failed" and not isinstance(error, UnavailableError):
            # Unavailability is logged from the store's health; anything else here.
            self.outage.failed("watching the revocation feed", error)

    def _recheck_in_thread(self) -> None:
        """Entries were trimmed before they were read: re-check, on a thread, every cookie
        this worker serves; close the connections of those gone. Retried every second until
        one re-check completes."""
        if self._recheck_pending:
            return
        self._recheck_pending = True
        values = self._served_cookies()
        store = self._store

        def gone() -> List[str]:
            return [v for v in values if not store.exists(v)]

        def close(values_gone: List[str]) -> None:
            self._recheck_pending = False
            self.closed_by_feed += sum(self._close_all(v, "missed") for v in values_gone)

        def retry(f: Failure) -> None:
            self._recheck_pending = False
            self._reactor.callLater(1.0, self._recheck_in_thread)

        d = self._in_thread(False, gone)
        d.addCallbacks(close, retry)

    def purge_expired(self) -> int:
        """Deletes expired cookies from the store; returns how many. Errors are logged."""
        try:
            n = self._store.purge_expired()
        except Exception as e:  # noqa: BLE001 - must not stop the LoopingCall
            if not isinstance(e, UnavailableError):
                self.outage.failed("purge of expired cookies", e)
            return 0
        self._purged(n)
        return n

    def _purged(self, n: int) -> None:
        self.outage.succeeded()
        self.purged += n
        if n:
            self.log.info("cookiestore: purged {n} expired cookie(s)", n=n)

    def _purge_tick(self) -> None:
        """With ``background``: the purge on a thread (one at a time)."""
        if self._purging:
            return
        self._purging = True

        def done(n: int) -> None:
            self._purging = False
            self._purged(n)

        def failed(f: Failure) -> None:
            self._purging = False
            if not isinstance(f.value, UnavailableError):
                self.outage.failed("purge of expired cookies", f.value)

        self._in_thread(False, self._store.purge_expired).addCallbacks(done, failed)

    def poll_revocations(self) -> int:
        """Polls the feed once, here (a test, or a caller without the watcher): closes this
        process's connections of cookies revoked elsewhere since the last poll; returns how
        many were closed. A failure is logged (once) and the next poll retries."""
        if self._feed is None:
            return 0
        try:
            entries, _position, missed = self._feed.poll()
        except Exception as e:  # noqa: BLE001 - a poll must not stop its caller
            if not isinstance(e, UnavailableError):
                self.outage.failed("revocation feed poll", e)
            return 0
        self.outage.succeeded()
        closed = self._revoked(entries)
        if missed:
            # Entries were trimmed before we read them: re-check every cookie we serve (until
            # one re-check completes: the feed reports the miss once).
            self._recheck_pending = True
        if self._recheck_pending:
            try:
                for value in self._served_cookies():
                    if not self._store.exists(value):
                        closed += self._close_all(value, "missed")
            except Exception as e:  # noqa: BLE001 - retried at the next poll
                if not isinstance(e, UnavailableError):
                    self.outage.failed("re-check of this worker's cookies after missed feed entries", e)
            else:
                self._recheck_pending = False
        self.closed_by_feed += closed
        return closed

    def _revoked(self, entries: List[Revocation]) -> int:
        closed = 0
        for entry in entries:
            if not entry.revokes:
                continue  # an auth change, a purge...: the feed also tells caches of those
            if entry.value in self._revoked_here:
                self._revoked_here.discard(entry.value)
                continue
            closed += self._close_all(entry.value, entry.kind)
        return closed

    def _close_all(self, value: str, why: str) -> int:
        ids = self._registry.connections(value)
        protos = [self._proto_of[i] for i in ids if i in self._proto_of]
        for i in ids:
            self._forget(value, i)
        if not protos:
            return 0
        for proto in protos:
            try:
                proto.sendClose()
            except Exception as e:  # noqa: BLE001
                self.log.warn("closing a connection of a revoked cookie failed: {err}", err=e)
        self.log.info(
            "cookie revoked ({why}): closed {n} connection(s) of it on this worker",
            why=why,
            n=len(protos),
        )
        return len(protos)
