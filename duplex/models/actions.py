"""Commands the turn-taker (policy layer) hands to a model session each tick.

They live in the models layer because models execute them; policy imports them."""

from __future__ import annotations

from dataclasses import dataclass

from duplex.models.stages import Tool, ToolChoice


@dataclass(frozen=True)
class ResponseOptions:
    """How one response is made, when a client asks for it (OpenAI's ``response.create``).

    Attributes:
        response_id: the caller's id for the response ("": the model names it).
        instructions: replace the system prompt for this response only.
        tools: the functions this response may call (None: the session's).
        tool_choice: "auto", "none", "required" or a function's name (None: the session's).
        record: False keeps the response out of the history (an out-of-band answer).
        answer: False only records the user's words, without answering them (a client
            commit with turn detection off: the client asks for the response itself).
    """

    response_id: str = ""
    instructions: str | None = None
    tools: tuple[Tool, ...] | None = None
    tool_choice: ToolChoice | None = None
    record: bool = True
    answer: bool = True

    @property
    def changes_prompt(self) -> bool:
        """True when a draft made without these options does not answer as they ask."""
        return self.instructions is not None or self.tools is not None or self.tool_choice is not None


@dataclass(frozen=True)
class Action:
    """Base of the turn-taker's decisions."""


@dataclass(frozen=True)
class Transcribe(Action):
    """Transcribe the user's audio in [start_ms, end_ms] (a final transcript).

    ``draft`` asks the model to also start drafting a response, held until
    ``TakeTurn`` (preemptive generation).
    """

    start_ms: float
    end_ms: float
    draft: bool = True


@dataclass(frozen=True)
class LookAgain(Action):
    """Read the final transcript of [start_ms, end_ms] once more: the recognizer's other
    readings, re-ranked by a language model (``asr_rescore``).

    The turn-taker asks it of a final it would hold only for its form (a statement,
    not a question or a request): it waits over a second anyway, and a mis-heard
    question often reads as a statement ("You wrote Romino and do it yet." for "Who
    wrote Romeo and Juliet?"). A reading the language model finds far likelier
    (``models.asr.held_look_gain``) comes back as a final for the same span; a model
    without a second look ignores this.
    """

    start_ms: float
    end_ms: float


@dataclass(frozen=True)
class DiscardDraft(Action):
    """The user went on speaking: throw away any transcript/response drafted so far."""


@dataclass(frozen=True)
class TakeTurn(Action):
    """The user's turn ended: answer ``text`` (release the draft if it matches).

    ``text`` empty answers the history as it stands (a client asked for a response).
    """

    text: str
    end_of_speech_ms: float
    options: ResponseOptions = ResponseOptions()


@dataclass(frozen=True)
class PauseOutput(Action):
    """Hold output (a possible barge-in): keep the queued audio, play silence."""


@dataclass(frozen=True)
class ResumeOutput(Action):
    """A false alarm: continue output from where it paused."""


@dataclass(frozen=True)
class StopOutput(Action):
    """A confirmed interruption: flush all queued audio, cancel generation, truncate history."""


@dataclass(frozen=True)
class Backchannel(Action):
    """Say a short acknowledgement ("mhm") over the user's pause, without taking the turn."""
