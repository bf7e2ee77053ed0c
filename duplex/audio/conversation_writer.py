"""Writes a conversation to WAV in stream time, to the sample.

Every recorded output (``duplex run``'s ``conversation.wav``, the eval's
``conversation.wav`` / ``input.wav`` / ``output.wav``, the Full-Duplex-Bench
export, ``duplex talk --save``, a server-side recording) goes through
``ConversationWriter``. Its promise: sample n of every channel is stream time
n / rate, whatever sizes the resampler hands back.

A channel's source is the user (frames at the profile's input rate) or the
agent (frames at the output rate). A channel whose source rate differs from
the file's is resampled as a stream; soxr's stream is delay-compensated but
returns uneven blocks (734, 1468 or 0 samples for 512 in at 16 → 24 kHz, not
768 each time), so each channel keeps its own samples apart and the file
receives only the part every channel has; nothing is padded in the middle.
``close()`` flushes the resamplers' tails and sets every channel to the
session's length, so the file lasts exactly as long as the stream.

``sync()`` brings the WAV header up to date and pushes what is written to
disk: a crash loses at most what came after the last sync (the header, written
with the first block, says how much a reader may take).
"""

from __future__ import annotations

import logging
import os
import threading
import wave
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Literal

import numpy as np

from duplex.audio.frame import as_mono_float32, float_to_pcm16
from duplex.audio.resample import StreamResampler

log = logging.getLogger(__name__)

Source = Literal["user", "agent"]

STEREO: tuple[Source, ...] = ("user", "agent")  # user left, agent right
USER_ONLY: tuple[Source, ...] = ("user",)
AGENT_ONLY: tuple[Source, ...] = ("agent",)


class WriterClosed(RuntimeError):
    """A write after ``close()``: open a new ConversationWriter."""


@dataclass
class _Channel:
    """One channel of the file: its source, resampler and samples not yet written."""

    source: Source
    source_rate: int
    resampler: StreamResampler
    source_samples: int = 0  # samples received, at the source rate
    pending: list[np.ndarray] = field(default_factory=list)
    pending_samples: int = 0  # at the file's rate

    def push(self, samples: np.ndarray, *, last: bool = False) -> None:
        self.source_samples += len(samples)
        out = self.resampler.process(samples, last=last)
        if len(out):
            self.pending.append(out)
            self.pending_samples += len(out)

    def take(self, n: int) -> np.ndarray:
        """The next ``n`` pending samples (zeros past the end)."""
        buf = np.concatenate(self.pending) if len(self.pending) != 1 else self.pending[0]
        head = buf[:n]
        if len(head) < n:
            head = np.pad(head, (0, n - len(head)))
        rest = buf[n:]
        self.pending = [rest] if len(rest) else []
        self.pending_samples = len(rest)
        return head


