"""The cascade's hearing: VAD onsets, partial transcripts, finals and their end of turn.

Per tick ``listen`` runs the VAD on the input frame and collects what the two
hearing lanes finished:

- the *partial* lane (background) transcribes while the user talks (the partials
  prefill the LLM's prompt; their end of turn is not scored);
- the *listen* lane transcribes a final when the turn-taker asks (``transcribe``):
  a turn resumed after a pause reuses the finals of its earlier stretches and reads
  only the new one; the final's end of turn is scored, and when it reads as
  unfinished a second (and a wider) look re-reads it (``asr_rescore``); a final the
  turn-taker holds for its form gets one look when it asks (``look_again``).

Hearing never touches the draft itself: what the draft must do about what was
heard (prefill, start, pause, start again) goes back to the session as
``DraftRequest`` values (``results``), in the order it was heard.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field

import numpy as np

from duplex.audio.ring import RingBuffer
from duplex.config import AsrConfig
from duplex.events import ErrorEvent, Event, UserTranscriptFinal, UserTranscriptPartial
from duplex.lanes import Job, Lane
from duplex.models.actions import LookAgain, Transcribe
from duplex.models.asr_rescore import Looker
from duplex.models.base import ListenSignals
from duplex.models.cascade.results import (
    DraftRequest,
    EouScore,
    Final,
    HearingResult,
    Kept,
    LookingAgain,
    Partial,
    PauseDraft,
    Prefill,
    RestartDraft,
    Revised,
    StartDraft,
)
from duplex.models.cascade.transcribing import final_job, look_job, partial_job
from duplex.models.stages import EndOfUtteranceScorer, SpeechRecognizer, VoiceActivityDetector

# How long a final waits for the draft's LLM to score its end of utterance.
EOU_WAIT_MS = 600.0


@dataclass
class _Voice:
    """Where the user's voice was: onsets and the current stretch of speech (ms)."""

    onsets: collections.deque[float] = field(default_factory=lambda: collections.deque(maxlen=64))
    since_ms: float | None = None  # the current stretch began (None: no speech yet)
    last_ms: float = -1e9  # end of the last voiced frame


@dataclass
class _Partials:
    """The partial transcript in flight, and where the next one may start."""

    job: Job | None = None
    last_ms: float = -1e9
    # Partials never reach back before this (ms): the answer taken, or the barge-in
    # being judged, must not be confirmed by words of an earlier stretch.
    floor_ms: float = -1e9


@dataclass
class _FinalRead:
    """The final being read (``job``) and the words of the last one read."""

    job: Job | None = None
    span: tuple[float, float] = (0.0, 0.0)  # the turn's speech (ms)
    segment_start_ms: float = 0.0  # where the stretch this final reads starts
    text: str = ""
    confidence: float | None = None
    compute_ms: float = 0.0
    # A final held until the draft's LLM scores its end of utterance: (since ms, P or None).
    held: tuple[float, float | None] | None = None
    # The finals of the current turn's stretches: (start ms, end ms, words).
    segments: list[tuple[float, float, str]] = field(default_factory=list)
    # What the last final read, for a look the turn-taker asks for: the stretch's
    # audio and the words of the stretches before it.
    audio: np.ndarray | None = None
    head: str = ""
    looked: bool = False  # looked at again already (one look a final)

    def event(self, t_ms: float) -> UserTranscriptFinal:
        return UserTranscriptFinal(t_ms, self.text, self.span[0], self.span[1])


# A stretch of a turn is reused (its final not read again) when the user paused this
# long after it: a shorter gap is inside a phrase, and the words need each other.
REUSE_AFTER_PAUSE_MS = 500.0


@dataclass
class _Heard:
    """What one tick's listen found, as the turn-taker gets it."""

    partial: str | None = None
    final: str | None = None
    final_end_ms: float = 0.0
    confidence: float | None = None
    eot: float | None = None
    events: list[Event] = field(default_factory=list)
    requests: list[DraftRequest] = field(default_factory=list)

    def take_final(self, read: _FinalRead) -> None:
        self.final, self.final_end_ms, self.confidence = read.text, read.span[1], read.confidence


