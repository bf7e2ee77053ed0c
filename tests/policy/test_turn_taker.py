"""The turn-taker's states and transitions on client requests (manual turns,
response requests), driven frame by frame with known signals."""

from __future__ import annotations

from listen_signals import FRAME_MS, heard

from duplex.config import BargeInConfig, TurnConfig
from duplex.events import TurnTaken
from duplex.models.actions import LookAgain, ResponseOptions, TakeTurn, Transcribe
from duplex.models.base import AgentStatus
from duplex.policy.turn_taker import ConvState, TurnTaker


def _manual_turn(tt: TurnTaker, respond_after_commit: ResponseOptions | None) -> list:
    """Manual mode: a second of speech, the client's commit (without answer), maybe a
    response request, then the final comes back."""
    actions_seen: list = []
    listening = AgentStatus()
    t = 0.0
    for _ in range(31):
        actions, _ = tt.update(t, heard(True, None, None), listening)
        actions_seen += actions
        t += FRAME_MS
    for _ in range(3):
        actions, _ = tt.update(t, heard(False, None, None), listening)
        actions_seen += actions
        t += FRAME_MS
    actions, _ = tt.commit(t, answer=False)
    actions_seen += actions
    requested = [a for a in actions_seen if isinstance(a, Transcribe)]
    assert requested, "the commit asks for the final"
    if respond_after_commit is not None:
        assert tt.respond(t, respond_after_commit) == ([], [])  # held until the words are in
    actions, events = tt.update(t, heard(False, "What time is it?", (requested[-1],)), listening)
    return actions + [e for e in events if isinstance(e, TurnTaken)]


def test_a_manual_commit_records_the_turn_and_a_response_request_answers_it():
    tt = TurnTaker(TurnConfig(), BargeInConfig(), FRAME_MS, auto_turns=False)
    out = _manual_turn(tt, None)
    take = next(a for a in out if isinstance(a, TakeTurn))
    assert take.text == "What time is it?" and not take.options.answer  # recorded, not answered
    assert any(isinstance(e, TurnTaken) for e in out) and tt.state == ConvState.LISTENING

    tt = TurnTaker(TurnConfig(), BargeInConfig(), FRAME_MS, auto_turns=False)
    out = _manual_turn(tt, ResponseOptions(response_id="resp_x", instructions="Be brief."))
    take = next(a for a in out if isinstance(a, TakeTurn))
    assert take.text == "What time is it?" and take.options.answer and take.options.response_id == "resp_x"
    assert tt.state == ConvState.THINKING


def test_a_response_request_with_nothing_pending_answers_the_history_now():
    tt = TurnTaker(TurnConfig(), BargeInConfig(), FRAME_MS)
    actions, _ = tt.respond(500.0, ResponseOptions(response_id="resp_g", instructions="Say hello."))
    take = next(a for a in actions if isinstance(a, TakeTurn))
    assert take.text == "" and take.options.instructions == "Say hello."
    assert tt.state == ConvState.THINKING


HOLD = TurnConfig(hold_pause_ms=1400)  # the default profile's


def test_words_after_a_turn_taken_too_early_are_heard_and_answered_as_a_story_goes_on():
    # "Why does that happen?" is taken at a short pause; before any audio the user goes
    # on. The rest is transcribed as their turn and answered after it, at a story's pause.
    tt = TurnTaker(HOLD, BargeInConfig(), FRAME_MS)
    requested = None
    taken: list[tuple[int, str]] = []
    for i in range(160):
        voiced = 3 <= i < 34 or 50 <= i < 80
        final = None
        if requested is not None and i == requested[1] + 4:
            final = "Why does that happen?" if requested[1] < 45 else "It happened twice this week."
        actions, _ = tt.update(i * FRAME_MS, heard(voiced, final, requested, eot_score=0.9), AgentStatus())
        for a in actions:
            if isinstance(a, Transcribe):
                requested = (a, i)
            if isinstance(a, TakeTurn):
                taken.append((i, a.text))
    assert [text for _, text in taken] == ["Why does that happen?", "It happened twice this week."]
    assert (taken[1][0] - 80) * FRAME_MS >= HOLD.hold_pause_ms - FRAME_MS


def _final_heard(tt: TurnTaker, text: str, eot_score: float) -> tuple[Transcribe, list, float]:
    """A second of speech, silence until the final is asked, then the final comes back
    with its end-of-utterance score. Returns the request, the actions of the tick that
    heard the final, and that tick's time."""
    listening = AgentStatus()
    t, asked = 0.0, []
    for voiced in [True] * 31 + [False] * 40:
        actions, _ = tt.update(t, heard(voiced, None, None), listening)
        asked += [a for a in actions if isinstance(a, Transcribe)]
        t += FRAME_MS
        if asked:
            break
    actions, _ = tt.update(t, heard(False, text, (asked[-1],), eot_score=eot_score), listening)
    return asked[-1], actions, t + FRAME_MS


def _taken_after(tt: TurnTaker, request: Transcribe, t: float, revised: str | None = None) -> float:
    """Silence from ``t`` on (the final ``revised`` comes back again in the first frame):
    how long after the end of speech the turn is taken."""
    listening = AgentStatus()
    for i in range(200):
        final = revised if i == 0 else None
        actions, _ = tt.update(t, heard(False, final, (request,), eot_score=0.95), listening)
        take = [a for a in actions if isinstance(a, TakeTurn)]
        if take:
            return t + FRAME_MS - take[0].end_of_speech_ms
        t += FRAME_MS
    raise AssertionError("the turn was never taken")


def test_a_statement_held_for_its_form_asks_for_one_look_and_a_question_found_is_answered():
    turn = TurnConfig(hold_pause_ms=1400)  # the default profile's hold
    tt = TurnTaker(turn, BargeInConfig(), FRAME_MS)
    request, actions, t = _final_heard(tt, "You wrote Romino and do it yet.", 0.95)
    looks = [a for a in actions if isinstance(a, LookAgain)]
    assert looks == [LookAgain(request.start_ms, request.end_ms)]
    # The look reads a question: the same span's final again, answered at its short pause.
    assert _taken_after(tt, request, t, revised="Who wrote Romeo and Juliet?") < turn.hold_pause_ms - 600

    tt = TurnTaker(turn, BargeInConfig(), FRAME_MS)
    request, actions, t = _final_heard(tt, "I went to the shop.", 0.95)
    assert any(isinstance(a, LookAgain) for a in actions)
    # The look kept the words (nothing comes back): the statement keeps its hold, and
    # no second look is asked while it waits.
    listening = AgentStatus()
    for _ in range(10):
        actions, _ = tt.update(t, heard(False, None, None), listening)
        assert not any(isinstance(a, LookAgain) for a in actions)
        t += FRAME_MS
    assert _taken_after(tt, request, t) >= turn.hold_pause_ms


def test_no_look_for_a_final_that_asks_or_ends_in_a_number():
    for text in ("What time is it?", "Tell me a joke.", "My number is 555 0134."):
        tt = TurnTaker(TurnConfig(hold_pause_ms=1400), BargeInConfig(), FRAME_MS)
        _, actions, _ = _final_heard(tt, text, 0.95)
        assert not any(isinstance(a, LookAgain) for a in actions), text
