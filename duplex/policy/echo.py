"""Acoustic echo cancellation: keep the agent's own voice out of what it hears.

The runtime calls the canceller once per tick with the microphone frame and the
agent audio the speaker emitted during that tick (both mono float32 at the
session rate, ``frame_samples`` long)::

    clean = aec.process(mic_frame, played_frame)

Backends:

- ``"webrtc"``: WebRTC AEC3 from the ``pywebrtc-audio`` wheel
  (Apache-2.0, prebuilt, no system library). It estimates the echo delay itself
  (0 to several hundred ms), models reverb tails, and its residual echo
  suppressor removes what the linear filter leaves. It works on 10 ms blocks, so
  with 32 ms ticks the output lags the input by a constant 16 ms (8 ms of
  re-blocking + AEC3's own 8 ms; 256 samples at 16 kHz for 512-sample frames: see
  ``latency_samples``).
- ``"speex"``: the Speex MDF canceller plus Speex's residual echo suppressor, from
  the ``pyaec`` wheel (which bundles libspeexdsp). A weaker canceller (see
  models/aec.md) that keeps the user's voice intact in double talk, which the
  barge-in transcript needs: the default profile's choice.
- ``"none"``: pass-through.

``EchoEstimator`` tells the turn-taker whether what is left after cancellation
is still explained by the agent's own (residual) echo.

Measurements and the choice: ``models/aec.md``; ``models/scripts/measure_aec.py``.
"""

from __future__ import annotations

import contextlib
import ctypes
import math
from collections import deque
from typing import Any, Protocol, runtime_checkable

import numpy as np

from duplex.errors import AudioFormatError, ConfigError, ModelNotFound

__all__ = [
    "ENGINES",
    "EchoCanceller",
    "EchoEstimator",
    "IdleBypass",
    "NullEchoCanceller",
    "SpeexEchoCanceller",
    "WebRtcEchoCanceller",
    "frame_db",
    "make_echo_canceller",
]


@runtime_checkable
class EchoCanceller(Protocol):
    """Removes the echo of ``played`` from ``mic``, one frame a call."""

    sample_rate: int
    frame_samples: int
    latency_samples: int

    def process(self, mic: np.ndarray, played: np.ndarray) -> np.ndarray:
        """Cleaned microphone frame (float32, ``frame_samples`` long).

        ``played`` is what the speaker emitted during the same tick (zeros while
        the agent is silent). Call once per tick, in order, without gaps.
        """
        ...

    def reset(self) -> None:
        """Forget the adapted echo path (e.g. new audio device or session)."""
        ...


def _check_frame(name: str, frame: np.ndarray, frame_samples: int) -> np.ndarray:
    arr = np.asarray(frame)
    if arr.dtype.kind != "f":
        raise AudioFormatError(
            f"echo canceller: {name} frame must be float32 PCM in [-1, 1], got dtype {arr.dtype}"
        )
    if arr.ndim != 1 or arr.shape[0] != frame_samples:
        raise AudioFormatError(
            f"echo canceller: {name} frame must be mono with {frame_samples} samples, "
            f"got shape {arr.shape}"
        )
    return arr.astype(np.float32, copy=False)


