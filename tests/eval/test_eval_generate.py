"""The standard set: big enough, every category, reproducible from its seed."""

from __future__ import annotations

import json

from duplex.eval.generate import PLAN, make_scenarios
from duplex.eval.scenarios import load_scenarios


def test_the_standard_set_has_at_least_sixty_scenarios_and_a_ci_subset():
    assert sum(count for _, _, count, _ in PLAN) >= 60
    assert 10 <= sum(ci for _, _, _, ci in PLAN) <= 30


def test_the_same_seed_gives_the_same_bytes(tmp_path):
    groups = ["smooth", "pause", "echo", "noise-idle", "background-during"]
    make_scenarios(tmp_path / "a", seed=3, only=groups)
    make_scenarios(tmp_path / "b", seed=3, only=groups)
    a = json.loads((tmp_path / "a" / "manifest.json").read_text())
    b = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert a["sha256"] == b["sha256"] and len(a["sha256"]) >= 20
    c = json.loads(
        (
            make_scenarios(tmp_path / "c", seed=4, only=["smooth"])
            and (tmp_path / "c" / "manifest.json")
        ).read_text()
    )
    assert c["sha256"]["smooth-01.wav"] != a["sha256"]["smooth-01.wav"]


def test_every_category_is_present_and_loads(tmp_path):
    make_scenarios(tmp_path, seed=0)
    scenarios = load_scenarios(tmp_path)
    cats = {s.category for s in scenarios}
    assert cats >= {
        "smooth_turn",
        "pause",
        "backchannel",
        "interruption",
        "noise",
        "background_speech",
        "echo",
    }
    echo = [s for s in scenarios if s.echo is not None]
    assert all(30 <= s.echo.delay_ms <= 150 and -20 <= s.echo.gain_db <= -6 for s in echo)
    assert any(s.echo.reverb is not None for s in echo)
    pauses = [s for s in scenarios if s.category == "pause"]
    assert all(1.0 <= s.meta["pause_s"] <= 2.0 for s in pauses)
    assert len({s.meta.get("voice") for s in scenarios if s.meta.get("voice")}) >= 4
