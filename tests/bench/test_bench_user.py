"""The latency bench's simulated user: it waits for each answer before the next question."""

from __future__ import annotations

import numpy as np
import pytest

from duplex.bench.user import FixedTimelineUser, WaitingUser
from duplex.events import AgentAudioDone, AgentAudioStarted

RATE = 1000  # samples a second: 1 sample a millisecond keeps the arithmetic legible
FRAME = 20


def _question(ms: int) -> np.ndarray:
    return np.full(ms, 0.25, np.float32)


def _run(user: WaitingUser, agent: list[tuple[float, object]], limit_ms: int = 60_000) -> np.ndarray:
    """Step ``user`` frame by frame, handing it each agent event once its time has come."""
    pending = sorted(agent, key=lambda x: x[0])
    out = []
    t = 0
    while not user.finished and t < limit_ms:
        while pending and pending[0][0] <= t:
            user.observe(pending.pop(0)[1])
        out.append(user.frame(FRAME))
        t += FRAME
    assert user.finished, "the user never finished"
    return np.concatenate(out)


def test_the_user_knows_where_its_speech_really_ends() -> None:
    """A question whose audio holds 100 ms of silence at its head and 200 ms at its
    tail: the listener's latency counts from the end of the sound, not of the clip."""
    q = np.concatenate([np.zeros(100, np.float32), _question(500), np.zeros(200, np.float32)])
    user = WaitingUser([q, q], RATE, gap_s=1.0, lead_in_s=0.1)
    _run(user, [])
    assert len(user.spans) == len(user.speech_spans) == 2
    for (start, end), (onset, speech_end) in zip(user.spans, user.speech_spans, strict=True):
        assert end - start == pytest.approx(0.8)
        assert (onset - start, speech_end - start) == (pytest.approx(0.1), pytest.approx(0.6))
    timeline = FixedTimelineUser(np.concatenate([np.zeros(100, np.float32), q]), [(0.1, 0.9)], RATE)
    assert timeline.speech_spans == [(pytest.approx(0.2), pytest.approx(0.7))]


def test_with_a_quiet_agent_each_question_comes_the_gap_after_the_last() -> None:
    user = WaitingUser([_question(400), _question(300)], RATE, gap_s=1.0, lead_in_s=0.1)
    audio = _run(user, [])

    assert user.spans == [(0.1, 0.5), (1.5, 1.8)]
    assert np.count_nonzero(audio) == 700  # both questions, whole
    assert len(audio) / RATE == pytest.approx(2.8, abs=2 * FRAME / RATE)  # the last gap waited too


def test_a_long_answer_holds_the_next_question_until_after_it_ends() -> None:
    user = WaitingUser([_question(400), _question(300)], RATE, gap_s=1.0, after_answer_s=0.5, lead_in_s=0.0)
    # The answer starts 0.3 s after the question and plays 3 s: past the 1 s gap.
    agent = [(700, AgentAudioStarted(700.0, "r1")), (3700, AgentAudioDone(3700.0, "r1"))]
    _run(user, agent)

    start = user.spans[1][0]
    assert start >= 3.7 + 0.5  # after the answer and the pause after it
    assert start < 3.7 + 0.5 + 2 * FRAME / RATE  # and not much later
    assert start - user.spans[0][1] > 1.0


def test_an_agent_that_never_stops_is_waited_for_at_most_max_wait() -> None:
    user = WaitingUser([_question(200), _question(200)], RATE, gap_s=1.0, max_wait_s=5.0, lead_in_s=0.0)
    _run(user, [(500, AgentAudioStarted(500.0, "r1"))])

    assert user.spans[1][0] == pytest.approx(0.2 + 5.0, abs=FRAME / RATE)


def test_bad_settings_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="at least one question"):
        WaitingUser([], RATE)
    with pytest.raises(ValueError, match="gap_s <= max_wait_s"):
        WaitingUser([_question(100)], RATE, gap_s=10.0, max_wait_s=5.0)


def test_a_fixed_timeline_plays_its_audio_whatever_the_agent_does() -> None:
    audio = np.arange(50, dtype=np.float32)
    user = FixedTimelineUser(audio, [(0.0, 0.05)])
    user.observe(AgentAudioStarted(0.0, "r1"))
    frames = []
    while not user.finished:
        frames.append(user.frame(FRAME))
    assert len(frames) == 3
    assert np.array_equal(np.concatenate(frames)[:50], audio)  # padded with silence at the end
    assert not np.concatenate(frames)[50:].any()


def test_a_repeating_user_asks_again_from_the_first_question_and_never_finishes() -> None:
    first, second = _question(200), np.full(300, 0.5, np.float32)
    user = WaitingUser([first, second], RATE, gap_s=0.5, lead_in_s=0.0, repeat=True)
    audio = np.concatenate([user.frame(FRAME) for _ in range(3000 // FRAME)])

    assert not user.finished and user.asked == 4
    assert [a for a, _ in user.spans] == pytest.approx([0.0, 0.7, 1.5, 2.2], abs=1.5 * FRAME / RATE)
    # The third question is the first one again.
    third = round(user.spans[2][0] * RATE)
    assert np.all(audio[third : third + 200] == 0.25) and audio[third + 200] == 0
