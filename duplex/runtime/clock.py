"""Clocks: what paces the ticks and where long work runs.

- ``RealtimeClock`` paces ticks to the wall clock (microphone, WebSocket) and
  runs long work on worker threads.
- ``OfflineClock`` runs ticks as fast as the CPU allows (files, evaluation) and
  runs long work inline, charging its measured compute time to stream time (see
  ``duplex.runtime.lanes``), so offline latencies are honest.
"""

from __future__ import annotations

import time
from typing import Protocol

from duplex.runtime.lanes import InlineLane, Lane, ThreadLane


class Clock(Protocol):
    """Paces ticks and builds lanes that match its notion of time."""

    realtime: bool

    def start(self) -> None: ...

    def wait_for_tick(self, index: int, period_ms: float) -> float:
        """Block until tick ``index`` is due; return how late it started (ms)."""
        ...

    def make_lane(self, name: str, now_ms: callable, background: bool = False) -> Lane:  # type: ignore[valid-type]
        ...


class OfflineClock:
    """As fast as the CPU allows; long work is charged to stream time."""

    realtime = False

    def start(self) -> None:
        pass

    def wait_for_tick(self, index: int, period_ms: float) -> float:
        return 0.0

    def make_lane(self, name: str, now_ms, background: bool = False) -> Lane:  # noqa: ANN001
        return InlineLane(name)


class RealtimeClock:
    """Ticks paced to the wall clock; long work on worker threads."""

    realtime = True

    def __init__(self) -> None:
        self._t0 = time.perf_counter()

    def start(self) -> None:
        self._t0 = time.perf_counter()

    def now_ms(self) -> float:
        return 1000.0 * (time.perf_counter() - self._t0)

    def wait_for_tick(self, index: int, period_ms: float) -> float:
        due = index * period_ms
        delay = due - self.now_ms()
        if delay > 0:
            time.sleep(delay / 1000.0)
            return 0.0
        return -delay

    def make_lane(self, name: str, now_ms, background: bool = False) -> Lane:  # noqa: ANN001
        return ThreadLane(name, now_ms, background=background)
