"""The end-to-end codec LM (Moshi-class) as a ``DuplexModel``.

The model listens and speaks on every 80 ms frame by itself: there is no
transcript, no response to start and nothing to cancel. The runtime's side of
the conversation is measurement and reporting:

- *listen*: Silero VAD on the input at 16 kHz (the turn-taker still sees speech
  starts, turn ends and barge-ins), then the frame goes to the batch stepper;
- *speak*: the slot's output frame and the text piece the model wrote with it.
  A stretch of agent speech (output level above ``speech_threshold_db`` or a
  non-padding text token, until ``speech_hangover_ms`` of neither) is reported as
  a response: ``AgentAudioStarted`` (latency from the end of the user's speech),
  ``AgentTextDelta`` on the frame each piece accompanies, ``AgentAudio`` per
  frame, ``AgentAudioDone`` at its end;
- the turn-taker's commands are not obeyed but recorded: the model decides
  whether to yield. A stretch during which a barge-in was confirmed ends
  ``interrupted``; the time from the barge-in's pause to the end of the stretch is
  the model's yield time (``CodecLMSession.yields_ms``; in the event log,
  ``agent.audio.done.t_ms`` minus the ``barge_in`` pause's ``t_ms``).

The model has no ASR, so the turn-taker's transcription requests are answered
with a fixed marker (``USER_SPEECH_MARKER``) at the end of a user turn (so it
can hand the turn over and then follow the agent's speech, pauses and barge-ins)
and with an empty text for a burst during agent speech (decided by its duration).
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass, field

import numpy as np

from duplex.audio.resample import StreamResampler
from duplex.config import CodecLmConfig, Config
from duplex.errors import ConfigError
from duplex.events import AgentAudio, AgentAudioDone, AgentAudioStarted, AgentTextDelta, Event
from duplex.models.actions import Action, PauseOutput, StopOutput, TakeTurn, Transcribe
from duplex.models.base import AgentStatus, LaneFactory, ListenSignals, NoTextHistory, SpeakResult
from duplex.models.codec_lm.checkpoint import (
    CodecBundle,
    import_moshi,
    load_checkpoint,
    resolve_device,
)
from duplex.models.codec_lm.resample import SoxrFrameResampler

log = logging.getLogger(__name__)

USER_SPEECH_MARKER = "[user speech]"
"""Stands in for the user's words at the end of a turn: this backend has no ASR."""

FRAME_MS = 80
_VAD_RATE = 16000


def _level_db(x: np.ndarray) -> float:
    return 20.0 * float(np.log10(np.sqrt(np.mean(x.astype(np.float64) ** 2)) + 1e-12)) if len(x) else -120.0


class CodecLMModel:
    """A Moshi-class checkpoint loaded once, with a fixed batch of session slots.

    Args:
        config: the profile (audio rates, VAD, turn thresholds).
        settings: ``[models.codec_lm]``; None reads ``config.models.codec_lm``.
        bundle: already loaded models (tests); None loads ``settings.path``.
    """

    def __init__(self, config: Config, settings: CodecLmConfig | None = None, bundle: CodecBundle | None = None) -> None:
        if settings is None:
            settings = getattr(config.models, "codec_lm", None) or CodecLmConfig()
        if config.audio.frame_ms != FRAME_MS:
            raise ConfigError(f"the codec LM steps on {FRAME_MS} ms frames; set audio.frame_ms = {FRAME_MS}")
        if settings.slots < config.engine.max_sessions:
            log.warning(
                "engine.max_sessions = %d but models.codec_lm.slots = %d: sessions past the slots are refused",
                config.engine.max_sessions, settings.slots,
            )
        import_moshi("cpu" if settings.device == "cpu" else settings.device)
        import torch

        from duplex.models.codec_lm.core import CodecCore
        from duplex.models.codec_lm.stepper import BatchStepper
        from duplex.models.vad_silero import SileroVad

        device = resolve_device(settings.device)
        if device == "cpu" and settings.threads > 0:
            torch.set_num_threads(settings.threads)
        torch.manual_seed(settings.seed)
        self.config = config
        self.settings = settings
        self.input_sample_rate = config.audio.input_sample_rate
        self.output_sample_rate = config.audio.output_sample_rate
        self.frame_ms = FRAME_MS
        self._vad_path = config.models.vad.path or None
        # Fails early, and holds the shared network while the model lives.
        self._vad_hold = SileroVad(self._vad_path, _VAD_RATE, config.models.vad.threads)
        if bundle is None:
            bundle = load_checkpoint(settings.path, device, settings.dtype)
        self.core = CodecCore(bundle, settings.slots, settings, self.input_sample_rate, self.output_sample_rate)
        wait_ms = settings.batch_wait_ms if settings.batch_wait_ms > 0 else 0.4 * FRAME_MS
        self.stepper = BatchStepper(self.core, wait_ms)

    def open_session(self, session_id: str, make_lane: LaneFactory) -> CodecLMSession:
        """Join a free slot (``BackendError`` when all are taken)."""
        return CodecLMSession(self, session_id)

    def close(self) -> None:
        self.core.close()
        self._vad_hold.close()


