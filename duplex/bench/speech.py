"""Spoken test material made on the fly with espeak-ng (from the espeakng-loader wheel)."""

from __future__ import annotations

import numpy as np

from duplex.audio.resample import resample

QUESTIONS = [
    "What is the capital of France?",
    "How many legs does a spider have?",
    "Can you recommend a good book to read?",
    "What should I cook for dinner tonight?",
    "Why is the sky blue?",
    "How far away is the moon?",
    "What is a good way to start the morning?",
    "Tell me a fun fact about octopuses.",
    "What time of year is best for visiting Japan?",
    "How do I make a cup of green tea?",
    "What is the largest ocean on Earth?",
    "Can you suggest a name for my new puppy?",
    "How do plants make their food?",
    "What is your favourite colour?",
    "How can I learn to play the guitar?",
    "Who wrote Romeo and Juliet?",
    "What is the boiling point of water?",
    "Give me a tip for staying focused at work.",
    "What does a bee do all day?",
    "How long does it take to walk ten kilometres?",
]

VOICES = ["en-us+f3", "en-us+m3", "en+f4", "en-us+f2"]


def speak(text: str, voice: str = "en-us", rate: int = 16000, wpm: int = 165, level: float = 0.5) -> np.ndarray:
    """espeak-ng speech of ``text`` at ``rate``, peak-normalised to ``level``."""
    from duplex.models.tts_espeak import EspeakSynthesizer

    tts = EspeakSynthesizer(voice=voice, rate_wpm=wpm)
    chunks = [c.samples for c in tts.synthesize(text)]
    audio = resample(np.concatenate(chunks), tts.sample_rate, rate) if chunks else np.zeros(0, np.float32)
    peak = float(np.abs(audio).max()) if len(audio) else 0.0
    return (audio * (level / peak)).astype(np.float32) if peak > 0 else audio


def conversation(turns: int, gap_s: float = 7.0, rate: int = 16000, seed: int = 0) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """A user side of ``turns`` questions separated by ``gap_s`` of silence.

    Returns (audio, [(start_s, end_s) of each question]).
    """
    rng = np.random.default_rng(seed)
    parts = [np.zeros(int(0.5 * rate), np.float32)]
    spans = []
    t = 0.5
    for i in range(turns):
        q = QUESTIONS[i % len(QUESTIONS)]
        voice = VOICES[int(rng.integers(len(VOICES)))]
        s = speak(q, voice, rate)
        spans.append((t, t + len(s) / rate))
        parts += [s, np.zeros(int(gap_s * rate), np.float32)]
        t += len(s) / rate + gap_s
    return np.concatenate(parts), spans
