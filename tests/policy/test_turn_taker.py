"""The turn-taker's barge-in verdicts, driven frame by frame with known signals.

(The same behaviours through the real models are in test_behaviours.py.)
"""

from __future__ import annotations

import pytest

from duplex.config import BargeInConfig, TurnConfig
from duplex.events import TurnTaken
from duplex.models.actions import (
    PauseOutput,
    ResponseOptions,
    ResumeOutput,
    StopOutput,
    TakeTurn,
    Transcribe,
)
from duplex.models.base import AgentStatus, ListenSignals
from duplex.policy.turn_taker import ConvState, TurnTaker, is_backchannel, own_echo_share

FRAME = 32.0


def test_held_hums_as_the_recognizer_writes_them_are_backchannels():
    vocab = BargeInConfig().backchannel_words
    for text in ["mm-m-m-m-m-", "Mmmm.", "uh-huh", "Mhm, yeah.", "i c", "K.", "I see", "Okay, I see."]:
        assert is_backchannel(text, vocab), text
    # A laugh, and a short "uh-huh" as Whisper sometimes writes it ("B", "ha"), are not words.
    for text in ["Ha!", "haha", "Aha.", "hehe", "B"]:
        assert is_backchannel(text, vocab), text
    for text in ["wait", "stop it", "mm wait a second", "hey", "no", "hang on", "B, stop"]:
        assert not is_backchannel(text, vocab), text


def test_own_echo_share_counts_the_agents_own_words_with_misheard_forms():
    said = ("The most important", "thing about water is that")
    assert own_echo_share("is that", said) == 1.0
    assert own_echo_share("waters", said) == 1.0  # a near miss of "water"
    assert own_echo_share("wait, stop", said) == 0.0
    assert own_echo_share("anything", ()) == 0.0


def _heard(voiced: bool, final: str | None, requested: tuple | None, **with_final: float | None) -> ListenSignals:
    """One frame's signals: speech or silence, and the requested final when it comes back
    (with ``with_final`` fields, e.g. its confidence, only then)."""
    extra = with_final if final is not None else {}
    return ListenSignals(
        vad_prob=0.9 if voiced else 0.0,
        energy_db=-25.0 if voiced else -70.0,
        final_text=final,
        final_end_ms=requested[0].end_ms if final is not None and requested else 0.0,
        **extra,  # type: ignore[arg-type]
    )


def _burst_then_transcript(
    text: str, recent: tuple[str, ...], burst_frames: int, confidence: float | None = None
) -> tuple[list, list]:
    """The agent speaks; a burst of ``burst_frames`` voiced frames; then ``text`` comes back."""
    tt = TurnTaker(TurnConfig(), BargeInConfig(), FRAME, state=ConvState.SPEAKING)
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
        signals = _heard(voiced, final, requested, final_confidence=confidence)
        actions, events = tt.update(t, signals, agent)
        events_seen += events
        for a in actions:
            if isinstance(a, Transcribe) and requested is None:
                requested = (a, i)
        actions_seen += actions
        t += FRAME
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


def _turn_taken_after_ms(text: str, eot_score: float) -> float | None:
    """The user speaks 1 s and stops; the final ``text`` comes back with the EOU
    model's ``eot_score`` (0..1). Silence (ms) after which the turn is taken."""
    tt = TurnTaker(TurnConfig(), BargeInConfig(), FRAME)
    agent = AgentStatus()
    requested = None
    t = 0.0
    for i in range(120):
        voiced = 3 <= i < 34
        final = text if requested is not None and i == requested[1] + 4 else None
        signals = _heard(voiced, final, requested, eot_score=eot_score)
        actions, events = tt.update(t, signals, agent)
        for a in actions:
            if isinstance(a, Transcribe) and requested is None:
                requested = (a, i)
        if any(e.type == "turn.taken" for e in events):
            return t + FRAME - 34 * FRAME
        t += FRAME
    return None


def test_a_finished_question_the_eou_model_is_unsure_of_is_answered_at_a_short_pause():
    # An EOU model that leans to finished (0.6) but is not sure: a question can always go on.
    taken = _turn_taken_after_ms("How far away is the moon?", 0.6)
    assert taken is not None and taken < 500
    # Even a half-sure one (0.5) is answered within a second, helped by the question mark.
    taken = _turn_taken_after_ms("How far away is the moon?", 0.5)
    assert taken is not None and taken < 1000


def test_a_fragment_waits_for_a_long_pause():
    # "Can you give me" (an EOU score near 0): the user is looking for the word.
    taken = _turn_taken_after_ms("Can you give me?", 0.02)
    assert taken is None or taken > 2000


def _speech_onsets(levels_db: list[float | None], user_level_db: float | None) -> list[float]:
    """Onsets (ms) the turn-taker reports for frames of speech at ``levels_db``
    (None: silence), for a user whose level it has learned as ``user_level_db``."""
    tt = TurnTaker(TurnConfig(), BargeInConfig(), FRAME)
    tt._user_level_db = user_level_db
    onsets = []
    for i, level in enumerate(levels_db):
        signals = ListenSignals(
            vad_prob=0.0 if level is None else 0.9, energy_db=-70.0 if level is None else level
        )
        _, events = tt.update(i * FRAME, signals, AgentStatus())
        onsets += [e.t_ms for e in events if e.type == "user.speech_started"]
    return onsets


