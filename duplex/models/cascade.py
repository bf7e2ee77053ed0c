"""The cascade duplex model: VAD + streaming ASR + LLM + streaming TTS.

Per tick the session runs VAD on the input frame (listen), executes the
turn-taker's commands (act), collects finished work from its lanes (think) and
plays exactly one output frame (speak). Long work runs on two lanes:

- the *listen* lane transcribes a final at a pause, scores its end of turn and,
  when it reads as unfinished, takes a second look (n-best re-ranked); a
  background *partial* lane transcribes while the user talks and scores each
  partial's end of turn too, so a final that reads the same finds it cached;
- the *respond* lane drafts the answer: LLM text, cut into clauses, each clause
  synthesized as soon as it is complete, so the first audio comes while the LLM
  still writes the rest. It steps one token at a time, so a draft cancelled or
  paused (for the second look, which needs the cores) stops within a token.

A response drafted before the turn is taken is *held*: queued, not played,
until ``TakeTurn`` releases it or ``DiscardDraft`` throws it away.
"""

from __future__ import annotations

import collections
import itertools
import logging
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from duplex.audio.playout import PlayoutQueue, ResponseTrack
from duplex.audio.resample import resample
from duplex.audio.ring import RingBuffer
from duplex.config import Config
from duplex.events import (
    AgentAudio,
    AgentAudioDone,
    AgentAudioStarted,
    AgentBackchannel,
    AgentTextDelta,
    AgentToolCall,
    ErrorEvent,
    Event,
    UserTranscriptFinal,
    UserTranscriptPartial,
)
from duplex.models.actions import (
    Action,
    Backchannel,
    DiscardDraft,
    PauseOutput,
    ResponseOptions,
    ResumeOutput,
    StopOutput,
    TakeTurn,
    Transcribe,
)
from duplex.models.asr_rescore import Looker, look_again
from duplex.models.base import AgentStatus, LaneFactory, ListenSignals, SpeakResult
from duplex.models.context import Dialogue
from duplex.models.llm_llamacpp import semantic_end_score
from duplex.models.spoken_text import SpokenText
from duplex.models.stages import (
    ChatMessage,
    SpeechRecognizer,
    SpeechSynthesizer,
    TextGenerator,
    Tool,
    ToolCall,
    ToolChoice,
    VoiceActivityDetector,
)
from duplex.models.tts_espeak import voiced_span

log = logging.getLogger(__name__)

_CLAUSE_END = re.compile(r"[.!?](?:[\"')\]]*)\s")
_SOFT_BREAK = re.compile(r"[,;:](?:\s)")
_SPECIAL = re.compile(r"<\|[^|>]*\|>")
_ENDS_PUNCTUATED = re.compile(r"[.!?,;:][\"')\]]*$")


# Words a clause should not end on: the listener hears a seam after "of" or "the".
_WEAK_ENDINGS = frozenset(
    [
        "a", "an", "the", "of", "to", "in", "on", "at", "for", "with", "from", "by", "as", "and",
        "or", "but", "if", "so", "that", "than", "is", "are", "was", "were", "be", "been", "has",
        "have", "had", "do", "does", "did", "can", "could", "will", "would", "should", "may",
        "might", "must", "my", "your", "our", "their", "his", "her", "its", "this", "these",
        "those", "i", "you", "we", "they", "he", "she", "it", "not",
    ]
)


class ClauseSplitter:
    """Cut a stream of text pieces into speakable clauses as early as sense allows.

    The first clause is kept short, because its synthesis is on the critical path
    of the response latency and synthesis time grows with the audio it makes. It
    ends at the first sentence end or comma, or as soon as it has
    ``first_min_words`` complete words and the last one is not a weak ending
    ("of", "the", "is" ...), and at ``first_max_words`` words at the latest. Later
    clauses end at a sentence end, at a comma once they have ``min_words`` words,
    or at ``max_words`` words. ``feed`` takes one piece at a time, so a caller can
    stop between any two tokens.
    """

    def __init__(
        self, first_min_words: int = 3, first_max_words: int = 6, min_words: int = 3, max_words: int = 14
    ) -> None:
        self.first_min_words = first_min_words
        self.first_max_words = first_max_words
        self.min_words = min_words
        self.max_words = max_words
        self._buf = ""
        self._first = True

    def feed(self, piece: str) -> list[str]:
        """The clauses ``piece`` completes (mostly none)."""
        self._buf += piece
        out = []
        while (cut := self._cut()) is not None:
            clause, self._buf = self._buf[:cut].strip(), self._buf[cut:]
            if clause:
                self._first = False
                out.append(clause)
        return out

    def finish(self) -> list[str]:
        """The last clause, once no piece follows."""
        rest, self._buf = self._buf.strip(), ""
        return [rest] if rest else []

    def _cut(self) -> int | None:
        buf, first = self._buf, self._first
        cut = None
        m = _CLAUSE_END.search(buf)
        s = _SOFT_BREAK.search(buf)
        words = buf.split()
        if m:
            cut = m.end()
        if s and (first or len(buf[: s.end()].split()) >= self.min_words) and (cut is None or s.end() < cut):
            cut = s.end()
        # Tokens arrive as " word" pieces: the last word may be unfinished, so
        # a cut by count falls before it.
        complete = words[:-1]
        if cut is None and first and len(complete) >= self.first_min_words:
            last = complete[-1].strip("\"'()").lower()
            if last not in _WEAK_ENDINGS or len(complete) >= self.first_max_words:
                cut = buf.rstrip().rfind(" ")
        elif cut is None and not first and len(words) > self.max_words:
            cut = buf.rstrip().rfind(" ")
        if cut is not None and cut <= 0:
            cut = None
        return cut


