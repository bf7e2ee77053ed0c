"""The TDM engine and sessions, on the scripted (fake) cascade."""

from __future__ import annotations

import gc
import time

import numpy as np
import psutil
import pytest

from duplex.config import config_from_dict
from duplex.models.cascade import CascadeModel, CascadeStages
from duplex.models.scripted import EnergyVad, ScriptedAsr, ScriptedLlm, ToneTts, scripted_model
from duplex.models.stages import Transcript
from duplex.runtime.runtime import Runtime

from conftest import silence, tone


def _types(session) -> list[str]:
    return [e.type for e in session.channel.drain() if e.type != "agent.audio"]


class _Recorder:
    """Wraps a model session and records the order of the engine's calls."""

    def __init__(self, inner, log):
        self.inner, self.log = inner, log

    def listen(self, frame, t_ms):
        self.log.append(("listen", t_ms))
        return self.inner.listen(frame, t_ms)

    def act(self, actions, t_ms):
        self.log.append(("act", t_ms))
        return self.inner.act(actions, t_ms)

    def think(self, t_ms):
        self.log.append(("think", t_ms))
        return self.inner.think(t_ms)

    def speak(self, t_ms):
        self.log.append(("speak", t_ms))
        return self.inner.speak(t_ms)

    def status(self):
        return self.inner.status()

    def close(self):
        self.inner.close()


def test_each_tick_runs_listen_decide_think_speak_in_order(scripted_config):
    model = scripted_model(scripted_config)
    log: list[tuple[str, float]] = []
    orig = model.open_session
    model.open_session = lambda sid, make_lane: _Recorder(orig(sid, make_lane), log)
    rt = Runtime(scripted_config, model=model, clock="offline")
    s = rt.open_session()
    rt.run_offline(s, np.zeros(512 * 5, np.float32), tail_s=0)
    assert [name for name, _ in log] == ["listen", "act", "think", "speak"] * 5
    assert [t for _, t in log[::4]] == [0.0, 32.0, 64.0, 96.0, 128.0]


def test_spoken_turn_gets_an_answer_with_stream_time_events(scripted_config):
    model = scripted_model(scripted_config, script=["What time is it?"])
    rt = Runtime(scripted_config, model=model, clock="offline")
    s = rt.open_session()
    rt.run_offline(s, np.concatenate([silence(0.5), tone(1.0), silence(2.0)]))
    events = [e for e in s.channel.drain() if e.type != "agent.audio"]
    types = [e.type for e in events]
    for expected in ["user.speech_started", "user.speech_stopped", "user.transcript.final", "turn.taken", "agent.audio.started", "agent.audio.done"]:
        assert expected in types
    started = next(e for e in events if e.type == "user.speech_started")
    stopped = next(e for e in events if e.type == "user.speech_stopped")
    assert started.t_ms == pytest.approx(500, abs=64)
    assert stopped.t_ms == pytest.approx(1500, abs=64)
    audio = next(e for e in events if e.type == "agent.audio.started")
    assert audio.latency_ms > 0 and audio.t_ms > stopped.t_ms
    # The question reached the LLM with the system prompt first.
    req = model.llms[0].requests[-1]
    assert req[0].role == "system" and req[-1].content == "What time is it?"


def test_mid_sentence_pause_is_not_a_turn_end(scripted_config):
    model = scripted_model(scripted_config, script=["I would like to book a flight to"])
    rt = Runtime(scripted_config, model=model, clock="offline")
    s = rt.open_session()
    # 900 ms pause after an unfinished phrase: below max_end_silence (1400 ms).
    rt.run_offline(s, np.concatenate([silence(0.3), tone(1.2), silence(0.9)]), tail_s=0)
    assert "turn.taken" not in _types(s)


def _two_session_model(config, slow_delay_s):
    vads = iter([EnergyVad(delay_s=slow_delay_s), EnergyVad()])
    return CascadeModel(
        config,
        CascadeStages(vad=lambda: next(vads), asr=lambda: ScriptedAsr(), llm=ScriptedLlm, tts=ToneTts),
    )


