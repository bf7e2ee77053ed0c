"""The timeline plot of a run: waveforms, VAD, conversation state and text over time."""

from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402

_STATE_COLOURS = {
    "listening": "#e8f1fb",
    "thinking": "#fff2cc",
    "speaking": "#d9f2d9",
    "paused": "#f8d7da",
}


def _envelope(x: np.ndarray, rate: int, points: int = 4000) -> tuple[np.ndarray, np.ndarray]:
    hop = max(1, len(x) // points)
    n = len(x) // hop
    if n == 0:
        return np.zeros(1), np.zeros(1)
    peaks = np.abs(x[: n * hop]).reshape(n, hop).max(axis=1)
    t = np.arange(n) * hop / rate
    return t, peaks


def plot_timeline(
    wav_path: str | Path,
    events: list[dict],
    trace: list[tuple[float, float, str, float]] | None,
    out_path: str | Path,
    title: str | None = None,
) -> None:
    """Draw the run's timeline to a PNG."""
    data, rate = sf.read(str(wav_path), dtype="float32", always_2d=True)
    duration = len(data) / rate
    width = min(28.0, max(12.0, duration * 0.9))
    fig, axes = plt.subplots(
        4, 1, figsize=(width, 8.5), sharex=True, gridspec_kw={"height_ratios": [2.2, 1.0, 0.6, 2.2]}
    )
    ax_wave, ax_vad, ax_state, ax_text = axes

    t, user = _envelope(data[:, 0], rate)
    ax_wave.fill_between(t, 0, user, color="#1f77b4", lw=0, label="user (mic)")
    t, agent = _envelope(data[:, 1], rate)
    ax_wave.fill_between(t, 0, -agent, color="#2ca02c", lw=0, label="agent (output)")
    lim = max(0.05, float(max(user.max(initial=0), agent.max(initial=0))))
    ax_wave.set_ylim(-lim * 1.05, lim * 1.05)
    ax_wave.set_ylabel("level")
    ax_wave.legend(loc="upper right", fontsize=8)
    ax_wave.axhline(0, color="#888", lw=0.5)

    if trace:
        tt = np.array([r[0] for r in trace]) / 1000.0
        vad = np.array([r[1] for r in trace])
        ax_vad.plot(tt, vad, color="#1f77b4", lw=1)
        states = [r[2] for r in trace]
        start = 0
        for i in range(1, len(states) + 1):
            if i == len(states) or states[i] != states[start]:
                end_t = tt[i] if i < len(tt) else tt[-1] + 0.032
                ax_state.axvspan(tt[start], end_t, color=_STATE_COLOURS.get(states[start], "#eee"))
                if end_t - tt[start] > duration / 60:
                    ax_state.text((tt[start] + end_t) / 2, 0.5, states[start], ha="center", va="center", fontsize=7)
                start = i
    ax_vad.set_ylim(-0.05, 1.05)
    ax_vad.set_ylabel("VAD")
    ax_state.set_yticks([])
    ax_state.set_ylabel("state")

    for e in events:
        s = e["t_ms"] / 1000.0
        if e["type"] == "turn.taken":
            for ax in axes:
                ax.axvline(s, color="#d62728", lw=0.8, ls="--")
        elif e["type"] == "barge_in" and e["phase"] == "confirmed":
            for ax in axes:
                ax.axvline(s, color="#9467bd", lw=1.2)
        elif e["type"] in ("user.backchannel", "agent.backchannel"):
            for ax in axes:
                ax.axvline(s, color="#ff7f0e", lw=1.0, ls=":")

    ax_text.set_ylim(0, 1)
    ax_text.set_yticks([0.75, 0.25], ["user", "agent"])
    wrap = max(18, int(width * 3))
    # A turn resumed after a pause is read again whole: its last final stands for it.
    finals = {e["start_ms"]: e for e in events if e["type"] == "user.transcript.final" and e["text"]}
    for e in finals.values():
        x = e["start_ms"] / 1000.0
        ax_text.text(x, 0.95, textwrap.fill(e["text"], wrap), va="top", fontsize=8, color="#1f77b4")
    for e in events:
        if e["type"] == "agent.audio.done" and e["text"]:
            x = e["t_ms"] / 1000.0 - e["audio_end_ms"] / 1000.0
            label = e["text"] + (" [cut]" if e["interrupted"] else "")
            ax_text.text(x, 0.45, textwrap.fill(label, wrap), va="top", fontsize=8, color="#2ca02c")
        elif e["type"] == "user.backchannel":
            ax_text.text(e["t_ms"] / 1000.0, 0.6, f"({e['text']})", fontsize=8, color="#ff7f0e")
        elif e["type"] == "agent.backchannel":  # the agent's "mhm", on its own track
            ax_text.text(e["t_ms"] / 1000.0, 0.1, f"({e['text']})", fontsize=8, color="#ff7f0e")
    for e in events:
        if e["type"] == "agent.audio.started":
            ax_text.annotate(
                f"{e['latency_ms']:.0f} ms", (e["t_ms"] / 1000.0, 0.02), fontsize=7, color="#d62728"
            )
    ax_text.set_xlabel("stream time (s)   — red dashed: turn taken · purple: barge-in · orange dotted: backchannel")
    ax_text.set_xlim(0, duration)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(str(out_path), dpi=90)
    plt.close(fig)
