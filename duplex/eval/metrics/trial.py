"""What a scenario run left behind for the metrics (``Trial``), what they read from
it (responses, the agent's words) and the verdict on one expectation (``Outcome``),
with the thresholds the verdicts use."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from duplex.eval.scenarios import Scenario

# Full-Duplex-Bench: turn_duration_threshold = 1, turn_num_words_threshold = 3
FDB_TURN_DURATION_S = 1.0
FDB_TURN_WORDS = 3

VOICED_DB = -45.0  # output frame RMS above this is agent audio
STOP_SILENCE_MS = 500.0  # a stop is a silent run at least this long
STOP_WINDOW_MS = 3000.0  # an agent that is not silent within this is "not stopped"
IGNORE_GRACE_MS = 1500.0  # reactions judged this long after a backchannel/noise ends
NO_TAKE_GRACE_MS = 2000.0


@dataclass(frozen=True)
class WordChunk:
    """One agent word in Full-Duplex-Bench's ``output.json`` form (seconds)."""

    text: str
    start_s: float
    end_s: float

    def to_fdb(self) -> dict[str, Any]:
        return {"text": self.text, "timestamp": [round(self.start_s, 3), round(self.end_s, 3)]}


@dataclass(frozen=True)
class Response:
    """One agent response as the events tell it."""

    response_id: str
    start_ms: float
    done_ms: float | None
    interrupted: bool
    text: str


@dataclass(frozen=True)
class PlayedInsert:
    """Where a scenario insert really landed in stream time (None: never played)."""

    index: int
    onset_ms: float | None  # start of the insert WAV
    speech_onset_ms: float | None  # start of its speech (voiced span)
    speech_end_ms: float | None


@dataclass
class Trial:
    """Everything a scenario run left behind that the metrics need."""

    scenario: Scenario
    events: list[dict]
    agent: np.ndarray  # output track, output rate, frame-aligned with the input
    out_rate: int
    frame_ms: float
    duration_ms: float
    base_ms: float  # length of the static base track
    inserts: list[PlayedInsert] = field(default_factory=list)
    tick_ms: list[float] = field(default_factory=list)
    phase_ms: dict[str, list[float]] = field(default_factory=dict)
    overruns: int = 0


@dataclass
class Outcome:
    """The verdict on one expectation."""

    behaviour: str
    category: str
    status: str  # pass | fail | skipped
    reason: str = ""
    onset_ms: float | None = None
    end_ms: float | None = None
    window_ms: tuple[float, float] = (0.0, 0.0)
    took_turn: bool | None = None
    response_latency_ms: float | None = None  # audible: real end → first audible sample
    response_latency_event_ms: float | None = None  # the event's: VAD end → first chunk
    endpoint_lag_ms: float | None = None  # VAD end minus real end
    lead_in_ms: float | None = None  # first chunk handed to the output → first audible sample
    stop_latency_ms: float | None = None
    stop_latency_event_ms: float | None = None
    stopped: bool | None = None
    false_interruption: bool | None = None
    false_pause: bool | None = None
    turn_event: bool | None = (
        None  # no_take: a turn.taken event fell in the window (even if no audio followed)
    )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["window_ms"] = [round(x, 1) for x in self.window_ms]
        return d
