"""The PCM frame: a block of mono samples placed in stream time."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from duplex.errors import AudioFormatError


@dataclass(frozen=True)
class AudioFrame:
    """A block of mono float32 samples that starts at a known stream time.

    Attributes:
        samples: float32 array of shape (n,), values in [-1, 1].
        sample_rate: samples per second.
        start_sample: index of the first sample in the stream (at ``sample_rate``).
    """

    samples: np.ndarray
    sample_rate: int
    start_sample: int = 0

    @property
    def start_ms(self) -> float:
        return 1000.0 * self.start_sample / self.sample_rate

    @property
    def duration_ms(self) -> float:
        return 1000.0 * len(self.samples) / self.sample_rate


def pcm16_to_float(data: bytes | np.ndarray) -> np.ndarray:
    """Convert little-endian PCM16 bytes (or an int16 array) to float32 in [-1, 1)."""
    if isinstance(data, bytes | bytearray | memoryview):
        if len(data) % 2:
            raise AudioFormatError(
                f"PCM16 payload has an odd byte count ({len(data)}); send whole 16-bit samples"
            )
        data = np.frombuffer(data, dtype="<i2")
    return (np.asarray(data, dtype=np.int16).astype(np.float32)) / 32768.0


def float_to_pcm16(samples: np.ndarray) -> bytes:
    """Convert float32 samples to little-endian PCM16 bytes, clipping to range."""
    clipped = np.clip(samples, -1.0, 32767.0 / 32768.0)
    return (clipped * 32768.0).astype("<i2").tobytes()


def as_mono_float32(samples: np.ndarray, *, what: str = "audio") -> np.ndarray:
    """Validate and return a 1-D float32 view of ``samples``.

    Raises:
        AudioFormatError: for multi-channel, non-numeric or non-finite input.
    """
    arr = np.asarray(samples)
    if arr.ndim != 1:
        raise AudioFormatError(
            f"{what} must be mono (1-D); got shape {arr.shape}. Mix down to one channel first."
        )
    if arr.dtype == np.int16:
        return pcm16_to_float(arr)
    if not np.issubdtype(arr.dtype, np.floating):
        raise AudioFormatError(f"{what} must be float32 in [-1, 1] or int16 PCM; got {arr.dtype}")
    arr = arr.astype(np.float32, copy=False)
    if arr.size and not np.isfinite(arr).all():
        raise AudioFormatError(f"{what} contains NaN or infinite samples")
    return arr
