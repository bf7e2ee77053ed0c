"""Echo cancellation on real (espeak-ng) speech through a simulated laptop echo path.

The agent's speech is played, delayed, attenuated and reverberated (synthetic
room impulse response) into the microphone with a little noise; the user talks
over it in the double-talk tests (``tests/echo_path.py``). See models/aec.md for
the full measurement.
"""

from __future__ import annotations

import sys

import echo_path as ep
import numpy as np
import pytest
from echo_path import ECHO_ONLY_S, FRAME, S0, SR

from duplex.errors import AudioFormatError, ConfigError, ModelNotFound
from duplex.policy.echo_cancel import EchoCanceller, NullEchoCanceller, make_echo_canceller


def test_erle_after_convergence(echo_run):
    erle = ep.erle(echo_run["echo"], echo_run["clean"], 2.0, ECHO_ONLY_S)
    assert erle > 20.0, f"ERLE {erle:.1f} dB after convergence"
    # and it converges within the first two seconds of agent speech
    assert ep.erle(echo_run["echo"], echo_run["clean"], 1.0, 2.0) > 10.0


@pytest.mark.parametrize(("delay_ms", "gain_db"), [(30, -6), (150, -20), (200, -6)])
def test_erle_other_paths(echo_speech, delay_ms, gain_db):
    far = echo_speech["far"][:S0]
    echo, mic = ep.mic(far, np.zeros_like(far), delay_ms, gain_db)
    clean = ep.run(make_echo_canceller("webrtc", SR, FRAME), mic, far)
    assert ep.erle(echo, clean, 2.5, ECHO_ONLY_S) > 15.0


def test_vad_does_not_fire_on_cancelled_echo(echo_run):
    n = S0
    raw = ep.vad(echo_run["mic"][:n]) >= 0.5
    clean = ep.vad(echo_run["clean"][:n]) >= 0.5
    assert raw.mean() > 0.6, f"raw echo should look like speech ({raw.mean():.0%})"
    # from a cold start, convergence included
    assert clean.mean() < 0.05, f"VAD fires on {clean.mean():.1%} of cleaned echo-only frames"


def test_near_end_survives_double_talk(echo_run):
    s0 = S0
    user = ep.vad(echo_run["near"])[s0 // FRAME :] >= 0.5
    heard = ep.vad(echo_run["clean"])[s0 // FRAME :] >= 0.5
    assert user.sum() > 20
    recall = heard[user].mean()
    assert recall > 0.75, f"VAD heard the user in only {recall:.0%} of double-talk frames"
    # AEC3's residual-echo suppressor bites into the user while the agent keeps
    # talking (see models/aec.md); the user stays well above what is left of the echo.
    snr = ep.linear_snr(echo_run["near"][s0:], echo_run["clean"][s0:])
    assert snr > 2.0, f"double-talk near-end SNR {snr:.1f} dB"


def test_near_end_alone_is_kept_when_agent_is_silent(echo_speech):
    near = echo_speech["near"]
    aec = make_echo_canceller("webrtc", SR, FRAME)
    clean = ep.run(aec, near, np.zeros_like(near))
    s0 = S0
    assert ep.linear_snr(near[s0:], clean[s0:]) > 25.0
    assert (ep.vad(clean[s0:]) >= 0.5).sum() >= 0.9 * (ep.vad(near[s0:]) >= 0.5).sum()


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
    ep.run(aec, echo_run["mic"][:n], echo_run["far"][:n])
    aec.reset()
    out = aec.process(np.zeros(FRAME, np.float32), np.zeros(FRAME, np.float32))
    assert np.all(out == 0)


def test_speex_backend_cancels_echo(echo_speech):
    far = echo_speech["far"][:S0]
    echo, mic = ep.mic(far, np.zeros_like(far), 80, -12)
    aec = make_echo_canceller("speex", SR, FRAME)
    clean = ep.run(aec, mic, far)
    assert ep.erle(echo, clean, 4.0, ECHO_ONLY_S) > 12.0


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
