"""The human side of an evaluation: ``report.md`` and the latency CDF plot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def fmt_ms(v: Any) -> str:
    return "-" if v is None or v != v else f"{v:.0f} ms"


def fmt_rate(r: dict[str, Any] | None) -> str:
    if not r or r.get("rate") is None:
        return "-"
    return f"{r['rate']:.2f} (n={r['n']})"


def headline_rows(s: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(metric, value, which way is better) rows of a results summary."""
    tor = s["tor"]
    rtf = s.get("rtf", {})
    rows = [
        ("TOR smooth turn", fmt_rate(tor.get("smooth_turn")), "↑"),
        ("TOR pause", fmt_rate(tor.get("pause")), "↓"),
        ("  turn.taken inside the pause (events)", fmt_rate(s.get("pause_turn_event_rate")), "↓"),
        ("TOR backchannel", fmt_rate(tor.get("backchannel")), "↓"),
        ("TOR interruption", fmt_rate(tor.get("interruption")), "↑"),
    ]
    if "listen" in tor:
        rows.append(("TOR listen (FDB backchannel)", fmt_rate(tor["listen"]), "↓"))
    rl, rle = s["response_latency_ms"], s["response_latency_event_ms"]
    lag, lead = s.get("endpoint_lag_ms", {}), s.get("lead_in_ms", {})
    sl, sle = s["stop_latency_ms"], s["stop_latency_event_ms"]
    rows += [
        (
            "response latency p50 / p95 (audible)",
            f"{fmt_ms(rl.get('p50'))} / {fmt_ms(rl.get('p95'))}",
            "↓",
        ),
        (
            "  endpoint lag p50 / p95 (VAD end − real end)",
            f"{fmt_ms(lag.get('p50'))} / {fmt_ms(lag.get('p95'))}",
            "↓",
        ),
        (
            "  event latency p50 / p95 (VAD end → first chunk)",
            f"{fmt_ms(rle.get('p50'))} / {fmt_ms(rle.get('p95'))}",
            "↓",
        ),
        (
            "  lead-in p50 / p95 (first chunk → audible)",
            f"{fmt_ms(lead.get('p50'))} / {fmt_ms(lead.get('p95'))}",
            "↓",
        ),
        (
            "stop latency p50 / p95 (audio)",
            f"{fmt_ms(sl.get('p50'))} / {fmt_ms(sl.get('p95'))}",
            "↓",
        ),
        (
            "stop latency p50 / p95 (events)",
            f"{fmt_ms(sle.get('p50'))} / {fmt_ms(sle.get('p95'))}",
            "↓",
        ),
        ("stopped on interruption", fmt_rate(s.get("stop_rate")), "↑"),
        ("false interruptions (all)", fmt_rate(s["false_interruption_rate"].get("all")), "↓"),
    ]
    for c in ("backchannel", "noise", "background_speech", "echo"):
        if c in s["false_interruption_rate"]:
            rows.append(
                (f"  false interruptions: {c}", fmt_rate(s["false_interruption_rate"][c]), "↓")
            )
    rows += [
        ("false pauses (held output)", fmt_rate(s.get("false_pause_rate")), "↓"),
        ("false turns on noise / background", fmt_rate(s.get("false_take_rate")), "↓"),
    ]
    tick = rtf.get("tick") or {}
    if tick:
        rows.append(
            (
                "tick RTF p50 / p95 / p99",
                f"{tick['p50']:.3f} / {tick['p95']:.3f} / {tick['p99']:.3f}",
                "↓",
            )
        )
    for k, v in (rtf.get("stage") or {}).items():
        rows.append((f"  {k} RTF p50 / p99", f"{v['p50']:.3f} / {v['p99']:.3f}", "↓"))
    if rtf.get("overall_mean") is not None:
        rows.append(("compute RTF (mean over scenarios)", f"{rtf['overall_mean']:.3f}", "↓"))
    rows.append(("stalls (per min)", f"{s['stalls']} ({s['stalls_per_min']})", "↓"))
    rows.append(("scenarios passed", f"{s['passed']} / {s['scenarios']}", "↑"))
    return rows


