"""``duplex bench soak``: a long simulated conversation through the real models on the
offline clock, for flat memory and no latency drift (first vs last ten turns).

The user asks the benchmark questions in turn (espeak-ng voices), again and again, for
``minutes`` of stream time. It waits for each answer as the latency bench's user does
(``bench.user.WaitingUser``): the next question comes ``gap_s`` after the last, or 1 s
after the agent falls silent, whichever is later. Every turn's audible response
latency (the real end of the question to the first audible agent sample, as
``duplex bench latency`` reads it) with its parts and stages, the barge-ins (0 when
the user waits) and the process's RSS are recorded.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from duplex.audio.level import AudibleOnsets
from duplex.bench.latency import PARTS, SLOW_MS, audible_parts, real_end_s
from duplex.bench.speech import QUESTIONS, VOICES, speak
from duplex.bench.user import UserFrames, WaitingUser
from duplex.config import load_config
from duplex.events import AgentAudio, AgentAudioStarted, BargeIn, TurnTaken
from duplex.runtime.metrics import percentiles
from duplex.runtime.offline import NO_TAIL, Tick, drive
from duplex.runtime.runtime import Runtime


def run_soak(minutes: float = 60.0, gap_s: float = 7.0, config_name: str | None = None,
             overrides: list[str] | None = None, out: Path | None = None, progress: Any = None) -> dict[str, Any]:
    config = load_config(config_name, overrides)
    questions = [speak(q, VOICES[i % len(VOICES)]) for i, q in enumerate(QUESTIONS)]
    user = WaitingUser(questions, 16000, gap_s=gap_s, repeat=True)
    rt = Runtime(config, clock="offline")
    proc = psutil.Process()
    latencies: list[float] = []
    stages: list[dict[str, float]] = []  # per response: where its latency went
    rss: list[tuple[float, float]] = []
    barge_ins = 0
    slow: list[dict[str, Any]] = []  # answers over SLOW_MS: what the agent heard, and its score
    taken: Any = None  # the last turn taken
    # A response is counted at its first audible sample (a frame or two after it starts).
    started: dict[str, tuple[AgentAudioStarted, Any]] = {}
    onsets = AudibleOnsets(config.audio.output_sample_rate)
    try:
        s = rt.open_session("soak")
        total_ticks = int(minutes * 60_000 / s.frame_ms)

        def on_tick(tick: Tick) -> None:
            nonlocal taken, barge_ins
            for e in tick.events:
                user.observe(e)
                if isinstance(e, TurnTaken):
                    taken = e
                elif isinstance(e, AgentAudioStarted):
                    started[e.response_id] = (e, taken)
                elif isinstance(e, AgentAudio):
                    onset = onsets.feed(e.response_id, e.t_ms, e.samples)
                    if onset is None or e.response_id not in started:
                        continue
                    begun, heard = started.pop(e.response_id)
                    real_end = 1000.0 * real_end_s(user.speech_spans, (begun.t_ms - begun.latency_ms) / 1000.0)
                    parts = audible_parts(begun, onset, real_end)
                    latencies.append(parts["audible_ms"])
                    stages.append({**{k: parts[k] for k in PARTS}, **begun.breakdown_ms})
                    if not parts["audible_ms"] <= SLOW_MS:
                        slow.append({
                            "stream_min": round(begun.t_ms / 60_000, 2),
                            "latency_ms": parts["audible_ms"],
                            **{k: parts[k] for k in PARTS},
                            "heard": heard.text if heard is not None else "",
                            "eot_score": heard.eot_score if heard is not None else None,
                        })
                elif isinstance(e, BargeIn) and e.phase == "confirmed":
                    barge_ins += 1
            if tick.index % 1875 == 0:  # every minute of stream time
                rss.append((s.t_ms / 60_000, proc.memory_info().rss / 1e6))
                if progress:
                    progress(tick.index, total_ticks)

        drive(s, UserFrames(user, s.frame_samples, max_frames=total_ticks), NO_TAIL, on_tick)
    finally:
        rt.close()
    q = user.asked
    first, last = latencies[:10], latencies[-10:]
    # Tails drift too (a context overflow stalls one answer in thirty): p95 per third.
    third = max(1, len(latencies) // 3)
    warm = [r for m, r in rss if m >= 2.0] or [r for _, r in rss]
    report: dict[str, Any] = {
        "minutes": minutes,
        "questions": q,
        "responses": len(latencies),
        "barge_ins": barge_ins,
        "latency_first10_ms": percentiles(first),
        "latency_last10_ms": percentiles(last),
        "latency_all_ms": percentiles(latencies),
        "latency_first_third_ms": percentiles(latencies[:third]),
        "latency_last_third_ms": percentiles(latencies[-third:]),
        "rss_mb_by_minute": rss,
        # Stateless stages (ASR final, TTS) slowing as much as the total means the machine
        # slowed down, not the conversation.
        "stages_first10_vs_last10_p50_ms": {
            name: [
                float(np.nanmedian([s.get(name, np.nan) for s in part])) if part else float("nan")
                for part in (stages[:10], stages[-10:])
            ]
            for name in sorted({k for s in stages for k in s})
        },
        "latency_by_response_ms": latencies,  # audible
        "slow_answers": slow,
        "rss_growth_after_warmup_mb": (warm[-1] - warm[0]) if warm else 0.0,
    }
    report["table"] = (
        "| stream minutes | answers | barge-ins | audible p50 first 10 | audible p50 last 10 | p95 first third | p95 last third | max "
        "| RSS after 2 min → end | growth |\n"
        "|---|---|---|---|---|---|---|---|---|---|\n"
        f"| {minutes:.0f} | {len(latencies)}/{q} | {barge_ins} | {report['latency_first10_ms']['p50']:.0f} ms | {report['latency_last10_ms']['p50']:.0f} ms | "
        f"{report['latency_first_third_ms']['p95']:.0f} ms | {report['latency_last_third_ms']['p95']:.0f} ms | "
        f"{report['latency_all_ms']['max']:.0f} ms | {warm[0]:.0f} → {warm[-1]:.0f} MB | {report['rss_growth_after_warmup_mb']:+.1f} MB |"
    )
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({k: v for k, v in report.items() if k != "table"}, indent=2))
    return report
