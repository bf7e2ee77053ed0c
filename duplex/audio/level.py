"""Where sound is audible: 10 ms block levels, the voiced span of a clip (absolute, or
relative to its loudest block), and the first audible sample of a played track.

A listener's latency runs from the last sound they made to the first sound they
hear, so both ends are read from audio with one rule: a 10 ms block whose RMS is
above ``AUDIBLE_DB`` dBFS is audible. Blocks are laid from where the sound of
interest may begin: the start of a clip (the user's question) or of a response's
first played frame, so a block never straddles silence before it.
"""

from __future__ import annotations

import numpy as np

AUDIBLE_DB = -40.0  # a 10 ms block above this RMS (dBFS) is audible
BLOCK_MS = 10.0


def block_db(samples: np.ndarray, rate: int, block_ms: float = BLOCK_MS) -> np.ndarray:
    """RMS level in dBFS of each whole ``block_ms`` block of ``samples``."""
    n = max(1, int(round(rate * block_ms / 1000.0)))
    blocks = len(samples) // n
    if blocks == 0:
        return np.zeros(0, np.float64)
    x = np.asarray(samples[: blocks * n], np.float64).reshape(blocks, n)
    return 20.0 * np.log10(np.sqrt(np.mean(x**2, axis=1)) + 1e-12)


def speech_span_ms(
    samples: np.ndarray, rate: int, threshold_db: float = AUDIBLE_DB
) -> tuple[float, float]:
    """First and last 10 ms block above ``threshold_db`` dBFS: ``(start_ms, end_ms)``
    of the voiced span; the whole clip when nothing is above it."""
    db = block_db(samples, rate)
    idx = np.flatnonzero(db > threshold_db)
    if not len(idx):
        return (0.0, len(samples) * 1000.0 / rate)
    return (float(idx[0] * BLOCK_MS), float((idx[-1] + 1) * BLOCK_MS))


def voiced_span(
    samples: np.ndarray, sample_rate: int, threshold_db: float = -40.0
) -> tuple[int, int]:
    """Sample range [start, end) between leading and trailing silence.

    Args:
        samples: Mono float32 audio.
        sample_rate: Rate of ``samples`` in Hz.
        threshold_db: 10 ms frames quieter than this, relative to the loudest
            frame, count as silence.

    Returns:
        ``(start, end)``; ``(0, len(samples))`` when everything is silent.
    """
    frame = max(1, sample_rate // 100)
    n_frames = len(samples) // frame
    if n_frames == 0:
        return 0, len(samples)
    rms = np.sqrt(np.mean(samples[: n_frames * frame].reshape(n_frames, frame) ** 2, axis=1))
    peak = float(rms.max())
    if peak <= 0.0:
        return 0, len(samples)
    loud = np.flatnonzero(rms >= peak * 10 ** (threshold_db / 20))
    return int(loud[0]) * frame, min(len(samples), (int(loud[-1]) + 1) * frame)


def first_audible_ms(
    track: np.ndarray,
    rate: int,
    start_ms: float = 0.0,
    end_ms: float | None = None,
    threshold_db: float = AUDIBLE_DB,
) -> float | None:
    """Start (ms from sample 0 of ``track``) of the first audible 10 ms block in
    [``start_ms``, ``end_ms``), the blocks laid from ``start_ms`` on (where the sound of
    interest may begin, so no block straddles it); None when there is none."""
    first = max(0, int(round(start_ms * rate / 1000.0)))
    last = len(track) if end_ms is None else min(len(track), int(round(end_ms * rate / 1000.0)))
    if last <= first:
        return None
    idx = np.flatnonzero(block_db(track[first:last], rate) > threshold_db)
    n = max(1, int(round(rate * BLOCK_MS / 1000.0)))
    return (first + int(idx[0]) * n) * 1000.0 / rate if len(idx) else None


class AudibleOnsets:
    """The stream time of each response's first audible sample, from its output frames
    as they are played (``agent.audio`` events: stream time and samples).

    A response's 10 ms blocks are laid from the start of its first played frame (the
    ``agent.audio.started`` frame), so its onset is never before that frame; a gap
    between frames is silence. Once a response's first audible block is found its
    frames are no longer kept, so memory stays bounded however long a session runs.
    A frame outside any response (an agent backchannel: no ``response_id``) answers
    nothing and is skipped.
    """

    def __init__(self, rate: int, threshold_db: float = AUDIBLE_DB) -> None:
        self.rate = rate
        self.threshold_db = threshold_db
        self.onsets_ms: dict[str, float] = {}
        self._block = max(1, int(round(rate * BLOCK_MS / 1000.0)))
        self._pending: dict[str, tuple[int, np.ndarray]] = {}  # response → (first sample, samples)

    def feed(self, response_id: str, t_ms: float, samples: np.ndarray) -> float | None:
        """One played frame of ``response_id`` starting at stream time ``t_ms``.

        Returns the response's first audible stream time (ms) when this frame reveals
        it, else None (also for frames after it was found)."""
        if not response_id or response_id in self.onsets_ms or not len(samples):
            return None
        at = int(round(t_ms * self.rate / 1000.0))
        start, buf = self._pending.get(response_id, (at, np.zeros(0, np.float32)))
        gap = at - (start + len(buf))
        if gap < 0:  # a frame again over samples already laid: keep the later one
            buf = buf[: max(0, at - start)]
            gap = 0
        buf = np.concatenate([buf, np.zeros(gap, np.float32), np.asarray(samples, np.float32)])
        whole = (len(buf) // self._block) * self._block
        loud = np.flatnonzero(block_db(buf[:whole], self.rate) > self.threshold_db)
        if len(loud):
            onset = (start + int(loud[0]) * self._block) * 1000.0 / self.rate
            self.onsets_ms[response_id] = onset
            self._pending.pop(response_id, None)
            return onset
        # Whole silent blocks are done with: keep only the partial block at the end.
        self._pending[response_id] = (start + whole, buf[whole:])
        return None
