"""Whether the user's sentence ends here, read from a llama.cpp model's next-token logits.

The probability that the next token ends the sentence (".", "?", "!", or the chat
template's end-of-turn marker) after the user's words, with the recognizer's own final
punctuation stripped first (Whisper ends fragments with a period). Both the answering
LLM (``generator.py``, from its own prompt pass) and the end-of-turn scorer
(``end_of_turn.py``) read it.
"""

from __future__ import annotations

import re

import numpy as np

from duplex.models.llamacpp.session_context import LlamaSessionContext

_TRAILING = re.compile(r"[\s.?!,;:…\-—]+$")
_END_MARKS = {".", "?", "!", '."', '?"', '!"', "...", "…"}

_end_ids_cache: dict[tuple[str, str], np.ndarray] = {}


def strip_final_punctuation(text: str) -> str:
    """The utterance without the punctuation (and spaces) the recognizer ended it with."""
    return _TRAILING.sub("", text.strip())


def end_token_ids(llm: LlamaSessionContext, turn_end: str) -> np.ndarray:
    """Vocabulary ids that end a sentence (".", "?", "!", ...) or the turn (``turn_end``)."""
    key = (str(llm.model_path), turn_end)
    if key in _end_ids_cache:
        return _end_ids_cache[key]
    ends = []
    for i in range(llm.n_vocab()):
        piece = llm.detokenize([i], special=True).decode("utf-8", errors="ignore").strip()
        if piece in _END_MARKS or piece == turn_end:
            ends.append(i)
    ids = np.array(ends, dtype=np.int64)
    _end_ids_cache[key] = ids
    return ids


def last_token_end_probability(llm: LlamaSessionContext, end_ids: np.ndarray) -> float:
    """P(the next token is one of ``end_ids``) after the tokens just evaluated.

    Reads only the last position's logits (no ``logits_all``: the vocabulary
    projection of every token would cost more than the layers).
    """
    n_vocab = llm.n_vocab()
    return end_probability(np.ctypeslib.as_array(llm._ctx.get_logits_ith(-1), shape=(n_vocab,)), end_ids)


def end_probability(logits: np.ndarray, end_ids: np.ndarray) -> float:
    """P(the next token is one of ``end_ids``) from one position's logits."""
    logits = logits.astype(np.float64)
    p = np.exp(logits - logits.max())
    return float(p[end_ids].sum() / p.sum())

