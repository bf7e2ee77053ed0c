"""Barge-in: is the user's sound while the agent speaks an interruption?

User speech while the agent speaks pauses its output within a frame (the
turn-taker does that); this judge then decides, frame by frame:

- *interruption*: enough voiced speech, or enough words in the partial
  transcript that are neither acknowledgements nor the agent's own words (and no
  more of them than the burst's length allows: the partial's audio starts before
  the burst, where the agent's echo may be all there is);
- once the burst has ended (a gap of ``decide_gap_ms``), its transcript: an
  interruption only if it is not the agent's own recent words (its echo), holds
  no more words than the burst's length allows, is not a backchannel, and the
  recognizer is sure of it (a hum heard as "Amen" is not an interruption);
- otherwise a *false alarm* (a backchannel, a cough, noise): the output resumes
  where it paused, after ``resume_after_ms``.

Softer speech than the user's own level may pause the output (``speech.UserLevel``),
but only a burst that reaches the user's level at least once is confirmed as an
interruption: distant talk that never does resumes the output, and is reported as
background so that talk at its level no longer pauses the agent.

All thresholds are the ``[barge_in]`` section's.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from duplex.config import BargeInConfig
from duplex.models.actions import Transcribe
from duplex.models.base import AgentStatus, ListenSignals
from duplex.policy.backchannel import is_backchannel
from duplex.policy.echo import own_echo_share, said_by_agent
from duplex.policy.speech import SpeechFrame
from duplex.policy.words import words_of

# A burst this short cannot hold more words than this rate allows (fast speech is
# ~5 words/s); a longer transcript came from the context around it: echo or noise.
MAX_WORDS_PER_S = 8.0

# A burst is the user's once this many of its voiced frames reach their level, as a
# speech onset must (one loud frame may be a click or a peak of the agent's echo).
FRAMES_AT_LEVEL = 2


@dataclass
class Burst:
    """User sound heard while the agent spoke, not yet judged (stream ms)."""

    start_ms: float = 0.0
    voiced_ms: float = 0.0
    requested_end_ms: float = -1.0  # end of the span sent for transcription
    asked_ms: float = 0.0
    resume_at_ms: float | None = None
    level_frames: int = 0  # voiced frames at the user's own level

    @property
    def at_level(self) -> bool:
        """The burst reached the user's own level (``FRAMES_AT_LEVEL`` frames)."""
        return self.level_frames >= FRAMES_AT_LEVEL
    peak_db: float = -120.0  # the loudest voiced frame


class Verdict(StrEnum):
    """What a burst is, so far."""

    UNDECIDED = "undecided"
    INTERRUPTION = "interruption"
    FALSE_ALARM = "false_alarm"


@dataclass(frozen=True)
class Judgement:
    """The judge's answer for one frame.

    Attributes:
        verdict: undecided (output stays paused), an interruption (stop and
            flush), or a false alarm (resume).
        transcribe: the burst's transcript to ask for, if it is asked now.
        backchannel: the user's acknowledgement ("mhm") heard in the burst, to
            report; the output resumes after it.
        background_db: words that never reached the user's level (background talk),
            at this loudest level; the output resumes after them.
    """

    verdict: Verdict
    transcribe: Transcribe | None = None
    backchannel: str | None = None
    background_db: float | None = None


