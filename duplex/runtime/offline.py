"""The offline driver: steps one session on the offline clock, as fast as the CPU
allows, until its input is used up and the agent is done.

``duplex run``, the eval runner and the latency and soak benches all drive a
session the same way: a ``FrameSource`` hands one input frame a tick (the user's
audio while it lasts, then what the room hears: silence, or the agent's own echo),
each tick's result (``Tick``: input, output, events) goes to the caller, and one
``TailRule`` says when to stop once the user's audio is over: when the agent has
been idle long enough (no response in flight, no user turn open), never sooner
than a minimum and never later than a maximum.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from duplex.events import Event
from duplex.runtime.session import Session


class FrameSource(Protocol):
    """Where a driven session's input frames come from."""

    def has_more(self) -> bool:
        """True while user audio is still to come (the tail starts when it is False)."""
        ...

    def next_frame(self) -> np.ndarray:
        """The next input frame, exactly one frame long (silence once the user is done)."""
        ...


@dataclass(frozen=True)
class TailRule:
    """When to stop once the source has no more user audio.

    Tail time counts from the tick that consumed the last user audio (that tick
    included); it restarts should the source have user audio again (an insert the
    agent's own events scheduled).

    Attributes:
        idle_ms: stop once the agent has been idle (``Session.idle``) this long...
        min_ms: ...but not before this much tail time (endpointing, a late final);
        max_ms: stop at this much tail time whatever the agent is doing (0: stop as
            soon as the user's audio is over).
    """

    idle_ms: float = 500.0
    min_ms: float = 0.0
    max_ms: float = 15_000.0


# Stop as soon as the source runs out: the source itself decides the run's length.
NO_TAIL = TailRule(max_ms=0.0)


@dataclass(frozen=True)
class Tick:
    """One driven tick.

    Attributes:
        index: ticks driven before this one.
        t_ms: the stream time of its input frame.
        input: the input frame the session consumed.
        output: the frame the session played.
        events: the session's events since the previous tick (from its first on, the
            ``session.started`` event included).
    """

    index: int
    t_ms: float
    input: np.ndarray
    output: np.ndarray
    events: tuple[Event, ...]


class AudioFrames:
    """A recording cut into frames (the last one padded with silence), then silence."""

    def __init__(self, audio: np.ndarray, frame_samples: int) -> None:
        self.audio = audio
        self.frame_samples = frame_samples
        self.total = -(-len(audio) // frame_samples)  # frames that hold user audio
        self._next = 0

    def has_more(self) -> bool:
        return self._next < self.total

    def next_frame(self) -> np.ndarray:
        n = self.frame_samples
        frame = self.audio[self._next * n : (self._next + 1) * n]
        self._next += 1
        if len(frame) < n:
            frame = np.pad(frame, (0, n - len(frame)))
        return frame


def drive(
    session: Session,
    source: FrameSource,
    tail: TailRule = TailRule(),  # noqa: B008  (frozen)
    on_tick: Callable[[Tick], None] | None = None,
) -> int:
    """Step ``session`` on frames from ``source`` until the user's audio is over and
    ``tail`` says the agent is done.

    Args:
        session: a session of a runtime on the offline clock.
        source: the input frames.
        tail: when to stop after the user's audio.
        on_tick: given every tick's result, after the tick and before the source is
            asked for the next frame (it may schedule more user audio). Without it the
            session's events stay queued for its owner (``Session.take_events``).

    Returns:
        The number of ticks driven.
    """
    frame_ms = session.frame_ms
    tail_ms = idle_ms = 0.0
    ticks = 0
    while True:
        if source.has_more():
            tail_ms = 0.0
        else:
            tail_ms += frame_ms
            if tail_ms >= tail.max_ms:
                return ticks
            idle_ms = idle_ms + frame_ms if session.idle() else 0.0
            if idle_ms >= tail.idle_ms and tail_ms >= tail.min_ms:
                return ticks
        t_ms = session.t_ms
        frame = source.next_frame()
        output = session.step(frame)
        if on_tick is not None:
            on_tick(Tick(ticks, t_ms, frame, output, tuple(session.take_events())))
        ticks += 1
