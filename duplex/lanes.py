"""The lane contract: how a model session hands long work (ASR finals, LLM, TTS)
to the runtime, below both.

Work that cannot fit in one tick is a *job*: a generator that yields results
step by step (a transcript, a clause of text, a chunk of audio). A *lane* runs a
session's jobs first-in first-out and hands their results back to the tick that
polls it. A model session gets a ``LaneFactory`` when it opens and never knows
which lanes it got: the runtime's clock picks them (``duplex.runtime.lanes``).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

log = logging.getLogger(__name__)

JobFactory = Callable[[], Iterator[Any]]
T = TypeVar("T")
_ids = itertools.count(1)


@dataclass
class Job:
    """One unit of lane work. ``may_step`` lets the owner hold it back (backpressure)."""

    name: str
    factory: JobFactory
    submitted_ms: float
    may_step: Callable[[], bool] = lambda: True
    id: int = field(default_factory=lambda: next(_ids))
    cancelled: bool = False
    done: bool = False
    compute_ms: float = 0.0
    steps: int = 0
    _gen: Iterator[Any] | None = None

    def step(self) -> tuple[bool, Any]:
        """Advance one step. Returns (produced, item); done is set at exhaustion."""
        if self._gen is None:
            self._gen = self.factory()
        try:
            item = next(self._gen)
        except StopIteration:
            self.done = True
            return False, None
        self.steps += 1
        return True, item

    def close(self) -> None:
        gen = self._gen
        if isinstance(gen, Generator):
            try:
                gen.close()
            except Exception:  # pragma: no cover - a generator's cleanup failing is logged only
                log.exception("job %s failed while closing", self.name)


@dataclass(frozen=True)
class LaneResult(Generic[T]):
    """A job's item (None with an ``error``), and the stream time it became ready."""

    job: Job
    item: T | None
    ready_ms: float
    error: BaseException | None = None


class Lane(Protocol):
    """A FIFO executor of jobs for one session."""

    name: str

    def submit(
        self,
        name: str,
        factory: JobFactory,
        submitted_ms: float,
        may_step: Callable[[], bool] | None = None,
    ) -> Job: ...

    def cancel(self, job: Job) -> None: ...

    def poll(self, now_ms: float) -> list[LaneResult]: ...

    def busy(self) -> bool: ...

    def close(self) -> bool:
        """Cancel every job and stop; True once nothing runs on the lane any more (a
        job's stage objects may then be freed)."""
        ...


class LaneFactory(Protocol):
    """Makes a session's lane. A *background* lane's work (e.g. partial transcripts)
    yields the CPU to the others' when cores are short."""

    def __call__(self, name: str, background: bool = False) -> Lane: ...
