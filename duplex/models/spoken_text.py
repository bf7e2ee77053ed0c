"""Turn an LLM's written text into text to be spoken, as it streams.

Small chat models write lists and markdown even when told not to ("1. Stay
hydrated.\\n2. Take breaks."). Spoken, the markers come out as "one", "dash" or
"star", and a list cut by an interruption leaves "1" in the dialogue history,
which the model then continues with "2". ``spoken_pieces`` drops list markers at
the start of a line or a sentence, markdown emphasis and headings, and turns
line breaks into spaces, without delaying ordinary words: only a tail that could
still become a marker ("2" before its ".") is held until the next piece.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

# A list marker or heading where a line or sentence starts, followed by a space.
_MARKER = re.compile(r"(?:^|(?<=\n)|(?<=[.!?:]\s))[ \t]*(?:\d{1,2}[.)]|[-*\u2022]|#{1,6})(?=\s)")
_LAST_MARKER = re.compile(r"(?:^|(?<=\n)|(?<=[.!?:]\s))[ \t]*(?:\d{1,2}[.)]|[-*\u2022]|#{1,6})\s*$")
# The end of the text that could still turn into a marker (or into "**").
_UNDECIDED = re.compile(
    r"(?:(?:^|(?<=\n)|(?<=[.!?:]\s))[ \t]*(?:\d{1,2}[.)]?|[-*\u2022]|#{1,6})|\*+|`+)$"
)
_EMPHASIS = re.compile(r"\*\*|__|`")


def _clean(text: str, final: bool = False) -> str:
    text = _MARKER.sub("", text)
    if final:  # "... for longer. 2." at the very end: the start of an item never written
        text = _LAST_MARKER.sub("", text)
    text = _EMPHASIS.sub("", text)
    return text.replace("\r", " ").replace("\n", " ")


class SpokenText:
    """``spoken_pieces`` one piece at a time: ``feed`` a piece, get what is decided."""

    def __init__(self) -> None:
        self._raw = ""
        self._sent = 0

    def feed(self, piece: str) -> str:
        """The cleaned text ``piece`` decides ("" while a marker may still be forming)."""
        self._raw += piece
        undecided = _UNDECIDED.search(self._raw)
        return self._emit(_clean(self._raw[: undecided.start()] if undecided else self._raw))

    def finish(self) -> str:
        """The rest, once no piece follows."""
        return self._emit(_clean(self._raw, final=True))

    def _emit(self, out: str) -> str:
        if len(out) <= self._sent:
            return ""
        new, self._sent = out[self._sent :], len(out)
        return new


def spoken_pieces(pieces: Iterable[str]) -> Iterator[str]:
    """Yield ``pieces`` cleaned for speech, as early as each piece is decided."""
    text = SpokenText()
    for piece in pieces:
        out = text.feed(piece)
        if out:
            yield out
    out = text.finish()
    if out:
        yield out
