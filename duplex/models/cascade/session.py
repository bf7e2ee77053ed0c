"""One conversation in the cascade: the per-tick glue between hearing and responding.

Per tick ``listen`` hears the input frame (``hearing``) and hands the draft what
it must do about it; ``act`` carries out the turn-taker's decisions; ``think``
collects the drafts' results; ``speak`` plays exactly one output frame
(``responding``).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np

from duplex.events import Event
from duplex.models.actions import (
    Action,
    Backchannel,
    DiscardDraft,
    LookAgain,
    PauseOutput,
    ResumeOutput,
    StopOutput,
    TakeTurn,
    Transcribe,
)
from duplex.models.base import AgentStatus, LaneFactory, ListenSignals, SpeakResult
from duplex.models.cascade.hearing import Hearing
from duplex.models.cascade.responding import Responding
from duplex.models.cascade.results import PauseDraft, Prefill, RestartDraft, StartDraft
from duplex.models.stages import (
    ChatMessage,
    SpeechSynthesizer,
    TextGenerator,
    Tool,
    ToolChoice,
    VoiceActivityDetector,
)

if TYPE_CHECKING:
    from duplex.models.cascade.model import CascadeSettings, CascadeStages

log = logging.getLogger(__name__)

# A barge-in is detected this long after the user's sound began (onset frames + VAD lag).
BURST_LOOKBACK_MS = 250.0


class CascadeSession:
    """One conversation's state in the cascade: its ``hearing`` and its ``responding``."""

    def __init__(
        self,
        settings: CascadeSettings,
        stages: CascadeStages,
        session_id: str,
        make_lane: LaneFactory,
    ) -> None:
        self.session_id = session_id
        frame = settings.frame_samples
        asr = stages.asr()
        asr_partial = stages.asr_partial() if stages.asr_partial else asr
        eou = stages.eou() if stages.eou else None
        second_look = stages.asr_second_look() if stages.asr_second_look and eou else None
        # This session's own stages; the ones made so far are freed if a later one fails.
        owned: list[VoiceActivityDetector | TextGenerator | SpeechSynthesizer] = []
        try:
            self.vad = stages.vad()
            owned.append(self.vad)
            self.llm = stages.llm()
            owned.append(self.llm)
            self.tts = stages.tts()
            owned.append(self.tts)
            if self.vad.frame_samples != frame and frame % self.vad.frame_samples:
                raise ValueError(
                    f"frame of {frame} samples is not a multiple of the VAD frame ({self.vad.frame_samples})"
                )
        except BaseException:
            for stage in reversed(owned):
                stage.close()
            raise
        self.listen_lane = make_lane(f"{session_id}-listen")
        # Partials run on a lane of their own: a final never waits behind a partial.
        self.partial_lane = make_lane(f"{session_id}-partial", background=True)
        self.respond_lane = make_lane(f"{session_id}-respond")
        frame_ms = float(settings.audio.frame_ms)
        self.hearing = Hearing(
            asr_settings=settings.asr,
            rate=settings.audio.input_sample_rate,
            frame_ms=frame_ms,
            vad_threshold=settings.vad_threshold,
            vad=self.vad,
            asr=asr,
            asr_partial=asr_partial,
            eou=eou,
            second_look=second_look,
            eou_from_llm=stages.eou_from_llm and eou is None,
            listen_lane=self.listen_lane,
            partial_lane=self.partial_lane,
        )
        self.responding = Responding(
            session_id=session_id,
            llm_settings=settings.llm,
            llm=self.llm,
            tts=self.tts,
            respond_lane=self.respond_lane,
            out_rate=settings.audio.output_sample_rate,
            out_frame=settings.output_frame_samples,
            frame_ms=frame_ms,
            output_lookahead_ms=settings.output_lookahead_ms,
            backchannel_text=settings.backchannel_text,
        )

    # ------------------------------------------------------------------ listen
    def listen(self, frame: np.ndarray, t_ms: float) -> ListenSignals:
        responding = self.responding
        signals, requests = self.hearing.listen(
            frame,
            t_ms,
            drafting=responding.drafting,
            agent_speaking=responding.playback.speaking,
            echo_db=responding.playback.echo_db,
        )
        for request in requests:
            match request:
                case Prefill(text=text, t_ms=at):
                    responding.prefill(text, at)
                case StartDraft(text=text, t_ms=at):
                    responding.start_draft(text, at)
                case PauseDraft():
                    responding.pause_draft()
                case RestartDraft(text=text, t_ms=at):
                    responding.restart_draft(text, at)
        return signals

    # ------------------------------------------------------------------ act
    def act(self, actions: list[Action], t_ms: float) -> list[Event]:
        events: list[Event] = []
        for a in actions:
            match a:
                case Transcribe():
                    self._discard_draft()
                    self.hearing.transcribe(a, t_ms)
                    if a.draft:
                        self.responding.open_draft()
                case LookAgain():
                    self.hearing.look_again(a, t_ms)
                case DiscardDraft():
                    self._discard_draft()
                case TakeTurn():
                    events.extend(self._take_turn(a, t_ms))
                case PauseOutput():
                    self.responding.playback.paused = True
                    # Judge the burst on its own audio: onset detection plus VAD lag ago.
                    self.hearing.restart_partials(t_ms - BURST_LOOKBACK_MS)
                case ResumeOutput():
                    self.responding.playback.paused = False
                    self.hearing.restart_partials(t_ms)
                case StopOutput():
                    events.extend(self.responding.playback.end(t_ms, interrupted=True))
                    self._discard_draft()
                case Backchannel():
                    events.extend(self.responding.playback.backchannel(t_ms))
        return events

    def _discard_draft(self) -> None:
        """Drop the turn's draft: the final it waits for and the draft itself."""
        self.hearing.drop_final()
        self.responding.discard_draft()

    def _take_turn(self, a: TakeTurn, t_ms: float) -> list[Event]:
        text = a.text.strip()
        if not a.options.answer:
            # Only the user's words into the history; the client asks for the answer.
            self._discard_draft()
            self.responding.record_user(text)
            self.hearing.restart_partials(t_ms)
            return []
        self.hearing.drop_final()  # a look at the final still in flight is moot now
        if not self.responding.draft_answers(text, a.options):
            self._discard_draft()
        events = self.responding.take_turn(a, t_ms, self.hearing.final_compute_ms)
        self.hearing.restart_partials(t_ms)
        return events

    # ------------------------------------------------------------------ think, speak
    def think(self, t_ms: float) -> list[Event]:
        events, score = self.responding.think(t_ms)
        if score is not None:
            self.hearing.score_held_final(score)
        return events

    def speak(self, t_ms: float) -> SpeakResult:
        return self.responding.playback.speak(t_ms)

    # ------------------------------------------------------------------ control
    def truncate(self, response_id: str, audio_end_ms: float, t_ms: float) -> list[Event]:
        """Keep in the history only what was heard of ``response_id`` up to ``audio_end_ms``."""
        return self.responding.playback.truncate(response_id, audio_end_ms, t_ms)

    def set_instructions(self, text: str) -> None:
        """The system prompt of the following responses."""
        self.responding.dialogue.set_system(text)

    def set_tools(self, tools: tuple[Tool, ...], tool_choice: ToolChoice) -> None:
        """The functions the following responses may call, and whether they must."""
        self.responding.set_tools(tools, tool_choice)

    def add_message(self, message: ChatMessage) -> None:
        """Append a client's item to the history (text, earlier answers, a tool's result)."""
        self.responding.dialogue.add(message)

    def set_history(self, messages: list[ChatMessage]) -> None:
        """Replace the history (the client deleted or inserted items)."""
        self.responding.dialogue.replace(messages)

    def status(self) -> AgentStatus:
        return self.responding.playback.status()

    def close(self) -> None:
        """Stop the lanes, then free this session's own stages (their state; the shared
        weights stay loaded for the other sessions)."""
        stopped = [
            lane.close() for lane in (self.partial_lane, self.listen_lane, self.respond_lane)
        ]
        if not all(stopped):
            # A step still runs on an owned stage: freeing its state now would pull it
            # from under that step, so it stays allocated (and its weights loaded).
            log.warning(
                "session %s: a lane did not stop in time; its stages are left allocated",
                self.session_id,
            )
            return
        for stage in (self.vad, self.llm, self.tts):
            stage.close()