def test_a_soft_start_belongs_to_the_users_turn():
    # The user speaks at -20 dBFS; "what is" comes 14 dB softer before the stressed word.
    soft_then_loud = [None] * 5 + [-34.0] * 10 + [-20.0] * 20 + [None] * 5
    assert _speech_onsets(soft_then_loud, user_level_db=-20.0) == [5 * FRAME]
    # Not further back than a soft word or two: a long quiet run is someone else's.
    long_soft = [None] * 5 + [-34.0] * 40 + [-20.0] * 10 + [None] * 5
    [onset] = _speech_onsets(long_soft, user_level_db=-20.0)
    assert onset == pytest.approx(45 * FRAME - 500.0, abs=FRAME)


def test_talk_far_below_the_users_level_never_starts_a_turn():
    background = [None] * 5 + [-36.0] * 60 + [None] * 5
    assert _speech_onsets(background, user_level_db=-20.0) == []
    assert _speech_onsets(background, user_level_db=None) == [5 * FRAME]  # no level learned yet


def _listen_frames(voiced: list[bool], preempt_ms: int) -> list[tuple[float, list]]:
    """A listening turn-taker fed ``voiced`` frames; the actions of each frame."""
    tt = TurnTaker(TurnConfig(preempt_silence_ms=preempt_ms), BargeInConfig(), FRAME)
    agent = AgentStatus()
    out = []
    for i, v in enumerate(voiced):
        actions, _ = tt.update(i * FRAME, _heard(v, None, None), agent)
        out.append((i * FRAME, actions))
    return out


def test_a_preempt_shorter_than_the_hangover_transcribes_at_the_first_silent_frame():
    from duplex.models.actions import DiscardDraft

    speech = [False] * 3 + [True] * 20  # voice until the end of frame 22 (736 ms)
    asked = [(t, a) for t, frame in _listen_frames(speech + [False] * 6, 32) for a in frame if isinstance(a, Transcribe)]
    assert len(asked) == 1
    t, transcribe = asked[0]
    assert t == 23 * FRAME and transcribe.end_ms == 23 * FRAME  # one frame into the silence
    # The profile's older setting waits for the hangover: one frame later.
    later = [t for t, frame in _listen_frames(speech + [False] * 6, 64) for a in frame if isinstance(a, Transcribe)]
    assert later == [24 * FRAME]

    # Voice back inside the hangover: the early transcript is dropped, and the real end
    # of the turn gets one of its own.
    frames = _listen_frames(speech + [False] + [True] * 5 + [False] * 6, 32)
    kinds = [type(a).__name__ for _, frame in frames for a in frame if isinstance(a, (Transcribe, DiscardDraft))]
    assert kinds == ["Transcribe", "DiscardDraft", "Transcribe"]
    last = [a for _, frame in frames for a in frame if isinstance(a, Transcribe)][-1]
    assert last.end_ms == 29 * FRAME


def _manual_turn(tt: TurnTaker, respond_after_commit: ResponseOptions | None) -> list:
    """Manual mode: a second of speech, the client's commit (without answer), maybe a
    response request, then the final comes back."""
    actions_seen: list = []
    listening = AgentStatus()
    t = 0.0
    for _ in range(31):
        actions, _ = tt.update(t, _heard(True, None, None), listening)
        actions_seen += actions
        t += FRAME
    for _ in range(3):
        actions, _ = tt.update(t, _heard(False, None, None), listening)
        actions_seen += actions
        t += FRAME
    actions, _ = tt.commit(t, answer=False)
    actions_seen += actions
    requested = [a for a in actions_seen if isinstance(a, Transcribe)]
    assert requested, "the commit asks for the final"
    if respond_after_commit is not None:
        assert tt.respond(t, respond_after_commit) == ([], [])  # held until the words are in
    actions, events = tt.update(t, _heard(False, "What time is it?", (requested[-1],)), listening)
    return actions + [e for e in events if isinstance(e, TurnTaken)]


def test_a_manual_commit_records_the_turn_and_a_response_request_answers_it():
    tt = TurnTaker(TurnConfig(), BargeInConfig(), FRAME, auto_turns=False)
    out = _manual_turn(tt, None)
    take = next(a for a in out if isinstance(a, TakeTurn))
    assert take.text == "What time is it?" and not take.options.answer  # recorded, not answered
    assert any(isinstance(e, TurnTaken) for e in out) and tt.state == ConvState.LISTENING

    tt = TurnTaker(TurnConfig(), BargeInConfig(), FRAME, auto_turns=False)
    out = _manual_turn(tt, ResponseOptions(response_id="resp_x", instructions="Be brief."))
    take = next(a for a in out if isinstance(a, TakeTurn))
    assert take.text == "What time is it?" and take.options.answer and take.options.response_id == "resp_x"
    assert tt.state == ConvState.THINKING


def test_with_turn_detection_off_user_speech_does_not_interrupt_the_agent():
    tt = TurnTaker(TurnConfig(), BargeInConfig(), FRAME, state=ConvState.SPEAKING, auto_turns=False)
    agent = AgentStatus(responding=True, playing=True, response_id="r1")
    seen: list = []
    for i in range(40):
        actions, _ = tt.update(1000.0 + i * FRAME, _heard(True, None, None), agent)
        seen += actions
    assert not any(isinstance(a, PauseOutput | StopOutput) for a in seen)
    assert tt.state == ConvState.SPEAKING


def test_a_response_request_with_nothing_pending_answers_the_history_now():
    tt = TurnTaker(TurnConfig(), BargeInConfig(), FRAME)
    actions, _ = tt.respond(500.0, ResponseOptions(response_id="resp_g", instructions="Say hello."))
    take = next(a for a in actions if isinstance(a, TakeTurn))
    assert take.text == "" and take.options.instructions == "Say hello."
    assert tt.state == ConvState.THINKING
