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
  of that cookie too: the store's revocation feed is polled on a Twisted ``LoopingCall``
  (every ``poll_interval`` seconds, 0.1 by default; a poll with nothing committed since the
  last one costs no LMDB transaction);
- expired cookies are purged every ``purge_interval`` seconds (1 hour by default; with several
  workers, each purges, which is harmless: a purge with nothing expired writes nothing);
- a store that becomes unavailable (Redis down) is logged once, not at every poll: one
  warning when the polls start failing, a count every minute while they keep failing, one
  warning when the store answers again (:class:`StoreOutage`).
"""

from __future__ import annotations

import datetime
import os
import time
from typing import Any, Dict, List, Optional, Set, Tuple

from crossbar.router.cookiestore import CookieStore as _CrossbarCookieStore
from twisted.python.failure import Failure
from txaio import make_logger

from . import AuthextraError, CookieStore, CookieStoreError

__all__ = ["CookieStoreCookiestore", "CROSSBAR_DEFAULT_MAX_AGE"]

#: Crossbar.io's ``CookieStore`` uses 7 days when a cookie section has no ``max_age``
#: (its docs say 1 day; the code says 7); this class does as the code does.
CROSSBAR_DEFAULT_MAX_AGE = 86400 * 7

_NO_AUTH = (None, None, None, None, None)


#: The feed entry kinds that revoke a cookie (its connections are closed); the others
#: (auth, replaced, purged, flush) only tell caches what changed.
REVOKING_KINDS = frozenset({"logout", "authid", "maintenance"})

#: While the store stays unavailable, one line every this many seconds says so (with a count).
OUTAGE_REPORT_INTERVAL = 60.0


class StoreOutage:
    """The store's availability as this worker's background calls (feed polls, purges) see
    it, logged without flooding: one warning when calls start failing (what failed, since
    when), nothing while they keep failing except one line per ``report_interval`` seconds
    with the count, and one warning when a call succeeds again (how long, how many failed).

    The expected failure, :class:`cookiestore.UnavailableError` (Redis down or not
    answering), and the library's other errors are logged by their message; anything else
    (a bug) with its traceback, once per outage.
    """

    def __init__(self, log, location: str, report_interval: float = OUTAGE_REPORT_INTERVAL, clock=time.monotonic):
        self.log = log
        self.location = location
        self.report_interval = report_interval
        self._clock = clock
        #: When the current outage started (``clock()``), or None while the store answers.
        self.since: Optional[float] = None
        self.since_utc: Optional[str] = None
        #: Failed calls in the current outage.
        self.failures = 0
        self._reported = 0.0
        #: Outages seen so far (ended or not).
        self.outages = 0

    @property
    def down(self) -> bool:
        return self.since is not None

    def failed(self, what: str, err: BaseException) -> None:
        now = self._clock()
        if self.since is not None:
            self.failures += 1
            if now - self._reported >= self.report_interval:
                self._reported = now
                self.log.warn(
                    "cookiestore: the store at {location} is still unavailable ({secs:.0f} s, "
                    "{n} failed calls so far; last: {what}: {err})",
                    location=self.location,
                    secs=now - self.since,
                    n=self.failures,
                    what=what,
                    err=err,
                )
            return
        self.since = self._reported = now
        self.since_utc = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        self.failures = 1
        self.outages += 1
        self.log.warn(
            "cookiestore: the store at {location} is unavailable since {since} ({what}: {err}); "
            "retrying; one line when it is back (and every {every:.0f} s until then)",
            location=self.location,
            since=self.since_utc,
            what=what,
            err=err,
            every=self.report_interval,
        )
        if not isinstance(err, CookieStoreError):
            # Not the library's error: a bug worth its traceback, once per outage.
            self.log.failure("cookiestore: {what} raised", failure=Failure(err), what=what)

    def succeeded(self) -> None:
        if self.since is None:
            return
        self.log.warn(
            "cookiestore: the store at {location} is available again after {secs:.1f} s "
            "(unavailable since {since}; {n} failed calls)",
            location=self.location,
            secs=self._clock() - self.since,
            since=self.since_utc,
            n=self.failures,
        )
        self.since = self.since_utc = None
        self.failures = 0


#: One :class:`StoreOutage` per store location in this process.
_OUTAGES: Dict[str, StoreOutage] = {}


class CookieStoreCookiestore(_CrossbarCookieStore):
    """Crossbar.io cookie store of ``"store": {"type": "cookiestore", ...}``.

    :param config: the transport's ``cookie`` section, as in the node config.
    :param cbdir: the node directory; a relative ``store.path`` is relative to it. A
        ``store.url`` (a Redis URL) is used as it is: nodes on several hosts naming the same
        Redis share cookies, and logouts (the revocation feed is polled on Redis too).
    :param reactor: the Twisted reactor to poll the revocation feed on (None: the global
        one). ``poll_interval=None`` (or 0) does not poll: only this worker's own logouts
        close connections then. ``purge_interval=None`` (or 0) does not purge.
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
    ):
        _CrossbarCookieStore.__init__(self, config)
        section = dict(config)
        section.setdefault("max_age", CROSSBAR_DEFAULT_MAX_AGE)
        self._store = CookieStore.from_section(section, os.path.abspath(cbdir or "."))
        # Per-process registry: cookie value -> set of protocols. Never consults the store,
        # so the connections of a cookie logged out a moment ago are still found.
        self._connections: Dict[str, Set[Any]] = {}
        # Cookies logged out by this instance: Crossbar kicks their other connections itself
        # right after delAuth, so the feed entry of such a logout is skipped once.
        self._revoked_here: Set[str] = set()
        self._feed = None
        self._poller = None
        self.closed_by_feed = 0
        self.purged = 0
        self._purger = None
        #: The store's availability as the feed polls and purges see it (logged once per
        #: outage, not per failed call); shared by the instances of this process on the same
        #: store (a worker has one per cookie section), so that an outage is logged once.
        self.outage = _OUTAGES.setdefault(self._store.location, StoreOutage(self.log, self._store.location))
        self._recheck_pending = False
        if poll_interval:
            self._feed = self._store.revocation_feed()
            self.start_polling(poll_interval, reactor)
        if purge_interval:
            from twisted.internet import task

            self._purger = task.LoopingCall(self.purge_expired)
            if reactor is not None:
                self._purger.clock = reactor
            self._purger.start(purge_interval, now=False)
        self.log.info(
            "cookiestore cookie store active: {where}={path}, max_age={max_age}s, revocation feed "
            "poll every {interval}s",
            where="url" if self._store.backend == "redis" else "path",
            path=self._store.location,
            max_age=self._store.max_age,
            interval=poll_interval or "never",
        )

    # -- the store -------------------------------------------------------------------------

    @property
    def store(self) -> CookieStore:
        """The underlying :class:`cookiestore.CookieStore`."""
        return self._store

    def exists(self, cbtid: str) -> bool:
        return self._store.exists(cbtid)

    def create(self) -> Tuple[str, str]:
        """A new cookie: ``(cbtid, "name=value;max-age=N")`` (Crossbar appends attributes)."""
        return self._store.create()

    def getAuth(self, cbtid: str) -> Tuple[Any, Any, Any, Any, Any]:
        """``(authid, authrole, authmethod, authrealm, authextra)``; all None when the cookie
        is unknown, expired or not authenticated (as Crossbar's stores answer)."""
        auth = self._store.get_auth(cbtid)
        return tuple(auth) if auth is not None else _NO_AUTH

    def setAuth(self, cbtid, authid, authrole, authmethod, authextra, authrealm) -> bool:
        """Crossbar's argument order (authextra before authrealm). ``authid`` None clears the
        cookie's authentication (the proxy worker and the router's onHello do that). Returns
        whether the cookie changed. An authextra the store cannot hold (bytes, ...) is not
        stored: the error is logged, the login goes on, the cookie stays unauthenticated."""
        if authid is None:
            return self._store.clear_auth(cbtid)
        try:
            done = self._store.authenticate(cbtid, authid, authrole, authmethod, authrealm, authextra)
        except AuthextraError as e:
            # Crossbar calls this in the session's onJoin: raising would break the login.
            # The login goes on; the cookie stays unauthenticated (the next connection is
            # challenged), and the log says why.
            self.log.error(
                "cookiestore: authentication of cookie {cbtid} (authid {authid}) not stored: {err}",
                cbtid=cbtid,
                authid=authid,
                err=e,
            )
            return False
        return done == "written"

    def delAuth(self, cbtid: str) -> bool:
        """Logs the cookie out (deletes it). Its connections stay in :meth:`getProtos` so that
        Crossbar closes the other ones; other workers close theirs from the revocation feed."""
        existed = self._store.logout(cbtid)
        if existed and self._feed is not None:
            self._revoked_here.add(cbtid)
        return existed

    # -- connections (per process) -----------------------------------------------------------

    def addProto(self, cbtid: str, proto: Any) -> int:
        protos = self._connections.setdefault(cbtid, set())
        protos.add(proto)
        return len(protos)

    def dropProto(self, cbtid: str, proto: Any) -> int:
        protos = self._connections.get(cbtid)
        if not protos:
            return 0
        protos.discard(proto)
        if not protos:
            del self._connections[cbtid]
            return 0
        return len(protos)

    def getProtos(self, cbtid: str) -> List[Any]:
        return list(self._connections.get(cbtid, ()))

    # -- the revocation feed -------------------------------------------------------------------

    def start_polling(self, interval: float, reactor: Any = None) -> None:
        """Polls the revocation feed every ``interval`` seconds on the reactor."""
        from twisted.internet import task

        if self._feed is None:
            self._feed = self._store.revocation_feed()
        if self._poller is not None and self._poller.running:
            self._poller.stop()
        self._poller = task.LoopingCall(self.poll_revocations)
        if reactor is not None:
            self._poller.clock = reactor
        d = self._poller.start(interval, now=False)
        d.addErrback(lambda f: self.log.failure("revocation feed poller stopped: {log_failure.value}", failure=f))

    def stop_polling(self) -> None:
        if self._poller is not None and self._poller.running:
            self._poller.stop()
        self._poller = None

    def stop(self) -> None:
        """Stops polling the feed and purging (the store stays usable)."""
        self.stop_polling()
        if self._purger is not None and self._purger.running:
            self._purger.stop()
        self._purger = None

    def purge_expired(self) -> int:
        """Deletes expired cookies from the store; returns how many. Errors are logged."""
        try:
            n = self._store.purge_expired()
        except Exception as e:  # noqa: BLE001 - must not stop the LoopingCall
            self.outage.failed("purge of expired cookies", e)
            return 0
        self.outage.succeeded()
        self.purged += n
        if n:
            self.log.info("cookiestore: purged {n} expired cookie(s)", n=n)
        return n

    def poll_revocations(self) -> int:
        """Closes this process's connections of cookies revoked elsewhere since the last poll;
        returns how many were closed. A failure is counted in :attr:`outage` (logged once
        per outage, not per poll), and the next poll retries."""
        if self._feed is None:
            return 0
        try:
            entries, _position, missed = self._feed.poll()
        except Exception as e:  # noqa: BLE001 - a poll must not stop the LoopingCall
            self.outage.failed("revocation feed poll", e)
            return 0
        self.outage.succeeded()
        closed = 0
        for _seq, kind, value, _oid in entries:
            if kind not in REVOKING_KINDS:
                continue  # an auth change, a purge...: the feed also tells caches of those
            if value in self._revoked_here:
                self._revoked_here.discard(value)
                continue
            closed += self._close_all(value, kind)
        if missed:
            # Entries were trimmed before we read them: re-check every cookie we serve (until
            # one re-check completes: the feed reports the miss once).
            self._recheck_pending = True
        if self._recheck_pending:
            try:
                for value in list(self._connections):
                    if not self._store.exists(value):
                        closed += self._close_all(value, "missed")
            except Exception as e:  # noqa: BLE001 - a poll must not stop the LoopingCall
                self.outage.failed("re-check of this worker's cookies after missed feed entries", e)
            else:
                self._recheck_pending = False
        self.closed_by_feed += closed
        return closed

    def _close_all(self, value: str, why: str) -> int:
        protos = self._connections.pop(value, None)
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
