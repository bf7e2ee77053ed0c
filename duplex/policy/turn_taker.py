"""The turn-taker: the conversation state machine of ../DESIGN.md.

States: ``listening`` → ``thinking`` (turn taken, no audio yet) → ``speaking``
→ ``paused`` (the user may be interrupting; output held, not discarded) → back.

Each tick it reads the model's ``ListenSignals`` and ``AgentStatus`` and returns
the commands for the model (``duplex.models.actions``) and the events to emit.
It decides:

- *end of turn*: not silence alone. The pause needed before answering shrinks
  when the transcript looks complete (semantic end-of-turn score) and grows when
  it looks cut off ("a flight to …"). A final transcript is requested early, at a
  short pause, with a response drafted and held (preemptive generation); if the
  user goes on, the draft is discarded.
- *barge-in*: user speech while the agent speaks pauses output within a frame;
  enough speech or enough words confirm the interruption (stop and flush);
  otherwise the output resumes where it paused. A short burst is judged on its
  transcript, which confirms only if it is not the agent's own recent words (its
  echo), holds no more words than the burst's length allows, and the recognizer
  is sure of it (a hum heard as "Amen" is not an interruption).
- *backchannels*: a short acknowledgement while the agent speaks is reported and
  does not stop it.

All thresholds come from the profile (``[turn]`` and ``[barge_in]``).
"""

from __future__ import annotations

import difflib
import logging
import re
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

