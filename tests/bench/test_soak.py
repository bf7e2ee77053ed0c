"""``duplex bench soak`` on the scripted (fake) cascade: the soak's own bookkeeping."""

from __future__ import annotations

import json

from duplex.bench.soak import run_soak


def test_a_short_soak_answers_every_question_without_a_barge_in(tmp_path) -> None:
    out = tmp_path / "soak.json"
    report = run_soak(minutes=1.5, config_name="scripted", out=out)

    # The user waits for each answer: every question asked is answered, none over the agent.
    assert report["questions"] >= 6
    assert report["responses"] >= report["questions"] - 1  # the last may still be pending
    assert report["barge_ins"] == 0
    assert len(report["rss_mb_by_minute"]) == 2 and all(mb > 0 for _, mb in report["rss_mb_by_minute"])
    saved = json.loads(out.read_text())
    assert saved["responses"] == report["responses"] and "table" not in saved
    assert f"| {report['responses']}/{report['questions']} | 0 |" in report["table"]


def test_a_soak_names_what_it_heard_before_each_slow_answer() -> None:
    # Every turn waits at least 900 ms of silence: every answer is slow.
    report = run_soak(minutes=0.5, config_name="scripted", overrides=["turn.min_end_silence_ms=900"])

    slow = report["slow_answers"]
    assert slow and len(slow) == report["responses"]
    assert all(a["latency_ms"] > 800 and a["heard"] and a["eot_score"] is not None for a in slow)
    for a in slow:  # audible: the VAD's lag, the event's latency and the lead-in add up to it
        assert a["endpoint_lag_ms"] + a["event_latency_ms"] + a["lead_in_ms"] == a["latency_ms"]
        assert a["event_latency_ms"] >= 900 - 32 and a["lead_in_ms"] >= 0
    assert report["slow_answers"] == sorted(slow, key=lambda a: a["stream_min"])
