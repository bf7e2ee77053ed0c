"""Lanes: where a session's long model work (ASR finals, LLM, TTS) runs; the two
implementations of the lane contract (``duplex.lanes``), one for each clock.

- ``ThreadLane`` (real-time clock): a worker thread steps the job; results are
  handed over as soon as they exist.
- ``InlineLane`` (offline clock): the job is stepped lazily inside the tick that
  polls, and each step's measured compute time is charged to the lane's own
  timeline, so a result is released only at the stream time it would have been
  ready in a real-time run. Offline runs are therefore fast but honest.
  Foreground lanes also charge a ``CpuShare``: two jobs that would overlap in
  stream time compute one after the other, as they do in a real-time run, where
  a session's foreground lanes step under one semaphore (two stages that each
  use every core, the ASR final and the LLM draft on 2 cores, take turns).

Cancelling a job closes its generator: no further step is computed.
"""

from __future__ import annotations

import abc
import collections
import logging
import os
import threading
import time
from collections.abc import Callable

from duplex.lanes import Job, JobFactory, LaneResult

log = logging.getLogger(__name__)

_inline = threading.local()


def inline_compute_ms() -> float:
    """Compute time spent so far by inline (offline) lanes on this thread.

    The session subtracts it from its tick time: offline, lane work runs inside
    the tick's call but is charged to the lane's own timeline, not the tick's.
    """
    return getattr(_inline, "ms", 0.0)


class CpuShare:
    """The cores offline lanes share: at most ``slots`` jobs compute at the same stream time.

    A step of ``used`` ms that could start at ``ready`` starts when a slot is free
    and holds it until it ends. One slot models stages that each use every core;
    without a ``CpuShare`` every lane computes as if on cores of its own.
    """

    def __init__(self, slots: int) -> None:
        if slots < 1:
            raise ValueError(f"a CpuShare needs at least one slot, got {slots}")
        self._free_at = [0.0] * slots

    def run(self, ready_ms: float, used_ms: float) -> float:
        """Place ``used_ms`` of compute that may start at ``ready_ms``; return when it ends."""
        slot = min(range(len(self._free_at)), key=self._free_at.__getitem__)
        end = max(ready_ms, self._free_at[slot]) + used_ms
        self._free_at[slot] = end
        return end


class _Submits(abc.ABC):
    """What both lanes share: a submitted job is built one way, then queued their way."""

    def submit(
        self,
        name: str,
        factory: JobFactory,
        submitted_ms: float,
        may_step: Callable[[], bool] | None = None,
    ) -> Job:
        """Queue a job made by ``factory``, submitted at ``submitted_ms``; ``may_step``
        (default: always) holds it back while False."""
        job = Job(name, factory, submitted_ms, may_step or (lambda: True))
        self._enqueue(job)
        return job

    @abc.abstractmethod
    def _enqueue(self, job: Job) -> None:
        """Queue ``job`` behind the lane's other jobs."""


class InlineLane(_Submits):
    """Offline lane: steps jobs lazily, charging measured compute to its own timeline."""

    def __init__(self, name: str, cpu: CpuShare | None = None) -> None:
        self.name = name
        self._cpu = cpu
        self._queue: collections.deque[Job] = collections.deque()
        self._pending: list[LaneResult] = []
        self.cursor_ms = 0.0

    def _enqueue(self, job: Job) -> None:
        self._queue.append(job)

    def cancel(self, job: Job) -> None:
        job.cancelled = True
        job.close()
        self._pending = [r for r in self._pending if r.job is not job]

    def busy(self) -> bool:
        return any(not j.cancelled and not j.done for j in self._queue) or bool(self._pending)

    def poll(self, now_ms: float) -> list[LaneResult]:
        while self._queue:
            job = self._queue[0]
            if job.cancelled or job.done:
                self._queue.popleft()
                continue
            self.cursor_ms = max(self.cursor_ms, job.submitted_ms)
            if self.cursor_ms > now_ms:
                break
            if not job.may_step():
                self.cursor_ms = max(self.cursor_ms, now_ms)
                break
            t0 = time.perf_counter()
            try:
                produced, item = job.step()
                error = None
            except Exception as exc:  # a failing model step becomes an error result
                log.exception("job %s failed", job.name)
                produced, item, error = True, None, exc
                job.done = True
            used = 1000.0 * (time.perf_counter() - t0)
            _inline.ms = inline_compute_ms() + used
            job.compute_ms += used
            if self._cpu is not None:
                self.cursor_ms = self._cpu.run(self.cursor_ms, used)
            else:
                self.cursor_ms += used
            if produced:
                self._pending.append(LaneResult(job, item, self.cursor_ms, error))
        ready = [r for r in self._pending if r.ready_ms <= now_ms]
        self._pending = [r for r in self._pending if r.ready_ms > now_ms]
        return ready

    def close(self) -> bool:
        for job in self._queue:
            job.cancelled = True
            job.close()
        self._queue.clear()
        self._pending.clear()
        return True


