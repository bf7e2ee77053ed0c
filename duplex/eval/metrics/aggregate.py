"""The headline metrics of a run: per-scenario results pooled by behaviour (take-over
rates, latencies, stop rates, false interruptions, real-time factors)."""

from __future__ import annotations

from typing import Any

import numpy as np

from duplex.runtime.metrics import percentiles


def rounded_percentiles(values: Any) -> dict[str, float]:
    """p50, p95 and p99 of ``values``, rounded to 4 places (None where there are none)."""
    p = percentiles(np.asarray(values, np.float64), (50, 95, 99))
    return {k: (round(v, 4) if v == v else None) for k, v in p.items()}  # type: ignore[misc]


def _rate(flags: list[bool]) -> dict[str, Any]:
    return {"rate": (round(sum(flags) / len(flags), 4) if flags else None), "n": len(flags)}


def aggregate(
    results: list[dict[str, Any]],
    ticks: dict[str, list[float]] | None = None,
    frame_ms: float = 32.0,
) -> dict[str, Any]:
    """Aggregate per-scenario results (from ``score_trial``) into the headline metrics.

    Args:
        results: per-scenario results.
        ticks: pooled raw per-tick compute times: ``{"tick": [...], "listen": [...], ...}`` (ms).
        frame_ms: the tick period, to turn compute times into real-time factors.
    """
    outs = [(r, o) for r in results for o in r["expectations"] if o["status"] != "skipped"]
    skipped = sum(1 for r in results for o in r["expectations"] if o["status"] == "skipped")

    def sel(behaviour: str, cats: tuple[str, ...] | None = None) -> list[dict]:
        return [
            o
            for _, o in outs
            if o["behaviour"] == behaviour and (cats is None or o["category"] in cats)
        ]

    tor = {
        "smooth_turn": _rate([bool(o["took_turn"]) for o in sel("take_turn")]),
        "pause": _rate([bool(o["took_turn"]) for o in sel("no_take", ("pause",))]),
        "backchannel": _rate([bool(o["took_turn"]) for o in sel("ignore", ("backchannel",))]),
        "interruption": _rate([bool(o["took_turn"]) for o in sel("yield")]),
    }
    # the turn-taker decided to take the turn in a pause, even when the user resumed before any audio
    premature = _rate([bool(o.get("turn_event")) for o in sel("no_take", ("pause",))])
    listen = sel("no_take", ("listen",))
    if listen:
        tor["listen"] = _rate([bool(o["took_turn"]) for o in listen])
    resp = [
        o["response_latency_ms"] for o in sel("take_turn") if o["response_latency_ms"] is not None
    ]
    resp_ev = [
        o["response_latency_event_ms"]
        for o in sel("take_turn")
        if o["response_latency_event_ms"] is not None
    ]
    lag = [o["endpoint_lag_ms"] for o in sel("take_turn") if o.get("endpoint_lag_ms") is not None]
    lead = [o["lead_in_ms"] for o in sel("take_turn") if o.get("lead_in_ms") is not None]
    yields = sel("yield")
    stop = [o["stop_latency_ms"] for o in yields if o["stopped"]]
    stop_ev = [o["stop_latency_event_ms"] for o in yields if o["stop_latency_event_ms"] is not None]
    after = [o["response_latency_ms"] for o in yields if o["response_latency_ms"] is not None]
    fi_cats = ("backchannel", "noise", "background_speech", "echo")
    ignores = sel("ignore")
    false_int = {
        "all": _rate([bool(o["false_interruption"]) for o in ignores if o["category"] in fi_cats])
    }
    for c in fi_cats:
        sub = [bool(o["false_interruption"]) for o in ignores if o["category"] == c]
        if sub:
            false_int[c] = _rate(sub)
    false_take = _rate(
        [bool(o["took_turn"]) for o in sel("no_take", ("noise", "background_speech"))]
    )
    by_cat: dict[str, dict[str, int]] = {}
    for r in results:
        counts = by_cat.setdefault(r["category"], {"pass": 0, "fail": 0, "skipped": 0, "error": 0})
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    stages: dict[str, list[float]] = {}
    for r in results:
        for k, v in r.get("stage_ms", {}).items():
            stages.setdefault(k, []).extend(v)
    ticks = ticks or {}
    rtf: dict[str, Any] = {}
    if ticks.get("tick"):
        rtf["tick"] = rounded_percentiles(np.asarray(ticks["tick"]) / frame_ms)
        rtf["stage"] = {
            k: rounded_percentiles(np.asarray(v) / frame_ms)
            for k, v in ticks.items()
            if k != "tick" and v
        }
    compute = [
        r["compute_rtf"]
        for r in results
        if r.get("compute_rtf") is not None and r["compute_rtf"] == r["compute_rtf"]
    ]
    rtf["overall_mean"] = round(float(np.mean(compute)), 4) if compute else None
    total_min = sum(r["duration_ms"] for r in results) / 60000.0
    stalls = sum(r["stalls"] for r in results)
    return {
        "scenarios": len(results),
        "passed": sum(1 for r in results if r["status"] == "pass"),
        "failed": sum(1 for r in results if r["status"] == "fail"),
        "errored": sum(1 for r in results if r["status"] == "error"),
        "skipped_expectations": skipped,
        "by_category": by_cat,
        "tor": tor,
        "response_latency_ms": rounded_percentiles(resp),
        "response_latency_event_ms": rounded_percentiles(resp_ev),
        "endpoint_lag_ms": rounded_percentiles(lag),
        "lead_in_ms": rounded_percentiles(lead),
        "stop_latency_ms": rounded_percentiles(stop),
        "stop_latency_event_ms": rounded_percentiles(stop_ev),
        "stop_rate": _rate([bool(o["stopped"]) for o in yields]),
        "response_after_interruption_ms": rounded_percentiles(after),
        "false_interruption_rate": false_int,
        "false_pause_rate": _rate([bool(o["false_pause"]) for o in ignores]),
        "false_take_rate": false_take,
        "pause_turn_event_rate": premature,
        "stage_ms": {k: rounded_percentiles(v) for k, v in stages.items()},
        "rtf": rtf,
        "stalls": stalls,
        "stalls_per_min": round(stalls / total_min, 3) if total_min else None,
        "overruns": sum(r.get("overruns", 0) for r in results),
        "errors": sum(len(r.get("errors", [])) for r in results),
    }
