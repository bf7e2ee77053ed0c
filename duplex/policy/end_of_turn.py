"""End of turn, the policy side: is the user's turn over, and when to ask for its words.

Not silence alone. The pause needed before answering shrinks when the transcript
looks complete (semantic end-of-turn score) and grows when it looks cut off ("a
flight to …"). A final transcript is requested early, at a short pause, with a
response drafted and held (preemptive generation); if the user goes on, the
draft is discarded.

- ``end_of_turn_score``: a cheap lexical model, used alone when no learned
  end-of-utterance model is configured: a question or a statement that ends on
  a content word sounds complete; a turn that ends on a conjunction, a
  preposition, an article or a filler ("and um") sounds cut off;
- ``blend_end_of_turn``: the learned model's score blended with it;
- ``fuse_end_of_turn``: that fused with an acoustic score of the pause (off by default);
- ``TurnContext``: what the conversation says beyond the sentence: does the
  turn ask the agent something, is the user narrating (they went on after a
  pause that sounded finished), does it end in a number that may go on in
  groups;
- ``pause_needed_ms``: the silence to wait for, from the score and the context;
- ``UserTurn``: the user's turn being built, and its transcript request;
- ``Endpointing``: the ``[turn]`` thresholds that the turn-taker asks.

The scores themselves come from the models layer (``ListenSignals.eot_score``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from duplex.config import TurnConfig
from duplex.models.actions import LookAgain, Transcribe
from duplex.models.base import ListenSignals

# Words after which an English utterance is rarely complete.
_CONTINUATION = frozenset(
    ["a", "an", "the", "and", "or", "but", "so", "because", "if", "when", "while", "since", "although", "though", "than", "to", "of", "for", "with", "in", "on", "at", "by", "from", "into", "onto", "about", "like", "as", "my", "your", "his", "her", "our", "their", "its", "some", "any", "every", "is", "are", "was", "were", "am", "be", "been", "being", "do", "does", "did", "have", "has", "had", "will", "would", "can", "could", "should", "shall", "may", "might", "must", "i", "we", "you", "he", "she", "they", "um", "uh", "er", "erm", "very", "really", "just", "also", "what", "which", "who", "where", "how", "whose", "whether", "let"]
)

_WORD = re.compile(r"[a-z']+")

# The VAD voices a frame or three past the real end of speech: voice no longer than this
# after a transcript asked at a quiet frame is that lag, not the user going on softly.
QUIET_GRACE_MS = 128.0

# Words that make an utterance ask the agent for something: an interrogative (also
# embedded: "I wonder why ..."), a request's object ("tell me"), a modal opening
# ("can you").
_ASKING = frozenset(
    ["what", "who", "whom", "whose", "how", "why", "where", "which", "whether", "me", "us",
     "what's", "who's", "how's", "why's", "where's"]  # "What's the weather like in Paris"
)
# An auxiliary opens a question only before its subject ("do you", not "do listen").
_AUXILIARIES = frozenset(
    ["can", "could", "would", "will", "do", "does", "did", "is", "are", "was", "were", "should", "shall", "may", "have", "has"]
)
_SUBJECTS = frozenset(
    ["i", "you", "we", "they", "he", "she", "it", "there", "this", "that", "these", "those", "the", "a", "an", "my", "your", "our", "their", "his", "her", "its", "anyone", "someone", "somebody", "anybody"]
)
_ASKING_OPENINGS = frozenset(
    ["tell", "give", "show", "explain", "describe", "suggest", "recommend", "help", "let", "find", "play", "read", "remind", "set", "call", "send", "list", "name", "define", "translate", "hey", "hi", "hello"]
)
_ASKING_PHRASES = ("i need", "i want", "i'd like", "i would like", "i wonder", "i was wondering", "i'm looking for", "if you")
_NUMBER_WORDS = frozenset(
    ["zero", "oh", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "hundred", "thousand", "double", "triple"]
)
_ENDS_IN_DIGITS = re.compile(r"\d[\s\d,.\-]*$")


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


def asks_agent(text: str) -> bool:
    """The words ask the agent for something: a question, a request ("tell me ...",
    "I need ...", "can you ..."), rather than tell it something (a statement, one
    sentence of a story)."""
    stripped = text.strip()
    if stripped.endswith("?"):
        return True
    lowered = stripped.lower()
    words = _WORD.findall(lowered)
    if not words:
        return False
    if words[0] in _ASKING_OPENINGS or any(w in _ASKING for w in words):
        return True
    if words[0] in _AUXILIARIES and len(words) > 1 and words[1] in _SUBJECTS:
        return True
    return any(p in lowered for p in _ASKING_PHRASES)


def ends_in_number(text: str) -> bool:
    """The words end in a number (digits or number words): one group of a phone number,
    a code or a list, which people read out in groups with pauses between them."""
    stripped = text.strip().rstrip(".!")
    if _ENDS_IN_DIGITS.search(stripped):
        return True
    words = _WORD.findall(stripped.lower())
    return bool(words) and words[-1] in _NUMBER_WORDS


@dataclass(frozen=True)
class TurnContext:
    """What the conversation says about a pause, beyond how finished the sentence sounds.

    Attributes:
        asks: the words ask the agent something (``asks_agent``): answer a finished one
            at the pause its score allows.
        narrating: the user already went on after a pause that sounded finished in
            this turn: they are telling something, and a finished sentence is not the end.
        open_number: the words end in a number that may go on in groups.
        addressed: the turn ends in a question mark or cut the agent off: it is put to
            the agent now, even in a story ("..., and then what?"), and is answered at
            the pause its words allow.
    """

    asks: bool = True
    narrating: bool = False
    open_number: bool = False
    addressed: bool = False

    @classmethod
    def of(cls, text: str, narrating: bool = False, interrupting: bool = False) -> TurnContext:
        """The context of a turn whose transcript so far is ``text``; ``interrupting``: the
        turn cut the agent off, so it is addressed to the agent whatever its form."""
        return cls(
            asks=interrupting or asks_agent(text),
            narrating=narrating,
            open_number=ends_in_number(text),
            addressed=interrupting or text.strip().endswith("?"),
        )

    @property
    def held_for_form(self) -> bool:
        """Only the words' form holds the turn: they tell rather than ask (a statement),
        with no story under way and no number going on. A mis-heard question often
        reads so, and a look at the recognizer's other readings may find it."""
        return not (self.addressed or self.asks or self.narrating or self.open_number)

    @property
    def may_go_on(self) -> bool:
        """A finished sentence here is often followed by more after a pause (a story, a
        statement the user goes on from, the next group of digits)."""
        if self.addressed:
            return False
        return self.narrating or self.open_number or not self.asks


