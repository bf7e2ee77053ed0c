"""The recognizer's n-best readings and their re-ranking by the end-of-utterance LLM,
on the real Whisper tiny.en and SmolLM2-135M weights."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from duplex.config import load_config
from duplex.eval.generate import speak as speak_cli
from duplex.models.asr_rescore import LmRescoredRecognizer, look_again
from duplex.models.asr_whisper import WhisperRecognizer
from duplex.models.llamacpp.end_of_turn import LlamaCppEndOfUtterance
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
    # The espeak-ng command line says it the same way every time; the in-process library
    # does not (its audio depends on what the process synthesized before: models/asr.md).
    pad = np.zeros(3200, np.float32)
    return np.concatenate([pad, speak_cli(QUESTION, "en-us", 165, -6.0), pad])


class _Readings:
    """A recognizer that always gives these readings, and ``wide`` in a wider window (the
    words, not the audio, are tested)."""

    sample_rate = 16000

    def __init__(
        self, readings: tuple[tuple[str, float], ...], wide: tuple[tuple[str, float], ...] = ()
    ) -> None:
        self.readings = readings
        self.wide = wide
        self.asked: list[int | None] = []
        self.windows: list[int | None] = []

    def transcribe(
        self, audio: np.ndarray, n_best: int | None = None, min_window_s: int | None = None
    ) -> Transcript:
        self.asked.append(n_best)
        self.windows.append(min_window_s)
        readings = self.wide if min_window_s else self.readings
        text, score = readings[0]
        return Transcript(text, 5.0, score, readings)


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
    assert eou.text_logprobs([right[0]])[0] > eou.text_logprobs([misheard[0]])[0]
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
    first = eou.text_logprobs([text])[0]
    features = eou.features(text)
    assert first is not None and features is not None
    assert eou.text_logprobs([text])[0] == first  # cached, the same value
    assert eou.text_logprobs([""])[0] is None and eou.features("  ") is None
    # A text read after others scores as it does fresh: nothing carries over.
    for other in ("How do magnets", "Why is the sky blue", "How do magnets work today"):
        eou.text_logprobs([other])
    eou._recent.clear()
    np.testing.assert_array_equal(eou.features(text), features)
    assert eou.text_logprobs([text])[0] == first


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
    alone = [eou.text_logprobs([r])[0] for r in readings]
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
    assert together == pytest.approx([eou.text_logprobs([long_a])[0], eou.text_logprobs([long_b])[0]], abs=1e-6)


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


def test_a_wider_look_pools_its_readings_but_not_shorter_ones(eou: LlamaCppEndOfUtterance) -> None:
    first = (("What is the capital and friends?", -0.30), ("What is the capital and France?", -0.50))
    wide = (("What is the capital?", -0.10), (QUESTION, -0.40), ("What is the capital and friends?", -0.35))
    inner = _Readings(first, wide)
    looker = LmRescoredRecognizer(inner, eou, weight=0.2, n_best=4, wide_window_s=12)
    looks = looker.looks(np.zeros(32000, np.float32))
    one = next(looks)
    assert inner.windows == [None]  # the wider look waits until it is asked for
    assert one.text == "What is the capital and friends?"
    two = next(looks)
    assert inner.windows == [None, 12] and next(looks, None) is None
    # Pooled: the first window's readings, with the better score of a reading read twice;
    # "What is the capital?" is shorter than the first choice and is left out.
    assert dict(two.hypotheses) == {
        "What is the capital and friends?": -0.30,
        "What is the capital and France?": -0.50,
        QUESTION: -0.40,
    }
    assert two.text == QUESTION and two.confidence == -0.40
    assert two.compute_ms >= one.compute_ms + 5.0
    # Off, or audio as long as the wide window: one look.
    assert len(list(LmRescoredRecognizer(inner, eou, weight=0.2).looks(np.zeros(1600, np.float32)))) == 1
    assert len(list(looker.looks(np.zeros(16000 * 12, np.float32)))) == 1
    with pytest.raises(ValueError, match="wide_window_s"):
        LmRescoredRecognizer(inner, eou, weight=0.2, wide_window_s=-1)


def test_look_again_stops_once_the_words_read_as_finished(eou: LlamaCppEndOfUtterance) -> None:
    def end_score(words: str) -> float:
        return 0.9 if words.endswith("?") else 0.1

    audio = np.zeros(32000, np.float32)
    # The first look finds the question: no wider look.
    inner = _Readings((("What is the capital and", -0.3), (QUESTION, -0.35)), ((QUESTION, -0.2),))
    looker = LmRescoredRecognizer(inner, eou, weight=0.2, wide_window_s=12)
    steps = list(look_again(looker, audio, "What is the capital and", 0.1, end_score, 0.5))
    assert steps[0] is None and steps[1] is not None and len(steps) == 2
    assert steps[1][0].text == QUESTION and steps[1][1] == 0.9 and inner.windows == [None]
    # Nothing better in either look: two looks, no reading.
    inner = _Readings((("What is the capital and", -0.3), ("What is the capitol and", -0.9)), (("What is the capital and", -0.2),))
    looker = LmRescoredRecognizer(inner, eou, weight=0.2, wide_window_s=12)
    assert list(look_again(looker, audio, "What is the capital and", 0.1, end_score, 0.5)) == [None, None, None]
    assert inner.windows == [None, 12]
    # Already finished: no look at all.
    assert list(look_again(looker, audio, QUESTION, 0.9, end_score, 0.5)) == []


def test_the_wider_look_reads_a_wider_window_of_the_real_audio(
    eou: LlamaCppEndOfUtterance, question: np.ndarray
) -> None:
    asr = WhisperRecognizer(threads=2)
    looker = second_look_recognizer(load_config("default"), asr, eou)
    assert looker is not None and looker.wide_window_s == 12
    looks = looker.looks(question)
    one = next(looks)
    assert asr._encoded is not None and asr._encoded[0][0] == 300  # 2.6 s + tail: a 3 s window
    two = next(looks)
    assert asr._encoded[0][0] == 1200  # 12 s of log-mel frames
    first_texts = {t for t, _ in one.hypotheses}
    assert first_texts <= {t for t, _ in two.hypotheses}
    assert all(len(t.split()) >= len(one.text.split()) for t, _ in two.hypotheses if t not in first_texts)
    assert two.compute_ms > one.compute_ms  # the second counts both
    assert "capital of france" in two.text.lower(), two.hypotheses


def test_another_reading_replaces_finished_words_only_when_far_likelier(eou: LlamaCppEndOfUtterance) -> None:
    audio = np.zeros(32000, np.float32)
    # A correct statement: the LM likes its question-shaped rival a little better, and
    # the re-ranking alone would take it; a gain of 2 nats a token keeps the words.
    inner = _Readings((("Do you listen to it?", -0.30), ("Do listen to it.", -0.35)))
    looker = LmRescoredRecognizer(inner, eou, weight=0.2)
    assert next(looker.looks(audio)).text == "Do you listen to it?"
    assert looker.other_reading(audio, "Do listen to it.", min_gain=2.0) is None
    assert looker.other_reading(audio, "Do listen to it.", min_gain=0.0).text == "Do you listen to it?"
    # A question mis-heard as word salad: the right reading, lower in the beam, is far likelier.
    inner = _Readings((("The road rode on the internet", -0.99), ("Who wrote Romeo and Juliet?", -1.34)))
    looker = LmRescoredRecognizer(inner, eou, weight=0.2)
    found = looker.other_reading(audio, "The road rode on the internet", min_gain=2.0)
    assert found is not None and found.text == "Who wrote Romeo and Juliet?"
    # The same words again: nothing other to offer.
    assert looker.other_reading(audio, "Who wrote Romeo and Juliet?", min_gain=0.0) is None
