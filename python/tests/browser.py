"""A WebSocket client that behaves like a browser running a WAMP client (WAMP over JSON): it
keeps the cookie jar (one cookie), sends it on every connection, and logs in with WAMP-CRA."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
from typing import Any, Optional

from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

HELLO, WELCOME, ABORT, CHALLENGE, AUTHENTICATE, GOODBYE = 1, 2, 3, 4, 5, 6

ROLES = {"caller": {}, "callee": {}, "publisher": {}, "subscriber": {}}


class Browser:
    """One browser: a cookie jar and WAMP sessions over WebSocket connections."""

    def __init__(self, cookie_name: str = "cbtid"):
        self.cookie_name = cookie_name
        self.cookie: Optional[str] = None

    def connect(self, url: str) -> "Connection":
        headers = {}
        if self.cookie:
            headers["Cookie"] = f"{self.cookie_name}={self.cookie}"
        # A node listens on its port before its web transport has attached the WebSocket
        # path (nodes.py's start() waits for the port only): a 404 then is retried, 10 s.
        deadline = time.monotonic() + 10
        while True:
            try:
                ws = connect(
                    url,
                    subprotocols=["wamp.2.json"],
                    additional_headers=headers,
                    compression=None,
                    proxy=None,
                    open_timeout=10,
                )
                break
            except InvalidStatus as e:
                if e.response.status_code != 404 or time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        set_cookie = ws.response.headers.get("Set-Cookie")
        if set_cookie:
            m = re.match(rf"{self.cookie_name}=([^;]*)", set_cookie)
            assert m, set_cookie
            self.cookie = m.group(1)
        return Connection(ws, set_cookie)


class Connection:
    def __init__(self, ws, set_cookie: Optional[str]):
        self.ws = ws
        self.set_cookie = set_cookie
        self.welcome: Optional[list] = None
        self.challenged = False

    def send(self, msg: list) -> None:
        self.ws.send(json.dumps(msg))

    def recv(self, timeout: float = 10) -> list:
        return json.loads(self.ws.recv(timeout=timeout))

    def hello(self, realm: str = "realm1", authid: str = "alice", secret: Optional[str] = None) -> list:
        """HELLO offering cookie and wampcra; answers a CHALLENGE when `secret` is given.
        Returns the WELCOME (or ABORT/CHALLENGE) message."""
        self.send([HELLO, realm, {"roles": ROLES, "authmethods": ["cookie", "wampcra"], "authid": authid}])
        msg = self.recv()
        if msg[0] == CHALLENGE:
            self.challenged = True
            if secret is None:
                return msg
            assert msg[1] == "wampcra", msg
            challenge = msg[2]["challenge"]
            sig = base64.b64encode(hmac.new(secret.encode(), challenge.encode(), hashlib.sha256).digest())
            self.send([AUTHENTICATE, sig.decode(), {}])
            msg = self.recv()
        if msg[0] == WELCOME:
            self.welcome = msg
        return msg

    def logout(self) -> list:
        self.send([GOODBYE, {}, "wamp.close.logout"])
        return self.recv()

    def wait_closed(self, timeout: float = 10) -> bool:
        """Whether the server closes this connection within `timeout` seconds."""
        try:
            while True:
                self.ws.recv(timeout=timeout)
        except ConnectionClosed:
            return True
        except TimeoutError:
            return False

    def close(self) -> None:
        try:
            self.ws.close()
        except Exception:
            pass

    @property
    def details(self) -> dict[str, Any]:
        assert self.welcome is not None
        return self.welcome[2]
