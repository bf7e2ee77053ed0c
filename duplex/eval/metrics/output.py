"""What the agent did, read from a run's output track and events: voiced frames,
when it fell silent, its responses and its words laid over its voiced frames
(Full-Duplex-Bench's ``output.json`` form), and Full-Duplex-Bench's take-turn rule."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from duplex.eval.metrics.trial import (
    FDB_TURN_DURATION_S,
    FDB_TURN_WORDS,
    STOP_SILENCE_MS,
    VOICED_DB,
    Response,
    WordChunk,
)


def voiced_frames(
    track: np.ndarray, rate: int, frame_ms: float, threshold_db: float = VOICED_DB
) -> np.ndarray:
    """One bool per frame: the frame's RMS is above ``threshold_db`` dBFS."""
    n = int(round(rate * frame_ms / 1000.0))
    frames = len(track) // n
    if frames == 0:
        return np.zeros(0, bool)
    x = track[: frames * n].astype(np.float64).reshape(frames, n)
    rms = np.sqrt(np.mean(x**2, axis=1)) + 1e-12
    return 20.0 * np.log10(rms) > threshold_db


def first_voiced_ms(
    voiced: np.ndarray, frame_ms: float, start_ms: float, end_ms: float
) -> float | None:
    """Start time of the first voiced frame in [start_ms, end_ms)."""
    a = max(0, int(math.ceil(start_ms / frame_ms - 1e-9)))
    b = min(len(voiced), int(math.ceil(end_ms / frame_ms)))
    idx = np.flatnonzero(voiced[a:b])
    return float((a + idx[0]) * frame_ms) if len(idx) else None


def stop_time_ms(
    voiced: np.ndarray, frame_ms: float, onset_ms: float, min_silence_ms: float = STOP_SILENCE_MS
) -> float | None:
    """Stream time of the first output frame at or after ``onset_ms`` that begins a
    silent run of at least ``min_silence_ms`` (or silence to the end of the track)."""
    k = max(1, int(math.ceil(min_silence_ms / frame_ms)))
    i = max(0, int(math.floor(onset_ms / frame_ms)))
    n = len(voiced)
    while i < n:
        if not voiced[i]:
            j = i
            while j < n and not voiced[j] and j - i < k:
                j += 1
            if j - i >= k or j == n:
                return float(i * frame_ms)
            i = j
        else:
            i += 1
    return float(n * frame_ms) if n and onset_ms <= n * frame_ms else None


def responses(events: list[dict]) -> list[Response]:
    """Agent responses from ``agent.audio.started`` / ``agent.audio.done`` events."""
    out: dict[str, dict[str, Any]] = {}
    order: list[str] = []
    deltas: dict[str, list[str]] = {}
    for e in events:
        t = e["type"]
        rid = e.get("response_id", "")
        if t == "agent.audio.started":
            out[rid] = {"start": e["t_ms"], "done": None, "interrupted": False, "text": None}
            order.append(rid)
        elif t == "agent.audio.done" and rid in out:
            out[rid].update(
                done=e["t_ms"], interrupted=bool(e.get("interrupted")), text=e.get("text", "")
            )
        elif t == "agent.text.delta":
            deltas.setdefault(rid, []).append(e.get("text", ""))
    res = []
    for rid in order:
        r = out[rid]
        text = r["text"] if r["text"] is not None else "".join(deltas.get(rid, []))
        res.append(Response(rid, float(r["start"]), r["done"], r["interrupted"], text.strip()))
    return res


def agent_chunks(
    events: list[dict], voiced: np.ndarray, frame_ms: float, duration_ms: float
) -> list[WordChunk]:
    """The agent's words with times, in Full-Duplex-Bench ``output.json`` form.

    Full-Duplex-Bench aligns words by running ASR on ``output.wav``; we know the
    words the user heard (``agent.audio.done`` text) and where the output track
    is voiced, so each response's words are laid over its voiced frames in
    proportion to their length. (Export the audio and run the benchmark's own
    ``get_transcript/asr.py`` for an ASR-aligned transcript instead.)
    """
    chunks: list[WordChunk] = []
    for r in responses(events):
        words = r.text.split()
        if not words:
            continue
        end = r.done_ms if r.done_ms is not None else duration_ms
        a = int(r.start_ms // frame_ms)
        b = max(a + 1, int(math.ceil(end / frame_ms)))
        frames = [i for i in range(a, min(b, len(voiced))) if voiced[i]] or list(range(a, b))
        weights = np.array([len(w) + 1 for w in words], np.float64)
        bounds = np.concatenate([[0.0], np.cumsum(weights) / weights.sum()]) * len(frames)
        for w, lo, hi in zip(words, bounds[:-1], bounds[1:], strict=True):
            f0 = frames[min(int(lo), len(frames) - 1)]
            f1 = frames[min(max(int(math.ceil(hi)) - 1, int(lo)), len(frames) - 1)] + 1
            chunks.append(WordChunk(w, f0 * frame_ms / 1000.0, f1 * frame_ms / 1000.0))
    return chunks


def fdb_takes_turn(chunks: list[WordChunk] | list[dict]) -> bool:
    """Full-Duplex-Bench's take-turn rule over the words of a window.

    No words: no turn. Otherwise duration = last word's end (its start when the
    end is unknown) minus the first word's start; under 1 s it is a turn only with
    more than 3 words; from 1 s on it is a turn.
    """
    if not chunks:
        return False
    ts = [
        (c.start_s, c.end_s) if isinstance(c, WordChunk) else tuple(c["timestamp"]) for c in chunks
    ]
    last_end = ts[-1][1] if ts[-1][1] is not None else ts[-1][0]
    duration = last_end - ts[0][0]
    if duration < FDB_TURN_DURATION_S:
        return len(chunks) > FDB_TURN_WORDS
    return True


def chunks_in(chunks: list[WordChunk], start_ms: float, end_ms: float) -> list[WordChunk]:
    """Words that start inside [start_ms, end_ms)."""
    return [c for c in chunks if start_ms <= c.start_s * 1000.0 < end_ms]
