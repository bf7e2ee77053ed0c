"""The agent's own echo: is what is left after cancellation the agent, and are the
words of a burst its own? Level and envelope judged on real (espeak-ng) speech
through a simulated laptop echo path (``tests/echo_path.py``).
"""

from __future__ import annotations

import echo_path as ep
import numpy as np
import pytest
from echo_path import FRAME, S0, SR

from duplex.policy.echo import EchoEstimator, own_echo_share

FRAME_MS = 1000.0 * FRAME / SR


def test_estimator_explains_residual_echo_not_the_user(echo_run):
    est = EchoEstimator(FRAME_MS)
    far, clean = echo_run["far"], echo_run["clean"]
    verdicts = np.array(
        [
            est.explained(c, p)
            for c, p in zip(clean.reshape(-1, FRAME), far.reshape(-1, FRAME), strict=True)
        ]
    )
    k = S0 // FRAME
    assert verdicts[int(1.0 * SR) // FRAME : k].mean() > 0.95  # echo-only: explained
    user = ep.vad(echo_run["near"])[k:] >= 0.5
    assert (~verdicts[k:][user]).mean() > 0.7  # the user over the agent: not explained
    assert est.residual_db < -15.0  # learned: AEC3 leaves far less than the played level


def test_estimator_without_agent_audio():
    est = EchoEstimator(FRAME_MS)
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


def test_what_the_canceller_makes_of_a_silent_microphone_is_not_the_user(echo_speech):
    """With no echo path (a headset, a file), the microphone is silent while the agent
    speaks, but a canceller whose filter learned something leaves its estimate of the
    echo in its output: speech-shaped, as loud as speech. The raw microphone says that
    nobody spoke; the same frames with the user in the microphone are the user."""
    far, near = echo_speech["far"], echo_speech["near"]
    silent = np.zeros(FRAME, np.float32)
    est = EchoEstimator(FRAME_MS)
    for p in far.reshape(-1, FRAME)[:20]:
        est.explained(silent, p, silent)  # no echo: the residual learned is nothing
    made = 0.5 * far  # the canceller's misadjusted estimate, subtracted from silence
    frames = list(zip(made.reshape(-1, FRAME), far.reshape(-1, FRAME), strict=True))
    loud = [k for k, (c, _) in enumerate(frames) if np.sqrt(np.mean(c**2)) > 0.01]
    assert len(loud) > 20
    verdicts = [est.explained(c, p, silent) for c, p in frames]
    assert all(verdicts[k] for k in loud)
    # The user's voice in the microphone (and so in the output): not explained.
    est = EchoEstimator(FRAME_MS)
    for p in far.reshape(-1, FRAME)[:20]:
        est.explained(silent, p, silent)
    n = min(len(near), len(far)) // FRAME * FRAME
    user = near[:n].reshape(-1, FRAME)
    verdicts = [est.explained(u, p, u) for u, p in zip(user, far[:n].reshape(-1, FRAME), strict=True)]
    spoken = [k for k, u in enumerate(user) if np.sqrt(np.mean(u**2)) > 0.01]
    assert len(spoken) > 20 and np.mean([not verdicts[k] for k in spoken]) > 0.9


def test_double_talk_is_heard_at_the_echo_level_before_cancellation_converges(echo_speech):
    """The user talks as loud as the echo, and nothing is cancelled yet (the first
    seconds of a session): level cannot tell them apart, the envelope can."""
    far, near = echo_speech["far"], echo_speech["near"]
    echo, _ = ep.mic(far, np.zeros_like(far), 60, -7)
    active = np.abs(echo) > 1e-3
    near = near * np.sqrt(np.mean(echo[active] ** 2) / np.mean(near[np.abs(near) > 1e-3] ** 2))
    mic = (echo + near).astype(np.float32)
    frames = list(zip(mic.reshape(-1, FRAME), far.reshape(-1, FRAME), strict=True))
    by_level, by_envelope = EchoEstimator(FRAME_MS, dt_corr=0), EchoEstimator(FRAME_MS)
    level = np.array([by_level.explained(m, p) for m, p in frames])
    envelope = np.array([by_envelope.explained(m, p, m) for m, p in frames])
    k = S0 // FRAME
    user = ep.vad(near)[k:] >= 0.5
    echo_only = slice(int(1.0 * SR) // FRAME, k)
    assert envelope[echo_only].mean() > 0.95  # the agent's echo alone stays explained
    assert (~envelope[k:][user]).mean() > (~level[k:][user]).mean() + 0.2


@pytest.mark.parametrize("frame_ms", [20.0, 80.0])
def test_the_echo_tail_lasts_the_same_stream_time_whatever_the_frame(frame_ms):
    """The delay window and the reverb decay are stream time: on 80 ms frames (the
    codec LM's tick) the guard expects echo as long after the agent stops as on 32 ms."""
    reference = ep.echo_tail_ms(EchoEstimator(FRAME_MS), FRAME)
    frame = int(SR * frame_ms / 1000)
    tail = ep.echo_tail_ms(EchoEstimator(frame_ms), frame)
    assert 400.0 < reference < 700.0  # 250 ms of delay, then -10 dB down to -50 dB at 150 dB/s
    assert abs(tail - reference) <= frame_ms + FRAME_MS
    # Counted in frames of another length, the tail would be far off (the bug of a
    # guard built without the profile's frame_ms).
    assert abs(ep.echo_tail_ms(EchoEstimator(FRAME_MS), frame) - reference) > 2 * frame_ms


def test_own_echo_share_counts_the_agents_own_words_with_misheard_forms():
    said = ("The most important", "thing about water is that")
    assert own_echo_share("is that", said) == 1.0
    assert own_echo_share("waters", said) == 1.0  # a near miss of "water"
    assert own_echo_share("wait, stop", said) == 0.0
    assert own_echo_share("anything", ()) == 0.0
