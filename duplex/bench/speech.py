"""Spoken test material made on the fly: espeak-ng (from the espeakng-loader wheel)
in four voices, or the Piper voice the default profile ships, at three speaking rates.

espeak-ng's formant voices are hard to hear for the default recognizer (Whisper
tiny.en mis-hears about a fifth of the bench's words in them, against ~5 % for the
Piper voice and the human clips of models/asr.md), so a user side in espeak voices
is the pessimistic case; ``user_voice="piper"`` is a natural-sounding one.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

from duplex.audio.resample import resample
from duplex.eval.phrases import QUESTIONS

VOICES = ["en-us+f3", "en-us+m3", "en+f4", "en-us+f2"]
USER_VOICES = ("espeak", "piper")
# Piper phoneme-length multipliers: a quick, an ordinary and a slow speaker.
PIPER_LENGTH_SCALES = (0.85, 1.0, 1.2)


def speak(text: str, voice: str = "en-us", rate: int = 16000, wpm: int = 165, level: float = 0.5) -> np.ndarray:
    """espeak-ng speech of ``text`` at ``rate``, peak-normalised to ``level``."""
    from duplex.models.tts_espeak import EspeakSynthesizer

    return _rendered(EspeakSynthesizer(voice=voice, rate_wpm=wpm), text, rate, level)


def _rendered(tts: Any, text: str, rate: int, level: float) -> np.ndarray:
    """``tts``'s speech of ``text`` resampled to ``rate`` and peak-normalised to ``level``."""
    chunks = [c.samples for c in tts.synthesize(text)]
    audio = resample(np.concatenate(chunks), tts.sample_rate, rate) if chunks else np.zeros(0, np.float32)
    peak = float(np.abs(audio).max()) if len(audio) else 0.0
    return (audio * (level / peak)).astype(np.float32) if peak > 0 else audio


@lru_cache(maxsize=len(PIPER_LENGTH_SCALES))
def _piper(length_scale: float) -> Any:
    from duplex.models.tts_piper import PiperSynthesizer

    return PiperSynthesizer(length_scale=length_scale)


def speak_piper(text: str, length_scale: float = 1.0, rate: int = 16000, level: float = 0.5) -> np.ndarray:
    """The packaged Piper voice's speech of ``text`` at ``rate``, peak-normalised to ``level``."""
    return _rendered(_piper(length_scale), text, rate, level)


def questions(turns: int, rate: int = 16000, seed: int = 0, user_voice: str = "espeak") -> list[np.ndarray]:
    """``turns`` spoken questions, each in a voice drawn from ``user_voice``'s set
    (``USER_VOICES``)."""
    if user_voice not in USER_VOICES:
        raise ValueError(f"user_voice must be one of {USER_VOICES}, not {user_voice!r}")
    rng = np.random.default_rng(seed)
    spoken = []
    for i in range(turns):
        q = QUESTIONS[i % len(QUESTIONS)]
        if user_voice == "piper":
            spoken.append(speak_piper(q, PIPER_LENGTH_SCALES[int(rng.integers(len(PIPER_LENGTH_SCALES)))], rate))
        else:
            spoken.append(speak(q, VOICES[int(rng.integers(len(VOICES)))], rate))
    return spoken


def conversation(
    turns: int, gap_s: float = 7.0, rate: int = 16000, seed: int = 0, user_voice: str = "espeak"
) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """A user side of ``turns`` questions (``questions``) on a fixed timeline: each
    followed by ``gap_s`` of silence, whatever the agent does.

    Returns (audio, [(start_s, end_s) of each question]).
    """
    parts = [np.zeros(int(0.5 * rate), np.float32)]
    spans = []
    t = 0.5
    for s in questions(turns, rate, seed, user_voice):
        spans.append((t, t + len(s) / rate))
        parts += [s, np.zeros(int(gap_s * rate), np.float32)]
        t += len(s) / rate + gap_s
    return np.concatenate(parts), spans
