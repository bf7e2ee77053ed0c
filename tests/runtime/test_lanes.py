"""Offline lanes: measured compute charged to stream time, on shared cores or not."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from duplex.runtime.clock import OfflineClock
from duplex.runtime.lanes import CpuShare, InlineLane


def _work(ms: float) -> Iterator[str]:
    time.sleep(ms / 1000.0)  # measured by the lane like any model's compute
    yield "done"


def _ready_times(parallel_jobs: int) -> list[float]:
    lanes = OfflineClock(parallel_jobs).session_lanes(lambda: 0.0)
    a, b = lanes("listen"), lanes("respond")
    a.submit("asr-final", lambda: _work(40), 100.0)
    b.submit("respond", lambda: _work(40), 100.0)
    ready = [r.ready_ms for lane in (a, b) for r in lane.poll(10_000.0)]
    return sorted(ready)


def test_lanes_on_shared_cores_take_turns() -> None:
    first, second = _ready_times(parallel_jobs=1)
    assert 140 <= first < 180
    assert second - first >= 40  # the second job waited for the first's cores


def test_lanes_on_cores_of_their_own_overlap() -> None:
    first, second = _ready_times(parallel_jobs=0)
    assert 140 <= first <= second < 180


def test_a_background_lane_does_not_hold_up_the_others() -> None:
    lanes = OfflineClock(1).session_lanes(lambda: 0.0)
    partial, final = lanes("partial", background=True), lanes("listen")
    partial.submit("asr-partial", lambda: _work(40), 0.0)
    final.submit("asr-final", lambda: _work(40), 0.0)
    assert partial.poll(10_000.0)[0].ready_ms >= 40
    assert final.poll(10_000.0)[0].ready_ms < 80


def test_each_session_has_its_own_stream_time() -> None:
    clock = OfflineClock(1)
    one = clock.session_lanes(lambda: 0.0)("respond")
    one.submit("respond", lambda: _work(40), 60_000.0)  # late in a long first session
    one.poll(100_000.0)
    two = clock.session_lanes(lambda: 0.0)("respond")
    two.submit("respond", lambda: _work(40), 0.0)
    assert two.poll(10_000.0)[0].ready_ms < 1000


def test_cpu_share_slots() -> None:
    cpu = CpuShare(2)
    assert cpu.run(0.0, 100.0) == 100.0
    assert cpu.run(0.0, 100.0) == 100.0  # a second slot
    assert cpu.run(0.0, 100.0) == 200.0  # waits for the first free one
    assert cpu.run(500.0, 10.0) == 510.0
    with pytest.raises(ValueError, match="at least one slot"):
        CpuShare(0)


def test_inline_lane_without_share_keeps_its_own_timeline() -> None:
    lane = InlineLane("solo")
    lane.submit("work", lambda: _work(20), 1000.0)
    (result,) = lane.poll(2000.0)
    assert 1020 <= result.ready_ms < 1060


def _spans(parallel_jobs: int) -> list[tuple[float, float]]:
    """When two foreground lanes' jobs computed, on the real-time clock."""
    from duplex.runtime.clock import RealtimeClock

    clock = RealtimeClock(parallel_jobs)
    lanes = clock.session_lanes(clock.now_ms)
    spans: list[tuple[float, float]] = []

    def work() -> Iterator[str]:
        t0 = time.perf_counter()
        time.sleep(0.05)
        spans.append((t0, time.perf_counter()))
        yield "done"

    a, b = lanes("listen"), lanes("respond")
    a.submit("asr-final", work, 0.0)
    b.submit("respond", work, 0.0)
    deadline = time.monotonic() + 5.0
    while len(spans) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    a.close()
    b.close()
    return sorted(spans)


def test_realtime_lanes_on_shared_cores_take_turns() -> None:
    (_, first_end), (second_start, _) = _spans(parallel_jobs=1)
    assert second_start >= first_end


def test_realtime_lanes_without_a_limit_overlap() -> None:
    (_, first_end), (second_start, _) = _spans(parallel_jobs=0)
    assert second_start < first_end
