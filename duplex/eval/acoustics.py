"""The simulated room of a closed-loop run: what reaches the agent's microphone.

The microphone hears the scenario's static base track, user audio inserted at
times that depend on the agent (scheduled by the runner), and the agent's own
voice coming back from the loudspeaker through an echo path (delay, gain,
optional room impulse). Everything is causal: the agent's output frame of tick
``i`` is played during tick ``i + 1`` and can only reach input frames after it.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from duplex.audio.resample import resample
from duplex.audio.wav import read_wav
from duplex.eval.scenarios import EchoPath, Reverb


def db_to_gain(db: float) -> float:
    return float(10.0 ** (db / 20.0))


def synthetic_impulse(reverb: Reverb, rate: int = 16000) -> np.ndarray:
    """A room impulse response: a direct path, then exponentially decaying noise.

    ``rt60_ms`` is the time for the tail to fall by 60 dB. The impulse is
    normalised to unit energy so the echo path's gain alone sets the level.
    """
    n = max(1, int(rate * reverb.rt60_ms / 1000.0))
    rng = np.random.default_rng(reverb.seed)
    t = np.arange(n) / rate
    decay = np.exp(-6.9078 * t / max(reverb.rt60_ms / 1000.0, 1e-3))  # ln(1000) → -60 dB at rt60
    h = rng.standard_normal(n) * decay * 0.3
    h[0] = 1.0
    return (h / np.sqrt(np.sum(h**2))).astype(np.float32)


class FrameResampler:
    """A streaming polyphase (windowed-sinc FIR) resampler with a fixed, tiny latency.

    Unlike a general stream resampler it returns exactly ``len(x) * up / down``
    samples a call (when that is whole), so the echo lands where the path says.
    """

    def __init__(self, from_rate: int, to_rate: int, taps_per_phase: int = 16) -> None:
        g = math.gcd(from_rate, to_rate)
        self.up, self.down = to_rate // g, from_rate // g
        n = taps_per_phase * max(self.up, self.down) | 1
        cutoff = 1.0 / max(self.up, self.down)
        t = np.arange(n) - (n - 1) / 2
        self.h = (np.sinc(cutoff * t) * np.hamming(n) * cutoff * self.up).astype(np.float64)
        self._hist = np.zeros(n - 1, np.float64)
        self._phase = 0  # index in the up-sampled stream of the next output sample, relative

    def process(self, x: np.ndarray) -> np.ndarray:
        if self.up == self.down:
            return x.astype(np.float32)
        xu = np.zeros(len(x) * self.up, np.float64)
        xu[:: self.up] = x
        buf = np.concatenate([self._hist, xu])
        y = np.convolve(buf, self.h, mode="valid")  # one output per up-sampled input sample
        self._hist = buf[len(buf) - (len(self.h) - 1) :]
        idx = np.arange(self._phase, len(y), self.down)
        self._phase = int(idx[-1] + self.down - len(y)) if len(idx) else self._phase - len(y)
        return y[idx].astype(np.float32)


class EchoSimulator:
    """Turns the agent's output frames into the echo that reaches the microphone.

    Overlap-add convolution with the room impulse, one FFT per output frame, so
    the cost per tick stays small however long the impulse.
    """

    def __init__(
        self,
        path: EchoPath,
        frame_samples: int,
        out_rate: int,
        in_rate: int = 16000,
        folder: Path | None = None,
    ) -> None:
        self.frame_samples = frame_samples
        self.gain = db_to_gain(path.gain_db)
        self._resampler = FrameResampler(out_rate, in_rate)
        if path.impulse:
            h, rate = read_wav((folder or Path(".")) / path.impulse, expect_rate=None)
            self.impulse = resample(h, rate, in_rate)
        elif path.reverb is not None:
            self.impulse = synthetic_impulse(path.reverb, in_rate)
        else:
            self.impulse = np.ones(1, np.float32)
        # one frame of playout, then the acoustic delay
        self._write = frame_samples + int(round(path.delay_ms * in_rate / 1000.0))
        self._buf = np.zeros(0, np.float32)  # echo samples, indexed by stream sample
        self._read = 0
        self._fft_n = 1 << int(np.ceil(np.log2(len(self.impulse) + 2 * frame_samples)))
        self._h_fft = np.fft.rfft(self.impulse, self._fft_n) if len(self.impulse) > 1 else None

    def play(self, agent_frame: np.ndarray) -> None:
        """The agent produced ``agent_frame`` (output rate); schedule its echo."""
        x = self._resampler.process(agent_frame) * self.gain
        if len(x) == 0:
            return
        if self._h_fft is None:
            y = x * float(self.impulse[0])
        else:
            y = np.fft.irfft(np.fft.rfft(x, self._fft_n) * self._h_fft, self._fft_n)[
                : len(x) + len(self.impulse) - 1
            ]
        start = self._write - self._read  # position in the buffer
        need = start + len(y)
        if need > len(self._buf):
            self._buf = np.concatenate([self._buf, np.zeros(need - len(self._buf), np.float32)])
        self._buf[start : start + len(y)] += y.astype(np.float32)
        self._write += len(x)

    def take(self, n: int) -> np.ndarray:
        """The echo for the next ``n`` input samples."""
        out = np.zeros(n, np.float32)
        m = min(n, len(self._buf))
        out[:m] = self._buf[:m]
        self._buf = self._buf[m:]
        self._read += n
        return out


class Microphone:
    """The mixed microphone signal: base track + scheduled inserts + echo."""

    def __init__(
        self, base: np.ndarray, frame_samples: int, echo: EchoSimulator | None = None
    ) -> None:
        self.base = base.astype(np.float32, copy=False)
        self.frame_samples = frame_samples
        self.echo = echo
        self._inserts: list[tuple[int, np.ndarray]] = []  # (start sample, samples)
        self.position = 0  # next sample to be consumed

    def schedule(self, start_sample: int, samples: np.ndarray) -> int:
        """Play ``samples`` from ``start_sample`` (or the next unconsumed sample if that
        is already past). Returns the sample it will really start at."""
        start = max(int(start_sample), self.position)
        self._inserts.append((start, samples.astype(np.float32, copy=False)))
        return start

    def pending(self) -> bool:
        """True while some scheduled insert has not been fully consumed."""
        return any(s + len(x) > self.position for s, x in self._inserts)

    def base_remaining(self) -> bool:
        return self.position < len(self.base)

    def has_more(self) -> bool:
        """True while user audio is still to come: the base track or an insert
        (``duplex.runtime.offline.FrameSource``)."""
        return self.base_remaining() or self.pending()

    def next_frame(self) -> np.ndarray:
        """The next input frame the agent hears."""
        n = self.frame_samples
        a, b = self.position, self.position + n
        frame = np.zeros(n, np.float32)
        if a < len(self.base):
            chunk = self.base[a:b]
            frame[: len(chunk)] += chunk
        for s, x in self._inserts:
            lo, hi = max(a, s), min(b, s + len(x))
            if lo < hi:
                frame[lo - a : hi - a] += x[lo - s : hi - s]
        if self.echo is not None:
            frame += self.echo.take(n)
        self.position = b
        return np.clip(frame, -1.0, 1.0)

    def play(self, agent_frame: np.ndarray) -> None:
        if self.echo is not None:
            self.echo.play(agent_frame)
