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


def test_a_response_finishing_in_the_tail_ends_the_run_early(scripted_config):
    # The answer is still playing when the input ends: the tail ticks on until it has
    # played, then stops once the session has been idle for 500 ms, long before tail_s.
    # (Checking for idleness reads the model's status: a read that swallowed the
    # response's end would leave the turn-taker speaking until the tail ran out.)
    model = scripted_model(scripted_config, script=["What time is it?"])
    rt = Runtime(scripted_config, model=model, clock="offline")
    s = rt.open_session()
    audio = np.concatenate([silence(0.3), tone(1.0), silence(0.3)])
    rt.run_offline(s, audio, tail_s=15.0)
    events = [e for e in s.channel.drain() if e.type != "agent.audio"]
    done = [e for e in events if e.type == "agent.audio.done"]
    assert len(done) == 1 and not done[0].interrupted
    assert done[0].t_ms > 1000 * len(audio) / 16000  # it finished in the tail
    assert s.state.value == "listening" and s.idle()
    assert s.t_ms <= done[0].t_ms + 500 + 2 * scripted_config.audio.frame_ms


def test_mid_sentence_pause_is_not_a_turn_end(scripted_config):
    model = scripted_model(scripted_config, script=["I would like to book a flight to"])
    rt = Runtime(scripted_config, model=model, clock="offline")
    s = rt.open_session()
    # 900 ms pause after an unfinished phrase: below max_end_silence (1400 ms).
    rt.run_offline(s, np.concatenate([silence(0.3), tone(1.2), silence(0.9)]), tail_s=0)
    assert "turn.taken" not in _types(s)


def _two_session_model(config, slow_delay_s):
    vads = iter([EnergyVad(delay_s=slow_delay_s), EnergyVad()])
    return CascadeModel.from_config(
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
