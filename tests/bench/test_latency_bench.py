"""``duplex bench latency`` through the real default models, on the offline clock."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from duplex.bench.latency import STAGES, run_latency_bench


@pytest.mark.slow
def test_latency_bench_answers_every_question_and_breaks_the_latency_down(tmp_path: Path) -> None:
    out = tmp_path / "latency.json"
    report = run_latency_bench(turns=2, clocks=["offline"], out=out)

    saved = json.loads(out.read_text())
    summary = saved["summary"]["offline"]
    raw = saved["raw"]["offline"]
    assert summary["turns"] == 2 and summary["responses"] == 2  # both spoken questions answered
    assert len(raw["eot_score"]) == raw["turns_taken"] == 2
    assert len(raw["user_text"]) == 2 and all(t.strip() for t in raw["user_text"])  # what was heard
    assert summary["over_800_ms"] == sum(1 for v in raw["latency_ms"] if v > 800)
    for latency, endpointing in zip(raw["latency_ms"], raw["endpointing"], strict=True):
        # Audio comes after the turn is taken, and the turn after some silence.
        assert 0 < endpointing <= latency < 5000
    for stage in STAGES:
        assert all(v > 0 for v in raw[stage]), stage  # every stage measured for every answer
    assert summary["tick_rtf_while_speaking"]["p99"] > 0
    assert report["table"].splitlines()[2].startswith("| offline | 2/2 |")
