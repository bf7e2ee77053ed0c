"""Echo cancellation on real (espeak-ng) speech through a simulated laptop echo path.

The agent's speech is played, delayed, attenuated and reverberated (synthetic
room impulse response) into the microphone with a little noise; the user talks
over it in the double-talk tests. See models/aec.md for the full measurement.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest

from duplex.errors import AudioFormatError, ConfigError, ModelNotFound
from duplex.policy.echo import (
    EchoCanceller,
    EchoEstimator,
    NullEchoCanceller,
    make_echo_canceller,
)

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


def _room(delay_ms: float, gain_db: float, rt60_s: float = 0.3, drr_db: float = 3.0) -> np.ndarray:
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


@pytest.fixture(scope="module")
def speech() -> dict[str, np.ndarray]:
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


def _mic(
    far: np.ndarray, near: np.ndarray, delay_ms: float, gain_db: float
) -> tuple[np.ndarray, np.ndarray]:
    echo = _fftconvolve(far, _room(delay_ms, gain_db))[: len(far)].astype(np.float32)
    noise = (10 ** (-70 / 20) * np.random.default_rng(5).standard_normal(len(far))).astype(
        np.float32
    )
    return echo, echo + near + noise


def _run(aec: EchoCanceller, mic: np.ndarray, far: np.ndarray) -> np.ndarray:
    """Feed 32 ms ticks; return the output re-aligned with the input (latency removed)."""
    out = np.concatenate(
        [
            aec.process(m, p)
            for m, p in zip(mic.reshape(-1, FRAME), far.reshape(-1, FRAME), strict=True)
        ]
    )
    lat = aec.latency_samples
    return np.concatenate([out[lat:], np.zeros(lat, np.float32)])


def _vad(x: np.ndarray) -> np.ndarray:
    from duplex.models.vad_silero import SileroVad

    vad = SileroVad()
    return np.array([vad.probability(f) for f in x.reshape(-1, FRAME)])


def _db(x: np.ndarray) -> float:
    return float(10 * np.log10(max(float(np.sum(np.asarray(x, np.float64) ** 2)), 1e-20)))


def _linear_snr(s: np.ndarray, y: np.ndarray, taps: int = 48, pre: int = 8) -> float:
    """SNR of y as a linearly filtered copy of s (fixed filtering such as AEC3's high-pass is not distortion)."""
    n = len(s)
    padded = np.pad(s.astype(np.float64), (taps, taps))
    a = np.stack([np.roll(padded, k - pre)[taps : taps + n] for k in range(taps)], axis=1)
    h, *_ = np.linalg.lstsq(a, y.astype(np.float64), rcond=None)
    fit = a @ h
    return _db(fit) - _db(y - fit)


def _erle(echo: np.ndarray, clean: np.ndarray, start_s: float, end_s: float) -> float:
    span = slice(int(start_s * SR) // FRAME * FRAME, int(end_s * SR) // FRAME * FRAME)
    e = echo[span].reshape(-1, FRAME)
    c = clean[span].reshape(-1, FRAME)
    active = 10 * np.log10(np.mean(e.astype(np.float64) ** 2, axis=1) + 1e-20) > -60
    return _db(e[active]) - _db(c[active])


@pytest.fixture(scope="module")
def echo_run(speech):
    """Agent talking alone, then the user talks over it: d80 ms, -12 dB, RT60 0.3 s."""
    far, near = speech["far"], speech["near"]
    echo, mic = _mic(far, near, 80, -12)
    clean = _run(make_echo_canceller("webrtc", SR, FRAME), mic, far)
    return {"far": far, "near": near, "echo": echo, "mic": mic, "clean": clean}


def test_erle_after_convergence(echo_run):
    erle = _erle(echo_run["echo"], echo_run["clean"], 2.0, ECHO_ONLY_S)
    assert erle > 20.0, f"ERLE {erle:.1f} dB after convergence"
    # and it converges within the first two seconds of agent speech
    assert _erle(echo_run["echo"], echo_run["clean"], 1.0, 2.0) > 10.0


@pytest.mark.parametrize(("delay_ms", "gain_db"), [(30, -6), (150, -20), (200, -6)])
def test_erle_other_paths(speech, delay_ms, gain_db):
    far = speech["far"][:S0]
    echo, mic = _mic(far, np.zeros_like(far), delay_ms, gain_db)
    clean = _run(make_echo_canceller("webrtc", SR, FRAME), mic, far)
    assert _erle(echo, clean, 2.5, ECHO_ONLY_S) > 15.0


def test_vad_does_not_fire_on_cancelled_echo(echo_run):
    n = S0
    raw = _vad(echo_run["mic"][:n]) >= 0.5
    clean = _vad(echo_run["clean"][:n]) >= 0.5
    assert raw.mean() > 0.6, f"raw echo should look like speech ({raw.mean():.0%})"
    # from a cold start, convergence included
    assert clean.mean() < 0.05, f"VAD fires on {clean.mean():.1%} of cleaned echo-only frames"


def test_near_end_survives_double_talk(echo_run):
    s0 = S0
    user = _vad(echo_run["near"])[s0 // FRAME :] >= 0.5
    heard = _vad(echo_run["clean"])[s0 // FRAME :] >= 0.5
    assert user.sum() > 20
    recall = heard[user].mean()
    assert recall > 0.75, f"VAD heard the user in only {recall:.0%} of double-talk frames"
    # AEC3's residual-echo suppressor bites into the user while the agent keeps
    # talking (see models/aec.md); the user stays well above what is left of the echo.
    snr = _linear_snr(echo_run["near"][s0:], echo_run["clean"][s0:])
    assert snr > 2.0, f"double-talk near-end SNR {snr:.1f} dB"


def test_near_end_alone_is_kept_when_agent_is_silent(speech):
    near = speech["near"]
    aec = make_echo_canceller("webrtc", SR, FRAME)
    clean = _run(aec, near, np.zeros_like(near))
    s0 = S0
    assert _linear_snr(near[s0:], clean[s0:]) > 25.0
    assert (_vad(clean[s0:]) >= 0.5).sum() >= 0.9 * (_vad(near[s0:]) >= 0.5).sum()


def test_latency_is_what_it_says():
    rng = np.random.default_rng(0)
    x = (0.1 * rng.standard_normal(FRAME * 120)).astype(np.float32)
    for frame in (512, 480):
        aec = make_echo_canceller("webrtc", SR, frame)
        xs = x[: (len(x) // frame) * frame]
        out = np.concatenate(
            [aec.process(f, np.zeros(frame, np.float32)) for f in xs.reshape(-1, frame)]
        )
        seg = slice(SR, 2 * SR)
        lags = [float(np.dot(out[seg.start + k : seg.stop + k], xs[seg])) for k in range(600)]
        assert int(np.argmax(lags)) == aec.latency_samples
    assert make_echo_canceller("webrtc", SR, 512).latency_samples == 256
    assert make_echo_canceller("webrtc", SR, 480).latency_samples == 128


def test_null_canceller_passes_through():
    aec = make_echo_canceller("none", SR, FRAME)
    assert isinstance(aec, NullEchoCanceller)
    assert isinstance(aec, EchoCanceller)
    mic = np.linspace(-0.5, 0.5, FRAME, dtype=np.float32)
    out = aec.process(mic, np.ones(FRAME, np.float32))
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, mic)
    aec.reset()


@pytest.mark.parametrize("engine", ["webrtc", "none"])
def test_frame_errors(engine):
    aec = make_echo_canceller(engine, SR, FRAME)
    ok = np.zeros(FRAME, np.float32)
    with pytest.raises(AudioFormatError, match="512"):
        aec.process(np.zeros(FRAME - 1, np.float32), ok)
    with pytest.raises(AudioFormatError, match="512"):
        aec.process(ok, np.zeros(FRAME + 1, np.float32))
    with pytest.raises(AudioFormatError, match="dtype"):
        aec.process(np.zeros(FRAME, np.int16), ok)
    with pytest.raises(AudioFormatError):
        aec.process(np.zeros((FRAME, 2), np.float32), ok)
    out = aec.process(ok.astype(np.float64), ok)  # other float widths are accepted
    assert out.dtype == np.float32 and out.shape == (FRAME,)


def test_factory_errors(monkeypatch):
    with pytest.raises(ConfigError, match="unknown echo canceller"):
        make_echo_canceller("rnnoise", SR, FRAME)
    with pytest.raises(ConfigError, match="option"):
        make_echo_canceller("webrtc", SR, FRAME, tail_ms=100)
    with pytest.raises(ConfigError):
        make_echo_canceller("webrtc", 22050, FRAME)
    monkeypatch.setitem(sys.modules, "pywebrtc_audio", None)
    with pytest.raises(ModelNotFound, match="pip install"):
        make_echo_canceller("webrtc", SR, FRAME)
    monkeypatch.setitem(sys.modules, "pyaec", None)
    with pytest.raises(ModelNotFound, match="pip install"):
        make_echo_canceller("speex", SR, FRAME)


def test_reset_forgets_the_echo_path(echo_run):
    aec = make_echo_canceller("webrtc", SR, FRAME)
    n = int(4 * SR)
    _run(aec, echo_run["mic"][:n], echo_run["far"][:n])
    aec.reset()
    out = aec.process(np.zeros(FRAME, np.float32), np.zeros(FRAME, np.float32))
    assert np.all(out == 0)


def test_estimator_explains_residual_echo_not_the_user(echo_run):
    est = EchoEstimator()
    far, clean = echo_run["far"], echo_run["clean"]
    verdicts = np.array(
        [
            est.explained(c, p)
            for c, p in zip(clean.reshape(-1, FRAME), far.reshape(-1, FRAME), strict=True)
        ]
    )
    k = S0 // FRAME
    assert verdicts[int(1.0 * SR) // FRAME : k].mean() > 0.95  # echo-only: explained
    user = _vad(echo_run["near"])[k:] >= 0.5
    assert (~verdicts[k:][user]).mean() > 0.7  # the user over the agent: not explained
    assert est.residual_db < -15.0  # learned: AEC3 leaves far less than the played level


def test_estimator_without_agent_audio():
    est = EchoEstimator()
    silent = np.zeros(FRAME, np.float32)
    loud = (0.1 * np.sin(np.arange(FRAME) / 5)).astype(np.float32)
    assert est.explained(silent, silent)  # quiet: nothing to explain
    assert not est.explained(loud, silent)  # agent silent: anything loud is not echo
    # before learning, a frame at the played level is assumed to be echo...
    for _ in range(3):
        assert est.explained(0.5 * loud, loud)
    # ... and after the agent stops, the decaying tail still covers it briefly
    est.reset()
    est.explained(0.5 * loud, loud)
    verdicts = [est.explained(0.3 * loud, silent) for _ in range(40)]
    assert verdicts[0] and not verdicts[-1]


def test_speex_backend_cancels_echo(speech):
    far = speech["far"][:S0]
    echo, mic = _mic(far, np.zeros_like(far), 80, -12)
    aec = make_echo_canceller("speex", SR, FRAME)
    clean = _run(aec, mic, far)
    assert _erle(echo, clean, 4.0, ECHO_ONLY_S) > 12.0


def test_double_talk_is_heard_at_the_echo_level_before_cancellation_converges(speech):
    """The user talks as loud as the echo, and nothing is cancelled yet (the first
    seconds of a session): level cannot tell them apart, the envelope can."""
    far, near = speech["far"], speech["near"]
    echo, _ = _mic(far, np.zeros_like(far), 60, -7)
    active = np.abs(echo) > 1e-3
    near = near * np.sqrt(np.mean(echo[active] ** 2) / np.mean(near[np.abs(near) > 1e-3] ** 2))
    mic = (echo + near).astype(np.float32)
    frames = list(zip(mic.reshape(-1, FRAME), far.reshape(-1, FRAME), strict=True))
    by_level, by_envelope = EchoEstimator(dt_corr=0), EchoEstimator()
    level = np.array([by_level.explained(m, p) for m, p in frames])
    envelope = np.array([by_envelope.explained(m, p, m) for m, p in frames])
    k = S0 // FRAME
    user = _vad(near)[k:] >= 0.5
    echo_only = slice(int(1.0 * SR) // FRAME, k)
    assert envelope[echo_only].mean() > 0.95  # the agent's echo alone stays explained
    assert (~envelope[k:][user]).mean() > (~level[k:][user]).mean() + 0.2


def test_the_microphone_passes_untouched_while_the_agent_is_silent() -> None:
    """Speex delays what it cleans by a 16 ms block: while there is no echo to cancel
    (the agent silent past ``hold_ms``) the user's speech must not wait for it."""
    rng = np.random.default_rng(0)
    aec = make_echo_canceller("speex", SR, FRAME, idle_bypass_ms=600)
    silent = np.zeros(FRAME, np.float32)
    voice = [(0.1 * rng.standard_normal(FRAME)).astype(np.float32) for _ in range(60)]
    for f in voice[:10]:  # no agent yet: untouched, to the sample
        np.testing.assert_array_equal(aec.process(f, silent), f)
    assert aec.latency_samples == 0
    played = (0.3 * rng.standard_normal(FRAME)).astype(np.float32)
    out = aec.process(voice[10], played)  # the agent speaks: cancelled (and delayed)
    assert not np.array_equal(out, voice[10]) and aec.latency_samples == 256
    held = [aec.process(f, silent) for f in voice[11:29]]  # 18 frames = 576 ms < 600 ms
    assert not any(np.array_equal(h, f) for h, f in zip(held, voice[11:29], strict=True))
    # The tail is past, but the user is talking: the switch waits for a quiet frame.
    assert not np.array_equal(aec.process(voice[29], silent), voice[29])
    quiet = (0.001 * rng.standard_normal(FRAME)).astype(np.float32)  # -60 dBFS
    np.testing.assert_array_equal(aec.process(quiet, silent), quiet)
    np.testing.assert_array_equal(aec.process(voice[30], silent), voice[30])
    assert make_echo_canceller("none", SR, FRAME, idle_bypass_ms=600).__class__ is NullEchoCanceller
