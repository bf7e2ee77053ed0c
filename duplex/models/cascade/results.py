"""What flows between the cascade's parts: one small frozen value each, matched with ``match``.

A lane job runs off the tick (``duplex.runtime.lanes``) and yields results; the
tick that polls the lane matches on them. The listen and partial lanes carry
*hearing* results (``Partial``, ``Final``, ``LookingAgain``, ``Revised``,
``Kept``, ``EouScore``); the respond lane carries *draft* results (``Prefilled``,
``EouScore``, ``Clause``, ``AudioChunk``, a ``ToolCall``, ``Pending``, ``Done``).
What hearing asks of the draft (``Prefill``, ``StartDraft``, ``PauseDraft``,
``RestartDraft``) goes through the session, in the order it was heard.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from duplex.models.stages import ToolCall

SpokenWord = tuple[str, int, int]
"""A word of output audio and its sample range [start, end) in that audio."""


@dataclass(frozen=True)
class Partial:
    """A partial transcript of the user's speech so far (empty: nothing heard)."""

    text: str


@dataclass(frozen=True)
class Final:
    """The final transcript of a user turn, as the recognizer first reads it.

    Attributes:
        text: the whole turn's words: the finals of its earlier stretches, then ``segment``.
        segment: the words of the stretch this job transcribed.
        confidence: the recognizer's average token log-probability of ``segment``, if any.
        compute_ms: the recognizer's own compute time (the job's also counts scoring).
    """

    text: str
    segment: str
    confidence: float | None
    compute_ms: float


@dataclass(frozen=True)
class LookingAgain:
    """The final reads as unfinished and a second look starts: it needs the cores, so
    the held draft pauses."""


@dataclass(frozen=True)
class Revised:
    """A second look read the words otherwise: they replace the final's (fields as ``Final``;
    ``compute_ms`` counts both reads)."""

    text: str
    segment: str
    confidence: float | None
    compute_ms: float


@dataclass(frozen=True)
class Kept:
    """A look the turn-taker asked for (``LookAgain``) read the same words: the final
    stands as it was released."""


@dataclass(frozen=True)
class EouScore:
    """How finished the user's turn reads, 0..1 (end-of-utterance model, or the draft
    LLM's own prompt pass)."""

    score: float


HearingResult = Partial | Final | LookingAgain | Revised | Kept | EouScore


@dataclass(frozen=True)
class Prefilled:
    """The LLM evaluated a partial transcript's prompt ahead of the answer."""

    tokens: int


@dataclass(frozen=True)
class Clause:
    """A clause of the answer's text, complete and about to be synthesized.

    ``stage_ms``: the latency breakdown it adds (the first clause's LLM times).
    """

    text: str
    stage_ms: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class AudioChunk:
    """Synthesized speech of a clause, at the output rate, with its words' sample ranges.

    ``stage_ms``: the latency breakdown it adds (the first chunk's synthesis time).
    """

    samples: np.ndarray
    text: str
    words: tuple[SpokenWord, ...]
    stage_ms: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Pending:
    """A token that completed no clause: the job yields so a cancel stops it within a token."""


@dataclass(frozen=True)
class Done:
    """The answer is complete."""


DraftResult = Prefilled | EouScore | Clause | AudioChunk | ToolCall | Pending | Done


@dataclass(frozen=True)
class Prefill:
    """Warm the LLM's cache with a partial transcript."""

    text: str
    t_ms: float


@dataclass(frozen=True)
class StartDraft:
    """The final's words are known: the held draft (if it has not started) answers them."""

    text: str
    t_ms: float


@dataclass(frozen=True)
class PauseDraft:
    """A second look needs the cores: the held draft stops until its words are known."""


@dataclass(frozen=True)
class RestartDraft:
    """A second look read other words: the held draft starts again from them."""

    text: str
    t_ms: float


DraftRequest = Prefill | StartDraft | PauseDraft | RestartDraft
