"""The cascade's output side: the released response playing, one frame a tick.

A response taken from the drafts plays from the playout queue; its text and
tool calls are emitted as they are released. Its end, played through or cut
off, puts what the user heard into the history (``truncate`` shortens it
later) and is reported once, in the tick's ``SpeakResult.finished``. A
backchannel plays aside, outside any response.
"""

from __future__ import annotations

import numpy as np

from duplex.audio.playout import PlayoutQueue, ResponseTrack
from duplex.audio.resample import resample
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
from duplex.lanes import Lane
from duplex.models.base import AgentStatus, SpeakResult
from duplex.models.cascade.draft import Draft
from duplex.models.context import Dialogue
from duplex.models.stages import ChatMessage, SpeechSynthesizer

# How far back the agent's played words count as its possible echo: the echo delay,
# the burst heard and the context the recognizer adds around it.
ECHO_WORDS_S = 3.0
SILENCE_DB = -120.0


# How long a backchannel's echo may still reach the microphone after its last sample.
ASIDE_ECHO_TAIL_MS = 250.0


class Playback:
    """What one conversation plays: the response, a backchannel aside, or silence."""

    def __init__(
        self,
        *,
        tts: SpeechSynthesizer,
        respond_lane: Lane,
        dialogue: Dialogue,
        out_rate: int,
        out_frame: int,
        backchannel_text: str,
    ) -> None:
        self.tts, self.lane, self.dialogue = tts, respond_lane, dialogue
        self.out_rate, self.out_frame = out_rate, out_frame
        self.backchannel_text = backchannel_text
        self.playout = PlayoutQueue(out_rate)
        self.playing: Draft | None = None  # the response released to play
        self.paused = False  # a barge-in is being judged: the response holds its place
        self.last_frame_speech = False  # the last output frame carried response audio
        self._aside_ms = 0.0  # the backchannel's remaining audio and echo tail (ms)
        self.echo_db = SILENCE_DB  # the level of that frame
        self.ended = False  # a response ended this tick (``SpeakResult.finished``)
        self.last_track: ResponseTrack | None = None  # the last response played (``truncate``)
        self._backchannel: np.ndarray | None = None  # float32, synthesized once per session
        self._aside = np.zeros(0, np.float32)  # a backchannel being played

    @property
    def speaking(self) -> bool:
        """A response plays and is not paused (the input is its echo)."""
        return self.playing is not None and not self.paused

    def start(self, draft: Draft, t_ms: float, events: list[Event]) -> None:
        """Play ``draft`` from now on, and emit what it has released so far."""
        self.playing = draft
        self.ended = False
        self.paused = False
        self.playout.start(draft.response_id)
        self.release(t_ms, events)

    def release(self, t_ms: float, events: list[Event]) -> None:
        """Emit the playing draft's new text and calls; queue its new audio for playout."""
        draft = self.playing
        if draft is None or draft.held:
            return
        events.extend(AgentTextDelta(t_ms, draft.response_id, part) for part in draft.text_parts)
        draft.text_parts.clear()
        for c in draft.calls_to_emit:
            events.append(AgentToolCall(t_ms, draft.response_id, c.call_id, c.name, c.arguments))
        draft.calls_to_emit.clear()
        for chunk in draft.audio:
            self.playout.append(chunk.samples, chunk.text, list(chunk.words))
        draft.audio.clear()

    # ------------------------------------------------------------------ speak
    def speak(self, t_ms: float) -> SpeakResult:
        """One output frame: the playing response's, a backchannel's, or silence."""
        events: list[Event] = []
        draft = self.playing
        self._aside_ms = max(0.0, self._aside_ms - 1000.0 * self.out_frame / self.out_rate)
        if draft is None and len(self._aside):
            frame = np.zeros(self.out_frame, np.float32)
            n = min(len(self._aside), self.out_frame)
            frame[:n], self._aside = self._aside[:n], self._aside[n:]
            self.last_frame_speech = False  # not a response: the state stays listening
            events.append(AgentAudio(t_ms, "", frame, self.out_rate, aside=True))
            return self._result(frame, events)
        if draft is not None and len(self._aside):
            # An answer starts: the rest of a "mhm" would come after it. Only the echo
            # tail of what was played is left of the aside.
            self._aside = self._aside[:0]
            self._aside_ms = min(self._aside_ms, ASIDE_ECHO_TAIL_MS)
        if draft is None or self.paused:
            self.last_frame_speech = False
            self.echo_db = SILENCE_DB
            return self._result(np.zeros(self.out_frame, np.float32), events)
        frame, real = self.playout.pop(self.out_frame)
        self.last_frame_speech = real > 0
        if real:
            rms = float(np.sqrt(np.mean(frame.astype(np.float64) ** 2)) + 1e-12)
            self.echo_db = 20.0 * np.log10(rms)
            if not draft.started:
                draft.started = True
                latency = t_ms - draft.end_of_speech_ms
                endpointing = draft.taken_ms - draft.end_of_speech_ms
                breakdown = {"endpointing": endpointing, **draft.stage_ms}
                events.append(AgentAudioStarted(t_ms, draft.response_id, latency, breakdown))
            events.append(AgentAudio(t_ms, draft.response_id, frame, self.out_rate))
        else:
            self.echo_db = SILENCE_DB
        if draft.done and self.playout.queued_samples == 0 and not draft.audio:
            events.extend(self.end(t_ms + 1000.0 * real / self.out_rate, interrupted=False))
        return self._result(frame, events)

    def _result(self, frame: np.ndarray, events: list[Event]) -> SpeakResult:
        """The tick's output, and whether a response ended in it (reported once)."""
        finished, self.ended = self.ended, False
        return SpeakResult(frame, events, finished=finished)

    def end(self, t_ms: float, interrupted: bool) -> list[Event]:
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
        self.last_track = track
        self.playout.track = None
        self.ended = True
        self.paused = False
        played_ms = track.played_ms
        return [
            AgentAudioDone(t_ms, draft.response_id, interrupted, played_ms, heard, full.strip())
        ]

    def backchannel(self, t_ms: float) -> list[Event]:
        """Queue a short, quiet acknowledgement; synthesized once per session and reused."""
        if self.playing is not None:
            return []
        text = self.backchannel_text
        if self._backchannel is None:
            chunks = list(self.tts.synthesize(text))
            audio = (
                np.concatenate([c.samples for c in chunks]) if chunks else np.zeros(0, np.float32)
            )
            quiet = 0.5 * resample(audio, self.tts.sample_rate, self.out_rate)
            self._backchannel = quiet.astype(np.float32)
        self._aside = self._backchannel.copy()
        self._aside_ms = 1000.0 * len(self._aside) / self.out_rate + ASIDE_ECHO_TAIL_MS
        return [AgentBackchannel(t_ms, text)]

    # ------------------------------------------------------------------ history
    def truncate(self, response_id: str, audio_end_ms: float, t_ms: float) -> list[Event]:
        """Keep in the history only what was heard of ``response_id`` up to ``audio_end_ms``."""
        last, now = self.last_track, self.playout.track
        track = last if last and last.response_id == response_id else None
        if track is None and now is not None and now.response_id == response_id:
            track = now
        if track is None:
            return [ErrorEvent(t_ms, f"no response {response_id} to truncate", "unknown_response")]
        heard = track.heard_text(int(audio_end_ms * self.out_rate / 1000))
        self.dialogue.replace_last_assistant(heard, interrupted=True)
        return []

    # ------------------------------------------------------------------ status
    def status(self) -> AgentStatus:
        """What the output side does now (a pure read)."""
        d = self.playing
        track = self.playout.track
        # Only a paused output's burst is judged against the agent's words: spare every other tick.
        recent: tuple[str, ...] = ()
        if track is not None and self.paused:
            recent = track.recent_words(int(ECHO_WORDS_S * self.out_rate))
        return AgentStatus(
            responding=d is not None,
            playing=self.last_frame_speech,
            aside=self._aside_ms > 0,
            response_id=d.response_id if d else "",
            recent_words=recent,
        )
