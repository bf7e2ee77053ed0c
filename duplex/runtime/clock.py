"""Clocks: what paces the ticks and where long work runs.

- ``RealtimeClock`` paces ticks to the wall clock (microphone, WebSocket) and
  runs long work on worker threads.
- ``OfflineClock`` runs ticks as fast as the CPU allows (files, evaluation) and
  runs long work inline, charging its measured compute time to stream time (see
  ``duplex.runtime.lanes``), so offline latencies are honest.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol

from duplex.lanes import Lane, LaneFactory
from duplex.runtime.lanes import CpuShare, InlineLane, ThreadLane


class Clock(Protocol):
    """Paces ticks and builds lanes that match its notion of time."""

    realtime: bool

    def start(self) -> None: ...

    def wait_for_tick(self, index: int, period_ms: float) -> float:
        """Block until tick ``index`` is due; return how late it started (ms)."""
        ...

    def now_ms(self) -> float:
        """The clock's own time (ms): wall time since it started in real time; 0 offline,
        where time is each session's stream time."""
        ...

    def session_lanes(self, now_ms: Callable[[], float]) -> LaneFactory:
        """The lane factory of one session (its lanes share that session's cores)."""
        ...


class OfflineClock:
    """As fast as the CPU allows; long work is charged to stream time.

    ``parallel_jobs`` foreground lane jobs compute at once (``CpuShare``); 0 lets
    every lane compute as if on cores of its own. Background lanes (partial
    transcripts, at low priority in real time) never hold up the others. Each
    session has a stream time of its own, so each has its own ``CpuShare``.
    """

    realtime = False

    def __init__(self, parallel_jobs: int = 1) -> None:
        self.parallel_jobs = parallel_jobs

    def start(self) -> None:
        pass

    def wait_for_tick(self, index: int, period_ms: float) -> float:
        return 0.0

    def now_ms(self) -> float:
        return 0.0

    def session_lanes(self, now_ms: Callable[[], float]) -> LaneFactory:
        cpu = CpuShare(self.parallel_jobs) if self.parallel_jobs > 0 else None

        def make_lane(name: str, background: bool = False) -> Lane:
            return InlineLane(name, None if background else cpu)

        return make_lane


class RealtimeClock:
    """Ticks paced to the wall clock; long work on worker threads.

    A session's foreground lanes step their jobs under one semaphore of
    ``parallel_jobs`` slots (0: none), so two stages that each use every core take
    turns instead of thrashing, just as the offline clock charges them.
    """

    realtime = True

    def __init__(self, parallel_jobs: int = 1) -> None:
        self._t0 = time.perf_counter()
        self.parallel_jobs = parallel_jobs

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

    def session_lanes(self, now_ms: Callable[[], float]) -> LaneFactory:
        cores = threading.BoundedSemaphore(self.parallel_jobs) if self.parallel_jobs > 0 else None

        def make_lane(name: str, background: bool = False) -> Lane:
            return ThreadLane(name, now_ms, background=background, cores=None if background else cores)

        return make_lane