class BargeInJudge:
    """Judges one burst of user sound at a time while the agent's output is paused.

    Args:
        cfg: the ``[barge_in]`` section.
        frame_ms: tick length.
    """

    def __init__(self, cfg: BargeInConfig, frame_ms: float) -> None:
        self.cfg = cfg
        self.frame_ms = frame_ms
        self.burst: Burst | None = None

    def begin(self, speech: SpeechFrame, energy_db: float, at_level: bool) -> None:
        """User speech started while the agent speaks: a burst to judge.

        Args:
            speech: the frame that started it.
            energy_db: that frame's level.
            at_level: that frame reached the user's own level.
        """
        self.burst = Burst(
            start_ms=speech.onset_ms, voiced_ms=speech.voiced_ms, level_frames=int(at_level), peak_db=energy_db
        )

    def end(self) -> Burst | None:
        """Forget the burst (judged, or the response ended); returns it."""
        burst, self.burst = self.burst, None
        return burst

    def _words_held(self, b: Burst) -> float:
        """The most words the burst's voiced length can hold (``MAX_WORDS_PER_S``)."""
        return MAX_WORDS_PER_S * (b.voiced_ms + 2 * self.frame_ms) / 1000

    def judge(
        self, t_ms: float, speech: SpeechFrame, signals: ListenSignals, agent: AgentStatus, at_level: bool = True
    ) -> Judgement:
        """One frame of the burst.

        Args:
            t_ms: stream time of the start of the frame.
            speech: the speech detector's view of the frame.
            signals: what the model heard (partial and final transcripts).
            agent: the output side (its recent words: its echo).
            at_level: the frame reaches the user's own level (``UserLevel.reaches``).
        """
        b, cfg = self.burst, self.cfg
        assert b is not None, "judge() without a burst: call begin() first"
        if speech.voiced:
            b.voiced_ms += self.frame_ms
            b.level_frames += int(at_level)
            b.peak_db = max(b.peak_db, signals.energy_db)
        said = words_of(" ".join(agent.recent_words))
        partial_words = [
            w
            for w in words_of(signals.partial_text or "")
            if not is_backchannel(w, cfg.backchannel_words) and not said_by_agent(w, said)
        ]
        if len(partial_words) > self._words_held(b):
            partial_words = []  # read from the echo around a short burst, not the user
        long_or_wordy = b.voiced_ms >= cfg.confirm_speech_ms or len(partial_words) >= cfg.confirm_words
        if b.at_level and long_or_wordy:
            return Judgement(Verdict.INTERRUPTION)
        if speech.active:
            # Still talking (or talking again): any verdict on an earlier part is moot.
            b.requested_end_ms = -1.0
            b.resume_at_ms = None
            return Judgement(Verdict.UNDECIDED)
        if speech.silence_ms < cfg.decide_gap_ms:
            return Judgement(Verdict.UNDECIDED)  # a short gap inside the burst: wait for it to end
        transcribe = None
        backchannel = None
        background = None
        if b.requested_end_ms < 0:
            b.requested_end_ms = speech.last_voice_ms
            b.asked_ms = t_ms
            transcribe = Transcribe(b.start_ms, b.requested_end_ms, draft=False)
        if signals.final_text is not None and abs(signals.final_end_ms - b.requested_end_ms) < 1e-6:
            text = signals.final_text.strip()
            # The agent's own words, or more words than the burst could hold: its echo
            # (or noise the recognizer filled in from the context), not the user.
            own = own_echo_share(text, agent.recent_words) >= 0.5
            n_words = len(words_of(text))
            too_many = n_words > self._words_held(b)
            conf = signals.final_confidence
            unsure = conf is not None and conf < cfg.min_confidence
            user_sound = bool(text) and b.voiced_ms >= cfg.min_backchannel_ms and not own
            is_ack = is_backchannel(text, cfg.backchannel_words)
            if user_sound and not (is_ack or too_many or unsure):
                if b.at_level:
                    return Judgement(Verdict.INTERRUPTION, transcribe)  # real words: "wait", "stop it"
                background = b.peak_db  # words that never reached the user's level: someone else
            if user_sound and (is_ack or unsure):  # "mhm", or a hum heard as a word
                backchannel = text
            # A backchannel, a cough or noise: resume after a short hold.
            b.resume_at_ms = speech.last_voice_ms + cfg.resume_after_ms
        if b.resume_at_ms is None and t_ms - b.asked_ms >= 3 * cfg.resume_after_ms:
            b.resume_at_ms = t_ms  # no transcript came in time: treat it as noise
        if b.resume_at_ms is not None and t_ms + self.frame_ms >= b.resume_at_ms:
            return Judgement(Verdict.FALSE_ALARM, transcribe, backchannel, background)
        return Judgement(Verdict.UNDECIDED, transcribe, backchannel, background)
