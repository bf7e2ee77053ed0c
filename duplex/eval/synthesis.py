"""Sound for the standard scenario set, made repeatably: speech from the espeak-ng
command (one fresh process an utterance, so the same text gives the same samples)
and room effects from sox run with ``-R`` (reverb, level changes, band-limited
noise), all at 16 kHz."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from duplex.audio.level import speech_span_ms
from duplex.audio.resample import resample
from duplex.errors import DuplexError

SR = 16000


class GenerateError(DuplexError):
    """The generator cannot run (sox missing, bad folder)."""


def _espeak_cli(text: str, voice: str, wpm: int) -> tuple[np.ndarray, int]:
    """espeak-ng in a fresh process: the library keeps state between utterances,
    so only a new process gives the same samples for the same text every time."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise GenerateError(
            "espeak-ng is not installed; install it (apt-get install -y espeak-ng) to make scenarios"
        )
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "s.wav"
        proc = subprocess.run(
            [exe, "-v", voice, "-s", str(wpm), "-w", str(out), text],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0 or not out.is_file():
            raise GenerateError(f"espeak-ng failed for voice {voice!r}: {proc.stderr.strip()}")
        x, rate = sf.read(str(out), dtype="float32")
    return np.asarray(x, np.float32), int(rate)


def speak(text: str, voice: str, wpm: int, level_db: float = -6.0) -> np.ndarray:
    """espeak-ng speech of ``text`` at 16 kHz, trimmed, peak at ``level_db`` dBFS."""
    x, rate = _espeak_cli(text, voice, wpm)
    audio = resample(x, rate, SR)
    a, b = speech_span_ms(audio, SR, -45.0)
    audio = audio[int(a * SR / 1000) : int(b * SR / 1000)]
    peak = float(np.abs(audio).max()) or 1.0
    return (audio * (10 ** (level_db / 20) / peak)).astype(np.float32)


def require_sox() -> str:
    """The sox command's path.

    Raises:
        GenerateError: sox is not installed.
    """
    path = shutil.which("sox")
    if path is None:
        raise GenerateError(
            "sox is not installed; install it (apt-get install -y sox) to make scenarios"
        )
    return path


def sox(
    audio: np.ndarray | None, *effects: str, length_s: float | None = None, synth: str | None = None
) -> np.ndarray:
    """Run sox effects on ``audio`` (or synthesize ``length_s`` of ``synth`` noise), repeatably."""
    exe = require_sox()
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in.wav", Path(tmp) / "out.wav"
        if audio is None:
            cmd = [
                exe,
                "-R",
                "-n",
                "-r",
                str(SR),
                "-c",
                "1",
                "-b",
                "16",
                str(dst),
                "synth",
                f"{length_s:.3f}",
                str(synth),
                *effects,
            ]
        else:
            sf.write(str(src), np.clip(audio, -1, 1), SR, subtype="FLOAT")
            cmd = [exe, "-R", str(src), "-b", "16", str(dst), *effects]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise GenerateError(f"sox failed ({' '.join(cmd[3:])}): {proc.stderr.strip()}")
        out, _ = sf.read(str(dst), dtype="float32")
    return np.asarray(out, np.float32)


def reverb(audio: np.ndarray, amount: int = 40, room: int = 60) -> np.ndarray:
    """sox reverb (reverberance %, room scale %), wet+dry, length kept."""
    y = sox(
        np.concatenate([audio, np.zeros(SR // 2, np.float32)]),
        "reverb",
        str(amount),
        "50",
        str(room),
    )
    return y[: len(audio) + SR // 2]


def noise(kind: str, seconds: float, level_db: float) -> np.ndarray:
    """Band-shaped noise from sox at ``level_db`` dBFS RMS: white, pink, brown, hum or hiss."""
    if kind == "hum":
        x = sox(None, "vol", "0.5", length_s=seconds, synth="brownnoise")
        x = sox(x, "lowpass", "300")
    elif kind == "hiss":
        x = sox(None, "highpass", "3000", length_s=seconds, synth="whitenoise")
    else:
        x = sox(None, length_s=seconds, synth=f"{kind}noise")
    rms = float(np.sqrt(np.mean(x.astype(np.float64) ** 2))) or 1.0
    return (x * (10 ** (level_db / 20) / rms)).astype(np.float32)


def level(audio: np.ndarray, db: float) -> np.ndarray:
    """A level change through sox ``gain``."""
    return sox(audio, "gain", f"{db:.1f}")[: len(audio)]
