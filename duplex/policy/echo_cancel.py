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

What is left after cancellation is judged by ``duplex.policy.echo``
(``EchoEstimator``). Measurements and the choice: ``models/aec.md``;
``models/scripts/measure_aec.py``.
"""

from __future__ import annotations

import contextlib
import ctypes
import math
from typing import Any, Protocol, runtime_checkable

import numpy as np

from duplex.config import EchoConfig
from duplex.errors import AudioFormatError, ConfigError, ModelNotFound
from duplex.policy.echo import frame_db

__all__ = [
    "ENGINES",
    "EchoCanceller",
    "IdleBypass",
    "NullEchoCanceller",
    "SpeexEchoCanceller",
    "WebRtcEchoCanceller",
    "echo_canceller_for",
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
    "speex": SpeexEchoCanceller,
    "none": NullEchoCanceller,
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
    if idle_bypass_ms > 0 and key != "none":
        return IdleBypass(inner, idle_bypass_ms)
    return inner


def echo_canceller_for(cfg: EchoConfig, sample_rate: int, frame_samples: int) -> EchoCanceller:
    """The canceller the ``[echo]`` section names, for a session's rate and tick."""
    return make_echo_canceller(cfg.engine, sample_rate, frame_samples, cfg.idle_bypass_ms)
