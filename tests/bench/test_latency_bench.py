"""``duplex bench latency`` through the real default models, on the offline clock."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from duplex.bench.latency import STAGES, run_latency_bench
from duplex.bench.speech import QUESTIONS, conversation
from duplex.config import load_config
from duplex.models.registry import final_recognizer


@pytest.mark.slow
def test_latency_bench_answers_every_question_and_breaks_the_latency_down(tmp_path: Path) -> None:
    out = tmp_path / "latency.json"
    report = run_latency_bench(turns=2, clocks=["offline"], out=out)

    saved = json.loads(out.read_text())
    summary = saved["summary"]["offline"]
    raw = saved["raw"]["offline"]
    assert summary["turns"] == 2 and summary["responses"] == 2  # both spoken questions answered
    # The user waited for the first answer: the second question did not cut it off.
    assert summary["barge_ins"] == 0
    (_, first_end), (second_start, _) = raw["question_spans_s"]
    assert second_start - first_end >= 7.0
    assert len(raw["eot_score"]) == raw["turns_taken"] == 2
    assert len(raw["user_text"]) == 2 and all(t.strip() for t in raw["user_text"])  # what was heard
    assert summary["over_800_ms"] == sum(1 for v in raw["latency_ms"] if v > 800) == len(raw["slow_turns"])
    for slow in raw["slow_turns"]:  # each slow answer keeps the events that explain it
        assert any(e["type"] == "turn.taken" for e in slow["events"])
    for latency, endpointing in zip(raw["latency_ms"], raw["endpointing"], strict=True):
        # Audio comes after the turn is taken, and the turn after some silence.
        assert 0 < endpointing <= latency < 5000
    for stage in STAGES:
        assert all(v > 0 for v in raw[stage]), stage  # every stage measured for every answer
    assert summary["tick_rtf_while_speaking"]["p99"] > 0
    assert report["table"].splitlines()[2].startswith("| offline | 2/2 |")
    assert saved["user"] == "waits for each answer"


def _words(text: str) -> list[str]:
    return re.sub(r"[^a-z' ]", " ", text.lower()).split()


def test_the_piper_user_side_speaks_each_question_where_its_span_says() -> None:
    audio, spans = conversation(3, user_voice="piper")
    rate = 16000
    asr = final_recognizer(load_config("default"))
    assert len(spans) == 3
    for (start, end), question in zip(spans, QUESTIONS, strict=False):
        span = audio[int(start * rate) : int(end * rate)]
        assert np.abs(span).max() == pytest.approx(0.5, abs=1e-3)  # the question is there
        gap = audio[int(end * rate) + 160 : int(end * rate) + rate]
        assert np.abs(gap).max() == 0.0  # and silence follows it
        pad = np.zeros(rate // 5, np.float32)
        heard = _words(asr.transcribe(np.concatenate([pad, span, pad])).text)
        said = _words(question)
        assert sum(w in heard for w in said) >= 0.75 * len(said), (question, heard)


def test_an_unknown_user_voice_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="user_voice must be one of"):
        conversation(1, user_voice="robot")
