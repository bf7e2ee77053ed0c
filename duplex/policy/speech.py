"""Is the user speaking? Speech onsets with hysteresis, and the user's own level.

The VAD's per-frame probability becomes *stretches* of speech: a stretch starts
once a run of speech frames has lasted an onset time (shorter while the agent
speaks, so a barge-in pauses it quickly), and ends after a hangover of two
unvoiced frames. A higher threshold starts speech than keeps it (hysteresis).

Speech only *starts* once it reaches the user's own level, learned from their
turns: far quieter talk is background (a television, a colleague). The soft
first syllables before the loud frame still belong to the stretch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from duplex.config import TurnConfig

# A stretch reaching the user's level starts at most this long before its first loud
# frame: time for a soft "what is" or "can you", not for a background talker's phrase.
SOFT_ONSET_MS = 500.0


@dataclass(frozen=True)
class SpeechFrame:
    """What the speech detector made of one frame, in stream time (ms).

    Attributes:
        end_ms: end of the frame.
        started: a stretch of speech started (at ``onset_ms``).
        stopped: the stretch ended (its last voice at ``last_voice_ms``).
        voiced: a voiced frame inside a stretch (the user's level is learned from these).
        active: inside a stretch (hangover included).
        onset_ms: start of the current (or last) stretch.
        last_voice_ms: end of the last frame judged speech.
        voiced_ms: voiced time in the current stretch.
    """

    end_ms: float
    started: bool
    stopped: bool
    voiced: bool
    active: bool
    onset_ms: float
    last_voice_ms: float
    voiced_ms: float

    @property
    def silence_ms(self) -> float:
        """Time since the last voice, to the end of this frame."""
        return self.end_ms - self.last_voice_ms


class SpeechDetector:
    """Speech stretches from per-frame VAD probabilities, with hysteresis.

    Args:
        cfg: the ``[turn]`` section (``vad_threshold``, ``vad_release``).
        frame_ms: tick length.
    """

    def __init__(self, cfg: TurnConfig, frame_ms: float) -> None:
        self.cfg = cfg
        self.frame_ms = frame_ms
        self.active = False
        self._run_ms = 0.0  # consecutive speech-frame time not yet promoted to active
        self._run_start_ms = 0.0
        self._run_loud_ms: float | None = None  # first frame of the run at the user's own level
        self.onset_ms = 0.0
        self.last_voice_ms = 0.0  # end of the last frame judged speech
        self.voiced_ms = 0.0  # voiced time in the current active stretch

    def update(self, t_ms: float, prob: float, onset_ms: float, loud: bool = True) -> SpeechFrame:
        """Advance by one frame.

        A run of speech frames becomes a stretch once it has lasted ``onset_ms`` since
        its first ``loud`` frame (at the user's level). The stretch then starts at the
        run's first frame, at most ``SOFT_ONSET_MS`` before that loud frame: a soft
        "What is" before the stressed syllable is the user's, not background.

        Args:
            t_ms: stream time of the start of the frame.
            prob: the VAD's speech probability for it.
            onset_ms: how long a run must last to start a stretch.
            loud: the frame reaches the user's level (see ``UserLevel.reaches``).
        """
        frame_end = t_ms + self.frame_ms
        voiced = prob >= (self.cfg.vad_release if self.active else self.cfg.vad_threshold)
        started = stopped = False
        if voiced:
            if self._run_ms == 0.0:
                self._run_start_ms = t_ms
                self._run_loud_ms = None
            if loud and self._run_loud_ms is None:
                self._run_loud_ms = t_ms
            self._run_ms += self.frame_ms
            self.last_voice_ms = frame_end
            if self.active:
                self.voiced_ms += self.frame_ms
            elif self._run_loud_ms is not None and frame_end - self._run_loud_ms >= onset_ms:
                self.active, started = True, True
                self.onset_ms = max(self._run_start_ms, self._run_loud_ms - SOFT_ONSET_MS)
                self.voiced_ms = frame_end - self.onset_ms
        else:
            self._run_ms = 0.0
            # Hangover of two frames keeps one weak frame from splitting a word.
            if self.active and frame_end - self.last_voice_ms >= 2 * self.frame_ms:
                self.active, stopped = False, True
        return SpeechFrame(
            end_ms=frame_end,
            started=started,
            stopped=stopped,
            voiced=voiced and self.active,
            active=self.active,
            onset_ms=self.onset_ms,
            last_voice_ms=self.last_voice_ms,
            voiced_ms=self.voiced_ms,
        )


class UserLevel:
    """The user's typical speech level, learned from their turns, and the background floor.

    Args:
        margin_db: speech this far below the user's level is background
            (``[turn] background_margin_db``; 0: off).
    """

    def __init__(self, margin_db: float) -> None:
        self.margin_db = margin_db
        self.level_db: float | None = None  # typical level of this user's speech (dBFS)
        self._voiced_db: list[float] = []  # levels of the current turn's voiced frames

    def background_floor_db(self) -> float | None:
        """Speech quieter than this (dBFS) is background talk; None until the user has spoken."""
        if self.margin_db <= 0 or self.level_db is None:
            return None
        return self.level_db - self.margin_db

    def reaches(self, energy_db: float) -> bool:
        """A frame at ``energy_db`` may start the user's speech (it is not background)."""
        floor = self.background_floor_db()
        return floor is None or energy_db >= floor

    def hear(self, energy_db: float) -> None:
        """A voiced frame of the user's turn, at ``energy_db``."""
        self._voiced_db.append(energy_db)

    def new_turn(self) -> None:
        """A turn opens: keep only the most recent levels heard before it."""
        self._voiced_db = self._voiced_db[-64:]

    def learn(self) -> None:
        """Update the user's typical speech level from the turn just ended."""
        if len(self._voiced_db) >= 5:
            level = float(np.percentile(self._voiced_db, 90))  # the loud part of their syllables
            prev = self.level_db
            self.level_db = level if prev is None else 0.7 * prev + 0.3 * level
        self._voiced_db = []
