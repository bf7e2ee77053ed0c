"""The scenario schema: loading, validation errors, round trip."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from duplex.eval.scenarios import SCHEMA, ScenarioError, load_scenario, load_scenarios


def _write(tmp_path, name: str, side: dict) -> None:
    sf.write(str(tmp_path / f"{name}.wav"), np.zeros(1600, np.float32), 16000)
    (tmp_path / f"{name}.json").write_text(json.dumps({"schema": SCHEMA, "id": name, **side}))


def test_a_plain_static_scenario_loads(tmp_path):
    _write(
        tmp_path,
        "a",
        {
            "category": "smooth_turn",
            "segments": [{"start_ms": 0, "end_ms": 50, "text": "hi"}],
            "expect": [{"behaviour": "take_turn", "end_ms": 50}],
        },
    )
    (sc,) = load_scenarios(tmp_path)
    assert sc.id == "a" and sc.expect[0].end_ms == 50.0 and sc.user_segments()[0].text == "hi"


def test_round_trip_keeps_every_field(tmp_path):
    _write(
        tmp_path,
        "b",
        {
            "category": "echo",
            "tags": ["ci"],
            "expect": [{"behaviour": "ignore"}],
            "inserts": [
                {
                    "audio": "b.wav",
                    "anchor": "agent_audio_done",
                    "response": 2,
                    "offset_ms": 300,
                    "kind": "turn",
                }
            ],
            "echo": {"delay_ms": 50, "gain_db": -10, "reverb": {"rt60_ms": 200, "seed": 3}},
        },
    )
    sc = load_scenario(tmp_path / "b.json")
    (tmp_path / "c.json").write_text(json.dumps({**sc.to_dict(), "id": "c"}))
    again = load_scenario(tmp_path / "c.json")
    assert again.inserts == sc.inserts and again.echo == sc.echo and again.tags == ("ci",)


def test_unknown_behaviour_is_named(tmp_path):
    _write(tmp_path, "d", {"category": "pause", "expect": [{"behaviour": "wait"}]})
    with pytest.raises(ScenarioError, match="behaviour must be one of"):
        load_scenarios(tmp_path)


def test_take_turn_needs_an_end_time(tmp_path):
    _write(tmp_path, "e", {"category": "smooth_turn", "expect": [{"behaviour": "take_turn"}]})
    with pytest.raises(ScenarioError, match="needs end_ms"):
        load_scenarios(tmp_path)


def test_missing_audio_is_an_error(tmp_path):
    (tmp_path / "f.json").write_text(json.dumps({"schema": SCHEMA, "category": "pause"}))
    with pytest.raises(ScenarioError, match="not found"):
        load_scenarios(tmp_path)


def test_subset_filters_by_tag(tmp_path):
    _write(tmp_path, "g", {"category": "pause", "tags": ["ci"]})
    _write(tmp_path, "h", {"category": "pause"})
    assert [s.id for s in load_scenarios(tmp_path, subset="ci")] == ["g"]
    (tmp_path / "results.json").write_text("{}")  # other JSON files are not scenarios
    assert len(load_scenarios(tmp_path)) == 2
