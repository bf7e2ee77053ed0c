"""The cascade's hearing: partial transcripts, finals, and the second and wider looks."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from duplex.models.actions import DiscardDraft, PauseOutput, Transcribe
from duplex.models.cascade import CascadeModel, CascadeStages
from duplex.models.cascade.results import Final
from duplex.models.scripted import EnergyVad, ScriptedAsr, ScriptedLlm, ToneTts, scripted_model
from duplex.models.stages import Transcript
from duplex.runtime.lanes import InlineLane
from duplex.runtime.runtime import Runtime

from conftest import silence, tone


def test_partials_judging_a_barge_in_hear_only_the_burst(scripted_config):
    """Sound that never stops (the agent's own echo, then the user) must not make the
    partial transcript of a barge-in reach back into the earlier stretch."""
    model = scripted_model(scripted_config)
    session = model.open_session("t", lambda name, background=False: InlineLane(name))
    frame_ms = scripted_config.audio.frame_ms
    n = scripted_config.frame_samples
    sound = tone(6.0)
    partials: list[tuple[float, int]] = []
    pause_at = 4000.0
    for i in range(len(sound) // n):
        t = i * frame_ms
        if t == pause_at:
            session.act([PauseOutput()], t)
        heard = session.listen(sound[i * n : (i + 1) * n], t)
        if heard.partial_text:
            partials.append((t, int(heard.partial_text.split()[2])))
    before = [ms for t, ms in partials if t < pause_at]
    after = [ms for t, ms in partials if t > pause_at]
    assert before and max(before) > 2500  # one long stretch: partials cover all of it
    assert after and max(after) <= (6000 - pause_at) + 300  # after the pause: the burst only
    session.close()


class _QuestionEou:
    """A fake end-of-utterance model: a question is a finished turn, anything else is not."""

    def end_score(self, text: str) -> float:
        return 0.95 if text.rstrip().endswith("?") else 0.1


class _Looks:
    """A second look whose looks read these words, one a look (``asr_rescore.Looker``)."""

    def __init__(self, *readings: str) -> None:
        self.readings = readings
        self.looked = 0

    def looks(self, audio):
        for text in self.readings:
            self.looked += 1
            yield Transcript(text, 5.0)

    def other_reading(self, audio, words, min_gain):
        """The first look's reading, if it is other words (the LM's gain is not faked)."""
        again = next(self.looks(audio), None)
        return again if again is not None and again.text != words else None


class _SentenceEou:
    """A fake end-of-utterance model: a sentence with its full stop or question mark is a
    finished turn, anything else is not."""

    def end_score(self, text: str) -> float:
        return 0.95 if text.rstrip().endswith(("?", ".")) else 0.1


def _misheard_question_model(config, second_look, heard_text="What is the capital and", eou=_QuestionEou):
    heard = ScriptedAsr([heard_text])  # the fast reading (a fragment, unless told)
    tts = ToneTts(16000)
    llms: list[ScriptedLlm] = []

    def make_llm() -> ScriptedLlm:
        llms.append(ScriptedLlm())
        return llms[-1]

    stages = CascadeStages(
        vad=lambda: EnergyVad(),
        asr=lambda: heard,
        llm=make_llm,
        tts=lambda: tts,
        asr_partial=lambda: ScriptedAsr(),
        eou=lambda: eou(),
        asr_second_look=(lambda: second_look) if second_look is not None else None,
    )
    return CascadeModel.from_config(config, stages), llms


def _turn_events(config, model):
    rt = Runtime(config, model=model, clock="offline")
    s = rt.open_session()
    rt.run_offline(s, np.concatenate([silence(0.3), tone(1.2), silence(3.5)]), tail_s=0)
    return [e for e in s.channel.drain() if e.type != "agent.audio"]


def test_a_final_that_reads_as_unfinished_gets_a_second_look(scripted_config):
    model, llms = _misheard_question_model(
        scripted_config, _Looks("What is the capital of France?")
    )
    events = _turn_events(scripted_config, model)

    # One final, with the better reading; the turn is taken after a question's short pause.
    finals = [e.text for e in events if e.type == "user.transcript.final"]
    assert finals == ["What is the capital of France?"]
    taken = [e for e in events if e.type == "turn.taken"]
    assert [e.text for e in taken] == ["What is the capital of France?"]
    assert taken[0].t_ms - taken[0].end_of_speech_ms < 600
    # The draft started on the first reading was redone on the second.
    assert llms[0].requests[-1][-1].content == "What is the capital of France?"
    assert any(e.type == "agent.audio.started" for e in events)


def test_a_wider_look_follows_a_first_look_that_still_reads_unfinished(scripted_config):
    looks = _Looks("What is the capital and France", "What is the capital of France?", "never read")
    model, llms = _misheard_question_model(scripted_config, looks)
    events = _turn_events(scripted_config, model)

    assert looks.looked == 2  # the question reads as finished: no third look
    assert [e.text for e in events if e.type == "user.transcript.final"] == [
        "What is the capital of France?"
    ]
    taken = [e for e in events if e.type == "turn.taken"]
    assert [e.text for e in taken] == ["What is the capital of France?"]
    assert taken[0].t_ms - taken[0].end_of_speech_ms < 600
    # The draft was redone on each reading, and the answer is to the last.
    assert [r[-1].content for r in llms[0].requests][-1] == "What is the capital of France?"
    assert len([e for e in events if e.type == "agent.audio.started"]) == 1


def test_without_a_second_look_the_misreading_waits_a_fragments_pause(scripted_config):
    model, llms = _misheard_question_model(scripted_config, None)
    events = _turn_events(scripted_config, model)

    assert [e.text for e in events if e.type == "user.transcript.final"] == [
        "What is the capital and"
    ]
    taken = [e for e in events if e.type == "turn.taken"]
    assert len(taken) == 1 and taken[0].t_ms - taken[0].end_of_speech_ms > 2000


def test_a_second_look_that_keeps_the_words_still_answers_them(scripted_config):
    # The draft pauses while the recognizer looks again; the look finds nothing better,
    # so the draft starts again from the same words and is spoken once the turn ends.
    model, llms = _misheard_question_model(scripted_config, _Looks("What is the capital and"))
    events = _turn_events(scripted_config, model)

    assert [e.text for e in events if e.type == "user.transcript.final"] == [
        "What is the capital and"
    ]
    taken = [e for e in events if e.type == "turn.taken"]
    assert len(taken) == 1 and taken[0].text == "What is the capital and"
    assert [r[-1].content for r in llms[0].requests] == ["What is the capital and"]
    assert len([e for e in events if e.type == "agent.audio.started"]) == 1


def _held_turn(config, heard_text, *readings):
    """One turn whose fast reading is ``heard_text``, with a turn-taker that holds a
    finished statement 1.4 s (as the default does) and looks that read ``readings``.
    Returns the config used, the looks, the LLMs and the turn's events."""
    config = replace(config, turn=replace(config.turn, hold_pause_ms=1400))
    looks = _Looks(*readings)
    model, llms = _misheard_question_model(config, looks, heard_text, _SentenceEou)
    return config, looks, llms, _turn_events(config, model)


