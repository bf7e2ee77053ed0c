"""Full-Duplex-Bench interoperability on a small sample set in its layout."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from alignment import count_checked, event_audio_mismatches

from duplex.config import config_from_dict
from duplex.eval.fdb import export_fdb, import_fdb, score_fdb_layout
from duplex.eval.runner import RunOptions, run_eval
from duplex.eval.scenarios import load_scenarios

DATA = Path(__file__).parent / "data" / "fdb_sample"
SR = 16000


def tone(a: float, b: float, total: float, freq: float = 300.0) -> np.ndarray:
    x = np.zeros(int(total * SR), np.float32)
    i, j = int(a * SR), int(b * SR)
    x[i:j] = 0.2 * np.sin(2 * np.pi * freq * np.arange(j - i) / SR)
    return x


def _sample_set(root: Path) -> Path:
    """The fixture's annotations plus synthesized input.wav files (user speech as tones)."""
    shutil.copytree(DATA, root)
    waves = {
        "pause_handling/1": tone(0.3, 1.3, 4.0) + tone(2.8, 3.6, 4.0),
        "smooth_turn_taking/1": tone(0.5, 2.1, 8.0),
        "user_interruption/1": tone(0.5, 2.0, 9.0) + tone(4.0, 5.5, 9.0, 450.0),
        "user_backchannel/1": tone(0.5, 2.0, 7.0) + tone(4.2, 4.5, 7.0, 450.0),
    }
    for d, x in waves.items():
        sf.write(str(root / d / "input.wav"), x, SR)
    return root


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fdb")
    src = _sample_set(tmp / "fdb")
    ids = import_fdb(src, tmp / "scen")
    config = config_from_dict({"models": {"kind": "scripted"}})
    doc = run_eval(
        load_scenarios(tmp / "scen"), config, tmp / "run", options=RunOptions(plots=False)
    )
    counts = export_fdb(tmp / "run", tmp / "export")
    return {
        "ids": ids,
        "doc": doc,
        "counts": counts,
        "root": tmp / "export",
        "scen": tmp / "scen",
        "run": tmp / "run",
    }


def test_import_maps_each_task_to_its_behaviour(exported):
    by_id = {s.id: s for s in load_scenarios(exported["scen"])}
    assert set(by_id) == {
        "fdb-pause_handling-1",
        "fdb-smooth_turn_taking-1",
        "fdb-user_interruption-1",
        "fdb-user_backchannel-1",
    }
    assert by_id["fdb-pause_handling-1"].expect[0].behaviour == "no_take"
    tt = by_id["fdb-smooth_turn_taking-1"].expect[0]
    assert tt.behaviour == "take_turn" and tt.end_ms == pytest.approx(2100.0)
    ui = by_id["fdb-user_interruption-1"].expect[0]
    assert (ui.behaviour, ui.onset_ms, ui.end_ms) == ("yield", 4000.0, 5500.0)
    assert by_id["fdb-user_backchannel-1"].category == "backchannel"


def test_export_writes_the_files_the_scorers_read(exported):
    root = exported["root"]
    assert exported["counts"] == {
        "pause_handling": 1,
        "smooth_turn_taking": 1,
        "user_interruption": 1,
        "user_backchannel": 1,
    }
    for task, ann in (
        ("pause_handling", "pause.json"),
        ("smooth_turn_taking", "turn_taking.json"),
        ("user_interruption", "interrupt.json"),
        ("user_backchannel", "metadata.json"),
    ):
        d = root / task / "1"
        for f in ("input.wav", "output.wav", "output.json", ann):
            assert (d / f).is_file(), f"{task}/{f}"
        i, ri = sf.read(str(d / "input.wav"))
        o, ro = sf.read(str(d / "output.wav"))
        assert ri == ro == SR and len(i) == len(o) and o.ndim == 1
        out = json.loads((d / "output.json").read_text())
        assert set(out) == {"text", "chunks"}
        assert all(
            set(c) == {"text", "timestamp"} and len(c["timestamp"]) == 2 for c in out["chunks"]
        )
    inter = json.loads((root / "user_interruption" / "1" / "interrupt.json").read_text())
    assert set(inter[0]) == {"context", "interrupt", "timestamp"}
    chunks = json.loads((root / "user_interruption" / "1" / "output.json").read_text())["chunks"]
    assert all(
        c["timestamp"][0] >= inter[0]["timestamp"][1] for c in chunks
    )  # words after the interruption only
    assert (root / "pause_handling" / "README.md").is_file()


def test_exported_audio_sits_on_the_runs_events(exported):
    """output.wav starts and pauses where the run's events say, within a frame, and
    input.wav is the microphone the run heard, sample for sample."""
    checked = [0, 0]
    for task in exported["counts"]:
        d = exported["root"] / task / "1"
        run = exported["run"] / "scenarios" / f"fdb-{task}-1"
        mic, rate = sf.read(str(d / "input.wav"), dtype="float32")
        agent, _ = sf.read(str(d / "output.wav"), dtype="float32")
        heard, _ = sf.read(str(run / "input.wav"), dtype="float32")
        np.testing.assert_array_equal(mic, heard[: len(mic)])
        end_ms = 1000 * len(agent) / rate - 32  # a cut sample: events before its end
        events = [json.loads(x) for x in (run / "events.jsonl").read_text().splitlines()]
        events = [e for e in events if e["t_ms"] < end_ms]
        assert event_audio_mismatches(events, agent, rate, 32.0) == [], task
        checked = [a + b for a, b in zip(checked, count_checked(events), strict=True)]
    assert checked[0] >= 3 and checked[1] >= 1  # answers and a barge-in were checked


def test_scores_of_the_exported_layout_match_ours(exported):
    tor = exported["doc"]["summary"]["tor"]
    root = exported["root"]
    assert score_fdb_layout(root / "smooth_turn_taking")["tor"] == tor["smooth_turn"]["rate"]
    assert score_fdb_layout(root / "pause_handling")["tor"] == tor["pause"]["rate"]
    assert score_fdb_layout(root / "user_interruption")["tor"] == tor["interruption"]["rate"]


@pytest.mark.skipif(
    not os.environ.get("FDB_REPO"),
    reason="set FDB_REPO to a Full-Duplex-Bench checkout to run its scorers",
)
def test_the_official_scorers_read_our_export(exported):
    ev = Path(os.environ["FDB_REPO"]) / "v1_v1.5" / "evaluation"
    for task, script, fn in (
        ("pause_handling", "eval_pause_handling", "eval_pause_handling"),
        ("smooth_turn_taking", "eval_smooth_turn_taking", "eval_smooth_turn_taking"),
    ):
        code = f"import sys; sys.path.insert(0, {str(ev)!r}); from {script} import {fn}; {fn}({str(exported['root'] / task)!r})"
        proc = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=False
        )
        assert proc.returncode == 0, proc.stderr
        line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("Average take turn"))
        assert float(line.split(":")[1]) == score_fdb_layout(exported["root"] / task)["tor"]
