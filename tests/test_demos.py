"""The demos run as documented."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from duplex.audio.wav import write_wav
from duplex.bench.speech import speak

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_embedding_example_answers_a_spoken_question(tmp_path):
    wav = tmp_path / "q.wav"
    write_wav(wav, np.concatenate([np.zeros(8000, np.float32), speak("What is the capital of France?", "en-us+f3"), np.zeros(8000, np.float32)]), 16000)
    proc = subprocess.run(
        [sys.executable, str(ROOT / "demos" / "embed.py"), str(wav)],
        capture_output=True, text=True, timeout=120, cwd=ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert proc.returncode == 0, proc.stderr
    assert "user:" in proc.stdout and "agent:" in proc.stdout
    assert "capital" in proc.stdout.lower()  # the spoken question was heard and answered
    saved, rate = sf.read(str(ROOT / "out" / "embed_conversation.wav"), dtype="float32")
    assert saved.shape[1] == 2 and np.abs(saved[:, 0]).max() > 0.05 and np.abs(saved[:, 1]).max() > 0.05


def test_demo_input_is_bundled():
    assert (ROOT / "demos" / "data" / "demo_conversation.wav").stat().st_size > 100_000
