"""A bounded, thread-safe event channel with sync and async consumers.

The engine thread produces; transports consume with ``async for`` on their own
event loop, the CLI consumes synchronously. When a consumer falls too far
behind, the oldest *audio* events are dropped first (counted), never the
control events.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import threading
from collections.abc import AsyncIterator

from duplex.events import AUDIO_EVENT_TYPES, Event


class EventChannel:
    def __init__(self, max_size: int = 4096) -> None:
        self.max_size = max_size
        self._items: collections.deque[Event] = collections.deque()
        self._cv = threading.Condition()
        self._closed = False
        self.dropped = 0
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []

    def put(self, event: Event) -> None:
        with self._cv:
            if self._closed:
                return
            if len(self._items) >= self.max_size:
                self._drop_one()
            self._items.append(event)
            self._cv.notify_all()
            waiters = list(self._waiters)
        for loop, ev in waiters:
            with contextlib.suppress(RuntimeError):  # the consumer's loop is closed
                loop.call_soon_threadsafe(ev.set)

    def _drop_one(self) -> None:
        for i, e in enumerate(self._items):
            if e.type in AUDIO_EVENT_TYPES:
                del self._items[i]
                self.dropped += 1
                return
        self._items.popleft()
        self.dropped += 1

    def close(self) -> None:
        with self._cv:
            self._closed = True
            self._cv.notify_all()
            waiters = list(self._waiters)
        for loop, ev in waiters:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(ev.set)

    @property
    def closed(self) -> bool:
        return self._closed

    def drain(self) -> list[Event]:
        """Take every queued event without waiting."""
        with self._cv:
            out = list(self._items)
            self._items.clear()
        return out

    def get(self, timeout: float | None = None) -> Event | None:
        """Wait for the next event; None on timeout or when closed and empty."""
        with self._cv:
            if not self._items and not self._closed:
                self._cv.wait(timeout)
            return self._items.popleft() if self._items else None

    async def stream(self) -> AsyncIterator[Event]:
        """Async iteration until the channel is closed and empty."""
        loop = asyncio.get_running_loop()
        wake = asyncio.Event()
        with self._cv:
            self._waiters.append((loop, wake))
        try:
            while True:
                with self._cv:
                    batch = list(self._items)
                    self._items.clear()
                    closed = self._closed
                    if not batch and not closed:
                        wake.clear()
                for e in batch:
                    yield e
                if not batch:
                    if closed:
                        return
                    await wake.wait()
        finally:
            with self._cv:
                self._waiters = [w for w in self._waiters if w[1] is not wake]
