"""The latency bench's simulated user: when the next question starts.

On a fixed timeline (``speech.conversation``) each question comes a fixed gap after
the last, whatever the agent does. An answer longer than the gap then overlaps the
next question, which starts as a barge-in over the agent's voice, and the bench
measures the interruption path, not an answer to a question asked in silence.

``WaitingUser`` asks the way a person waiting for the answer does: the next question
comes ``gap_s`` after the last one ended or ``after_answer_s`` after the agent falls
silent, whichever is later, and at most ``max_wait_s`` after the last question if the
agent never stops. It reads the agent's audio events as the session emits them, so
the same user drives the offline and the real-time clock.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from duplex.audio.level import speech_span_ms


class WaitingUser:
    """Speaks ``spoken`` questions one frame at a time, waiting for each answer to end.

    Args:
        spoken: the questions' audio at ``rate``.
        rate: sample rate.
        gap_s: least time from the end of a question to the start of the next.
        after_answer_s: least time from the end of the agent's answer to the next question.
        max_wait_s: most time from the end of a question to the next, answered or not.
        lead_in_s: silence before the first question.
        repeat: ask the questions again from the first, without end (a soak).
    """

    def __init__(
        self,
        spoken: list[np.ndarray],
        rate: int = 16000,
        gap_s: float = 7.0,
        after_answer_s: float = 1.0,
        max_wait_s: float = 30.0,
        lead_in_s: float = 0.5,
        repeat: bool = False,
    ) -> None:
        if not spoken:
            raise ValueError("the user needs at least one question")
        if not 0 <= gap_s <= max_wait_s:
            raise ValueError(f"need 0 <= gap_s <= max_wait_s, got {gap_s} and {max_wait_s}")
        self.rate = rate
        self.gap_s = gap_s
        self.after_answer_s = after_answer_s
        self.max_wait_s = max_wait_s
        self.repeat = repeat
        self.spans: list[tuple[float, float]] = []  # (start_s, end_s) of each question asked
        # (onset_s, end_s) of the speech itself in each question asked: its audible span
        # (``duplex.audio.level``), which the listener's latency counts from.
        self.speech_spans: list[tuple[float, float]] = []
        self._spoken = list(spoken)
        self._voiced_ms = [speech_span_ms(q, rate) for q in self._spoken]
        self._buf = np.zeros(int(lead_in_s * rate), np.float32)
        self._samples = 0  # emitted so far: the user's clock
        self._asked = 0
        self._playing = False
        self._answer_end_s: float | None = None  # when the agent last fell silent

    @property
    def t_s(self) -> float:
        """Stream time of the next sample, in seconds."""
        return self._samples / self.rate

    def observe(self, event: Any) -> None:
        """Follow the agent: its audio starting and ending (``agent.audio.*`` events)."""
        if event.type == "agent.audio.started":
            self._playing = True
        elif event.type == "agent.audio.done":
            self._playing = False
            self._answer_end_s = event.t_ms / 1000.0

    def _waited(self) -> bool:
        """Has the user waited long enough after the last question to speak again?"""
        if not self.spans:
            return True
        since = self.t_s - self.spans[-1][1]
        if since >= self.max_wait_s:
            return True
        if since < self.gap_s or self._playing:
            return False
        return self._answer_end_s is None or self.t_s >= self._answer_end_s + self.after_answer_s

    @property
    def finished(self) -> bool:
        """Every question asked, and the last answer waited for."""
        return not self.repeat and self._asked == len(self._spoken) and len(self._buf) == 0 and self._waited()

    @property
    def asked(self) -> int:
        """Questions asked so far."""
        return self._asked

    def frame(self, n: int) -> np.ndarray:
        """The next ``n`` samples the user says (silence while waiting)."""
        while len(self._buf) < n:
            left = self.repeat or self._asked < len(self._spoken)
            if len(self._buf) == 0 and left and self._waited():
                k = self._asked % len(self._spoken)
                q = self._spoken[k]
                self._asked += 1
                self._answer_end_s = None
                start = self.t_s
                self.spans.append((start, start + len(q) / self.rate))
                a_ms, b_ms = self._voiced_ms[k]
                self.speech_spans.append((start + a_ms / 1000.0, start + b_ms / 1000.0))
                self._buf = q.astype(np.float32)
            else:
                # Silence to the end of the frame: the next question starts on a frame edge.
                self._buf = np.concatenate([self._buf, np.zeros(n - len(self._buf), np.float32)])
        out, self._buf = self._buf[:n], self._buf[n:]
        self._samples += n
        return out


class FixedTimelineUser:
    """Speaks a prepared user side (``speech.conversation``) whatever the agent does."""

    def __init__(self, audio: np.ndarray, spans: list[tuple[float, float]], rate: int = 16000) -> None:
        self.spans = spans
        self.speech_spans = []
        for a, b in spans:
            on, end = speech_span_ms(audio[int(a * rate) : int(b * rate)], rate)
            self.speech_spans.append((a + on / 1000.0, a + end / 1000.0))
        self._audio = audio.astype(np.float32)
        self._pos = 0

    def observe(self, event: Any) -> None:
        pass  # a timeline does not listen

    @property
    def finished(self) -> bool:
        return self._pos >= len(self._audio)

    def frame(self, n: int) -> np.ndarray:
        out = self._audio[self._pos : self._pos + n]
        self._pos += n
        return np.pad(out, (0, n - len(out)))


class UserFrames:
    """A simulated user as the offline driver's frame source
    (``duplex.runtime.offline.FrameSource``): its frames until it is finished, or
    until ``max_frames`` (a soak's length; the user repeats without end)."""

    def __init__(self, user: WaitingUser | FixedTimelineUser, frame_samples: int, max_frames: int | None = None) -> None:
        self.user = user
        self.frame_samples = frame_samples
        self.max_frames = max_frames
        self.frames = 0

    def has_more(self) -> bool:
        if self.max_frames is not None and self.frames >= self.max_frames:
            return False
        return not self.user.finished

    def next_frame(self) -> np.ndarray:
        self.frames += 1
        return self.user.frame(self.frame_samples)
