"""The closed-loop runner on the scripted model: inserts land on the agent's speech,
echo reaches the microphone, outputs are written, workers run in parallel."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
from alignment import count_checked, event_audio_mismatches

from duplex.audio.resample import resample
from duplex.config import config_from_dict
from duplex.eval.runner import RunOptions, run_eval, run_scenario
from duplex.eval.scenarios import SCHEMA, load_scenario, load_scenarios
from duplex.runtime.runtime import Runtime

SR = 16000


def tone(seconds: float, amp: float = 0.2, freq: float = 300.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def gap(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * SR), np.float32)


@pytest.fixture
def config():
    return config_from_dict({"models": {"kind": "scripted"}})


def _scenario(
    folder, name: str, side: dict, base: np.ndarray, inserts: dict[str, np.ndarray] | None = None
):
    sf.write(str(folder / f"{name}.wav"), base, SR)
    for fname, x in (inserts or {}).items():
        sf.write(str(folder / fname), x, SR)
    (folder / f"{name}.json").write_text(json.dumps({"schema": SCHEMA, "id": name, **side}))
    return load_scenario(folder / f"{name}.json")


def _question(folder, name: str, extra: dict, inserts: dict | None = None):
    base = np.concatenate([gap(0.5), tone(1.0), gap(0.5)])
    side = {
        "category": extra.pop("category", "smooth_turn"),
        "segments": [{"start_ms": 500, "end_ms": 1500, "text": "question"}],
        "expect": [{"behaviour": "take_turn", "end_ms": 1500}, *extra.pop("expect", [])],
        **extra,
    }
    return _scenario(folder, name, side, base, inserts)


def _after_first_answer(audio: str, offset_ms: float, kind: str) -> dict:
    """An insert played ``offset_ms`` after the agent's first audio starts."""
    return {
        "audio": audio,
        "anchor": "agent_audio_start",
        "response": 1,
        "offset_ms": offset_ms,
        "kind": kind,
    }


def test_an_insert_lands_at_its_offset_after_the_agents_first_audio(tmp_path, config):
    sc = _question(
        tmp_path,
        "bc",
        {
            "category": "backchannel",
            "expect": [{"behaviour": "ignore", "insert": 0}],
            "inserts": [_after_first_answer("bc.mhm.wav", 640, "backchannel")],
        },
        {"bc.mhm.wav": np.concatenate([gap(0.1), tone(0.25, freq=500)])},
    )
    with Runtime(config, clock="offline") as rt:
        result, ticks = run_scenario(rt, sc, tmp_path / "out", RunOptions(plots=False))
    start = result["responses"][0]["start_ms"]
    ins = result["inserts"][0]
    assert ins["onset_ms"] == pytest.approx(start + 640, abs=1)
    assert ins["speech_onset_ms"] == pytest.approx(start + 740, abs=12)
    assert (
        result["responses"][0]["start_ms"]
        <= ins["speech_onset_ms"]
        <= (result["responses"][0]["done_ms"] or 1e9)
    )
    assert len(ticks["tick"]) > 0 and set(ticks) >= {"listen", "decide", "think", "speak"}
    mic, _ = sf.read(str(tmp_path / "out" / "input.wav"), dtype="float32")
    k = int(ins["speech_onset_ms"] * SR / 1000)
    assert np.abs(mic[k : k + 800]).max() > 0.1  # the microphone really heard it


def test_the_echo_path_feeds_the_agents_voice_back_into_the_microphone(tmp_path, config):
    sc = _question(
        tmp_path,
        "echo",
        {
            "category": "echo",
            "expect": [{"behaviour": "ignore"}],
            "echo": {"delay_ms": 100, "gain_db": -20},
        },
    )
    with Runtime(config, clock="offline") as rt:
        result, _ = run_scenario(rt, sc, tmp_path / "out", RunOptions(plots=False))
    start = result["responses"][0]["start_ms"]
    mic, _ = sf.read(str(tmp_path / "out" / "input.wav"), dtype="float32")
    k = int((start + 32 + 100) * SR / 1000)
    before, after = mic[k - 400 : k - 80], mic[k + 80 : k + 400]
    assert np.abs(before).max() < 1e-3 < np.abs(after).max()
    assert np.abs(after).max() == pytest.approx(0.3 * 10 ** (-20 / 20), rel=0.15)  # tone TTS at 0.3


