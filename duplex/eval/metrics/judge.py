"""The verdict on each expectation of a scenario (take the turn, hold it through a
pause, yield to an interruption, ignore a backchannel, noise or echo), and a
trial's result from them."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from duplex.audio.level import first_audible_ms
from duplex.eval.metrics.aggregate import rounded_percentiles
from duplex.eval.metrics.output import (
    agent_chunks,
    chunks_in,
    fdb_takes_turn,
    responses,
    stop_time_ms,
    voiced_frames,
)
from duplex.eval.metrics.trial import (
    IGNORE_GRACE_MS,
    NO_TAKE_GRACE_MS,
    STOP_WINDOW_MS,
    Outcome,
    Response,
    Trial,
    WordChunk,
)
from duplex.eval.scenarios import Expectation


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
    out = Outcome(exp.behaviour, cat, "pass", onset_ms=onset, end_ms=end)
    w = _Window(onset, end, w0, w1)
    if exp.behaviour == "take_turn":
        return _take_turn(trial, out, w, chunks)
    if exp.behaviour == "no_take":
        return _no_take(trial, out, w, chunks)
    if exp.behaviour == "yield":
        return _yield(trial, out, w, voiced, chunks, resps)
    return _ignore(trial, out, w, resps)


@dataclass(frozen=True)
class _Window:
    """Where an expectation's user audio is (its speech onset and end) and the judging
    window the scenario sets (None: the behaviour's default)."""

    onset: float | None
    end: float | None
    w0: float | None
    w1: float | None


def _take_turn(trial: Trial, out: Outcome, w: _Window, chunks: list[WordChunk]) -> Outcome:
    """The agent answers after the user's turn ends (TOR, response latency)."""
    events, end, w0, w1 = trial.events, w.end, w.w0, w.w1
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


def _no_take(trial: Trial, out: Outcome, w: _Window, chunks: list[WordChunk]) -> Outcome:
    """The agent does not take a turn in a pause, on noise or on background talk."""
    events, onset, end, w0, w1 = trial.events, w.onset, w.end, w.w0, w.w1
    a = (onset if onset is not None else 0.0) if w0 is None else w0
    # Without an explicit end, the window runs to the user's next turn (the end of the run
    # if none): an answer to background talk is a taken turn however late it comes (a
    # fixed grace let one 1.4 s late, with under 1 s of it inside, pass).
    last = end if end is not None else a
    b = max(last + NO_TAKE_GRACE_MS, _next_onset(trial, last)) if w1 is None else w1
    out.window_ms = (a, b)
    out.took_turn = fdb_takes_turn(chunks_in(chunks, a, b))
    out.turn_event = any(e["type"] == "turn.taken" and a <= e["t_ms"] < b for e in events)
    if out.took_turn:
        out.status, out.reason = "fail", "the agent took the turn"
    return out


def _yield(
    trial: Trial,
    out: Outcome,
    w: _Window,
    voiced: np.ndarray,
    chunks: list[WordChunk],
    resps: list[Response],
) -> Outcome:
    """The agent stops for an interruption and answers it."""
    sc, fm, events = trial.scenario, trial.frame_ms, trial.events
    onset, end, w1 = w.onset, w.end, w.w1
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


def _ignore(trial: Trial, out: Outcome, w: _Window, resps: list[Response]) -> Outcome:
    """A backchannel, noise, background speech or echo must not cut the agent."""
    events, onset, end, w0, w1 = trial.events, w.onset, w.end, w.w0, w.w1
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
        "tick_rtf": rounded_percentiles(tick / trial.frame_ms) if len(tick) else {},
        "compute_rtf": float(tick.sum() / max(trial.duration_ms, 1e-9))
        if len(tick)
        else float("nan"),
    }
