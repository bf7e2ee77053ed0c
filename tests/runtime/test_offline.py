"""The one offline driver (``duplex.runtime.offline``): frames from a source, each
tick's result to the caller, and one tail rule, on the scripted (fake) cascade."""

from __future__ import annotations

import math

import numpy as np
import pytest

from duplex.models.scripted import scripted_model
from duplex.runtime.offline import NO_TAIL, AudioFrames, TailRule, Tick, drive
from duplex.runtime.runtime import Runtime

from conftest import silence, tone

FRAME = 512  # samples of the scripted profile's 32 ms frame at 16 kHz
FRAME_MS = 32.0


class _Source:
    """Silence frames: ``frames`` of them count as user audio, and more can be added."""

    def __init__(self, frames: int) -> None:
        self.left = frames
        self.asked = 0

    def has_more(self) -> bool:
        return self.left > 0

    def next_frame(self) -> np.ndarray:
        self.asked += 1
        self.left -= 1
        return np.zeros(FRAME, np.float32)


@pytest.fixture
def runtime(scripted_config):
    rt = Runtime(scripted_config, model=scripted_model(scripted_config, script=["Hello there."]), clock="offline")
    yield rt
    rt.close()


def test_audio_frames_pad_the_last_frame_then_give_silence():
    audio = np.ones(FRAME * 2 + 10, np.float32)
    src = AudioFrames(audio, FRAME)
    assert src.total == 3
    frames = []
    while src.has_more():
        frames.append(src.next_frame())
    assert len(frames) == 3 and all(len(f) == FRAME for f in frames)
    assert frames[2][:10].tolist() == [1.0] * 10 and not frames[2][10:].any()
    assert not src.next_frame().any() and not src.has_more()


def test_without_a_tail_the_run_ends_with_the_source(runtime):
    s = runtime.open_session()
    assert drive(s, _Source(7), NO_TAIL) == 7
    assert s.t_ms == 7 * FRAME_MS


def test_the_tail_ends_once_the_agent_has_been_idle_long_enough(runtime):
    s = runtime.open_session()
    # Nothing said: the agent is idle from the first tail tick on; the tail counts from
    # the tick that consumed the last user audio, that one included.
    ticks = drive(s, _Source(5), TailRule(idle_ms=320.0, max_ms=10_000.0))
    assert ticks == 5 + math.ceil(320.0 / FRAME_MS) - 1


def test_the_tail_waits_at_least_its_minimum(runtime):
    s = runtime.open_session()
    ticks = drive(s, _Source(5), TailRule(idle_ms=64.0, min_ms=960.0, max_ms=10_000.0))
    assert ticks == 5 + math.ceil(960.0 / FRAME_MS) - 1


def test_the_tail_is_bounded_whatever_the_agent_does(runtime):
    s = runtime.open_session()
    ticks = drive(s, _Source(5), TailRule(idle_ms=math.inf, max_ms=640.0))
    assert ticks == 5 + math.ceil(640.0 / FRAME_MS) - 1


def test_each_tick_hands_its_frames_and_events_to_the_caller(runtime):
    s = runtime.open_session()
    seen: list[Tick] = []
    audio = np.concatenate([silence(0.3), tone(1.2), silence(0.3)])
    runtime.run_offline(s, audio, tail_s=5.0, on_tick=seen.append)
    assert [t.index for t in seen] == list(range(len(seen)))
    assert [t.t_ms for t in seen] == [i * FRAME_MS for i in range(len(seen))]
    assert all(len(t.input) == FRAME for t in seen)
    assert np.array_equal(np.concatenate([t.input for t in seen])[: len(audio)], audio)
    types = [e.type for t in seen for e in t.events]
    assert types[0] == "session.started"
    assert "turn.taken" in types and "agent.audio.done" in types
    # The events went to the caller, not back to the session's queue.
    assert s.take_events() == []


def test_without_a_caller_the_events_stay_queued_in_the_session(runtime):
    s = runtime.open_session()
    runtime.run_offline(s, silence(0.32), tail_s=0)
    assert [e.type for e in s.take_events()] == ["session.started"]


def test_user_audio_scheduled_in_the_tail_restarts_it(runtime):
    s = runtime.open_session()
    src = _Source(3)

    def on_tick(tick: Tick) -> None:
        if tick.index == 6:  # an insert the agent's events would have scheduled
            src.left = 4

    ticks = drive(s, src, TailRule(idle_ms=math.inf, max_ms=320.0), on_tick)
    # 3 frames, a tail cut short at tick 6, 4 more frames, then a whole tail.
    assert src.asked == ticks == 7 + 4 + math.ceil(320.0 / FRAME_MS) - 1


def test_a_response_that_finishes_in_the_tail_ends_the_run_early(runtime):
    s = runtime.open_session()
    audio = np.concatenate([silence(0.3), tone(1.2), silence(0.3)])
    done: list[float] = []

    def on_tick(tick: Tick) -> None:
        done.extend(e.t_ms for e in tick.events if e.type == "agent.audio.done")

    ticks = runtime.run_offline(s, audio, tail_s=15.0, on_tick=on_tick)
    assert done, "the agent answered"
    # About 500 ms (the idle wait) after the answer ended, well before the 15 s bound.
    assert done[-1] + 500.0 - 2 * FRAME_MS <= s.t_ms <= done[-1] + 500.0 + 2 * FRAME_MS
    assert ticks * FRAME_MS < len(audio) / 16.0 + 15_000.0


def test_run_offline_needs_the_offline_clock(scripted_config):
    rt = Runtime(scripted_config, model=scripted_model(scripted_config), clock="realtime")
    try:
        s = rt.open_session()
        with pytest.raises(RuntimeError, match="clock='offline'"):
            rt.run_offline(s, silence(0.1))
    finally:
        rt.close()
