"""Side-by-side comparison of two evaluation result folders (``duplex eval compare A B``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from duplex.eval.report import headline_rows
from duplex.eval.scenarios import ScenarioError


def load_results(path: str | Path) -> dict[str, Any]:
    """Read ``results.json`` from a result folder (or the file itself)."""
    p = Path(path)
    f = p / "results.json" if p.is_dir() else p
    try:
        return json.loads(f.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ScenarioError(
            f"cannot read eval results {f}: {exc}; run `duplex eval SCENARIOS --out {p}` first"
        ) from exc


def compare_table(
    a: dict[str, Any], b: dict[str, Any], name_a: str = "A", name_b: str = "B"
) -> str:
    """A plain-text table of the headline metrics of two runs, plus scenarios whose verdict differs."""
    ra = dict((m, v) for m, v, _ in headline_rows(a["summary"]))
    rb = dict((m, v) for m, v, _ in headline_rows(b["summary"]))
    better = {m: d for m, _, d in headline_rows(a["summary"]) + headline_rows(b["summary"])}
    metrics = list(ra) + [m for m in rb if m not in ra]
    head = ("metric", f"{name_a} ({a['profile']})", f"{name_b} ({b['profile']})", "")
    rows = [head] + [(m, ra.get(m, "-"), rb.get(m, "-"), better.get(m, "")) for m in metrics]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    sa = {r["id"]: r["status"] for r in a["scenarios"]}
    sb = {r["id"]: r["status"] for r in b["scenarios"]}
    diff = [(i, sa[i], sb[i]) for i in sa if i in sb and sa[i] != sb[i]]
    only = sorted(set(sa) ^ set(sb))
    if diff:
        lines += ["", f"verdicts that differ ({len(diff)}):"]
        lines += [f"  {i}: {x} → {y}" for i, x, y in diff]
    if only:
        lines += ["", f"scenarios in only one run: {', '.join(only)}"]
    return "\n".join(lines)
