"""The cascade's responding: the drafts' lifecycle, from the user's words to playout.

A draft starts as soon as the user's words are known, before the turn is taken:
it is *held* (its text and audio queued, not played) until ``take_turn``
releases it to ``playback`` or ``discard_draft`` throws it away; a second look
*pauses* it (its job stops) and it starts again from the words the look kept or
read anew. The dialogue history and the functions offered live here too.
"""

from __future__ import annotations

import itertools
import logging

from duplex.config import LlmConfig
from duplex.events import ErrorEvent, Event
from duplex.lanes import Job, Lane
from duplex.models.actions import ResponseOptions, TakeTurn
from duplex.models.cascade.draft import Draft, draft_job, prefill_job
from duplex.models.cascade.playback import Playback
from duplex.models.cascade.results import AudioChunk, Clause, Done, EouScore, Pending, Prefilled
from duplex.models.context import Dialogue
from duplex.models.stages import SpeechSynthesizer, TextGenerator, Tool, ToolCall, ToolChoice

log = logging.getLogger(__name__)


class Responding:
    """One conversation's answers: the held draft, its ``playback``, and the dialogue."""

    def __init__(
        self,
        *,
        session_id: str,
        llm_settings: LlmConfig,
        llm: TextGenerator,
        tts: SpeechSynthesizer,
        respond_lane: Lane,
        out_rate: int,
        out_frame: int,
        frame_ms: float,
        output_lookahead_ms: float,
        backchannel_text: str,
    ) -> None:
        self.session_id = session_id
        self.settings = llm_settings
        self.llm, self.tts, self.lane = llm, tts, respond_lane
        self.out_rate, self.frame_ms = out_rate, frame_ms
        self.output_lookahead_ms = output_lookahead_ms
        self.dialogue = Dialogue(llm_settings.system_prompt)
        self.tools: tuple[Tool, ...] = ()
        self.tool_choice: ToolChoice = "auto"
        self._ids = itertools.count(1)
        self.draft: Draft | None = None  # held for the turn in progress
        self.playback = Playback(
            tts=tts,
            respond_lane=respond_lane,
            dialogue=self.dialogue,
            out_rate=out_rate,
            out_frame=out_frame,
            backchannel_text=backchannel_text,
        )

    @property
    def drafting(self) -> bool:
        """A draft is held for the turn in progress."""
        return self.draft is not None

    def _new_id(self) -> str:
        return f"resp_{self.session_id}_{next(self._ids)}"

    # ------------------------------------------------------------------ drafts
    def prefill(self, partial: str, t_ms: float) -> None:
        """Warm the LLM's cache with the partial transcript while the user still talks."""
        prefill = self.llm.prefill
        if prefill is None or self.playback.playing is not None or self.draft is not None:
            return
        if self.lane.busy():  # a draft, or the last prefill, still computes
            return
        messages = self.dialogue.messages_with_user(partial)
        self.lane.submit("llm-prefill", prefill_job(prefill, messages), t_ms)

    def open_draft(self) -> None:
        """Hold a draft for the turn being transcribed; it starts once its words are known."""
        self.draft = Draft(self._new_id(), "", None)

    def start_draft(self, text: str, t_ms: float) -> None:
        """The held draft, if it has not started, answers ``text``."""
        draft = self.draft
        if draft is None or draft.job is not None or not text.strip():
            return
        draft.user_text = text.strip()
        draft.job = self._start(draft, t_ms)

    def pause_draft(self) -> None:
        """Stop the held draft's job; ``start_draft`` starts it again (the words may change)."""
        if self.draft is not None and self.draft.job is not None:
            self.lane.cancel(self.draft.job)
            self.draft = Draft(self.draft.response_id, "", None)

    def restart_draft(self, text: str, t_ms: float) -> None:
        self.pause_draft()
        self.start_draft(text, t_ms)

    def discard_draft(self) -> None:
        """Throw the held draft away (its job is cancelled)."""
        if self.draft is not None:
            if self.draft.job is not None:
                self.lane.cancel(self.draft.job)
            self.draft = None

    def draft_answers(self, text: str, opts: ResponseOptions) -> bool:
        """The held draft answers ``text`` as ``opts`` asks (else a new one must start)."""
        draft = self.draft
        if draft is None or not text or opts.changes_prompt:
            return False
        return draft.user_text == text

    def _tools(self, opts: ResponseOptions) -> tuple[tuple[Tool, ...], ToolChoice]:
        """The functions the response offers the LLM, and the choice (none: no tools)."""
        tools = self.tools if opts.tools is None else opts.tools
        choice = opts.tool_choice or self.tool_choice
        if not tools or choice == "none":
            return (), choice
        if not self.llm.supports_tools:
            log.warning(
                "the LLM stage cannot call functions: the %d tools offered are ignored", len(tools)
            )
            return (), choice
        return tuple(tools), choice

    def _start(self, draft: Draft, t_ms: float) -> Job:
        messages = self.dialogue.messages_with_user(draft.user_text, draft.options.instructions)
        tools, choice = self._tools(draft.options)
        job = draft_job(
            self.llm,
            self.tts,
            messages,
            max_tokens=self.settings.max_tokens,
            out_rate=self.out_rate,
            tools=tools,
            tool_choice=choice,
        )

        def may_step() -> bool:
            # Backpressure: never synthesize more than the lookahead ahead of playback.
            ahead_ms = self.playback.playout.queued_ms
            return ahead_ms < self.output_lookahead_ms or draft.held and len(draft.audio) < 2

        return self.lane.submit("respond", job, t_ms + self.frame_ms, may_step)

    # ------------------------------------------------------------------ the turn
    def record_user(self, text: str) -> None:
        """Only the user's words into the history; the client asks for the answer."""
        if text:
            self.dialogue.add_user(text)

    def take_turn(self, a: TakeTurn, t_ms: float, asr_final_ms: float) -> list[Event]:
        """Release the held draft (or start one) as the answer to ``a``'s words."""
        text, opts = a.text.strip(), a.options
        draft = self.draft
        if draft is None or not self.draft_answers(text, opts):
            draft = Draft(opts.response_id or self._new_id(), text, None, options=opts)
            draft.job = self._start(draft, t_ms)
        elif opts.response_id:
            # Held, never announced: it takes the caller's name.
            draft.response_id = opts.response_id
        self.draft = None
        draft.held = False
        draft.end_of_speech_ms = a.end_of_speech_ms
        draft.taken_ms = t_ms
        draft.stage_ms["asr_final"] = asr_final_ms
        # The answer playing is cut off: its words go into the history before the user's.
        events = self.playback.end(t_ms, interrupted=True)
        if text and opts.record:
            self.dialogue.add_user(text)
        draft.history_at = self.dialogue.mark()
        self.playback.start(draft, t_ms, events)
        return events

    # ------------------------------------------------------------------ think
    def think(self, t_ms: float) -> tuple[list[Event], float | None]:
        """Collect the drafts' results; emit what the playing one released.

        Returns the events and, if the held draft's LLM scored the user's end of
        utterance this tick, that score.
        """
        events: list[Event] = []
        score: float | None = None
        for r in self.lane.poll(t_ms + self.frame_ms):
            draft = None
            for d in (self.playback.playing, self.draft):
                if d is not None and d.job is r.job:
                    draft = d
            if draft is None:
                continue
            if r.error is not None:
                events.append(ErrorEvent(t_ms, f"response failed: {r.error}", "response_failed"))
                draft.done = True
                continue
            match r.item:
                case EouScore(score=p):
                    if draft is self.draft:
                        score = p
                case Clause(text=clause, stage_ms=stage):
                    draft.text_parts.append(clause)
                    draft.stage_ms.update(stage)
                case AudioChunk() as chunk:
                    draft.stage_ms.update(chunk.stage_ms)
                    draft.audio.append(chunk)
                case ToolCall() as call:
                    draft.tool_calls.append(call)
                    draft.calls_to_emit.append(call)
                case Done():
                    draft.done = True
                case Pending() | Prefilled():
                    pass
        self.playback.release(t_ms, events)
        return events, score

    def set_tools(self, tools: tuple[Tool, ...], tool_choice: ToolChoice) -> None:
        """The functions the following responses may call, and whether they must."""
        self.tools, self.tool_choice = tools, tool_choice