def test_a_stalled_session_does_not_slow_another():
    cfg = config_from_dict({"models": {"kind": "scripted"}})
    model = _two_session_model(cfg, slow_delay_s=0.1)  # 100 ms of work per 32 ms frame
    rt = Runtime(cfg, model=model, clock="realtime")
    try:
        slow, fast = rt.open_session("slow"), rt.open_session("fast")
        wall = 1.6
        t0 = time.monotonic()
        while time.monotonic() - t0 < wall:
            for s in (slow, fast):
                s.push_audio(np.zeros(512, np.float32))
            time.sleep(0.032)
        elapsed = time.monotonic() - t0
        expected_ticks = elapsed * 1000 / 32
        assert fast.ticks >= 0.85 * expected_ticks
        assert slow.ticks < 0.5 * expected_ticks
        # A slow neighbour that leaked into the fast session would overrun nearly every
        # one of its ticks; a busy CI host may preempt one or two, which is not a leak.
        assert fast.metrics.overruns <= 0.1 * fast.ticks
        assert float(np.median(fast.metrics.tick_ms.values)) < 0.25 * fast.metrics.budget_ms
        stall_types = {e.stage for e in slow.channel.drain() if e.type == "stall"}
        assert {"tick", "session"} <= stall_types
        # The fast session never fell behind its frames.
        assert not [e for e in fast.channel.drain() if e.type == "stall" and e.stage == "session"]
    finally:
        rt.close()


def test_offline_and_paced_runs_agree_within_a_frame_plus_compute():
    cfg = config_from_dict({"models": {"kind": "scripted"}})
    delays = {"asr": 0.06, "llm": 0.01, "tts": 0.05}
    audio = np.concatenate([silence(0.4), tone(1.0), silence(2.5)])

    def relevant(events):
        keep = ("user.speech_started", "user.speech_stopped", "turn.taken", "agent.audio.started", "agent.audio.done")
        return [(e.type, e.t_ms) for e in events if e.type in keep]

    off_rt = Runtime(cfg, model=scripted_model(cfg, script=["Hello there."], delays=delays), clock="offline")
    off = off_rt.open_session()
    off_rt.run_offline(off, audio)
    offline_events = relevant(off.channel.drain())

    rt_rt = Runtime(cfg, model=scripted_model(cfg, script=["Hello there."], delays=delays), clock="realtime")
    try:
        live = rt_rt.open_session()
        padded = np.concatenate([audio, silence(2.5)])
        t0 = time.monotonic()
        for i in range(0, len(padded), 512):
            live.push_audio(padded[i : i + 512])
            due = t0 + (i + 512) / 16000
            time.sleep(max(0.0, due - time.monotonic()))
        time.sleep(0.2)
        live_events = relevant(live.channel.drain())
    finally:
        rt_rt.close()

    assert [t for t, _ in offline_events] == [t for t, _ in live_events]
    compute_ms = 1000 * (delays["asr"] + delays["tts"] + 12 * delays["llm"])
    for (kind, t_off), (_, t_live) in zip(offline_events, live_events, strict=True):
        assert abs(t_off - t_live) <= 32 + compute_ms, (kind, t_off, t_live)


@pytest.mark.slow
def test_one_hour_offline_run_keeps_memory_flat():
    cfg = config_from_dict({"models": {"kind": "scripted"}})
    rt = Runtime(cfg, model=scripted_model(cfg), clock="offline")
    s = rt.open_session()
    period = np.concatenate([tone(1.5), silence(8.5)])  # a turn every 10 s
    frames = [period[i : i + 512] for i in range(0, len(period) - 511, 512)]
    proc = psutil.Process()
    ticks_per_hour = 3600 * 1000 // 32
    rss_early = 0
    turns = 0
    for i in range(ticks_per_hour):
        s.step(frames[i % len(frames)])
        if i % 256 == 0:
            turns += sum(1 for e in s.channel.drain() if e.type == "turn.taken")
        if i == ticks_per_hour // 12:  # after 5 minutes: warmed up
            gc.collect()
            rss_early = proc.memory_info().rss
    gc.collect()
    growth_mb = (proc.memory_info().rss - rss_early) / 1e6
    assert s.t_ms >= 3600 * 1000 - 32
    assert turns > 300
    assert growth_mb < 20, f"RSS grew {growth_mb:.1f} MB over 55 minutes"


