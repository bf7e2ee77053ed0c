"""Turn-taking on recorded human speech through the real default models (issue #25).

The scenarios are the human-speech set's (``duplex.eval.human_scenarios``, tuning
part only); the verdicts are the evaluation harness's.
"""

from __future__ import annotations

import json

import pytest

from duplex.eval.human_scenarios import make_human_scenarios
from duplex.eval.human_speech import HumanSpeechMissing, human_clips
from duplex.eval.runner import RunOptions, run_scenario
from duplex.runtime.runtime import Runtime

try:
    HAVE_SPEECH = bool(human_clips())
except HumanSpeechMissing:  # pragma: no cover - the packages are part of `make install`
    HAVE_SPEECH = False

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not HAVE_SPEECH, reason="human speech not fetched: run `duplex eval fetch-human-speech`"),
]


@pytest.fixture(scope="module")
def runtime():
    rt = Runtime.from_config("default", clock="offline")
    yield rt
    rt.close()


def _run(runtime, tmp_path, family: str, sid: str) -> dict:
    scenarios = make_human_scenarios(tmp_path, only=[family])
    sc = next(s for s in scenarios if s.id == sid)
    assert "tuning" in sc.tags
    result, _ = run_scenario(runtime, sc, tmp_path / "out", RunOptions(plots=False, write_audio=False))
    return result


def test_a_quiet_interruption_stops_the_agent_at_once(runtime, tmp_path):
    # 10 dB softer than the user's first turn, no echo: the first word pauses the output.
    result = _run(runtime, tmp_path, "quiet-interrupt", "human-quiet-interrupt-01")
    [out] = [v for v in result["expectations"] if v["behaviour"] == "yield"]
    assert out["stopped"], result
    assert out["stop_latency_ms"] <= 250, result


def test_a_story_with_gaps_between_sentences_keeps_the_turn(runtime, tmp_path):
    result = _run(runtime, tmp_path, "story", "human-story-01")
    gaps = [v for v in result["expectations"] if v["behaviour"] == "no_take"]
    assert len(gaps) >= 3 and all(v["status"] == "pass" for v in gaps), result
    assert [v["status"] for v in result["expectations"] if v["behaviour"] == "take_turn"] == ["pass"], result
    # The agent says "mhm" in the gaps (they are 4-5 s apart here), and not over the
    # user's sentences.
    events = [json.loads(line) for line in (tmp_path / "out" / "events.jsonl").read_text().splitlines()]
    mhm = [e["t_ms"] for e in events if e["type"] == "agent.backchannel"]
    last_words = max(v["end_ms"] for v in result["expectations"] if v["behaviour"] == "take_turn")
    in_gaps = [t for t in mhm if any(g["onset_ms"] <= t <= g["end_ms"] for g in gaps)]
    assert len(in_gaps) >= 2, (mhm, gaps)
    assert all(t in in_gaps or t > last_words for t in mhm), (mhm, gaps)