def write_report(doc: dict[str, Any], out: Path) -> None:
    """Write ``report.md`` and ``latency_cdf.png`` for a results document."""
    s = doc["summary"]
    meta = doc["meta"]
    lines = [
        f"# duplex eval — profile `{doc['profile']}`",
        "",
        f"{s['scenarios']} scenarios, {meta['audio_s']:.0f} s of stream time, "
        f"{meta['wall_s']:.0f} s wall with {meta['jobs']} job(s). "
        "TOR follows Full-Duplex-Bench (a turn is ≥ 1 s of agent speech or > 3 words); see docs/eval.md.",
        "",
        "| metric | value | better |",
        "|---|---|---|",
    ]
    lines += [f"| {m} | {v} | {b} |" for m, v, b in headline_rows(s)]
    if s.get("stage_ms"):
        lines += [
            "",
            "## Event latency by stage (inside VAD end → first chunk out)",
            "",
            "| stage | p50 | p95 |",
            "|---|---|---|",
        ]
        for k, v in s["stage_ms"].items():
            lines.append(f"| {k} | {fmt_ms(v.get('p50'))} | {fmt_ms(v.get('p95'))} |")
    lines += ["", "## By category", "", "| category | pass | fail | skipped |", "|---|---|---|---|"]
    for c, v in sorted(s["by_category"].items()):
        lines.append(
            f"| {c} | {v.get('pass', 0)} | {v.get('fail', 0)} | {v.get('skipped', 0) + v.get('error', 0)} |"
        )
    lines += [
        "",
        "## Scenarios",
        "",
        "| scenario | category | status | response latency (audible) | stop latency | notes |",
        "|---|---|---|---|---|---|",
    ]
    for r in doc["scenarios"]:
        resp = [
            o["response_latency_ms"]
            for o in r["expectations"]
            if o.get("response_latency_ms") is not None
        ]
        stop = [
            o["stop_latency_ms"] for o in r["expectations"] if o.get("stop_latency_ms") is not None
        ]
        notes = "; ".join(
            f"{o['behaviour']}: {o['reason']}" for o in r["expectations"] if o.get("reason")
        )
        if r["status"] == "error":
            notes = r["errors"][0] if r.get("errors") else "error"
        link = f"[{r['id']}](scenarios/{r['id']}/timeline.png)"
        lines.append(
            f"| {link} | {r['category']} | {r['status']} | {', '.join(fmt_ms(x) for x in resp) or '-'} | "
            f"{', '.join(fmt_ms(x) for x in stop) or '-'} | {notes} |"
        )
    lines.append("")
    (out / "report.md").write_text("\n".join(lines))
    plot_latency_cdf(doc, out / "latency_cdf.png")


def plot_latency_cdf(doc: dict[str, Any], path: Path) -> None:
    """CDFs of response and stop latency (audio- and event-based)."""
    series: dict[str, list[float]] = {
        "response (audible)": [],
        "response (events)": [],
        "stop (audio)": [],
        "stop (events)": [],
    }
    for r in doc["scenarios"]:
        for o in r["expectations"]:
            if o["status"] == "skipped":
                continue
            if o["behaviour"] == "take_turn":
                if o.get("response_latency_ms") is not None:
                    series["response (audible)"].append(o["response_latency_ms"])
                if o.get("response_latency_event_ms") is not None:
                    series["response (events)"].append(o["response_latency_event_ms"])
            elif o["behaviour"] == "yield":
                if o.get("stopped") and o.get("stop_latency_ms") is not None:
                    series["stop (audio)"].append(o["stop_latency_ms"])
                if o.get("stop_latency_event_ms") is not None:
                    series["stop (events)"].append(o["stop_latency_event_ms"])
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, keys, title in (
        (
            axes[0],
            ("response (audible)", "response (events)"),
            "response latency: real end of user speech → first audible agent sample",
        ),
        (
            axes[1],
            ("stop (audio)", "stop (events)"),
            "stop latency: interruption onset → agent silent",
        ),
    ):
        for k in keys:
            v = np.sort(np.asarray(series[k]))
            if len(v):
                ax.step(
                    v, np.arange(1, len(v) + 1) / len(v), where="post", label=f"{k} (n={len(v)})"
                )
        ax.set_xlabel("ms")
        ax.set_ylabel("fraction ≤ x")
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        ax.set_title(title, fontsize=9)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8, loc="lower right")
    fig.suptitle(f"duplex eval — {doc['profile']}", fontsize=10)
    fig.tight_layout()
    fig.savefig(str(path), dpi=90)
    plt.close(fig)
