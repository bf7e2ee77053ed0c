"""A session: one conversation's input buffer, turn-taker, model state and events.

``push_audio`` may be called from any thread; the engine calls ``step`` once per
tick with one input frame. All of a session's state lives here or in its model
session, and is dropped with it.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Protocol

import numpy as np

from duplex.audio.frame import as_mono_float32
from duplex.audio.resample import StreamResampler
from duplex.config import Config
from duplex.errors import AudioFormatError, SessionClosed
from duplex.events import AgentAudioDone, ErrorEvent, Event, InputDropped, SessionStarted, Stall
from duplex.events import SessionClosed as SessionClosedEvent
from duplex.models.actions import ResponseOptions
from duplex.models.base import ModelSession
from duplex.models.stages import ChatMessage, Tool, ToolChoice
from duplex.policy.echo import echo_guard_for
from duplex.policy.echo_cancel import echo_canceller_for
from duplex.policy.turn_taker import ConvState, TurnTaker
from duplex.runtime import heap
from duplex.runtime.channel import EventChannel
from duplex.runtime.lanes import inline_compute_ms
from duplex.runtime.metrics import TickMetrics

log = logging.getLogger(__name__)


class Recorder(Protocol):
    """Takes every tick's input and output frame, in stream time
    (``duplex.audio.conversation_writer.ConversationWriter``,
    ``duplex.runtime.recording.SessionRecording``)."""

    def write_tick(self, user: np.ndarray, agent: np.ndarray) -> None: ...

    def close(self) -> None: ...


class Session:
    """One conversation. Create through ``Runtime.open_session``."""

    def __init__(
        self,
        session_id: str,
        config: Config,
        model_session: ModelSession,
        *,
        event_log: Callable[[Event], None] | None = None,
    ) -> None:
        self.id = session_id
        self.config = config
        self.model = model_session
        self.turn_taker = TurnTaker(config.turn, config.barge_in, float(config.audio.frame_ms))
        self.frame_samples = config.frame_samples
        self.frame_ms = float(config.audio.frame_ms)
        budget = config.engine.tick_budget_ms or self.frame_ms
        self.metrics = TickMetrics(budget_ms=budget)
        self.channel = EventChannel(config.engine.event_queue_size)
        self._inbox: collections.deque[np.ndarray] = collections.deque()
        self._inbox_samples = 0
        self._partial = np.zeros(0, np.float32)
        self._lock = threading.Lock()
        self._resamplers: dict[int, StreamResampler] = {}
        self.ticks = 0
        self.closed = False
        self.dropped_input_samples = 0
        self._drops_unreported = 0  # input.dropped events: at most one a second
        self._drops_reported_wall = 0.0
        # Silence the engine ticked in because the client sent nothing for a while:
        # stream time runs this far ahead of the client's own count of samples sent.
        self.filled_input_samples = 0
        self.last_input_wall = time.monotonic()
        self.trace: list[tuple[float, float, str, float]] | None = None  # (t_ms, vad, state, out_rms)
        # Given every tick's input frame and output frame, in stream time (``duplex run``,
        # ``duplex talk --save``, a server recording); closed with the session.
        self.recorder: Recorder | None = None
        self._controls: collections.deque = collections.deque()
        # Every event as it is emitted, from any thread (a server recording's events.jsonl).
        self.event_log = event_log
        # Echo: the agent's output, as played, is the canceller's reference.
        self.echo = echo_canceller_for(config.echo, config.audio.input_sample_rate, self.frame_samples)
        self.echo_guard = echo_guard_for(config.echo, self.frame_ms)
        self._played = np.zeros(self.frame_samples, np.float32)
        # A response ended in the last tick (its ``SpeakResult.finished``): the turn-taker
        # hears it in this one.
        self._agent_finished = False
        self._to_input_rate = StreamResampler(config.audio.output_sample_rate, config.audio.input_sample_rate)
        self.emit(SessionStarted(0.0, session_id, config.audio.input_sample_rate, config.audio.output_sample_rate, config.audio.frame_ms))

    @property
    def t_ms(self) -> float:
        """Stream time of the next frame to be consumed."""
        return self.ticks * self.frame_ms

    @property
    def state(self) -> ConvState:
        return self.turn_taker.state

    # ---------------------------------------------------------------- input
    def push_audio(self, pcm: np.ndarray | bytes, sample_rate: int | None = None) -> None:
        """Queue user audio. Float32 mono in [-1, 1], int16 PCM, or PCM16 bytes.

        Args:
            pcm: the samples.
            sample_rate: their rate; resampled when it differs from the profile's
                input rate. None means the profile's input rate.

        Raises:
            SessionClosed: the session was closed.
            AudioFormatError: stereo, non-numeric or non-finite input.
        """
        if self.closed:
            raise SessionClosed(f"session {self.id} is closed; open a new one")
        if isinstance(pcm, bytes | bytearray | memoryview):
            from duplex.audio.frame import pcm16_to_float

            samples = pcm16_to_float(bytes(pcm))
        else:
            samples = as_mono_float32(pcm, what="pushed audio")
        rate = sample_rate or self.config.audio.input_sample_rate
        if rate != self.config.audio.input_sample_rate:
            if rate < 8000 or rate > 192000:
                raise AudioFormatError(f"unsupported sample rate {rate} Hz")
            rs = self._resamplers.setdefault(rate, StreamResampler(rate, self.config.audio.input_sample_rate))
            samples = rs.process(samples)
        with self._lock:
            self._inbox.append(samples)
            self._inbox_samples += len(samples)
            self.last_input_wall = time.monotonic()

    def input_backlog(self) -> int:
        """Samples queued and not yet consumed."""
        with self._lock:
            return self._inbox_samples + len(self._partial)

    def bound_backlog(self, max_samples: int) -> None:
        """Drop the oldest input beyond ``max_samples`` (real time cannot wait forever);
        the engine calls it every tick, and drops are reported (``input.dropped``)."""
        with self._lock:
            excess = self._inbox_samples + len(self._partial) - max_samples
            if excess > 0:
                self.dropped_input_samples += excess
                buf = np.concatenate([self._partial, *self._inbox])[excess:]
                self._inbox.clear()
                self._partial = buf
                self._inbox_samples = 0
                self._drops_unreported += excess
        self.report_drops()

    def report_drops(self) -> None:
        """Tell the client about input dropped by the backlog bound (once a second at most)."""
        now = time.monotonic()
        if self._drops_unreported and now - self._drops_reported_wall >= 1.0:
            rate = self.config.audio.input_sample_rate
            self.emit(InputDropped(self.t_ms, 1000.0 * self._drops_unreported / rate, "backlog"))
            self._drops_unreported = 0
            self._drops_reported_wall = now

    def take_frame(self) -> np.ndarray | None:
        """Pop exactly one input frame, or None if less than a frame is queued."""
        n = self.frame_samples
        with self._lock:
            while len(self._partial) < n and self._inbox:
                chunk = self._inbox.popleft()
                self._inbox_samples -= len(chunk)
                self._partial = np.concatenate([self._partial, chunk]) if len(self._partial) else chunk
            if len(self._partial) < n:
                return None
            frame, self._partial = self._partial[:n], self._partial[n:]
        return frame

    # ---------------------------------------------------------------- the tick
    def step(self, frame: np.ndarray) -> np.ndarray:
        """One tick: listen → decide → think → speak. Returns the output frame."""
        t_ms = self.t_ms
        lane_ms0 = inline_compute_ms()
        t0 = time.perf_counter()
        clean = self.echo.process(frame, self._played)
        explained = self.echo_guard.explained(clean, self._played, frame) if self.echo_guard else False
        signals = self.model.listen(clean, t_ms)
        if self.echo_guard is not None:
            signals = dataclasses.replace(
                signals, echo_explained=explained, echo_residual_db=self.echo_guard.expected_db
            )
        t1 = time.perf_counter()
        agent = dataclasses.replace(self.model.status(), finished=self._agent_finished)
        actions, decided = self.turn_taker.update(t_ms, signals, agent)
        events = list(signals.events) + decided
        while self._controls:
            more_actions, more_events = self._controls.popleft()(t_ms)
            actions += more_actions
            events += more_events
        events += self.model.act(actions, t_ms)
        t2 = time.perf_counter()
        events += self.model.think(t_ms)
        t3 = time.perf_counter()
        spoken = self.model.speak(t_ms)
        events += spoken.events
        self._agent_finished = spoken.finished
        self._played = self._reference(spoken.samples)
        t4 = time.perf_counter()
        used_ms = 1000.0 * (t4 - t0) - (inline_compute_ms() - lane_ms0)
        phases = {"listen": 1000 * (t1 - t0), "decide": 1000 * (t2 - t1), "think": 1000 * (t3 - t2), "speak": 1000 * (t4 - t3)}
        speaking = self.turn_taker.state in (ConvState.SPEAKING, ConvState.PAUSED)
        self.metrics.record(used_ms, phases, speaking)
        if used_ms > self.metrics.budget_ms:
            events.append(Stall(t_ms, "tick", used_ms, self.metrics.budget_ms))
        for e in events:
            self.emit(e)
            if isinstance(e, AgentAudioDone):
                heap.trim(self.config.engine.heap_trim_interval_s)  # a calm moment
        if self.trace is not None:
            rms = float(np.sqrt(np.mean(spoken.samples.astype(np.float64) ** 2))) if len(spoken.samples) else 0.0
            self.trace.append((t_ms, signals.vad_prob, self.turn_taker.state.value, rms))
        recorder = self.recorder
        if recorder is not None:
            recorder.write_tick(frame, spoken.samples)
        self.ticks += 1
        return spoken.samples

    def _reference(self, out: np.ndarray) -> np.ndarray:
        """The output frame at the input rate, exactly one input frame long (echo reference)."""
        ref = self._to_input_rate.process(out)
        n = self.frame_samples
        if len(ref) == n:
            return ref
        self._ref_carry = np.concatenate([getattr(self, "_ref_carry", np.zeros(0, np.float32)), ref])
        if len(self._ref_carry) < n:
            return np.pad(self._ref_carry, (n - len(self._ref_carry), 0))
        frame, self._ref_carry = self._ref_carry[:n], self._ref_carry[n:]
        return frame

    def idle(self) -> bool:
        """True when nothing is pending: no response in flight (generated or playing)
        and no user turn open. The conversation state is not consulted: it follows the
        model's end of a response a tick later."""
        return not self.model.status().responding and not self.turn_taker.turn_open

    # ---------------------------------------------------------------- control
    # Called from any thread; applied by the session's own thread at its next tick.
    def commit(self, answer: bool = True) -> None:
        """End the user's turn now (manual turn detection); ``answer`` False only records
        the user's words, for a client that asks for the response itself (``respond``)."""
        self._controls.append(lambda t: self.turn_taker.commit(t, answer))

    def respond(self, options: ResponseOptions | None = None) -> None:
        """Answer now, from the history as it stands (or the turn just committed)."""
        opts = options or ResponseOptions()
        self._controls.append(lambda t: self.turn_taker.respond(t, opts))

    def add_message(self, message: ChatMessage) -> None:
        """Append a message to the history without answering it (a client's item)."""
        self._model_control(lambda: self.model.add_message(message))

    def set_history(self, messages: list[ChatMessage]) -> None:
        """Replace the history the agent answers from (a client edited it)."""
        history = list(messages)
        self._model_control(lambda: self.model.set_history(history))

    def set_tools(self, tools: tuple[Tool, ...], tool_choice: ToolChoice = "auto") -> None:
        """The functions the following responses may call."""
        offered = tuple(tools)
        self._model_control(lambda: self.model.set_tools(offered, tool_choice))

    def _model_control(self, change: Callable[[], None]) -> None:
        """Apply ``change`` to the model session at the next tick."""

        def apply(t_ms: float) -> tuple[list, list]:
            change()
            return [], []

        self._controls.append(apply)

    def clear_input(self) -> None:
        """Drop queued input and the user's turn in progress."""
        with self._lock:
            self._inbox.clear()
            self._inbox_samples = 0
            self._partial = np.zeros(0, np.float32)
        self._controls.append(lambda t: (self.turn_taker.clear(), []))

    def _clip(self, text: str, max_chars: int, what: str) -> str:
        if len(text) <= max_chars:
            return text
        self.error(
            f"{what} clipped to {max_chars} of {len(text)} characters: the LLM context "
            f"holds {self.config.models.llm.n_ctx} tokens (models.llm.n_ctx)",
            f"{what}_clipped",
        )
        return text[:max_chars]

    @property
    def max_instructions_chars(self) -> int:
        """Instructions may fill about half the LLM context (~4 characters a token)."""
        return 2 * self.config.models.llm.n_ctx

    @property
    def max_text_chars(self) -> int:
        """A typed message may fill about a quarter of the LLM context."""
        return self.config.models.llm.n_ctx

    def send_text(self, text: str) -> None:
        """A typed user message, answered at once (clipped to what the context holds)."""
        text = self._clip(text, self.max_text_chars, "text")
        self._controls.append(lambda t: self.turn_taker.take_text_turn(text, t))

    def cancel_response(self) -> None:
        """Stop the agent now: flush its audio, cancel generation."""
        self._controls.append(self.turn_taker.cancel)

    def truncate(self, response_id: str, audio_end_ms: float) -> None:
        """The client played only ``audio_end_ms`` of a response: keep only that in the history."""
        self._controls.append(lambda t: ([], self.model.truncate(response_id, audio_end_ms, t)))

    def set_instructions(self, text: str) -> None:
        """Replace the system prompt for the following responses (clipped to what the
        LLM context holds; the client gets an ``instructions_clipped`` error event)."""
        text = self._clip(text, self.max_instructions_chars, "instructions")
        self._model_control(lambda: self.model.set_instructions(text))

    def set_auto_turns(self, enabled: bool) -> None:
        """Server-side end-of-turn detection on (default) or off (the client commits)."""
        self.turn_taker.auto_turns = enabled

    def set_agent_backchannels(self, enabled: bool) -> None:
        """The agent's own "mhm" in long user turns on or off for this session (the
        profile's ``turn.agent_backchannels`` until then): off for a transport that has no
        way to play audio outside a response."""
        self.turn_taker.backchannels.enabled = enabled

    # ---------------------------------------------------------------- events
    def emit(self, event: Event) -> None:
        log = self.event_log
        if log is not None:
            log(event)
        self.channel.put(event)

    def take_events(self, wait_s: float = 0.0) -> list[Event]:
        """The events emitted and not yet taken, oldest first (an owner that reads them
        between ticks, such as the offline driver, instead of ``events()``).

        Args:
            wait_s: with none queued, wait up to this long for the first (a reader on a
                thread of its own, such as the microphone's); 0: return at once.
        """
        if wait_s > 0:
            first = self.channel.get(timeout=wait_s)
            if first is not None:
                return [first, *self.channel.drain()]
        return self.channel.drain()

    def error(self, message: str, code: str = "error") -> None:
        self.emit(ErrorEvent(self.t_ms, message, code))

    async def events(self) -> AsyncIterator[Event]:
        """Async stream of this session's events until it closes."""
        async for e in self.channel.stream():
            yield e

    def close(self, reason: str = "closed") -> None:
        if self.closed:
            return
        self.closed = True
        recorder, self.recorder = self.recorder, None
        try:
            self.model.close()
            if recorder is not None:
                recorder.close()
        finally:
            self.emit(SessionClosedEvent(self.t_ms, reason))
            self.channel.close()
