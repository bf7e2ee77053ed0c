"""Per-session and per-engine metrics: tick time, budget use, overruns, latencies."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np


def percentiles(values: list[float] | np.ndarray, ps: tuple[int, ...] = (50, 95, 99)) -> dict[str, float]:
    """p50/p95/p99 (and count, mean, max) of ``values``; NaN where empty."""
    arr = np.asarray(values, dtype=np.float64)
    out: dict[str, float] = {"count": float(arr.size)}
    for p in ps:
        out[f"p{p}"] = float(np.percentile(arr, p)) if arr.size else float("nan")
    out["mean"] = float(arr.mean()) if arr.size else float("nan")
    out["max"] = float(arr.max()) if arr.size else float("nan")
    return out


class Reservoir:
    """Keeps at most ``size`` samples of a stream (uniform reservoir): flat memory."""

    def __init__(self, size: int = 4096, seed: int = 0) -> None:
        self.size = size
        self.values: list[float] = []
        self.seen = 0
        self._rng = np.random.default_rng(seed)

    def add(self, value: float) -> None:
        self.seen += 1
        if len(self.values) < self.size:
            self.values.append(value)
            return
        j = int(self._rng.integers(0, self.seen))
        if j < self.size:
            self.values[j] = value


@dataclass
class TickMetrics:
    """Tick compute against the per-tick budget, split by phase and by whether the agent spoke."""

    budget_ms: float
    ticks: int = 0
    overruns: int = 0
    tick_ms: Reservoir = field(default_factory=Reservoir)
    tick_ms_duplex: Reservoir = field(default_factory=Reservoir)  # listening while speaking
    phase_ms: dict[str, Reservoir] = field(default_factory=lambda: defaultdict(Reservoir))
    stage_ms: dict[str, Reservoir] = field(default_factory=lambda: defaultdict(Reservoir))

    def record(self, used_ms: float, phases: dict[str, float], speaking: bool) -> None:
        self.ticks += 1
        self.tick_ms.add(used_ms)
        if speaking:
            self.tick_ms_duplex.add(used_ms)
        if used_ms > self.budget_ms:
            self.overruns += 1
        for name, ms in phases.items():
            self.phase_ms[name].add(ms)

    def summary(self) -> dict[str, object]:
        rtf = np.asarray(self.tick_ms.values) / self.budget_ms if self.tick_ms.values else np.zeros(0)
        rtf_duplex = (
            np.asarray(self.tick_ms_duplex.values) / self.budget_ms
            if self.tick_ms_duplex.values
            else np.zeros(0)
        )
        return {
            "ticks": self.ticks,
            "overruns": self.overruns,
            "budget_ms": self.budget_ms,
            "tick_ms": percentiles(self.tick_ms.values),
            "tick_rtf": percentiles(rtf),
            "tick_rtf_while_speaking": percentiles(rtf_duplex),
            "phase_ms": {k: percentiles(v.values) for k, v in self.phase_ms.items()},
            "stage_ms": {k: percentiles(v.values) for k, v in self.stage_ms.items()},
        }
