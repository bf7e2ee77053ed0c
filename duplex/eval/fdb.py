"""Full-Duplex-Bench interoperability: read its sample layout, write ours in its layout.

Full-Duplex-Bench (github.com/DanielLin94144/Full-Duplex-Bench, ``v1_v1.5``)
keeps one folder per sample, grouped by task::

    {task}/{ID}/input.wav          user stream
    {task}/{ID}/output.wav         the model's time-aligned response (same length)
    {task}/{ID}/output.json        {"text", "chunks": [{"text", "timestamp": [s, e]}]}
    {task}/{ID}/pause.json         v1.0 pause handling:  [{"text": "[PAUSE]", "timestamp": [s, e]}]
    {task}/{ID}/turn_taking.json   v1.0 smooth turn-taking: [{"text": "[TURN-TAKING]", "timestamp": [s, e]}]
    {task}/{ID}/interrupt.json     v1.0 user interruption: [{"context", "interrupt", "timestamp": [s, e]}]
    {task}/{ID}/metadata.json      v1.5: {"context_text", "current_turn_text", "timestamps": [s, e]}

Its scorers (``evaluation/evaluate.py --task pause_handling|smooth_turn_taking|
user_interruption|backchannel --root_dir {task}``, ``get_timing.py``) read
exactly these files. ``export_fdb`` writes an evaluation run in this layout;
``import_fdb`` turns a Full-Duplex-Bench sample folder into duplex scenarios;
``score_fdb_layout`` re-implements the v1.0 TOR/latency rules of the scorers so
a round trip can be checked without their dependencies.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from duplex.audio.conversation_writer import AGENT_ONLY, USER_ONLY, write_conversation
from duplex.audio.resample import resample
from duplex.audio.wav import read_wav
from duplex.eval.metrics import fdb_takes_turn
from duplex.eval.scenarios import SCHEMA, ScenarioError

log = logging.getLogger(__name__)

# our category → (FDB task folder, annotation file)
EXPORT_TASKS: dict[str, tuple[str, str]] = {
    "pause": ("pause_handling", "pause.json"),
    "smooth_turn": ("smooth_turn_taking", "turn_taking.json"),
    "interruption": ("user_interruption", "interrupt.json"),
    "listen": ("backchannel", ""),
    "backchannel": ("user_backchannel", "metadata.json"),
    "background_speech": ("background_speech", "metadata.json"),
}
V15_TASKS = {"user_interruption", "user_backchannel", "talking_to_other", "background_speech"}


# ---------------------------------------------------------------- export
def _sec(ms: float | None) -> float:
    return round((ms or 0.0) / 1000.0, 3)


def _annotation(task_file: str, r: dict[str, Any]) -> tuple[Any, float | None, float | None]:
    """(annotation JSON, crop-input-at ms, output.json words-from ms) for one scenario result."""
    exps = r["expectations"]
    if task_file == "pause.json":
        e = next(o for o in exps if o["behaviour"] == "no_take")
        return (
            [{"text": "[PAUSE]", "timestamp": [_sec(e["onset_ms"]), _sec(e["end_ms"])]}],
            e["window_ms"][1],
            None,
        )
    if task_file == "turn_taking.json":
        e = next(o for o in exps if o["behaviour"] == "take_turn")
        return (
            [{"text": "[TURN-TAKING]", "timestamp": [_sec(e["end_ms"]), _sec(e["end_ms"])]}],
            None,
            None,
        )
    context = r.get("user_text", "")
    if task_file == "interrupt.json":
        e = next(o for o in exps if o["behaviour"] == "yield")
        ann = [
            {
                "context": context,
                "interrupt": r.get("insert_text", ""),
                "timestamp": [_sec(e["onset_ms"]), _sec(e["end_ms"])],
            }
        ]
        return ann, None, e["end_ms"]
    if task_file == "metadata.json":
        e = next(o for o in exps if o["behaviour"] == "ignore")
        meta = {
            "context_text": context,
            "current_turn_text": r.get("insert_text", ""),
            "timestamps": [_sec(e["onset_ms"]), _sec(e["end_ms"])],
        }
        return meta, None, None
    return None, None, None


def export_fdb(results_dir: str | Path, out_dir: str | Path) -> dict[str, int]:
    """Write an evaluation run in Full-Duplex-Bench's layout.

    One folder per scenario under ``out_dir/{task}/{n}/`` (n = 1, 2, … as the
    benchmark's numeric sample ids), with ``input.wav`` (the microphone as the
    agent heard it, 16 kHz), ``output.wav`` (the agent, 16 kHz, the same length),
    ``output.json`` (the agent's words, timed from the run; the benchmark's
    ``get_transcript/asr.py`` may overwrite it with ASR-aligned words) and the
    task's annotation file. ``{task}/README.md`` maps sample ids to scenario ids
    (the scorers skip ``.md`` entries). Pause-handling samples are cut at the end
    of the user's sentence, as the benchmark's pause inputs end there.

    Returns:
        Samples written per task.
    """
    src = Path(results_dir)
    doc = json.loads((src / "results.json").read_text())
    out = Path(out_dir)
    counts: dict[str, int] = {}
    index: dict[str, list[tuple[int, str]]] = {}
    for r in doc["scenarios"]:
        if r["status"] == "error" or r["category"] not in EXPORT_TASKS:
            continue
        task, ann_file = EXPORT_TASKS[r["category"]]
        run = src / "scenarios" / r["id"]
        if not (run / "input.wav").is_file() or not (run / "output.wav").is_file():
            log.warning("skipping %s: no input.wav/output.wav (run without --no-audio)", r["id"])
            continue
        try:
            ann, crop_ms, words_from_ms = _annotation(ann_file, r)
        except StopIteration:
            continue
        n = counts.get(task, 0) + 1
        counts[task] = n
        index.setdefault(task, []).append((n, r["id"]))
        d = out / task / str(n)
        d.mkdir(parents=True, exist_ok=True)
        mic, rate = read_wav(run / "input.wav")
        agent, _ = read_wav(run / "output.wav")
        if crop_ms is not None:
            k = int(crop_ms * rate / 1000)
            mic, agent = mic[:k], agent[:k]
        for name, channels in (("input.wav", USER_ONLY), ("output.wav", AGENT_ONLY)):
            write_conversation(
                d / name, user=mic, agent=agent, input_rate=rate, output_rate=rate, channels=channels
            )
        end_s = len(mic) / rate
        chunks = [
            c
            for c in r.get("agent_words", [])
            if c["timestamp"][0] < end_s
            and (words_from_ms is None or c["timestamp"][0] * 1000 >= words_from_ms)
        ]
        text = " ".join(c["text"] for c in chunks)
        (d / "output.json").write_text(json.dumps({"text": text, "chunks": chunks}, indent=2))
        if ann is not None:
            (d / ann_file).write_text(json.dumps(ann, indent=2))
    for task, rows in index.items():
        lines = [f"# {task}: duplex scenarios", "", "| sample | scenario |", "|---|---|"]
        lines += [f"| {n} | {sid} |" for n, sid in rows]
        (out / task / "README.md").write_text("\n".join(lines) + "\n")
    return counts


# ---------------------------------------------------------------- import
def _read_json(p: Path) -> Any:
    try:
        return json.loads(p.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ScenarioError(f"cannot read {p}: {exc}") from exc


def import_fdb(fdb_root: str | Path, out_dir: str | Path, rate: int = 16000) -> list[str]:
    """Turn Full-Duplex-Bench sample folders into duplex scenarios (open loop).

    Every folder under ``fdb_root`` holding an ``input.wav`` becomes one scenario
    (the WAV resampled to 16 kHz mono as ``{id}.wav`` plus a sidecar), its
    expectation taken from the annotation beside it, judged as the benchmark's
    scorers judge it (the whole output up to the end of the input):

    - ``pause.json`` → ``no_take`` over [0, end of input] (category ``pause``);
    - ``turn_taking.json`` → ``take_turn`` with the user turn ending at its first
      timestamp (category ``smooth_turn``);
    - ``interrupt.json`` → ``yield`` at [start, end] (category ``interruption``);
    - ``metadata.json`` (v1.5) → by task folder: ``user_interruption`` → ``yield``;
      ``user_backchannel`` → ``ignore`` (``backchannel``); ``talking_to_other`` and
      ``background_speech`` → ``ignore`` (``background_speech``);
    - none, under a ``backchannel`` task (ICC) → ``no_take`` over the input
      (category ``listen``: the user holds the floor).

    Returns:
        The scenario ids written.
    """
    root = Path(fdb_root)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ids = []
    folders = sorted({p.parent for p in root.rglob("input.wav")})
    if not folders:
        raise ScenarioError(f"no Full-Duplex-Bench samples (*/input.wav) under {root}")
    for d in folders:
        task = d.parent.name
        sid = f"fdb-{task}-{d.name}".replace("/", "-")
        samples, r = (
            read_wav(d / "input.wav", expect_rate=None)
            if _mono(d / "input.wav")
            else _downmix(d / "input.wav")
        )
        if r != rate:
            samples = resample(samples, r, rate)
        end_ms = round(len(samples) * 1000.0 / rate, 1)
        segments: list[dict[str, Any]] = []
        exp: list[dict[str, Any]] = []
        if (d / "pause.json").is_file():
            category = "pause"
            for p in _read_json(d / "pause.json"):
                s, e = p["timestamp"]
                segments.append(
                    {
                        "start_ms": s * 1000,
                        "end_ms": e * 1000,
                        "text": "[PAUSE]",
                        "speaker": "pause",
                    }
                )
            exp.append({"behaviour": "no_take", "window_ms": [0.0, end_ms]})
        elif (d / "turn_taking.json").is_file():
            category = "smooth_turn"
            t = _read_json(d / "turn_taking.json")[0]["timestamp"][0] * 1000
            exp.append({"behaviour": "take_turn", "end_ms": t, "window_ms": [0.0, end_ms]})
        elif (d / "interrupt.json").is_file():
            category = "interruption"
            m = _read_json(d / "interrupt.json")[0]
            s, e = m["timestamp"]
            segments += [
                {
                    "start_ms": s * 1000,
                    "end_ms": e * 1000,
                    "text": m.get("interrupt", ""),
                    "speaker": "interruption",
                }
            ]
            exp.append(
                {
                    "behaviour": "yield",
                    "onset_ms": s * 1000,
                    "end_ms": e * 1000,
                    "window_ms": [None, end_ms],
                    "text": m.get("interrupt", ""),
                }
            )
        elif (d / "metadata.json").is_file():
            m = _read_json(d / "metadata.json")
            s, e = m["timestamps"]
            text = m.get("current_turn_text", "")
            if task == "user_interruption":
                category, b = "interruption", "yield"
            elif task == "user_backchannel":
                category, b = "backchannel", "ignore"
            else:
                category, b = "background_speech", "ignore"
            exp.append(
                {
                    "behaviour": b,
                    "onset_ms": s * 1000,
                    "end_ms": e * 1000,
                    "window_ms": [None, end_ms],
                    "text": text,
                }
            )
        elif "backchannel" in task:
            category = "listen"
            exp.append({"behaviour": "no_take", "window_ms": [0.0, end_ms]})
        else:
            log.warning("skipping %s: no annotation file and not a backchannel task", d)
            continue
        sf.write(str(out / f"{sid}.wav"), samples, rate, subtype="PCM_16")
        side = {
            "schema": SCHEMA,
            "id": sid,
            "category": category,
            "audio": f"{sid}.wav",
            "description": f"Full-Duplex-Bench {task}/{d.name}",
            "tags": ["fdb"],
            "segments": segments,
            "expect": exp,
            "meta": {
                "source": "full-duplex-bench",
                "task": task,
                "sample": d.name,
                "open_loop": True,
            },
        }
        (out / f"{sid}.json").write_text(json.dumps(side, indent=2) + "\n")
        ids.append(sid)
        for extra in (
            "transcription.json",
            "metadata.json",
            "interrupt.json",
            "pause.json",
            "turn_taking.json",
        ):
            if (d / extra).is_file():
                shutil.copy(d / extra, out / f"{sid}.fdb-{extra}")
    return ids


def _mono(p: Path) -> bool:
    return sf.info(str(p)).channels == 1


def _downmix(p: Path) -> tuple[np.ndarray, int]:
    data, r = sf.read(str(p), dtype="float32", always_2d=True)
    return data.mean(axis=1).astype(np.float32), int(r)


# ---------------------------------------------------------------- scoring (v1.0 rules)
def score_fdb_layout(task_dir: str | Path) -> dict[str, Any]:
    """Score one task folder of the layout with Full-Duplex-Bench v1.0's rules.

    Mirrors ``eval_pause_handling.py``, ``eval_smooth_turn_taking.py`` and the
    TOR/latency part of ``eval_user_interruption.py``: TOR from ``output.json``
    words (``fdb_takes_turn``); latency = first word − end of the user turn
    (``turn_taking.json`` timestamp[0], ``interrupt.json`` timestamp[1]), negative
    latencies counted as 0. The GPT relevance rating and the backchannel JSD are
    not reproduced (they need an LLM judge / the ICC ground-truth distribution).
    """
    root = Path(task_dir)
    tor: list[int] = []
    lat: list[float] = []
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        chunks = _read_json(d / "output.json")["chunks"]
        took = fdb_takes_turn(chunks)
        tor.append(int(took))
        end = None
        if (d / "turn_taking.json").is_file():
            end = _read_json(d / "turn_taking.json")[0]["timestamp"][0]
        elif (d / "interrupt.json").is_file():
            end = _read_json(d / "interrupt.json")[0]["timestamp"][1]
        if took and end is not None:
            lat.append(max(0.0, chunks[0]["timestamp"][0] - end))
    return {
        "samples": len(tor),
        "tor": sum(tor) / len(tor) if tor else None,
        "latency_s": sum(lat) / len(lat) if lat else None,
    }