class _Base:
    def __init__(self, sample_rate: int, frame_samples: int) -> None:
        if sample_rate <= 0:
            raise ConfigError(f"echo canceller sample_rate must be > 0, got {sample_rate}")
        if frame_samples <= 0:
            raise ConfigError(f"echo canceller frame_samples must be > 0, got {frame_samples}")
        self.sample_rate = sample_rate
        self.frame_samples = frame_samples
        self.latency_samples = 0

    def _check(self, mic: np.ndarray, played: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return (
            _check_frame("mic", mic, self.frame_samples),
            _check_frame("played", played, self.frame_samples),
        )


class NullEchoCanceller(_Base):
    """Pass-through: returns the microphone frame unchanged (headsets, tests)."""

    name = "none"

    def process(self, mic: np.ndarray, played: np.ndarray) -> np.ndarray:
        mic, _ = self._check(mic, played)
        return mic.copy()

    def reset(self) -> None:
        pass


class _Rebuffer:
    """Feeds fixed ``frame_samples`` ticks to a backend that wants ``block`` samples.

    Output lags input by ``latency`` samples (constant; 0 when the tick is a
    multiple of the block), primed with silence.
    """

    def __init__(self, frame_samples: int, block: int) -> None:
        self.block = block
        self.latency = 0 if frame_samples % block == 0 else block - math.gcd(frame_samples, block)
        self.reset()

    def reset(self) -> None:
        self._mic = np.zeros(0, np.float32)
        self._far = np.zeros(0, np.float32)
        self._out = np.zeros(self.latency, np.float32)

    def push(self, mic: np.ndarray, far: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Append a tick; return the whole blocks now ready (possibly empty)."""
        self._mic = np.concatenate([self._mic, mic])
        self._far = np.concatenate([self._far, far])
        n = (len(self._mic) // self.block) * self.block
        ready = self._mic[:n], self._far[:n]
        self._mic, self._far = self._mic[n:], self._far[n:]
        return ready

    def pop(self, processed: np.ndarray, count: int) -> np.ndarray:
        self._out = np.concatenate([self._out, processed.astype(np.float32, copy=False)])
        out, self._out = self._out[:count], self._out[count:]
        return out


class WebRtcEchoCanceller(_Base):
    """WebRTC AEC3 (``pywebrtc-audio``): delay estimation, linear filter, residual suppression.

    Args:
        sample_rate: 16000, 32000 or 48000 (AEC3's native rates).
        frame_samples: Tick length in samples.
        stream_delay_ms: Optional hint of the speaker-to-mic delay; 0 lets AEC3's
            delay estimator find it (it does, within ~0.5 s of speech).
        noise_suppression: Also run WebRTC's noise suppressor (off by default:
            ASR prefers the raw voice).
    """

    name = "webrtc"
    _BLOCK_MS = 10
    _AEC3_DELAY_MS = 8

    def __init__(
        self,
        sample_rate: int = 16000,
        frame_samples: int = 512,
        *,
        stream_delay_ms: int = 0,
        noise_suppression: bool = False,
    ) -> None:
        super().__init__(sample_rate, frame_samples)
        if sample_rate not in (16000, 32000, 48000):
            raise ConfigError(
                f"webrtc echo canceller runs at 16000, 32000 or 48000 Hz, not {sample_rate}"
            )
        try:
            import pywebrtc_audio
        except ImportError as exc:
            raise ModelNotFound(
                "the webrtc echo canceller needs the pywebrtc-audio package: "
                "pip install 'pywebrtc-audio>=0.2' (or set aec engine to 'speex' or 'none')"
            ) from exc
        if noise_suppression:
            self._apm: Any = pywebrtc_audio.AudioProcessor(
                sample_rate=sample_rate,
                echo_cancellation=True,
                noise_suppression=True,
                stream_delay_ms=int(stream_delay_ms),
            )
        else:
            self._apm = pywebrtc_audio.EchoCanceller(
                sample_rate=sample_rate, num_channels=1, stream_delay_ms=int(stream_delay_ms)
            )
        self._buf = _Rebuffer(frame_samples, sample_rate * self._BLOCK_MS // 1000)
        # AEC3 itself delays the capture signal by 8 ms (measured at 16 kHz: 128 samples).
        self.latency_samples = self._buf.latency + sample_rate * self._AEC3_DELAY_MS // 1000

    def process(self, mic: np.ndarray, played: np.ndarray) -> np.ndarray:
        mic, played = self._check(mic, played)
        near, far = self._buf.push(mic, played)
        done = self._apm.process(near, far) if len(near) else near
        return self._buf.pop(np.asarray(done), self.frame_samples)

    def reset(self) -> None:
        self._apm.reset()
        self._buf.reset()


class SpeexEchoCanceller(_Base):
    """Speex MDF echo canceller + Speex residual echo suppressor (``pyaec`` wheel).

    Args:
        sample_rate: Any rate Speex accepts (8000-48000).
        frame_samples: Tick length in samples.
        block_samples: Speex's internal frame (about 10-20 ms; must divide the tick
            or a constant lag is added as for webrtc).
        tail_ms: Echo tail the adaptive filter covers: delay + reverb. Longer
            tails converge more slowly.
        preprocess: Run Speex's residual echo suppressor and denoiser after the
            linear filter (strongly recommended).
    """

    name = "speex"

    def __init__(
        self,
        sample_rate: int = 16000,
        frame_samples: int = 512,
        *,
        block_samples: int = 256,
        tail_ms: int = 400,
        preprocess: bool = True,
    ) -> None:
        super().__init__(sample_rate, frame_samples)
        try:
            import pyaec
        except ImportError as exc:
            raise ModelNotFound(
                "the speex echo canceller needs the pyaec package (bundles libspeexdsp): "
                "pip install 'pyaec>=1.0' (or set aec engine to 'webrtc' or 'none')"
            ) from exc
        if pyaec.lib is None:
            raise ModelNotFound(
                "pyaec is installed but its libaec shared library did not load; reinstall pyaec"
            )
        self._lib = pyaec.lib
        self._args = (
            block_samples,
            max(block_samples, sample_rate * tail_ms // 1000),
            sample_rate,
            preprocess,
        )
        self._handle: Any = None
        self._buf = _Rebuffer(frame_samples, block_samples)
        # Speex's preprocessor (residual echo suppressor) delays its output by one block.
        self.latency_samples = self._buf.latency + (block_samples if preprocess else 0)
        self.reset()

    def _close(self) -> None:
        if self._handle:
            self._lib.AecDestroy(self._handle)
            self._handle = None

    def reset(self) -> None:
        self._close()
        self._handle = self._lib.AecNew(*self._args)
        if not self._handle:
            raise ModelNotFound(f"speex AecNew{self._args} failed")
        self._buf.reset()

    def process(self, mic: np.ndarray, played: np.ndarray) -> np.ndarray:
        mic, played = self._check(mic, played)
        near, far = self._buf.push(mic, played)
        block = self._buf.block
        out = np.empty(len(near), np.int16)
        n16 = _to_int16(near)
        f16 = _to_int16(far)
        p = ctypes.POINTER(ctypes.c_int16)
        for i in range(0, len(near), block):
            self._lib.AecCancelEcho(
                self._handle,
                n16[i : i + block].ctypes.data_as(p),
                f16[i : i + block].ctypes.data_as(p),
                out[i : i + block].ctypes.data_as(p),
                block,
            )
        return self._buf.pop(out.astype(np.float32) / 32768.0, self.frame_samples)

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self._close()


def _to_int16(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.clip(np.round(x * 32768.0), -32768, 32767).astype(np.int16))


ENGINES = {
    "webrtc": WebRtcEchoCanceller,
    "aec3": WebRtcEchoCanceller,
    "speex": SpeexEchoCanceller,
    "none": NullEchoCanceller,
    "off": NullEchoCanceller,
    "null": NullEchoCanceller,
}


class IdleBypass:
    """Hands the microphone through untouched while the agent has been silent for
    ``hold_ms``: there is no echo to cancel then, and the canceller's own delay (a
    16 ms block for speex and webrtc) would make every end of the user's speech, and
    so every answer, that much later. The inner canceller still sees every frame, so
    it stays adapted; from the first frame the agent plays, its output is used again.

    At each switch the cleaned signal moves by the canceller's delay (16 ms of input
    heard twice when the agent starts, skipped when the bypass begins). The bypass
    begins only on a quiet microphone frame (below ``quiet_db``), so the skip falls
    between the user's words; a noisy room keeps the canceller.
    """

    def __init__(self, inner: EchoCanceller, hold_ms: float, quiet_db: float = -45.0) -> None:
        self.inner = inner
        self.sample_rate = inner.sample_rate
        self.frame_samples = inner.frame_samples
        self.quiet_db = quiet_db
        self._hold = int(hold_ms * inner.sample_rate / 1000)
        self._quiet = self._hold  # samples since the agent last played
        self.bypassing = True  # the microphone passes untouched
        self.latency_samples = 0  # of the frame last returned

    def process(self, mic: np.ndarray, played: np.ndarray) -> np.ndarray:
        out = self.inner.process(mic, played)
        self._quiet = 0 if np.any(played) else self._quiet + len(played)
        if self._quiet < self._hold:
            self.bypassing = False
        elif not self.bypassing and frame_db(mic) < self.quiet_db:
            self.bypassing = True
        if self.bypassing:
            self.latency_samples = 0
            return np.asarray(mic, np.float32).copy()
        self.latency_samples = self.inner.latency_samples
        return out

    def reset(self) -> None:
        self.inner.reset()
        self._quiet = self._hold
        self.bypassing = True
        self.latency_samples = 0


def make_echo_canceller(
    engine: str = "webrtc",
    sample_rate: int = 16000,
    frame_samples: int = 512,
    idle_bypass_ms: float = 0.0,
    **opts: Any,
) -> EchoCanceller:
    """Build the echo canceller named ``engine`` ("webrtc", "speex" or "none").

    ``idle_bypass_ms`` > 0 wraps it in ``IdleBypass``: untouched input once the agent
    has been silent that long. ``opts`` go to the backend's constructor (e.g.
    ``stream_delay_ms`` for webrtc, ``tail_ms`` for speex).

    Raises:
        ConfigError: unknown engine or option.
        ModelNotFound: the engine's package is not installed (the message says
            what to install).
    """
    key = (engine or "none").strip().lower()
    if key not in ENGINES:
        raise ConfigError(f"unknown echo canceller {engine!r}; choose one of webrtc, speex, none")
    cls = ENGINES[key]
    try:
        inner: EchoCanceller = cls(sample_rate, frame_samples, **opts)
    except TypeError as exc:
        raise ConfigError(f"bad option for echo canceller {key!r}: {exc}") from exc
    if idle_bypass_ms > 0 and key not in ("none", "off", "null"):
        return IdleBypass(inner, idle_bypass_ms)
    return inner


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
        frame_ms: Tick length in ms.
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
        frame_ms: float = 32.0,
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
        double-talk detector.
        """
        level = self.update(clean_frame, played_frame)
        self.correlation = None
        if mic_frame is not None and self.dt_corr > 0:
            self.correlation = self._envelope_correlation(mic_frame, played_frame)
        if level < self.floor_db:
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
