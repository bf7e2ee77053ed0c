"""What Ray Serve's HTTP proxy adds for duplex: a lost replica closes its sessions with 1012.

When a replica dies mid-conversation, Serve's proxy sees the replica's stream end
with an actor error and returns from the ASGI call without a close frame; the
client then sees the TCP connection drop (1006, "abnormal closure"), which says
nothing about what to do. ``ReconnectOnReplicaLoss`` wraps the proxy's ASGI app:
for a WebSocket that was accepted and not closed by the application, it sends
close 1012 ("service restart"), which tells the client to reconnect (a new
connection lands on a live replica). The same goes for a WebSocket whose handshake
the proxy answers with an HTTP error (no replica could take it): it gets the
``error`` event that ``duplex serve`` sends and close 1013 ("try again later").

Serve installs proxy middlewares from a callback named in the environment of the
cluster's processes: ``RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH=
duplex.transports.ray_proxy:proxy_middlewares`` (``duplex serve --replicas`` sets it
for a cluster it starts; set it on ``ray start`` / in the pod spec otherwise).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

log = logging.getLogger(__name__)

PROXY_CALLBACK_ENV = "RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH"
PROXY_CALLBACK = "duplex.transports.ray_proxy:proxy_middlewares"

RESTART_CODE = 1012  # service restart: reconnect
BUSY_CODE = 1013  # try again later

Scope = MutableMapping[str, Any]
AsgiMessage = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[AsgiMessage]]
Send = Callable[[AsgiMessage], Awaitable[None]]
AsgiApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def busy_event(message: str) -> str:
    """The ``error`` event ``duplex serve`` sends before closing 1013 (engine full)."""
    return json.dumps({"type": "error", "code": "unavailable", "message": message})


class ReconnectOnReplicaLoss:
    """ASGI middleware for Serve's proxy; HTTP requests pass through untouched."""

    def __init__(self, app: AsgiApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            await self.app(scope, receive, send)
            return
        state = {"accepted": False, "closed": False, "refused": False}

        async def tracked_send(message: AsgiMessage) -> None:
            kind = message["type"]
            if kind == "http.response.start" and not state["accepted"]:
                # The proxy refuses the handshake (no replica available): answer as the engine does.
                state["refused"] = True
                await send({"type": "websocket.accept"})
                await send({"type": "websocket.send", "text": busy_event(f"no replica can take a session now (HTTP {message.get('status')})")})
                await send({"type": "websocket.close", "code": BUSY_CODE, "reason": "try again later"})
                state["closed"] = True
                return
            if kind == "http.response.body" and state["refused"]:
                return
            if kind == "websocket.accept":
                state["accepted"] = True
            elif kind in ("websocket.close", "websocket.http.response.start"):
                state["closed"] = True
            await send(message)

        client_gone = {"gone": False}

        async def tracked_receive() -> AsgiMessage:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                client_gone["gone"] = True
            return message

        try:
            await self.app(scope, tracked_receive, tracked_send)
        finally:
            if state["accepted"] and not state["closed"] and not client_gone["gone"]:
                log.warning("the replica serving %s ended without closing it: close 1012", scope.get("path"))
                try:
                    await send({"type": "websocket.close", "code": RESTART_CODE, "reason": "replica lost; reconnect"})
                except Exception as exc:  # the client may be gone too
                    log.debug("could not send 1012: %s", exc)


def proxy_middlewares() -> list[Any]:
    """Serve's proxy callback: the middlewares it wraps its ASGI app in."""
    from starlette.middleware import Middleware

    return [Middleware(ReconnectOnReplicaLoss)]
