"""Barge-in verdicts, driven frame by frame through the turn-taker with known signals.

(The same behaviours through the real models are in test_behaviours.py.)
"""

from __future__ import annotations

from listen_signals import FRAME_MS, heard

from duplex.config import BargeInConfig, TurnConfig
from duplex.models.actions import PauseOutput, ResumeOutput, StopOutput, Transcribe
from duplex.models.base import AgentStatus
from duplex.policy.turn_taker import ConvState, TurnTaker


def _burst_then_transcript(
    text: str, recent: tuple[str, ...], burst_frames: int, confidence: float | None = None
) -> tuple[list, list]:
    """The agent speaks; a burst of ``burst_frames`` voiced frames; then ``text`` comes back."""
    tt = TurnTaker(TurnConfig(), BargeInConfig(), FRAME_MS, state=ConvState.SPEAKING)
    agent = AgentStatus(responding=True, playing=True, response_id="r1", recent_words=recent)
    actions_seen: list = []
    events_seen: list = []
    requested = None
    t = 1000.0
    for i in range(60):
        voiced = 5 <= i < 5 + burst_frames
        final = None
        if requested is not None and i == requested[1] + 6:
            final = text
        signals = heard(voiced, final, requested, final_confidence=confidence)
        actions, events = tt.update(t, signals, agent)
        events_seen += events
        for a in actions:
            if isinstance(a, Transcribe) and requested is None:
                requested = (a, i)
        actions_seen += actions
        t += FRAME_MS
    return actions_seen, events_seen


def test_a_burst_that_is_the_agents_own_words_resumes_instead_of_stopping():
    recent = ("Water boils at", "one hundred degrees, which is that")
    acts, events = _burst_then_transcript("which is that", recent, burst_frames=10)
    assert any(isinstance(a, ResumeOutput) for a in acts)
    assert not [e for e in events if e.type == "user.backchannel"]
    assert not any(isinstance(a, StopOutput) for a in acts)


def test_the_same_words_from_the_user_stop_the_agent():
    acts, _ = _burst_then_transcript("which is that", ("Paris is lovely in spring",), burst_frames=10)
    assert any(isinstance(a, StopOutput) for a in acts)


def test_more_words_than_a_short_burst_can_hold_is_not_an_interruption():
    # 3 voiced frames (96 ms) cannot hold three words; a full second can.
    short, _ = _burst_then_transcript("go on then", ("Paris is lovely",), burst_frames=3)
    assert not any(isinstance(a, StopOutput) for a in short)
    longer, _ = _burst_then_transcript("go on then", ("Paris is lovely",), burst_frames=12)
    assert any(isinstance(a, StopOutput) for a in longer)


def test_a_short_transcript_the_recognizer_is_unsure_of_does_not_stop_the_agent():
    # A held "mm" heard as "Amen" at an average log-probability of -1.9.
    unsure, events = _burst_then_transcript("Amen", ("Paris is lovely",), burst_frames=18, confidence=-1.9)
    assert not any(isinstance(a, StopOutput) for a in unsure)
    assert any(isinstance(a, ResumeOutput) for a in unsure)
    assert [e.text for e in events if e.type == "user.backchannel"] == ["Amen"]
    sure, _ = _burst_then_transcript("Wait", ("Paris is lovely",), burst_frames=18, confidence=-0.3)
    assert any(isinstance(a, StopOutput) for a in sure)


def test_with_turn_detection_off_user_speech_does_not_interrupt_the_agent():
    tt = TurnTaker(TurnConfig(), BargeInConfig(), FRAME_MS, state=ConvState.SPEAKING, auto_turns=False)
    agent = AgentStatus(responding=True, playing=True, response_id="r1")
    seen: list = []
    for i in range(40):
        actions, _ = tt.update(1000.0 + i * FRAME_MS, heard(True, None, None), agent)
        seen += actions
    assert not any(isinstance(a, PauseOutput | StopOutput) for a in seen)
    assert tt.state == ConvState.SPEAKING
