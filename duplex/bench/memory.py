"""A process's memory as a benchmark reports it: RSS, and USS/PSS for shared pages.

RSS counts every resident page a process maps, so a weight file memory-mapped twice
(two llama.cpp models of one GGUF) counts twice, and pages shared with other processes
count in full. USS counts only the pages this process alone maps (what it would give
back by exiting); PSS shares the others out. Memory per session is read from USS.
"""

from __future__ import annotations

import gc
import threading
from dataclasses import dataclass
from typing import Self

import psutil


@dataclass(frozen=True)
class MemorySample:
    """One reading, in MiB."""

    rss_mb: float
    uss_mb: float
    pss_mb: float

    def as_dict(self) -> dict[str, float]:
        return {"rss_mb": round(self.rss_mb, 1), "uss_mb": round(self.uss_mb, 1), "pss_mb": round(self.pss_mb, 1)}


def memory_now(collect: bool = False) -> MemorySample:
    """This process's memory now (``collect``: after a garbage collection)."""
    if collect:
        gc.collect()
    m = psutil.Process().memory_full_info()
    return MemorySample(m.rss / 2**20, m.uss / 2**20, getattr(m, "pss", 0) / 2**20)


class PeriodicSampler:
    """Calls ``sample()`` every ``interval_s`` on a thread of its own, from ``with`` entry
    to exit. Subclasses say what a sample reads and keeps."""

    def __init__(self, interval_s: float, name: str) -> None:
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5.0)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def sample(self) -> None:
        raise NotImplementedError


class PeakMemory(PeriodicSampler):
    """Samples this process's memory on a thread of its own until stopped; keeps the peaks.

    Args:
        interval_s: seconds between readings (a reading walks the process's page maps:
            some milliseconds).
    """

    def __init__(self, interval_s: float = 0.5) -> None:
        super().__init__(interval_s, "bench-memory")
        self._peak = memory_now()

    def sample(self) -> None:
        self._note(memory_now())

    def _note(self, m: MemorySample) -> None:
        p = self._peak
        self._peak = MemorySample(max(p.rss_mb, m.rss_mb), max(p.uss_mb, m.uss_mb), max(p.pss_mb, m.pss_mb))

    @property
    def peak(self) -> MemorySample:
        """The largest reading of each kind so far."""
        return self._peak
