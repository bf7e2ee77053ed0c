"""``duplex run`` end to end: the real CLI, the real default models, real speech in."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from duplex.audio.level import speech_span_ms
from duplex.audio.resample import resample
from duplex.audio.wav import write_wav
from duplex.bench.speech import speak

ENV = {**os.environ, "HF_HUB_OFFLINE": "1"}


def _run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "duplex", *args], capture_output=True, text=True, timeout=timeout, env=ENV
    )


def _words(text: str) -> list[str]:
    import re

    return re.findall(r"[a-z']+", text.lower())


@pytest.fixture(scope="module")
def question_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("run")
    question = speak("What is the capital of France?", "en-us+f3")
    audio = np.concatenate([np.zeros(8000, np.float32), question, np.zeros(16000 * 6, np.float32)])
    wav = tmp / "question.wav"
    write_wav(wav, audio, 16000)
    out = tmp / "out"
    proc = _run("run", str(wav), "--out", str(out), "--quiet")
    return proc, out, question


@pytest.mark.slow
def test_spoken_question_gets_a_spoken_relevant_answer(question_run):
    proc, out, question = question_run
    assert proc.returncode == 0, proc.stderr
    for name in ("conversation.wav", "events.jsonl", "timeline.png", "summary.json"):
        assert (out / name).stat().st_size > 0, name
    assert "turns taken" in proc.stdout and "response latency" in proc.stdout
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    finals = [e["text"] for e in events if e["type"] == "user.transcript.final" and e["text"]]
    assert finals and {"capital", "france"} <= set(_words(finals[0]))
    done = [e for e in events if e["type"] == "agent.audio.done"]
    assert len(done) == 1 and not done[0]["interrupted"]
    assert "paris" in _words(done[0]["text"]), done[0]["text"]  # relevant, not just any speech
    summary = json.loads((out / "summary.json").read_text())
    assert summary["turns"] == 1 and summary["responses"] == 1
    # The headline is what a listener waits: from the question's last audible 10 ms
    # block (-40 dBFS, in the input we made) to the answer's first audible sample.
    real_end = 500.0 + speech_span_ms(question, 16000)[1]
    (heard,) = summary["audible_by_response_ms"]
    started = next(e for e in events if e["type"] == "agent.audio.started")
    assert heard["endpoint_lag_ms"] == pytest.approx(started["t_ms"] - started["latency_ms"] - real_end)
    assert heard["event_latency_ms"] == pytest.approx(started["latency_ms"])
    assert 0 <= heard["lead_in_ms"] <= 40  # the answer sounds as soon as it is played
    parts = heard["endpoint_lag_ms"] + heard["event_latency_ms"] + heard["lead_in_ms"]
    assert heard["audible_ms"] == pytest.approx(parts)
    assert summary["response_latency_ms"]["p50"] == pytest.approx(heard["audible_ms"])
    assert "response latency p50 / p95 (audible)" in proc.stdout and "lead-in" in proc.stdout


@pytest.mark.slow
def test_agent_audio_says_what_its_transcript_says(question_run):
    """The agent channel, transcribed by the ASR, matches the agent.audio.done text."""
    from duplex.models.asr_whisper import WhisperRecognizer

    proc, out, _ = question_run
    assert proc.returncode == 0, proc.stderr
    data, rate = sf.read(str(out / "conversation.wav"), dtype="float32")
    assert data.shape[1] == 2
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    started = next(e for e in events if e["type"] == "agent.audio.started")
    done = next(e for e in events if e["type"] == "agent.audio.done")
    agent = data[:, 1]
    a, b = int(started["t_ms"] * rate / 1000), int(done["t_ms"] * rate / 1000)
    assert np.sqrt(np.mean(agent[a:b] ** 2)) > 0.02  # speech where the events say
    assert np.abs(agent[: max(0, a - rate // 10)]).max() < 1e-3  # silence before it
    heard = WhisperRecognizer(threads=2).transcribe(resample(agent[a:b], rate, 16000)).text
    import difflib

    # Letters, not words: "France is" heard as "Francis" is the same sound.
    said, got = "".join(_words(done["text"])), "".join(_words(heard))
    assert difflib.SequenceMatcher(None, said, got).ratio() > 0.8, (done["text"], heard)
    # The user's channel and the agent's do not overlap: the agent waited for the turn to end.
    user = data[:, 0]
    assert np.abs(user[a:b]).max() < 1e-3


def test_bad_inputs_fail_with_one_clear_line(tmp_path):
    stereo = tmp_path / "stereo.wav"
    sf.write(stereo, np.zeros((1600, 2), np.float32), 16000)
    rate = tmp_path / "rate.wav"
    sf.write(rate, np.zeros(800, np.float32), 8000)
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0, np.float32), 16000)
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF" + os.urandom(64))
    cases = {stereo: "channels", rate: "8000 Hz", empty: "no samples", corrupt: "cannot read", tmp_path / "none.wav": "no such audio file"}
    for path, needle in cases.items():
        proc = _run("run", str(path), "--out", str(tmp_path / "o"), "--config", "scripted")
        assert proc.returncode == 2, (path, proc.stderr)
        assert needle in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def test_unknown_config_key_fails_with_one_clear_line(tmp_path):
    proc = _run("run", "x.wav", "--set", "models.llm.treads=1")
    assert proc.returncode == 2 and "treads" in proc.stderr and "Traceback" not in proc.stderr


def test_run_accepts_other_rates_when_asked(tmp_path):
    wav = tmp_path / "q48.wav"
    write_wav(wav, resample(np.concatenate([np.zeros(8000, np.float32), speak("Hello there.")]), 16000, 48000), 48000)
    proc = _run("run", str(wav), "--resample", "--config", "scripted", "--out", str(tmp_path / "o"), "--no-plot")
    assert proc.returncode == 0, proc.stderr


@pytest.mark.slow
def test_end_of_turn_scored_by_the_answering_llm(tmp_path):
    """``models.eou.engine=llm``: the final waits for the draft's own end-of-utterance
    probability, the turn is taken on it and answered."""
    audio = np.concatenate(
        [np.zeros(8000, np.float32), speak("What is the capital of France?", "en-us+f3"), np.zeros(16000 * 5, np.float32)]
    )
    wav = tmp_path / "question.wav"
    write_wav(wav, audio, 16000)
    out = tmp_path / "out"
    proc = _run("run", str(wav), "--out", str(out), "--quiet", "--no-plot",
                "--set", "models.eou.engine=llm", "--set", "turn.eot_midpoint=0.65")
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    taken = [e for e in events if e["type"] == "turn.taken"]
    final = next(e for e in events if e["type"] == "user.transcript.final" and e["text"])
    # 0.95 from the question mark alone; above it only with the LLM's P(end) blended in.
    assert len(taken) == 1 and taken[0]["eot_score"] > 0.97
    # Taken at the minimum pause once scored, not after the long wait of an unscored turn.
    assert taken[0]["t_ms"] - taken[0]["end_of_speech_ms"] < 1000
    assert taken[0]["t_ms"] >= final["t_ms"]
    done = [e for e in events if e["type"] == "agent.audio.done"]
    assert done and "paris" in _words(done[0]["text"])