def test_a_statement_held_for_its_form_gets_a_look_that_finds_the_question(scripted_config):
    # The fast reading is a finished statement: the turn-taker would hold it 1.4 s (a
    # statement may go on) and asks for a look meanwhile. The look reads the question.
    scripted_config, looks, llms, events = _held_turn(
        scripted_config, "You wrote Romino and do it yet.", "Who wrote Romeo and Juliet?", "never read"
    )

    assert looks.looked == 1  # one look, asked by the turn-taker
    finals = [e for e in events if e.type == "user.transcript.final"]
    # Both readings, for the same span: the last one counts.
    assert [e.text for e in finals] == ["You wrote Romino and do it yet.", "Who wrote Romeo and Juliet?"]
    assert finals[0].end_ms == finals[1].end_ms
    taken = [e for e in events if e.type == "turn.taken"]
    assert [e.text for e in taken] == ["Who wrote Romeo and Juliet?"]
    assert taken[0].t_ms - taken[0].end_of_speech_ms < scripted_config.turn.hold_pause_ms - 400
    assert llms[0].requests[-1][-1].content == "Who wrote Romeo and Juliet?"
    assert len([e for e in events if e.type == "agent.audio.started"]) == 1


def test_a_look_that_keeps_a_statement_leaves_it_held(scripted_config):
    scripted_config, looks, llms, events = _held_turn(scripted_config, "I went to the shop.", "I went to the shop.")

    assert looks.looked == 1
    assert [e.text for e in events if e.type == "user.transcript.final"] == ["I went to the shop."]
    taken = [e for e in events if e.type == "turn.taken"]
    held_ms = scripted_config.turn.hold_pause_ms - scripted_config.audio.frame_ms  # event at the frame start
    assert len(taken) == 1 and taken[0].t_ms - taken[0].end_of_speech_ms >= held_ms
    # The draft was never redone: one request, on the words heard.
    assert [r[-1].content for r in llms[0].requests] == ["I went to the shop."]
    assert len([e for e in events if e.type == "agent.audio.started"]) == 1


