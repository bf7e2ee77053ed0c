"""WAV I/O with soundfile, with clear errors for input the runtime cannot take."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from duplex.errors import AudioFormatError


def read_wav(path: str | Path, *, expect_rate: int | None = None) -> tuple[np.ndarray, int]:
    """Read a mono WAV file as float32.

    Args:
        path: the file.
        expect_rate: when given, a file at another rate is an error (the caller
            may prefer to resample instead: pass None and check the rate).

    Returns:
        (samples, sample_rate).

    Raises:
        AudioFormatError: the file is missing, empty, corrupt, not mono or at the wrong rate.
    """
    p = Path(path)
    if not p.is_file():
        raise AudioFormatError(f"no such audio file: {p}")
    try:
        data, rate = sf.read(str(p), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, ValueError) as exc:
        raise AudioFormatError(f"cannot read {p} as audio ({exc}); is it a valid WAV file?") from exc
    if data.shape[0] == 0:
        raise AudioFormatError(f"{p} holds no samples")
    if data.shape[1] != 1:
        raise AudioFormatError(
            f"{p} has {data.shape[1]} channels; duplex takes mono input "
            f"(convert with: sox {p.name} -c 1 mono.wav)"
        )
    if expect_rate is not None and rate != expect_rate:
        raise AudioFormatError(
            f"{p} is sampled at {rate} Hz but this profile expects {expect_rate} Hz "
            f"(convert with: sox {p.name} -r {expect_rate} out.wav, or pass --resample)"
        )
    return np.ascontiguousarray(data[:, 0]), int(rate)


def write_wav(path: str | Path, samples: np.ndarray, sample_rate: int) -> None:
    """Write float32 samples (mono (n,) or multi-channel (n, ch)) as 16-bit PCM WAV."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.clip(samples, -1.0, 1.0), sample_rate, subtype="PCM_16")
