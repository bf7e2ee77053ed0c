"""Semantic end-of-turn score from a transcript: does this sound finished?

A cheap lexical model used when no learned end-of-utterance model is
configured: a question or a statement that ends on a content word sounds
complete; a turn that ends on a conjunction, a preposition, an article or a
filler ("a flight to …", "and um") sounds cut off.
"""

from __future__ import annotations

import math
import re

from duplex.config import TurnConfig

# Words after which an English utterance is rarely complete.
_CONTINUATION = frozenset(
    ["a", "an", "the", "and", "or", "but", "so", "because", "if", "when", "while", "since", "although", "though", "than", "to", "of", "for", "with", "in", "on", "at", "by", "from", "into", "onto", "about", "like", "as", "my", "your", "his", "her", "our", "their", "its", "some", "any", "every", "is", "are", "was", "were", "am", "be", "been", "being", "do", "does", "did", "have", "has", "had", "will", "would", "can", "could", "should", "shall", "may", "might", "must", "i", "we", "you", "he", "she", "they", "um", "uh", "er", "erm", "very", "really", "just", "also", "what", "which", "who", "where", "how", "whose", "whether", "let"]
)

_WORD = re.compile(r"[a-z']+")


def end_of_turn_score(text: str) -> float:
    """Probability-like score in [0, 1] that ``text`` is a complete turn.

    Args:
        text: the final transcript of the user's speech so far (with punctuation
            as the recognizer wrote it).
    """
    stripped = text.strip()
    if not stripped:
        return 0.0
    words = _WORD.findall(stripped.lower())
    if not words:
        return 0.3
    if stripped.endswith(("...", "…", ",", "-", "—", ";", ":")):
        return 0.1
    if stripped.endswith("?"):
        return 0.95
    if words[-1] in _CONTINUATION:
        return 0.1
    if stripped.endswith(("!", ".")):
        return 0.85 if len(words) >= 2 else 0.6
    return 0.5


def blend_end_of_turn(text: str, semantic: float | None) -> float:
    """Blend a semantic end-of-turn score (0..1, from an end-of-utterance model) with
    the lexical score of ``text``; the lexical score alone where there is none."""
    lexical = end_of_turn_score(text)
    if semantic is None:
        return lexical
    return 0.75 * semantic + 0.25 * lexical


def fuse_end_of_turn(score: float, acoustic: float | None, weight: float) -> float:
    """The blended word score fused with an acoustic P(turn end) of the same pause
    (``models/smart_turn.py``): ``weight`` of the acoustic score, the rest the words'.
    None (no acoustic model, or no audio scored) leaves ``score`` as it is."""
    if acoustic is None or weight <= 0:
        return score
    return (1.0 - weight) * score + weight * acoustic


def pause_needed_ms(score: float | None, cfg: TurnConfig) -> float:
    """The silence the turn-taker waits for before answering a turn that scored ``score``.

    None (no transcript scored yet) waits ``end_silence_ms``. Otherwise the pause
    falls from ``max_end_silence_ms`` to ``min_end_silence_ms`` as the score crosses
    ``eot_midpoint``: a logistic, not a line, so a finished question the small EOU
    model is only moderately sure of (0.6-0.8; questions can always go on) does not
    wait a second, while fragments (below ~0.3) keep nearly the whole pause.
    """
    if score is None:
        return float(cfg.end_silence_ms)
    lo, hi = cfg.min_end_silence_ms, cfg.max_end_silence_ms
    if cfg.eot_width <= 0:
        return float(lo if score >= cfg.eot_midpoint else hi)
    unsure = 1.0 / (1.0 + math.exp((score - cfg.eot_midpoint) / cfg.eot_width))
    return lo + unsure * (hi - lo)
