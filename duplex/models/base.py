"""The seam between the runtime and any model: ``DuplexModel`` and its per-session state.

A ``DuplexModel`` is loaded once per runtime and opens one ``ModelSession`` per
conversation. The engine drives a model session with one call per phase of the
tick (listen, act on the turn-taker's decisions, think, speak). A session's
streaming state lives in its ``ModelSession`` object and nowhere else.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from duplex.events import Event
from duplex.lanes import LaneFactory
from duplex.models.actions import Action
from duplex.models.stages import ChatMessage, Tool, ToolChoice

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ListenSignals:
    """What the listen phase heard in one input frame.

    Attributes:
        vad_prob: speech probability of the (echo-cancelled) frame.
        energy_db: level of the echo-cancelled frame, dBFS.
        echo_db: level of the agent's own output played in this frame, dBFS.
        partial_text: a new partial transcript of the current utterance, if any.
        final_text: a final transcript, if one arrived this tick.
        final_end_ms: stream time up to which ``final_text`` covers the audio.
        final_confidence: the recognizer's average token log-probability for the
            newly transcribed part of ``final_text`` (None when it gives none).
        eot_score: a semantic end-of-utterance model's score that ``final_text`` is a
            finished turn (0..1; 0.5 is unsure), if the model has one; the turn-taker
            blends it with lexical cues (``policy/end_of_turn.py``).
        events: events the listen phase produced (transcripts), emitted before the tick's decisions.
        echo_explained: the frame's energy is explained by the agent's own residual echo
            (set by the runtime's echo guard, not by the model).
        echo_residual_db: the residual echo the runtime's echo guard expects in this
            frame after cancellation, dBFS (-120: none, or no guard).
    """

    vad_prob: float
    energy_db: float = -120.0
    echo_db: float = -120.0
    partial_text: str | None = None
    final_text: str | None = None
    final_end_ms: float = 0.0
    final_confidence: float | None = None
    eot_score: float | None = None
    events: tuple[Event, ...] = ()
    echo_explained: bool = False
    echo_residual_db: float = -120.0


@dataclass(frozen=True)
class AgentStatus:
    """What the agent's output side is doing, as the turn-taker needs to know it."""

    responding: bool = False  # a response is being generated or played
    playing: bool = False  # the last output frame carried response audio
    # A backchannel ("mhm") plays aside, outside any response, or ended within its echo
    # tail: what the microphone hears now may be its echo, not the user.
    aside: bool = False
    # The response ended (played to its end or cut off) in the previous tick: the
    # session sets it from that tick's ``SpeakResult.finished``; a model's own
    # ``status()`` leaves it False (reading never changes state).
    finished: bool = False
    response_id: str = ""
    # While output is paused (a barge-in being judged): words the agent played in the
    # last few seconds (its possible echo), oldest first.
    recent_words: tuple[str, ...] = ()


@dataclass
class SpeakResult:
    """One output frame and what happened in the tick that produced it.

    ``finished``: a response ended in this tick (in ``act`` or ``speak``) and no new one
    took its place; the turn-taker hears it at the next tick (``AgentStatus.finished``).
    """

    samples: np.ndarray
    events: list[Event] = field(default_factory=list)
    finished: bool = False


@runtime_checkable
class ModelSession(Protocol):
    """One conversation's streaming state inside a model."""

    def listen(self, frame: np.ndarray, t_ms: float) -> ListenSignals: ...

    def act(self, actions: list[Action], t_ms: float) -> list[Event]: ...

    def think(self, t_ms: float) -> list[Event]: ...

    def speak(self, t_ms: float) -> SpeakResult: ...

    def status(self) -> AgentStatus:
        """What the output side does now; a pure read."""
        ...

    def close(self) -> None: ...

    # The client's controls, applied at the start of a tick (``runtime.Session``). A
    # model that keeps no text history says so (``NoTextHistory``).
    def truncate(self, response_id: str, audio_end_ms: float, t_ms: float) -> list[Event]:
        """Keep in the history only what was heard of ``response_id`` up to ``audio_end_ms``."""
        ...

    def set_instructions(self, text: str) -> None:
        """The system prompt of the following responses."""
        ...

    def set_tools(self, tools: tuple[Tool, ...], tool_choice: ToolChoice) -> None:
        """The functions the following responses may call, and whether they must."""
        ...

    def add_message(self, message: ChatMessage) -> None:
        """Append a client's item to the history."""
        ...

    def set_history(self, messages: list[ChatMessage]) -> None:
        """Replace the history."""
        ...


class NoTextHistory:
    """The controls of a ``ModelSession`` whose model keeps no text history (an
    end-to-end model): each is refused with a warning and changes nothing."""

    def _refuse(self, what: str) -> None:
        log.warning("the model keeps no text history: cannot %s; ignored", what)

    def truncate(self, response_id: str, audio_end_ms: float, t_ms: float) -> list[Event]:
        self._refuse("truncate a response")
        return []

    def set_instructions(self, text: str) -> None:
        self._refuse("set instructions")

    def set_tools(self, tools: tuple[Tool, ...], tool_choice: ToolChoice) -> None:
        self._refuse("set tools")

    def add_message(self, message: ChatMessage) -> None:
        self._refuse("add message")

    def set_history(self, messages: list[ChatMessage]) -> None:
        self._refuse("set history")


@runtime_checkable
class DuplexModel(Protocol):
    """A model the engine can run: loaded once, one ``ModelSession`` per conversation."""

    input_sample_rate: int
    output_sample_rate: int
    frame_ms: int

    def open_session(self, session_id: str, make_lane: LaneFactory) -> ModelSession: ...

    def close(self) -> None: ...