@dataclass
class _Stretch:
    """One stretch of agent speech: reported as a response."""

    response_id: str
    start_ms: float
    last_speech_end_ms: float
    quiet_ms: float = 0.0
    text: list[str] = field(default_factory=list)
    barge_pause_ms: float | None = None
    interrupted: bool = False


class CodecLMSession(NoTextHistory):
    """One conversation: a slot in the batch, a VAD, and the bookkeeping of agent speech."""

    def __init__(self, model: CodecLMModel, session_id: str) -> None:
        from duplex.models.vad_silero import SileroVad

        self.model = model
        self.session_id = session_id
        self.settings = model.settings
        self.core = model.core
        self.stepper = model.stepper
        cfg = model.config
        self.frame_ms = float(FRAME_MS)
        self.in_rate, self.out_rate = cfg.audio.input_sample_rate, cfg.audio.output_sample_rate
        self.out_frame = cfg.output_frame_samples
        self.vad_threshold = cfg.turn.vad_threshold
        self.vad = SileroVad(model._vad_path, _VAD_RATE, cfg.models.vad.threads)
        self._to_vad = StreamResampler(self.in_rate, _VAD_RATE) if self.in_rate != _VAD_RATE else None
        self._vad_carry = np.zeros(0, np.float32)
        self._vad_prob = 0.0
        core = self.core
        self._to_model = (
            SoxrFrameResampler(self.in_rate, core.input_rate, core.in_frame_samples) if core.input_rate != self.in_rate else None
        )
        self._from_model = (
            SoxrFrameResampler(core.output_rate, self.out_rate, self.out_frame) if core.output_rate != self.out_rate else None
        )
        self.slot = self.stepper.join()
        self._ticket: int | None = None
        self._ids = itertools.count(1)
        self._stretch: _Stretch | None = None
        self._finished = False  # a stretch ended in this tick (``SpeakResult.finished``)
        self._pending: list[Event] = []
        self._final: tuple[str, float] | None = None  # answer to the last Transcribe
        self._taken: tuple[float, float] | None = None  # (turn taken at, end of user speech)
        self._user_voice_end_ms: float | None = None
        self._echo_db = -120.0
        self._closed = False
        self.yields_ms: list[float] = []  # barge-in pause → end of the agent's stretch

    def set_sampling(self, temperature: float, temperature_text: float, top_k: int = 0, top_k_text: int = 0) -> None:
        """This session's own sampling settings (0 temperature = greedy)."""
        self.stepper.set_sampling(self.slot, temperature, temperature_text, top_k, top_k_text)

    # ------------------------------------------------------------------ listen
    def _vad_probability(self, frame: np.ndarray) -> float:
        x = self._to_vad.process(frame) if self._to_vad is not None else frame
        buf = np.concatenate([self._vad_carry, x]) if len(self._vad_carry) else x
        step = self.vad.frame_samples
        probs = [self.vad.probability(buf[i : i + step]) for i in range(0, len(buf) - step + 1, step)]
        self._vad_carry = buf[len(probs) * step :]
        if probs:
            self._vad_prob = max(probs)
        return self._vad_prob

    def listen(self, frame: np.ndarray, t_ms: float) -> ListenSignals:
        frame = frame.astype(np.float32, copy=False)
        model_in = self._to_model.process(frame) if self._to_model is not None else frame
        self._ticket = self.stepper.submit(self.slot, model_in)
        prob = self._vad_probability(frame)
        if prob >= self.vad_threshold:
            self._user_voice_end_ms = t_ms + self.frame_ms
        final_text, final_end = None, 0.0
        if self._final is not None:
            final_text, final_end = self._final
            self._final = None
        return ListenSignals(
            vad_prob=prob,
            energy_db=_level_db(frame),
            echo_db=self._echo_db,
            final_text=final_text,
            final_end_ms=final_end,
            # No words to judge: scored as finished, so the VAD pause alone (the shortest one
            # the turn-taker allows) ends the turn, as the codec LM always has.
            eot_score=1.0 if final_text else None,
        )

    # ------------------------------------------------------------------ act
    def act(self, actions: list[Action], t_ms: float) -> list[Event]:
        for a in actions:
            if isinstance(a, Transcribe):
                # No ASR: a turn's end gets the marker, a burst over agent speech is judged by duration.
                self._final = (USER_SPEECH_MARKER if a.draft else "", a.end_ms)
            elif isinstance(a, TakeTurn):
                if self._stretch is None:
                    self._taken = (t_ms, a.end_of_speech_ms)
            elif isinstance(a, PauseOutput):
                if self._stretch is not None and self._stretch.barge_pause_ms is None:
                    self._stretch.barge_pause_ms = t_ms
            elif isinstance(a, StopOutput):
                if self._stretch is not None:
                    self._stretch.interrupted = True
                self._taken = None
            # ResumeOutput, DiscardDraft: the model never paused and drafts nothing.
        return []

    # ------------------------------------------------------------------ think
    def think(self, t_ms: float) -> list[Event]:
        events, self._pending = self._pending, []
        return events

    # ------------------------------------------------------------------ speak
    def speak(self, t_ms: float) -> SpeakResult:
        if self._ticket is None:
            return self._result(np.zeros(self.out_frame, np.float32), [])
        out = self.stepper.result(self.slot, self._ticket)
        self._ticket = None
        pcm = self._from_model.process(out.pcm) if self._from_model is not None else out.pcm
        level = _level_db(pcm)
        self._echo_db = level
        speech = out.audio_tokens is not None and (level >= self.settings.speech_threshold_db or bool(out.text))
        events: list[Event] = []
        frame_end = t_ms + self.frame_ms
        st = self._stretch
        if st is None and speech:
            st = self._stretch = self._start_stretch(t_ms, events)
        if st is not None:
            if out.text:
                st.text.append(out.text)
                events.append(AgentTextDelta(t_ms, st.response_id, out.text))
            events.append(AgentAudio(t_ms, st.response_id, pcm, self.out_rate))
            if speech:
                st.last_speech_end_ms, st.quiet_ms = frame_end, 0.0
            else:
                st.quiet_ms += self.frame_ms
                if st.quiet_ms >= self.settings.speech_hangover_ms:
                    events.append(self._end_stretch(st))
        elif self._taken is not None and t_ms - self._taken[0] >= self.settings.no_reply_ms:
            # The model let the turn pass: tell the turn-taker this "response" is over.
            self._taken = None
            self._finished = True
        return self._result(pcm, events)

    def _result(self, pcm: np.ndarray, events: list[Event]) -> SpeakResult:
        """The tick's output, and whether a stretch ended in it (reported once)."""
        finished, self._finished = self._finished, False
        return SpeakResult(pcm, events, finished=finished)

    def _start_stretch(self, t_ms: float, events: list[Event]) -> _Stretch:
        rid = f"resp_{self.session_id}_{next(self._ids)}"
        breakdown = {"codec_lm_step": self.core.last_step_ms}
        if self._taken is not None:
            taken_ms, end_of_speech = self._taken
            breakdown["endpointing"] = taken_ms - end_of_speech
            latency = t_ms - end_of_speech
        elif self._user_voice_end_ms is not None:
            latency = t_ms - self._user_voice_end_ms  # <= 0 when the model speaks over the user
        else:
            latency = 0.0  # the model spoke first
        self._taken = None
        events.append(AgentAudioStarted(t_ms, rid, latency, breakdown))
        return _Stretch(rid, t_ms, t_ms)

    def _end_stretch(self, st: _Stretch) -> AgentAudioDone:
        self._stretch = None
        self._finished = True
        if st.barge_pause_ms is not None:
            yielded = st.last_speech_end_ms - st.barge_pause_ms
            self.yields_ms.append(yielded)
            log.info("session %s: agent yielded %.0f ms after a barge-in", self.session_id, yielded)
        text = "".join(st.text).strip()
        return AgentAudioDone(
            st.last_speech_end_ms, st.response_id, st.interrupted, st.last_speech_end_ms - st.start_ms, text, text
        )

    # ------------------------------------------------------------------ status
    def status(self) -> AgentStatus:
        st = self._stretch
        return AgentStatus(
            responding=st is not None or self._taken is not None,
            playing=st is not None,
            response_id=st.response_id if st else "",
        )

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.stepper.leave(self.slot)
            self.vad.close()