def test_a_question_heard_as_one_gets_no_look(scripted_config):
    question = "What is the capital of France?"
    _, looks, _, events = _held_turn(scripted_config, question, question)

    assert looks.looked == 0
    taken = [e for e in events if e.type == "turn.taken"]
    assert len(taken) == 1 and taken[0].t_ms - taken[0].end_of_speech_ms < 600


def test_a_final_cancelled_after_its_read_leaves_no_words_for_the_next(scripted_config):
    # In a real-time run the worker may finish reading a final the turn-taker has just
    # withdrawn (the voice came back). Those words must not become the start of the
    # turn's next final: only a final the tick receives is recorded.
    stages = CascadeStages(
        vad=lambda: EnergyVad(),
        asr=lambda: ScriptedAsr(["How far away is the moon?"]),
        llm=lambda: ScriptedLlm(),
        tts=lambda: ToneTts(16000),
    )
    session = CascadeModel.from_config(scripted_config, stages).open_session(
        "t", lambda name, background=False: InlineLane(name)
    )
    frame = scripted_config.frame_samples
    audio, t = np.concatenate([tone(1.0), silence(0.2)]), 0.0
    for i in range(0, len(audio) - frame + 1, frame):
        session.listen(audio[i : i + frame], t)
        t += scripted_config.audio.frame_ms
    session.act([Transcribe(0.0, 900.0, draft=True)], t)
    job = session.hearing.final.job
    assert job is not None
    produced, item = job.step()  # the worker reads it ...
    assert produced and isinstance(item, Final)
    session.act([DiscardDraft()], t)  # ... as the turn-taker withdraws it
    assert session.hearing.final.segments == []

    session.act([Transcribe(0.0, 1000.0, draft=True)], t)
    finals = []
    for _ in range(10):
        heard = session.listen(np.zeros(frame, np.float32), t)
        finals += [e.text for e in heard.events if e.type == "user.transcript.final"]
        t += scripted_config.audio.frame_ms
    assert finals == ["How far away is the moon?"]
    assert session.hearing.final.segments == [(0.0, 1000.0, "How far away is the moon?")]
    session.close()


def test_a_short_gap_rereads_only_the_stretch_before_it_not_the_whole_turn(scripted_config):
    # A story: 1 s of speech, a 0.7 s pause, 0.5 s, a 0.2 s gap inside a phrase, 0.5 s.
    # The last final reads again the stretch the short gap cut (it needs its context),
    # and reuses the first one, which a real pause ended.
    stages = CascadeStages(
        vad=lambda: EnergyVad(),
        asr=lambda: ScriptedAsr(),  # "speech of N ms.": how much audio each read got
        llm=lambda: ScriptedLlm(),
        tts=lambda: ToneTts(16000),
    )
    session = CascadeModel.from_config(scripted_config, stages).open_session(
        "t", lambda name, background=False: InlineLane(name)
    )
    frame = scripted_config.frame_samples
    frame_ms = scripted_config.audio.frame_ms
    audio = np.concatenate([tone(1.0), silence(0.7), tone(0.5), silence(0.2), tone(0.5), silence(0.6)])
    asks = {1088.0: 1000.0, 2304.0: 2200.0, 3008.0: 2900.0}  # stream time of the ask: end of speech
    finals, t = [], 0.0
    for i in range(0, len(audio) - frame + 1, frame):
        heard = session.listen(audio[i : i + frame], t)
        finals += [e.text for e in heard.events if e.type == "user.transcript.final"]
        if t in asks:
            session.act([Transcribe(0.0, asks[t], draft=False)], t)
        t += frame_ms
    assert len(finals) == 3, finals
    segments = session.hearing.final.segments
    assert len(segments) == 2 and segments[0][0] == 0.0 and segments[1][0] > 1500, segments
    last_read_ms = int(finals[-1].split("speech of ")[-1].split(" ms")[0])
    assert last_read_ms < 1800  # the stretch from the real pause on, not the turn's 2.9 s
    session.close()
