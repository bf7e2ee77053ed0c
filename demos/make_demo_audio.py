"""Builds demos/data/demo_conversation.wav: three spoken user turns with room for answers.

The user's voice is espeak-ng (from the espeakng-loader wheel), at 16 kHz mono.
Run: python demos/make_demo_audio.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from duplex.audio.resample import resample
from duplex.audio.wav import write_wav
from duplex.models.tts_espeak import EspeakSynthesizer

TURNS = [
    ("Hi there! What is your name?", 6.0),
    ("What is the capital of France?", 6.5),
    ("Can you give me a tip for sleeping better?", 8.0),
]


def build(out: Path) -> None:
    tts = EspeakSynthesizer(voice="en-us", rate_wpm=165)
    parts = [np.zeros(8000, np.float32)]
    for text, gap_s in TURNS:
        speech = np.concatenate([c.samples for c in tts.synthesize(text)])
        speech = resample(speech, tts.sample_rate, 16000)
        speech *= 0.5 / max(1e-6, float(np.abs(speech).max()))
        parts += [speech, np.zeros(int(gap_s * 16000), np.float32)]
    write_wav(out, np.concatenate(parts), 16000)


if __name__ == "__main__":
    build(Path(__file__).parent / "data" / "demo_conversation.wav")