from duplex.config import BargeInConfig, TurnConfig
from duplex.events import (
    BargeIn,
    Event,
    SpeechStarted,
    SpeechStopped,
    StateChanged,
    TurnTaken,
    UserBackchannel,
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
from duplex.models.base import AgentStatus, ListenSignals
from duplex.policy.end_of_turn import blend_end_of_turn, pause_needed_ms

log = logging.getLogger(__name__)


class ConvState(StrEnum):
    LISTENING = "listening"
    THINKING = "thinking"
    SPEAKING = "speaking"
    PAUSED = "paused"


_WORD = re.compile(r"[a-z0-9']+(?:-[a-z0-9']+)*")


def words_of(text: str) -> list[str]:
    """Lower-case words of ``text`` without punctuation."""
    return _WORD.findall(text.lower())


# Hums, and a laugh ("ha", "haha", "aha"): wordless sounds over the agent's speech.
_HUM = re.compile(r"^(?:h*m+h*m*|u+h*m+|m+h+m+|u+h+-?h+u+h+|a+h+|o+h+|h+m+|a?(?:ha)+h?|(?:he){2,}h?)$")


def _squash(word: str) -> str:
    """Collapse letters held long by the recognizer: "mmmmm" → "mm", "yeahhh" → "yeahh"."""
    return re.sub(r"(.)\1{2,}", r"\1\1", word)


def _is_hum(word: str) -> bool:
    """A hum, also as the recognizer writes a held one: "mmm", "mm-m-m-m", "uh-huh"; a laugh."""
    return bool(_HUM.match(word)) or all(_HUM.match(p) or p in ("m", "h") for p in word.split("-") if p)


# How a recognizer may spell an acknowledgement it heard right ("I see" as "i c").
_SOUNDS_LIKE = {
    "c": "see", "sea": "see", "k": "okay", "kay": "okay", "mkay": "okay", "yea": "yeah",
    "ya": "yeah", "yah": "yeah", "rite": "right", "write": "right", "kool": "cool",
}


def is_backchannel(text: str, vocabulary: list[str], max_words: int = 3) -> bool:
    """True when ``text`` is only short acknowledgements ("mhm", "yeah, right", "mmmm")."""
    heard = words_of(text)
    if len(heard) == 1 and len(heard[0]) == 1:
        return True  # a lone letter: how the recognizer writes a short wordless sound ("B")
    words = [_SOUNDS_LIKE.get(w, w) for w in (_squash(w) for w in heard) if not _is_hum(w)]
    if heard and not words:
        return True  # only hums
    if not words or len(words) > max_words:
        return False
    vocab_words = {w for p in vocabulary for w in words_of(p)}
    words = [w if w in vocab_words else re.sub(r"(.)\1+$", r"\1", w) for w in words]
    phrases = sorted((tuple(words_of(p)) for p in vocabulary), key=len, reverse=True)
    i = 0
    while i < len(words):
        for phrase in phrases:
            if phrase and tuple(words[i : i + len(phrase)]) == phrase:
                i += len(phrase)
                break
        else:
            return False
    return True


def _similar(a: str, b: str) -> bool:
    """Same word, or close enough that the recognizer may have misheard one as the other."""
    if a == b:
        return True
    if min(len(a), len(b)) < 4:
        return False
    return difflib.SequenceMatcher(None, a, b).ratio() >= 0.75


def _said(word: str, said: list[str]) -> bool:
    """``word`` is (a mishearing of) one of the words the agent said."""
    return any(_similar(word, s) for s in said)


def own_echo_share(text: str, recent_words: tuple[str, ...]) -> float:
    """Share of the words of ``text`` that the agent itself just said (0 when none said)."""
    said = words_of(" ".join(recent_words))
    heard = words_of(text)
    if not heard or not said:
        return 0.0
    return sum(_said(h, said) for h in heard) / len(heard)


# A burst this short cannot hold more words than this rate allows (fast speech is
# ~5 words/s); a longer transcript came from the context around it: echo or noise.
_MAX_WORDS_PER_S = 8.0
# A stretch reaching the user's level starts at most this long before its first loud
# frame: time for a soft "what is" or "can you", not for a background talker's phrase.
_SOFT_ONSET_MS = 500.0


@dataclass
class _Speech:
    """Speech detection with hysteresis, in stream time."""

    active: bool = False
    run_ms: float = 0.0  # consecutive speech-frame time not yet promoted to active
    run_start_ms: float = 0.0
    run_loud_ms: float | None = None  # first frame of the run at the user's own level
    onset_ms: float = 0.0
    last_voice_ms: float = 0.0  # end of the last frame judged speech
    voiced_ms: float = 0.0  # voiced time in the current active stretch


@dataclass
class _Turn:
    """The user's turn being built (possibly across mid-utterance pauses)."""

    open: bool = False
    start_ms: float = 0.0
    speech_end_ms: float = 0.0
    voiced_ms: float = 0.0
    requested_end_ms: float = -1.0  # end of the span last sent for transcription
    final_text: str | None = None
    final_end_ms: float = -1.0
    eot_score: float | None = None


@dataclass
class _Barge:
    """User sound heard while the agent spoke, not yet judged."""

    start_ms: float = 0.0
    voiced_ms: float = 0.0
    requested_end_ms: float = -1.0  # end of the span sent for transcription
    asked_ms: float = 0.0
    resume_at_ms: float | None = None


@dataclass
class TurnTaker:
    """Per-session conversation state machine. Feed it one frame's signals per tick."""

    turn: TurnConfig
    barge: BargeInConfig
    frame_ms: float
    state: ConvState = ConvState.LISTENING
    _speech: _Speech = field(default_factory=_Speech)
    _user: _Turn = field(default_factory=_Turn)
    _barge: _Barge | None = None
    auto_turns: bool = True  # False: turns end only when the client commits (manual mode)
    _last_backchannel_ms: float = -1e9
    _user_level_db: float | None = None  # typical level of this user's speech (dBFS)
    _voiced_db: list[float] = field(default_factory=list)  # levels of the current turn's voiced frames
    _frame_voiced: bool = False
    _force_take: bool = False
    _commit_answers: bool = True  # the committed turn is answered (False: only recorded)
    _respond_after_commit: ResponseOptions | None = None  # a response asked for meanwhile

    def commit(self, t_ms: float, answer: bool = True) -> tuple[list[Action], list[Event]]:
        """The client says the user's turn is over (``input_audio_buffer.commit``).

        ``answer`` False only records the user's words once transcribed (OpenAI's manual
        mode: the client sends ``response.create`` for the answer)."""
        actions: list[Action] = []
        u = self._user
        if not u.open and self._speech.active:
            self._open_turn(self._speech.onset_ms)
            u = self._user
        if not u.open:
            return actions, []
        u.speech_end_ms = self._speech.last_voice_ms
        if u.requested_end_ms != u.speech_end_ms:
            u.requested_end_ms = u.speech_end_ms
            u.final_text = None
            actions.append(Transcribe(u.start_ms, u.speech_end_ms, draft=True))
        self._force_take = True
        self._commit_answers = answer
        return actions, []

    def respond(self, t_ms: float, options: ResponseOptions) -> tuple[list[Action], list[Event]]:
        """Answer now (``response.create``): from the history as it stands, or, while a
        committed turn is being transcribed, as soon as its words are in."""
        if self._force_take:
            self._respond_after_commit = options
            return [], []
        events: list[Event] = []
        actions: list[Action] = [DiscardDraft(), StopOutput(), TakeTurn("", t_ms, options)]
        self._user = _Turn()
        self._barge = None
        self._set_state(ConvState.THINKING, t_ms, "response requested", events)
        return actions, events

    def _committed_options(self) -> ResponseOptions:
        """How the turn a client committed is answered; resets the commit."""
        opts = self._respond_after_commit or ResponseOptions(answer=self._commit_answers)
        self._force_take, self._commit_answers, self._respond_after_commit = False, True, None
        return opts

    def clear(self) -> list[Action]:
        """Forget the user's turn in progress (``input_audio_buffer.clear``)."""
        self._user = _Turn()
        self._force_take, self._commit_answers, self._respond_after_commit = False, True, None
        return [DiscardDraft()]

    def take_text_turn(self, text: str, t_ms: float) -> tuple[list[Action], list[Event]]:
        """Answer a typed user message now (``conversation.item.create`` + ``response.create``)."""
        events: list[Event] = []
        actions: list[Action] = [DiscardDraft(), StopOutput(), TakeTurn(text, t_ms)]
        events.append(TurnTaken(t_ms, t_ms, text, 1.0))
        self._user = _Turn()
        self._barge = None
        self._set_state(ConvState.THINKING, t_ms, "text turn", events)
        return actions, events

    def cancel(self, t_ms: float) -> tuple[list[Action], list[Event]]:
        """Stop the agent's response (``response.cancel``)."""
        events: list[Event] = []
        self._barge = None
        self._set_state(ConvState.LISTENING, t_ms, "cancelled", events)
        return [StopOutput()], events

    def reset(self) -> None:
        self.state = ConvState.LISTENING
        self._speech = _Speech()
        self._user = _Turn()
        self._barge = None

    # ------------------------------------------------------------------ helpers
    def _set_state(self, state: ConvState, t_ms: float, reason: str, events: list[Event]) -> None:
        if state != self.state:
            events.append(StateChanged(t_ms, state.value, self.state.value, reason))
            self.state = state

    def _update_speech(
        self, t_ms: float, prob: float, onset_ms: float, loud: bool = True
    ) -> tuple[bool, bool]:
        """Advance speech detection by one frame. Returns (started, stopped).

        A run of speech frames becomes a stretch once it has lasted ``onset_ms`` since
        its first ``loud`` frame (at the user's level). The stretch then starts at the
        run's first frame, at most ``_SOFT_ONSET_MS`` before that loud frame: a soft
        "What is" before the stressed syllable is the user's, not background.
        """
        s = self._speech
        frame_end = t_ms + self.frame_ms
        voiced = prob >= (self.turn.vad_release if s.active else self.turn.vad_threshold)
        started = stopped = False
        if voiced:
            if s.run_ms == 0.0:
                s.run_start_ms = t_ms
                s.run_loud_ms = None
            if loud and s.run_loud_ms is None:
                s.run_loud_ms = t_ms
            s.run_ms += self.frame_ms
            s.last_voice_ms = frame_end
            if s.active:
                s.voiced_ms += self.frame_ms
            elif s.run_loud_ms is not None and frame_end - s.run_loud_ms >= onset_ms:
                s.active, started = True, True
                s.onset_ms = max(s.run_start_ms, s.run_loud_ms - _SOFT_ONSET_MS)
                s.voiced_ms = frame_end - s.onset_ms
        else:
            s.run_ms = 0.0
            # Hangover of two frames keeps one weak frame from splitting a word.
            if s.active and frame_end - s.last_voice_ms >= 2 * self.frame_ms:
                s.active, stopped = False, True
        self._frame_voiced = voiced and s.active  # the user's level is learned from these
        return started, stopped

    @property
    def turn_open(self) -> bool:
        """A user turn (or a possible barge-in) is being heard and not yet decided."""
        return self._user.open or self._barge is not None or self._speech.active

    def silence_ms(self, t_ms: float) -> float:
        return t_ms + self.frame_ms - self._speech.last_voice_ms

    def _end_silence_needed(self) -> float:
        """Pause required before taking the turn, from the semantic end-of-turn score."""
        return pause_needed_ms(self._user.eot_score, self.turn)

    # ------------------------------------------------------------------ the tick
    def update(
        self, t_ms: float, signals: ListenSignals, agent: AgentStatus
    ) -> tuple[list[Action], list[Event]]:
        """One tick of decisions.

        Args:
            t_ms: stream time of the start of the frame just heard.
            signals: what the model heard in it.
            agent: what the output side is doing.

        Returns:
            (commands for the model, events to emit).
        """
        actions: list[Action] = []
        events: list[Event] = []
        onset = self.barge.pause_onset_ms if self.state in (ConvState.SPEAKING, ConvState.PAUSED) else self.turn.speech_onset_ms
        prob = signals.vad_prob
        if signals.echo_explained and self.state in (ConvState.SPEAKING, ConvState.PAUSED):
            prob = 0.0  # the agent hearing its own residual echo, not the user
        level_floor = self.background_floor_db()
        # Speech only *starts* once it reaches this user's level: far quieter talk is
        # background. Its soft first syllables still belong to it (see _update_speech).
        loud = level_floor is None or signals.energy_db >= level_floor
        started, stopped = self._update_speech(t_ms, prob, onset, loud)
        if self._frame_voiced:
            self._voiced_db.append(signals.energy_db)

        if started:
            events.append(SpeechStarted(self._speech.onset_ms))
        if stopped:
            events.append(SpeechStopped(self._speech.last_voice_ms))

        # Output side moved on by itself.
        if self.state == ConvState.THINKING and agent.playing:
            self._set_state(ConvState.SPEAKING, t_ms, "audio", events)
        if self.state in (ConvState.SPEAKING, ConvState.THINKING) and agent.finished:
            self._set_state(ConvState.LISTENING, t_ms, "response done", events)

        if self.state == ConvState.LISTENING:
            self._listening(t_ms, signals, started, actions, events)
        elif self.state == ConvState.THINKING:
            if started and self.auto_turns:
                # The user went on: the turn was not over. Drop the answer, keep the turn.
                actions.append(StopOutput())
                self._user.requested_end_ms = -1.0
                self._user.final_text = None
                self._user.eot_score = None
                self._set_state(ConvState.LISTENING, t_ms, "user continued", events)
        elif self.state == ConvState.SPEAKING:
            if started and self.barge.enabled and self.auto_turns:
                self._barge = _Barge(start_ms=self._speech.onset_ms, voiced_ms=self._speech.voiced_ms)
                actions.append(PauseOutput())
                events.append(BargeIn(t_ms, "pause", agent.response_id))
                self._set_state(ConvState.PAUSED, t_ms, "user speech", events)
        elif self.state == ConvState.PAUSED:
            self._paused(t_ms, signals, agent, actions, events)
        return actions, events

    def _open_turn(self, start_ms: float) -> None:
        self._user = _Turn(open=True, start_ms=start_ms)
        self._voiced_db = self._voiced_db[-64:]

    def _listening(
        self,
        t_ms: float,
        signals: ListenSignals,
        started: bool,
        actions: list[Action],
        events: list[Event],
    ) -> None:
        u = self._user
        if started:
            if not u.open:
                self._open_turn(self._speech.onset_ms)
                u = self._user
            elif u.requested_end_ms >= 0:
                self._withdraw_final(actions)
        if not u.open:
            return
        if self._speech.active:
            u.speech_end_ms = self._speech.last_voice_ms
            if self._frame_voiced and u.requested_end_ms >= 0:
                # Voice again inside the hangover: the transcript asked for one frame
                # into it (below) ends too early.
                self._withdraw_final(actions)
            # An unvoiced frame before the hangover declares the end of speech: a
            # preempt_silence_ms shorter than the hangover starts the transcript here.
            if (
                not self._frame_voiced
                and u.requested_end_ms < 0
                and self.auto_turns
                and self.silence_ms(t_ms) >= self.turn.preempt_silence_ms
                and u.speech_end_ms - u.start_ms >= self.turn.min_turn_ms
            ):
                self._request_final(actions)
            return
        u.speech_end_ms = self._speech.last_voice_ms
        if signals.final_text is not None and abs(signals.final_end_ms - u.requested_end_ms) < 1e-6:
            u.final_text = signals.final_text
            u.final_end_ms = signals.final_end_ms
            u.eot_score = blend_end_of_turn(signals.final_text, signals.eot_score)
        silence = self.silence_ms(t_ms)
        if u.requested_end_ms < 0 and silence >= self.turn.preempt_silence_ms and self.auto_turns:
            speech_ms = u.speech_end_ms - u.start_ms
            if speech_ms < self.turn.min_turn_ms:
                self._user = _Turn()  # a click or a cough: no turn
                return
            self._request_final(actions)
            return
        self._maybe_backchannel(t_ms, silence, actions)
        if u.final_text is None:
            return
        if not u.final_text.strip():
            # Nothing intelligible: not a turn (noise, breath).
            actions.append(DiscardDraft())
            self._user = _Turn()
            if self._force_take:
                asked = self._respond_after_commit
                self._committed_options()
                if asked is not None:  # a response asked for after the commit answers the history
                    actions.extend([StopOutput(), TakeTurn("", t_ms, asked)])
                    self._set_state(ConvState.THINKING, t_ms, "response requested", events)
            return
        if self._force_take or (self.auto_turns and silence >= self._end_silence_needed()):
            opts = self._committed_options() if self._force_take else ResponseOptions()
            actions.append(TakeTurn(u.final_text, u.speech_end_ms, opts))
            self._learn_user_level()
            events.append(TurnTaken(t_ms, u.speech_end_ms, u.final_text, u.eot_score or 0.0))
            if opts.answer:
                self._set_state(ConvState.THINKING, t_ms, "end of turn", events)
            self._user = _Turn()

    def _request_final(self, actions: list[Action]) -> None:
        """Ask for the user's final transcript up to the end of speech (and a draft)."""
        u = self._user
        u.requested_end_ms = u.speech_end_ms
        actions.append(Transcribe(u.start_ms, u.speech_end_ms, draft=True))

    def _withdraw_final(self, actions: list[Action]) -> None:
        """The user went on: the transcript asked for (and its draft) no longer fits."""
        actions.append(DiscardDraft())
        u = self._user
        u.requested_end_ms = -1.0
        u.final_text = None
        u.eot_score = None

    def _maybe_backchannel(self, t_ms: float, silence: float, actions: list[Action]) -> None:
        """In a long user turn, acknowledge at a pause that does not sound like the end."""
        cfg, u = self.turn, self._user
        if not cfg.agent_backchannels or not self.auto_turns:
            return
        if u.speech_end_ms - u.start_ms < cfg.backchannel_after_ms:
            return
        if t_ms - self._last_backchannel_ms < cfg.backchannel_cooldown_ms:
            return
        if not cfg.backchannel_pause_ms <= silence < cfg.backchannel_pause_ms + self.frame_ms:
            return
        if u.eot_score is not None and u.eot_score >= 0.5:
            return  # it sounds finished: the agent is about to take the turn instead
        self._last_backchannel_ms = t_ms
        actions.append(Backchannel())

    def _paused(
        self,
        t_ms: float,
        signals: ListenSignals,
        agent: AgentStatus,
        actions: list[Action],
        events: list[Event],
    ) -> None:
        b = self._barge
        assert b is not None
        cfg = self.barge
        if self._frame_voiced:
            b.voiced_ms += self.frame_ms
        said = words_of(" ".join(agent.recent_words))
        partial_words = [
            w
            for w in words_of(signals.partial_text or "")
            if not is_backchannel(w, cfg.backchannel_words) and not _said(w, said)
        ]
        if b.voiced_ms >= cfg.confirm_speech_ms or len(partial_words) >= cfg.confirm_words:
            self._confirm(t_ms, agent, actions, events)
            return
        if self._speech.active:
            # Still talking (or talking again): any verdict on an earlier part is moot.
            b.requested_end_ms = -1.0
            b.resume_at_ms = None
            return
        if self.silence_ms(t_ms) < cfg.decide_gap_ms:
            return  # a short gap inside the burst: wait for it to end
        if b.requested_end_ms < 0:
            b.requested_end_ms = self._speech.last_voice_ms
            b.asked_ms = t_ms
            actions.append(Transcribe(b.start_ms, b.requested_end_ms, draft=False))
        if signals.final_text is not None and abs(signals.final_end_ms - b.requested_end_ms) < 1e-6:
            text = signals.final_text.strip()
            # The agent's own words, or more words than the burst could hold: its echo
            # (or noise the recognizer filled in from the context), not the user.
            own = own_echo_share(text, agent.recent_words) >= 0.5
            n_words = len(words_of(text))
            too_many = n_words > _MAX_WORDS_PER_S * (b.voiced_ms + 2 * self.frame_ms) / 1000
            conf = signals.final_confidence
            unsure = conf is not None and conf < cfg.min_confidence
            user_sound = bool(text) and b.voiced_ms >= cfg.min_backchannel_ms and not own
            backchannel = is_backchannel(text, cfg.backchannel_words)
            if user_sound and not (backchannel or too_many or unsure):
                self._confirm(t_ms, agent, actions, events)  # real words: "wait", "stop it"
                return
            if user_sound and (backchannel or unsure):  # "mhm", or a hum heard as a word
                events.append(UserBackchannel(t_ms, text))
            # A backchannel, a cough or noise: resume after a short hold.
            b.resume_at_ms = self._speech.last_voice_ms + cfg.resume_after_ms
        if b.resume_at_ms is None and t_ms - b.asked_ms >= 3 * cfg.resume_after_ms:
            b.resume_at_ms = t_ms  # no transcript came in time: treat it as noise
        if b.resume_at_ms is not None and t_ms + self.frame_ms >= b.resume_at_ms:
            actions.append(ResumeOutput())
            events.append(BargeIn(t_ms, "false_alarm", agent.response_id))
            self._barge = None
            self._set_state(ConvState.SPEAKING, t_ms, "false alarm", events)

    def background_floor_db(self) -> float | None:
        """Speech quieter than this (dBFS) is background talk; None until the user has spoken."""
        margin = self.turn.background_margin_db
        if margin <= 0 or self._user_level_db is None:
            return None
        return self._user_level_db - margin

    def _learn_user_level(self) -> None:
        """Update the user's typical speech level from the turn just ended."""
        if len(self._voiced_db) >= 5:
            level = float(np.percentile(self._voiced_db, 90))  # the loud part of their syllables
            prev = self._user_level_db
            self._user_level_db = level if prev is None else 0.7 * prev + 0.3 * level
        self._voiced_db = []

    def _confirm(
        self, t_ms: float, agent: AgentStatus, actions: list[Action], events: list[Event]
    ) -> None:
        b = self._barge
        assert b is not None
        actions.append(StopOutput())
        events.append(BargeIn(t_ms, "confirmed", agent.response_id))
        self._barge = None
        self._learn_user_level()
        self._open_turn(b.start_ms)
        self._user.speech_end_ms = self._speech.last_voice_ms
        self._set_state(ConvState.LISTENING, t_ms, "interrupted", events)
