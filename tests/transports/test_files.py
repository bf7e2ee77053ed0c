"""``duplex run``'s outputs in stream time: the real CLI on the scripted profile, tone
bursts at known times in, ``conversation.wav`` checked sample by sample against the
input and against the events."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from alignment import count_checked, event_audio_mismatches, lag, sound_spans

from duplex.audio.resample import resample

SR = 16000
FRAME_MS = 32.0  # the profile's frame
# speex's noise suppressor learns a steady tone as noise within seconds and removes it;
# these tests are about where samples land, so the canceller stays out of the way.
NO_ECHO = ("--set", "echo.engine=none")


def bursts(seconds: float) -> tuple[np.ndarray, list[float]]:
    """A 1 s tone every 8 s (a turn the agent answers); every other cycle a second one
    2.6 s later, over the agent's answer (a barge-in). Pitches differ burst to burst."""
    x = np.zeros(int(seconds * SR), np.float32)
    onsets = []
    t = np.arange(SR) / SR
    for i, start in enumerate(np.arange(0.5, seconds - 8.0, 8.0)):
        for k, at in enumerate((start, start + 2.6) if i % 2 else (start,)):
            freq = 300.0 + 20 * (i % 10) + 150 * k
            a = int(at * SR)
            x[a : a + SR] = 0.2 * np.sin(2 * np.pi * freq * t)
            onsets.append(float(at))
    return x, onsets


def run_cli(tmp: Path, seconds: float) -> dict:
    audio, onsets = bursts(seconds)
    wav = tmp / "bursts.wav"
    sf.write(str(wav), audio, SR, subtype="PCM_16")
    out = tmp / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "duplex", "run", str(wav), "--out", str(out), "--config", "scripted",
         "--quiet", "--no-plot", *NO_ECHO],
        capture_output=True, text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert proc.returncode == 0, proc.stderr
    data, rate = sf.read(str(out / "conversation.wav"), dtype="float32")
    sent, _ = sf.read(str(wav), dtype="float32")  # the input as the run read it (PCM16)
    return {
        "data": data,
        "rate": rate,
        "input": sent,
        "onsets": onsets,
        "events": [json.loads(x) for x in (out / "events.jsonl").read_text().splitlines()],
        "summary": json.loads((out / "summary.json").read_text()),
    }


@pytest.fixture(scope="module")
def ten_minutes(tmp_path_factory):
    return run_cli(tmp_path_factory.mktemp("run10"), 600.0)


@pytest.mark.slow
def test_ten_minutes_of_bursts_stay_in_stream_time_to_the_sample(ten_minutes):
    r = ten_minutes
    data, rate = r["data"], r["rate"]
    session_s = r["summary"]["duration_s"]
    # The file lasts as long as the session, within one frame.
    assert abs(len(data) / rate - session_s) * 1000 <= FRAME_MS, (len(data) / rate, session_s)
    # The left channel is the input, resampled to the output rate, sample for sample
    # (the stream the session consumed: the input, then silence to the session's end).
    stream = np.pad(r["input"], (0, int(round(session_s * SR)) - len(r["input"])))
    expected = resample(stream, SR, rate)
    user = data[:, 0]
    assert len(expected) == len(user)
    assert np.abs(user - expected).max() < 2 / 32768
    # Cross-correlation offset 0 at the first bursts and at the last ones.
    for at in r["onsets"][:2] + r["onsets"][-2:]:
        a, b = int((at - 0.3) * rate), int((at + 1.3) * rate)
        assert lag(user[a:b], expected[a:b], rate // 10) == 0, at
    # Every burst where it was put, to the millisecond, from the first to the last.
    starts = np.array([a for a, _ in sound_spans(user, rate, min_gap_ms=20)]) / rate
    assert len(starts) == len(r["onsets"]) and np.abs(starts - r["onsets"]).max() < 0.001


@pytest.mark.slow
def test_ten_minutes_of_events_sit_on_the_agent_audio(ten_minutes):
    r = ten_minutes
    started, paused = count_checked(r["events"])
    assert started >= 100 and paused >= 30  # answers and barge-ins all along the ten minutes
    assert event_audio_mismatches(r["events"], r["data"][:, 1], r["rate"], FRAME_MS) == []


def test_agent_audio_starts_and_pauses_where_the_events_say(tmp_path):
    r = run_cli(tmp_path, 40.0)
    started, paused = count_checked(r["events"])
    assert started >= 5 and paused >= 2
    assert event_audio_mismatches(r["events"], r["data"][:, 1], r["rate"], FRAME_MS) == []
    assert abs(len(r["data"]) / r["rate"] - r["summary"]["duration_s"]) * 1000 <= FRAME_MS
