"""Duplex-behaviour metrics of a run, from its events and its output audio.

Per expectation of a scenario (see ``duplex.eval.scenarios``) and in aggregate:

- **take-over rate (TOR)** with Full-Duplex-Bench's rule: the agent *takes the
  turn* when its speech in the judged window lasts at least 1 s or has more than
  3 words (``fdb_takes_turn``, as ``eval_smooth_turn_taking.py`` /
  ``eval_pause_handling.py`` / ``eval_user_interruption.py`` in
  DanielLin94144/Full-Duplex-Bench ``v1_v1.5/evaluation``);
- **response latency**, what a listener waits: the real end of the user's speech
  (the scenario's annotation, from the audio it made) → the first audible agent
  sample in the output track (the first 10 ms block above ``AUDIBLE_DB``). Its two
  parts the events cannot see are reported with it: the **endpoint lag** (the
  VAD's end of speech minus the real end) and the **lead-in** (the first chunk
  handed to the output, ``agent.audio.started``, to the first audible sample).
  The event's own ``latency_ms`` (VAD end → first chunk) is kept beside them, so
  audible = endpoint lag + event latency + lead-in;
- **stop latency**: user interruption onset → first output frame of a silent run
  (audio), or → first ``barge_in``/cut event (events);
- **false interruptions**: a response cut (or a turn taken) by a backchannel,
  noise, background speech or the agent's own echo;
- **real-time factor** per tick and per tick phase, stalls and overruns.

All functions here are pure: they take events as dicts, audio as arrays, and
return plain values, so hand-built cases test them exactly.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from duplex.audio.level import first_audible_ms
from duplex.eval.scenarios import Expectation, Scenario
from duplex.runtime.metrics import percentiles

# Full-Duplex-Bench: turn_duration_threshold = 1, turn_num_words_threshold = 3
FDB_TURN_DURATION_S = 1.0
FDB_TURN_WORDS = 3

VOICED_DB = -45.0  # output frame RMS above this is agent audio
STOP_SILENCE_MS = 500.0  # a stop is a silent run at least this long
STOP_WINDOW_MS = 3000.0  # an agent that is not silent within this is "not stopped"
IGNORE_GRACE_MS = 1500.0  # reactions judged this long after a backchannel/noise ends
NO_TAKE_GRACE_MS = 2000.0


@dataclass(frozen=True)
class WordChunk:
    """One agent word in Full-Duplex-Bench's ``output.json`` form (seconds)."""

    text: str
    start_s: float
    end_s: float

    def to_fdb(self) -> dict[str, Any]:
        return {"text": self.text, "timestamp": [round(self.start_s, 3), round(self.end_s, 3)]}


@dataclass(frozen=True)
class Response:
    """One agent response as the events tell it."""

    response_id: str
    start_ms: float
    done_ms: float | None
    interrupted: bool
    text: str


@dataclass(frozen=True)
class PlayedInsert:
    """Where a scenario insert really landed in stream time (None: never played)."""

    index: int
    onset_ms: float | None  # start of the insert WAV
    speech_onset_ms: float | None  # start of its speech (voiced span)
    speech_end_ms: float | None


@dataclass
class Trial:
    """Everything a scenario run left behind that the metrics need."""

    scenario: Scenario
    events: list[dict]
    agent: np.ndarray  # output track, output rate, frame-aligned with the input
    out_rate: int
    frame_ms: float
    duration_ms: float
    base_ms: float  # length of the static base track
    inserts: list[PlayedInsert] = field(default_factory=list)
    tick_ms: list[float] = field(default_factory=list)
    phase_ms: dict[str, list[float]] = field(default_factory=dict)
    overruns: int = 0


