"""Barge-in verdicts, driven frame by frame through the turn-taker with known signals.

(The same behaviours through the real models are in test_behaviours.py.)
"""

from __future__ import annotations

from dataclasses import replace

from listen_signals import FRAME_MS, heard

from duplex.config import BargeInConfig, TurnConfig
from duplex.models.actions import PauseOutput, ResumeOutput, StopOutput, Transcribe
from duplex.models.base import AgentStatus, ListenSignals
from duplex.policy.turn_taker import ConvState, TurnTaker


def _burst_then_transcript(
    text: str,
    recent: tuple[str, ...],
    burst_frames: int,
    confidence: float | None = None,
    partial_at: int | None = None,
) -> tuple[list, list]:
    """The agent speaks; a burst of ``burst_frames`` voiced frames; then ``text`` comes back
    (and, with ``partial_at``, as a partial transcript at that frame too)."""
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
        if i == partial_at:
            signals = replace(signals, partial_text=text)
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


def test_a_partial_with_more_words_than_a_short_burst_holds_does_not_stop_the_agent():
    # The partial's audio starts before the burst: four words of the agent's echo read
    # around a 128 ms blip are not the user's (a self-interruption seen in make eval).
    blip, _ = _burst_then_transcript("and all of them", ("You're not alone",), 4, partial_at=9)
    assert not any(isinstance(a, StopOutput) for a in blip)
    assert any(isinstance(a, ResumeOutput) for a in blip)
    # Three words after 11 voiced frames (352 ms) stop it at once, before any final.
    talk, _ = _burst_then_transcript("wait, stop that", ("You're not alone",), 12, partial_at=15)
    stops = [i for i, a in enumerate(talk) if isinstance(a, StopOutput)]
    assert stops and not any(isinstance(a, Transcribe) for a in talk[: stops[0]])


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


def _soft_bursts(
    levels_db: list[list[float]], echo_residual_db: float = -120.0, words: str = "wait a moment please"
) -> tuple[list[float], list, list]:
    """The agent speaks to a user heard at -20 dBFS; bursts of voiced frames at ``levels_db``
    (one list a burst, 40 frames apart), each transcribed as ``words``. Returns the times
    (ms after each burst's first frame) at which the output paused, the actions and events."""
    tt = TurnTaker(TurnConfig(), BargeInConfig(), FRAME_MS, state=ConvState.SPEAKING)
    tt.levels.level_db = -20.0
    agent = AgentStatus(responding=True, playing=True, response_id="r1", recent_words=("Paris is lovely",))
    frames: list[float | None] = []
    starts = []
    for burst in levels_db:
        starts.append(len(frames) + 5)
        frames += [None] * 5 + list(burst) + [None] * 35
    pauses: list[float] = []
    acts: list = []
    evs: list = []
    requested = None
    for i, level in enumerate(frames):
        final = words if requested is not None and i == requested[1] + 4 else None
        signals = ListenSignals(
            vad_prob=0.0 if level is None else 0.9,
            energy_db=-70.0 if level is None else level,
            echo_residual_db=echo_residual_db,
            final_text=final,
            final_end_ms=requested[0].end_ms if final is not None and requested else 0.0,
        )
        actions, events = tt.update(i * FRAME_MS, signals, agent)
        for a in actions:
            if isinstance(a, Transcribe):
                requested = (a, i)
            if isinstance(a, PauseOutput):
                first = max(s for s in starts if s <= i)
                pauses.append((i - first) * FRAME_MS)
        acts += actions
        evs += events
        if tt.state == ConvState.LISTENING:
            tt.state = ConvState.SPEAKING  # the agent speaks on (a new answer)
    return pauses, acts, evs


# A user heard at -20 dBFS interrupts 10 dB softer: soft first syllables 14 dB below
# their level, then the stressed ones 9 dB below.
QUIET_INTERRUPTION = [-34.0] * 6 + [-29.0] * 30


def test_a_softer_interruption_pauses_the_agent_at_its_first_syllable():
    pauses, acts, _ = _soft_bursts([QUIET_INTERRUPTION])
    assert pauses and pauses[0] <= 2 * FRAME_MS  # not only once it is as loud as the first turn
    assert any(isinstance(a, StopOutput) for a in acts)  # and it is confirmed


def test_soft_speech_the_agents_echo_could_explain_waits_for_the_users_level():
    # The echo guard expects residual echo at -36 dBFS: the soft syllables may be the agent.
    pauses, _, _ = _soft_bursts([QUIET_INTERRUPTION], echo_residual_db=-36.0)
    assert pauses and pauses[0] >= 6 * FRAME_MS


def test_talk_that_never_reaches_the_users_level_is_not_an_interruption_and_is_learned():
    distant = [-34.0] * 40  # 1.3 s of words, 14 dB below the user: a colleague
    pauses, acts, _ = _soft_bursts([distant, distant])
    assert not any(isinstance(a, StopOutput) for a in acts)
    assert any(isinstance(a, ResumeOutput) for a in acts)
    # The first pauses the output; once heard as background, talk at its level does not.
    assert len(pauses) == 1
    # And the user's own soft interruption is then judged by their level again.
    pauses, _, _ = _soft_bursts([distant, QUIET_INTERRUPTION])
    assert len(pauses) == 2 and pauses[1] >= 6 * FRAME_MS
