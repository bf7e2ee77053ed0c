"""``duplex talk``: a full-duplex conversation through the local microphone and speakers.

Audio goes through PortAudio (sounddevice) at the devices' own rates and is
resampled at the edges. Agent audio is played from a small FIFO that is flushed
the moment an interruption is confirmed, so no stale audio plays. The runtime's
echo canceller uses the agent audio as played, so laptop speakers work without
headphones.
"""

from __future__ import annotations

import collections
import json
import logging
import sys
import threading
import time
from pathlib import Path
from typing import TextIO

import numpy as np

from duplex.audio.conversation_writer import ConversationWriter
from duplex.audio.resample import StreamResampler
from duplex.errors import DuplexError
from duplex.events import (
    AUDIO_EVENT_TYPES,
    AgentAudio,
    AgentAudioDone,
    AgentAudioStarted,
    AgentBackchannel,
    AgentTextDelta,
    BargeIn,
    Event,
    StateChanged,
    UserBackchannel,
    UserTranscriptFinal,
    UserTranscriptPartial,
)
from duplex.runtime.runtime import Runtime

log = logging.getLogger(__name__)


class AudioDeviceError(DuplexError):
    """No usable audio device (or PortAudio is missing)."""


def _sounddevice():  # noqa: ANN202
    try:
        import sounddevice as sd
    except OSError as exc:  # the PortAudio library is missing
        raise AudioDeviceError(
            f"PortAudio is not available ({exc}); install it (Debian/Ubuntu: apt-get install libportaudio2)"
        ) from exc
    return sd


def list_devices() -> str:
    """A table of the audio devices PortAudio sees."""
    return str(_sounddevice().query_devices())


class _Fifo:
    """Agent audio waiting for the speaker, flushed on interruption."""

    def __init__(self) -> None:
        self._chunks: collections.deque[np.ndarray] = collections.deque()
        self._head = 0
        self._lock = threading.Lock()

    def push(self, samples: np.ndarray) -> None:
        with self._lock:
            self._chunks.append(samples)

    def flush(self) -> None:
        with self._lock:
            self._chunks.clear()
            self._head = 0

    def pull(self, n: int) -> np.ndarray:
        out = np.zeros(n, np.float32)
        filled = 0
        with self._lock:
            while filled < n and self._chunks:
                c = self._chunks[0]
                take = min(n - filled, len(c) - self._head)
                out[filled : filled + take] = c[self._head : self._head + take]
                filled += take
                self._head += take
                if self._head >= len(c):
                    self._chunks.popleft()
                    self._head = 0
        return out


class LiveView:
    """Plain terminal view: one line per transcript, a status line for the state."""

    def __init__(self, out: TextIO = sys.stdout) -> None:
        self.out = out
        self.state = "listening"
        self.agent_text: dict[str, str] = {}

    def show(self, e: Event) -> None:
        line = None
        if isinstance(e, StateChanged):
            self.state = e.state
            self.out.write(f"\r[{e.state:9}] ")
            self.out.flush()
        elif isinstance(e, UserTranscriptPartial):
            self.out.write(f"\r[{self.state:9}] you: {e.text[-70:]}")
            self.out.flush()
        elif isinstance(e, UserTranscriptFinal) and e.text:
            line = f"you:   {e.text}"
        elif isinstance(e, UserBackchannel):
            line = f"you:   ({e.text})"
        elif isinstance(e, AgentBackchannel):
            line = f"agent: ({e.text})"
        elif isinstance(e, AgentTextDelta):
            self.agent_text[e.response_id] = (self.agent_text.get(e.response_id, "") + " " + e.text).strip()
        elif isinstance(e, AgentAudioStarted):
            line = f"       ({e.latency_ms:.0f} ms)"
        elif isinstance(e, AgentAudioDone):
            cut = f"  [interrupted at {e.audio_end_ms / 1000:.1f} s]" if e.interrupted else ""
            line = f"agent: {e.text}{cut}"
        if line:
            self.out.write("\r" + " " * 90 + "\r" + line + "\n")
            self.out.flush()


