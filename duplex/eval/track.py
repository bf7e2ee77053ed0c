"""A scenario's base track under construction, a built scenario with its audio, and
the writer that puts built scenarios and their manifest in a folder."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from duplex.audio.level import speech_span_ms
from duplex.eval.scenarios import Scenario, Segment, write_scenario
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


class ScenarioWriter:
    """Writes built scenarios (WAV + JSON) into one folder, then the set's manifest."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.written: list[Scenario] = []
        self.hashes: dict[str, str] = {}  # file name → SHA-256 of the WAV as written

    def write(self, built: Built, tags: tuple[str, ...]) -> None:
        """Write ``built``'s audio (16-bit PCM) and its scenario, tagged ``tags``."""
        sc = dataclasses.replace(
            built.scenario, audio=self.out / built.scenario.audio.name, tags=tags
        )
        for name, audio in built.wavs.items():
            sf.write(str(self.out / name), np.clip(audio, -1, 1), SR, subtype="PCM_16")
            self.hashes[name] = hashlib.sha256((self.out / name).read_bytes()).hexdigest()
        write_scenario(sc, self.out)
        self.written.append(sc)

    def finish(
        self, generator: str, version: int, seed: int, subsets: dict[str, str]
    ) -> list[Scenario]:
        """Write ``manifest.json`` and return the scenarios written.

        Args:
            generator: the module that built the set.
            version: its generator version.
            seed: the seed the set is a function of.
            subsets: manifest key → tag; the key lists the ids of the scenarios tagged so.
        """
        manifest = {
            "generator": generator,
            "version": version,
            "seed": seed,
            "scenarios": [s.id for s in self.written],
            **{key: [s.id for s in self.written if tag in s.tags] for key, tag in subsets.items()},
            "sha256": self.hashes,
        }
        (self.out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        return self.written
