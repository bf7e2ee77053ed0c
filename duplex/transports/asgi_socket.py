"""An ASGI (Starlette / FastAPI) WebSocket seen through the surface the protocol code uses.

The protocol classes (``NativeConnection``, ``RealtimeConnection``) and the plain
server's per-connection handler were written against a ``websockets``
``ServerConnection``, and they use a small part of it: ``send``, ``recv``,
``close``, ``async for`` over incoming messages, ``request.path`` /
``request.headers``, ``remote_address`` and ``subprotocol``, with
``websockets.exceptions.ConnectionClosed`` raised once the peer is gone.
``PeerSocket`` names that surface; ``AsgiSocket`` gives it to a Starlette
WebSocket, with what the server's bounds read (``limits.GuardedSocket``: the
client's last message, a blocked send, ``abort``), so an ASGI ingress (Ray
Serve's) runs the very same protocol code as ``duplex serve`` instead of a copy.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable
from typing import Any, Protocol, TypeVar

from starlette.responses import Response
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosedError, ConnectionClosedOK
from websockets.frames import Close
from websockets.http11 import Request

log = logging.getLogger(__name__)

Message = str | bytes
T = TypeVar("T")


class PeerSocket(Protocol):
    """What the protocol code needs from a server-side WebSocket."""

    @property
    def request(self) -> Request | None: ...

    @property
    def remote_address(self) -> object: ...

    @property
    def subprotocol(self) -> str | None: ...

    async def send(self, message: Message) -> None: ...

    async def recv(self) -> Message: ...

    async def close(self, code: int = 1000, reason: str = "") -> None: ...

    def abort(self) -> None: ...

    def __aiter__(self) -> AsyncIterator[Message]: ...


def request_of(scope_path: str, query_string: bytes, raw_headers: list[tuple[bytes, bytes]]) -> Request:
    """The ``websockets`` request an ASGI scope describes (path with its query, headers)."""
    path = scope_path + (f"?{query_string.decode('latin-1')}" if query_string else "")
    headers = Headers([(k.decode("latin-1"), v.decode("latin-1")) for k, v in raw_headers])
    return Request(path, headers)


class AsgiSocket:
    """A Starlette ``WebSocket`` with the ``websockets`` ``ServerConnection`` surface.

    Args:
        websocket: the ASGI WebSocket, not yet accepted; ``accept()`` opens it,
            as the handshake has already happened when ``websockets`` calls a handler.
    """

    def __init__(self, websocket: WebSocket) -> None:
        self._ws = websocket
        scope = websocket.scope
        self._request = request_of(scope.get("path", "/"), scope.get("query_string", b""), scope.get("headers", []))
        client = websocket.client
        self._remote = (client.host, client.port) if client is not None else None
        self._subprotocol: str | None = None
        self._close: Close | None = None  # the close frame received from the client, once it has gone
        # For the server's idle and slow-reader bounds: when the client last sent a
        # message, and since when a send has been blocked (None: no send in progress).
        self.last_message = time.monotonic()
        self.sending_since: float | None = None
        self._pending: set[asyncio.Future[Any]] = set()  # receives and sends in progress
        self._aborted = False

    @property
    def request(self) -> Request:
        return self._request

    @property
    def remote_address(self) -> tuple[str, int] | None:
        return self._remote

    @property
    def subprotocol(self) -> str | None:
        return self._subprotocol

    @property
    def open(self) -> bool:
        return (
            self._close is None
            and self._ws.client_state == WebSocketState.CONNECTED
            and self._ws.application_state == WebSocketState.CONNECTED
        )

    async def refuse(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        """Answer the handshake with an HTTP response (as ``websockets``' ``process_request``
        does) where the ASGI server supports it, otherwise close before accepting (HTTP 403)."""
        if "websocket.http.response" in self._ws.scope.get("extensions", {}):
            kept = {k: v for k, v in headers if k.lower() != "content-length"}
            await self._ws.send_denial_response(Response(body, status_code=status, headers=kept))
        else:
            await self._ws.close(1008, body.decode("utf-8", "replace")[:120])
        self._close = Close(1008, "refused")

    async def accept(self, subprotocol: str | None = None) -> None:
        """Complete the handshake (choosing ``subprotocol``, if any, of the client's offers)."""
        self._subprotocol = subprotocol
        await self._ws.accept(subprotocol=subprotocol)

    def _closed(self) -> ConnectionClosedOK | ConnectionClosedError:
        rcvd = self._close
        if rcvd is not None and rcvd.code in (1000, 1001):
            return ConnectionClosedOK(rcvd, None)
        return ConnectionClosedError(rcvd, None)

    def abort(self) -> None:
        """Drop the connection at once (a close frame could not go out): the receive or
        send in progress raises ``ConnectionClosed``, as on a ``websockets`` connection
        whose transport is aborted. ASGI cannot drop the socket itself: the ASGI server
        does when the application returns."""
        self._aborted = True
        if self._close is None:
            self._close = Close(1006, "aborted")
        for io in list(self._pending):
            io.cancel()

    async def _io(self, operation: Awaitable[T]) -> T:
        """``operation`` (a receive or send), cut short by ``abort``."""
        task: asyncio.Future[T] = asyncio.ensure_future(operation)
        self._pending.add(task)
        try:
            return await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if self._aborted and (current is None or current.cancelling() == 0):
                raise self._closed() from None
            raise
        finally:
            self._pending.discard(task)

    async def send(self, message: Message) -> None:
        """Send a text (str) or binary (bytes) message; ``ConnectionClosed`` once the peer is gone."""
        if not self.open:
            raise self._closed()
        self.sending_since = time.monotonic()
        try:
            if isinstance(message, str):
                await self._io(self._ws.send_text(message))
            else:
                await self._io(self._ws.send_bytes(message))
        except (WebSocketDisconnect, RuntimeError, OSError) as exc:
            # Starlette raises RuntimeError for a send after close, the server OSError for a lost peer.
            if self._close is None:
                self._close = Close(getattr(exc, "code", 1006), "")
            raise self._closed() from exc
        finally:
            self.sending_since = None

    async def recv(self) -> Message:
        """The next message from the client; ``ConnectionClosed`` when it has gone."""
        if self._close is not None:
            raise self._closed()
        message = await self._io(self._ws.receive())
        if message["type"] == "websocket.disconnect":
            self._close = Close(int(message.get("code", 1000)), str(message.get("reason") or ""))
            raise self._closed()
        self.last_message = time.monotonic()
        text = message.get("text")
        if text is not None:
            return str(text)
        return bytes(message.get("bytes") or b"")

    async def __aiter__(self) -> AsyncIterator[Message]:
        """Messages until the client closes (cleanly: the loop ends; abnormally: it raises)."""
        while True:
            try:
                yield await self.recv()
            except ConnectionClosedOK:
                return

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close with ``code`` and ``reason``; nothing happens if it is already closed."""
        if self._ws.application_state == WebSocketState.DISCONNECTED or self._close is not None:
            return
        try:
            await self._ws.close(code, reason)
        except (RuntimeError, OSError) as exc:
            log.debug("close after the peer left: %s", exc)