class ConversationWriter:
    """A 16-bit PCM WAV of a conversation, each channel placed in stream time.

    Args:
        path: the file to write (its folder is created).
        input_rate: the rate of the user's frames (the profile's input rate).
        output_rate: the rate of the agent's frames (the profile's output rate).
        channels: the file's channels, left to right: ``("user", "agent")`` for a
            stereo conversation, ``("agent",)`` for agent-only output.
        rate: the file's sample rate; None means ``output_rate``.

    Use as a context manager, or call ``close()``: the end of the stream (the
    resamplers' tails, the final length) is written only then. Thread-safe: a
    session writes on its own thread while another calls ``sync()`` or ``close()``.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        input_rate: int,
        output_rate: int,
        channels: Sequence[Source] = STEREO,
        rate: int | None = None,
    ) -> None:
        if not channels:
            raise ValueError("a ConversationWriter needs at least one channel (user or agent)")
        for c in channels:
            if c not in ("user", "agent"):
                raise ValueError(f"unknown channel source {c!r}; use 'user' or 'agent'")
        self.path = Path(path)
        self.rate = int(rate or output_rate)
        self.input_rate = int(input_rate)
        self.output_rate = int(output_rate)
        source_rates = {"user": self.input_rate, "agent": self.output_rate}
        self._channels = [
            _Channel(c, source_rates[c], StreamResampler(source_rates[c], self.rate)) for c in channels
        ]
        self.samples_written = 0  # frames in the file, at ``rate``
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Both closed in close().
        self._file: BinaryIO = open(self.path, "wb")  # noqa: SIM115
        self._wav = wave.open(self._file, "wb")  # noqa: SIM115
        self._wav.setnchannels(len(self._channels))
        self._wav.setsampwidth(2)
        self._wav.setframerate(self.rate)
        self.closed = False
        self._lock = threading.Lock()

    # ---------------------------------------------------------------- writing
    def write_user(self, samples: np.ndarray) -> None:
        """Append the user's next samples (at ``input_rate``), right after the last ones."""
        self._push(user=samples)

    def write_agent(self, samples: np.ndarray) -> None:
        """Append the agent's next samples (at ``output_rate``), right after the last ones."""
        self._push(agent=samples)

    def write_tick(self, user: np.ndarray, agent: np.ndarray) -> None:
        """One tick's input frame and output frame."""
        self._push(user=user, agent=agent)

    def _push(self, user: np.ndarray | None = None, agent: np.ndarray | None = None) -> None:
        sides = {
            source: as_mono_float32(x, what=f"{source} audio")
            for source, x in (("user", user), ("agent", agent))
            if x is not None
        }
        with self._lock:
            if self.closed:
                raise WriterClosed(f"{self.path} is closed; open a new ConversationWriter")
            for ch in self._channels:
                if ch.source in sides:
                    ch.push(sides[ch.source])
            n = min(ch.pending_samples for ch in self._channels)
            if n > 0:  # what every channel has
                self._write_block([ch.take(n) for ch in self._channels])

    def _write_block(self, columns: list[np.ndarray]) -> None:
        block = columns[0] if len(columns) == 1 else np.stack(columns, axis=1).reshape(-1)
        # Raw: the header's length is brought up to date by sync() and close().
        self._wav.writeframesraw(float_to_pcm16(block))
        self.samples_written += len(columns[0])

    # ---------------------------------------------------------------- duration
    @property
    def stream_samples(self) -> int:
        """The stream's length so far, at the file's rate (the longest channel's source)."""
        return max(
            round(ch.source_samples * self.rate / ch.source_rate) for ch in self._channels
        )

    @property
    def duration_ms(self) -> float:
        """The stream's length so far, in ms."""
        return 1000.0 * self.stream_samples / self.rate

    # ---------------------------------------------------------------- ending
    def sync(self) -> None:
        """Push everything written so far to disk (a valid WAV up to here): call it at
        turn ends so a crash loses at most the turn in progress."""
        with self._lock:
            if self.closed:
                return
            self._wav.writeframes(b"")  # patches the header to the length written so far
            self._file.flush()
            os.fsync(self._file.fileno())

    def close(self) -> None:
        """Flush the resamplers' tails and end every channel at the stream's length."""
        with self._lock:
            if self.closed:
                return
            try:
                for ch in self._channels:
                    ch.push(np.zeros(0, np.float32), last=True)
                end = self.stream_samples
                missing = end - self.samples_written
                if missing > 0:
                    self._write_block([ch.take(missing) for ch in self._channels])
                extra = [ch.pending_samples for ch in self._channels]
                if max(extra) > 1:  # the resampler's rounding may leave one sample over
                    log.debug("%s: %s samples past the stream's end dropped", self.path, extra)
                self._wav.close()
            finally:
                self._file.close()
                self.closed = True

    def __enter__(self) -> ConversationWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_conversation(
    path: str | Path,
    *,
    user: np.ndarray | None,
    agent: np.ndarray | None,
    input_rate: int,
    output_rate: int,
    channels: Sequence[Source] = STEREO,
    rate: int | None = None,
) -> None:
    """Write whole tracks at once through a ``ConversationWriter`` (same layout, same
    guarantees): ``user`` at ``input_rate``, ``agent`` at ``output_rate``, each
    starting at stream time 0."""
    with ConversationWriter(
        path, input_rate=input_rate, output_rate=output_rate, channels=channels, rate=rate
    ) as w:
        if user is not None and "user" in channels:
            w.write_user(user)
        if agent is not None and "agent" in channels:
            w.write_agent(agent)
