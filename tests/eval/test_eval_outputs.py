"""What an eval run writes per scenario, and its strict JSON (``duplex.eval.outputs``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from duplex.eval.outputs import dumps, write_outputs
from duplex.eval.scenarios import Scenario


def test_results_are_strict_json_with_nan_as_null():
    doc = {"a": float("nan"), "b": [np.float32(1.5), (np.int64(2), float("nan"))], "p": Path("x/y")}
    back = json.loads(dumps(doc))
    assert back == {"a": None, "b": [1.5, [2, None]], "p": "x/y"}


def test_without_audio_or_plots_only_the_events_and_result_are_written(tmp_path):
    sc = Scenario("s-01", "smooth_turn", tmp_path / "s-01.wav", (), ())
    events = [{"type": "turn.taken", "t_ms": 32.0}, {"type": "agent.audio.done", "t_ms": 64.0}]
    silent = np.zeros(1600, np.float32)
    out = tmp_path / "out"
    write_outputs(out, sc, {"status": "pass", "x": float("nan")}, events, [], silent, silent, 16000, 16000, plots=False, write_audio=False)
    assert sorted(p.name for p in out.iterdir()) == ["events.jsonl", "result.json"]
    assert [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()] == events
    assert json.loads((out / "result.json").read_text()) == {"status": "pass", "x": None}


def test_with_audio_the_conversation_and_both_sides_are_written(tmp_path):
    sc = Scenario("s-01", "smooth_turn", tmp_path / "s-01.wav", (), ())
    tone = (0.1 * np.sin(np.arange(1600) / 5.0)).astype(np.float32)
    out = tmp_path / "out"
    write_outputs(out, sc, {"status": "pass"}, [], [], tone, tone, 16000, 16000, plots=False, write_audio=True)
    assert {"conversation.wav", "input.wav", "output.wav"} <= {p.name for p in out.iterdir()}
