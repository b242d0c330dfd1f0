"""``crossbar-cookiestore``: Crossbar.io's own command line with a personality that serves
``"store": {"type": "cookiestore", ...}`` in a WebSocket transport's ``cookie`` section.

Nothing of Crossbar.io is patched: :class:`Personality` subclasses Crossbar's standalone
personality and replaces, through the hooks Crossbar looks up on its personality,

- ``check_transport_cookie``: accepts and validates the ``cookiestore`` store type (so
  ``crossbar-cookiestore check`` and every worker validate it, with the library's messages);
- ``WEB_SERVICE_FACTORIES["websocket"]``: the ``websocket`` path service of a ``web``
  transport;
- ``create_router_transport`` / ``RouterTransport`` / ``RouterWebTransport``: the
  ``websocket`` and ``universal`` transports of router and proxy workers.

Each builds Crossbar's own ``WampWebSocketServerFactory`` (a subclass of it) and, for a
``cookiestore`` store, sets its cookie store to
:class:`cookiestore.crossbar.CookieStoreCookiestore` (with ``background=True``). Its protocol
(a subclass of Crossbar's) makes a new connection's store calls on a thread before Crossbar's
own ``onConnect`` runs with their answers (autobahn accepts a Deferred from ``onConnect``),
so that no store call waits on the reactor; a connection served without its cookie (the
store unavailable) gets no ``Set-Cookie``, and an ABORT on it says that the cookie store is
unavailable. Workers are started by the node with
``--personality cookiestore.launcher.Personality``, so they use the same hooks.

Tested with crossbar 25.12.1.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import Any, Dict

import txaio

txaio.use_twisted()

STORE_TYPE = "cookiestore"

TESTED_CROSSBAR_VERSIONS = ("25.12.1",)


def uses_cookiestore(config: Any) -> bool:
    """Whether a WebSocket transport/service config has a ``cookiestore`` cookie store."""
    if not isinstance(config, Mapping):
        return False
    cookie = config.get("cookie")
    if not isinstance(cookie, Mapping):
        return False
    store = cookie.get("store")
    return isinstance(store, Mapping) and store.get("type") == STORE_TYPE


def check_cookie_store_cookiestore(cookie: Dict[str, Any]) -> None:
    """Validates a cookie section whose store is of type ``cookiestore`` with the library's
    parser (:func:`cookiestore.check_section`), the one list of store keys
    (:func:`cookiestore.store_keys`) and their checks: exactly one of ``path`` (a directory,
    relative to the node directory) and ``url`` (a Redis URL); an unknown key, a value of the
    wrong type or out of range is named. Raises ``InvalidConfigException``."""
    from crossbar.common.checkconfig import InvalidConfigException

    import cookiestore

    try:
        cookiestore.check_section(dict(cookie))
    except cookiestore.CookieStoreError as e:
        raise InvalidConfigException(f"cookie store of type '{STORE_TYPE}': {e}") from None


def check_transport_cookie(personality, cookie, ignore=[]):  # noqa: B006 - Crossbar's signature
    """``Personality.check_transport_cookie``: Crossbar's check, plus the ``cookiestore`` type."""
    from crossbar.common import checkconfig

    store = cookie.get("store") if isinstance(cookie, Mapping) else None
    if isinstance(store, Mapping) and store.get("type") == STORE_TYPE:
        checkconfig.check_transport_cookie(personality, cookie, ignore=list(ignore) + [STORE_TYPE])
        check_cookie_store_cookiestore(cookie)
    else:
        checkconfig.check_transport_cookie(personality, cookie, ignore=ignore)


