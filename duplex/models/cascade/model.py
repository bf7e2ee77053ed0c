"""The cascade as a ``DuplexModel``: its stages, its settings, one session per conversation."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from duplex.config import AsrConfig, AudioConfig, Config, LlmConfig
from duplex.models.asr_rescore import Looker
from duplex.models.base import LaneFactory
from duplex.models.cascade.session import CascadeSession
from duplex.models.stages import (
    EndOfUtteranceScorer,
    SpeechRecognizer,
    SpeechSynthesizer,
    TextGenerator,
    VoiceActivityDetector,
)


@dataclass
class CascadeStages:
    """Factories for the stages.

    ``vad``, ``llm`` and ``tts`` make a new object for each session, which owns it and
    closes it when the session ends: it holds that conversation's state (RNN state, KV
    cache) over weights loaded once per process (``shared_weights``). The recognizers
    and the end-of-utterance model keep no conversation state: their factories may hand
    every session the same object, which the model owns and ``close`` frees.
    """

    vad: Callable[[], VoiceActivityDetector]
    asr: Callable[[], SpeechRecognizer]
    llm: Callable[[], TextGenerator]
    tts: Callable[[], SpeechSynthesizer]
    asr_partial: Callable[[], SpeechRecognizer] | None = None  # None: the same as ``asr``
    eou: Callable[[], EndOfUtteranceScorer] | None = None  # end-of-utterance model
    # A slower, better reading of a final that scored as unfinished (``asr_rescore``).
    asr_second_look: Callable[[], Looker] | None = None
    # The LLM gives the end-of-utterance probability from its own prompt pass
    # (``last_end_probability``): the final waits for the draft's first token.
    eou_from_llm: bool = False
    # Frees what the sessions share (the shared stages, the model's hold on the weights).
    close: Callable[[], None] = lambda: None


@dataclass(frozen=True)
class CascadeSettings:
    """The parts of a profile the cascade reads: its stages' sections and the few
    turn and engine values its sessions act on.

    Attributes:
        audio: sample rates and the tick's frame (``frame_samples``, ``output_frame_samples``
            in samples).
        asr: partial interval, longest utterance, second-look threshold.
        llm: system prompt and answer length.
        vad_threshold: a VAD probability at or above it is speech (``turn.vad_threshold``).
        backchannel_text: what the agent says as a backchannel (``turn.backchannel_text``).
        output_lookahead_ms: synthesis may run this far ahead of playback
            (``engine.output_lookahead_ms``).
    """

    audio: AudioConfig
    asr: AsrConfig
    llm: LlmConfig
    frame_samples: int  # input samples a tick
    output_frame_samples: int  # output samples a tick
    vad_threshold: float = 0.5
    backchannel_text: str = "Mhm."
    output_lookahead_ms: float = 8000.0

    @classmethod
    def from_config(cls, config: Config) -> CascadeSettings:
        """The cascade's settings out of a whole profile."""
        return cls(
            audio=config.audio,
            asr=config.models.asr,
            llm=config.models.llm,
            frame_samples=config.frame_samples,
            output_frame_samples=config.output_frame_samples,
            vad_threshold=config.turn.vad_threshold,
            backchannel_text=config.turn.backchannel_text,
            output_lookahead_ms=float(config.engine.output_lookahead_ms),
        )


class CascadeModel:
    """The cascade as a ``DuplexModel``: stages loaded once, one session per conversation."""

    def __init__(self, settings: CascadeSettings, stages: CascadeStages) -> None:
        self.settings = settings
        self.stages = stages
        self.input_sample_rate = settings.audio.input_sample_rate
        self.output_sample_rate = settings.audio.output_sample_rate
        self.frame_ms = settings.audio.frame_ms

    @classmethod
    def from_config(cls, config: Config, stages: CascadeStages) -> CascadeModel:
        """The cascade over ``stages`` with the settings ``config`` gives it."""
        return cls(CascadeSettings.from_config(config), stages)

    def open_session(self, session_id: str, make_lane: LaneFactory) -> CascadeSession:
        return CascadeSession(self.settings, self.stages, session_id, make_lane)

    def close(self) -> None:
        """Free the shared stages (the runtime closes its sessions first)."""
        self.stages.close()
