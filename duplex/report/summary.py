"""Figures of one run from its events: turns, latencies, barge-ins, stalls."""

from __future__ import annotations

from typing import Any

from duplex.runtime.metrics import percentiles


def summarize(events: list[dict], tick_summary: dict[str, Any], duration_s: float) -> dict[str, Any]:
    """Summarize a run's events (as dicts) and tick metrics."""

    def of(kind: str) -> list[dict]:
        return [e for e in events if e["type"] == kind]

    latencies = [e["latency_ms"] for e in of("agent.audio.started")]
    stages: dict[str, list[float]] = {}
    for e in of("agent.audio.started"):
        for k, v in e.get("breakdown_ms", {}).items():
            stages.setdefault(k, []).append(v)
    barge = of("barge_in")
    return {
        "duration_s": round(duration_s, 3),
        "turns": len(of("turn.taken")),
        "responses": len(of("agent.audio.started")),
        "response_latency_ms": percentiles(latencies),
        "stage_ms": {k: percentiles(v) for k, v in stages.items()},
        "barge_ins": sum(1 for e in barge if e["phase"] == "confirmed"),
        "barge_in_false_alarms": sum(1 for e in barge if e["phase"] == "false_alarm"),
        "backchannels": len(of("user.backchannel")),
        "interrupted_responses": sum(1 for e in of("agent.audio.done") if e["interrupted"]),
        "stalls": len(of("stall")),
        "errors": [e["message"] for e in of("error")],
        "user_text": [e["text"] for e in of("user.transcript.final") if e["text"]],
        "agent_text": [e["text"] for e in of("agent.audio.done")],
        "tick": tick_summary,
    }


def format_summary(s: dict[str, Any]) -> str:
    """A plain-text table of a summary for the terminal."""
    lat = s["response_latency_ms"]
    tick = s["tick"]
    rows = [
        ("duration", f"{s['duration_s']:.1f} s"),
        ("turns taken", str(s["turns"])),
        ("responses", str(s["responses"])),
        ("response latency p50 / p95", _ms(lat["p50"]) + " / " + _ms(lat["p95"])),
    ]
    for stage, p in s["stage_ms"].items():
        rows.append((f"  {stage} p50", _ms(p["p50"])))
    rows += [
        ("barge-ins (confirmed)", str(s["barge_ins"])),
        ("barge-in false alarms", str(s["barge_in_false_alarms"])),
        ("backchannels", str(s["backchannels"])),
        ("stalls", str(s["stalls"])),
        ("tick RTF p50 / p99", f"{tick['tick_rtf']['p50']:.3f} / {tick['tick_rtf']['p99']:.3f}"),
    ]
    width = max(len(r[0]) for r in rows)
    lines = [f"{k.ljust(width)}  {v}" for k, v in rows]
    for e in s["errors"]:
        lines.append(f"error: {e}")
    return "\n".join(lines)


def _ms(v: float) -> str:
    return "-" if v != v else f"{v:.0f} ms"