def test_push_audio_resamples_a_declared_rate_and_rejects_stereo(scripted_config):
    from duplex.errors import AudioFormatError, SessionClosed

    rt = Runtime(scripted_config, model=scripted_model(scripted_config), clock="offline")
    s = rt.open_session()
    s.push_audio(np.zeros(4800, np.float32), sample_rate=48000)
    assert abs(s.input_backlog() - 1600) < 200  # the HQ filter holds back a few ms
    with pytest.raises(AudioFormatError, match="mono"):
        s.push_audio(np.zeros((100, 2), np.float32))
    rt.close_session(s)
    with pytest.raises(SessionClosed):
        s.push_audio(np.zeros(10, np.float32))


def test_split_clauses_first_clause_is_short_and_does_not_end_on_a_weak_word():
    from duplex.models.cascade import split_clauses

    def pieces(text: str) -> list[str]:
        words = text.split(" ")
        return [words[0]] + [" " + w for w in words[1:]]

    clauses = list(split_clauses(iter(pieces("The capital of France is Paris and it is lovely."))))
    assert clauses[0] == "The capital of France"  # not "The capital of"
    assert " ".join(clauses) == "The capital of France is Paris and it is lovely."
    assert list(split_clauses(iter(pieces("Sure, here is one.")))) == ["Sure,", "here is one."]
    assert list(split_clauses(iter(pieces("Yes.")))) == ["Yes."]
    # A first clause of only weak words is still cut, at the latest after six words.
    first = next(split_clauses(iter(pieces("If it is to be so then it will be done by them"))))
    assert len(first.split()) <= 6


