"""The agent's playout queue: speech waiting to be played, frame by frame.

It knows which response each sample belongs to and where each word lies, so
that when output stops early the caller can tell exactly what the user heard
(spoken-prefix truncation) and the cut point in ms (``audio_end_ms``).
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field

import numpy as np


@dataclass
class _Word:
    text: str
    start: int  # sample offset within the response
    end: int


@dataclass
class ResponseTrack:
    """Everything queued for one response, and how much of it has been played."""

    response_id: str
    sample_rate: int
    queued: int = 0  # samples appended so far
    played: int = 0  # samples popped for playback
    words: list[_Word] = field(default_factory=list)
    text: str = ""  # all text synthesized so far
    complete: bool = False  # no more audio will be appended

    @property
    def played_ms(self) -> float:
        return 1000.0 * self.played / self.sample_rate

    def recent_words(self, window: int) -> tuple[str, ...]:
        """Words overlapping the last ``window`` samples played."""
        since = self.played - window
        return tuple(w.text for w in self.words if w.end >= since and w.start <= self.played)

    def heard_text(self, played: int | None = None) -> str:
        """Words whose midpoint lies within the first ``played`` samples (default: all played)."""
        upto = self.played if played is None else min(played, self.played)
        return " ".join(w.text for w in self.words if (w.start + w.end) / 2 <= upto)


class PlayoutQueue:
    """Bounded-by-lookahead queue of agent speech; pops exactly one frame per tick."""

    def __init__(self, sample_rate: int) -> None:
        self.sample_rate = sample_rate
        self._chunks: collections.deque[tuple[ResponseTrack, np.ndarray]] = collections.deque()
        self._head = 0  # read offset in the first chunk
        self.track: ResponseTrack | None = None

    @property
    def queued_samples(self) -> int:
        return sum(len(c) for _, c in self._chunks) - self._head

    @property
    def queued_ms(self) -> float:
        return 1000.0 * self.queued_samples / self.sample_rate

    def start(self, response_id: str) -> ResponseTrack:
        self.track = ResponseTrack(response_id, self.sample_rate)
        return self.track

    def append(self, samples: np.ndarray, text: str, words: list[tuple[str, int, int]]) -> None:
        """Queue speech for the current response; word spans are relative to ``samples``."""
        t = self.track
        if t is None:
            raise RuntimeError("start() a response before appending audio")
        base = t.queued
        t.words.extend(_Word(w, base + s, base + e) for w, s, e in words)
        t.text = f"{t.text} {text}".strip()
        t.queued += len(samples)
        if len(samples):
            self._chunks.append((t, samples.astype(np.float32, copy=False)))

    def pop(self, n: int) -> tuple[np.ndarray, int]:
        """Pop ``n`` samples (zero-padded). Returns (frame, number of real speech samples)."""
        out = np.zeros(n, dtype=np.float32)
        filled = 0
        while filled < n and self._chunks:
            track, chunk = self._chunks[0]
            take = min(n - filled, len(chunk) - self._head)
            out[filled : filled + take] = chunk[self._head : self._head + take]
            filled += take
            self._head += take
            track.played += take
            if self._head >= len(chunk):
                self._chunks.popleft()
                self._head = 0
        return out, filled

    def flush(self) -> int:
        """Drop everything queued; returns the number of samples dropped."""
        dropped = self.queued_samples
        self._chunks.clear()
        self._head = 0
        return dropped
