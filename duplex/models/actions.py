"""Commands the turn-taker (policy layer) hands to a model session each tick.

They live in the models layer because models execute them; policy imports them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Action:
    """Base of the turn-taker's decisions."""


@dataclass(frozen=True)
class Transcribe(Action):
    """Transcribe the user's audio in [start_ms, end_ms] (a final transcript).

    ``draft`` asks the model to also start drafting a response, held until
    ``TakeTurn`` (preemptive generation).
    """

    start_ms: float
    end_ms: float
    draft: bool = True


@dataclass(frozen=True)
class DiscardDraft(Action):
    """The user went on speaking: throw away any transcript/response drafted so far."""


@dataclass(frozen=True)
class TakeTurn(Action):
    """The user's turn ended: answer ``text`` (release the draft if it matches)."""

    text: str
    end_of_speech_ms: float


@dataclass(frozen=True)
class PauseOutput(Action):
    """Hold output (a possible barge-in): keep the queued audio, play silence."""


@dataclass(frozen=True)
class ResumeOutput(Action):
    """A false alarm: continue output from where it paused."""


@dataclass(frozen=True)
class StopOutput(Action):
    """A confirmed interruption: flush all queued audio, cancel generation, truncate history."""


@dataclass(frozen=True)
class Backchannel(Action):
    """Say a short acknowledgement ("mhm") over the user's pause, without taking the turn."""