def test_trim_seam_shortens_silence_between_clauses_and_moves_word_timings():
    from duplex.models.cascade import trim_seam

    rate = 24000
    tone = 0.3 * np.sin(np.arange(rate // 2) * 2 * np.pi * 220 / rate).astype(np.float32)
    audio = np.concatenate([np.zeros(rate // 5, np.float32), tone, np.zeros(rate // 5, np.float32)])
    words = [("hello", rate // 5, rate // 5 + rate // 2)]
    kept, moved = trim_seam(audio, words, rate, lead=True, tail=True)
    assert len(kept) < rate // 2 + rate // 10  # 0.2 s either side became about 0.03 s
    assert moved[0][1] <= int(0.04 * rate) and moved[0][2] - moved[0][1] == rate // 2
    same, _ = trim_seam(audio, words, rate, lead=False, tail=False)
    assert len(same) == len(audio)


def test_background_lane_runs_at_lower_priority():
    import os
    import threading

    from duplex.runtime.lanes import ThreadLane

    def nice_of_worker():
        yield os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    results = {}
    for background in (False, True):
        lane = ThreadLane("t", lambda: 0.0, background=background)
        lane.submit("nice", nice_of_worker, 0.0)
        deadline = time.monotonic() + 5
        got = []
        while not got and time.monotonic() < deadline:
            got = lane.poll(0.0)
            time.sleep(0.01)
        lane.close()
        results[background] = got[0].item
    assert results[True] > results[False]


def test_partials_judging_a_barge_in_hear_only_the_burst(scripted_config):
    """Sound that never stops (the agent's own echo, then the user) must not make the
    partial transcript of a barge-in reach back into the earlier stretch."""
    from duplex.models.actions import PauseOutput
    from duplex.runtime.lanes import InlineLane

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


def _misheard_question_model(config, second_look):
    heard = ScriptedAsr(["What is the capital and"])  # the fast reading: a fragment
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
        eou=lambda: _QuestionEou(),
        asr_second_look=(lambda: second_look) if second_look is not None else None,
    )
    return CascadeModel(config, stages), llms


def _turn_events(config, model):
    rt = Runtime(config, model=model, clock="offline")
    s = rt.open_session()
    rt.run_offline(s, np.concatenate([silence(0.3), tone(1.2), silence(3.5)]), tail_s=0)
    return [e for e in s.channel.drain() if e.type != "agent.audio"]


def test_a_final_that_reads_as_unfinished_gets_a_second_look(scripted_config):
    model, llms = _misheard_question_model(scripted_config, _Looks("What is the capital of France?"))
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
    assert [e.text for e in events if e.type == "user.transcript.final"] == ["What is the capital of France?"]
    taken = [e for e in events if e.type == "turn.taken"]
    assert [e.text for e in taken] == ["What is the capital of France?"]
    assert taken[0].t_ms - taken[0].end_of_speech_ms < 600
    # The draft was redone on each reading, and the answer is to the last.
    assert [r[-1].content for r in llms[0].requests][-1] == "What is the capital of France?"
    assert len([e for e in events if e.type == "agent.audio.started"]) == 1


def test_without_a_second_look_the_misreading_waits_a_fragments_pause(scripted_config):
    model, llms = _misheard_question_model(scripted_config, None)
    events = _turn_events(scripted_config, model)

    assert [e.text for e in events if e.type == "user.transcript.final"] == ["What is the capital and"]
    taken = [e for e in events if e.type == "turn.taken"]
    assert len(taken) == 1 and taken[0].t_ms - taken[0].end_of_speech_ms > 2000


def test_a_second_look_that_keeps_the_words_still_answers_them(scripted_config):
    # The draft pauses while the recognizer looks again; the look finds nothing better,
    # so the draft starts again from the same words and is spoken once the turn ends.
    model, llms = _misheard_question_model(scripted_config, _Looks("What is the capital and"))
    events = _turn_events(scripted_config, model)

    assert [e.text for e in events if e.type == "user.transcript.final"] == ["What is the capital and"]
    taken = [e for e in events if e.type == "turn.taken"]
    assert len(taken) == 1 and taken[0].text == "What is the capital and"
    assert [r[-1].content for r in llms[0].requests] == ["What is the capital and"]
    assert len([e for e in events if e.type == "agent.audio.started"]) == 1


def test_a_draft_computes_one_token_a_step_so_a_cancel_stops_it_within_a_token(scripted_config):
    from duplex.models.actions import TakeTurn
    from duplex.models.scripted import ScriptedLlm
    from duplex.runtime.lanes import InlineLane

    pulled: list[str] = []

    class CountingLlm(ScriptedLlm):
        def stream(self, messages, *, max_tokens):
            for piece in super().stream(messages, max_tokens=max_tokens):
                pulled.append(piece)
                yield piece

    llm = CountingLlm("The capital of France is Paris, a city of art and light and long walks by the river.")
    stages = CascadeStages(
        vad=lambda: EnergyVad(), asr=lambda: ScriptedAsr(), llm=lambda: llm, tts=lambda: ToneTts(16000)
    )
    session = CascadeModel(scripted_config, stages).open_session("t", lambda name, background=False: InlineLane(name))
    session.act([TakeTurn("Where is Paris?", 0.0)], 0.0)
    job = session._playing.job  # the answer's lane job, stepped here by hand
    kinds = []
    while not kinds or kinds[-1] != "text":
        produced, item = job.step()
        assert produced
        kinds.append(item[0])
    # "The capital of" may not end a clause; "France" does once the next word begins.
    assert kinds == ["pending"] * 4 + ["text"]
    assert pulled == ["The", " capital", " of", " France", " is"]
    session.close()


def test_a_final_cancelled_after_its_read_leaves_no_words_for_the_next(scripted_config):
    # In a real-time run the worker may finish reading a final the turn-taker has just
    # withdrawn (the voice came back). Those words must not become the start of the
    # turn's next final: only a final the tick receives is recorded.
    from duplex.models.actions import DiscardDraft, Transcribe
    from duplex.runtime.lanes import InlineLane

    stages = CascadeStages(
        vad=lambda: EnergyVad(), asr=lambda: ScriptedAsr(["How far away is the moon?"]),
        llm=lambda: ScriptedLlm(), tts=lambda: ToneTts(16000),
    )
    session = CascadeModel(scripted_config, stages).open_session("t", lambda name, background=False: InlineLane(name))
    audio, t = np.concatenate([tone(1.0), silence(0.2)]), 0.0
    for i in range(0, len(audio) - session.frame + 1, session.frame):
        session.listen(audio[i : i + session.frame], t)
        t += scripted_config.audio.frame_ms
    session.act([Transcribe(0.0, 900.0, draft=True)], t)
    produced, item = session._final_job.step()  # the worker reads it ...
    assert produced and item[0] == "final"
    session.act([DiscardDraft()], t)  # ... as the turn-taker withdraws it
    assert session._segments == []

    session.act([Transcribe(0.0, 1000.0, draft=True)], t)
    finals = []
    for _ in range(10):
        heard = session.listen(np.zeros(session.frame, np.float32), t)
        finals += [e.text for e in heard.events if e.type == "user.transcript.final"]
        t += scripted_config.audio.frame_ms
    assert finals == ["How far away is the moon?"]
    assert session._segments == [(0.0, 1000.0, "How far away is the moon?")]
    session.close()