def test_run_eval_writes_results_report_and_plots(tmp_path, config):
    folder = tmp_path / "scen"
    folder.mkdir()
    _question(folder, "a", {"tags": ["ci"]})
    _question(
        folder,
        "b",
        {
            "category": "interruption",
            "expect": [{"behaviour": "yield", "insert": 0}],
            "inserts": [{"audio": "b.int.wav", "offset_ms": 500, "kind": "interruption"}],
        },
        {"b.int.wav": tone(1.2, freq=450)},
    )
    doc = run_eval(load_scenarios(folder), config, tmp_path / "out")
    out = tmp_path / "out"
    for f in (
        "results.json",
        "report.md",
        "latency_cdf.png",
        "scenarios/a/timeline.png",
        "scenarios/b/conversation.wav",
    ):
        assert (out / f).is_file(), f
    s = json.loads((out / "results.json").read_text())["summary"]
    assert s["tor"]["smooth_turn"]["n"] == 2 and s["tor"]["interruption"]["n"] == 1
    assert s["stop_rate"]["rate"] == 1.0 and s["stop_latency_ms"]["p50"] < 300
    assert s["response_latency_ms"]["count"] == 2.0
    assert doc["scenarios"][1]["status"] == "pass"


def test_parallel_workers_give_the_same_verdicts(tmp_path, config):
    folder = tmp_path / "scen"
    folder.mkdir()
    for n in ("a", "b", "c"):
        _question(folder, n, {})
    scenarios = load_scenarios(folder)
    one = run_eval(scenarios, config, tmp_path / "one", options=RunOptions(plots=False))
    two = run_eval(scenarios, config, tmp_path / "two", jobs=2, options=RunOptions(plots=False))
    assert (
        [r["status"] for r in one["scenarios"]]
        == [r["status"] for r in two["scenarios"]]
        == ["pass"] * 3
    )
    assert two["meta"]["jobs"] == 2


def test_written_audio_sits_on_the_events_in_stream_time(tmp_path, config):
    """conversation.wav (24 kHz stereo), input.wav and output.wav (16 kHz) last as long as
    the session, and the agent's audio starts and pauses where the events say."""
    sc = _question(
        tmp_path,
        "cut",
        {
            "category": "interruption",
            "expect": [{"behaviour": "yield", "insert": 0}],
            "inserts": [_after_first_answer("cut.int.wav", 700, "interruption")],
        },
        {"cut.int.wav": tone(1.2, freq=450)},
    )
    out = tmp_path / "out"
    with Runtime(config, clock="offline") as rt:
        run_scenario(rt, sc, out, RunOptions(plots=False))
    events = [json.loads(x) for x in (out / "events.jsonl").read_text().splitlines()]
    assert count_checked(events) == (2, 1)  # the answer, the barge-in, the answer to it
    end_ms = next(e["t_ms"] for e in events if e["type"] == "session.closed")
    frame_ms = float(config.audio.frame_ms)
    conv, rate = sf.read(str(out / "conversation.wav"), dtype="float32")
    mic, _ = sf.read(str(out / "input.wav"), dtype="float32")
    agent16, _ = sf.read(str(out / "output.wav"), dtype="float32")
    assert len(conv) == round(end_ms * rate / 1000) and len(mic) == len(agent16) == round(end_ms * SR / 1000)
    for agent, r in ((conv[:, 1], rate), (agent16, SR)):
        assert event_audio_mismatches(events, agent, r, frame_ms) == []
    assert np.abs(conv[:, 0] - resample(mic, SR, rate)).max() < 2 / 32768  # the user, in place
