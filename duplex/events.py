"""Typed events a session emits, each stamped with stream time ``t_ms``.

Stream time counts user input consumed since the session opened, so the same
audio gives comparable logs from a file, a microphone or a WebSocket.
Every event is a frozen dataclass with a wire name in ``type``; ``to_dict``
gives its JSON form (audio payloads excluded).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np


@dataclass(frozen=True)
class Event:
    """Base of all events."""

    type: ClassVar[str] = "event"
    t_ms: float

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, np.ndarray):
                continue
            out[f.name] = round(value, 3) if isinstance(value, float) else value
        return out


@dataclass(frozen=True)
class SessionStarted(Event):
    type: ClassVar[str] = "session.started"
    session_id: str = ""
    input_sample_rate: int = 16000
    output_sample_rate: int = 24000
    frame_ms: int = 32


@dataclass(frozen=True)
class SessionClosed(Event):
    type: ClassVar[str] = "session.closed"
    reason: str = ""


@dataclass(frozen=True)
class StateChanged(Event):
    """The conversation state moved (listening, thinking, speaking, paused)."""

    type: ClassVar[str] = "state"
    state: str = "listening"
    previous: str = "listening"
    reason: str = ""


@dataclass(frozen=True)
class SpeechStarted(Event):
    """The user started speaking (``t_ms`` is the estimated onset)."""

    type: ClassVar[str] = "user.speech_started"


@dataclass(frozen=True)
class SpeechStopped(Event):
    """The user stopped speaking (``t_ms`` is the estimated end of speech)."""

    type: ClassVar[str] = "user.speech_stopped"


@dataclass(frozen=True)
class UserTranscriptPartial(Event):
    type: ClassVar[str] = "user.transcript.partial"
    text: str = ""


@dataclass(frozen=True)
class UserTranscriptFinal(Event):
    type: ClassVar[str] = "user.transcript.final"
    text: str = ""
    start_ms: float = 0.0
    end_ms: float = 0.0


@dataclass(frozen=True)
class UserBackchannel(Event):
    """A short acknowledgement ("mhm", "yeah") while the agent spoke: not a turn."""

    type: ClassVar[str] = "user.backchannel"
    text: str = ""


@dataclass(frozen=True)
class AgentBackchannel(Event):
    """The agent acknowledged ("mhm") during a long user turn, without taking it."""

    type: ClassVar[str] = "agent.backchannel"
    text: str = ""


@dataclass(frozen=True)
class TurnTaken(Event):
    """The agent took the turn; ``end_of_speech_ms`` is when the user stopped."""

    type: ClassVar[str] = "turn.taken"
    end_of_speech_ms: float = 0.0
    text: str = ""
    eot_score: float = 0.0


@dataclass(frozen=True)
class AgentTextDelta(Event):
    type: ClassVar[str] = "agent.text.delta"
    response_id: str = ""
    text: str = ""


@dataclass(frozen=True)
class AgentToolCall(Event):
    """The response asks the client to run a function; ``arguments`` is JSON text.

    The client answers with the call's output and asks for a response again."""

    type: ClassVar[str] = "agent.tool_call"
    response_id: str = ""
    call_id: str = ""
    name: str = ""
    arguments: str = "{}"


@dataclass(frozen=True)
class AgentAudioStarted(Event):
    """The first frame of a response was handed to the output (``t_ms``, its stream time).

    ``latency_ms`` runs from the *detected* end of the user's speech (the VAD's, as in
    ``turn.taken.end_of_speech_ms``) to ``t_ms``; ``breakdown_ms`` splits it per stage
    (endpointing, ASR final, LLM first token and clause, TTS first chunk). It is not
    what a listener waits: that runs from the *real* end of speech, some 100 ms
    before the VAD's, to the first *audible* sample, which may lie a little into
    this frame (``duplex bench latency`` and ``duplex eval`` report it as the audible
    latency, with those two parts).
    """

    type: ClassVar[str] = "agent.audio.started"
    response_id: str = ""
    latency_ms: float = 0.0
    breakdown_ms: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class AgentAudioDone(Event):
    """A response's audio ended, whole or cut.

    ``audio_end_ms`` is how much of the response was played (the cut point, as
    OpenAI Realtime's truncate); ``text`` is what the user heard.
    """

    type: ClassVar[str] = "agent.audio.done"
    response_id: str = ""
    interrupted: bool = False
    audio_end_ms: float = 0.0
    text: str = ""
    full_text: str = ""


@dataclass(frozen=True)
class AgentAudio(Event):
    """One output frame of agent speech (not written to events.jsonl).

    ``aside``: the frame is an agent backchannel ("mhm"), played outside any response
    (``response_id`` is empty): a transport plays it like any other frame, but it
    starts, ends and belongs to no response.
    """

    type: ClassVar[str] = "agent.audio"
    response_id: str = ""
    samples: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    sample_rate: int = 24000
    aside: bool = False


@dataclass(frozen=True)
class BargeIn(Event):
    """User speech during agent output: ``phase`` is pause, confirmed or false_alarm."""

    type: ClassVar[str] = "barge_in"
    phase: str = "pause"
    response_id: str = ""


@dataclass(frozen=True)
class Stall(Event):
    """A tick or stage overran its budget: the model could not keep up."""

    type: ClassVar[str] = "stall"
    stage: str = "tick"
    used_ms: float = 0.0
    budget_ms: float = 0.0
    lag_ms: float = 0.0


@dataclass(frozen=True)
class ErrorEvent(Event):
    type: ClassVar[str] = "error"
    message: str = ""
    code: str = "error"


@dataclass(frozen=True)
class InputDropped(Event):
    """User audio the session could not use: it came faster than real time
    (``reason`` "too_fast") or the session fell behind its input (``reason`` "backlog")."""

    type: ClassVar[str] = "input.dropped"
    dropped_ms: float = 0.0
    reason: str = "backlog"


AUDIO_EVENT_TYPES = frozenset({AgentAudio.type})