@dataclass
class Outcome:
    """The verdict on one expectation."""

    behaviour: str
    category: str
    status: str  # pass | fail | skipped
    reason: str = ""
    onset_ms: float | None = None
    end_ms: float | None = None
    window_ms: tuple[float, float] = (0.0, 0.0)
    took_turn: bool | None = None
    response_latency_ms: float | None = None  # audible: real end → first audible sample
    response_latency_event_ms: float | None = None  # the event's: VAD end → first chunk
    endpoint_lag_ms: float | None = None  # VAD end minus real end
    lead_in_ms: float | None = None  # first chunk handed to the output → first audible sample
    stop_latency_ms: float | None = None
    stop_latency_event_ms: float | None = None
    stopped: bool | None = None
    false_interruption: bool | None = None
    false_pause: bool | None = None
    turn_event: bool | None = (
        None  # no_take: a turn.taken event fell in the window (even if no audio followed)
    )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["window_ms"] = [round(x, 1) for x in self.window_ms]
        return d


# ---------------------------------------------------------------- audio
def voiced_frames(
    track: np.ndarray, rate: int, frame_ms: float, threshold_db: float = VOICED_DB
) -> np.ndarray:
    """One bool per frame: the frame's RMS is above ``threshold_db`` dBFS."""
    n = int(round(rate * frame_ms / 1000.0))
    frames = len(track) // n
    if frames == 0:
        return np.zeros(0, bool)
    x = track[: frames * n].astype(np.float64).reshape(frames, n)
    rms = np.sqrt(np.mean(x**2, axis=1)) + 1e-12
    return 20.0 * np.log10(rms) > threshold_db


def first_voiced_ms(
    voiced: np.ndarray, frame_ms: float, start_ms: float, end_ms: float
) -> float | None:
    """Start time of the first voiced frame in [start_ms, end_ms)."""
    a = max(0, int(math.ceil(start_ms / frame_ms - 1e-9)))
    b = min(len(voiced), int(math.ceil(end_ms / frame_ms)))
    idx = np.flatnonzero(voiced[a:b])
    return float((a + idx[0]) * frame_ms) if len(idx) else None


def stop_time_ms(
    voiced: np.ndarray, frame_ms: float, onset_ms: float, min_silence_ms: float = STOP_SILENCE_MS
) -> float | None:
    """Stream time of the first output frame at or after ``onset_ms`` that begins a
    silent run of at least ``min_silence_ms`` (or silence to the end of the track)."""
    k = max(1, int(math.ceil(min_silence_ms / frame_ms)))
    i = max(0, int(math.floor(onset_ms / frame_ms)))
    n = len(voiced)
    while i < n:
        if not voiced[i]:
            j = i
            while j < n and not voiced[j] and j - i < k:
                j += 1
            if j - i >= k or j == n:
                return float(i * frame_ms)
            i = j
        else:
            i += 1
    return float(n * frame_ms) if n and onset_ms <= n * frame_ms else None


# ---------------------------------------------------------------- events
def responses(events: list[dict]) -> list[Response]:
    """Agent responses from ``agent.audio.started`` / ``agent.audio.done`` events."""
    out: dict[str, dict[str, Any]] = {}
    order: list[str] = []
    deltas: dict[str, list[str]] = {}
    for e in events:
        t = e["type"]
        rid = e.get("response_id", "")
        if t == "agent.audio.started":
            out[rid] = {"start": e["t_ms"], "done": None, "interrupted": False, "text": None}
            order.append(rid)
        elif t == "agent.audio.done" and rid in out:
            out[rid].update(
                done=e["t_ms"], interrupted=bool(e.get("interrupted")), text=e.get("text", "")
            )
        elif t == "agent.text.delta":
            deltas.setdefault(rid, []).append(e.get("text", ""))
    res = []
    for rid in order:
        r = out[rid]
        text = r["text"] if r["text"] is not None else "".join(deltas.get(rid, []))
        res.append(Response(rid, float(r["start"]), r["done"], r["interrupted"], text.strip()))
    return res


