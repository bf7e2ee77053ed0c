"""End of turn: when the turn-taker asks for the user's words and when it takes the turn,
driven frame by frame with known signals."""

from __future__ import annotations

import pytest
from listen_signals import FRAME_MS, heard

from duplex.config import BargeInConfig, TurnConfig
from duplex.models.actions import DiscardDraft, Transcribe
from duplex.models.base import AgentStatus, ListenSignals
from duplex.policy.turn_taker import TurnTaker


def _turn_taken_after_ms(text: str, eot_score: float) -> float | None:
    """The user speaks 1 s and stops; the final ``text`` comes back with the EOU
    model's ``eot_score`` (0..1). Silence (ms) after which the turn is taken."""
    tt = TurnTaker(TurnConfig(), BargeInConfig(), FRAME_MS)
    agent = AgentStatus()
    requested = None
    t = 0.0
    for i in range(120):
        voiced = 3 <= i < 34
        final = text if requested is not None and i == requested[1] + 4 else None
        signals = heard(voiced, final, requested, eot_score=eot_score)
        actions, events = tt.update(t, signals, agent)
        for a in actions:
            if isinstance(a, Transcribe) and requested is None:
                requested = (a, i)
        if any(e.type == "turn.taken" for e in events):
            return t + FRAME_MS - 34 * FRAME_MS
        t += FRAME_MS
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


def _listen_frames(voiced: list[bool], preempt_ms: int) -> list[tuple[float, list]]:
    """A listening turn-taker fed ``voiced`` frames; the actions of each frame."""
    tt = TurnTaker(TurnConfig(preempt_silence_ms=preempt_ms), BargeInConfig(), FRAME_MS)
    agent = AgentStatus()
    out = []
    for i, v in enumerate(voiced):
        actions, _ = tt.update(i * FRAME_MS, heard(v, None, None), agent)
        out.append((i * FRAME_MS, actions))
    return out


def test_a_preempt_shorter_than_the_hangover_transcribes_at_the_first_silent_frame():
    speech = [False] * 3 + [True] * 20  # voice until the end of frame 22 (736 ms)
    asked = [(t, a) for t, frame in _listen_frames(speech + [False] * 6, 32) for a in frame if isinstance(a, Transcribe)]
    assert len(asked) == 1
    t, transcribe = asked[0]
    assert t == 23 * FRAME_MS and transcribe.end_ms == 23 * FRAME_MS  # one frame into the silence
    # The profile's older setting waits for the hangover: one frame later.
    later = [t for t, frame in _listen_frames(speech + [False] * 6, 64) for a in frame if isinstance(a, Transcribe)]
    assert later == [24 * FRAME_MS]

    # Voice back inside the hangover: the early transcript is dropped, and the real end
    # of the turn gets one of its own.
    frames = _listen_frames(speech + [False] + [True] * 5 + [False] * 6, 32)
    kinds = [type(a).__name__ for _, frame in frames for a in frame if isinstance(a, (Transcribe, DiscardDraft))]
    assert kinds == ["Transcribe", "DiscardDraft", "Transcribe"]
    last = [a for _, frame in frames for a in frame if isinstance(a, Transcribe)][-1]
    assert last.end_ms == 29 * FRAME_MS


def _levels_frames(levels: list[float | None]) -> list[tuple[int, list]]:
    """A listening turn-taker fed frames the VAD voices at the given levels (dBFS), or
    silence (None); the actions of each frame (the default profile's 32 ms preempt)."""
    tt = TurnTaker(TurnConfig(preempt_silence_ms=32), BargeInConfig(), FRAME_MS)
    out = []
    for i, db in enumerate(levels):
        signals = ListenSignals(vad_prob=0.0 if db is None else 0.95, energy_db=-90.0 if db is None else db)
        actions, _ = tt.update(i * FRAME_MS, signals, AgentStatus())
        out.append((i, actions))
    return out


def _asked(frames: list[tuple[int, list]]) -> list[tuple[int, str]]:
    return [(i, type(a).__name__) for i, acts in frames for a in acts if isinstance(a, (Transcribe, DiscardDraft))]


