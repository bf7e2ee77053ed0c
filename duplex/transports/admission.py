"""Admission before cost: per-address connection limits, checked before any model
work (docs/serving.md).

A client address may hold ``max_connections_per_ip`` connections at once and open
``max_connects_per_minute_per_ip`` a minute. Both are checked at the HTTP handshake
(refused with 429 and ``Retry-After``), and the count is taken for real when the
WebSocket opens. Engine capacity is checked by ``Engine.reserve`` before a session
is built. Memory stays bounded: addresses with nothing open and no recent connect
are forgotten.
"""

from __future__ import annotations

import collections
import threading
import time

from duplex.config import ServerConfig
from duplex.transports.access import Refusal

WINDOW_S = 60.0
MAX_TRACKED_ADDRESSES = 100_000


class Admission:
    """Per-address connection counting and rate limiting."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self._open: collections.Counter[str] = collections.Counter()
        self._recent: dict[str, collections.deque[float]] = {}
        self._lock = threading.Lock()

    def _prune(self, ip: str, now: float) -> collections.deque[float]:
        recent = self._recent.setdefault(ip, collections.deque())
        while recent and now - recent[0] > WINDOW_S:
            recent.popleft()
        return recent

    def check(self, ip: str) -> Refusal | None:
        """At the handshake: would a connection from ``ip`` be admitted? Counts the attempt."""
        now = time.monotonic()
        with self._lock:
            if len(self._recent) > MAX_TRACKED_ADDRESSES:
                self._forget(now)
            recent = self._prune(ip, now)
            if len(recent) >= self.config.max_connects_per_minute_per_ip:
                wait = max(1, int(WINDOW_S - (now - recent[0])) + 1)
                return Refusal(429, f"too many connections from your address in a minute; retry in {wait} s\n")
            recent.append(now)
            if self._open[ip] >= self.config.max_connections_per_ip:
                return Refusal(429, f"your address already holds {self._open[ip]} connections (server.max_connections_per_ip)\n")
        return None

    def enter(self, ip: str) -> bool:
        """The WebSocket opened: count it. False (and not counted) when over the limit."""
        with self._lock:
            if self._open[ip] >= self.config.max_connections_per_ip:
                return False
            self._open[ip] += 1
            return True

    def leave(self, ip: str) -> None:
        with self._lock:
            self._open[ip] -= 1
            if self._open[ip] <= 0:
                del self._open[ip]

    def open_connections(self) -> int:
        with self._lock:
            return sum(self._open.values())

    def _forget(self, now: float) -> None:
        for ip in [ip for ip, r in self._recent.items() if not r or now - r[-1] > WINDOW_S]:
            if ip not in self._open:
                del self._recent[ip]
