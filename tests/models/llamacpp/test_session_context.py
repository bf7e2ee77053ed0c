"""One holder's llama.cpp context over shared weights: opened and closed again and again
it leaves nothing behind, and one never closed gives its weights back when collected."""

from __future__ import annotations

import gc
from pathlib import Path

import psutil

from duplex.models.llamacpp.gguf import gguf_to_load, llama_weights
from duplex.models.llamacpp.session_context import LlamaSessionContext
from duplex.models.shared_weights import shared_weights


def _uss_mb() -> float:
    gc.collect()
    return psutil.Process().memory_full_info().uss / 2**20


def _packaged_gguf() -> Path:
    return gguf_to_load(None, "q8_0", "models.llm.path")[1]


def test_contexts_opened_and_closed_again_and_again_leave_nothing_behind() -> None:
    path = _packaged_gguf()
    hold = llama_weights(path)  # the weights stay loaded, as a runtime holds them
    try:
        for _ in range(3):  # warm-up: malloc's arenas settle
            LlamaSessionContext(path, n_ctx=768, threads=1).close()
        before = _uss_mb()
        for _ in range(40):
            ctx = LlamaSessionContext(path, n_ctx=768, threads=1)
            ctx.eval(ctx.tokenize(b"Hello there, how are you?"))
            ctx.close()
        # One context's KV cache and buffers are ~20 MB: 40 kept would be ~800 MB. The
        # bound leaves room for whatever else this test process does meanwhile.
        assert _uss_mb() - before < 100.0
        assert shared_weights().holders()[hold.key] >= 1
    finally:
        hold.release()


def test_a_context_never_closed_gives_its_weights_back_when_collected() -> None:
    path = _packaged_gguf()
    hold = llama_weights(path)
    try:
        held = shared_weights().holders()[hold.key]
        ctx = LlamaSessionContext(path, n_ctx=256, threads=1)
        assert shared_weights().holders()[hold.key] == held + 1
        del ctx
        gc.collect()
        assert shared_weights().holders()[hold.key] == held
    finally:
        hold.release()
