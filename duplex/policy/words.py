"""The words of a transcript as the policy compares them: lower case, no punctuation.

Backchannel vocabulary, the agent's own words (its echo) and a barge-in's words
are all matched on these.
"""

from __future__ import annotations

import re

_WORD = re.compile(r"[a-z0-9']+(?:-[a-z0-9']+)*")


def words_of(text: str) -> list[str]:
    """Lower-case words of ``text`` without punctuation."""
    return _WORD.findall(text.lower())
