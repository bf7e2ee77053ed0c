"""The llama.cpp sampler chains an answer is decoded with.

An answer in words: repeat penalties, llama.cpp's DRY sampler ("don't repeat yourself")
primed with the agent's earlier answers, then top-k/top-p/min-p at the temperature (or
greedy). A function call: the call's grammar, then greedy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from duplex.models.llamacpp.session_context import LlamaSessionContext

# Tokens of earlier answers the DRY sampler remembers (about the last three answers).
DRY_HISTORY_TOKENS = 256


@dataclass(frozen=True)
class SamplingSettings:
    """How the tokens of an answer in words are drawn.

    Attributes:
        temperature: sampling temperature; 0 samples greedily.
        top_p: nucleus sampling mass.
        top_k: candidates considered per token.
        repeat_penalty: penalty on recently generated tokens (small models loop without it).
        seed: sampling seed, for reproducible answers.
        dry_multiplier: strength of the DRY sampler; 0 turns it off.
    """

    temperature: float = 0.7
    top_p: float = 0.9
    top_k: int = 40
    repeat_penalty: float = 1.1
    seed: int = 0
    dry_multiplier: float = 0.0


def answer_sampler(llm: LlamaSessionContext, settings: SamplingSettings, earlier_answers: list[str]) -> Any:
    """The sampling chain of one answer: penalties, DRY, then top-k/top-p/min-p at the
    temperature. The earlier answers' tokens are fed to it first (the last
    ``DRY_HISTORY_TOKENS``), so copying one of them is penalised like a loop."""
    from llama_cpp import _internals

    s = settings
    sampler = _internals.LlamaSampler()
    sampler.add_penalties(llm.n_vocab(), llm.last_n_tokens_size, s.repeat_penalty, 0.0, 0.0)
    if s.dry_multiplier > 0:
        sampler.add_dry(llm._model, s.dry_multiplier, 1.75, 2, DRY_HISTORY_TOKENS, ["\n", ":", '"', "*"])
    if s.temperature <= 0:
        sampler.add_greedy()
    else:
        sampler.add_top_k(s.top_k)
        sampler.add_top_p(s.top_p, 1)
        sampler.add_min_p(0.05, 1)
        sampler.add_temp(s.temperature)
        sampler.add_dist(s.seed)
    if s.dry_multiplier > 0:
        # Newest answers first, only as many as the window holds, then fed oldest first.
        history: list[int] = []
        for answer in reversed(earlier_answers):
            if len(history) >= DRY_HISTORY_TOKENS:
                break
            history[:0] = llm.tokenize(answer.encode("utf-8"), add_bos=False, special=False)
        for token in history[-DRY_HISTORY_TOKENS:]:
            sampler.accept(token)
    return sampler


def grammar_sampler(llm: LlamaSessionContext, grammar: Any) -> Any:
    """Greedy decoding under a llama.cpp grammar (``LlamaGrammar``)."""
    from llama_cpp import _internals

    sampler = _internals.LlamaSampler()
    sampler.add_grammar(llm._model, grammar)
    sampler.add_greedy()
    return sampler
