"""Weights loaded once per process and shared by the sessions of the default profile."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator

import numpy as np
import psutil
import pytest

from duplex.config import load_config
from duplex.errors import ModelNotFound
from duplex.eval.generate import speak
from duplex.events import AgentAudioDone, UserTranscriptFinal
from duplex.models.shared_weights import SharedWeights, WeightsKey, shared_weights
from duplex.runtime.runtime import Runtime
from duplex.runtime.session import Session

from conftest import silence

# A third default-profile session adds ~21 MB (its llama.cpp context, VAD state and
# buffers); a session loaded its own LLM and voice before, ~220 MB.
MAX_SESSION_MB = 60.0


def _uss_mb() -> float:
    gc.collect()
    return psutil.Process().memory_full_info().uss / 2**20


def test_closing_the_runtime_releases_every_weight_it_loaded() -> None:
    before = shared_weights().holders()
    rt = Runtime(load_config(None), clock="offline")
    rt.open_session()
    rt.open_session()
    held = shared_weights().holders()
    kinds = {k.kind for k, n in held.items() if n > before.get(k, 0)}
    assert kinds == {"llama.cpp model", "piper voice", "silero vad", "ctranslate2 whisper"}
    llama = next(iter(rt.sessions.values())).model.llm._llm._model
    llama_key = next(k for k in held if k.kind == "llama.cpp model")
    rt.close()
    assert shared_weights().holders() == before
    if llama_key not in before:  # no one else in this process holds it: freed
        assert llama.model is None


@pytest.fixture(scope="module")
def runtime() -> Iterator[Runtime]:
    rt = Runtime(load_config(None), clock="offline")
    yield rt
    rt.close()


def test_sessions_share_the_loaded_models(runtime: Runtime) -> None:
    a, b = (runtime.open_session().model for _ in range(2))
    try:
        assert a.llm is not b.llm and a.vad is not b.vad and a.tts is not b.tts  # state of their own
        assert a.llm._llm._ctx is not b.llm._llm._ctx
        assert a.llm._llm._model is b.llm._llm._model  # one llama.cpp model
        assert a.hearing.eou._llm._model is a.llm._llm._model  # the end-of-turn model reads the same GGUF
        assert a.tts._voice.session is b.tts._voice.session  # one Piper onnxruntime session
        assert a.vad._sess is b.vad._sess  # one Silero onnxruntime session
        assert a.hearing.asr._model is b.hearing.asr._model
        assert a.hearing.asr_partial._model is b.hearing.asr_partial._model
    finally:
        for s in list(runtime.sessions.values()):
            runtime.close_session(s)


def test_a_third_session_adds_far_less_than_a_copy_of_the_models(runtime: Runtime) -> None:
    first = [runtime.open_session() for _ in range(2)]
    before = _uss_mb()
    third = runtime.open_session()
    added = _uss_mb() - before
    for s in [*first, third]:
        runtime.close_session(s)
    assert added < MAX_SESSION_MB, f"a third session added {added:.0f} MB"


def _conversation(runtime: Runtime, audio: np.ndarray) -> tuple[list[str], list[str]]:
    """The finals a session heard and the answers it gave (their whole text), for ``audio``."""
    session: Session = runtime.open_session()
    try:
        # The offline clock charges compute to stream time: a loaded machine needs a long tail.
        runtime.run_offline(session, audio, tail_s=60.0)
        events = session.channel.drain()
    finally:
        runtime.close_session(session)
    finals = [e.text for e in events if isinstance(e, UserTranscriptFinal)]
    answers = [e.full_text for e in events if isinstance(e, AgentAudioDone)]
    return finals, answers


@pytest.mark.slow
def test_two_sessions_at_once_hear_and_answer_as_one_alone(runtime: Runtime) -> None:
    question = speak("What is the capital of France?", "en-us", 165)
    audio = np.concatenate([silence(0.3), question, silence(2.0)])
    _conversation(runtime, audio)  # warm-up: the first pass of each model is slower
    alone = _conversation(runtime, audio)
    together: list[tuple[list[str], list[str]]] = []
    threads = [threading.Thread(target=lambda: together.append(_conversation(runtime, audio))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert alone[0] and alone[1], alone
    assert together == [alone, alone]


def test_a_cache_frees_weights_with_the_last_lease_only() -> None:
    cache = SharedWeights()
    freed: list[str] = []
    loads: list[int] = []
    key = WeightsKey("test weights", "/w", (("threads", 1),))

    def load() -> str:
        loads.append(1)
        return "weights"

    a = cache.acquire(key, load, freed.append)
    b = cache.acquire(key, load, freed.append)
    assert a.weights is b.weights and loads == [1] and cache.holders() == {key: 2}
    a.release()
    a.release()  # idempotent: one lease, one release
    assert freed == [] and cache.holders() == {key: 1}
    b.release()
    assert freed == ["weights"] and cache.holders() == {}
    cache.acquire(key, load, freed.append).release()
    assert loads == [1, 1]  # loaded again once freed


def test_a_failed_load_caches_nothing() -> None:
    cache = SharedWeights()
    key = WeightsKey("test weights", "/missing")

    def load() -> str:
        raise ModelNotFound("no weights at /missing")

    with pytest.raises(ModelNotFound):
        cache.acquire(key, load, lambda w: None)
    assert cache.holders() == {}