def _make_classes():
    """The Crossbar subclasses; built on first use so that importing this module does not
    import Crossbar's worker code (and install a reactor) before the CLI chose one."""
    from crossbar.personality import Personality as StandalonePersonality
    from autobahn.wamp import message as wamp_message
    from crossbar.router import protocol as cb_protocol
    from crossbar.router.unisocket import UniSocketServerFactory
    from crossbar.webservice import websocket as cb_websocket
    from crossbar.worker import transport as cb_transport
    from twisted.internet.defer import inlineCallbacks, returnValue

    from .crossbar import CookieStoreCookiestore

    class WampWebSocketServerProtocol(cb_protocol.WampWebSocketServerProtocol):
        """Crossbar's protocol; with a ``cookiestore`` cookie store, the store calls of the
        opening handshake (the cookie's lookup, or a new cookie) run on a thread, and
        Crossbar's own ``onConnect`` then runs with their answers (``onConnect`` may return
        a Deferred: autobahn answers the handshake when it fires). A store that cannot be
        asked gives a connection without a usable cookie and without ``Set-Cookie``."""

        def onConnect(self, request):
            cs = getattr(self.factory, "_cookiestore", None)
            if not isinstance(cs, CookieStoreCookiestore) or not cs.background:
                return super().onConnect(request)
            d = cs.prepare_connection(cs.parse(request.headers))

            def answer(prepared):
                with cs.answering(prepared):
                    result = cb_protocol.WampWebSocketServerProtocol.onConnect(self, request)
                if prepared.degraded:
                    self._cookiestore_degraded = True
                    if isinstance(result, tuple) and len(result) > 1:
                        result[1].pop("Set-Cookie", None)
                return result

            d.addCallback(answer)
            return d

        def send(self, msg):
            # A connection served without its cookie that is refused (e.g. a transport whose
            # only authmethod is cookie) is told why: the ABORT names the cookie store.
            if getattr(self, "_cookiestore_degraded", False) and isinstance(msg, wamp_message.Abort):
                text = f"{msg.message}; " if msg.message else ""
                msg = wamp_message.Abort(
                    msg.reason, f"{text}the cookie store is unavailable, so the cookie could not be checked"
                )
            return super().send(msg)

    class WampWebSocketServerFactory(cb_protocol.WampWebSocketServerFactory):
        """Crossbar's factory; a ``cookiestore`` cookie store is set up here, any other store
        type by Crossbar as before."""

        protocol = WampWebSocketServerProtocol

        def __init__(self, factory, cbdir, config, templates):
            if not uses_cookiestore(config):
                super().__init__(factory, cbdir, config, templates)
                return
            without_cookie = {k: v for k, v in config.items() if k != "cookie"}
            super().__init__(factory, cbdir, without_cookie, templates)
            # The protocol reads the cookie section (Set-Cookie attributes, auth) from here.
            self._config = config
            self._cookiestore = CookieStoreCookiestore(config["cookie"], cbdir, background=True)

        def stopFactory(self):
            if isinstance(self._cookiestore, CookieStoreCookiestore):
                self._cookiestore.stop()
            super().stopFactory()

    class RouterWebServiceWebSocket(cb_websocket.RouterWebServiceWebSocket):
        @staticmethod
        def create(transport, path, config):
            from autobahn.twisted.resource import WebSocketResource

            factory = WampWebSocketServerFactory(
                transport._worker._router_session_factory, transport.cbdir, config, transport.templates
            )
            factory.startFactory()
            return RouterWebServiceWebSocket(transport, path, config, WebSocketResource(factory))

    def _create_factory_mixin(base):
        class Transport(base):
            @inlineCallbacks
            def _create_factory(self, create_paths=False, ignore=[]):  # noqa: B006
                kind = self._config["type"]
                if kind == "websocket" and uses_cookiestore(self._config):
                    factory = WampWebSocketServerFactory(
                        self._worker._router_session_factory, self._cbdir, self._config, self._templates
                    )
                    factory.noisy = False
                    returnValue((factory, None))
                if kind == "universal" and any(uses_cookiestore(c) for c in self._config.get("websocket", {}).values()):
                    # Crossbar builds everything but the WebSocket factories; ours go in its map.
                    full = self._config
                    self._config = {k: v for k, v in full.items() if k != "websocket"}
                    try:
                        factory, root = yield base._create_factory(self, create_paths, ignore)
                    finally:
                        self._config = full
                    ws_map = {}
                    for first, ws_config in full["websocket"].items():
                        ws = WampWebSocketServerFactory(
                            self._worker._router_session_factory, self._cbdir, ws_config, self._templates
                        )
                        ws.noisy = False
                        ws_map[first] = ws
                    if not isinstance(factory, UniSocketServerFactory):
                        raise Exception("internal error: universal transport without a UniSocketServerFactory")
                    factory._websocket_factory_map = ws_map
                    returnValue((factory, root))
                result = yield base._create_factory(self, create_paths, ignore)
                returnValue(result)

        Transport.__name__ = base.__name__
        Transport.__qualname__ = base.__qualname__
        return Transport

    router_transport = _create_factory_mixin(cb_transport.RouterTransport)
    router_web_transport = _create_factory_mixin(cb_transport.RouterWebTransport)

    def create_router_transport(worker, transport_id, config):
        """``Personality.create_router_transport``: Crossbar's choice of class, ours."""
        if config["type"] == "web" or (config["type"] == "universal" and config.get("web", {})):
            return router_web_transport(worker, transport_id, config)
        return router_transport(worker, transport_id, config)

    factories = dict(StandalonePersonality.WEB_SERVICE_FACTORIES)
    factories["websocket"] = RouterWebServiceWebSocket

    class Personality(StandalonePersonality):
        """Crossbar.io's standalone personality, with the ``cookiestore`` cookie store."""

        WEB_SERVICE_FACTORIES = factories
        RouterTransport = router_transport
        RouterWebTransport = router_web_transport

    Personality.__module__ = __name__
    # Called on the class as Personality.check_x(personality, ...): plain functions.
    Personality.create_router_transport = create_router_transport
    Personality.check_transport_cookie = check_transport_cookie
    Personality.__qualname__ = "Personality"
    return Personality, WampWebSocketServerFactory


_classes = None


def __getattr__(name):
    # `Personality` is looked up by the node's workers as "cookiestore.launcher.Personality".
    global _classes
    if name in ("Personality", "WampWebSocketServerFactory"):
        if _classes is None:
            _classes = _make_classes()
        return _classes[0] if name == "Personality" else _classes[1]
    raise AttributeError(name)


def main(argv=None) -> int:
    """``crossbar-cookiestore [start|stop|status|check|init|version|...] ...``: Crossbar.io's
    node commands and options, with the cookiestore personality."""
    argv = list(sys.argv if argv is None else argv)
    executable = argv[0]
    args = argv[1:]
    if args and args[0] == "standalone":
        args = args[1:]
    sys.argv = [executable] + args

    from autobahn.twisted import install_reactor

    # As crossbar's own entry point: install the reactor before Crossbar's Twisted imports.
    reactor = install_reactor(
        explicit_reactor=os.environ.get("CROSSBAR_REACTOR", None), verbose=False, require_optimal_reactor=False
    )
    personality = __getattr__("Personality")

    from crossbar.node.main import main as crossbar_main

    return crossbar_main(executable, args, reactor, personality)


if __name__ == "__main__":
    sys.exit(main())
