"""A small deterministic cascade for the engine's own unit tests — never the default.

Its stages are fakes with exact, predictable behaviour:

- VAD: frame energy above a threshold is speech;
- ASR: returns the next line of a script (or ``"speech of N ms"``);
- LLM: answers with a fixed reply, word by word;
- TTS: a tone whose length is proportional to the words, with exact word timings.

Each stage can be given an artificial compute delay, to test stalls and lanes.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator, Sequence

import numpy as np

from duplex.config import Config
from duplex.models.cascade.model import CascadeModel, CascadeStages
from duplex.models.stages import ChatMessage, SpeechChunk, Transcript, WordTiming


class EnergyVad:
    """Speech when the frame's RMS exceeds ``threshold`` (about -36 dBFS by default)."""

    def __init__(self, sample_rate: int = 16000, threshold: float = 0.015, delay_s: float = 0.0) -> None:
        self.sample_rate = sample_rate
        self.frame_samples = 512 if sample_rate == 16000 else sample_rate * 32 // 1000
        self.threshold = threshold
        self.delay_s = delay_s

    def reset(self) -> None:
        pass

    def probability(self, frame: np.ndarray) -> float:
        if self.delay_s:
            time.sleep(self.delay_s)
        rms = float(np.sqrt(np.mean(frame.astype(np.float64) ** 2)))
        return 1.0 if rms > self.threshold else 0.0

    def close(self) -> None:
        pass


class ScriptedAsr:
    """Returns script lines in order; beyond the script, describes the audio length."""

    def __init__(self, script: Sequence[str] = (), sample_rate: int = 16000, delay_s: float = 0.0) -> None:
        self.sample_rate = sample_rate
        self._lines = list(script)
        self.delay_s = delay_s
        self.calls = 0

    def transcribe(self, audio: np.ndarray) -> Transcript:
        self.calls += 1
        if self.delay_s:
            time.sleep(self.delay_s)
        voiced = float(np.sqrt(np.mean(audio.astype(np.float64) ** 2))) if len(audio) else 0.0
        if voiced < 0.005:
            return Transcript("")
        if self._lines:
            return Transcript(self._lines[0])
        return Transcript(f"speech of {round(1000 * len(audio) / self.sample_rate)} ms.")


class ScriptedLlm:
    """Replies with ``reply`` one word at a time."""

    supports_tools = False
    prefill = None  # no cache to warm
    last_end_probability: float | None = None

    def __init__(self, reply: str = "Sure, here is a short answer for you.", delay_s: float = 0.0) -> None:
        self.reply = reply
        self.delay_s = delay_s
        self.requests: list[list[ChatMessage]] = []

    def stream(self, messages: Sequence[ChatMessage], *, max_tokens: int, **tools: object) -> Iterator[str]:
        self.requests.append(list(messages))
        for i, word in enumerate(self.reply.split()[:max_tokens]):
            if self.delay_s:
                time.sleep(self.delay_s)
            yield (" " if i else "") + word

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def close(self) -> None:
        pass


class ToneTts:
    """A 220 Hz tone, ``word_ms`` per word, with exact word timings."""

    def __init__(self, sample_rate: int = 16000, word_ms: int = 300, delay_s: float = 0.0, amplitude: float = 0.3) -> None:
        self.sample_rate = sample_rate
        self.word_ms = word_ms
        self.delay_s = delay_s
        self.amplitude = amplitude

    def synthesize(self, text: str) -> Iterator[SpeechChunk]:
        words = text.split()
        if not words:
            return
        if self.delay_s:
            time.sleep(self.delay_s)
        per = self.sample_rate * self.word_ms // 1000
        t = np.arange(per * len(words)) / self.sample_rate
        samples = (self.amplitude * np.sin(2 * np.pi * 220.0 * t)).astype(np.float32)
        timings = tuple(WordTiming(w, i * per, (i + 1) * per) for i, w in enumerate(words))
        yield SpeechChunk(samples, text, timings)

    def close(self) -> None:
        pass


def scripted_model(
    config: Config,
    *,
    script: Sequence[str] = (),
    reply: str = "Sure, here is a short answer for you.",
    delays: dict[str, float] | None = None,
) -> CascadeModel:
    """The cascade wired to the fake stages above."""
    d = delays or {}
    asr = ScriptedAsr(script, config.audio.input_sample_rate, d.get("asr", 0.0))
    counter = itertools.count()
    llms: list[ScriptedLlm] = []

    def make_llm() -> ScriptedLlm:
        next(counter)
        llm = ScriptedLlm(reply, d.get("llm", 0.0))
        llms.append(llm)
        return llm

    model = CascadeModel.from_config(
        config,
        CascadeStages(
            vad=lambda: EnergyVad(config.audio.input_sample_rate, delay_s=d.get("vad", 0.0)),
            asr=lambda: asr,
            llm=make_llm,
            tts=lambda: ToneTts(16000, delay_s=d.get("tts", 0.0)),
        ),
    )
    model.llms = llms  # type: ignore[attr-defined]  # tests inspect what the LLM was asked
    model.asr = asr  # type: ignore[attr-defined]
    return model
