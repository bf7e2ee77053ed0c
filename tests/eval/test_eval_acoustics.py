"""The simulated room: echo delay, gain and causality; inserts in the microphone."""

from __future__ import annotations

import numpy as np
import pytest

from duplex.eval.acoustics import EchoSimulator, FrameResampler, Microphone, synthetic_impulse
from duplex.eval.scenarios import EchoPath, Reverb

N = 512  # 32 ms at 16 kHz
OUT_N = 768  # 32 ms at 24 kHz


def _echo_of_one_click(delay_ms: float, gain_db: float) -> np.ndarray:
    echo = EchoSimulator(EchoPath(delay_ms, gain_db), N, 24000, 16000)
    mic = Microphone(np.zeros(N * 20, np.float32), N, echo)
    heard = []
    for i in range(20):
        heard.append(mic.next_frame())
        out = np.zeros(OUT_N, np.float32)
        if i == 2:
            out[:] = 0.5 * np.sin(2 * np.pi * 300 * np.arange(OUT_N) / 24000)  # one frame of tone
        mic.play(out)
    return np.concatenate(heard)


def test_echo_arrives_one_playout_frame_plus_the_path_delay_later():
    x = _echo_of_one_click(delay_ms=80.0, gain_db=-6.0)
    first = int(np.flatnonzero(np.abs(x) > 1e-3)[0])
    # the frame made at tick 2 plays during tick 3 (sample 1536), then 80 ms (1280 samples)
    assert first == pytest.approx(3 * N + 1280, abs=12)


def test_echo_gain_follows_the_path():
    x = _echo_of_one_click(delay_ms=40.0, gain_db=-12.0)
    assert float(np.abs(x).max()) == pytest.approx(0.5 * 10 ** (-12 / 20), rel=0.05)


def test_echo_never_reaches_the_frame_that_produced_it():
    x = _echo_of_one_click(delay_ms=0.0, gain_db=0.0)
    assert np.all(x[: 3 * N] == 0.0)


def test_reverb_impulse_has_unit_energy_and_decays():
    h = synthetic_impulse(Reverb(300.0, seed=1))
    assert float(np.sum(h**2)) == pytest.approx(1.0, rel=1e-4)
    assert np.abs(h[-400:]).max() < np.abs(h[1:400]).max()


def test_frame_resampler_gives_whole_frames():
    r = FrameResampler(24000, 16000)
    assert {len(r.process(np.ones(OUT_N, np.float32))) for _ in range(10)} == {N}


def test_an_insert_scheduled_in_the_past_starts_at_the_next_frame():
    mic = Microphone(np.zeros(N * 4, np.float32), N)
    mic.next_frame()
    start = mic.schedule(100, np.ones(N, np.float32) * 0.1)
    assert start == N
    assert mic.pending()
    assert np.allclose(mic.next_frame(), 0.1)
    assert not mic.pending()
