"""Human-speech evaluation: the recordings, the scenario families and their per-family figures."""

from __future__ import annotations

import hashlib
import json
import math

import numpy as np
import pytest
import soundfile as sf

from duplex.audio.level import block_db
from duplex.eval.families import backchannel_jsd, family_report, js_distance, scenario_backchannels
from duplex.eval.human_scenarios import HUMAN_PLAN, make_human_scenarios
from duplex.eval.human_speech import SOURCES, HumanSpeechMissing, human_clips, is_held_out
from duplex.eval.scenarios import load_scenarios
from duplex.models.vad_silero import SileroVad

try:
    CLIPS = human_clips()
except HumanSpeechMissing:  # pragma: no cover - the packages are part of `make install`
    CLIPS = []
needs_speech = pytest.mark.skipif(
    not CLIPS, reason="human speech not fetched: run `duplex eval fetch-human-speech`"
)


@pytest.fixture(scope="module")
def human_set(tmp_path_factory):
    folder = tmp_path_factory.mktemp("human")
    return folder, make_human_scenarios(folder, seed=0)


@needs_speech
def test_human_clips_are_checked_recordings_of_several_speakers():
    assert len(CLIPS) > 300
    assert {c.speaker for c in CLIPS} == {"Allison Smith", "June Wallack", "Carlo Flora"}
    assert {c.licence for c in CLIPS} == {"CC-BY-SA-3.0", "CC-BY-3.0"}
    minutes = 0.0
    for c in CLIPS[::25]:
        x = c.load(16000)  # checks the sha256
        assert c.path.is_file() and c.text and x.dtype == np.float32
        assert block_db(x, 16000).max() > -30.0  # real sound, not silence
        minutes += len(x) / 16000 / 60
    assert minutes > 0.5


@needs_speech
def test_held_out_split_is_by_speaker_and_recording():
    for c in CLIPS:
        src = SOURCES[c.id.split("/", 1)[0]]
        assert c.held_out == is_held_out(c.id, src)
    assert all(c.held_out for c in CLIPS if c.speaker == "Carlo Flora")
    en = [c for c in CLIPS if c.language == "en" and c.style == "sentence"]
    share = sum(c.held_out for c in en) / len(en)
    assert 0.1 < share < 0.4


@needs_speech
def test_generation_is_deterministic(human_set, tmp_path):
    folder, written = human_set
    again = make_human_scenarios(tmp_path, seed=0, only=["story", "digits"])
    first = json.loads((folder / "manifest.json").read_text())["sha256"]
    second = json.loads((tmp_path / "manifest.json").read_text())["sha256"]
    assert second and all(first[k] == v for k, v in second.items())
    assert len(written) == sum(n for _, _, n in HUMAN_PLAN)
    assert {s.id for s in again} <= {s.id for s in written}