def talk(
    runtime: Runtime,
    *,
    input_device: int | str | None = None,
    output_device: int | str | None = None,
    duration_s: float | None = None,
    save_dir: Path | None = None,
    view: LiveView | None = None,
) -> None:
    """Hold a conversation until Ctrl-C (or ``duration_s``); save it if asked."""
    sd = _sounddevice()
    cfg = runtime.config
    try:
        in_info = sd.query_devices(input_device, "input")
        out_info = sd.query_devices(output_device, "output")
    except (ValueError, sd.PortAudioError) as exc:
        raise AudioDeviceError(f"no such audio device ({exc}); list them with: duplex talk --list-devices") from exc
    in_rate = int(in_info["default_samplerate"])
    out_rate = int(out_info["default_samplerate"])
    # What the session consumed and produced, tick by tick: stream time, to the sample.
    recorder = (
        ConversationWriter(
            save_dir / "conversation.wav",
            input_rate=cfg.audio.input_sample_rate,
            output_rate=cfg.audio.output_sample_rate,
        )
        if save_dir is not None
        else None
    )
    session = runtime.open_session("talk", recorder=recorder)
    fifo = _Fifo()
    to_device = StreamResampler(cfg.audio.output_sample_rate, out_rate)
    events_log: list[dict] = []
    stop = threading.Event()
    view = view or LiveView()

    def on_input(indata, frames, t, status):  # noqa: ANN001
        if status:
            log.debug("input status: %s", status)
        mono = indata[:, 0].copy()
        session.push_audio(mono, sample_rate=in_rate)

    def on_output(outdata, frames, t, status):  # noqa: ANN001
        outdata[:, 0] = fifo.pull(frames)

    def consume() -> None:
        while True:
            closed = stop.is_set()  # set once the session is closed: its last events are queued
            new = session.take_events(wait_s=0.1)
            if closed and not new:
                return  # every event taken (the last ones are saved too)
            if session.closed and not new:
                stop.wait(0.1)  # closed from elsewhere: the wait above returns at once; don't spin
            for e in new:
                if isinstance(e, AgentAudio):
                    fifo.push(to_device.process(e.samples))
                    continue
                if (isinstance(e, BargeIn) and e.phase == "confirmed") or (isinstance(e, AgentAudioDone) and e.interrupted):
                    fifo.flush()
                if e.type not in AUDIO_EVENT_TYPES:
                    events_log.append(e.to_dict())
                view.show(e)

    consumer = threading.Thread(target=consume, name="talk-events", daemon=True)
    consumer.start()
    block_in = max(1, in_rate * cfg.audio.frame_ms // 1000)
    block_out = max(1, out_rate * cfg.audio.frame_ms // 1000)
    try:
        with sd.InputStream(device=input_device, channels=1, samplerate=in_rate, blocksize=block_in, dtype="float32", callback=on_input, latency="low"), sd.OutputStream(
            device=output_device, channels=1, samplerate=out_rate, blocksize=block_out, dtype="float32", callback=on_output, latency="low"
        ):
            t0 = time.monotonic()
            while duration_s is None or time.monotonic() - t0 < duration_s:
                time.sleep(0.05)
    except KeyboardInterrupt:
        pass
    except sd.PortAudioError as exc:
        raise AudioDeviceError(f"audio device failed: {exc}") from exc
    finally:
        runtime.close_session(session, "ended")  # closes the recorder, after the last tick
        stop.set()
        consumer.join(timeout=2.0)
        if save_dir is not None:
            _save_events(save_dir, events_log)


def _save_events(out: Path, events: list[dict]) -> None:
    """Write events.jsonl next to conversation.wav."""
    with open(out / "events.jsonl", "w") as f:
        for e in events:
            f.write(json.dumps(e) + "\n")
