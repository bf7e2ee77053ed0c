"""Figures of one run from its events: turns, latencies, barge-ins, stalls.

The response latency is what a listener waits: from the real end of the user's
speech, read from the input audio (its last audible 10 ms block before the VAD's
end of speech, ``duplex.audio.level``), to the response's first audible sample,
read from the frames the session played. Where the input does not fall silent
around the VAD's end (noise, other talk) the real end is unknown and the turn is
left out of it. The events' own ``latency_ms`` (VAD end → first frame) is kept
beside it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from duplex.audio.level import AUDIBLE_DB, BLOCK_MS, block_db
from duplex.runtime.metrics import percentiles

_LOOK_BACK_MS = 2000.0  # the real end is looked for this far before the VAD's end
_LOOK_AHEAD_MS = 64.0  # and this far after it (a soft tail the VAD let go of early)


def real_end_ms(user: np.ndarray, rate: int, vad_end_ms: float) -> float | None:
    """The real end of the user's speech near the VAD's end ``vad_end_ms``: the end of
    the last audible block of ``user`` (stream time from sample 0) before it; None
    when the input is audible right through the look-ahead (noise) or not at all."""
    a = max(0.0, vad_end_ms - _LOOK_BACK_MS)
    b = vad_end_ms + _LOOK_AHEAD_MS
    n = int(round(rate * BLOCK_MS / 1000.0))
    first = int(a // BLOCK_MS)
    db = block_db(user[first * n : int(math.ceil(b / BLOCK_MS)) * n], rate)
    loud = np.flatnonzero(db > AUDIBLE_DB)
    if not len(loud) or loud[-1] == len(db) - 1:
        return None
    return (first + int(loud[-1]) + 1) * BLOCK_MS


def audible_latencies(
    events: list[dict], user: np.ndarray, rate: int, onsets_ms: dict[str, float]
) -> list[dict[str, float]]:
    """Per response with a known real end: its audible latency and the three parts
    that add up to it (endpoint lag, event latency, lead-in), in ms."""
    out = []
    for e in events:
        if e["type"] != "agent.audio.started" or e["response_id"] not in onsets_ms:
            continue
        vad_end = e["t_ms"] - e["latency_ms"]
        end = real_end_ms(user, rate, vad_end)
        if end is None:
            continue
        onset = onsets_ms[e["response_id"]]
        out.append(
            {
                "audible_ms": onset - end,
                "endpoint_lag_ms": vad_end - end,
                "event_latency_ms": e["latency_ms"],
                "lead_in_ms": onset - e["t_ms"],
            }
        )
    return out


def summarize(
    events: list[dict],
    tick_summary: dict[str, Any],
    duration_s: float,
    user: np.ndarray | None = None,
    user_rate: int = 16000,
    onsets_ms: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Summarize a run's events (as dicts) and tick metrics; with the input audio
    ``user`` (stream time from sample 0) and each response's first audible stream time
    ``onsets_ms`` (``duplex.audio.level.AudibleOnsets``), the audible latency too."""

    def of(kind: str) -> list[dict]:
        return [e for e in events if e["type"] == kind]

    latencies = [e["latency_ms"] for e in of("agent.audio.started")]
    heard = audible_latencies(events, user, user_rate, onsets_ms) if user is not None and onsets_ms is not None else []
    stages: dict[str, list[float]] = {}
    for e in of("agent.audio.started"):
        for k, v in e.get("breakdown_ms", {}).items():
            stages.setdefault(k, []).append(v)
    barge = of("barge_in")
    return {
        "duration_s": round(duration_s, 3),
        "turns": len(of("turn.taken")),
        "responses": len(of("agent.audio.started")),
        "response_latency_ms": percentiles([h["audible_ms"] for h in heard]),  # audible
        "endpoint_lag_ms": percentiles([h["endpoint_lag_ms"] for h in heard]),
        "lead_in_ms": percentiles([h["lead_in_ms"] for h in heard]),
        "response_latency_event_ms": percentiles(latencies),
        "audible_by_response_ms": heard,
        "stage_ms": {k: percentiles(v) for k, v in stages.items()},
        "barge_ins": sum(1 for e in barge if e["phase"] == "confirmed"),
        "barge_in_false_alarms": sum(1 for e in barge if e["phase"] == "false_alarm"),
        "backchannels": len(of("user.backchannel")),
        "interrupted_responses": sum(1 for e in of("agent.audio.done") if e["interrupted"]),
        "stalls": len(of("stall")),
        "errors": [e["message"] for e in of("error")],
        "user_text": _final_words(of("user.transcript.final")),
        "agent_text": [e["text"] for e in of("agent.audio.done")],
        "tick": tick_summary,
    }


def _final_words(finals: list[dict[str, Any]]) -> list[str]:
    """The words of each stretch's final, in order: a stretch read again by a second look
    (the same span) keeps its last reading."""
    words: dict[tuple[float, float], str] = {}
    for e in finals:
        if e["text"]:
            words[(e["start_ms"], e["end_ms"])] = e["text"]
    return list(words.values())


def format_summary(s: dict[str, Any]) -> str:
    """A plain-text table of a summary for the terminal."""
    tick = s["tick"]
    rows = [
        ("duration", f"{s['duration_s']:.1f} s"),
        ("turns taken", str(s["turns"])),
        ("responses", str(s["responses"])),
    ]
    for label, key in (
        ("response latency p50 / p95 (audible)", "response_latency_ms"),
        ("  endpoint lag p50 / p95", "endpoint_lag_ms"),
        ("  event latency p50 / p95 (VAD end → first chunk)", "response_latency_event_ms"),
        ("  lead-in p50 / p95", "lead_in_ms"),
    ):
        p = s.get(key) or {"p50": float("nan"), "p95": float("nan")}
        rows.append((label, _ms(p["p50"]) + " / " + _ms(p["p95"])))
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
