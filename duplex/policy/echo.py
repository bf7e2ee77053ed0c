"""The agent's own echo: is what the microphone still hears the agent itself?

Two judges, one for sound and one for words:

- ``EchoEstimator``: after cancellation (``duplex.policy.echo_cancel``), is a
  frame's level explained by the residual echo of what was played (and does its
  envelope follow the played audio)? A frame so explained is not the user.
- ``own_echo_share``: how much of a transcript is the agent's own recent words
  (a mishearing included)? A burst that repeats the agent is its echo.
"""

from __future__ import annotations

import difflib
import math
from collections import deque

import numpy as np

from duplex.config import EchoConfig
from duplex.errors import ConfigError
from duplex.policy.words import words_of

__all__ = ["EchoEstimator", "echo_guard_for", "frame_db", "own_echo_share", "said_by_agent"]


def frame_db(frame: np.ndarray) -> float:
    """Mean power of a frame in dB re full scale (-120 for digital silence)."""
    x = np.asarray(frame, dtype=np.float64)
    if x.size == 0:
        return -120.0
    return float(10.0 * np.log10(max(float(np.mean(x * x)), 1e-12)))


class EchoEstimator:
    """How much residual echo to expect after cancellation, and is a frame explained by it?

    The echo reaching the microphone during tick k is driven by what was played
    during the last ``max_delay_ms`` (echo path delay) and then decays with the
    room's reverb. The estimator keeps a reference level: the loudest played
    frame within the delay window, then decaying by ``decay_db_per_s``. While
    the reference is active it records ``clean dB - reference dB`` of every frame;
    the running median over the last ``window_s`` of such frames is the residual
    echo level (the median stays put while the user talks over the agent for
    less than half of that time). A frame is *explained* when its level is within
    ``margin_db`` of the expected residual echo, or below ``floor_db``.

    Level alone cannot hear a user who talks at the echo's own level while the
    canceller has not converged yet (the first seconds of a session). Given the
    raw microphone frame too, the estimator also runs a *double-talk detector*:
    the correlation between the raw microphone's 8 ms amplitude envelope and the
    played reference's, over the last ``dt_window_ms``, at the echo path's delay
    (learned from frames where the two match; the best of all delays up to
    ``max_delay_ms`` until then). Echo alone follows the reference (correlation
    around 0.9); a voice that is not the agent's breaks the match: an independent
    voice as loud as the echo brings it to about 0.7 (1/sqrt(2)). A frame louder
    than the expected residual whose envelope correlation is below ``dt_corr`` is
    not explained, however close to the echo level it is.

    Call :meth:`explained` exactly once per tick, with the cleaned mic frame and
    the frame played in the same tick; it updates the estimate and answers.

    Args:
        frame_ms: Tick length in ms (the profile's ``audio.frame_ms``): every
            constant below is in ms or s of stream time and is turned into
            frames with it.
        max_delay_ms: Longest speaker-to-mic delay to cover.
        decay_db_per_s: How fast the echo's reverb tail is assumed to fade
            (60 dB per RT60; 150 dB/s covers RT60 0.4 s).
        initial_residual_db: Residual echo assumed before anything was learned
            (0 dB = no cancellation at all; conservative against self-interruption).
        margin_db: Headroom above the expected residual.
        floor_db: Frames quieter than this are always explained.
        active_db: A reference quieter than this counts as silence (agent not audible).
        window_s: Span of the median.
        min_frames: Active frames needed before the learned estimate replaces
            ``initial_residual_db``.
        dt_corr: Envelope correlation below which the microphone holds a voice
            besides the echo (double talk); 0 disables the detector.
        dt_window_ms: Span of the envelope correlation.
    """

    _BLOCK_MS = 8.0

    def __init__(
        self,
        frame_ms: float,
        *,
        max_delay_ms: float = 250.0,
        decay_db_per_s: float = 150.0,
        initial_residual_db: float = 0.0,
        margin_db: float = 10.0,
        floor_db: float = -60.0,
        active_db: float = -50.0,
        window_s: float = 10.0,
        min_frames: int = 15,
        dt_corr: float = 0.7,
        dt_window_ms: float = 320.0,
    ) -> None:
        if frame_ms <= 0:
            raise ConfigError(f"EchoEstimator frame_ms must be > 0, got {frame_ms}")
        self.dt_corr = dt_corr
        self._dt_window = max(4, int(round(dt_window_ms / self._BLOCK_MS)))
        self._dt_lags = max(1, int(math.ceil(max_delay_ms / self._BLOCK_MS)))
        self.frame_ms = frame_ms
        self.margin_db = margin_db
        self.floor_db = floor_db
        self.active_db = active_db
        self.initial_residual_db = initial_residual_db
        self.min_frames = min_frames
        self._delay_frames = max(1, int(math.ceil(max_delay_ms / frame_ms)) + 1)
        self._decay_per_frame = decay_db_per_s * frame_ms / 1000.0
        self._window = max(1, int(round(window_s * 1000.0 / frame_ms)))
        self.reset()

    def reset(self) -> None:
        self._played: deque[float] = deque(maxlen=self._delay_frames)
        self._ratios: deque[float] = deque(maxlen=self._window)
        self._reference = -120.0
        # Envelope histories, oldest first; ``_env_filled`` counts the blocks seen.
        self._mic_env = np.zeros(self._dt_window)
        self._ref_env = np.zeros(self._dt_window + self._dt_lags - 1)
        self._env_filled = 0
        self._lag_votes = np.zeros(self._dt_lags)
        self.correlation: float | None = None  # the last frame's envelope correlation

    @property
    def reference_db(self) -> float:
        """Level (dB) of the played audio that can still be echoing now."""
        return self._reference

    @property
    def residual_db(self) -> float:
        """Expected cleaned-mic level relative to ``reference_db`` (dB, median)."""
        if len(self._ratios) < self.min_frames:
            return self.initial_residual_db
        return float(np.median(np.fromiter(self._ratios, float)))

    @property
    def expected_db(self) -> float:
        """Expected level (dB) of residual echo in the current frame (-120 if none)."""
        if self._reference < self.active_db:
            return -120.0
        return self._reference + self.residual_db

    def update(self, clean_frame: np.ndarray, played_frame: np.ndarray) -> float:
        """Advance one tick; return the cleaned frame's level in dB."""
        self._played.append(frame_db(played_frame))
        self._reference = max(max(self._played), self._reference - self._decay_per_frame)
        level = frame_db(clean_frame)
        if self._reference >= self.active_db:
            self._ratios.append(level - self._reference)
        return level

    def explained(
        self, clean_frame: np.ndarray, played_frame: np.ndarray, mic_frame: np.ndarray | None = None
    ) -> bool:
        """Update with this tick and say whether ``clean_frame`` is (residual) echo or quiet.

        ``mic_frame``, the raw microphone frame before cancellation, enables the
        double-talk detector; a raw frame below ``floor_db`` explains any cleaned one
        (the canceller cannot have heard the user in it).
        """
        level = self.update(clean_frame, played_frame)
        self.correlation = None
        if mic_frame is not None and self.dt_corr > 0:
            self.correlation = self._envelope_correlation(mic_frame, played_frame)
        if level < self.floor_db:
            return True
        if mic_frame is not None and frame_db(mic_frame) < self.floor_db:
            # The microphone heard nothing (a headset, a file with no echo in it): what
            # the canceller's output holds is its own estimate of an echo, not the user.
            return True
        if self._reference < self.active_db:
            return False
        if self.correlation is not None and self.correlation < self.dt_corr and level > self.expected_db:
            return False  # louder than the echo usually is, and not shaped like it: double talk
        return level <= self.expected_db + self.margin_db

    def _envelope_correlation(self, mic_frame: np.ndarray, played_frame: np.ndarray) -> float | None:
        """Correlation of the raw mic's envelope with the reference's at the echo delay.

        None when it says nothing: too little history, or a reference (or a
        microphone) without any envelope to follow.
        """
        blocks = max(1, int(round(self.frame_ms / self._BLOCK_MS)))
        n = (min(len(mic_frame), len(played_frame)) // blocks) * blocks
        if n == 0:
            return None
        for env, frame in ((self._mic_env, mic_frame), (self._ref_env, played_frame)):
            x = np.asarray(frame[:n], dtype=np.float64).reshape(blocks, -1)
            env[:-blocks] = env[blocks:]
            env[-blocks:] = np.sqrt(np.einsum("ij,ij->i", x, x) / x.shape[1])
        self._env_filled += blocks
        w = self._dt_window
        if self._env_filled < len(self._ref_env):
            return None
        # Row j: the reference window that reaches the microphone j blocks later.
        windows = np.lib.stride_tricks.sliding_window_view(self._ref_env, w)[::-1]
        mic = self._mic_env - self._mic_env.mean()
        windows = windows - windows.mean(axis=1, keepdims=True)
        power = np.einsum("ij,ij->i", windows, windows)
        mic_power = float(mic @ mic)
        if mic_power <= 1e-12 or power.max() <= 1e-12:
            return None
        corr = (windows @ mic) / np.sqrt(np.maximum(power, 1e-12) * mic_power)
        corr[power <= 1e-12] = 0.0
        best = int(np.argmax(corr))
        if corr[best] > 0.8:  # a clear echo: a vote for its delay
            self._lag_votes *= 0.98
            self._lag_votes[best] += 1.0
        if self._lag_votes.sum() < 10:
            return float(corr[best])
        lag = int(np.argmax(self._lag_votes))
        return float(corr[max(0, lag - 2) : lag + 3].max())


def _similar(a: str, b: str) -> bool:
    """Same word, or close enough that the recognizer may have misheard one as the other."""
    if a == b:
        return True
    if min(len(a), len(b)) < 4:
        return False
    return difflib.SequenceMatcher(None, a, b).ratio() >= 0.75


def said_by_agent(word: str, said: list[str]) -> bool:
    """``word`` is (a mishearing of) one of the words the agent said (``said``, from ``words_of``)."""
    return any(_similar(word, s) for s in said)


def own_echo_share(text: str, recent_words: tuple[str, ...]) -> float:
    """Share of the words of ``text`` that the agent itself just said (0 when none said)."""
    said = words_of(" ".join(recent_words))
    heard = words_of(text)
    if not heard or not said:
        return 0.0
    return sum(said_by_agent(h, said) for h in heard) / len(heard)


def echo_guard_for(cfg: EchoConfig, frame_ms: float) -> EchoEstimator | None:
    """The ``[echo]`` section's guard for ticks of ``frame_ms``; None when ``guard`` is off."""
    if not cfg.guard:
        return None
    return EchoEstimator(frame_ms, margin_db=cfg.guard_margin_db, dt_corr=cfg.double_talk_corr)
