"""Per-connection bounds: input audio rate, idle time, session length and slow
readers (docs/serving.md; the numbers live in ``ServerConfig``).

``InputRate`` is a token bucket over audio duration: a client may send audio at
real time plus a burst; what overflows is dropped and counted, to be reported.
``GuardedSocket`` is what these bounds need of a connection: when the client last
sent a message, since when a send has waited on a slow reader, ``close`` and
``abort``. ``GuardedConnection`` (the plain server's ``websockets`` connection) and
``asgi_socket.AsgiSocket`` (the ASGI / Ray Serve ingress) both have it.
``watch`` closes a connection that breaks the idle, length or reader bounds, with an
error event and close code 1008 naming the limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, runtime_checkable

from websockets.asyncio.server import ServerConnection

from duplex.config import ServerConfig

log = logging.getLogger(__name__)

POLICY_CLOSE = 1008


class InputRate:
    """A token bucket of audio milliseconds: real time plus ``burst_ms``."""

    def __init__(self, burst_ms: float) -> None:
        self.burst_ms = float(burst_ms)
        self._tokens = float(burst_ms)
        self._last = time.monotonic()
        self.dropped_ms = 0.0  # not yet reported
        self._reported = 0.0

    def admit(self, duration_ms: float) -> float:
        """The part of ``duration_ms`` of audio (ms, from its start) that fits; the rest
        is counted as dropped."""
        now = time.monotonic()
        self._tokens = min(self.burst_ms, self._tokens + 1000.0 * (now - self._last))
        self._last = now
        fits = min(duration_ms, max(0.0, self._tokens))
        self._tokens -= fits
        self.dropped_ms += duration_ms - fits
        return fits

    def report(self) -> float:
        """Dropped milliseconds to report now (at most once a second), else 0."""
        now = time.monotonic()
        if self.dropped_ms <= 0 or now - self._reported < 1.0:
            return 0.0
        dropped, self.dropped_ms, self._reported = self.dropped_ms, 0.0, now
        return dropped


@runtime_checkable
class GuardedSocket(Protocol):
    """A server-side WebSocket the bounds can watch and close."""

    last_message: float  # time.monotonic() of the client's last message
    sending_since: float | None  # since when a send has been blocked; None: none is

    @property
    def remote_address(self) -> Any: ...

    async def close(self, code: int = 1000, reason: str = "") -> None: ...

    def abort(self) -> None:
        """Drop the connection at once (its close frame could not go out)."""
        ...


class GuardedConnection(ServerConnection):
    """A server connection that tracks the client's last message and blocked sends."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.last_message = time.monotonic()
        self.sending_since: float | None = None

    async def recv(self, *args: Any, **kwargs: Any) -> Any:
        message = await super().recv(*args, **kwargs)
        self.last_message = time.monotonic()
        return message

    async def send(self, *args: Any, **kwargs: Any) -> None:
        self.sending_since = time.monotonic()
        try:
            await super().send(*args, **kwargs)
        finally:
            self.sending_since = None

    def abort(self) -> None:
        self.transport.abort()


Notify = Callable[[str, str], Awaitable[None]]


async def close_for(ws: GuardedSocket, notify: Notify | None, code: str, message: str, close_code: int = POLICY_CLOSE) -> None:
    """Tell the client why (when it still reads) and close; abort if the close cannot go out."""
    log.info("closing %s: %s", ws.remote_address, message)
    if notify is not None:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(1.0):
                await notify(code, message)
    try:
        async with asyncio.timeout(2.0):
            await ws.close(close_code, message[:120])
    except Exception:  # including TimeoutError: the close frame could not go out
        ws.abort()


async def watch(ws: GuardedSocket, config: ServerConfig, notify: Notify, period_s: float = 0.25) -> None:
    """Close ``ws`` when it breaks the idle, session-length or slow-reader bound."""
    opened = time.monotonic()
    while True:
        await asyncio.sleep(period_s)
        now = time.monotonic()
        if now - ws.last_message > config.idle_timeout_s:
            await close_for(ws, notify, "idle_timeout", f"no message for {config.idle_timeout_s:g} s (server.idle_timeout_s)")
            return
        if now - opened > config.max_session_s:
            await close_for(ws, notify, "session_too_long", f"the session reached its limit of {config.max_session_s:g} s (server.max_session_s)")
            return
        since = ws.sending_since
        if since is not None and now - since > config.send_timeout_s:
            # The reader is too slow: its socket buffer is full. Nothing more is queued
            # for it; the error event cannot reach it, so it is not sent.
            await close_for(ws, None, "slow_reader", f"the client read too slowly: output waited over {config.send_timeout_s:g} s")
            return
