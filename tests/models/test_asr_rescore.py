"""The recognizer's n-best readings and their re-ranking by the end-of-utterance LLM,
on the real Whisper tiny.en and SmolLM2-135M weights."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from duplex.bench.speech import speak
from duplex.config import load_config
from duplex.models.asr_rescore import LmRescoredRecognizer
from duplex.models.asr_whisper import WhisperRecognizer
from duplex.models.eou_llamacpp import LlamaCppEndOfUtterance
from duplex.models.registry import final_recognizer, second_look_recognizer
from duplex.models.stages import Transcript

QUESTION = "What is the capital of France?"


@pytest.fixture(scope="module")
def eou() -> Iterator[LlamaCppEndOfUtterance]:
    model = LlamaCppEndOfUtterance(threads=2)
    yield model
    model.close()


@pytest.fixture(scope="module")
def asr() -> WhisperRecognizer:
    return WhisperRecognizer(threads=2)


@pytest.fixture(scope="module")
def question() -> np.ndarray:
    pad = np.zeros(3200, np.float32)
    return np.concatenate([pad, speak(QUESTION, "en-us"), pad])


class _Readings:
    """A recognizer that always gives these readings (the words, not the audio, are tested)."""

    sample_rate = 16000

    def __init__(self, readings: tuple[tuple[str, float], ...]) -> None:
        self.readings = readings
        self.asked: list[int | None] = []

    def transcribe(self, audio: np.ndarray, n_best: int | None = None) -> Transcript:
        self.asked.append(n_best)
        text, score = self.readings[0]
        return Transcript(text, 5.0, score, self.readings)


def test_n_best_readings_are_distinct_and_best_first(asr: WhisperRecognizer, question: np.ndarray) -> None:
    one = asr.transcribe(question)
    assert one.hypotheses == ()  # by default, only the best reading
    four = asr.transcribe(question, n_best=4)
    texts = [t for t, _ in four.hypotheses]
    assert 2 <= len(texts) <= 4 and len(set(texts)) == len(texts)
    assert four.text == texts[0] and four.confidence == four.hypotheses[0][1]
    scores = [s for _, s in four.hypotheses]
    assert scores == sorted(scores, reverse=True)
    # Whisper's best reading of this voice is "What is the capital and friends?"; the right
    # words are lower in the beam (the next test picks them).
    assert any("of france" in t.lower() for t in texts), texts


def test_the_lm_prefers_the_reading_that_is_a_sentence(eou: LlamaCppEndOfUtterance) -> None:
    misheard = ("What is the capital and friends?", -0.30)
    right = (QUESTION, -0.36)
    assert eou.text_logprob(right[0]) > eou.text_logprob(misheard[0])
    inner = _Readings((misheard, right))
    rescored = LmRescoredRecognizer(inner, eou, weight=0.2, n_best=4).transcribe(np.zeros(1600, np.float32))
    assert inner.asked == [4]
    assert rescored.text == QUESTION and rescored.confidence == -0.36
    assert rescored.hypotheses == (misheard, right) and rescored.compute_ms >= 5.0
    # Weight 0 keeps the recognizer's order.
    kept = LmRescoredRecognizer(inner, eou, weight=0.0).transcribe(np.zeros(1600, np.float32))
    assert kept.text == misheard[0]
    with pytest.raises(ValueError, match="LM weight"):
        LmRescoredRecognizer(inner, eou, weight=-1.0)


def test_text_logprob_and_features_share_one_pass(eou: LlamaCppEndOfUtterance) -> None:
    text = "How do magnets work?"
    first = eou.text_logprob(text)
    features = eou.features(text)
    assert first is not None and features is not None
    assert eou.text_logprob(text) == first  # cached, the same value
    assert eou.text_logprob("") is None and eou.features("  ") is None
    # A text read after others scores as it does fresh: nothing carries over.
    for other in ("How do magnets", "Why is the sky blue", "How do magnets work today"):
        eou.text_logprob(other)
    eou._recent.clear()
    np.testing.assert_array_equal(eou.features(text), features)
    assert eou.text_logprob(text) == first


def test_the_default_profile_rescores_with_its_eou_model(eou: LlamaCppEndOfUtterance, question: np.ndarray) -> None:
    cfg = load_config("default")
    asr = final_recognizer(cfg)
    second = second_look_recognizer(cfg, asr, eou)
    assert isinstance(second, LmRescoredRecognizer) and second.n_best == cfg.models.asr.n_best
    heard = second.transcribe(question)
    assert heard.text in [t for t, _ in heard.hypotheses]
    assert "capital of france" in heard.text.lower(), heard.hypotheses
    assert second_look_recognizer(load_config("default", ["models.asr.n_best=1"]), asr, eou) is None
    assert second_look_recognizer(cfg, asr, None) is None


def test_readings_scored_in_one_batch_score_as_they_do_alone(eou: LlamaCppEndOfUtterance) -> None:
    # Readings of one question share their start; one that does not shares nothing.
    readings = [QUESTION, "What is the capital and friends?", "What is the capitol of France", "How far is Paris?"]
    eou._recent.clear()
    together = eou.text_logprobs(readings)
    scores_together = [eou.end_score(r) for r in readings]  # from the same batch, cached
    eou._recent.clear()
    alone = [eou.text_logprob(r) for r in readings]
    scores_alone = [eou.end_score(r) for r in readings]
    # llama.cpp's sums differ a little with the batch's make-up (~1 %).
    assert together == pytest.approx(alone, rel=0.02)
    assert scores_together == pytest.approx(scores_alone, abs=0.02)
    assert together[0] > together[1]  # the sentence still wins
    # Empty and repeated readings: None, and one value per text.
    again = eou.text_logprobs(["", readings[1], readings[1], " ."])
    assert again[0] is None and again[3] is None and again[1] == again[2] is not None
    # A one-token reading: no row of its own predicts a token after the first.
    short = eou.text_logprobs(["Why", "Why not"])
    assert all(v is not None and np.isfinite(v) for v in short) and short[0] != short[1]


def test_readings_too_long_for_one_batch_are_read_one_at_a_time(eou: LlamaCppEndOfUtterance) -> None:
    # Each fits the context alone (~300 tokens), not both at once.
    long_a = "I went to the market and bought apples and pears and plums. " * 23
    long_b = "We walked along the river and talked about the weather for hours. " * 21
    assert len(eou._llm.tokenize((long_a + long_b).encode(), add_bos=False)) > eou.n_ctx
    eou._recent.clear()
    together = eou.text_logprobs([long_a, long_b])
    eou._recent.clear()
    assert together == pytest.approx([eou.text_logprob(long_a), eou.text_logprob(long_b)], abs=1e-6)


def test_a_cached_reading_is_not_lost_to_the_new_ones_read_with_it(eou: LlamaCppEndOfUtterance) -> None:
    # The greedy final's words are cached, then pushed to the oldest place by other passes;
    # reading them again with new readings must not evict them before they are returned.
    eou._recent.clear()
    eou.end_score("Can you suggest a name for my new puppy?")
    for i in range(7):
        eou.end_score(f"Filler sentence number {i}")
    readings = ["Can you suggest a name for my new puppy?", "Can you suggest a name for my new puppet?"]
    values = eou.text_logprobs(readings)
    assert all(v is not None for v in values)
    assert values[0] > values[1]
