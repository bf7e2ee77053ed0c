"""Per-family figures of a run, held-out apart from tuning, and the agent's backchannels.

Scenarios tagged ``family:NAME`` (the human-speech families of
``duplex/eval/human_scenarios.py``) are summed per family and per split
(``tuning`` / ``heldout`` tags), from the rows of ``results.json`` and each
scenario's ``events.jsonl``. The figures reuse the verdicts of
``duplex/eval/metrics/``: take-over in a pause or gap is the TOR of the
``no_take`` expectations, the turn after the user is the TOR of ``take_turn``,
stop latency and stop rate come from ``yield``.

**Agent backchannels**, as Full-Duplex-Bench v1 scores them
(``evaluation/eval_backchannel.py``):

- *frequency*: the agent's backchannels (``agent.backchannel`` events) per
  second of the scenario;
- *JSD*: the Jensen–Shannon distance (``scipy.spatial.distance.jensenshannon``,
  natural log: the square root of the divergence) between the agent's
  backchannel timing and a human reference, both as histograms over 0.2 s
  bins, the agent's plus 1e-10 and normalised; a scenario with no agent
  backchannel scores 1.0, as in the benchmark. Each backchannel covers
  [event, event + 400 ms]. Full-Duplex-Bench's reference is where the listener
  of an ICC recording said "mhm"; ours is where a listener may say it: the
  user's gaps and pauses that are not turn ends (the ``no_take`` windows'
  pause spans, ``onset_ms``–``end_ms``). Bins run over the whole scenario, as
  the benchmark's run over the whole ``output.wav``: a "mhm" after the user's
  last words (before the agent answers) is not in any gap and counts against
  the JSD. (Until 2026-12-06 the bins stopped at the user's last speech, so such
  a "mhm" left an empty histogram that scored as a uniform one, ~0.65.)
  Families with no such pause report the frequency only.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

BIN_S = 0.2  # Full-Duplex-Bench's window_size
EPS = 1e-10
BACKCHANNEL_MS = 400.0  # the span one agent backchannel covers in the histogram
PAUSE_CATEGORIES = ("listen", "pause")


def js_distance(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen–Shannon distance (natural log), as ``scipy.spatial.distance.jensenshannon``."""
    p = np.asarray(p, np.float64) / np.sum(p)
    q = np.asarray(q, np.float64) / np.sum(q)
    m = (p + q) / 2.0

    def kl(a: np.ndarray, b: np.ndarray) -> float:
        nz = a > 0
        return float(np.sum(a[nz] * np.log(a[nz] / b[nz])))

    return math.sqrt(max(0.0, (kl(p, m) + kl(q, m)) / 2.0))


def _hist(spans_ms: list[tuple[float, float]], n_bins: int) -> np.ndarray:
    h = np.zeros(n_bins, np.float64)
    for a, b in spans_ms:
        i0 = int(a / 1000.0 / BIN_S)
        i1 = int(b / 1000.0 / BIN_S)
        for i in range(max(0, i0), min(n_bins - 1, i1) + 1):
            h[i] += 1
    return h


def backchannel_jsd(
    agent_ms: list[float], reference_ms: list[tuple[float, float]], end_ms: float
) -> float:
    """Full-Duplex-Bench's JSD of one sample: 1.0 without agent backchannels."""
    if not agent_ms:
        return 1.0
    n = int(end_ms / 1000.0 / BIN_S) + 1
    pred = _hist([(t, t + BACKCHANNEL_MS) for t in agent_ms], n) + EPS
    ref = _hist(reference_ms, n) + EPS
    return js_distance(pred, ref)


def _pct(xs: list[float]) -> dict[str, float] | None:
    if not xs:
        return None
    a = np.asarray(xs, np.float64)
    return {"p50": float(np.percentile(a, 50)), "p95": float(np.percentile(a, 95))}


def _rate(flags: list[bool]) -> dict[str, Any] | None:
    return {"rate": sum(flags) / len(flags), "n": len(flags)} if flags else None


def _tag(row: dict, prefix: str) -> str | None:
    return next((t[len(prefix) :] for t in row.get("tags", []) if t.startswith(prefix)), None)


def _split(row: dict) -> str:
    tags = row.get("tags", [])
    return "heldout" if "heldout" in tags else "tuning"


def scenario_backchannels(row: dict, events: list[dict]) -> dict[str, Any]:
    """The agent's backchannels in one scenario: times, frequency and JSD (or None)."""
    agent = [float(e["t_ms"]) for e in events if e.get("type") == "agent.backchannel"]
    pauses = [
        (float(o["onset_ms"]), float(o["end_ms"]))
        for o in row.get("expectations", [])
        if o["behaviour"] == "no_take"
        and o["category"] in PAUSE_CATEGORIES
        and o.get("onset_ms") is not None
        and o.get("end_ms") is not None
    ]
    duration_ms = float(row.get("duration_ms", 0.0))
    return {
        "times_ms": agent,
        "frequency_hz": len(agent) / max(duration_ms / 1000.0, 1e-9),
        "jsd": backchannel_jsd(agent, pauses, duration_ms) if pauses else None,
    }