def test_the_transcript_is_asked_for_at_the_first_frame_fallen_to_silence():
    # The VAD lags the real end: it still voices two frames 35 dB under the speech.
    speech: list[float | None] = [None] * 3 + [-22.0] * 20
    frames = _levels_frames(speech + [-57.0, -60.0] + [None] * 6)
    assert _asked(frames) == [(23, "Transcribe")]  # at the first quiet frame, not two frames later
    # Without the level, the first unvoiced frame asks (as before).
    frames = _levels_frames(speech + [None] * 6)
    assert _asked(frames) == [(23, "Transcribe")]
    frames = _levels_frames(speech + [-57.0, -60.0, -58.0] + [None] * 6)
    assert _asked(frames) == [(23, "Transcribe")]


def test_a_quiet_frame_inside_speech_is_no_pause():
    # A stop consonant's closure: one quiet frame, then loud voice again. The early
    # transcript is dropped and the real end gets one of its own.
    speech: list[float | None] = [None] * 3 + [-22.0] * 20 + [-58.0] + [-22.0] * 10 + [None] * 6
    assert _asked(_levels_frames(speech)) == [(23, "Transcribe"), (24, "DiscardDraft"), (34, "Transcribe")]
    # A weak last consonant 20 dB down is speech, not silence: no early ask.
    speech = [None] * 3 + [-22.0] * 20 + [-42.0] + [None] * 6
    assert _asked(_levels_frames(speech)) == [(24, "Transcribe")]


def test_quiet_speech_going_on_is_heard_to_its_end():
    # The user trails off softly (30+ dB down) for half a second: the transcript asked
    # at its first frame is dropped once that outlasts the VAD's lag, and the real end
    # of the soft speech gets its own (asked once, not on every quiet frame).
    speech: list[float | None] = [None] * 3 + [-22.0] * 20 + [-55.0] * 16 + [None] * 6
    asked = _asked(_levels_frames(speech))
    assert asked == [(23, "Transcribe"), (28, "DiscardDraft"), (39, "Transcribe")]


def test_a_transcript_back_before_the_vad_lets_go_is_taken():
    # Asked at the first quiet frame, the transcript is back while the VAD still voices
    # the tail (it once went unheard, and the turn was never answered).
    tt = TurnTaker(TurnConfig(preempt_silence_ms=32), BargeInConfig(), FRAME_MS)
    levels: list[float | None] = [None] * 3 + [-22.0] * 20 + [-57.0, -60.0, -61.0] + [None] * 20
    asked = None
    for i, db in enumerate(levels):
        back = asked is not None and i == 24
        signals = ListenSignals(
            vad_prob=0.0 if db is None else 0.95,
            energy_db=-90.0 if db is None else db,
            final_text="What time is it?" if back else None,
            final_end_ms=asked.end_ms if back and asked else 0.0,
            eot_score=0.95 if back else None,
        )
        actions, events = tt.update(i * FRAME_MS, signals, AgentStatus())
        asked = next((a for a in actions if isinstance(a, Transcribe)), asked)
        if any(e.type == "turn.taken" for e in events):
            assert i < 40  # ~200 ms after the VAD's end, not never
            return
    raise AssertionError("the turn was never taken")


# The default profile's hold (``configs/default.toml``; the dataclass keeps it off).
HOLD = TurnConfig(hold_pause_ms=1400)


def _taken(tt: TurnTaker, levels: list[float | None], text: str, eot_score: float) -> tuple[int, float] | None:
    """Feed ``tt`` frames the VAD voices at ``levels`` (dBFS; None: silence); the final
    ``text`` comes back 4 frames after it is asked. The frame the turn is taken at and
    the end of speech it was taken for; None if never."""
    asked: tuple[Transcribe, int] | None = None
    for i, db in enumerate(levels):
        back = asked is not None and i == asked[1] + 4
        signals = ListenSignals(
            vad_prob=0.0 if db is None else 0.95,
            energy_db=-90.0 if db is None else db,
            final_text=text if back else None,
            final_end_ms=asked[0].end_ms if back and asked else 0.0,
            eot_score=eot_score if back else None,
        )
        actions, events = tt.update(i * FRAME_MS, signals, AgentStatus())
        asked = next(((a, i) for a in actions if isinstance(a, Transcribe)), asked)
        taken = next((e for e in events if e.type == "turn.taken"), None)
        if taken is not None:
            return i, taken.end_of_speech_ms
    return None