def pause_needed_ms(score: float | None, cfg: TurnConfig, context: TurnContext | None = None) -> float:
    """The silence the turn-taker waits for before answering a turn that scored ``score``.

    None (no transcript scored yet) waits ``end_silence_ms``. Otherwise the pause
    falls from ``max_end_silence_ms`` to ``min_end_silence_ms`` as the score crosses
    ``eot_midpoint``: a logistic, not a line, so a finished question the small EOU
    model is only moderately sure of (0.6-0.8; questions can always go on) does not
    wait a second, while fragments (below ~0.3) keep nearly the whole pause.

    Where the ``context`` says the user may go on (a statement rather than a question
    or request, a story under way, a number read in groups), the pause is at least
    ``hold_pause_ms``: longer than people pause between sentences or groups.
    """
    if score is None:
        return float(cfg.end_silence_ms)
    lo, hi = cfg.min_end_silence_ms, cfg.max_end_silence_ms
    if cfg.eot_width <= 0:
        needed = float(lo if score >= cfg.eot_midpoint else hi)
    else:
        unsure = 1.0 / (1.0 + math.exp((score - cfg.eot_midpoint) / cfg.eot_width))
        needed = lo + unsure * (hi - lo)
    if context is not None and context.may_go_on:
        needed = max(needed, float(cfg.hold_pause_ms))
    return needed