def summarise(rows: list[dict]) -> dict[str, Any]:
    """Figures of one group of scenario rows (each with its ``backchannels``)."""
    outs = [o for r in rows for o in r.get("expectations", [])]

    def sel(behaviour: str, judged: bool = True) -> list[dict]:
        return [
            o
            for o in outs
            if o["behaviour"] == behaviour and (not judged or o["status"] in ("pass", "fail"))
        ]

    no_take, take, yld = sel("no_take"), sel("take_turn"), sel("yield")
    jsds = [r["backchannels"]["jsd"] for r in rows if r["backchannels"]["jsd"] is not None]
    return {
        "scenarios": len(rows),
        "passed": sum(1 for r in rows if r["status"] == "pass"),
        "tor_no_take": _rate([bool(o["took_turn"]) for o in no_take]),
        # Full-Duplex-Bench's per-sample TOR: a scenario counts once if any pause was taken over
        "tor_scenarios": _rate(
            [
                any(bool(o["took_turn"]) for o in r["expectations"] if o["behaviour"] == "no_take")
                for r in rows
                if any(o["behaviour"] == "no_take" for o in r.get("expectations", []))
            ]
        ),
        "turn_event_no_take": _rate([bool(o.get("turn_event")) for o in no_take]),
        "tor_take_turn": _rate([bool(o["took_turn"]) for o in take]),
        "response_latency_ms": _pct(
            [o["response_latency_ms"] for o in take if o.get("response_latency_ms") is not None]
        ),
        "yield_pass": _rate([o["status"] == "pass" for o in yld]),
        "stop_rate": _rate([bool(o.get("stopped")) for o in yld]),
        "stop_latency_ms": _pct(
            [o["stop_latency_ms"] for o in yld if o.get("stop_latency_ms") is not None]
        ),
        "stop_latency_event_ms": _pct(
            [o["stop_latency_event_ms"] for o in yld if o.get("stop_latency_event_ms") is not None]
        ),
        "skipped": sum(1 for o in outs if o["status"] == "skipped"),
        "backchannel_frequency_hz": float(
            np.mean([r["backchannels"]["frequency_hz"] for r in rows])
        )
        if rows
        else None,
        "backchannel_jsd": float(np.mean(jsds)) if jsds else None,
        "backchannels": sum(len(r["backchannels"]["times_ms"]) for r in rows),
    }


def _events(out_dir: Path, sid: str) -> list[dict]:
    path = out_dir / "scenarios" / sid / "events.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def family_report(out_dir: str | Path) -> dict[str, Any]:
    """Per family, per split and both, for a ``duplex eval`` output folder.

    Returns ``{"families": {NAME: {"all", "tuning", "heldout"}}, "splits": {"tuning", "heldout"}}``;
    empty dicts when no scenario carries a ``family:`` tag.
    """
    out = Path(out_dir)
    doc = json.loads((out / "results.json").read_text())
    rows = []
    for r in doc.get("scenarios", []):
        fam = _tag(r, "family:")
        if fam is None:
            continue
        rows.append(
            {**r, "family": fam, "backchannels": scenario_backchannels(r, _events(out, r["id"]))}
        )
    families: dict[str, Any] = {}
    for fam in sorted({r["family"] for r in rows}):
        mine = [r for r in rows if r["family"] == fam]
        families[fam] = {"all": summarise(mine)}
        for split in ("tuning", "heldout"):
            part = [r for r in mine if _split(r) == split]
            families[fam][split] = summarise(part) if part else None
    splits = {
        s: summarise([r for r in rows if _split(r) == s])
        for s in ("tuning", "heldout")
        if any(_split(r) == s for r in rows)
    }
    return {"families": families, "splits": splits}


def _fmt_rate(r: dict | None) -> str:
    return "–" if not r else f"{100 * r['rate']:.0f}% ({r['n']})"


def _fmt_ms(p: dict | None) -> str:
    return "–" if not p else f"{p['p50']:.0f} / {p['p95']:.0f}"


def _fmt(x: float | None, spec: str = ".3f") -> str:
    return "–" if x is None else format(x, spec)


def family_table(report: dict[str, Any]) -> str:
    """A Markdown table: one row per family and split."""
    head = (
        "| family | split | n | pass | TOR in pauses ↓ | TOR per scenario ↓ | turn.taken in pauses "
        "| TOR take_turn ↑ "
        "| latency p50/p95 ms | stop rate ↑ | stop p50/p95 ms | bc/s | bc JSD ↓ |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    lines = []
    groups = [
        (fam, split, s)
        for fam, parts in report["families"].items()
        for split, s in parts.items()
        if s is not None
    ]
    groups += [("(all families)", split, s) for split, s in report["splits"].items()]
    for fam, split, s in groups:
        lines.append(
            f"| {fam} | {split} | {s['scenarios']} | {s['passed']} | {_fmt_rate(s['tor_no_take'])} "
            f"| {_fmt_rate(s['tor_scenarios'])} "
            f"| {_fmt_rate(s['turn_event_no_take'])} | {_fmt_rate(s['tor_take_turn'])} "
            f"| {_fmt_ms(s['response_latency_ms'])} | {_fmt_rate(s['stop_rate'])} "
            f"| {_fmt_ms(s['stop_latency_ms'])} | {_fmt(s['backchannel_frequency_hz'])} "
            f"| {_fmt(s['backchannel_jsd'])} |"
        )
    return head + "\n".join(lines) + "\n"


def write_family_report(out_dir: str | Path) -> str | None:
    """Write ``families.json`` and ``families.md`` into a run's folder; None without families."""
    out = Path(out_dir)
    report = family_report(out)
    if not report["families"]:
        return None
    (out / "families.json").write_text(json.dumps(report, indent=2) + "\n")
    table = family_table(report)
    (out / "families.md").write_text(
        "# Per family (human speech), held-out apart\n\n"
        "Backchannel frequency and JSD as in Full-Duplex-Bench (duplex/eval/families.py).\n\n"
        + table
    )
    return table