@needs_speech
def test_every_scenario_is_tagged_with_family_and_split(human_set):
    folder, _ = human_set
    scenarios = load_scenarios(folder)
    for sc in scenarios:
        fam = sc.meta["family"]
        assert f"family:{fam}" in sc.tags and sc.meta["split"] in sc.tags
        assert sc.meta["human"] and sc.meta["licences"]
    held = [s for s in scenarios if "heldout" in s.tags]
    assert len(held) == sum(n // 4 for _, _, n in HUMAN_PLAN)
    tuning_clips = {c for s in scenarios if "tuning" in s.tags for c in s.meta["clips"]}
    held_clips = {c for s in held for c in s.meta["clips"] if not c.startswith("en/digits/")}
    assert not tuning_clips & held_clips  # never tuned on a held-out recording


def _vad_probs(x: np.ndarray) -> np.ndarray:
    vad = SileroVad()
    try:
        n = vad.frame_samples
        return np.array([vad.probability(x[i : i + n]) for i in range(0, len(x) - n + 1, n)])
    finally:
        vad.close()


@needs_speech
@pytest.mark.parametrize("family", ["story", "thinking", "digits"])
def test_pauses_sit_where_the_metadata_says(human_set, family):
    folder, _ = human_set
    sc = next(s for s in load_scenarios(folder) if s.meta["family"] == family)
    x, rate = sf.read(str(sc.audio), dtype="float32")
    assert rate == 16000
    db = block_db(x, rate)  # 10 ms blocks
    probs = _vad_probs(x)  # 32 ms frames
    pauses = [e for e in sc.expect if e.behaviour == "no_take"]
    assert pauses
    for e in pauses:
        a, b = e.onset_ms, e.end_ms
        assert a is not None and b is not None and b - a >= 500
        inside = db[int(a / 10) + 2 : int(b / 10) - 2]
        assert inside.max() < -40.0  # the pause is silent
        assert db[int(b / 10) : int(b / 10) + 30].max() > -30.0  # speech resumes at its end
        assert db[max(0, int(a / 10) - 30) : int(a / 10)].max() > -30.0  # speech before it
        mid = probs[int((a + 300) / 32) : int((b - 100) / 32)]  # past the VAD hangover
        assert mid.max() < 0.5  # the VAD hears no speech in the pause
    speech = [s for s in sc.segments if s.speaker == "user"]
    for s in speech:
        p = probs[int(s.start_ms / 32) : int(s.end_ms / 32)]
        assert p.max() > 0.8  # each recorded piece is speech to the VAD


@needs_speech
def test_quiet_interruption_is_ten_db_below_the_first_turn(human_set):
    from duplex.eval.human_scenarios import active_rms_db

    folder, _ = human_set
    for sc in load_scenarios(folder):
        if sc.meta["family"] != "quiet-interrupt":
            continue
        base, _ = sf.read(str(sc.audio), dtype="float32")
        ins, _ = sf.read(str(sc.folder / sc.inserts[0].audio), dtype="float32")
        assert active_rms_db(ins) - active_rms_db(base) == pytest.approx(-10.0, abs=1.0)


# ---------------------------------------------------------------- metrics on hand-made timelines
def test_js_distance_matches_scipy_definition():
    p = np.array([1.0, 0.0])
    q = np.array([0.0, 1.0])
    assert js_distance(p, p) == pytest.approx(0.0)
    assert js_distance(p, q) == pytest.approx(math.sqrt(math.log(2)))
    a, b = np.array([0.2, 0.3, 0.5]), np.array([0.5, 0.4, 0.1])
    m = (a + b) / 2
    kl = lambda x, y: float(np.sum(x * np.log(x / y)))  # noqa: E731
    assert js_distance(a, b) == pytest.approx(math.sqrt((kl(a, m) + kl(b, m)) / 2))


def test_backchannel_jsd_rewards_backchannels_in_the_gaps():
    gaps = [(3000.0, 3800.0), (7000.0, 7800.0)]
    in_gaps = backchannel_jsd([3200.0, 7200.0], gaps, 10000.0)
    off = backchannel_jsd([1000.0, 5000.0], gaps, 10000.0)
    assert backchannel_jsd([], gaps, 10000.0) == 1.0  # none: Full-Duplex-Bench's 1
    assert in_gaps < 0.5 < off


def test_a_backchannel_after_the_users_last_words_is_not_in_a_gap(tmp_path):
    # The story ends at 8 s; the agent says "mhm" in the turn's last pause, at 8.3 s.
    row = {
        "id": "s",
        "duration_ms": 12000.0,
        "expectations": [_no_take(3000, 3800, False), {"behaviour": "take_turn", "end_ms": 8000.0}],
    }
    late = scenario_backchannels(row, [{"type": "agent.backchannel", "t_ms": 8300.0}])
    in_gap = scenario_backchannels(row, [{"type": "agent.backchannel", "t_ms": 3200.0}])
    assert in_gap["jsd"] < 0.5
    # nothing where the reference is: the largest distance, sqrt(ln 2); it scored ~0.65 as
    # a uniform histogram when the bins stopped at the user's last words
    assert late["jsd"] == pytest.approx(math.sqrt(math.log(2)), abs=1e-3)


def _fake_run(tmp_path, rows, events):
    (tmp_path / "results.json").write_text(json.dumps({"scenarios": rows}))
    for sid, evs in events.items():
        d = tmp_path / "scenarios" / sid
        d.mkdir(parents=True)
        (d / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in evs))


def _no_take(a, b, took):
    return {
        "behaviour": "no_take",
        "category": "listen",
        "status": "fail" if took else "pass",
        "took_turn": took,
        "onset_ms": a,
        "end_ms": b,
    }


