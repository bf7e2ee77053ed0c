"""The end-of-utterance scale the stages share: a language model's P(end) → 0..1.

An LLM's probability that the user's message ends where it does (its prompt
pass, ``TextGenerator.last_end_probability``, or an end-of-utterance model's)
is mapped onto the 0..1 score the turn-taker blends with the pause length.
"""

from __future__ import annotations

import math


def semantic_end_score(end_probability: float) -> float:
    """P(the sentence ends here) on the 0..1 end-of-turn scale the turn-taker blends.

    Log scale (0.003 → 0, 0.1 → 0.75, 0.9 → 1): P(end) is reliable at telling a
    cut-off phrase ("can you give me") from a finished one even where the
    recognizer put a period or a question mark, but a finished question rarely
    gets more than a few tenths (questions can always go on).
    """
    return min(1.0, max(0.0, (math.log10(max(end_probability, 1e-9)) + 2.5) / 2.0))