def split_clauses(pieces: Iterator[str], **limits: int) -> Iterator[str]:
    """``ClauseSplitter`` over an iterator of pieces (``limits``: its word counts)."""
    splitter = ClauseSplitter(**limits)
    for piece in pieces:
        yield from splitter.feed(piece)
    yield from splitter.finish()


_SEAM_PAD_S = 0.03
# How far back the agent's played words count as its possible echo: the echo delay,
# the burst heard and the context the recognizer adds around it.
_ECHO_WORDS_S = 3.0
# A barge-in is detected this long after the user's sound began (onset frames + VAD lag).
_BURST_LOOKBACK_MS = 250.0
# How long a final waits for the draft's LLM to score its end of utterance.
_EOU_WAIT_MS = 600.0


def trim_seam(
    samples: np.ndarray, words: list[tuple[str, int, int]], rate: int, lead: bool, tail: bool
) -> tuple[np.ndarray, list[tuple[str, int, int]]]:
    """Shorten the silence a synthesizer puts around a clause that is cut mid-sentence.

    A clause cut by word count ("The capital of France" | "is Paris.") would
    otherwise play with the end-of-utterance silence of both halves between
    them. ``lead``/``tail`` trim the silence before/after the voiced span to
    ``_SEAM_PAD_S``; word timings move with the audio.
    """
    if not (lead or tail) or not len(samples):
        return samples, words
    start, end = voiced_span(samples, rate)
    pad = int(_SEAM_PAD_S * rate)
    cut_start = max(0, start - pad) if lead else 0
    cut_end = min(len(samples), end + pad) if tail else len(samples)
    if cut_end <= cut_start:
        return samples, words
    kept = samples[cut_start:cut_end]
    n = len(kept)
    moved = [(w, min(n, max(0, a - cut_start)), min(n, max(0, b - cut_start))) for w, a, b in words]
    return kept, moved


@dataclass
class CascadeStages:
    """Factories for the stages.

    ``vad``, ``llm`` and ``tts`` make a new object for each session, which owns it and
    closes it when the session ends: it holds that conversation's state (RNN state, KV
    cache) over weights loaded once per process (``shared_weights``). The recognizers
    and the end-of-utterance model keep no conversation state: their factories may hand
    every session the same object, which the model owns and ``close`` frees.
    """

    vad: Callable[[], VoiceActivityDetector]
    asr: Callable[[], SpeechRecognizer]
    llm: Callable[[], TextGenerator]
    tts: Callable[[], SpeechSynthesizer]
    asr_partial: Callable[[], SpeechRecognizer] | None = None  # None: the same as ``asr``
    eou: Callable[[], Any] | None = None  # end-of-utterance model: ``end_score(text)`` in 0..1
    # A slower, better reading of a final that scored as unfinished (``asr_rescore``).
    asr_second_look: Callable[[], Looker] | None = None
    # The LLM gives the end-of-utterance probability from its own prompt pass
    # (``last_end_probability``): the final waits for the draft's first token.
    eou_from_llm: bool = False
    # Frees what the sessions share (the shared stages, the model's hold on the weights).
    close: Callable[[], None] = lambda: None


@dataclass
class _Draft:
    """A response being generated, held until the turn is taken."""

    response_id: str
    user_text: str
    job: Any
    held: bool = True
    text_parts: list[str] = field(default_factory=list)
    audio: list[tuple[np.ndarray, str, list[tuple[str, int, int]]]] = field(default_factory=list)
    done: bool = False
    end_of_speech_ms: float = 0.0
    taken_ms: float = 0.0
    stage_ms: dict[str, float] = field(default_factory=dict)
    started: bool = False
    options: ResponseOptions = ResponseOptions()
    tool_calls: list[ToolCall] = field(default_factory=list)  # all the calls it made
    calls_to_emit: list[ToolCall] = field(default_factory=list)
    history_at: tuple[int, int] | None = None  # where its answer goes in the history (Dialogue.mark)