def test_family_report_splits_families_and_held_out(tmp_path):
    rows = [
        {
            "id": "s1",
            "status": "fail",
            "duration_ms": 10000.0,
            "tags": ["human", "family:story", "tuning"],
            "expectations": [_no_take(3000, 3800, True), _no_take(7000, 7800, False)],
        },
        {
            "id": "s2",
            "status": "pass",
            "duration_ms": 10000.0,
            "tags": ["human", "family:story", "heldout"],
            "expectations": [_no_take(3000, 3800, False)],
        },
        {
            "id": "q1",
            "status": "pass",
            "duration_ms": 8000.0,
            "tags": ["human", "family:quiet-interrupt", "tuning"],
            "expectations": [
                {
                    "behaviour": "yield",
                    "category": "interruption",
                    "status": "pass",
                    "took_turn": True,
                    "stopped": True,
                    "stop_latency_ms": 140.0,
                    "onset_ms": 4000.0,
                    "end_ms": 5500.0,
                }
            ],
        },
        {"id": "std", "status": "pass", "duration_ms": 1.0, "tags": ["ci"], "expectations": []},
    ]
    events = {
        "s1": [{"type": "agent.backchannel", "t_ms": 3200.0}],
        "s2": [],
        "q1": [{"type": "agent.backchannel", "t_ms": 100.0}],
    }
    _fake_run(tmp_path, rows, events)
    rep = family_report(tmp_path)
    story = rep["families"]["story"]
    assert story["tuning"]["tor_no_take"] == {"rate": 0.5, "n": 2}
    assert story["heldout"]["tor_no_take"] == {"rate": 0.0, "n": 1}
    assert story["all"]["tor_scenarios"] == {"rate": 0.5, "n": 2}
    assert story["tuning"]["backchannel_frequency_hz"] == pytest.approx(0.1)
    assert story["heldout"]["backchannel_jsd"] == 1.0
    assert story["tuning"]["backchannel_jsd"] < 1.0
    q = rep["families"]["quiet-interrupt"]["all"]
    assert q["stop_rate"] == {"rate": 1.0, "n": 1} and q["stop_latency_ms"]["p50"] == 140.0
    assert q["backchannel_jsd"] is None  # no pause to compare against
    assert set(rep["families"]) == {"story", "quiet-interrupt"}  # untagged rows are left out
    assert rep["splits"]["heldout"]["scenarios"] == 1


# ---------------------------------------------------------------- end to end, default profile
@needs_speech
@pytest.mark.slow
def test_one_scenario_per_family_through_the_default_profile(human_set, tmp_path):
    from duplex.config import load_config
    from duplex.eval.families import write_family_report
    from duplex.eval.runner import RunOptions, run_eval

    folder, _ = human_set
    scenarios = load_scenarios(folder)
    pick = [next(s for s in scenarios if s.meta["family"] == fam) for fam, _, _ in HUMAN_PLAN]
    doc = run_eval(
        pick,
        load_config("default"),
        tmp_path / "out",
        options=RunOptions(plots=False, write_audio=False),
    )
    rows = {r["id"]: r for r in doc["scenarios"]}
    assert all(r["status"] != "error" for r in rows.values())
    table = write_family_report(tmp_path / "out")
    assert table is not None and (tmp_path / "out" / "families.json").is_file()
    rep = json.loads((tmp_path / "out" / "families.json").read_text())
    assert set(rep["families"]) == {fam for fam, _, _ in HUMAN_PLAN}
    for fam, parts in rep["families"].items():
        s = parts["all"]
        if fam in ("story", "thinking", "digits", "background-first"):
            assert s["tor_no_take"]["n"] >= 1  # every pause was judged
        assert s["tor_take_turn"]["n"] >= 1  # and the user's turn
    # the sha256 of the base WAV is what the manifest says (the run read the real file)
    man = json.loads((folder / "manifest.json").read_text())["sha256"]
    for sc in pick:
        assert hashlib.sha256(sc.audio.read_bytes()).hexdigest() == man[sc.audio.name]


# ---------------------------------------------------------------- command line
def _cli(argv: list[str]) -> int:
    import argparse

    from duplex.eval.cli import add_eval_parser

    parser = argparse.ArgumentParser(prog="duplex")
    add_eval_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


@needs_speech
def test_cli_makes_the_human_set(tmp_path, capsys):
    assert _cli(["eval", "make-scenarios", str(tmp_path), "--set", "human", "--only", "story"]) == 0
    assert "wrote 8 scenarios" in capsys.readouterr().out
    assert all("family:story" in s.tags for s in load_scenarios(tmp_path))


def test_cli_families_prints_the_table_or_says_why_not(tmp_path, capsys):
    _fake_run(tmp_path, [], {})
    assert _cli(["eval", "families", str(tmp_path)]) == 1
    assert "no scenario" in capsys.readouterr().err
    rows = [
        {
            "id": "s1",
            "status": "pass",
            "duration_ms": 5000.0,
            "tags": ["family:story", "heldout"],
            "expectations": [_no_take(1000, 1600, False)],
        }
    ]
    (tmp_path / "results.json").write_text(json.dumps({"scenarios": rows}))
    assert _cli(["eval", "families", str(tmp_path)]) == 0
    assert "| story | heldout | 1 | 1 | 0% (1) |" in capsys.readouterr().out
    assert (tmp_path / "families.md").is_file() and (tmp_path / "families.json").is_file()