@dataclass
class UserTurn:
    """The user's turn being built (possibly across mid-utterance pauses), in stream ms."""

    open: bool = False
    start_ms: float = 0.0
    speech_end_ms: float = 0.0  # the turn's last voice, which its pause is timed from
    requested_end_ms: float = -1.0  # end of the span last sent for transcription (-1: none)
    final_text: str | None = None
    eot_score: float | None = None
    context: TurnContext | None = None  # of the final transcript
    narrating: bool = False  # went on after a pause whose words sounded finished
    interrupting: bool = False  # the turn began by cutting the agent off
    asked_on_quiet: bool = False  # the transcript was asked for at a quiet frame the VAD still voiced
    looked_again: bool = False  # a look at the final's other readings was asked for (``LookAgain``)
    quiet_spent: bool = False  # quiet voice went on past the grace: no quiet ask until loud voice again

    @property
    def speech_ms(self) -> float:
        """From the turn's first onset to its last voice."""
        return self.speech_end_ms - self.start_ms

    @property
    def asked(self) -> bool:
        """A transcript (and a draft) was requested for the turn as it stands."""
        return self.requested_end_ms >= 0

    def request_final(self, on_quiet: bool = False) -> Transcribe:
        """Ask for the final transcript up to the end of speech (and a held draft);
        ``on_quiet``: asked at a frame fallen to silence that the VAD still voiced."""
        self.requested_end_ms = self.speech_end_ms
        self.asked_on_quiet = on_quiet
        self.looked_again = False
        return Transcribe(self.start_ms, self.speech_end_ms, draft=True)

    def look_again(self) -> LookAgain | None:
        """Ask once for another look at a final held only for its form
        (``TurnContext.held_for_form``): the turn waits over a second anyway."""
        if self.looked_again or self.context is None or not self.context.held_for_form:
            return None
        self.looked_again = True
        return LookAgain(self.start_ms, self.requested_end_ms)

    def within_quiet_grace(self, last_voice_ms: float) -> bool:
        """Asked at a quiet frame, and the VAD's voice since then is no longer than its
        usual lag (``QUIET_GRACE_MS``): still the end of speech, not quiet speech."""
        return self.asked_on_quiet and last_voice_ms - self.requested_end_ms <= QUIET_GRACE_MS

    def forget_final(self, finished_at: float | None = None) -> None:
        """The user went on: the transcript asked for no longer fits the turn.

        Args:
            finished_at: an end-of-turn score from which words count as finished
                (``eot_midpoint``): if the transcript of the pause scored so and did
                not ask anything, the user is narrating for the rest of this turn.
                None: do not judge.
        """
        finished = finished_at is not None and self.eot_score is not None and self.eot_score >= finished_at
        # Going on after a finished question or request is saying more about it ("What
        # is the best time of year? To visit Japan."), not telling a story.
        if finished and (self.context is None or not self.context.asks):
            self.narrating = True
        self.requested_end_ms = -1.0
        self.asked_on_quiet = False
        self.final_text = None
        self.eot_score = None
        self.context = None

    def hear_final(self, signals: ListenSignals) -> None:
        """Take the final transcript from ``signals`` if it is the one requested, and score it."""
        if signals.final_text is not None and abs(signals.final_end_ms - self.requested_end_ms) < 1e-6:
            self.final_text = signals.final_text
            self.eot_score = blend_end_of_turn(signals.final_text, signals.eot_score)
            self.context = TurnContext.of(signals.final_text, self.narrating, self.interrupting)


class Endpointing:
    """When to ask for the user's words and when their turn is over (``[turn]``).

    Args:
        cfg: the ``[turn]`` section.
    """

    def __init__(self, cfg: TurnConfig) -> None:
        self.cfg = cfg

    def ask_in_hangover(self, turn: UserTurn, silence_ms: float) -> bool:
        """An unvoiced frame inside the hangover declares the end of speech: a
        ``preempt_silence_ms`` shorter than the hangover asks for the transcript here."""
        return (
            not turn.asked
            and silence_ms >= self.cfg.preempt_silence_ms
            and turn.speech_ms >= self.cfg.min_turn_ms
        )

    def ask_after_speech(self, turn: UserTurn, silence_ms: float) -> bool:
        """Speech has stopped and paused long enough to ask for the transcript (and a
        draft); a turn too short to be one is dropped instead (``too_short``)."""
        return not turn.asked and silence_ms >= self.cfg.preempt_silence_ms

    def ask_on_quiet(self, turn: UserTurn) -> bool:
        """A voiced frame has fallen to silence by its level (``UserLevel.quiet``): ask for
        the transcript now, as at the first unvoiced frame."""
        return not turn.asked and turn.speech_ms >= self.cfg.min_turn_ms

    def too_short(self, turn: UserTurn) -> bool:
        """A click or a cough: no turn."""
        return turn.speech_ms < self.cfg.min_turn_ms

    def turn_over(self, turn: UserTurn, silence_ms: float) -> bool:
        """The pause is long enough for what the transcript and the turn's context say
        (``pause_needed_ms``)."""
        return silence_ms >= pause_needed_ms(turn.eot_score, self.cfg, turn.context)
