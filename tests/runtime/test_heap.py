"""Freed native heap handed back to the OS after an answer (glibc's malloc_trim)."""

from __future__ import annotations

import numpy as np
import psutil
import pytest

from duplex.runtime import heap
from duplex.runtime.runtime import Runtime

from conftest import silence, tone

pytestmark = pytest.mark.skipif(not heap.available(), reason="needs glibc")


@pytest.fixture(autouse=True)
def _fresh(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(heap, "_last", -float("inf"))


def test_a_trim_returns_freed_pages_that_malloc_kept() -> None:
    proc = psutil.Process()
    # 100 KB blocks come from malloc's heap (below its mmap threshold). Keeping one in 50
    # pins the heap, so freeing the rest leaves free pages malloc keeps and RSS counts.
    blocks = [np.ones(100_000 // 8) for _ in range(3000)]
    kept = blocks[::50]
    del blocks
    before = proc.memory_info().rss
    assert heap.trim(30.0)
    after = proc.memory_info().rss
    assert before - after > 150e6, (before / 1e6, after / 1e6)
    assert len(kept) == 60


def test_trims_are_spaced_for_the_whole_process() -> None:
    assert heap.trim(30.0)
    assert not heap.trim(30.0)  # too soon, from any caller
    assert not heap.trim(0.0)  # off


def test_a_session_trims_when_an_answer_ends(scripted_config, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    monkeypatch.setattr(heap, "_trim", lambda: calls.append(1))
    rt = Runtime(scripted_config, clock="offline")
    s = rt.open_session()
    rt.run_offline(s, np.concatenate([silence(0.3), tone(1.2), silence(6.0)]), tail_s=0)
    events = [e.type for e in s.channel.drain()]
    rt.close()
    assert "agent.audio.done" in events
    assert calls == [1]