def test_the_pause_runs_from_the_first_quiet_frame_not_from_the_vads_tail():
    # The VAD voices three frames of the decay 35 dB under the speech after its real end
    # (frame 22): the pause, and the 200 ms a finished question waits, start at the
    # first of them, not two frames after the VAD lets go.
    tt = TurnTaker(TurnConfig(preempt_silence_ms=32, min_end_silence_ms=200), BargeInConfig(), FRAME_MS)
    levels: list[float | None] = [None] * 3 + [-22.0] * 20 + [-57.0, -60.0, -61.0] + [None] * 30
    taken = _taken(tt, levels, "What time is it?", 0.95)
    assert taken is not None
    frame, end_ms = taken
    assert end_ms == 24 * FRAME_MS  # the end of the first quiet frame
    assert frame == 30  # 200 ms after it (the VAD's own end, 26 * 32 ms, would take it at 32)


def test_a_blip_in_the_pause_neither_restarts_it_nor_lets_the_turn_be_taken_inside_it():
    # A statement is held 1.4 s. 600 ms into the pause two voiced frames (a click, a
    # breath, the room) come and go without becoming speech: the hold still runs from
    # the end of the words.
    speech: list[float | None] = [None] * 3 + [-22.0] * 31
    blip = [None] * 18 + [-24.0] * 2
    tt = TurnTaker(HOLD, BargeInConfig(), FRAME_MS)
    taken = _taken(tt, speech + blip + [None] * 60, "It happened twice this week.", 0.9)
    assert taken is not None
    frame, end_ms = taken
    assert end_ms == 34 * FRAME_MS
    assert (frame + 1) * FRAME_MS - end_ms == pytest.approx(HOLD.hold_pause_ms, abs=FRAME_MS)
    # A finished question is answered at its short pause; voice that starts just then may
    # be the user going on: nothing is decided while it lasts, and it is answered as soon
    # as it dies without becoming speech.
    tt = TurnTaker(TurnConfig(preempt_silence_ms=32, min_end_silence_ms=200), BargeInConfig(), FRAME_MS)
    taken = _taken(tt, speech + [None] * 5 + [-24.0] * 2 + [None] * 20, "What time is it?", 0.95)
    assert taken is not None
    frame, end_ms = taken
    assert end_ms == 34 * FRAME_MS
    assert frame == 34 + 5 + 2 + 1  # at the frame its two-frame hangover ends


def _turn_taken_after_parts(parts: list[tuple[str, int]], eot_score: float) -> float | None:
    """The user speaks parts of 1 s, each followed by its pause (frames); each part's
    final transcript (the whole turn so far) comes back 4 frames into its pause with
    ``eot_score``. Silence (ms) after the last part's speech at which the turn is taken."""
    tt = TurnTaker(HOLD, BargeInConfig(), FRAME_MS)
    frames: list[str | None] = [None] * 3
    for text, pause in parts:
        frames += [text] * 31 + [None] * pause
    requested = None
    words_so_far = ""
    last_voice = 0
    for i, part in enumerate(frames):
        if part is not None:
            words_so_far, last_voice = part, i
        final = words_so_far if requested is not None and i == requested[1] + 4 else None
        signals = heard(part is not None, final, requested, eot_score=eot_score)
        actions, events = tt.update(i * FRAME_MS, signals, AgentStatus())
        for a in actions:
            if isinstance(a, Transcribe):
                requested = (a, i)
        if any(e.type == "turn.taken" for e in events):
            return (i + 1 - (last_voice + 1)) * FRAME_MS
    return None


