"""What an eval run writes: per scenario ``events.jsonl``, ``result.json``, the
conversation WAVs and the timeline plot; results as strict JSON (NaN as null)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from duplex.audio.conversation_writer import (
    AGENT_ONLY,
    STEREO,
    USER_ONLY,
    write_conversation,
)
from duplex.eval.scenarios import Scenario


def write_outputs(
    out: Path,
    scenario: Scenario,
    result: dict[str, Any],
    events: list[dict],
    trace: Any,
    mic: np.ndarray,
    agent: np.ndarray,
    in_rate: int,
    out_rate: int,
    *,
    plots: bool,
    write_audio: bool,
) -> None:
    """Write one scenario's files into ``out``: always its events and result; its WAVs
    when ``write_audio``, its timeline plot when ``plots``."""
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "events.jsonl", "w") as f:
        for e in events:
            f.write(json.dumps(e) + "\n")
    (out / "result.json").write_text(dumps(result))
    if not (write_audio or plots):
        return
    # Every file from the same two tracks, laid out in stream time by the one writer; the
    # 16 kHz pair is the microphone as the agent heard it and the agent, the same length.
    files = [("conversation.wav", STEREO, out_rate)]
    if write_audio:
        files += [("input.wav", USER_ONLY, in_rate), ("output.wav", AGENT_ONLY, in_rate)]
    for name, channels, rate in files:
        write_conversation(
            out / name,
            user=mic,
            agent=agent,
            input_rate=in_rate,
            output_rate=out_rate,
            channels=channels,
            rate=rate,
        )
    if plots:
        from duplex.report.timeline import plot_timeline

        title = f"{scenario.id} ({scenario.category}) — {result['status']}"
        plot_timeline(out / "conversation.wav", events, trace, out / "timeline.png", title=title)
    if not write_audio:
        (out / "conversation.wav").unlink()


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def dumps(doc: dict[str, Any]) -> str:
    """JSON with NaN written as null (strict JSON for other tools)."""

    def clean(o: Any) -> Any:
        if isinstance(o, float) and o != o:
            return None
        if isinstance(o, dict):
            return {k: clean(v) for k, v in o.items()}
        if isinstance(o, list | tuple):
            return [clean(v) for v in o]
        if isinstance(o, np.generic):
            return clean(o.item())
        return o

    return json.dumps(clean(doc), indent=2, default=_json_default)
