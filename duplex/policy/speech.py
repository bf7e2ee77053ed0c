"""Is the user speaking? Speech onsets with hysteresis, and the user's own level.

The VAD's per-frame probability becomes *stretches* of speech: a stretch starts
once a run of speech frames has lasted an onset time (shorter while the agent
speaks, so a barge-in pauses it quickly), and ends after a hangover of two
unvoiced frames. A higher threshold starts speech than keeps it (hysteresis).

Speech only *starts* once it reaches the user's own level, learned from their
turns: far quieter talk is background (a television, a colleague). The soft
first syllables before the loud frame still belong to the stretch.

While the agent speaks, a level learned once is not enough: a user who
interrupts more softly than they first spoke is still the user. There the
user's level is demanded only when something else explains the sound: talk
heard recently at that level that turned out to be background, or the agent's
own echo as loud as the frame (``UserLevel.may_start``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from duplex.config import TurnConfig

# A stretch reaching the user's level starts at most this long before its first loud
# frame: time for a soft "what is" or "can you", not for a background talker's phrase.
SOFT_ONSET_MS = 500.0

# A voiced frame this far below the loud part of the turn's speech has fallen to
# silence, whatever the VAD still says: its probability lags the real end of speech
# by one to three frames. 30 dB: a word's weak last consonant (-20 to -25 dB) is not
# silence; the decay into the room's floor is.
QUIET_DROP_DB = 30.0

# Background talk heard this recently still explains quiet speech at its level; older
# than this, the room may have changed (the television is off).
BACKGROUND_MEMORY_MS = 60_000.0


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
        pending: a run of voiced frames, not a stretch yet, that may still become the
            user's speech (``SpeechDetector.pending``).
    """

    end_ms: float
    started: bool
    stopped: bool
    voiced: bool
    active: bool
    onset_ms: float
    last_voice_ms: float
    voiced_ms: float
    pending: bool = False

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
        self._run_ms = 0.0  # speech-frame time of a run not yet promoted to active
        self._run_start_ms = 0.0
        self._run_loud_ms: float | None = None  # first frame of the run at the user's own level
        self.onset_ms = 0.0
        self.last_voice_ms = 0.0  # end of the last frame judged speech
        self.voiced_ms = 0.0  # voiced time in the current active stretch

    def update(self, t_ms: float, prob: float, onset_ms: float, loud: bool = True) -> SpeechFrame:
        """Advance by one frame.

        A run of speech frames (one weak frame inside it does not end it) becomes a
        stretch once it has lasted ``onset_ms`` since its first ``loud`` frame (at the
        user's level). The stretch then starts at the
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
            # Hangover of two frames keeps one weak frame from splitting a word, and
            # from ending a run not yet a stretch (the VAD dips inside a soft "what is"
            # too, and a run cut there lost the words before the dip).
            if frame_end - self.last_voice_ms >= 2 * self.frame_ms:
                self._run_ms = 0.0
                if self.active:
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
            pending=self.pending,
        )

    @property
    def pending(self) -> bool:
        """A run of voiced frames is under way, not a stretch yet, and may still become
        the user's speech: it reached the user's level, or it is too young to tell (a soft
        first syllable; ``SOFT_ONSET_MS``). A run that stays below the user's level longer
        is background talk and holds nothing."""
        if self.active or self._run_ms == 0.0:
            return False
        return self._run_loud_ms is not None or self._run_ms < SOFT_ONSET_MS


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
        self._background: list[tuple[float, float]] = []  # (t_ms, level dBFS) of talk judged background

    def background_floor_db(self) -> float | None:
        """Speech quieter than this (dBFS) is background talk; None until the user has spoken."""
        if self.margin_db <= 0 or self.level_db is None:
            return None
        return self.level_db - self.margin_db

    def reaches(self, energy_db: float) -> bool:
        """A frame at ``energy_db`` may start the user's speech (it is not background)."""
        floor = self.background_floor_db()
        return floor is None or energy_db >= floor

    def may_start(self, t_ms: float, energy_db: float, echo_residual_db: float) -> bool:
        """A frame at ``energy_db`` may start speech while the agent speaks.

        At the user's level it always may. Below it, it may unless something else
        explains it: background talk judged so within ``BACKGROUND_MEMORY_MS`` at a level
        within ``margin_db`` below this frame or louder, or the agent's residual echo
        (``echo_residual_db``, what the echo guard expects after cancellation) within
        ``margin_db`` of it. Far below the user (twice the margin) it never may.

        Args:
            t_ms: stream time of the frame.
            energy_db: the echo-cancelled frame's level.
            echo_residual_db: the residual echo expected in this frame (-120: none).
        """
        if self.reaches(energy_db):
            return True
        assert self.level_db is not None  # reaches() is True until a level is learned
        if energy_db < self.level_db - 2 * self.margin_db:
            return False
        if echo_residual_db >= energy_db - 2 * self.margin_db:
            return False  # the agent's own echo could be this loud (its residual varies by ~±10 dB)
        return not any(
            t_ms - t < BACKGROUND_MEMORY_MS and db >= energy_db - self.margin_db for t, db in self._background
        )

    def quiet(self, energy_db: float) -> bool:
        """A frame at ``energy_db`` is silence against the current turn's speech:
        ``QUIET_DROP_DB`` below its loud part (False before five voiced frames)."""
        if len(self._voiced_db) < 5:
            return False
        return energy_db <= float(np.percentile(self._voiced_db, 90)) - QUIET_DROP_DB

    def heard_background(self, t_ms: float, level_db: float) -> None:
        """Talk at ``level_db`` (its loudest frame) turned out not to be the user."""
        self._background = [(t, db) for t, db in self._background if t_ms - t < BACKGROUND_MEMORY_MS][-7:]
        self._background.append((t_ms, level_db))

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