def test_a_finished_statement_waits_longer_than_people_pause_between_sentences():
    # "All circuits are busy now." tells, it does not ask: a story may go on after ~1 s.
    taken = _turn_taken_after_parts([("All circuits are busy now.", 80)], 0.9)
    assert taken is not None and taken >= HOLD.hold_pause_ms
    # A finished request or question is still answered at a short pause.
    taken = _turn_taken_after_parts([("Tell me a fun fact about octopuses.", 80)], 0.9)
    assert taken is not None and taken < 500


def test_a_number_read_in_groups_waits_for_the_next_group():
    taken = _turn_taken_after_parts([("Can you call 555", 80)], 0.9)
    assert taken is None or taken >= HOLD.hold_pause_ms


def test_after_going_on_from_a_finished_sentence_a_statement_waits_and_a_question_does_not():
    # The user went on after a sentence that sounded finished, 0.7 s in: they are
    # narrating, and the next finished statement is not yet the end of the turn ...
    narrated = _turn_taken_after_parts(
        [("My flight was cancelled.", 22), ("My flight was cancelled. We had to wait all day.", 80)], 0.9
    )
    assert narrated is not None and narrated >= HOLD.hold_pause_ms
    # ... but a question they end it with is put to the agent: answered at the short pause.
    asked = _turn_taken_after_parts(
        [("My flight was cancelled.", 22), ("My flight was cancelled. Why does that happen?", 80)], 0.9
    )
    assert asked is not None and asked < 500


def test_going_on_after_a_finished_question_is_not_narrating():
    # "What is the best time of year? [pause] To visit Japan.": the user says more about
    # their question; its end is answered at the short pause, not held as a story.
    taken = _turn_taken_after_parts(
        [("What would be the best time of year?", 22), ("What would be the best time of year? To visit Japan.", 80)],
        0.9,
    )
    assert taken is not None and taken < 500
    # After a finished statement, the same going on is narrating: held.
    held = _turn_taken_after_parts(
        [("We want to see Japan.", 22), ("We want to see Japan. In the spring.", 80)], 0.9
    )
    assert held is not None and held >= HOLD.hold_pause_ms


def test_what_a_turn_asks_and_what_may_go_on():
    from duplex.policy.end_of_turn import TurnContext

    for asking in (
        "Why is the sky blue",
        "Give me a tip for staying focused.",
        "I need ideas for dinner.",
        "What's the weather like in Paris",  # an interrogative's contraction asks too
        "How's the traffic this morning.",
    ):
        assert not TurnContext.of(asking).may_go_on, asking
    assert not TurnContext.of("Do you know a good bakery.").may_go_on  # a question, whatever its mark
    for telling in ("All circuits are busy now.", "The conference is now locked.", "Do listen to it."):
        assert TurnContext.of(telling).may_go_on, telling
    # A turn that cut the agent off is addressed to it, whatever its form.
    assert not TurnContext.of("No wait, I meant something else entirely.", interrupting=True).may_go_on
    # A number read in groups may go on, even inside a request.
    assert TurnContext.of("My number is 555 123").may_go_on
    # Narrating holds a finished statement, but not a question put to the agent, nor a
    # turn that cut the agent off (the standard set's interruptions waited 1.4 s for it).
    assert TurnContext.of("And then the bus left without us.", narrating=True).may_go_on
    assert not TurnContext.of("Sorry to interrupt, but how do I boil an egg?", narrating=True).may_go_on
    assert not TurnContext.of("actually never mind that what time is it", narrating=True, interrupting=True).may_go_on
    # Only a statement's form holds it (a look at its other readings may find a question);
    # a story under way or a number going on holds it whatever it reads.
    assert TurnContext.of("All circuits are busy now.").held_for_form
    assert not TurnContext.of("What time is it?").held_for_form
    assert not TurnContext.of("And then the bus left without us.", narrating=True).held_for_form
    assert not TurnContext.of("My number is 555 123").held_for_form
