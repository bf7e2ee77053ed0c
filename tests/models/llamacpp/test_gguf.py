"""The packaged SmolLM2 GGUF re-encoded as Q8_0 (gguf.py): made once, cached, the
same model as the shipped Q4_1 (its end-of-turn head applies), and a clear error or a
fallback where it cannot be made."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from duplex.errors import ConfigError, ModelNotFound
from duplex.models.llamacpp.end_of_turn import LlamaCppEndOfUtterance
from duplex.models.llamacpp.generator import LlamaCppGenerator
from duplex.models.llamacpp.gguf import default_model_path, derived_path, reencoded
from duplex.models.stages import ChatMessage

FINISHED = ["Could you tell me a story?", "What are some good books?", "How do magnets work?"]
UNFINISHED = ["Could you tell me about the", "What I really want to know is", "I was hoping that"]


def _file_type(path: Path) -> int:
    import llama_cpp

    llm = llama_cpp.Llama(str(path), vocab_only=True, verbose=False)
    try:
        return int(llm.metadata["general.file_type"])
    finally:
        llm.close()


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    d = tmp_path / "cache"
    monkeypatch.setenv("DUPLEX_CACHE_DIR", str(d))
    return d


def test_the_packaged_model_is_re_encoded_once_and_then_read_from_the_cache(cache) -> None:
    import llama_cpp

    source = default_model_path()
    first = reencoded(source, "q8_0")
    assert first.parent == cache and first == derived_path(source, "q8_0")
    assert _file_type(first) == llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0
    assert _file_type(source) == llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_1
    made = first.stat().st_mtime_ns
    assert reencoded(source, "q8_0") == first and first.stat().st_mtime_ns == made
    assert [p.name for p in cache.iterdir()] == [first.name]  # no half-written file left
    assert reencoded(source, "") == source


def test_a_stale_copy_is_replaced_when_the_source_changes(cache, tmp_path) -> None:
    source = tmp_path / "model.gguf"
    source.write_bytes(default_model_path().read_bytes())
    old = reencoded(source, "q8_0")
    os.utime(source, ns=(source.stat().st_atime_ns, source.stat().st_mtime_ns + 10**9))
    new = reencoded(source, "q8_0")
    assert new != old and new.is_file() and not old.exists()


def test_bad_requests_get_clear_errors(cache, tmp_path) -> None:
    with pytest.raises(ConfigError, match="q8_0"):
        reencoded(default_model_path(), "q3_fancy")
    with pytest.raises(ModelNotFound, match="no GGUF"):
        reencoded(tmp_path / "missing.gguf", "q8_0")


def test_an_unwritable_cache_falls_back_to_the_file_as_shipped(tmp_path, monkeypatch, caplog) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the cache directory would be")
    monkeypatch.setenv("DUPLEX_CACHE_DIR", str(blocker / "cache"))
    with caplog.at_level(logging.WARNING):
        assert reencoded(default_model_path(), "q8_0") == default_model_path()
    assert "as shipped" in caplog.text


def test_the_re_encoded_end_of_turn_model_keeps_its_head_and_its_scores(cache) -> None:
    shipped = LlamaCppEndOfUtterance(threads=2)
    fast = LlamaCppEndOfUtterance(threads=2, weights_type="q8_0")
    try:
        assert fast.model_path.parent == cache and shipped.model_path == default_model_path()
        assert fast.head is not None  # checked against the packaged file it was made from
        for text in FINISHED + UNFINISHED:
            assert abs(fast.end_score(text) - shipped.end_score(text)) < 0.05, text
        assert min(map(fast.end_score, FINISHED)) > max(map(fast.end_score, UNFINISHED))
    finally:
        shipped.close()
        fast.close()


def test_the_re_encoded_llm_answers(cache) -> None:
    llm = LlamaCppGenerator(threads=2, n_ctx=256, temperature=0.0, weights_type="q8_0")
    try:
        assert llm.model_path.parent == cache
        answer = "".join(llm.stream([ChatMessage("user", "What is the capital of France?")], max_tokens=20))
        assert "Paris" in answer, answer
    finally:
        llm.close()


def test_models_check_says_where_the_re_encoded_copy_is(cache) -> None:
    from duplex.models.manifest import check, load_manifests

    smol = next(m for m in load_manifests() if m.name == "smollm2-135m-instruct")
    before = check(smol, verify_hash=False)
    assert before.ok and "loaded as Q8_0, made at first load" in before.detail
    copy = reencoded(default_model_path(), smol.reencoded_as)
    assert f"cached at {copy}" in check(smol, verify_hash=False).detail


def test_llama_cpp_is_built_without_openmp() -> None:
    """``make install`` builds llama.cpp with ``-DGGML_OPENMP=OFF``: with OpenMP, the LLM and
    the end-of-turn model driven from two threads throttle each other's workers (the LLM's
    tokens ~60% slower in real time on 2 cores, models/llm.md)."""
    from duplex.models.llamacpp.gguf import built_with_openmp

    assert not built_with_openmp()
