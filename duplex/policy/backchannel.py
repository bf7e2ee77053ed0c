"""Backchannels: short acknowledgements that are not turns.

Two directions:

- the user's: "mhm", "yeah, right", a held "mmmm" or a laugh while the agent
  speaks is reported (``user.backchannel``) and does not stop it
  (:func:`is_backchannel`, asked by the barge-in judge);
- the agent's own: in a long user turn, at a pause that does not sound like the
  end, the agent may say "mhm" (:class:`AgentBackchannels`, ``[turn]``
  ``agent_backchannels``).
"""

from __future__ import annotations

import re

from duplex.config import TurnConfig
from duplex.policy.words import words_of

# Hums, and a laugh ("ha", "haha", "aha"): wordless sounds over the agent's speech.
_HUM = re.compile(r"^(?:h*m+h*m*|u+h*m+|m+h+m+|u+h+-?h+u+h+|a+h+|o+h+|h+m+|a?(?:ha)+h?|(?:he){2,}h?)$")


def _squash(word: str) -> str:
    """Collapse letters held long by the recognizer: "mmmmm" → "mm", "yeahhh" → "yeahh"."""
    return re.sub(r"(.)\1{2,}", r"\1\1", word)


def _is_hum(word: str) -> bool:
    """A hum, also as the recognizer writes a held one: "mmm", "mm-m-m-m", "uh-huh"; a laugh."""
    return bool(_HUM.match(word)) or all(_HUM.match(p) or p in ("m", "h") for p in word.split("-") if p)


# How a recognizer may spell an acknowledgement it heard right ("I see" as "i c").
_SOUNDS_LIKE = {
    "c": "see", "sea": "see", "k": "okay", "kay": "okay", "mkay": "okay", "yea": "yeah",
    "ya": "yeah", "yah": "yeah", "rite": "right", "write": "right", "kool": "cool",
}


def is_backchannel(text: str, vocabulary: list[str], max_words: int = 4) -> bool:
    """True when ``text`` is only short acknowledgements ("mhm", "yeah, right", "mmmm",
    one said twice: "I see, I see").

    Args:
        text: a transcript, as the recognizer wrote it.
        vocabulary: the acknowledgement phrases (``[barge_in] backchannel_words``).
        max_words: longer transcripts are never backchannels.
    """
    heard = words_of(text)
    if len(heard) == 1 and len(heard[0]) == 1:
        return True  # a lone letter: how the recognizer writes a short wordless sound ("B")
    # A hyphen that is not a hum's joins spelled-out sounds ("I see" as "i-c").
    parts = [p for w in (_squash(w) for w in heard) if not _is_hum(w) for p in w.split("-") if p]
    words = [_SOUNDS_LIKE.get(w, w) for w in parts]
    if heard and not words:
        return True  # only hums
    if not words or len(words) > max_words:
        return False
    vocab_words = {w for p in vocabulary for w in words_of(p)}
    words = [w if w in vocab_words else re.sub(r"(.)\1+$", r"\1", w) for w in words]
    phrases = sorted((tuple(words_of(p)) for p in vocabulary), key=len, reverse=True)
    i = 0
    while i < len(words):
        for phrase in phrases:
            if phrase and tuple(words[i : i + len(phrase)]) == phrase:
                i += len(phrase)
                break
        else:
            return False
    return True


class AgentBackchannels:
    """When the agent acknowledges a long user turn ("mhm") without taking it.

    Args:
        cfg: the ``[turn]`` section (``agent_backchannels``, ``backchannel_*``).
    """

    def __init__(self, cfg: TurnConfig) -> None:
        self.cfg = cfg
        self.enabled = cfg.agent_backchannels  # a transport that cannot play them turns them off
        self._last_ms = -1e9

    def due(
        self, t_ms: float, turn_ms: float, silence_ms: float, eot_score: float | None, may_go_on: bool = False
    ) -> bool:
        """True (and remembered for the cool-down) when the agent should say one now.

        Args:
            t_ms: stream time of the frame.
            turn_ms: how long the user's turn has run (first onset to last voice).
            silence_ms: the pause so far.
            eot_score: the end-of-turn score of the turn's transcript, if any.
            may_go_on: the turn's context says a finished sentence is not its end (a
                story under way, a statement; ``end_of_turn.TurnContext``): the agent
                waits, and "mhm" says it is listening.
        """
        cfg = self.cfg
        if not self.enabled:
            return False
        if turn_ms < cfg.backchannel_after_ms:
            return False
        if t_ms - self._last_ms < cfg.backchannel_cooldown_ms:
            return False
        if not cfg.backchannel_pause_ms <= silence_ms < cfg.backchannel_pause_ms + cfg.backchannel_window_ms:
            return False
        if eot_score is None:
            return False  # the words of the pause are not in: it may be the turn's end
        if eot_score >= 0.5 and not may_go_on:
            return False  # it sounds finished: the agent is about to take the turn instead
        self._last_ms = t_ms
        return True
