"""Evaluation scenarios: a 16 kHz mono WAV plus a JSON sidecar of ground truth.

A scenario folder holds ``NAME.wav`` and ``NAME.json`` pairs (the schema is in
``docs/eval.md``). The WAV is the static base track of the microphone; the
sidecar says what was said when (``segments``), what the agent should do
(``expect``), and, for closed-loop cases, user audio to insert relative to the
agent's own output (``inserts``) and an echo path from the agent's loudspeaker
back into the microphone (``echo``). A plain Full-Duplex-Bench-style case is a
WAV and a sidecar with ``segments`` and ``expect`` only.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from duplex.errors import DuplexError

SCHEMA = "duplex.scenario/1"

Behaviour = Literal["take_turn", "no_take", "yield", "ignore"]
Anchor = Literal["time", "agent_audio_start", "agent_audio_done", "insert_start", "insert_end"]

BEHAVIOURS: tuple[str, ...] = ("take_turn", "no_take", "yield", "ignore")
ANCHORS: tuple[str, ...] = (
    "time",
    "agent_audio_start",
    "agent_audio_done",
    "insert_start",
    "insert_end",
)
CATEGORIES: tuple[str, ...] = (
    "smooth_turn",
    "pause",
    "backchannel",
    "interruption",
    "noise",
    "background_speech",
    "echo",
    "listen",
)


class ScenarioError(DuplexError):
    """A scenario file is missing, unreadable or breaks the schema."""


@dataclass(frozen=True)
class Segment:
    """A stretch of sound in the base track (or in an insert), in ms of its own track."""

    start_ms: float
    end_ms: float
    text: str = ""
    speaker: str = "user"  # user | background | noise


@dataclass(frozen=True)
class Insert:
    """User audio played into the microphone relative to an agent event (closed loop).

    ``anchor`` names the event (``agent_audio_start`` / ``agent_audio_done`` of
    the ``response``-th response, 1-based, or ``time`` for an absolute time);
    the audio starts ``offset_ms`` after it.
    """

    audio: str
    anchor: Anchor = "agent_audio_start"
    response: int = 1
    offset_ms: float = 0.0
    text: str = ""
    kind: str = "interruption"  # interruption | backchannel | noise | background_speech
    gain_db: float = 0.0
    speech_ms: tuple[float, float] | None = None  # voiced span inside the insert WAV


@dataclass(frozen=True)
class Reverb:
    """A synthetic room impulse: exponentially decaying noise (seeded)."""

    rt60_ms: float = 300.0
    seed: int = 0


@dataclass(frozen=True)
class EchoPath:
    """The agent's loudspeaker leaking into the microphone.

    The agent's output frame of tick ``i`` is played during tick ``i + 1`` (one
    frame of playout), then reaches the microphone ``delay_ms`` later, ``gain_db``
    quieter, convolved with ``impulse`` (a WAV) or a synthetic ``reverb``.
    """

    delay_ms: float = 80.0
    gain_db: float = -12.0
    impulse: str | None = None
    reverb: Reverb | None = None


@dataclass(frozen=True)
class Expectation:
    """What the agent should do, and when.

    Times: ``onset_ms`` / ``end_ms`` locate the user event the behaviour answers
    (for ``take_turn``: ``end_ms`` is the end of the user's turn; for ``yield``:
    the interruption). ``window_ms`` is the [start, end] stream-time window in
    which the agent's reaction is judged; ``null`` ends mean "derive" (see
    docs/eval.md). When ``insert`` is set, onset and end come from that insert
    as actually played, and ``window_ms`` is relative to its onset.
    """

    behaviour: Behaviour
    onset_ms: float | None = None
    end_ms: float | None = None
    window_ms: tuple[float | None, float | None] = (None, None)
    insert: int | None = None
    text: str = ""
    category: str | None = None  # defaults to the scenario's category


@dataclass(frozen=True)
class Scenario:
    """One evaluation case."""

    id: str
    category: str
    audio: Path
    segments: tuple[Segment, ...] = ()
    expect: tuple[Expectation, ...] = ()
    inserts: tuple[Insert, ...] = ()
    echo: EchoPath | None = None
    tags: tuple[str, ...] = ()
    description: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def folder(self) -> Path:
        return self.audio.parent

    def user_segments(self) -> list[Segment]:
        return [s for s in self.segments if s.speaker == "user"]

    def to_dict(self) -> dict[str, Any]:
        """The sidecar JSON form (audio paths relative to the scenario folder)."""
        d: dict[str, Any] = {
            "schema": SCHEMA,
            "id": self.id,
            "category": self.category,
            "audio": self.audio.name,
            "description": self.description,
            "tags": list(self.tags),
            "segments": [asdict(s) for s in self.segments],
            "expect": [_clean(asdict(e)) for e in self.expect],
            "inserts": [_clean(asdict(i)) for i in self.inserts],
        }
        if self.echo is not None:
            d["echo"] = _clean(asdict(self.echo))
        if self.meta:
            d["meta"] = self.meta
        return d


def _clean(d: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        if v is None:
            continue
        out[k] = list(v) if isinstance(v, tuple) else v
    return out


# ---------------------------------------------------------------- loading
def _num(d: dict, key: str, where: str, default: float | None = None) -> float | None:
    v = d.get(key, default)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise ScenarioError(f"{where}: {key} must be a number (ms), got {v!r}")
    return float(v)


def _pair(v: Any, where: str) -> tuple[float | None, float | None]:
    if v is None:
        return (None, None)
    if not isinstance(v, list | tuple) or len(v) != 2:
        raise ScenarioError(f"{where}: window_ms must be [start, end] (numbers or null), got {v!r}")
    out = []
    for x in v:
        if x is not None and (isinstance(x, bool) or not isinstance(x, int | float)):
            raise ScenarioError(f"{where}: window_ms entries must be numbers or null, got {x!r}")
        out.append(None if x is None else float(x))
    return (out[0], out[1])


def scenario_from_dict(data: dict[str, Any], sidecar: Path) -> Scenario:
    """Validate a parsed sidecar and build the Scenario.

    Raises:
        ScenarioError: a field is missing or badly typed; the message names it.
    """
    where = str(sidecar)
    if not isinstance(data, dict):
        raise ScenarioError(f"{where}: the sidecar must be a JSON object")
    schema = data.get("schema", SCHEMA)
    if schema != SCHEMA:
        raise ScenarioError(f"{where}: schema {schema!r} is not {SCHEMA!r}")
    category = data.get("category")
    if category not in CATEGORIES:
        raise ScenarioError(
            f"{where}: category must be one of {list(CATEGORIES)}, got {category!r}"
        )
    audio = sidecar.parent / str(data.get("audio") or sidecar.with_suffix(".wav").name)
    segments = []
    for i, s in enumerate(data.get("segments", [])):
        w = f"{where} segments[{i}]"
        segments.append(
            Segment(
                _num(s, "start_ms", w) or 0.0,
                _num(s, "end_ms", w) or 0.0,
                str(s.get("text", "")),
                str(s.get("speaker", "user")),
            )
        )
    inserts = []
    for i, s in enumerate(data.get("inserts", [])):
        w = f"{where} inserts[{i}]"
        if "audio" not in s:
            raise ScenarioError(f"{w}: audio (a WAV next to the sidecar) is required")
        anchor = s.get("anchor", "agent_audio_start")
        if anchor not in ("time", "agent_audio_start", "agent_audio_done"):
            raise ScenarioError(
                f"{w}: anchor must be time, agent_audio_start or agent_audio_done, got {anchor!r}"
            )
        span = s.get("speech_ms")
        inserts.append(
            Insert(
                audio=str(s["audio"]),
                anchor=anchor,
                response=int(s.get("response", 1)),
                offset_ms=_num(s, "offset_ms", w, 0.0) or 0.0,
                text=str(s.get("text", "")),
                kind=str(s.get("kind", "interruption")),
                gain_db=_num(s, "gain_db", w, 0.0) or 0.0,
                speech_ms=(float(span[0]), float(span[1])) if span else None,
            )
        )
    expect = []
    for i, e in enumerate(data.get("expect", [])):
        w = f"{where} expect[{i}]"
        b = e.get("behaviour")
        if b not in BEHAVIOURS:
            raise ScenarioError(f"{w}: behaviour must be one of {list(BEHAVIOURS)}, got {b!r}")
        ins = e.get("insert")
        if ins is not None and not (isinstance(ins, int) and 0 <= ins < len(inserts)):
            raise ScenarioError(
                f"{w}: insert must index inserts (0..{len(inserts) - 1}), got {ins!r}"
            )
        if ins is None and b in ("take_turn", "yield") and e.get("end_ms") is None:
            raise ScenarioError(f"{w}: {b} needs end_ms (end of the user's turn) or an insert")
        expect.append(
            Expectation(
                behaviour=b,
                onset_ms=_num(e, "onset_ms", w),
                end_ms=_num(e, "end_ms", w),
                window_ms=_pair(e.get("window_ms"), w),
                insert=ins,
                text=str(e.get("text", "")),
                category=e.get("category"),
            )
        )
    echo = None
    if data.get("echo") is not None:
        ed = data["echo"]
        w = f"{where} echo"
        delay = _num(ed, "delay_ms", w, 80.0) or 0.0
        if delay < 0:
            raise ScenarioError(f"{w}: delay_ms must be >= 0")
        rv = ed.get("reverb")
        echo = EchoPath(
            delay_ms=delay,
            gain_db=_num(ed, "gain_db", w, -12.0) or 0.0,
            impulse=ed.get("impulse"),
            reverb=Reverb(float(rv.get("rt60_ms", 300.0)), int(rv.get("seed", 0))) if rv else None,
        )
    return Scenario(
        id=str(data.get("id") or sidecar.stem),
        category=category,
        audio=audio,
        segments=tuple(segments),
        expect=tuple(expect),
        inserts=tuple(inserts),
        echo=echo,
        tags=tuple(str(t) for t in data.get("tags", [])),
        description=str(data.get("description", "")),
        meta=dict(data.get("meta", {})),
    )


def load_scenario(sidecar: str | Path) -> Scenario:
    """Read one sidecar JSON (its WAV must sit next to it)."""
    p = Path(sidecar)
    try:
        data = json.loads(p.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ScenarioError(f"cannot read scenario {p}: {exc}") from exc
    sc = scenario_from_dict(data, p)
    if not sc.audio.is_file():
        raise ScenarioError(f"{p}: audio {sc.audio.name} not found next to the sidecar")
    return sc


def load_scenarios(
    folder: str | Path, subset: str | None = None, only: list[str] | None = None
) -> list[Scenario]:
    """Every scenario in ``folder`` (sorted by id).

    Args:
        folder: a folder of WAV + JSON pairs (searched recursively).
        subset: keep scenarios tagged with this name (``ci``); None keeps all.
        only: keep scenarios whose id starts with one of these prefixes.

    Raises:
        ScenarioError: the folder has no scenarios, or one is malformed.
    """
    root = Path(folder)
    if not root.is_dir():
        raise ScenarioError(
            f"no scenario folder {root}; make one with `duplex eval make-scenarios {root}`"
        )
    out = []
    for side in sorted(root.rglob("*.json")):
        try:
            head = json.loads(side.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if not isinstance(head, dict) or head.get("schema") != SCHEMA:
            continue  # not a sidecar (a manifest, results, ...)
        out.append(load_scenario(side))
    if subset:
        out = [s for s in out if subset in s.tags]
    if only:
        out = [s for s in out if any(s.id.startswith(p) for p in only)]
    if not out:
        raise ScenarioError(
            f"no scenarios in {root}"
            + (f" tagged {subset!r}" if subset else "")
            + "; each needs NAME.wav + NAME.json with "
            f'"schema": "{SCHEMA}"'
        )
    ids = [s.id for s in out]
    if len(set(ids)) != len(ids):
        dup = sorted({i for i in ids if ids.count(i) > 1})
        raise ScenarioError(f"duplicate scenario ids in {root}: {', '.join(dup)}")
    return sorted(out, key=lambda s: s.id)


def write_scenario(sc: Scenario, folder: Path) -> Path:
    """Write ``sc``'s sidecar into ``folder`` (its WAVs must already be there)."""
    path = folder / f"{sc.id}.json"
    path.write_text(json.dumps(sc.to_dict(), indent=2) + "\n")
    return path
