"""Cutting the LLM's text into speakable clauses, and joining their audio without seams.

The first clause is spoken while the LLM still writes the rest, so where a clause
ends decides the response latency (``ClauseSplitter``); a clause cut mid-sentence
is played without the synthesizer's end-of-utterance silence (``trim_seam``).
"""

from __future__ import annotations

import re

import numpy as np

from duplex.audio.level import voiced_span

_CLAUSE_END = re.compile(r"[.!?](?:[\"')\]]*)\s")
_SOFT_BREAK = re.compile(r"[,;:](?:\s)")
SPECIAL_TOKENS = re.compile(r"<\|[^|>]*\|>")
ENDS_PUNCTUATED = re.compile(r"[.!?,;:][\"')\]]*$")


# Words a clause should not end on: the listener hears a seam after "of" or "the".
# fmt: off
_WEAK_ENDINGS = frozenset(
    [
        "a", "an", "the", "of", "to", "in", "on", "at", "for", "with", "from", "by", "as", "and",
        "or", "but", "if", "so", "that", "than", "is", "are", "was", "were", "be", "been", "has",
        "have", "had", "do", "does", "did", "can", "could", "will", "would", "should", "may",
        "might", "must", "my", "your", "our", "their", "his", "her", "its", "this", "these",
        "those", "i", "you", "we", "they", "he", "she", "it", "not",
    ]
)
# fmt: on


class ClauseSplitter:
    """Cut a stream of text pieces into speakable clauses as early as sense allows.

    The first clause is kept short, because its synthesis is on the critical path
    of the response latency and synthesis time grows with the audio it makes. It
    ends at the first sentence end or comma, or as soon as it has
    ``first_min_words`` complete words and the last one is not a weak ending
    ("of", "the", "is" ...), and at ``first_max_words`` words at the latest. Later
    clauses end at a sentence end, at a comma once they have ``min_words`` words,
    or at ``max_words`` words. ``feed`` takes one piece at a time, so a caller can
    stop between any two tokens.
    """

    def __init__(
        self,
        first_min_words: int = 3,
        first_max_words: int = 6,
        min_words: int = 3,
        max_words: int = 14,
    ) -> None:
        self.first_min_words = first_min_words
        self.first_max_words = first_max_words
        self.min_words = min_words
        self.max_words = max_words
        self._buf = ""
        self._first = True

    def feed(self, piece: str) -> list[str]:
        """The clauses ``piece`` completes (mostly none)."""
        self._buf += piece
        out = []
        while (cut := self._cut()) is not None:
            clause, self._buf = self._buf[:cut].strip(), self._buf[cut:]
            if clause:
                self._first = False
                out.append(clause)
        return out

    def finish(self) -> list[str]:
        """The last clause, once no piece follows."""
        rest, self._buf = self._buf.strip(), ""
        return [rest] if rest else []

    def _cut(self) -> int | None:
        buf, first = self._buf, self._first
        cut = None
        m = _CLAUSE_END.search(buf)
        s = _SOFT_BREAK.search(buf)
        words = buf.split()
        if m:
            cut = m.end()
        if (
            s
            and (first or len(buf[: s.end()].split()) >= self.min_words)
            and (cut is None or s.end() < cut)
        ):
            cut = s.end()
        # Tokens arrive as " word" pieces: the last word may be unfinished, so
        # a cut by count falls before it.
        complete = words[:-1]
        if cut is None and first and len(complete) >= self.first_min_words:
            last = complete[-1].strip("\"'()").lower()
            if last not in _WEAK_ENDINGS or len(complete) >= self.first_max_words:
                cut = buf.rstrip().rfind(" ")
        elif cut is None and not first and len(words) > self.max_words:
            cut = buf.rstrip().rfind(" ")
        if cut is not None and cut <= 0:
            cut = None
        return cut


SEAM_PAD_S = 0.03  # the silence kept either side of a seam


def trim_seam(
    samples: np.ndarray, words: list[tuple[str, int, int]], rate: int, lead: bool, tail: bool
) -> tuple[np.ndarray, list[tuple[str, int, int]]]:
    """Shorten the silence a synthesizer puts around a clause that is cut mid-sentence.

    A clause cut by word count ("The capital of France" | "is Paris.") would
    otherwise play with the end-of-utterance silence of both halves between
    them. ``lead``/``tail`` trim the silence before/after the voiced span to
    ``SEAM_PAD_S``; word timings move with the audio.
    """
    if not (lead or tail) or not len(samples):
        return samples, words
    start, end = voiced_span(samples, rate)
    pad = int(SEAM_PAD_S * rate)
    cut_start = max(0, start - pad) if lead else 0
    cut_end = min(len(samples), end + pad) if tail else len(samples)
    if cut_end <= cut_start:
        return samples, words
    kept = samples[cut_start:cut_end]
    n = len(kept)
    moved = [(w, min(n, max(0, a - cut_start)), min(n, max(0, b - cut_start))) for w, a, b in words]
    return kept, moved
