"""``duplex talk`` against a virtual audio device: a PulseAudio null sink feeds the
"microphone", another records the "speakers". Real PortAudio, real models."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf
from alignment import sound_spans

from duplex.audio.wav import write_wav
from duplex.bench.speech import speak


def _pactl(*args: str) -> str:
    return subprocess.run(["pactl", *args], capture_output=True, text=True, check=True, timeout=10).stdout


@pytest.fixture(scope="module")
def pulse():
    if subprocess.run(["pactl", "info"], capture_output=True, timeout=10).returncode != 0:
        subprocess.run(["pulseaudio", "--daemonize=yes", "--exit-idle-time=-1", "--disallow-exit"], capture_output=True, timeout=20)
        for _ in range(50):
            if subprocess.run(["pactl", "info"], capture_output=True, timeout=10).returncode == 0:
                break
            time.sleep(0.1)
    modules = [
        _pactl("load-module", "module-null-sink", "sink_name=duplex_test_mic").strip(),
        _pactl("load-module", "module-null-sink", "sink_name=duplex_test_speaker").strip(),
    ]
    yield
    for m in modules:
        subprocess.run(["pactl", "unload-module", m], capture_output=True, timeout=10)


@pytest.mark.slow
def test_talk_hears_the_microphone_and_answers_through_the_speaker(pulse, tmp_path):
    question = tmp_path / "question.wav"
    write_wav(question, np.concatenate([speak("What is the capital of France?", "en-us+f3"), np.zeros(8000, np.float32)]), 16000)
    env = {**os.environ, "PULSE_SOURCE": "duplex_test_mic.monitor", "PULSE_SINK": "duplex_test_speaker", "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    recorded = tmp_path / "speaker.wav"
    rec = subprocess.Popen(
        ["parecord", "--device=duplex_test_speaker.monitor", "--rate=16000", "--channels=1", "--format=s16le", "--file-format=wav", str(recorded)]
    )
    talk = subprocess.Popen(
        [sys.executable, "-m", "duplex", "talk", "--duration", "30", "--save", str(tmp_path / "saved")],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        # Speak once the models are loaded (a loaded CI machine can take longer than
        # any fixed sleep), then give the audio streams a moment to open.
        deadline = time.monotonic() + 60
        first_lines = []
        while time.monotonic() < deadline:
            line = talk.stdout.readline() if talk.stdout else ""
            first_lines.append(line)
            if "talk now" in line or not line:
                break
        assert any("talk now" in x for x in first_lines), first_lines
        time.sleep(1.5)
        subprocess.run(["paplay", "--device=duplex_test_mic", str(question)], check=True, timeout=20)
        out, err = talk.communicate(timeout=60)
        out = "".join(first_lines) + out
    finally:
        talk.kill()
        rec.terminate()
        rec.wait(timeout=10)
    assert talk.returncode == 0, err
    events = [json.loads(x) for x in (tmp_path / "saved" / "events.jsonl").read_text().splitlines()]
    finals = [e["text"].lower() for e in events if e["type"] == "user.transcript.final" and e["text"]]
    assert any("capital" in f for f in finals), finals
    done = [e for e in events if e["type"] == "agent.audio.done"]
    # Answered (relevance is tested offline, in test_cli_run); 30 s leave a slow machine
    # room for the end-of-turn wait, the answer's latency and its whole playback.
    assert done and done[0]["text"].strip(), [e["type"] for e in events]
    assert "agent:" in out and "you:" in out  # the live view printed both sides
    speaker, rate = sf.read(str(recorded), dtype="float32")
    assert np.sqrt(np.mean(speaker**2)) > 0.005, "nothing reached the speaker"
    saved, saved_rate = sf.read(str(tmp_path / "saved" / "conversation.wav"), dtype="float32")
    assert saved.shape[1] == 2 and np.abs(saved[:, 0]).max() > 0.05 and np.abs(saved[:, 1]).max() > 0.05
    # Saved in stream time: as long as the session, the agent's sound where the events put it.
    closed = next(e for e in events if e["type"] == "session.closed")
    assert abs(1000 * len(saved) / saved_rate - closed["t_ms"]) <= 32
    started = next(e for e in events if e["type"] == "agent.audio.started")["t_ms"]
    first_sound_ms = 1000 * sound_spans(saved[:, 1], saved_rate)[0][0] / saved_rate
    # Within a frame, plus the silence espeak-ng opens its speech with (about 35 ms).
    assert started - 32 <= first_sound_ms <= started + 32 + 60, (started, first_sound_ms)
