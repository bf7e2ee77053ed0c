"""The end-of-utterance model on the real SmolLM2-135M weights, with and without its head,
and the script that trains the head."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from duplex.config import TurnConfig
from duplex.errors import ModelNotFound
from duplex.models.llamacpp.end_of_turn import (
    EndOfTurnHead,
    LlamaCppEndOfUtterance,
    builtin_head_path,
)
from duplex.models.llamacpp.sentence_end import (
    end_token_ids,
    last_token_end_probability,
    strip_final_punctuation,
)
from duplex.models.llamacpp.session_context import LlamaSessionContext
from duplex.policy.end_of_turn import blend_end_of_turn, pause_needed_ms

ROOT = Path(__file__).resolve().parents[3]

# None of these is in the head's training corpus, the eval scenarios or measure_eou.py.
FINISHED = ["Could you tell me a story?", "What are some good books?", "How do magnets work?"]
UNFINISHED = ["Could you tell me about the", "What I really want to know is", "I was hoping that"]


@pytest.fixture(scope="module")
def eou() -> LlamaCppEndOfUtterance:
    model = LlamaCppEndOfUtterance(threads=2)
    yield model
    model.close()


def test_the_builtin_head_loads_and_tells_finished_turns_from_cut_ones(eou) -> None:
    assert eou.head is not None and eou.head.n_embd == eou.n_embd
    finished = [eou.end_score(t) for t in FINISHED]
    unfinished = [eou.end_score(t) for t in UNFINISHED]
    assert min(finished) > max(unfinished), (finished, unfinished)
    # The turn-taker's decision: a finished turn is answered within a second of silence,
    # a cut-off one waits for more.
    turn = TurnConfig()
    for text, score in zip(FINISHED + UNFINISHED, finished + unfinished, strict=True):
        pause = pause_needed_ms(blend_end_of_turn(text, score), turn)
        assert (pause < 1000) == (text in FINISHED), (text, score, pause)
    assert eou.end_score("") == 0.0 and eou.end_score(" ... ") == 0.0


def test_the_head_hears_a_spoken_request_as_finished_where_p_end_alone_does_not(eou) -> None:
    """SmolLM2 expects "about" after "tell me a story": P(end) alone scores the request as
    cut off; the head, trained on conversational turns, does not."""
    text = "Could you tell me a story?"
    f = eou.features(text)
    assert f is not None and 10.0 ** f[-1] < 0.05  # P(end)
    assert eou.end_score(text) > 0.5


def test_features_are_the_hidden_state_and_log_p_end(eou) -> None:
    text = "What are some good books?"
    f = eou.features(text)
    assert f is not None and f.shape == (eou.n_embd + 1,) and np.isfinite(f).all()
    # log10 P(end) as a plain context reads it after the same system prompt and words
    # (one sequence, not the scorer's batch of sequences).
    ctx = LlamaSessionContext(eou.model_path, n_ctx=256, threads=1)
    try:
        prefix = f"<|im_start|>system\n{eou.system_prompt}<|im_end|>\n<|im_start|>user\n"
        ctx.eval(
            ctx.tokenize(prefix.encode(), add_bos=False, special=True)
            + ctx.tokenize(strip_final_punctuation(text).encode(), add_bos=False, special=False)
        )
        p_end = last_token_end_probability(ctx, end_token_ids(ctx, "<|im_end|>"))
    finally:
        ctx.close()
    assert f[-1] == pytest.approx(np.log10(p_end), abs=0.02)
    # The same words give the same features: the KV cache is reset to the prompt each call.
    eou.features("Something else entirely")
    assert np.array_equal(f, eou.features("What are some good books?"))


def test_a_head_for_another_prompt_falls_back_to_p_end_with_a_warning(caplog) -> None:
    with caplog.at_level(logging.WARNING):
        model = LlamaCppEndOfUtterance(threads=1, system_prompt="You are a pirate.")
    try:
        assert model.head is None
        assert "does not fit" in caplog.text and "system prompt" in caplog.text
        # P(end) on its log scale: a cut-off phrase scores near zero.
        assert model.end_score("Can you give me") < 0.3
    finally:
        model.close()


def test_a_named_head_that_does_not_fit_is_a_clear_error(tmp_path) -> None:
    builtin = EndOfTurnHead.load(builtin_head_path())
    wrong = EndOfTurnHead(builtin.weight[:10], 0.0, builtin.model_file, builtin.model_size, builtin.system_prompt, {})
    path = tmp_path / "wrong.npz"
    wrong.save(path)
    with pytest.raises(ModelNotFound, match="does not fit.*hidden size 9"):
        LlamaCppEndOfUtterance(threads=1, head=str(path))
    with pytest.raises(ModelNotFound, match="no end-of-turn head"):
        LlamaCppEndOfUtterance(threads=1, head=str(tmp_path / "missing.npz"))


@pytest.mark.slow
def test_the_training_script_writes_a_head_the_runtime_loads(tmp_path) -> None:
    """A short run of models/scripts/train_eou_head.py (written examples only) on the real
    corpus and model; its head is then used by the runtime's class."""
    out = tmp_path / "head.npz"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "models/scripts/train_eou_head.py"), "--max-lines", "120",
         "--written-only", "--out", str(out)],
        capture_output=True, text=True, timeout=600, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "cross-validated AUC" in proc.stdout
    head = EndOfTurnHead.load(out)
    assert head.info["examples"] > 200 and 0.5 < head.info["cv_auc"] <= 1.0
    model = LlamaCppEndOfUtterance(threads=1, head=str(out))
    try:
        assert model.head is not None
        score = model.end_score("What are some good books?")
        assert 0.0 <= score <= 1.0
    finally:
        model.close()
