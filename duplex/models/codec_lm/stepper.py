"""The batch stepper: one batched codec-LM step per tick for sessions on many threads.

In real time the engine steps each session on a thread of its own. Each
session's ``listen`` deposits its input frame here (``submit``) and its
``speak`` collects its slot's output (``result``). A *round* (one
``CodecCore.step``) runs as soon as every joined slot has deposited a frame, or
when ``wait_ms`` has passed since the round's first deposit; slots that were
late are masked in that round and step in the next. The round runs on whichever
session thread closes it, so no extra thread and no hand-off is needed; offline,
a batch of one steps immediately.

Each slot's frames queue in order, and each output is matched to its frame by a
ticket, so a late session shows up as a longer tick (a stall), never as drift.
Joining takes a free slot; its row is reset (``reset_streaming`` on that slot
only) just before the next round. Leaving frees the slot.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from duplex.errors import BackendError
from duplex.models.codec_lm.core import CodecCore, SlotOutput

log = logging.getLogger(__name__)


@dataclass
class _Slot:
    pending: collections.deque[np.ndarray] = field(default_factory=collections.deque)
    outputs: dict[int, SlotOutput] = field(default_factory=dict)
    submitted: int = 0  # tickets handed out
    done: int = 0  # frames stepped
    generation: int = 0  # bumps on every join, so a stale ticket never reads a new session's output
    error: BaseException | None = None  # the round holding this slot's frame failed


@dataclass
class RoundStats:
    """What one round did: for benchmarks and logs."""

    stepped: int
    masked_late: int
    compute_ms: float
    waited_ms: float


class BatchStepper:
    """Collects one frame per joined slot, steps the batch once, hands each slot its output.

    Args:
        core: the batched model.
        wait_ms: how long a round waits for late slots after its first deposit.
    """

    def __init__(self, core: CodecCore, wait_ms: float) -> None:
        self.core = core
        self.wait_s = wait_ms / 1000.0
        self._cv = threading.Condition()
        self._slots = [_Slot() for _ in range(core.slots)]
        self._joined: set[int] = set()
        self._to_reset: set[int] = set()
        self._opened_at: float | None = None  # monotonic time of the open round's first deposit
        self._running = False
        self.rounds: collections.deque[RoundStats] = collections.deque(maxlen=4096)

    # ------------------------------------------------------------ membership
    def join(self) -> int:
        """Take a free slot with the profile's sampling; its row is reset before the next round.

        Raises:
            BackendError: every slot is taken.
        """
        with self._cv:
            while self._running:  # the sampling tensors are read by the step
                self._cv.wait()
            for i in range(self.core.slots):
                if i not in self._joined:
                    self._joined.add(i)
                    s = self._slots[i]
                    s.pending.clear()
                    s.outputs.clear()
                    s.submitted = s.done = 0
                    s.error = None
                    s.generation += 1
                    self._to_reset.add(i)
                    self.core.default_sampling(i)
                    return i
        raise BackendError(
            f"all {self.core.slots} codec LM slots are in use; raise models.codec_lm.slots "
            "(and engine.max_sessions) or run another engine process"
        )

    def leave(self, slot: int) -> None:
        """Free a slot. Frames it queued are dropped; its row is masked until reused."""
        with self._cv:
            self._joined.discard(slot)
            s = self._slots[slot]
            s.pending.clear()
            s.outputs.clear()
            self._cv.notify_all()

    def set_sampling(self, slot: int, temperature: float, temperature_text: float, top_k: int = 0, top_k_text: int = 0) -> None:
        with self._cv:
            while self._running:
                self._cv.wait()
            self.core.set_sampling(slot, temperature, temperature_text, top_k, top_k_text)

    # ------------------------------------------------------------ frames
    def submit(self, slot: int, frame: np.ndarray) -> int:
        """Deposit ``slot``'s next input frame; returns its ticket for ``result``."""
        run = False
        with self._cv:
            if slot not in self._joined:
                raise BackendError(f"slot {slot} is not joined")
            s = self._slots[slot]
            s.pending.append(frame)
            ticket = s.submitted
            s.submitted += 1
            if self._opened_at is None:
                self._opened_at = time.monotonic()
            if not self._running and self._all_deposited():
                run = self._claim_round()
            self._cv.notify_all()
        if run:
            self._run_round()
        return ticket

    def result(self, slot: int, ticket: int, timeout_s: float = 30.0) -> SlotOutput:
        """Wait for the output of ``slot``'s frame ``ticket`` (running overdue rounds on this thread).

        Raises:
            BackendError: the output did not come within ``timeout_s`` (a dead batch).
        """
        give_up = time.monotonic() + timeout_s
        while True:
            run = False
            with self._cv:
                s = self._slots[slot]
                if s.done > ticket:
                    return s.outputs.pop(ticket)
                if s.error is not None:
                    raise BackendError(f"codec LM step failed: {s.error}") from s.error
                if slot not in self._joined:
                    raise BackendError(f"slot {slot} left while waiting for its output")
                now = time.monotonic()
                if now > give_up:
                    raise BackendError(f"codec LM slot {slot}: no output after {timeout_s:.0f} s")
                if not self._running:
                    due = self._all_deposited() or (
                        self._opened_at is not None and now - self._opened_at >= self.wait_s
                    )
                    if due:
                        run = self._claim_round()
                    else:
                        wait = self.wait_s if self._opened_at is None else self._opened_at + self.wait_s - now
                        self._cv.wait(max(wait, 1e-4))
                else:
                    self._cv.wait(0.05)
            if run:
                self._run_round()

    # ------------------------------------------------------------ rounds
    def _all_deposited(self) -> bool:
        return bool(self._joined) and all(self._slots[i].pending for i in self._joined)

    def _claim_round(self) -> bool:
        """Under the lock: mark a round as running if there is anything to step."""
        if self._running or not any(self._slots[i].pending for i in self._joined):
            return False
        self._running = True
        return True

    def _run_round(self) -> None:
        with self._cv:
            frames = {i: self._slots[i].pending.popleft() for i in self._joined if self._slots[i].pending}
            generations = {i: self._slots[i].generation for i in frames}
            late = len(self._joined) - len(frames)
            resets = sorted(self._to_reset)
            self._to_reset.clear()
            waited = 0.0 if self._opened_at is None else time.monotonic() - self._opened_at
            leftover = any(self._slots[i].pending for i in self._joined)
            self._opened_at = time.monotonic() if leftover else None
        t0 = time.perf_counter()
        outputs: dict[int, SlotOutput] = {}
        error: BaseException | None = None
        try:
            self.core.reset(resets)
            outputs = self.core.step(frames)
        except Exception as exc:  # every waiting session must hear of it, not hang
            log.exception("codec LM round failed")
            error = exc
        finally:
            compute_ms = 1000.0 * (time.perf_counter() - t0)
            with self._cv:
                for i, out in outputs.items():
                    s = self._slots[i]
                    if i in self._joined and s.generation == generations[i]:
                        s.outputs[s.done] = out
                        s.done += 1
                if error is not None:
                    for i in frames:
                        if self._slots[i].generation == generations[i]:
                            self._slots[i].error = error
                self._running = False
                self.rounds.append(RoundStats(len(frames), late, compute_ms, 1000.0 * waited))
                self._cv.notify_all()
        if late:
            log.debug("codec LM round: %d stepped, %d late (masked)", len(frames), late)
