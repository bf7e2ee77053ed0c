"""Re-rank a recognizer's n-best readings with a language model.

Whisper tiny.en decodes without a language model of the conversation, and its best
reading is often a near-miss that reads as nonsense: "What is the capital and
friends?", "How far away is the month?". Its beam usually holds the right words a
little lower ("What is the capital of France?"). A small LLM knows which reading is a
likely sentence. Each reading scores

    recognizer's average token log-probability + weight × LM's average token log-probability

and the best one is the transcript. A mis-heard question that reads like an
unfinished sentence makes the turn-taker wait a fragment's pause (up to 2.5 s), so
this is also what keeps the end-of-turn decision from being misled.

The LM is the end-of-utterance model the default profile already runs on every final
(``eou_llamacpp.py``): it reads the readings in one batch, their shared start once, and
the pass over the reading chosen is cached for its end-of-turn score. A beam of 4 and
that pass cost ~110 ms, so the cascade asks for this *second look*
only when the fast (greedy) final reads as unfinished: the turn-taker would then wait
most of a second anyway (``models.asr.rescore_below``). ``models/asr.md`` has the
measurement.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Protocol

import numpy as np

from duplex.models.stages import Transcript


class NBestRecognizer(Protocol):
    """A recognizer that can return its n best readings (``WhisperRecognizer``)."""

    sample_rate: int

    def transcribe(self, audio: np.ndarray, n_best: int | None = None) -> Transcript: ...


class SentenceScorer(Protocol):
    """A language model that says how likely some words are as a sentence."""

    def text_logprobs(self, texts: list[str]) -> list[float | None]:
        """Mean token log-probability of each text (None for no words), in one pass."""


class LmRescoredRecognizer:
    """A recognizer whose n-best readings are re-ranked by a language model.

    Args:
        recognizer: asked for ``n_best`` readings (``Transcript.hypotheses``); a
            transcript without them passes through unchanged.
        scorer: the language model.
        weight: how much the LM's log-probability counts against the recognizer's
            (0 keeps the recognizer's order).
        n_best: readings to weigh.
    """

    def __init__(self, recognizer: NBestRecognizer, scorer: SentenceScorer, weight: float, n_best: int = 4) -> None:
        if weight < 0:
            raise ValueError(f"the LM weight must be >= 0, got {weight}")
        if n_best < 1:
            raise ValueError(f"n_best must be >= 1, got {n_best}")
        self.recognizer = recognizer
        self.scorer = scorer
        self.weight = weight
        self.n_best = n_best
        self.sample_rate = recognizer.sample_rate

    def transcribe(self, audio: np.ndarray) -> Transcript:
        heard = self.recognizer.transcribe(audio, n_best=self.n_best)
        if len(heard.hypotheses) < 2 or self.weight == 0:
            return heard
        start = time.perf_counter()
        best_text, best_score, best_total = heard.text, heard.confidence, -float("inf")
        fluencies = self.scorer.text_logprobs([text for text, _ in heard.hypotheses])
        for (text, score), fluency in zip(heard.hypotheses, fluencies, strict=True):
            if fluency is None:
                continue
            total = score + self.weight * fluency
            if total > best_total:
                best_text, best_score, best_total = text, score, total
        spent = (time.perf_counter() - start) * 1000.0
        return replace(heard, text=best_text, confidence=best_score, compute_ms=heard.compute_ms + spent)
