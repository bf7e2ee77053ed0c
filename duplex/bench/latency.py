"""``duplex bench latency``: end of user speech → first agent audio, per stage, on
the offline clock and on the real-time clock, from the same spoken questions.

Stages: *endpointing* (end of speech → turn taken), *asr_final* (compute of the
final transcript), *llm_ttft* (LLM time to first token), *llm_first_clause*
(LLM time to the first speakable clause), *tts_first_chunk* (TTS time to the
first audio of that clause). Also the tick real-time factor while the agent
speaks and listens at once.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from duplex.bench.speech import conversation, questions
from duplex.bench.user import FixedTimelineUser, WaitingUser
from duplex.config import load_config
from duplex.runtime.metrics import percentiles
from duplex.runtime.runtime import Runtime

STAGES = ["endpointing", "asr_final", "llm_ttft", "llm_first_clause", "tts_first_chunk"]
# The p95 bound: turns slower than this are counted on their own.
SLOW_MS = 800.0
_CONTEXT_MS = 3000.0


def _slow_turns(latencies: list[float]) -> int:
    return sum(1 for v in latencies if v > SLOW_MS)


def _collect(events: list[Any], spans: list[tuple[float, float]]) -> dict[str, Any]:
    starts = [e for e in events if e.type == "agent.audio.started"]
    out: dict[str, Any] = {"latency_ms": [e.latency_ms for e in starts], "question_spans_s": spans}
    for st in STAGES:
        out[st] = [e.breakdown_ms.get(st, float("nan")) for e in starts]
    taken = [e for e in events if e.type == "turn.taken"]
    out["turns_taken"] = len(taken)
    # Why a turn was slow: a low end-of-turn score makes the agent wait a fragment's pause.
    out["eot_score"] = [e.eot_score for e in taken]
    out["user_text"] = [e.text for e in taken]
    out["stalls"] = sum(1 for e in events if e.type == "stall")
    # Questions that cut the agent off (on a fixed timeline, a long answer runs into the next).
    out["barge_ins"] = sum(1 for e in events if e.type == "barge_in" and e.phase == "confirmed")
    # Each slow answer with the events of the 3 s before its end of speech and after:
    # why it was slow (a fragment's pause, a barge-in, a late transcript) without a rerun.
    out["slow_turns"] = [
        {
            "latency_ms": e.latency_ms,
            "events": [
                x.to_dict()
                for x in events
                if e.t_ms - e.latency_ms - _CONTEXT_MS <= x.t_ms <= e.t_ms and x.type != "agent.text.delta"
            ],
        }
        for e in starts
        if e.latency_ms > SLOW_MS
    ]
    return out


def _hear(session: Any, user: WaitingUser | FixedTimelineUser, events: list[Any]) -> None:
    """Hand the session's new events to the user (who waits on the agent's audio) and
    keep all but the audio itself."""
    for e in session.channel.drain():
        user.observe(e)
        if e.type != "agent.audio":
            events.append(e)


def run_offline(config, user: WaitingUser | FixedTimelineUser) -> tuple[dict[str, Any], dict[str, Any]]:  # noqa: ANN001
    rt = Runtime(config, clock="offline")
    try:
        s = rt.open_session("bench-offline")
        events: list[Any] = []
        n = s.frame_samples
        while not user.finished:
            s.step(user.frame(n))
            _hear(s, user, events)
        return _collect(events, user.spans), s.metrics.summary()
    finally:
        rt.close()


def run_realtime(config, user: WaitingUser | FixedTimelineUser) -> tuple[dict[str, Any], dict[str, Any]]:  # noqa: ANN001
    rt = Runtime(config, clock="realtime")
    try:
        s = rt.open_session("bench-realtime")
        events: list[Any] = []
        n = s.frame_samples
        t0 = time.monotonic()
        sent = 0
        while not user.finished:
            s.push_audio(user.frame(n))
            sent += n
            _hear(s, user, events)
            due = t0 + sent / config.audio.input_sample_rate
            time.sleep(max(0.0, due - time.monotonic()))
        time.sleep(0.3)
        _hear(s, user, events)
        return _collect(events, user.spans), s.metrics.summary()
    finally:
        rt.close()


def _table(results: dict[str, Any]) -> str:
    header = (
        f"| clock | turns | latency p50 | latency p95 | over {SLOW_MS:.0f} ms | "
        + " | ".join(f"{s} p50" for s in STAGES)
        + " | tick RTF p99 (duplex) | barge-ins | stalls |"
    )
    sep = "|" + "---|" * (header.count("|") - 1)
    rows = [header, sep]
    for clock, r in results.items():
        lat = percentiles(r["latency_ms"])
        slow = _slow_turns(r["latency_ms"])
        cells = [clock, f"{len(r['latency_ms'])}/{r['turns_taken']}", f"{lat['p50']:.0f}", f"{lat['p95']:.0f}", str(slow)]
        for st in STAGES:
            cells.append(f"{np.nanmedian(r[st]):.0f}" if r[st] else "-")
        rtf = r["tick"]["tick_rtf_while_speaking"]["p99"]
        cells += [f"{rtf:.3f}", str(r["barge_ins"]), str(r["stalls"])]
        rows.append("| " + " | ".join(cells) + " |")
    slow_lines = []
    for clock, r in results.items():
        for slow in r["slow_turns"]:
            taken = [e for e in slow["events"] if e["type"] == "turn.taken"]
            why = f"heard {taken[-1]['text']!r}, end-of-turn score {taken[-1]['eot_score']:.2f}" if taken else "no turn taken"
            slow_lines.append(f"- {clock}: {slow['latency_ms']:.0f} ms, {why}")
    if slow_lines:
        rows += ["", f"answers over {SLOW_MS:.0f} ms:", *slow_lines]
    return "\n".join(rows)


def run_latency_bench(
    config_name: str | None = None,
    overrides: list[str] | None = None,
    turns: int = 20,
    clocks: list[str] | None = None,
    out: Path | None = None,
    user_voice: str = "espeak",
    user_waits: bool = True,
) -> dict[str, Any]:
    """Run the benchmark and return {"table": markdown, "results": {...}}.

    ``user_voice`` speaks the questions (``duplex.bench.speech.USER_VOICES``).
    ``user_waits``: each question waits for the answer before it to end
    (``bench.user.WaitingUser``); False asks on a fixed timeline, so a long answer
    runs into the next question.
    """
    config = load_config(config_name, overrides)
    rate = config.audio.input_sample_rate
    spoken = questions(turns, rate, user_voice=user_voice)
    results: dict[str, Any] = {}
    for clock in clocks or ["offline", "realtime"]:
        runner = run_offline if clock == "offline" else run_realtime
        user: WaitingUser | FixedTimelineUser
        if user_waits:
            user = WaitingUser(spoken, rate)
        else:
            user = FixedTimelineUser(*conversation(turns, rate=rate, user_voice=user_voice))
        r, tick = runner(config, user)
        r["tick"] = tick
        results[clock] = r
    summary = {
        clock: {
            "latency_ms": percentiles(r["latency_ms"]),
            **{st: percentiles([v for v in r[st] if v == v]) for st in STAGES},
            "tick_rtf": r["tick"]["tick_rtf"],
            "tick_rtf_while_speaking": r["tick"]["tick_rtf_while_speaking"],
            "over_800_ms": _slow_turns(r["latency_ms"]),
            "turns": len(r["question_spans_s"]),
            "responses": len(r["latency_ms"]),
            "barge_ins": r["barge_ins"],
            "stalls": r["stalls"],
        }
        for clock, r in results.items()
    }
    report = {
        "table": _table(results),
        "summary": summary,
        "raw": {c: {k: v for k, v in r.items() if k != "tick"} for c, r in results.items()},
        "config": config.name,
        "user_voice": user_voice,
        "user": "waits for each answer" if user_waits else "fixed timeline",
    }
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({k: v for k, v in report.items() if k != "table"}, indent=2))
    return report