class Hearing:
    """One conversation's hearing state over the session's VAD, recognizers and lanes."""

    def __init__(
        self,
        *,
        asr_settings: AsrConfig,
        rate: int,
        frame_ms: float,
        vad_threshold: float,
        vad: VoiceActivityDetector,
        asr: SpeechRecognizer,
        asr_partial: SpeechRecognizer,
        eou: EndOfUtteranceScorer | None,
        second_look: Looker | None,
        eou_from_llm: bool,
        listen_lane: Lane,
        partial_lane: Lane,
    ) -> None:
        self.settings = asr_settings
        self.rate = rate
        self.frame_ms = frame_ms
        self.vad_threshold = vad_threshold
        self.vad, self.asr, self.asr_partial = vad, asr, asr_partial
        self.eou, self.second_look, self.eou_from_llm = eou, second_look, eou_from_llm
        self.listen_lane, self.partial_lane = listen_lane, partial_lane
        self.input = RingBuffer(int(rate * (asr_settings.max_utterance_s + 4)))
        self.voice = _Voice()
        self.partials = _Partials()
        self.final = _FinalRead()

    @property
    def final_compute_ms(self) -> float:
        """The recognizer's time on the last final (the latency breakdown's ``asr_final``)."""
        return self.final.compute_ms

    def _ms_to_sample(self, t_ms: float) -> int:
        return int(round(t_ms * self.rate / 1000.0))

    def _audio_span(self, start_ms: float, end_ms: float) -> np.ndarray:
        return self.input.since(self._ms_to_sample(start_ms))[
            : self._ms_to_sample(end_ms - start_ms)
        ]

    # ------------------------------------------------------------------ listen
    def listen(
        self,
        frame: np.ndarray,
        t_ms: float,
        *,
        drafting: bool,
        agent_speaking: bool,
        echo_db: float,
    ) -> tuple[ListenSignals, list[DraftRequest]]:
        """Hear one input frame.

        Args:
            frame: the echo-cancelled input frame.
            t_ms: its stream time.
            drafting: a draft is held for the turn in progress.
            agent_speaking: a response plays, not paused (what is heard is its echo).
            echo_db: the level of the agent's output in this frame.

        Returns:
            the turn-taker's signals, and what the draft must do, in order.
        """
        self.input.write(frame)
        step = self.vad.frame_samples
        prob = max(self.vad.probability(frame[i : i + step]) for i in range(0, len(frame), step))
        rms = float(np.sqrt(np.mean(frame.astype(np.float64) ** 2)) + 1e-12)
        frame_end = t_ms + self.frame_ms
        voice = self.voice
        if prob >= self.vad_threshold:
            if frame_end - voice.last_ms > 300:
                voice.onsets.append(t_ms)
            if voice.since_ms is None or frame_end - voice.last_ms > 800:
                voice.since_ms = t_ms
            voice.last_ms = frame_end
        heard = _Heard()
        for r in self.partial_lane.poll(frame_end) + self.listen_lane.poll(frame_end):
            if r.error is not None:
                heard.events.append(ErrorEvent(t_ms, f"ASR failed: {r.error}", "asr_failed"))
                if r.job is self.final.job:
                    heard.final, heard.final_end_ms = "", self.final.span[1]
                    self.final.job = None
                continue
            if r.item is not None:
                self._heard(r.job, r.item, t_ms, frame_end, drafting, heard)
        final = self.final
        if final.held is not None:
            since, scored = final.held
            # Released with the draft's score, or without one if the draft is gone or late.
            if scored is not None or not drafting or frame_end - since > EOU_WAIT_MS:
                final.held = None
                heard.take_final(final)
                heard.eot = scored
        self._maybe_partial(frame_end, agent_speaking)
        signals = ListenSignals(
            vad_prob=prob,
            energy_db=20.0 * np.log10(rms),
            echo_db=echo_db,
            partial_text=heard.partial,
            final_text=heard.final,
            final_end_ms=heard.final_end_ms,
            final_confidence=heard.confidence,
            eot_score=heard.eot,
            events=tuple(heard.events),
        )
        return signals, heard.requests

    def _heard(
        self,
        job: Job,
        item: HearingResult,
        t_ms: float,
        frame_end: float,
        drafting: bool,
        heard: _Heard,
    ) -> None:
        """Record one result, if its job is still wanted (the partial or the final in flight)."""
        final = self.final
        wanted = job is final.job
        match item:
            case Partial(text=text) if job is self.partials.job:
                self.partials.job = None
                if text:
                    heard.partial = text
                    heard.events.append(UserTranscriptPartial(t_ms, text))
                    heard.requests.append(Prefill(text, frame_end))
            case Final() as got if wanted:
                # The recognizer's own time: the job's time also counts the EOU score.
                final.confidence, final.compute_ms = got.confidence, got.compute_ms
                final.segments.append((final.segment_start_ms, final.span[1], got.segment))
                final.text = got.text
                # The draft starts now, while the EOU model scores.
                heard.requests.append(StartDraft(got.text, t_ms))
                if self.eou_from_llm and got.text.strip() and drafting:
                    final.job = None
                    final.held = (frame_end, None)
                    heard.events.append(final.event(t_ms))
                elif self.eou is None or not got.text.strip():
                    final.job = None
                    heard.events.append(final.event(t_ms))
                    heard.take_final(final)
            case LookingAgain() if wanted:
                final.looked = True  # the final's own job looks: none to ask for after it
                heard.requests.append(PauseDraft())
            case Kept() if wanted:
                final.job = None
            case Revised() as got if wanted:
                # A second look read the words otherwise: the draft starts again from them.
                final.confidence, final.compute_ms = got.confidence, got.compute_ms
                final.segments[-1] = (final.segment_start_ms, final.span[1], got.segment)
                final.text = got.text
                heard.requests.append(RestartDraft(got.text, t_ms))
            case EouScore(score=score) if wanted:
                final.job = None
                # A draft paused for a look that kept the words starts again from them.
                heard.requests.append(StartDraft(final.text, t_ms))
                heard.events.append(final.event(t_ms))  # the words as finally read
                heard.take_final(final)
                heard.eot = score  # P(utterance complete); the turn-taker blends it

    def score_held_final(self, score: float) -> None:
        """The draft's LLM scored the final held for it: release it at the next listen."""
        if self.final.held is not None:
            self.final.held = (self.final.held[0], score)

    # ------------------------------------------------------------------ partials
    def _maybe_partial(self, frame_end: float, agent_speaking: bool) -> None:
        interval = self.settings.partial_interval_ms
        voice, partials = self.voice, self.partials
        if interval <= 0 or partials.job is not None or voice.since_ms is None:
            return
        if self.final.job is not None or self.final.held is not None:
            return  # the final reads this speech now: a partial would only take its cores
        if agent_speaking:
            return  # what is heard now is the agent's own echo until a barge-in pauses it
        if frame_end - voice.last_ms > 0 or frame_end - partials.last_ms < interval:
            return
        start = max(
            voice.since_ms - 200,
            partials.floor_ms,
            frame_end - 1000 * self.settings.max_utterance_s,
        )
        audio = self._audio_span(start, frame_end)
        if len(audio) < self.rate * 0.4:
            return
        partials.last_ms = frame_end
        job = partial_job(audio, self.asr_partial)
        partials.job = self.partial_lane.submit("asr-partial", job, frame_end)

    def restart_partials(self, floor_ms: float) -> None:
        """Drop the partial in flight and start the next one from ``floor_ms``."""
        partials = self.partials
        if partials.job is not None:
            self.partial_lane.cancel(partials.job)
            partials.job = None
        partials.floor_ms = floor_ms
        partials.last_ms = -1e9

    # ------------------------------------------------------------------ finals
    def drop_final(self) -> None:
        """Forget the final in flight or held (its turn was discarded or taken), and any
        look at it still to come."""
        self.final.held = None
        self.final.audio = None
        if self.final.job is not None:
            self.listen_lane.cancel(self.final.job)
            self.final.job = None

    def look_again(self, a: LookAgain, t_ms: float) -> None:
        """Look once more at the final of the span ``a`` names, released and not yet
        looked at again: the turn-taker holds it for its form (a statement). Ignored
        without a second look, for another span, or while a read is in flight."""
        final = self.final
        if self.second_look is None or self.eou is None or final.audio is None or final.looked:
            return
        if final.job is not None or final.held is not None or not final.segments:
            return
        if final.span != (a.start_ms, a.end_ms):
            return
        final.looked = True
        words = final.segments[-1][2]
        job = look_job(
            final.audio,
            final.head,
            words,
            final.compute_ms,
            self.eou,
            self.second_look,
            self.settings.held_look_gain,
        )
        final.job = self.listen_lane.submit("asr-look", job, t_ms + self.frame_ms)

    def transcribe(self, a: Transcribe, t_ms: float) -> None:
        """Start reading the final of the speech ``a`` names (any final in flight is dropped)."""
        self.drop_final()
        if self.partials.job is not None:
            self.partial_lane.cancel(self.partials.job)
            self.partials.job = None
        final = self.final
        # A turn resumed after a pause: reuse the finals of its earlier stretches and
        # transcribe only the new one (a long turn's final stays as fast as a short one's).
        known = [sg for sg in final.segments if sg[0] >= a.start_ms and sg[1] <= a.end_ms]
        if not known or known[0][0] != a.start_ms:
            known = []
        seg_start = a.start_ms
        while known:
            resumed = [o for o in self.voice.onsets if known[-1][1] < o < a.end_ms]
            if resumed and resumed[0] - known[-1][1] >= REUSE_AFTER_PAUSE_MS:
                seg_start = resumed[0] - 100
                break
            # A short gap after this stretch: read it again with what follows, the
            # recognizer needs the context (a lone "France" is easily misheard). The
            # stretches before it, each ended by a real pause, are kept: a story's
            # next final reads from its last pause, not from the story's first word.
            known.pop()
        final.segments = list(known)
        head = " ".join(sg[2].rstrip(".") for sg in known if sg[2])  # a pause is not a full stop
        if seg_start >= a.end_ms:
            seg_start, head, final.segments = a.start_ms, "", []
        # A little context either side keeps word edges intact.
        start = max(0.0, seg_start - 160)
        end = a.end_ms + 120
        audio = self._audio_span(start, min(end, t_ms + self.frame_ms))
        final.span = (a.start_ms, a.end_ms)
        final.segment_start_ms = seg_start
        final.audio, final.head, final.looked = audio, head, False
        job = final_job(
            audio, head, self.asr, self.eou, self.second_look, self.settings.rescore_below
        )
        final.job = self.listen_lane.submit("asr-final", job, t_ms + self.frame_ms)