class CascadeModel:
    """The cascade as a ``DuplexModel``: stages loaded once, one session per conversation."""

    def __init__(self, config: Config, stages: CascadeStages) -> None:
        self.config = config
        self.stages = stages
        self.input_sample_rate = config.audio.input_sample_rate
        self.output_sample_rate = config.audio.output_sample_rate
        self.frame_ms = config.audio.frame_ms

    def open_session(self, session_id: str, make_lane: LaneFactory) -> CascadeSession:
        return CascadeSession(self.config, self.stages, session_id, make_lane)

    def close(self) -> None:
        """Free the shared stages (the runtime closes its sessions first)."""
        self.stages.close()


class CascadeSession:
    """One conversation's state in the cascade."""

    def __init__(
        self, config: Config, stages: CascadeStages, session_id: str, make_lane: LaneFactory
    ) -> None:
        self.config = config
        self.session_id = session_id
        self.rate = config.audio.input_sample_rate
        self.out_rate = config.audio.output_sample_rate
        self.frame = config.frame_samples
        self.out_frame = config.output_frame_samples
        self.asr = stages.asr()
        self.asr_partial = stages.asr_partial() if stages.asr_partial else self.asr
        self.eou = stages.eou() if stages.eou else None
        self.asr_second_look = stages.asr_second_look() if stages.asr_second_look and self.eou else None
        self._eou_from_llm = stages.eou_from_llm and self.eou is None
        # This session's own stages; the ones made so far are freed if a later one fails.
        owned: list[Any] = []
        try:
            self.vad = stages.vad()
            owned.append(self.vad)
            self.llm = stages.llm()
            owned.append(self.llm)
            self.tts = stages.tts()
            owned.append(self.tts)
            if self.vad.frame_samples != self.frame and self.frame % self.vad.frame_samples:
                raise ValueError(
                    f"frame of {self.frame} samples is not a multiple of the VAD frame ({self.vad.frame_samples})"
                )
        except BaseException:
            for stage in reversed(owned):
                stage.close()
            raise
        self.listen_lane = make_lane(f"{session_id}-listen")
        # Partials run on a lane of their own: a final never waits behind a partial.
        self.partial_lane = make_lane(f"{session_id}-partial", background=True)
        self.respond_lane = make_lane(f"{session_id}-respond")
        self.input = RingBuffer(int(self.rate * (config.models.asr.max_utterance_s + 4)))
        self.playout = PlayoutQueue(self.out_rate)
        self.dialogue = Dialogue(config.models.llm.system_prompt)
        self.tools: tuple[Tool, ...] = ()
        self.tool_choice: ToolChoice = "auto"
        self._ids = itertools.count(1)
        self._draft: _Draft | None = None
        self._playing: _Draft | None = None
        self._final_job: Any = None
        self._final_span = (0.0, 0.0)
        self._final_segment_start = 0.0  # where the stretch the final reads starts (ms)
        self._final_compute_ms = 0.0
        self._final_text = ""
        self._final_confidence: float | None = None
        # A final held until the draft's LLM scores its end of utterance: (since ms, P or None).
        self._held_final: tuple[float, float | None] | None = None
        self._segments: list[tuple[float, float, str]] = []  # finals of the current turn's stretches
        self._onsets: collections.deque[float] = collections.deque(maxlen=64)  # speech onsets (ms)
        self._partial_job: Any = None
        self._last_partial_ms = -1e9
        # Partials never reach back before this (ms): the answer taken, or the barge-in
        # being judged, must not be confirmed by words of an earlier stretch.
        self._partial_floor_ms = -1e9
        self._speech_since_ms: float | None = None
        self._last_voice_ms = -1e9
        self._paused = False
        self._last_frame_speech = False
        self._finished = False
        self._pending_events: list[Event] = []
        self._echo_db = -120.0
        self._last_track: ResponseTrack | None = None
        self._backchannel_audio: np.ndarray | None = None  # float32
        self._aside = np.zeros(0, np.float32)  # a backchannel being played, outside any response

    # ------------------------------------------------------------------ listen
    def _ms_to_sample(self, t_ms: float) -> int:
        return int(round(t_ms * self.rate / 1000.0))

    def _audio_span(self, start_ms: float, end_ms: float) -> np.ndarray:
        return self.input.since(self._ms_to_sample(start_ms))[: self._ms_to_sample(end_ms - start_ms)]

    def listen(self, frame: np.ndarray, t_ms: float) -> ListenSignals:
        self.input.write(frame)
        step = self.vad.frame_samples
        prob = max(self.vad.probability(frame[i : i + step]) for i in range(0, len(frame), step))
        rms = float(np.sqrt(np.mean(frame.astype(np.float64) ** 2)) + 1e-12)
        energy_db = 20.0 * np.log10(rms)
        frame_end = t_ms + self.config.audio.frame_ms
        if prob >= self.config.turn.vad_threshold:
            if frame_end - self._last_voice_ms > 300:
                self._onsets.append(t_ms)
            if self._speech_since_ms is None or frame_end - self._last_voice_ms > 800:
                self._speech_since_ms = t_ms
            self._last_voice_ms = frame_end
        partial, final, final_end = None, None, 0.0
        eot: float | None = None
        confidence: float | None = None
        for r in self.partial_lane.poll(frame_end) + self.listen_lane.poll(frame_end):
            item: tuple[str, Any] = r.item if r.item is not None else ("error", None)
            kind, payload = item
            if r.error is not None:
                self._pending_events.append(ErrorEvent(t_ms, f"ASR failed: {r.error}", "asr_failed"))
                if r.job is self._final_job:
                    final, final_end = "", self._final_span[1]
                    self._final_job = None
                continue
            if kind == "partial" and r.job is self._partial_job:
                self._partial_job = None
                if payload:
                    partial = payload
                    self._pending_events.append(UserTranscriptPartial(t_ms, payload))
                    self._prefill(payload, frame_end)
            elif kind == "final" and r.job is self._final_job:
                # The recognizer's own time: the job's time also counts the EOU score.
                payload, segment, self._final_confidence, self._final_compute_ms = payload
                self._segments.append((self._final_segment_start, self._final_span[1], segment))
                self._final_text = payload
                self._on_final(payload, t_ms)  # the draft starts now, while the EOU model scores
                if self._eou_from_llm and payload.strip() and self._draft is not None:
                    self._final_job = None
                    self._held_final = (frame_end, None)
                    self._pending_events.append(self._final_event(t_ms))
                elif self.eou is None or not payload.strip():
                    self._final_job = None
                    self._pending_events.append(self._final_event(t_ms))
                    final, final_end, confidence = self._final_signal()
            elif kind == "second_look" and r.job is self._final_job:
                self._pause_draft()
            elif kind == "revised" and r.job is self._final_job:
                # A second look read the words otherwise: the draft starts again from them.
                payload, segment, self._final_confidence, self._final_compute_ms = payload
                self._segments[-1] = (self._final_segment_start, self._final_span[1], segment)
                self._final_text = payload
                self._restart_draft(payload, t_ms)
            elif kind == "eou" and r.job is self._final_job:
                self._final_job = None
                self._on_final(self._final_text, t_ms)  # a draft paused for a look that kept the words
                self._pending_events.append(self._final_event(t_ms))  # the words as finally read
                final, final_end, confidence = self._final_signal()
                eot = float(payload or 0.0)  # P(utterance complete); the turn-taker blends it
        if self._held_final is not None:
            since, scored = self._held_final
            # Released with the draft's score, or without one if the draft is gone or late.
            if scored is not None or self._draft is None or frame_end - since > _EOU_WAIT_MS:
                self._held_final = None
                final, final_end, confidence = self._final_signal()
                eot = scored
        self._maybe_partial(t_ms, frame_end)
        heard, self._pending_events = tuple(self._pending_events), []
        return ListenSignals(
            vad_prob=prob,
            energy_db=energy_db,
            echo_db=self._echo_db,
            partial_text=partial,
            final_text=final,
            final_end_ms=final_end,
            final_confidence=confidence,
            eot_score=eot,
            events=heard,
        )

    def _final_event(self, t_ms: float) -> UserTranscriptFinal:
        return UserTranscriptFinal(t_ms, self._final_text, self._final_span[0], self._final_span[1])

    def _final_signal(self) -> tuple[str, float, float | None]:
        """The final transcript as the turn-taker gets it: text, end of speech, confidence."""
        return self._final_text, self._final_span[1], self._final_confidence

    def _maybe_partial(self, t_ms: float, frame_end: float) -> None:
        interval = self.config.models.asr.partial_interval_ms
        if interval <= 0 or self._partial_job is not None or self._speech_since_ms is None:
            return
        if self._playing is not None and not self._paused:
            return  # what is heard now is the agent's own echo until a barge-in pauses it
        if frame_end - self._last_voice_ms > 0 or frame_end - self._last_partial_ms < interval:
            return
        start = max(
            self._speech_since_ms - 200,
            self._partial_floor_ms,
            frame_end - 1000 * self.config.models.asr.max_utterance_s,
        )
        audio = self._audio_span(start, frame_end)
        if len(audio) < self.rate * 0.4:
            return
        self._last_partial_ms = frame_end
        asr, eou = self.asr_partial, self.eou

        def job() -> Iterator[tuple[str, str]]:
            text = asr.transcribe(audio).text.strip()
            yield ("partial", text)
            if eou is not None and text:
                # Scored now, in the partial's own lane: a final that reads the same
                # words (most do) finds its score cached and skips the pass.
                eou.end_score(text)

        self._partial_job = self.partial_lane.submit("asr-partial", job, frame_end)

    def _prefill(self, partial: str, t_ms: float) -> None:
        """Warm the LLM's cache with the partial transcript while the user still talks."""
        prefill = getattr(self.llm, "prefill", None)
        if prefill is None or self._playing is not None or self._draft is not None or self.respond_lane.busy():
            return
        messages = self.dialogue.messages_with_user(partial)

        def job() -> Iterator[tuple[str, int]]:
            yield ("prefill", prefill(messages))

        self.respond_lane.submit("llm-prefill", job, t_ms)

    def _pause_draft(self) -> None:
        """Stop the held draft's job; ``_on_final`` starts it again (the words may change)."""
        if self._draft is not None and self._draft.job is not None:
            self.respond_lane.cancel(self._draft.job)
            self._draft = _Draft(self._draft.response_id, "", None)

    def _restart_draft(self, text: str, t_ms: float) -> None:
        self._pause_draft()
        self._on_final(text, t_ms)

    def _on_final(self, text: str, t_ms: float) -> None:
        draft = self._draft
        if draft is None or draft.job is not None or not text.strip():
            return
        draft.user_text = text.strip()
        draft.job = self._start_response(draft, t_ms)

    # ------------------------------------------------------------------ act
    def act(self, actions: list[Action], t_ms: float) -> list[Event]:
        events: list[Event] = []
        for a in actions:
            if isinstance(a, Transcribe):
                self._transcribe(a, t_ms)
            elif isinstance(a, DiscardDraft):
                self._discard_draft()
            elif isinstance(a, TakeTurn):
                events.extend(self._take_turn(a, t_ms))
            elif isinstance(a, PauseOutput):
                self._paused = True
                # Judge the burst on its own audio: onset detection plus VAD lag ago.
                self._restart_partials(t_ms - _BURST_LOOKBACK_MS)
            elif isinstance(a, ResumeOutput):
                self._paused = False
                self._restart_partials(t_ms)
            elif isinstance(a, StopOutput):
                events.extend(self._stop_output(t_ms))
            elif isinstance(a, Backchannel):
                events.extend(self._backchannel(t_ms))
        return events

    def _restart_partials(self, floor_ms: float) -> None:
        """Drop the partial in flight and start the next one from ``floor_ms``."""
        if self._partial_job is not None:
            self.partial_lane.cancel(self._partial_job)
            self._partial_job = None
        self._partial_floor_ms = floor_ms
        self._last_partial_ms = -1e9

    def _transcribe(self, a: Transcribe, t_ms: float) -> None:
        self._discard_draft()
        if self._final_job is not None:
            self.listen_lane.cancel(self._final_job)
        if self._partial_job is not None:
            self.partial_lane.cancel(self._partial_job)
            self._partial_job = None
        # A turn resumed after a pause: reuse the finals of its earlier stretches and
        # transcribe only the new one (a long turn's final stays as fast as a short one's).
        known = [sg for sg in self._segments if sg[0] >= a.start_ms and sg[1] <= a.end_ms]
        if not known or known[0][0] != a.start_ms:
            known = []
        seg_start = a.start_ms
        if known:
            resumed = [o for o in self._onsets if known[-1][1] < o < a.end_ms]
            if resumed and resumed[0] - known[-1][1] >= 500:
                seg_start = resumed[0] - 100
            else:
                # A short gap between words: transcribe the whole span, the recognizer
                # needs the context (a lone "France" is easily misheard).
                known = []
        self._segments = list(known)
        head = " ".join(sg[2].rstrip(".") for sg in known if sg[2])  # a pause is not a full stop
        if seg_start >= a.end_ms:
            seg_start, head, self._segments = a.start_ms, "", []
        # A little context either side keeps word edges intact.
        start = max(0.0, seg_start - 160)
        end = a.end_ms + 120
        audio = self._audio_span(start, min(end, t_ms + self.config.audio.frame_ms))
        self._final_span = (a.start_ms, a.end_ms)
        self._final_segment_start = seg_start
        asr, eou, second_look = self.asr, self.eou, self.asr_second_look
        rescore_below = self.config.models.asr.rescore_below

        # The job reads; the tick records what it read (in ``listen``), and only for the
        # final still wanted: a job cancelled mid-read must not leave its words behind.
        def job() -> Iterator[tuple[str, Any]]:
            heard = asr.transcribe(audio)
            new = heard.text.strip()
            text = f"{head} {new}".strip()
            yield ("final", (text, new, heard.confidence, heard.compute_ms))
            if eou is None or not text:
                return
            score = eou.end_score(text)
            if second_look is not None:
                # While it reads as unfinished, the turn-taker would wait a while anyway:
                # time for the recognizer's other readings (a mis-heard question often
                # reads as a fragment). A better one replaces the final and its score.
                def end_score(words: str) -> float:
                    return eou.end_score(f"{head} {words}".strip())

                for step in look_again(second_look, audio, new, score, end_score, rescore_below):
                    if step is None:
                        yield ("second_look", None)  # the draft pauses: the look needs the cores
                        continue
                    again, score = step
                    better = again.text.strip()
                    ms = heard.compute_ms + again.compute_ms
                    yield ("revised", (f"{head} {better}".strip(), better, again.confidence, ms))
            yield ("eou", score)

        self._final_job = self.listen_lane.submit("asr-final", job, t_ms + self.config.audio.frame_ms)
        if a.draft:
            self._draft = _Draft(f"resp_{self.session_id}_{next(self._ids)}", "", None)

    def _backchannel(self, t_ms: float) -> list[Event]:
        """Queue a short, quiet acknowledgement; synthesized once per session and reused."""
        if self._playing is not None:
            return []
        text = self.config.turn.backchannel_text
        if self._backchannel_audio is None:
            chunks = list(self.tts.synthesize(text))
            audio = np.concatenate([c.samples for c in chunks]) if chunks else np.zeros(0, np.float32)
            self._backchannel_audio = (0.5 * resample(audio, self.tts.sample_rate, self.out_rate)).astype(np.float32)
        self._aside = self._backchannel_audio.copy()
        return [AgentBackchannel(t_ms, text)]

    def _discard_draft(self) -> None:
        self._held_final = None
        if self._final_job is not None:
            self.listen_lane.cancel(self._final_job)
            self._final_job = None
        if self._draft is not None:
            if self._draft.job is not None:
                self.respond_lane.cancel(self._draft.job)
            self._draft = None

    def _take_turn(self, a: TakeTurn, t_ms: float) -> list[Event]:
        text, opts = a.text.strip(), a.options
        if not opts.answer:  # only the user's words into the history; the client asks for the answer
            self._discard_draft()
            if text:
                self.dialogue.add_user(text)
            self._restart_partials(t_ms)
            return []
        draft = self._draft
        if draft is None or draft.user_text != text or not text or opts.changes_prompt:
            self._discard_draft()
            draft = _Draft(opts.response_id or f"resp_{self.session_id}_{next(self._ids)}", text, None, options=opts)
            draft.job = self._start_response(draft, t_ms)
        elif opts.response_id:
            draft.response_id = opts.response_id  # held, never announced: it takes the caller's name
        self._draft = None
        draft.held = False
        draft.end_of_speech_ms = a.end_of_speech_ms
        draft.taken_ms = t_ms
        draft.stage_ms["asr_final"] = self._final_compute_ms
        events: list[Event] = []
        if self._playing is not None:  # its words go into the history before the user's
            events.extend(self._end_playing(t_ms, interrupted=True))
        if text and opts.record:
            self.dialogue.add_user(text)
        draft.history_at = self.dialogue.mark()
        self._restart_partials(t_ms)
        self._playing = draft
        self._finished = False
        self._paused = False
        self.playout.start(draft.response_id)
        self._flush_draft_buffers(draft, t_ms, events)
        return events

    def _tool_args(self, opts: ResponseOptions) -> dict[str, Any]:
        """The ``stream`` keywords that offer the response's functions to the LLM."""
        tools = self.tools if opts.tools is None else opts.tools
        choice = opts.tool_choice or self.tool_choice
        if not tools or choice == "none":
            return {}
        if not getattr(self.llm, "supports_tools", False):
            log.warning("the LLM stage cannot call functions: the %d tools offered are ignored", len(tools))
            return {}
        return {"tools": tools, "tool_choice": choice}

    def _start_response(self, draft: _Draft, t_ms: float) -> Any:
        messages = self.dialogue.messages_with_user(draft.user_text, draft.options.instructions)
        tool_args = self._tool_args(draft.options)
        llm, tts = self.llm, self.tts
        max_tokens = self.config.models.llm.max_tokens
        out_rate = self.out_rate
        lookahead = self.config.engine.output_lookahead_ms

        def job() -> Iterator[tuple[str, Any]]:
            # One step per token (a "pending" item when it completes no clause): a
            # draft cancelled mid-clause (a revised final, a barge-in) stops within a
            # token instead of finishing its clause on cores the listener needs.
            t0 = time.perf_counter()
            stream: Iterator[Any] = llm.stream(messages, max_tokens=max_tokens, **tool_args)
            spoken, splitter = SpokenText(), ClauseSplitter()
            first, joined = True, False  # joined: the previous clause stopped mid-sentence
            ttft = 0.0

            def speak(clause: str) -> Iterator[tuple[str, Any]]:
                nonlocal first, joined
                t_clause = time.perf_counter()
                stage = {"llm_first_clause": 1000.0 * (t_clause - t0), "llm_ttft": ttft}
                yield ("text", (clause, stage if first else {}))
                open_end = not _ENDS_PUNCTUATED.search(clause)
                chunks = list(tts.synthesize(clause))  # a clause is one sentence: one chunk, mostly
                for i, chunk in enumerate(chunks):
                    audio = resample(chunk.samples, tts.sample_rate, out_rate)
                    scale = out_rate / tts.sample_rate
                    words = [(w.word, int(w.start_sample * scale), int(w.end_sample * scale)) for w in chunk.words]
                    lead, tail = joined and i == 0, open_end and i == len(chunks) - 1
                    audio, words = trim_seam(audio, words, out_rate, lead, tail)
                    info = {"tts_first_chunk": 1000.0 * (time.perf_counter() - t_clause)} if first else {}
                    first = False
                    yield ("audio", (audio, chunk.text, words, info))
                joined = open_end

            try:
                piece = next(stream, None)  # the prompt has been evaluated by now
                ttft = 1000.0 * (time.perf_counter() - t0)
                end_probability = getattr(llm, "last_end_probability", None)
                if end_probability is not None:
                    yield ("eou", semantic_end_score(end_probability))
                while piece is not None:
                    if isinstance(piece, ToolCall):
                        yield ("tool_call", piece)
                        piece = next(stream, None)
                        continue
                    clauses = splitter.feed(spoken.feed(_SPECIAL.sub("", piece)))
                    for clause in clauses:
                        yield from speak(clause)
                    if not clauses:
                        yield ("pending", None)
                    piece = next(stream, None)
                for clause in splitter.feed(spoken.finish()) + splitter.finish():
                    yield from speak(clause)
            finally:
                close = getattr(stream, "close", None)
                if close:
                    close()
            yield ("done", None)

        def may_step() -> bool:
            # Backpressure: never synthesize more than the lookahead ahead of playback.
            return self.playout.queued_ms < lookahead or draft.held and len(draft.audio) < 2

        return self.respond_lane.submit("respond", job, t_ms + self.config.audio.frame_ms, may_step)

    # ------------------------------------------------------------------ think
    def think(self, t_ms: float) -> list[Event]:
        events = self._pending_events
        self._pending_events = []
        frame_end = t_ms + self.config.audio.frame_ms
        for r in self.respond_lane.poll(frame_end):
            draft = None
            for d in (self._playing, self._draft):
                if d is not None and d.job is r.job:
                    draft = d
            if draft is None:
                continue
            if r.error is not None:
                events.append(ErrorEvent(t_ms, f"response failed: {r.error}", "response_failed"))
                draft.done = True
                continue
            kind, payload = r.item
            if kind == "eou":
                if draft is self._draft and self._held_final is not None:
                    self._held_final = (self._held_final[0], float(payload))
            elif kind == "text":
                clause, stage = payload
                draft.text_parts.append(clause)
                draft.stage_ms.update(stage)
            elif kind == "audio":
                audio, text, words, info = payload
                draft.stage_ms.update(info)
                draft.audio.append((audio, text, words))
            elif kind == "tool_call":
                draft.tool_calls.append(payload)
                draft.calls_to_emit.append(payload)
            elif kind == "done":
                draft.done = True
        if self._playing is not None:
            self._flush_draft_buffers(self._playing, t_ms, events)
        return events

    def _flush_draft_buffers(self, draft: _Draft, t_ms: float, events: list[Event] | None = None) -> None:
        if draft.held:
            return
        for part in draft.text_parts:
            if events is not None:
                events.append(AgentTextDelta(t_ms, draft.response_id, part))
            else:
                self._pending_events.append(AgentTextDelta(t_ms, draft.response_id, part))
        draft.text_parts.clear()
        for call in draft.calls_to_emit:
            event = AgentToolCall(t_ms, draft.response_id, call.call_id, call.name, call.arguments)
            if events is not None:
                events.append(event)
            else:
                self._pending_events.append(event)
        draft.calls_to_emit.clear()
        for audio, text, words in draft.audio:
            self.playout.append(audio, text, words)
        draft.audio.clear()

    # ------------------------------------------------------------------ speak
    def speak(self, t_ms: float) -> SpeakResult:
        events: list[Event] = []
        draft = self._playing
        if draft is None and len(self._aside):
            frame = np.zeros(self.out_frame, np.float32)
            n = min(len(self._aside), self.out_frame)
            frame[:n], self._aside = self._aside[:n], self._aside[n:]
            self._last_frame_speech = False  # not a response: the state stays listening
            return SpeakResult(frame, events)
        if draft is None or self._paused:
            self._last_frame_speech = False
            self._echo_db = -120.0
            return SpeakResult(np.zeros(self.out_frame, np.float32), events)
        frame, real = self.playout.pop(self.out_frame)
        self._last_frame_speech = real > 0
        if real:
            rms = float(np.sqrt(np.mean(frame.astype(np.float64) ** 2)) + 1e-12)
            self._echo_db = 20.0 * np.log10(rms)
            if not draft.started:
                draft.started = True
                latency = t_ms - draft.end_of_speech_ms
                breakdown = {"endpointing": draft.taken_ms - draft.end_of_speech_ms, **draft.stage_ms}
                events.append(AgentAudioStarted(t_ms, draft.response_id, latency, breakdown))
            events.append(AgentAudio(t_ms, draft.response_id, frame, self.out_rate))
        else:
            self._echo_db = -120.0
        if draft.done and self.playout.queued_samples == 0 and not draft.audio:
            events.extend(self._end_playing(t_ms + 1000.0 * real / self.out_rate, interrupted=False))
        return SpeakResult(frame, events)

    def _end_playing(self, t_ms: float, interrupted: bool) -> list[Event]:
        draft = self._playing
        track: ResponseTrack | None = self.playout.track
        if draft is None or track is None:
            return []
        if draft.job is not None:
            self.respond_lane.cancel(draft.job)
        self.playout.flush()
        heard = track.heard_text() if interrupted else track.text
        full = track.text + "".join(" " + p for p in draft.text_parts)
        if draft.options.record and draft.tool_calls:
            self.dialogue.add(ChatMessage("assistant", heard.strip(), tool_calls=tuple(draft.tool_calls)), at=draft.history_at)
        elif draft.options.record:
            self.dialogue.add_assistant(heard, interrupted=interrupted, at=draft.history_at)
        self._playing = None
        self._last_track = track
        self.playout.track = None
        self._finished = True
        self._paused = False
        return [AgentAudioDone(t_ms, draft.response_id, interrupted, track.played_ms, heard, full.strip())]

    def _stop_output(self, t_ms: float) -> list[Event]:
        events = self._end_playing(t_ms, interrupted=True)
        self._discard_draft()
        return events

    def truncate(self, response_id: str, audio_end_ms: float, t_ms: float) -> list[Event]:
        """Keep in the history only what was heard of ``response_id`` up to ``audio_end_ms``."""
        track = self._last_track if self._last_track and self._last_track.response_id == response_id else None
        if track is None and self.playout.track is not None and self.playout.track.response_id == response_id:
            track = self.playout.track
        if track is None:
            return [ErrorEvent(t_ms, f"no response {response_id} to truncate", "unknown_response")]
        heard = track.heard_text(int(audio_end_ms * self.out_rate / 1000))
        self.dialogue.replace_last_assistant(heard, interrupted=True)
        return []

    def set_instructions(self, text: str) -> None:
        self.dialogue.set_system(text)

    def set_tools(self, tools: tuple[Tool, ...], tool_choice: ToolChoice) -> None:
        """The functions the following responses may call, and whether they must."""
        self.tools, self.tool_choice = tools, tool_choice

    def add_message(self, message: ChatMessage) -> None:
        """Append a client's item to the history (text, earlier answers, a tool's result)."""
        self.dialogue.add(message)

    def set_history(self, messages: list[ChatMessage]) -> None:
        """Replace the history (the client deleted or inserted items)."""
        self.dialogue.replace(messages)

    # ------------------------------------------------------------------ status
    def status(self) -> AgentStatus:
        d = self._playing
        finished = self._finished
        self._finished = False
        track = self.playout.track
        # Only a paused output's burst is judged against the agent's words: spare every other tick.
        recent: tuple[str, ...] = ()
        if track is not None and self._paused:
            recent = track.recent_words(int(_ECHO_WORDS_S * self.out_rate))
        return AgentStatus(
            responding=d is not None,
            playing=self._last_frame_speech,
            finished=finished,
            response_id=d.response_id if d else "",
            recent_words=recent,
        )

    def close(self) -> None:
        """Stop the lanes, then free this session's own stages (their state; the shared
        weights stay loaded for the other sessions)."""
        stopped = [lane.close() for lane in (self.partial_lane, self.listen_lane, self.respond_lane)]
        if not all(stopped):
            # A step still runs on an owned stage: freeing its state now would pull it
            # from under that step, so it stays allocated (and its weights loaded).
            log.warning("session %s: a lane did not stop in time; its stages are left allocated", self.session_id)
            return
        for stage in (self.vad, self.llm, self.tts):
            stage.close()
