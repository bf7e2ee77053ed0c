"""Runs scenarios through the engine on the offline clock, closed loop, and scores them.

Each scenario gets a fresh session on a Runtime that is built once per worker
process. The runner drives the session with the one offline driver
(``duplex.runtime.offline``), as ``Runtime.run_offline`` does, but every input
frame comes from the simulated room
(``duplex.eval.acoustics``): the static base track, user audio inserted relative
to the agent's own events ("1200 ms after the agent's first audio of response
1"), and the agent's output fed back through an echo path. After the base track
it keeps ticking on silence until the agent is idle (or ``tail_s`` runs out).

``--jobs N`` runs N worker processes (spawn), each with its own Runtime.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from duplex.audio.level import speech_span_ms
from duplex.audio.resample import resample
from duplex.audio.wav import read_wav
from duplex.config import Config
from duplex.eval.acoustics import EchoSimulator, Microphone, db_to_gain
from duplex.eval.metrics import PlayedInsert, Trial, score_trial
from duplex.eval.outputs import dumps, write_outputs
from duplex.eval.scenarios import Scenario
from duplex.events import AUDIO_EVENT_TYPES
from duplex.models.base import DuplexModel
from duplex.runtime.offline import TailRule, Tick, drive
from duplex.runtime.runtime import Runtime

log = logging.getLogger(__name__)

PHASES = ("listen", "decide", "think", "speak")


@dataclass(frozen=True)
class RunOptions:
    """How each scenario is run and what is written for it."""

    plots: bool = True  # timeline.png per scenario
    write_audio: bool = True  # conversation.wav, input.wav, output.wav per scenario
    tail_s: float = 15.0  # ticking on silence after the last user audio, at most
    idle_ms: float = 600.0  # stop once the agent has been idle this long (and nothing is pending)
    min_tail_s: float = (
        3.0  # but never sooner than this after the last user audio (endpointing + ASR)
    )


def _load(path: Path, rate: int) -> np.ndarray:
    samples, r = read_wav(path, expect_rate=None)
    return resample(samples, r, rate) if r != rate else samples


# Agent events that inserts can be timed on, and the anchor names scenarios use for them.
_ANCHORS = {"agent.audio.started": "agent_audio_start", "agent.audio.done": "agent_audio_done"}


def run_scenario(
    runtime: Runtime,
    scenario: Scenario,
    out_dir: Path | None = None,
    options: RunOptions = RunOptions(),  # noqa: B008
) -> tuple[dict[str, Any], dict[str, list[float]]]:
    """Run one scenario on ``runtime`` (offline clock) and score it.

    Returns:
        (the scenario's result, as ``metrics.score_trial`` gives it, and the raw
        per-tick compute times in ms: ``{"tick": [...], "listen": [...], ...}``).
    """
    config = runtime.config
    in_rate = config.audio.input_sample_rate
    out_rate = config.audio.output_sample_rate
    frame_ms = float(config.audio.frame_ms)
    base = _load(scenario.audio, in_rate)
    insert_audio = []
    spans = []
    for ins in scenario.inserts:
        x = _load(scenario.folder / ins.audio, in_rate) * db_to_gain(ins.gain_db)
        insert_audio.append(x.astype(np.float32))
        spans.append(ins.speech_ms or speech_span_ms(x, in_rate))
    session = runtime.open_session(scenario.id)
    session.trace = []
    n = session.frame_samples
    echo = (
        EchoSimulator(scenario.echo, n, out_rate, in_rate, scenario.folder)
        if scenario.echo
        else None
    )
    mic = Microphone(base, n, echo)
    played: dict[int, PlayedInsert] = {}

    def fire(i: int, at_ms: float) -> None:
        start = mic.schedule(int(round(at_ms * in_rate / 1000.0)), insert_audio[i])
        onset = start * 1000.0 / in_rate
        played[i] = PlayedInsert(i, onset, onset + spans[i][0], onset + spans[i][1])

    for i, ins in enumerate(scenario.inserts):
        if ins.anchor == "time":
            fire(i, ins.offset_ms)
    mic_frames: list[np.ndarray] = []
    agent_frames: list[np.ndarray] = []
    events: list[dict] = []
    # How many responses have started / ended so far: inserts are timed on the Nth one.
    seen = {"agent_audio_start": 0, "agent_audio_done": 0}

    def on_tick(tick: Tick) -> None:
        mic.play(tick.output)
        mic_frames.append(tick.input)
        agent_frames.append(tick.output)
        for e in tick.events:
            if e.type in AUDIO_EVENT_TYPES:
                continue
            events.append(e.to_dict())
            anchor = _ANCHORS.get(e.type)
            if anchor is None:
                continue
            seen[anchor] += 1
            for i, ins in enumerate(scenario.inserts):
                if ins.anchor == anchor and ins.response == seen[anchor] and i not in played:
                    fire(i, e.t_ms + ins.offset_ms)

    tail = TailRule(
        idle_ms=options.idle_ms, min_ms=1000.0 * options.min_tail_s, max_ms=1000.0 * options.tail_s
    )
    try:
        drive(session, mic, tail, on_tick)
        tick = list(session.metrics.tick_ms.values)
        phase = {
            k: list(session.metrics.phase_ms[k].values)
            for k in PHASES
            if k in session.metrics.phase_ms
        }
        overruns = session.metrics.overruns
        duration_ms = session.t_ms
        trace = session.trace
    finally:
        runtime.close_session(session)
    for e in session.take_events():
        if e.type not in AUDIO_EVENT_TYPES:
            events.append(e.to_dict())
    agent_track = np.concatenate(agent_frames) if agent_frames else np.zeros(0, np.float32)
    mic_track = np.concatenate(mic_frames) if mic_frames else np.zeros(0, np.float32)
    trial = Trial(
        scenario=scenario,
        events=events,
        agent=agent_track,
        out_rate=out_rate,
        frame_ms=frame_ms,
        duration_ms=duration_ms,
        base_ms=len(base) * 1000.0 / in_rate,
        inserts=[played[i] for i in sorted(played)],
        tick_ms=tick,
        phase_ms=phase,
        overruns=overruns,
    )
    result = score_trial(trial)
    result["user_text"] = " ".join(s.text for s in scenario.user_segments() if s.text)
    result["insert_text"] = scenario.inserts[0].text if scenario.inserts else ""
    result["inserts"] = [
        {
            "index": p.index,
            "onset_ms": p.onset_ms,
            "speech_onset_ms": p.speech_onset_ms,
            "speech_end_ms": p.speech_end_ms,
        }
        for p in trial.inserts
    ]
    if out_dir is not None:
        write_outputs(
            out_dir,
            scenario,
            result,
            events,
            trace,
            mic_track,
            agent_track,
            in_rate,
            out_rate,
            plots=options.plots,
            write_audio=options.write_audio,
        )
    ticks = {"tick": tick, **phase}
    return result, ticks


# ---------------------------------------------------------------- many scenarios
_worker: dict[str, Any] = {}


def _init_worker(config: Config, out_root: str | None, options: RunOptions) -> None:
    logging.basicConfig(level=logging.WARNING)
    _worker["runtime"] = Runtime(config, clock="offline")
    _worker["out"] = Path(out_root) if out_root else None
    _worker["options"] = options


def _run_in_worker(scenario: Scenario) -> tuple[str, dict[str, Any], dict[str, list[float]]]:
    runtime: Runtime = _worker["runtime"]
    out = _worker["out"]
    try:
        result, ticks = run_scenario(
            runtime, scenario, out / "scenarios" / scenario.id if out else None, _worker["options"]
        )
        return scenario.id, result, ticks
    except Exception as exc:  # one broken scenario must not end the batch
        log.exception("scenario %s failed", scenario.id)
        return scenario.id, _error_result(scenario, exc), {}


def _error_result(scenario: Scenario, exc: BaseException) -> dict[str, Any]:
    return {
        "id": scenario.id,
        "category": scenario.category,
        "tags": list(scenario.tags),
        "status": "error",
        "duration_ms": 0.0,
        "expectations": [],
        "errors": [f"{type(exc).__name__}: {exc}", traceback.format_exc(limit=5)],
        "stalls": 0,
        "overruns": 0,
        "stage_ms": {},
        "compute_rtf": float("nan"),
    }


def iter_runs(
    scenarios: list[Scenario],
    config: Config,
    out_dir: str | Path | None,
    *,
    jobs: int = 1,
    options: RunOptions = RunOptions(),  # noqa: B008
    model: DuplexModel | None = None,
) -> Iterator[tuple[str, dict[str, Any], dict[str, list[float]]]]:
    """Run ``scenarios`` and yield ``(id, result, ticks)`` as each finishes.

    Args:
        scenarios: what to run.
        config: the profile (each worker builds its own Runtime from it).
        out_dir: where per-scenario outputs go (``scenarios/ID/``); None writes nothing.
        jobs: worker processes; 1 runs in this process.
        options: per-scenario run options.
        model: an already built model (in-process only: needs ``jobs == 1``).
    """
    out = str(out_dir) if out_dir is not None else None
    if jobs <= 1 or len(scenarios) <= 1:
        runtime = Runtime(config, model=model, clock="offline")
        _worker.update(runtime=runtime, out=Path(out) if out else None, options=options)
        try:
            for sc in scenarios:
                yield _run_in_worker(sc)
        finally:
            runtime.close()
            _worker.clear()
        return
    if model is not None:
        raise ValueError("a prebuilt model runs in-process only; use jobs=1")
    ctx = mp.get_context("spawn")
    with ctx.Pool(jobs, initializer=_init_worker, initargs=(config, out, options)) as pool:
        # longest first: fewer stragglers at the end
        order = sorted(scenarios, key=lambda s: -s.audio.stat().st_size)
        yield from pool.imap_unordered(_run_in_worker, order)


def run_eval(
    scenarios: list[Scenario],
    config: Config,
    out_dir: str | Path,
    *,
    jobs: int = 1,
    options: RunOptions = RunOptions(),  # noqa: B008
    model: DuplexModel | None = None,
    progress: Callable[[str, dict[str, Any]], None] | None = None,
    meta: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run every scenario, aggregate, and write ``results.json``, ``report.md`` and plots.

    Returns:
        The results document (as written to ``results.json``).
    """
    from duplex.config import to_dict
    from duplex.eval.metrics import aggregate
    from duplex.eval.report import write_report

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    results: dict[str, dict[str, Any]] = {}
    pooled: dict[str, list[float]] = {}
    for sid, result, ticks in iter_runs(
        scenarios, config, out, jobs=jobs, options=options, model=model
    ):
        results[sid] = result
        for k, v in ticks.items():
            pooled.setdefault(k, []).extend(v)
        if progress is not None:
            progress(sid, result)
    wall_s = time.perf_counter() - t0
    ordered = [results[s.id] for s in scenarios]
    summary = aggregate(ordered, pooled, float(config.audio.frame_ms))
    doc = {
        "schema": "duplex.eval.results/1",
        "profile": config.name,
        "meta": {
            "jobs": jobs,
            "wall_s": round(wall_s, 1),
            "audio_s": round(sum(r["duration_ms"] for r in ordered) / 1000.0, 1),
            **(meta or {}),
        },
        "config": to_dict(config),
        "summary": summary,
        "scenarios": ordered,
    }
    (out / "results.json").write_text(dumps(doc))
    write_report(doc, out)
    return doc
