"""A scenario's base track under construction, and a built scenario with its audio."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from duplex.audio.level import speech_span_ms
from duplex.eval.scenarios import Scenario, Segment
from duplex.eval.synthesis import SR


class Track:
    """A base track under construction: pieces placed in time, segments recorded."""

    def __init__(self) -> None:
        self.pieces: list[tuple[int, np.ndarray]] = []
        self.segments: list[Segment] = []
        self.cursor = 0  # samples

    def silence(self, seconds: float) -> None:
        self.cursor += int(seconds * SR)

    def add(
        self, audio: np.ndarray, text: str = "", speaker: str = "user", at: int | None = None
    ) -> tuple[float, float]:
        start = self.cursor if at is None else at
        self.pieces.append((start, audio))
        a, b = speech_span_ms(audio, SR, -40.0)
        seg = Segment(
            round(start * 1000 / SR + a, 1), round(start * 1000 / SR + b, 1), text, speaker
        )
        self.segments.append(seg)
        if at is None:
            self.cursor = start + len(audio)
        return seg.start_ms, seg.end_ms

    def render(self, tail_s: float = 0.5) -> np.ndarray:
        end = max([self.cursor] + [s + len(x) for s, x in self.pieces]) + int(tail_s * SR)
        out = np.zeros(end, np.float32)
        for s, x in self.pieces:
            out[s : s + len(x)] += x
        return np.clip(out, -1, 1)


@dataclass
class Built:
    scenario: Scenario
    wavs: dict[str, np.ndarray]  # file name → samples
