"""The TDM engine: one clock, many sessions, one frame per session per tick.

Offline, the engine steps a session inline, frame after frame, as fast as the
CPU allows (long work is charged to stream time by the offline lanes).

In real time, a pacing thread ticks every frame period and hands each session
the frame it has queued; each session steps on a worker thread of its own, so
a slow or dead session falls behind alone (and says so with ``stall`` events)
while every other session keeps its frame rate.
"""

from __future__ import annotations

import logging
import queue
import threading
import time

import numpy as np

from duplex.config import Config
from duplex.errors import EngineFull
from duplex.events import Stall
from duplex.runtime.clock import Clock
from duplex.runtime.session import Session

log = logging.getLogger(__name__)


class _Worker:
    """Steps one session on its own thread, frame by frame."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.frames: queue.Queue[np.ndarray | None] = queue.Queue()
        self.lagging = False
        self.thread = threading.Thread(target=self._run, name=f"session-{session.id}", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            frame = self.frames.get()
            if frame is None:
                return
            try:
                self.session.step(frame)
            except Exception as exc:  # one broken session must not take the engine down
                log.exception("session %s failed", self.session.id)
                self.session.error(f"session failed: {exc}", "session_failed")
                self.session.close("error")
                return


class Engine:
    """Steps sessions on a clock."""

    def __init__(self, config: Config, clock: Clock) -> None:
        self.config = config
        self.clock = clock
        self.period_ms = float(config.audio.frame_ms)
        self._workers: dict[str, _Worker] = {}
        self._reserved: set[str] = set()  # slots promised to sessions being built
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.ticks = 0
        self.late_ticks = 0

    # ------------------------------------------------------------ real time
    def _full(self) -> EngineFull:
        return EngineFull(
            f"engine is full ({self.config.engine.max_sessions} sessions); "
            "try again later, raise engine.max_sessions or run another engine process"
        )

    def free_slots(self) -> int:
        """Sessions that could still be added (reserved slots count as taken)."""
        with self._lock:
            return self.config.engine.max_sessions - len(self._workers) - len(self._reserved)

    def reserve(self, session_id: str) -> None:
        """Promise a slot to a session before anything is built for it.

        Raises:
            EngineFull: no slot is free; nothing needs undoing.
        """
        with self._lock:
            if len(self._workers) + len(self._reserved) >= self.config.engine.max_sessions:
                raise self._full()
            self._reserved.add(session_id)

    def release(self, session_id: str) -> None:
        """Give back a reserved slot whose session was never added."""
        with self._lock:
            self._reserved.discard(session_id)

    def add(self, session: Session) -> None:
        """Start stepping ``session`` (on the slot reserved for it, if any).

        Raises:
            EngineFull: no slot was reserved and none is free.
        """
        with self._lock:
            reserved = session.id in self._reserved
            self._reserved.discard(session.id)
            if not reserved and len(self._workers) + len(self._reserved) >= self.config.engine.max_sessions:
                raise self._full()
            self._workers[session.id] = _Worker(session)
        if self._thread is None:
            self.start()

    def remove(self, session: Session) -> None:
        with self._lock:
            worker = self._workers.pop(session.id, None)
        if worker is not None:
            worker.frames.put(None)
            worker.thread.join(timeout=5.0)

    def start(self) -> None:
        self._stop.clear()
        self.clock.start()
        self._thread = threading.Thread(target=self._run, name="engine-clock", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None
        with self._lock:
            workers = list(self._workers.values())
            self._workers.clear()
        for w in workers:
            w.frames.put(None)
        for w in workers:
            w.thread.join(timeout=5.0)

    def sessions(self) -> list[Session]:
        with self._lock:
            return [w.session for w in self._workers.values()]

    def _run(self) -> None:
        idx = 0
        fill_after_s = 0.25  # a client that stopped sending gets silence after this
        max_backlog = int(self.config.engine.max_input_backlog_ms * self.config.audio.input_sample_rate / 1000)
        while not self._stop.is_set():
            late = self.clock.wait_for_tick(idx, self.period_ms)
            if late > self.period_ms:
                self.late_ticks += 1
            idx += 1
            self.ticks = idx
            with self._lock:
                workers = list(self._workers.values())
            now = time.monotonic()
            for w in workers:
                s = w.session
                if s.closed:
                    continue
                pending = w.frames.qsize()
                if pending > 1:
                    # The session is behind by more than a frame: say so once per episode.
                    if not w.lagging:
                        w.lagging = True
                        s.emit(Stall(s.t_ms, "session", 0.0, self.period_ms, pending * self.period_ms))
                    if pending * self.period_ms > self.config.engine.max_input_backlog_ms:
                        continue  # let it catch up; its input waits in its inbox (bounded)
                else:
                    w.lagging = False
                s.bound_backlog(max_backlog)
                frame = s.take_frame()
                if frame is None:
                    if now - s.last_input_wall < fill_after_s:
                        continue  # jitter: wait for the client's next packet
                    frame = np.zeros(s.frame_samples, np.float32)
                    s.filled_input_samples += s.frame_samples
                w.frames.put(frame)
                # Catch up when a client sent a burst.
                if s.input_backlog() > 4 * s.frame_samples:
                    extra = s.take_frame()
                    if extra is not None:
                        w.frames.put(extra)
