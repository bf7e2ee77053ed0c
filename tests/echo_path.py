"""A simulated laptop echo path on real (espeak-ng) speech, for the echo tests.

The agent's speech is played, delayed, attenuated and reverberated (synthetic
room impulse response) into the microphone with a little noise; the user talks
over it after ``ECHO_ONLY_S``. See models/aec.md for the full measurement.
"""

from __future__ import annotations

import numpy as np

from duplex.policy.echo import EchoEstimator
from duplex.policy.echo_cancel import EchoCanceller, make_echo_canceller

SR = 16000
FRAME = 512
AGENT = [
    "Sure, I can help you with that.",
    "I think the meeting was moved to Thursday afternoon.",
    "It should be sunny with a high of about seventy degrees.",
    "Okay, I have added milk and eggs to your shopping list.",
    "Right, so the train leaves at half past six from platform four.",
]
USER = ["What is the capital of France?", "How many legs does a spider have?"]
ECHO_ONLY_S = 9.0  # the user starts talking after this
S0 = int(ECHO_ONLY_S * SR) // FRAME * FRAME  # ...at this sample (a frame boundary)


def _fftconvolve(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    n = len(a) + len(b) - 1
    size = 1 << (n - 1).bit_length()
    return np.fft.irfft(np.fft.rfft(a, size) * np.fft.rfft(b, size), size)[:n]


def room(delay_ms: float, gain_db: float, rt60_s: float = 0.3, drr_db: float = 3.0) -> np.ndarray:
    """A room impulse response: a direct path at ``delay_ms`` and an exponential reverb tail."""
    rng = np.random.default_rng(3)
    n = int(rt60_s * SR)
    tail = rng.standard_normal(n) * np.exp(-6.91 * np.arange(n) / SR / rt60_s)
    tail[:32] = 0.0
    tail *= np.sqrt(10 ** (-drr_db / 10) / np.sum(tail**2))
    d = int(delay_ms * SR / 1000)
    h = np.zeros(d + n)
    h[d] = 1.0
    h[d:] += tail
    return h * 10 ** (gain_db / 20) / np.sqrt(np.sum(h**2))


def make_speech() -> dict[str, np.ndarray]:
    """The agent's answers (``far``) and the user's questions from ``S0`` (``near``)."""
    # The espeak-ng command line: the same audio every run. The in-process library's
    # audio depends on what the process synthesized before, which made these tests
    # depend on the order of the whole suite.
    from duplex.eval.generate import speak as speak_cli

    def speak(text: str, voice: str, rate: int) -> np.ndarray:
        assert rate == 16000
        return speak_cli(text, voice, 165, level_db=-6.0)

    parts = []
    for i, text in enumerate(AGENT):
        parts += [
            speak(text, ["en-us+m3", "en+f4"][i % 2], SR),
            np.zeros(int(0.3 * SR), np.float32),
        ]
    far = np.concatenate(parts)
    n = (len(far) // FRAME) * FRAME
    far = far[:n]
    near = np.zeros(n, np.float32)
    t = S0
    for text, voice in zip(USER, ["en-us+f3", "en-us+f2"], strict=True):
        s = speak(text, voice, SR)[: n - t]
        near[t : t + len(s)] = s
        t += len(s) + int(0.3 * SR)
        if t >= n:
            break
    return {"far": far, "near": near}


def mic(
    far: np.ndarray, near: np.ndarray, delay_ms: float, gain_db: float
) -> tuple[np.ndarray, np.ndarray]:
    """The echo of ``far`` through a room (``delay_ms``, ``gain_db``), and the microphone:
    echo + ``near`` + noise at -70 dBFS."""
    echo = _fftconvolve(far, room(delay_ms, gain_db))[: len(far)].astype(np.float32)
    noise = (10 ** (-70 / 20) * np.random.default_rng(5).standard_normal(len(far))).astype(
        np.float32
    )
    return echo, echo + near + noise


def run(aec: EchoCanceller, mic: np.ndarray, far: np.ndarray) -> np.ndarray:
    """Feed 32 ms ticks; return the output re-aligned with the input (latency removed)."""
    out = np.concatenate(
        [
            aec.process(m, p)
            for m, p in zip(mic.reshape(-1, FRAME), far.reshape(-1, FRAME), strict=True)
        ]
    )
    lat = aec.latency_samples
    return np.concatenate([out[lat:], np.zeros(lat, np.float32)])


def vad(x: np.ndarray) -> np.ndarray:
    """Silero's speech probability for each frame of ``x``."""
    from duplex.models.vad_silero import SileroVad

    vad = SileroVad()
    return np.array([vad.probability(f) for f in x.reshape(-1, FRAME)])


def db(x: np.ndarray) -> float:
    return float(10 * np.log10(max(float(np.sum(np.asarray(x, np.float64) ** 2)), 1e-20)))


def linear_snr(s: np.ndarray, y: np.ndarray, taps: int = 48, pre: int = 8) -> float:
    """SNR of y as a linearly filtered copy of s (fixed filtering such as AEC3's high-pass is not distortion)."""
    n = len(s)
    padded = np.pad(s.astype(np.float64), (taps, taps))
    a = np.stack([np.roll(padded, k - pre)[taps : taps + n] for k in range(taps)], axis=1)
    h, *_ = np.linalg.lstsq(a, y.astype(np.float64), rcond=None)
    fit = a @ h
    return db(fit) - db(y - fit)


def erle(echo: np.ndarray, clean: np.ndarray, start_s: float, end_s: float) -> float:
    """Echo return loss enhancement (dB) over the frames where the echo is audible."""
    span = slice(int(start_s * SR) // FRAME * FRAME, int(end_s * SR) // FRAME * FRAME)
    e = echo[span].reshape(-1, FRAME)
    c = clean[span].reshape(-1, FRAME)
    active = 10 * np.log10(np.mean(e.astype(np.float64) ** 2, axis=1) + 1e-20) > -60
    return db(e[active]) - db(c[active])


def echo_run(speech: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Agent talking alone, then the user talks over it: d80 ms, -12 dB, RT60 0.3 s (webrtc)."""
    far, near = speech["far"], speech["near"]
    echo, mixed = mic(far, near, 80, -12)
    clean = run(make_echo_canceller("webrtc", SR, FRAME), mixed, far)
    return {"far": far, "near": near, "echo": echo, "mic": mixed, "clean": clean}


def echo_tail_ms(guard: EchoEstimator, frame_samples: int, rate: int = SR) -> float:
    """How long (stream ms) after the agent stops ``guard`` still counts on its echo
    (the played level that can still be echoing is above ``active_db``).

    The agent plays noise at -10 dBFS for a second, then nothing; the microphone hears
    nothing throughout. ``frame_samples`` is the tick the guard is fed.
    """
    rng = np.random.default_rng(0)
    frame_ms = 1000.0 * frame_samples / rate
    quiet = np.zeros(frame_samples, np.float32)
    played_frames = int(round(1000.0 / frame_ms))
    for _ in range(played_frames):
        loud = (10 ** (-10 / 20) * rng.standard_normal(frame_samples)).astype(np.float32)
        guard.explained(quiet, loud)
    for k in range(1, 200):
        guard.explained(quiet, quiet)
        if guard.reference_db < guard.active_db:
            return k * frame_ms
    raise AssertionError("the guard expects echo forever")
