"""The file transport: a WAV in, a conversation out (``duplex run``).

Writes, streaming so memory stays flat on long inputs:

- ``conversation.wav``: stereo at the output rate, user left, agent right, each
  sample at its stream time (``duplex.audio.conversation_writer``); as long as the
  session;
- ``events.jsonl``: every event but the audio frames, one JSON object a line;
- ``timeline.png``: waveforms, VAD, conversation state and both sides' text;
- ``summary.json``: the figures printed by the CLI.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from duplex.audio.conversation_writer import ConversationWriter
from duplex.audio.level import AudibleOnsets
from duplex.audio.resample import resample
from duplex.audio.wav import read_wav
from duplex.config import Config
from duplex.events import AUDIO_EVENT_TYPES, AgentAudio, AgentAudioDone, Event
from duplex.models.base import DuplexModel
from duplex.report.summary import summarize
from duplex.runtime.offline import Tick
from duplex.runtime.runtime import Runtime

log = logging.getLogger(__name__)


@dataclass
class RunResult:
    out_dir: Path
    events: list[dict]
    summary: dict


def load_input(path: str | Path, config: Config, *, allow_resample: bool = False) -> np.ndarray:
    """Read a mono WAV at the profile's input rate (or resample it when allowed)."""
    rate_needed = config.audio.input_sample_rate
    samples, rate = read_wav(path, expect_rate=None if allow_resample else rate_needed)
    if rate != rate_needed:
        samples = resample(samples, rate, rate_needed)
    return samples


def run_file(
    in_path: str | Path,
    out_dir: str | Path,
    config: Config,
    *,
    model: DuplexModel | None = None,
    allow_resample: bool = False,
    plot: bool = True,
    progress: Callable[[int, int], None] | None = None,
    tail_s: float = 15.0,
) -> RunResult:
    """Run one WAV through a session on the offline clock and write the outputs."""
    audio = load_input(in_path, config, allow_resample=allow_resample)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    runtime = Runtime(config, model=model, clock="offline")
    try:
        events: list[dict] = []
        onsets = AudibleOnsets(config.audio.output_sample_rate)  # each response's first audible sample
        with ConversationWriter(
            out / "conversation.wav",
            input_rate=config.audio.input_sample_rate,
            output_rate=config.audio.output_sample_rate,
        ) as wav, open(out / "events.jsonl", "w") as log_file:
            session = runtime.open_session("run", recorder=wav)
            session.trace = []

            total = -(-len(audio) // session.frame_samples)  # ticks of user audio

            def take(new: Iterable[Event]) -> None:
                for e in new:
                    if isinstance(e, AgentAudio):
                        onsets.feed(e.response_id, e.t_ms, e.samples)
                    _log_event(e, events, log_file)
                    if e.type == AgentAudioDone.type:
                        wav.sync()  # a crash loses at most the turn in progress

            def on_tick(tick: Tick) -> None:
                take(tick.events)
                if progress is not None and tick.index < total:
                    progress(tick.index + 1, total)

            runtime.run_offline(session, audio, tail_s=tail_s, on_tick=on_tick)
            take(session.take_events())  # none unless no tick ran
        summary = summarize(
            events,
            session.metrics.summary(),
            duration_s=session.t_ms / 1000.0,
            user=audio,
            user_rate=config.audio.input_sample_rate,
            onsets_ms=onsets.onsets_ms,
        )
        (out / "summary.json").write_text(json.dumps(summary, indent=2))
        if plot:
            from duplex.report.timeline import plot_timeline

            plot_timeline(out / "conversation.wav", events, session.trace, out / "timeline.png")
        return RunResult(out, events, summary)
    finally:
        runtime.close()


def _log_event(e: Event, events: list[dict], log_file) -> None:  # noqa: ANN001
    if e.type in AUDIO_EVENT_TYPES:
        return
    d = e.to_dict()
    events.append(d)
    log_file.write(json.dumps(d) + "\n")