def agent_chunks(
    events: list[dict], voiced: np.ndarray, frame_ms: float, duration_ms: float
) -> list[WordChunk]:
    """The agent's words with times, in Full-Duplex-Bench ``output.json`` form.

    Full-Duplex-Bench aligns words by running ASR on ``output.wav``; we know the
    words the user heard (``agent.audio.done`` text) and where the output track
    is voiced, so each response's words are laid over its voiced frames in
    proportion to their length. (Export the audio and run the benchmark's own
    ``get_transcript/asr.py`` for an ASR-aligned transcript instead.)
    """
    chunks: list[WordChunk] = []
    for r in responses(events):
        words = r.text.split()
        if not words:
            continue
        end = r.done_ms if r.done_ms is not None else duration_ms
        a = int(r.start_ms // frame_ms)
        b = max(a + 1, int(math.ceil(end / frame_ms)))
        frames = [i for i in range(a, min(b, len(voiced))) if voiced[i]] or list(range(a, b))
        weights = np.array([len(w) + 1 for w in words], np.float64)
        bounds = np.concatenate([[0.0], np.cumsum(weights) / weights.sum()]) * len(frames)
        for w, lo, hi in zip(words, bounds[:-1], bounds[1:], strict=True):
            f0 = frames[min(int(lo), len(frames) - 1)]
            f1 = frames[min(max(int(math.ceil(hi)) - 1, int(lo)), len(frames) - 1)] + 1
            chunks.append(WordChunk(w, f0 * frame_ms / 1000.0, f1 * frame_ms / 1000.0))
    return chunks


def fdb_takes_turn(chunks: list[WordChunk] | list[dict]) -> bool:
    """Full-Duplex-Bench's take-turn rule over the words of a window.

    No words: no turn. Otherwise duration = last word's end (its start when the
    end is unknown) minus the first word's start; under 1 s it is a turn only with
    more than 3 words; from 1 s on it is a turn.
    """
    if not chunks:
        return False
    ts = [
        (c.start_s, c.end_s) if isinstance(c, WordChunk) else tuple(c["timestamp"]) for c in chunks
    ]
    last_end = ts[-1][1] if ts[-1][1] is not None else ts[-1][0]
    duration = last_end - ts[0][0]
    if duration < FDB_TURN_DURATION_S:
        return len(chunks) > FDB_TURN_WORDS
    return True


def chunks_in(chunks: list[WordChunk], start_ms: float, end_ms: float) -> list[WordChunk]:
    """Words that start inside [start_ms, end_ms)."""
    return [c for c in chunks if start_ms <= c.start_s * 1000.0 < end_ms]


# ---------------------------------------------------------------- expectations
def _turn_onsets(trial: Trial) -> list[float]:
    """Onsets of the user's turns: base-track user speech and inserted ``turn`` audio.

    Backchannels, interruptions and noise do not end a judging window: they are
    placed relative to the agent's speech, which the window is judging."""
    onsets = [s.start_ms for s in trial.scenario.user_segments()]
    for p in trial.inserts:
        if p.speech_onset_ms is not None and trial.scenario.inserts[p.index].kind == "turn":
            onsets.append(p.speech_onset_ms)
    return sorted(onsets)


def _next_onset(trial: Trial, after_ms: float) -> float:
    for o in _turn_onsets(trial):
        if o > after_ms + 1e-6:
            return o
    return trial.duration_ms


def _speaking_at(resps: list[Response], t_ms: float) -> bool:
    return any(r.start_ms <= t_ms and (r.done_ms is None or r.done_ms > t_ms) for r in resps)


def _first_start(events: list[dict], a: float, b: float) -> dict | None:
    """The first ``agent.audio.started`` in [a, b)."""
    return next(
        (e for e in events if e["type"] == "agent.audio.started" and a <= e["t_ms"] < b), None
    )


def judge(
    trial: Trial,
    exp: Expectation,
    voiced: np.ndarray,
    chunks: list[WordChunk],
    resps: list[Response],
) -> Outcome:
    """The verdict on one expectation of ``trial``."""
    sc = trial.scenario
    cat = exp.category or sc.category
    onset, end = exp.onset_ms, exp.end_ms
    w0, w1 = exp.window_ms
    if exp.insert is not None:
        played = next((p for p in trial.inserts if p.index == exp.insert), None)
        if played is None or played.speech_onset_ms is None:
            return Outcome(
                exp.behaviour,
                cat,
                "skipped",
                "its insert was never played (the anchor event did not happen)",
            )
        onset, end = played.speech_onset_ms, played.speech_end_ms
        w0 = None if w0 is None else onset + w0
        w1 = None if w1 is None else onset + w1
    fm = trial.frame_ms
    events = trial.events
    out = Outcome(exp.behaviour, cat, "pass", onset_ms=onset, end_ms=end)

    if exp.behaviour == "take_turn":
        assert end is not None
        a = end if w0 is None else w0
        b = _next_onset(trial, end) if w1 is None else w1
        out.window_ms = (a, b)
        words = chunks_in(chunks, a, b)
        out.took_turn = fdb_takes_turn(words)
        if out.took_turn:
            ev = _first_start(events, a, b)
            # The answer's blocks are laid from its first frame (see duplex.audio.level).
            audible = first_audible_ms(trial.agent, trial.out_rate, ev["t_ms"] if ev else a, b)
            t0 = audible if audible is not None else words[0].start_s * 1000.0
            out.response_latency_ms = t0 - end
            if ev is not None:
                latency = float(ev.get("latency_ms", ev["t_ms"] - end))
                out.response_latency_event_ms = latency
                out.endpoint_lag_ms = ev["t_ms"] - latency - end
                if audible is not None:
                    out.lead_in_ms = audible - ev["t_ms"]
        else:
            out.status, out.reason = "fail", "the agent did not take the turn"
        return out

    if exp.behaviour == "no_take":
        a = (onset if onset is not None else 0.0) if w0 is None else w0
        b = ((end if end is not None else a) + NO_TAKE_GRACE_MS) if w1 is None else w1
        out.window_ms = (a, b)
        out.took_turn = fdb_takes_turn(chunks_in(chunks, a, b))
        out.turn_event = any(e["type"] == "turn.taken" and a <= e["t_ms"] < b for e in events)
        if out.took_turn:
            out.status, out.reason = "fail", "the agent took the turn"
        return out

    if exp.behaviour == "yield":
        assert onset is not None and end is not None
        out.window_ms = (onset, _next_onset(trial, end) if w1 is None else w1)
        speaking = _speaking_at(resps, onset)
        open_loop = bool(sc.meta.get("open_loop"))
        if not speaking and not open_loop:
            out.status, out.reason = (
                "skipped",
                "the agent was not speaking when the interruption began",
            )
            return out
        if speaking:
            stop = stop_time_ms(voiced, fm, onset)
            out.stopped = stop is not None and stop - onset <= STOP_WINDOW_MS
            if stop is not None:
                out.stop_latency_ms = max(0.0, stop - onset)
        stops = [
            e["t_ms"]
            for e in events
            if e["t_ms"] >= onset - 1e-6
            and (
                (e["type"] == "barge_in" and e.get("phase") in ("pause", "confirmed"))
                or (e["type"] == "agent.audio.done" and e.get("interrupted"))
            )
        ]
        if stops:
            out.stop_latency_event_ms = min(stops) - onset
        words = chunks_in(chunks, end, out.window_ms[1])
        out.took_turn = fdb_takes_turn(words)
        if out.took_turn:
            ev = _first_start(events, end, out.window_ms[1])
            start = ev["t_ms"] if ev else end
            audible = first_audible_ms(trial.agent, trial.out_rate, start, out.window_ms[1])
            t0 = audible if audible is not None else words[0].start_s * 1000.0
            out.response_latency_ms = max(0.0, t0 - end)
        if speaking and not out.stopped:
            out.status, out.reason = "fail", "the agent kept talking over the interruption"
        elif not out.took_turn:
            out.status, out.reason = "fail", "the agent stopped but did not answer the interruption"
        return out

    # ignore: a backchannel, noise, background speech or echo must not cut the agent
    if w0 is not None:
        a = w0
    elif onset is not None:
        a = onset
    else:  # the whole of the agent's speech (echo): from its first audio
        a = resps[0].start_ms if resps else 0.0
    if w1 is not None:
        b = w1
    elif end is not None:
        b = end + IGNORE_GRACE_MS
    else:
        b = trial.duration_ms
    out.window_ms = (a, b)
    if onset is not None and not _speaking_at(resps, onset):
        out.status, out.reason = "skipped", "the agent was not speaking when it began"
        return out
    if onset is None and not resps:
        out.status, out.reason = "skipped", "the agent never spoke"
        return out
    cut = any(
        e["type"] == "agent.audio.done" and e.get("interrupted") and a <= e["t_ms"] < b
        for e in events
    )
    cut = cut or any(
        e["type"] == "barge_in" and e.get("phase") == "confirmed" and a <= e["t_ms"] < b
        for e in events
    )
    # Strictly after ``a``: for echo (a = the first response's start) the turn that
    # started that response is taken in the same tick as its first audio.
    taken = any(e["type"] == "turn.taken" and a < e["t_ms"] < b for e in events)
    out.false_interruption = cut
    out.took_turn = cut or taken
    out.false_pause = any(
        e["type"] == "barge_in" and e.get("phase") == "pause" and a <= e["t_ms"] < b for e in events
    )
    if cut:
        out.status, out.reason = "fail", "the agent's response was cut"
    elif taken:
        out.status, out.reason = "fail", "the agent took a turn on it"
    return out


def score_trial(trial: Trial) -> dict[str, Any]:
    """Judge every expectation of a trial and summarise it (JSON-ready)."""
    voiced = voiced_frames(trial.agent, trial.out_rate, trial.frame_ms)
    chunks = agent_chunks(trial.events, voiced, trial.frame_ms, trial.duration_ms)
    resps = responses(trial.events)
    outcomes = [judge(trial, e, voiced, chunks, resps) for e in trial.scenario.expect]
    stalls = [e for e in trial.events if e["type"] == "stall"]
    stages: dict[str, list[float]] = {}
    for e in trial.events:
        if e["type"] == "agent.audio.started":
            for k, v in e.get("breakdown_ms", {}).items():
                stages.setdefault(k, []).append(float(v))
    tick = np.asarray(trial.tick_ms, np.float64)
    status = "pass"
    if any(o.status == "fail" for o in outcomes):
        status = "fail"
    elif outcomes and all(o.status == "skipped" for o in outcomes):
        status = "skipped"
    return {
        "id": trial.scenario.id,
        "category": trial.scenario.category,
        "tags": list(trial.scenario.tags),
        "status": status,
        "duration_ms": round(trial.duration_ms, 1),
        "expectations": [o.to_dict() for o in outcomes],
        "responses": [asdict(r) for r in resps],
        "agent_words": [c.to_fdb() for c in chunks],
        "stalls": len(stalls),
        "overruns": trial.overruns,
        "errors": [e.get("message", "") for e in trial.events if e["type"] == "error"],
        "stage_ms": stages,
        "tick_rtf": _pct(tick / trial.frame_ms) if len(tick) else {},
        "compute_rtf": float(tick.sum() / max(trial.duration_ms, 1e-9))
        if len(tick)
        else float("nan"),
    }


# ---------------------------------------------------------------- aggregate
def _pct(values: Any) -> dict[str, float]:
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
        rtf["tick"] = _pct(np.asarray(ticks["tick"]) / frame_ms)
        rtf["stage"] = {
            k: _pct(np.asarray(v) / frame_ms) for k, v in ticks.items() if k != "tick" and v
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
        "response_latency_ms": _pct(resp),
        "response_latency_event_ms": _pct(resp_ev),
        "endpoint_lag_ms": _pct(lag),
        "lead_in_ms": _pct(lead),
        "stop_latency_ms": _pct(stop),
        "stop_latency_event_ms": _pct(stop_ev),
        "stop_rate": _rate([bool(o["stopped"]) for o in yields]),
        "response_after_interruption_ms": _pct(after),
        "false_interruption_rate": false_int,
        "false_pause_rate": _rate([bool(o["false_pause"]) for o in ignores]),
        "false_take_rate": false_take,
        "pause_turn_event_rate": premature,
        "stage_ms": {k: _pct(v) for k, v in stages.items()},
        "rtf": rtf,
        "stalls": stalls,
        "stalls_per_min": round(stalls / total_min, 3) if total_min else None,
        "overruns": sum(r.get("overruns", 0) for r in results),
        "errors": sum(len(r.get("errors", [])) for r in results),
    }
