"""Checks that written audio sits in stream time: the events and the samples agree.

Shared by the tests of every output (``duplex run``, ``duplex eval``, the
Full-Duplex-Bench export, the writer itself).
"""

from __future__ import annotations

import numpy as np

SILENT = 1e-3  # |sample| at or below this is silence (PCM16 rounding is 3e-5)


def sound_spans(x: np.ndarray, rate: int, min_gap_ms: float = 5.0) -> list[tuple[int, int]]:
    """(first, last + 1) sample of each stretch of sound; gaps shorter than ``min_gap_ms``
    (a tone's zero crossings) do not split a stretch."""
    loud = np.flatnonzero(np.abs(x) > SILENT)
    if not len(loud):
        return []
    gap = max(1, int(min_gap_ms * rate / 1000))
    breaks = np.flatnonzero(np.diff(loud) > gap)
    starts = np.concatenate([[loud[0]], loud[breaks + 1]])
    ends = np.concatenate([loud[breaks], [loud[-1]]]) + 1
    return [(int(a), int(b)) for a, b in zip(starts, ends, strict=True)]


def lag(signal: np.ndarray, reference: np.ndarray, max_lag: int) -> int:
    """How many samples ``signal`` is late against ``reference`` (peak of their
    cross-correlation over ±``max_lag``)."""
    n = min(len(signal), len(reference))
    size = 1 << int(np.ceil(np.log2(2 * n)))
    a = np.fft.rfft(signal[:n].astype(np.float64), size)
    b = np.fft.rfft(reference[:n].astype(np.float64), size)
    corr = np.fft.irfft(a * np.conj(b), size)  # corr[k] = sum_i signal[i + k] * reference[i]
    lags = np.arange(-max_lag, max_lag + 1)
    return int(lags[np.argmax(corr[lags % size])])


def event_audio_mismatches(events: list[dict], agent: np.ndarray, rate: int, frame_ms: float) -> list[str]:
    """Every ``agent.audio.started`` and every ``barge_in`` pause that is more than one
    frame away from where the agent channel starts / stops sounding (empty if none)."""
    spans = sound_spans(agent, rate)
    starts = np.array([a for a, _ in spans]) * 1000.0 / rate
    ends = np.array([b for _, b in spans]) * 1000.0 / rate
    bad = []
    for e in events:
        if e["type"] == "agent.audio.started":
            near = starts
        elif e["type"] == "barge_in" and e["phase"] == "pause":
            near = ends
        else:
            continue
        off = float(np.min(np.abs(near - e["t_ms"]))) if len(near) else np.inf
        if off > frame_ms:
            bad.append(f"{e['type']}/{e.get('phase', '')} at {e['t_ms']:.0f} ms: audio {off:.0f} ms away")
    return bad


def count_checked(events: list[dict]) -> tuple[int, int]:
    """(agent.audio.started events, barge_in pauses) among ``events``."""
    started = sum(e["type"] == "agent.audio.started" for e in events)
    paused = sum(e["type"] == "barge_in" and e["phase"] == "pause" for e in events)
    return started, paused
