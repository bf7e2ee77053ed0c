"""The cascade's responding: the draft's lifecycle, playout, backchannels and the history.

A draft starts as soon as the user's words are known, before the turn is taken:
it is *held* (its text and audio queued, not played) until ``take_turn``
releases it or ``discard_draft`` throws it away; a second look *pauses* it (its
job stops) and it starts again from the words the look kept or read anew. A
released draft *plays*: one output frame a tick from the playout queue, its
text and tool calls emitted as they come. Its end, played through or cut off,
puts what the user heard into the history (``truncate`` shortens it later).
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass, field

import numpy as np

from duplex.audio.playout import PlayoutQueue, ResponseTrack
from duplex.audio.resample import resample
from duplex.config import LlmConfig
from duplex.events import (
    AgentAudio,
    AgentAudioDone,
    AgentAudioStarted,
    AgentBackchannel,
    AgentTextDelta,
    AgentToolCall,
    ErrorEvent,
    Event,
)
from duplex.models.actions import ResponseOptions, TakeTurn
from duplex.models.base import AgentStatus, SpeakResult
from duplex.models.cascade.draft import Draft, draft_job, prefill_job
from duplex.models.cascade.results import AudioChunk, Clause, Done, EouScore, Pending, Prefilled
from duplex.models.context import Dialogue
from duplex.models.stages import (
    ChatMessage,
    SpeechSynthesizer,
    TextGenerator,
    Tool,
    ToolCall,
    ToolChoice,
)
from duplex.runtime.lanes import Job, Lane

log = logging.getLogger(__name__)

# How far back the agent's played words count as its possible echo: the echo delay,
# the burst heard and the context the recognizer adds around it.
ECHO_WORDS_S = 3.0
SILENCE_DB = -120.0


@dataclass
class _Output:
    """What the output side played, and what it keeps apart from any response."""

    paused: bool = False  # a barge-in is being judged: the response holds its place
    last_frame_speech: bool = False  # the last output frame carried response audio
    echo_db: float = SILENCE_DB  # the level of that frame
    ended: bool = False  # a response ended this tick (``SpeakResult.finished``)
    last_track: ResponseTrack | None = None  # the last response played (``truncate``)
    backchannel: np.ndarray | None = None  # float32, synthesized once per session
    aside: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))  # a backchannel playing


class Responding:
    """One conversation's answers: the held draft, the one playing, and the dialogue."""

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
        self.out_rate, self.out_frame, self.frame_ms = out_rate, out_frame, frame_ms
        self.output_lookahead_ms = output_lookahead_ms
        self.backchannel_text = backchannel_text
        self.playout = PlayoutQueue(out_rate)
        self.dialogue = Dialogue(llm_settings.system_prompt)
        self.tools: tuple[Tool, ...] = ()
        self.tool_choice: ToolChoice = "auto"
        self._ids = itertools.count(1)
        self.draft: Draft | None = None  # held for the turn in progress
        self.playing: Draft | None = None  # released: its audio plays
        self.output = _Output()

    @property
    def drafting(self) -> bool:
        """A draft is held for the turn in progress."""
        return self.draft is not None

    @property
    def speaking(self) -> bool:
        """A response plays and is not paused (the input is its echo)."""
        return self.playing is not None and not self.output.paused

    def _new_id(self) -> str:
        return f"resp_{self.session_id}_{next(self._ids)}"

    # ------------------------------------------------------------------ drafts
    def prefill(self, partial: str, t_ms: float) -> None:
        """Warm the LLM's cache with the partial transcript while the user still talks."""
        prefill = self.llm.prefill
        if prefill is None or self.playing is not None or self.draft is not None or self.lane.busy():
            return
        self.lane.submit("llm-prefill", prefill_job(prefill, self.dialogue.messages_with_user(partial)), t_ms)

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
        return draft is not None and draft.user_text == text and bool(text) and not opts.changes_prompt

    def _tools(self, opts: ResponseOptions) -> tuple[tuple[Tool, ...], ToolChoice]:
        """The functions the response offers the LLM, and the choice (none: no tools)."""
        tools = self.tools if opts.tools is None else opts.tools
        choice = opts.tool_choice or self.tool_choice
        if not tools or choice == "none":
            return (), choice
        if not self.llm.supports_tools:
            log.warning("the LLM stage cannot call functions: the %d tools offered are ignored", len(tools))
            return (), choice
        return tuple(tools), choice

    def _start(self, draft: Draft, t_ms: float) -> Job:
        messages = self.dialogue.messages_with_user(draft.user_text, draft.options.instructions)
        tools, choice = self._tools(draft.options)
        job = draft_job(
            self.llm, self.tts, messages, max_tokens=self.settings.max_tokens, out_rate=self.out_rate,
            tools=tools, tool_choice=choice,
        )  # fmt: skip

        def may_step() -> bool:
            # Backpressure: never synthesize more than the lookahead ahead of playback.
            return self.playout.queued_ms < self.output_lookahead_ms or draft.held and len(draft.audio) < 2

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
            draft.response_id = opts.response_id  # held, never announced: it takes the caller's name
        self.draft = None
        draft.held = False
        draft.end_of_speech_ms = a.end_of_speech_ms
        draft.taken_ms = t_ms
        draft.stage_ms["asr_final"] = asr_final_ms
        events: list[Event] = []
        if self.playing is not None:  # its words go into the history before the user's
            events.extend(self.end_playing(t_ms, interrupted=True))
        if text and opts.record:
            self.dialogue.add_user(text)
        draft.history_at = self.dialogue.mark()
        self.playing = draft
        self.output.ended = False
        self.output.paused = False
        self.playout.start(draft.response_id)
        self._release(draft, t_ms, events)
        return events

    def pause(self) -> None:
        self.output.paused = True

    def resume(self) -> None:
        self.output.paused = False

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
            for d in (self.playing, self.draft):
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
        if self.playing is not None:
            self._release(self.playing, t_ms, events)
        return events, score

    def _release(self, draft: Draft, t_ms: float, events: list[Event]) -> None:
        """Emit a released draft's text and calls; queue its audio for playout."""
        if draft.held:
            return
        events.extend(AgentTextDelta(t_ms, draft.response_id, part) for part in draft.text_parts)
        draft.text_parts.clear()
        for call in draft.calls_to_emit:
            events.append(AgentToolCall(t_ms, draft.response_id, call.call_id, call.name, call.arguments))
        draft.calls_to_emit.clear()
        for chunk in draft.audio:
            self.playout.append(chunk.samples, chunk.text, list(chunk.words))
        draft.audio.clear()

    # ------------------------------------------------------------------ speak
    def speak(self, t_ms: float) -> SpeakResult:
        """One output frame: the playing response's, a backchannel's, or silence."""
        events: list[Event] = []
        out = self.output
        draft = self.playing
        if draft is None and len(out.aside):
            frame = np.zeros(self.out_frame, np.float32)
            n = min(len(out.aside), self.out_frame)
            frame[:n], out.aside = out.aside[:n], out.aside[n:]
            out.last_frame_speech = False  # not a response: the state stays listening
            return self._result(frame, events)
        if draft is None or out.paused:
            out.last_frame_speech = False
            out.echo_db = SILENCE_DB
            return self._result(np.zeros(self.out_frame, np.float32), events)
        frame, real = self.playout.pop(self.out_frame)
        out.last_frame_speech = real > 0
        if real:
            rms = float(np.sqrt(np.mean(frame.astype(np.float64) ** 2)) + 1e-12)
            out.echo_db = 20.0 * np.log10(rms)
            if not draft.started:
                draft.started = True
                latency = t_ms - draft.end_of_speech_ms
                breakdown = {"endpointing": draft.taken_ms - draft.end_of_speech_ms, **draft.stage_ms}
                events.append(AgentAudioStarted(t_ms, draft.response_id, latency, breakdown))
            events.append(AgentAudio(t_ms, draft.response_id, frame, self.out_rate))
        else:
            out.echo_db = SILENCE_DB
        if draft.done and self.playout.queued_samples == 0 and not draft.audio:
            events.extend(self.end_playing(t_ms + 1000.0 * real / self.out_rate, interrupted=False))
        return self._result(frame, events)

    def _result(self, frame: np.ndarray, events: list[Event]) -> SpeakResult:
        """The tick's output, and whether a response ended in it (reported once)."""
        finished, self.output.ended = self.output.ended, False
        return SpeakResult(frame, events, finished=finished)

    def end_playing(self, t_ms: float, interrupted: bool) -> list[Event]:
        """End the playing response: what the user heard of it goes into the history."""
        draft = self.playing
        track: ResponseTrack | None = self.playout.track
        if draft is None or track is None:
            return []
        if draft.job is not None:
            self.lane.cancel(draft.job)
        self.playout.flush()
        heard = track.heard_text() if interrupted else track.text
        full = track.text + "".join(" " + p for p in draft.text_parts)
        if draft.options.record and draft.tool_calls:
            message = ChatMessage("assistant", heard.strip(), tool_calls=tuple(draft.tool_calls))
            self.dialogue.add(message, at=draft.history_at)
        elif draft.options.record:
            self.dialogue.add_assistant(heard, interrupted=interrupted, at=draft.history_at)
        self.playing = None
        self.output.last_track = track
        self.playout.track = None
        self.output.ended = True
        self.output.paused = False
        return [AgentAudioDone(t_ms, draft.response_id, interrupted, track.played_ms, heard, full.strip())]

    def backchannel(self, t_ms: float) -> list[Event]:
        """Queue a short, quiet acknowledgement; synthesized once per session and reused."""
        if self.playing is not None:
            return []
        text = self.backchannel_text
        out = self.output
        if out.backchannel is None:
            chunks = list(self.tts.synthesize(text))
            audio = np.concatenate([c.samples for c in chunks]) if chunks else np.zeros(0, np.float32)
            out.backchannel = (0.5 * resample(audio, self.tts.sample_rate, self.out_rate)).astype(np.float32)
        out.aside = out.backchannel.copy()
        return [AgentBackchannel(t_ms, text)]

    # ------------------------------------------------------------------ history
    def truncate(self, response_id: str, audio_end_ms: float, t_ms: float) -> list[Event]:
        """Keep in the history only what was heard of ``response_id`` up to ``audio_end_ms``."""
        last = self.output.last_track
        track = last if last and last.response_id == response_id else None
        if track is None and self.playout.track is not None and self.playout.track.response_id == response_id:
            track = self.playout.track
        if track is None:
            return [ErrorEvent(t_ms, f"no response {response_id} to truncate", "unknown_response")]
        heard = track.heard_text(int(audio_end_ms * self.out_rate / 1000))
        self.dialogue.replace_last_assistant(heard, interrupted=True)
        return []

    def set_tools(self, tools: tuple[Tool, ...], tool_choice: ToolChoice) -> None:
        self.tools, self.tool_choice = tools, tool_choice

    # ------------------------------------------------------------------ status
    def status(self) -> AgentStatus:
        """What the output side does now (a pure read)."""
        d = self.playing
        track = self.playout.track
        # Only a paused output's burst is judged against the agent's words: spare every other tick.
        recent: tuple[str, ...] = ()
        if track is not None and self.output.paused:
            recent = track.recent_words(int(ECHO_WORDS_S * self.out_rate))
        return AgentStatus(
            responding=d is not None,
            playing=self.output.last_frame_speech,
            response_id=d.response_id if d else "",
            recent_words=recent,
        )
