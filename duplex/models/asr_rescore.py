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
(``llamacpp/end_of_turn.py``): it reads the readings in one batch, their shared start once, and
the pass over the reading chosen is cached for its end-of-turn score. A beam of 4 and
that pass cost ~110 ms, so the cascade asks for this *second look*
only when the fast (greedy) final reads as unfinished: the turn-taker would then wait
most of a second anyway (``models.asr.rescore_below``).

If the reading chosen still reads as unfinished, a *wider look* decodes the same audio
in a wider window (``models.asr.wide_window_s``, 12 s against the fitted 2-4 s). With
more padding Whisper hears some words otherwise ("…the capital and friends?" becomes
"…the capital of France?"), so the readings of both windows are pooled and the LM
chooses again. A wider window's reading may not be shorter than the first look's
choice: with more padding Whisper sometimes drops a last "and", and that turns a
fragment into a finished sentence. The wider look costs ~130 ms more, and only for
finals the first look left unfinished, which the turn-taker would hold for over a
second. ``models/asr.md`` has the measurements.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Protocol

import numpy as np

from duplex.models.stages import Transcript


class NBestRecognizer(Protocol):
    """A recognizer that can return its n best readings (``WhisperRecognizer``)."""

    sample_rate: int

    def transcribe(
        self, audio: np.ndarray, n_best: int | None = None, min_window_s: int | None = None
    ) -> Transcript: ...


class SentenceScorer(Protocol):
    """A language model that says how likely some words are as a sentence."""

    def text_logprobs(self, texts: list[str]) -> list[float | None]:
        """Mean token log-probability of each text (None for no words), in one pass."""


class Looker(Protocol):
    """Looks at a final's audio again, each look a reading (``LmRescoredRecognizer``)."""

    def looks(self, audio: np.ndarray) -> Iterator[Transcript]: ...

    def other_reading(self, audio: np.ndarray, words: str, min_gain: float) -> Transcript | None: ...


class LmRescoredRecognizer:
    """A recognizer whose n-best readings are re-ranked by a language model.

    Args:
        recognizer: asked for ``n_best`` readings (``Transcript.hypotheses``); a
            transcript without them passes through unchanged.
        scorer: the language model.
        weight: how much the LM's log-probability counts against the recognizer's
            (0 keeps the recognizer's order).
        n_best: readings to weigh.
        wide_window_s: the window of the wider look (:meth:`looks`); 0 for none.
    """

    def __init__(
        self,
        recognizer: NBestRecognizer,
        scorer: SentenceScorer,
        weight: float,
        n_best: int = 4,
        wide_window_s: int = 0,
    ) -> None:
        if weight < 0:
            raise ValueError(f"the LM weight must be >= 0, got {weight}")
        if n_best < 1:
            raise ValueError(f"n_best must be >= 1, got {n_best}")
        if wide_window_s < 0:
            raise ValueError(f"wide_window_s must be >= 0, got {wide_window_s}")
        self.recognizer = recognizer
        self.scorer = scorer
        self.weight = weight
        self.n_best = n_best
        self.wide_window_s = wide_window_s
        self.sample_rate = recognizer.sample_rate

    def transcribe(self, audio: np.ndarray) -> Transcript:
        """The first look: the recognizer's readings of its own window, re-ranked."""
        return next(self.looks(audio))

    def looks(self, audio: np.ndarray) -> Iterator[Transcript]:
        """The first look, then (with ``wide_window_s``, for audio shorter than it) the
        wider look: both windows' readings, re-ranked, none of the wider window's
        shorter than the first choice. Each look is computed when asked for; its
        ``compute_ms`` counts the looks before it."""
        heard = self.recognizer.transcribe(audio, n_best=self.n_best)
        if len(heard.hypotheses) < 2 or self.weight == 0:
            yield heard
            return
        first = self._choose(heard, dict(heard.hypotheses))
        yield first
        if self.wide_window_s <= 0 or len(audio) / self.sample_rate + 1.0 >= self.wide_window_s:
            return  # the recognizer's own window is as wide already
        wide = self.recognizer.transcribe(audio, n_best=self.n_best, min_window_s=self.wide_window_s)
        pooled = dict(heard.hypotheses)
        least = len(first.text.split())
        for text, score in wide.hypotheses or ((wide.text, wide.confidence or 0.0),):
            if text and len(text.split()) >= least and score > pooled.get(text, -float("inf")):
                pooled[text] = score
        yield self._choose(replace(heard, compute_ms=first.compute_ms + wide.compute_ms), pooled)

    def other_reading(self, audio: np.ndarray, words: str, min_gain: float) -> Transcript | None:
        """The first look's reading of ``audio`` where it is not ``words`` and the language
        model finds it at least ``min_gain`` nats a token more likely; else None.

        For words that read as a finished sentence: the re-ranking alone would trade a
        correct statement for a question the LM likes a little better ("Do listen to it."
        -> "Do you listen to it?", 1.1 nats). A mis-hearing reads as word salad, and the
        right words are far likelier ("The road rode on the internet" -> "Who wrote Romeo
        and Juliet?", 3.5 nats).
        """
        again = next(self.looks(audio), None)
        if again is None:
            return None
        better = again.text.strip()
        if not better or better == words.strip():
            return None
        start = time.perf_counter()
        # ``words`` were read for their end-of-turn score: cached, for a one-stretch turn.
        new, old = self.scorer.text_logprobs([better, words])
        if new is None or old is None or new - old < min_gain:
            return None
        return replace(again, compute_ms=again.compute_ms + (time.perf_counter() - start) * 1000.0)

    def _choose(self, heard: Transcript, readings: dict[str, float]) -> Transcript:
        """The reading with the best recognizer + weighted LM score, as ``heard``'s text."""
        start = time.perf_counter()
        best_text, best_score, best_total = heard.text, heard.confidence, -float("inf")
        fluencies = self.scorer.text_logprobs(list(readings))
        for (text, score), fluency in zip(readings.items(), fluencies, strict=True):
            if fluency is None:
                continue
            total = score + self.weight * fluency
            if total > best_total:
                best_text, best_score, best_total = text, score, total
        spent = (time.perf_counter() - start) * 1000.0
        return replace(
            heard,
            text=best_text,
            confidence=best_score,
            hypotheses=tuple(readings.items()),
            compute_ms=heard.compute_ms + spent,
        )


def look_again(
    looker: Looker,
    audio: np.ndarray,
    words: str,
    score: float,
    end_score: Callable[[str], float],
    below: float,
) -> Iterator[tuple[Transcript, float] | None]:
    """Look again at a final whose words read as unfinished (``score`` < ``below``).

    Yields None before each look (a look needs the cores: the caller pauses what can
    wait), and ``(reading, its end score)`` for each reading other than the words so
    far. Stops once the words read as finished or there is no look left. The cascade's
    final job and ``models/scripts/measure_eou.py`` both look through this.
    """
    looks = looker.looks(audio)
    while score < below:
        yield None
        again = next(looks, None)
        if again is None:
            return
        better = again.text.strip()
        if better and better != words:
            words, score = better, end_score(better)
            yield again, score
