"""Protocols for the streaming stages a cascade is built from.

Each stage is one module under ``duplex/models`` that satisfies one of these
protocols. Stages do plain synchronous work on numpy arrays; the runtime decides
on which thread and in which tick slice they run. A stage instance that carries a
conversation's state (VAD, LLM, TTS) belongs to one session, which closes it; its
weights are loaded once per process and shared (``shared_weights``).

Audio conventions: mono ``float32`` arrays in [-1, 1], at the stage's own
``sample_rate`` (resampling happens at the cascade's edges).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

import numpy as np

Role = Literal["system", "user", "assistant", "tool"]


@dataclass(frozen=True)
class ToolCall:
    """A function the model asked the client to run: ``arguments`` is a JSON object's text."""

    call_id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class Tool:
    """A function the model may call (OpenAI's function tool: ``parameters`` is a JSON Schema)."""

    name: str
    description: str = ""
    parameters: dict | None = None


# "auto", "none", "required", or the name of the one function that must be called.
ToolChoice = str


@dataclass(frozen=True)
class ChatMessage:
    """One message of the dialogue history handed to a text generator.

    An assistant message may carry the tool calls it made (``tool_calls``); a ``tool``
    message is one call's result, answering ``tool_call_id``.
    """

    role: Role
    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str = ""


@dataclass(frozen=True)
class Transcript:
    """What a speech recognizer heard in one stretch of audio."""

    text: str
    compute_ms: float = 0.0
    confidence: float | None = None  # average token log-probability, if the engine gives one
    # The engine's n best readings, (text, average token log-probability), best first;
    # empty where it gives one. ``text`` is one of them (``asr_rescore`` may pick another).
    hypotheses: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class WordTiming:
    """A word of synthesized speech and where it lies in the chunk's samples."""

    word: str
    start_sample: int
    end_sample: int


@dataclass(frozen=True)
class SpeechChunk:
    """A piece of synthesized speech with the words it says.

    Attributes:
        samples: mono float32 audio at the synthesizer's sample rate.
        text: the text this chunk speaks.
        words: word timings relative to the start of ``samples`` (exact from the
            engine where it provides them, otherwise estimated).
    """

    samples: np.ndarray
    text: str
    words: tuple[WordTiming, ...] = field(default_factory=tuple)


@runtime_checkable
class VoiceActivityDetector(Protocol):
    """Streaming speech probability, one fixed-size frame at a time."""

    sample_rate: int
    frame_samples: int

    def reset(self) -> None:
        """Forget the streaming state (a new session or a new stream)."""

    def probability(self, frame: np.ndarray) -> float:
        """Speech probability in [0, 1] for exactly ``frame_samples`` samples."""

    def close(self) -> None:
        """Free this instance's state and release its share of the weights."""


@runtime_checkable
class SpeechRecognizer(Protocol):
    """Transcribes a stretch of speech. Streaming comes from calling it on a
    growing buffer (partials) and once more at the end (final)."""

    sample_rate: int

    def transcribe(self, audio: np.ndarray) -> Transcript:
        """Transcribe mono float32 audio at ``sample_rate``."""


@runtime_checkable
class TextGenerator(Protocol):
    """A chat LLM that streams its answer as text pieces.

    What a generator can do beyond ``stream`` it declares, and callers read the
    declaration: ``supports_tools`` (it takes ``tools`` and may yield ``ToolCall``
    items), ``prefill`` (None where it cannot evaluate a prompt ahead of the answer)
    and ``last_end_probability`` (None where its prompt pass gives none).
    """

    @property
    def supports_tools(self) -> bool:
        """It takes ``tools``/``tool_choice`` and may yield ``ToolCall`` items among the text."""

    @property
    def prefill(self) -> Callable[[Sequence[ChatMessage]], int] | None:
        """Evaluate ``messages`` into the cache ahead of the answer (a partial transcript's
        prompt while the user still talks); returns the tokens evaluated. None: it cannot."""

    @property
    def last_end_probability(self) -> float | None:
        """P(the user's last message ends where it does), from the last ``stream``'s prompt
        pass; None where the generator gives none."""

    def stream(
        self,
        messages: Sequence[ChatMessage],
        *,
        max_tokens: int,
        tools: Sequence[Tool] = (),
        tool_choice: ToolChoice = "auto",
    ) -> Iterator[str | ToolCall]:
        """Yield the answer to ``messages`` piece by piece (tokens or words).

        Closing the iterator early (a generator's ``close``) cancels generation. A
        generator that ``supports_tools`` offers ``tools`` to the model, under
        ``tool_choice``, and may yield ``ToolCall`` items among the text pieces; pass
        them only to one that does.
        """

    def count_tokens(self, text: str) -> int:
        """Number of tokens ``text`` takes in this model's context."""

    def close(self) -> None:
        """Free this instance's state (a KV cache) and release its share of the weights."""


@runtime_checkable
class EndOfUtteranceScorer(Protocol):
    """Reads how finished a user's turn sounds from its words."""

    def end_score(self, text: str) -> float:
        """How finished the turn ``text`` reads, 0..1 (0.5 unsure)."""


@runtime_checkable
class SpeechSynthesizer(Protocol):
    """Text to speech, a sentence or clause at a time."""

    sample_rate: int

    def synthesize(self, text: str) -> Iterator[SpeechChunk]:
        """Yield speech for ``text``; the first chunk should come as early as possible."""

    def close(self) -> None:
        """Release this instance's share of the weights."""