BACKGROUND_NICE = 10


def _lower_thread_priority() -> None:
    """Give this thread a higher nice value (Linux: per thread), so it runs when the
    critical-path lanes leave a core free. Raising one's own nice value needs no
    privilege; where it is not supported the lane just runs at normal priority."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), BACKGROUND_NICE)
    except (AttributeError, OSError) as exc:  # pragma: no cover - platform dependent
        log.debug("could not lower lane priority: %s", exc)


class ThreadLane(_Submits):
    """Real-time lane: a worker thread steps jobs as fast as they compute."""

    def __init__(
        self,
        name: str,
        now_ms: Callable[[], float],
        *,
        background: bool = False,
        cores: threading.Semaphore | None = None,
    ) -> None:
        self.name = name
        self._now_ms = now_ms
        self._background = background
        self._cores = cores  # held while a step computes: shared with the session's other lanes
        self._queue: collections.deque[Job] = collections.deque()
        self._results: collections.deque[LaneResult] = collections.deque()
        self._cv = threading.Condition()
        self._closed = False
        self._current: Job | None = None
        self._thread = threading.Thread(target=self._run, name=f"lane-{name}", daemon=True)
        self._thread.start()

    def _enqueue(self, job: Job) -> None:
        with self._cv:
            self._queue.append(job)
            self._cv.notify()

    def cancel(self, job: Job) -> None:
        with self._cv:
            job.cancelled = True
            if job in self._queue:
                self._queue.remove(job)
            self._results = collections.deque(r for r in self._results if r.job is not job)
            self._cv.notify()

    def busy(self) -> bool:
        with self._cv:
            return bool(self._queue) or self._current is not None or bool(self._results)

    def poll(self, now_ms: float) -> list[LaneResult]:
        with self._cv:
            out = list(self._results)
            self._results.clear()
        return [r for r in out if not r.job.cancelled]

    def close(self) -> bool:
        with self._cv:
            self._closed = True
            for job in self._queue:
                job.cancelled = True
            self._queue.clear()
            if self._current is not None:
                self._current.cancelled = True
            self._cv.notify()
        self._thread.join(timeout=5.0)
        return not self._thread.is_alive()

    def _run(self) -> None:
        if self._background:
            _lower_thread_priority()
        while True:
            with self._cv:
                while not self._closed and not self._queue:
                    self._cv.wait()
                if self._closed:
                    return
                job = self._queue.popleft()
                self._current = job
            self._drive(job)
            with self._cv:
                self._current = None

    def _drive(self, job: Job) -> None:
        while not job.cancelled and not self._closed:
            if not job.may_step():
                time.sleep(0.01)
                continue
            if self._cores is not None:
                self._cores.acquire()
            t0 = time.perf_counter()
            try:
                produced, item = job.step()
                error = None
            except Exception as exc:
                log.exception("job %s failed", job.name)
                produced, item, error = True, None, exc
                job.done = True
            finally:
                if self._cores is not None:
                    self._cores.release()
            job.compute_ms += 1000.0 * (time.perf_counter() - t0)
            if produced:
                with self._cv:
                    if not job.cancelled:
                        self._results.append(LaneResult(job, item, self._now_ms(), error))
            if job.done:
                break
        job.close()
