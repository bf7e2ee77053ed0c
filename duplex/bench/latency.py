"""``duplex bench latency``: what a listener waits for an answer, and where it goes,
on the offline clock and on the real-time clock, from the same spoken questions.

The headline is the **audible latency**: from the real end of the user's speech (the
last audible 10 ms block of the question the bench made, ``duplex.audio.level``) to
the first audible sample of the agent's output, read from the frames the session
played, in stream time. It is the sum of three parts:

- *endpoint lag*: the VAD's end of speech minus the real end (the VAD holds on to
  the tail of the last word);
- *event latency*: the VAD's end to the first chunk handed to the output (the
  ``latency_ms`` of ``agent.audio.started``), itself broken into stages:
  *endpointing* (end of speech → turn taken), *asr_final* (compute of the final
  transcript), *llm_ttft* (LLM time to first token), *llm_first_clause* (LLM time to
  the first speakable clause), *tts_first_chunk* (TTS time to the first audio of
  that clause);
- *lead-in*: that first chunk's start to its first audible sample (silence at the
  head of the synthesized audio).

Also the tick real-time factor while the agent speaks and listens at once.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np

from duplex.audio.conversation_writer import AGENT_ONLY, USER_ONLY, write_conversation
from duplex.audio.level import AudibleOnsets
from duplex.bench.speech import conversation, questions
from duplex.bench.user import FixedTimelineUser, UserFrames, WaitingUser
from duplex.config import load_config
from duplex.events import AgentAudio, AgentAudioStarted, Event
from duplex.runtime.metrics import percentiles
from duplex.runtime.offline import NO_TAIL, Tick, drive
from duplex.runtime.runtime import Runtime
from duplex.runtime.session import Session

STAGES = ["endpointing", "asr_final", "llm_ttft", "llm_first_clause", "tts_first_chunk"]
# The parts of the audible latency, in order: they add up to it.
PARTS = ["endpoint_lag_ms", "event_latency_ms", "lead_in_ms"]
# The p95 bound: turns slower than this (audible) are counted on their own.
SLOW_MS = 800.0
_CONTEXT_MS = 3000.0


def _slow_turns(latencies: list[float]) -> int:
    return sum(1 for v in latencies if v > SLOW_MS)


def real_end_s(speech_spans: list[tuple[float, float]], vad_end_s: float) -> float:
    """The real end (s) of the question a turn answered: the last question whose speech
    began before the VAD's end of speech ``vad_end_s``; NaN when none did."""
    ends = [end for onset, end in speech_spans if onset <= vad_end_s]
    return ends[-1] if ends else math.nan


def audible_parts(start: AgentAudioStarted, onset_ms: float | None, real_end_ms: float) -> dict[str, float]:
    """A response's audible latency and its three parts (ms), from its
    ``agent.audio.started`` event, its first audible stream time and the real end of
    the speech it answers. ``audible_ms`` = endpoint lag + event latency + lead-in."""
    vad_end = start.t_ms - start.latency_ms
    audible = math.nan if onset_ms is None else onset_ms - real_end_ms
    return {
        "audible_ms": audible,
        "endpoint_lag_ms": vad_end - real_end_ms,
        "event_latency_ms": start.latency_ms,
        "lead_in_ms": math.nan if onset_ms is None else onset_ms - start.t_ms,
    }


def _collect(
    events: list[Any],
    onsets: AudibleOnsets,
    user: WaitingUser | FixedTimelineUser,
    filled: list[tuple[float, float]] | None = None,
) -> dict[str, Any]:
    """The bench's figures from a run's events. ``filled``: (user time s, silence the
    engine had ticked in by then, s) as the real-time run went; the user's speech is
    placed in stream time with it (offline: none)."""
    starts = [e for e in events if isinstance(e, AgentAudioStarted)]
    spans = user.speech_spans
    if filled:
        times = np.array([t for t, _ in filled])
        extra = np.array([x for _, x in filled])

        def ahead(t_s: float) -> float:
            i = int(np.searchsorted(times, t_s, side="right")) - 1
            return float(extra[max(0, i)])

        spans = [(a + ahead(a), b + ahead(b)) for a, b in spans]
    out: dict[str, Any] = {"question_spans_s": user.spans, "speech_spans_s": spans}
    parts = []
    for e in starts:
        real_end = 1000.0 * real_end_s(spans, (e.t_ms - e.latency_ms) / 1000.0)
        parts.append(audible_parts(e, onsets.onsets_ms.get(e.response_id), real_end))
    out["started_ms"] = [e.t_ms for e in starts]  # each answer's first frame out
    out["first_audible_ms"] = [onsets.onsets_ms.get(e.response_id, math.nan) for e in starts]
    for name in ("audible_ms", *PARTS):
        out[name] = [p[name] for p in parts]
    for st in STAGES:
        out[st] = [e.breakdown_ms.get(st, float("nan")) for e in starts]
    taken = [e for e in events if e.type == "turn.taken"]
    out["turns_taken"] = len(taken)
    # Why a turn was slow: a low end-of-turn score makes the agent wait a fragment's pause.
    out["eot_score"] = [e.eot_score for e in taken]
    out["user_text"] = [e.text for e in taken]
    out["stalls"] = sum(1 for e in events if e.type == "stall")
    # Questions that cut the agent off (on a fixed timeline, a long answer runs into the next).
    out["barge_ins"] = sum(1 for e in events if e.type == "barge_in" and e.phase == "confirmed")
    # Each slow answer with the events of the 3 s before its end of speech and after:
    # why it was slow (a fragment's pause, a barge-in, a late transcript) without a rerun.
    out["slow_turns"] = [
        {
            "audible_ms": p["audible_ms"],
            **{k: p[k] for k in PARTS},
            "events": [
                x.to_dict()
                for x in events
                if e.t_ms - e.latency_ms - _CONTEXT_MS <= x.t_ms <= e.t_ms and x.type != "agent.text.delta"
            ],
        }
        for e, p in zip(starts, parts, strict=True)
        if not p["audible_ms"] <= SLOW_MS  # NaN (never audible) counts as slow
    ]
    return out


class _Listener:
    """The bench's side of a run: hands the session's new events to the user (who waits
    on the agent's audio), finds each response's first audible sample in the played
    frames, and keeps all events but the audio itself."""

    def __init__(
        self, user: WaitingUser | FixedTimelineUser, output_rate: int, tape: Tape | None
    ) -> None:
        self.user = user
        self.tape = tape
        self.events: list[Any] = []
        self.onsets = AudibleOnsets(output_rate)

    def hear(self, new: list[Event] | tuple[Event, ...]) -> None:
        for e in new:
            self.user.observe(e)
            if isinstance(e, AgentAudio):
                self.onsets.feed(e.response_id, e.t_ms, e.samples)
                if self.tape is not None:
                    self.tape.agent(e.t_ms, e.samples)
            else:
                self.events.append(e)

    def collect(self, filled: list[tuple[float, float]] | None = None) -> dict[str, Any]:
        """The bench's figures (``_collect``)."""
        return _collect(self.events, self.onsets, self.user, filled)


class Tape:
    """The session's two sides in stream time, to write out: the user's frames as sent
    and the agent's frames as played (``agent.audio`` events, placed at their stream
    time; silence between them)."""

    def __init__(self, in_rate: int, out_rate: int) -> None:
        self.in_rate, self.out_rate = in_rate, out_rate
        self._user: list[np.ndarray] = []
        self._agent: list[tuple[float, np.ndarray]] = []

    def user(self, frame: np.ndarray) -> None:
        self._user.append(frame)

    def agent(self, t_ms: float, samples: np.ndarray) -> None:
        self._agent.append((t_ms, samples))

    def write(self, folder: Path) -> None:
        """``user.wav`` (input rate) and ``agent.wav`` (output rate), both from stream time 0,
        through the one conversation writer."""
        user = np.concatenate(self._user) if self._user else np.zeros(0, np.float32)
        n = int(round(len(user) * self.out_rate / self.in_rate))
        for t_ms, x in self._agent:
            n = max(n, int(round(t_ms * self.out_rate / 1000.0)) + len(x))
        agent = np.zeros(n, np.float32)
        for t_ms, x in self._agent:
            at = int(round(t_ms * self.out_rate / 1000.0))
            agent[at : at + len(x)] = x
        rates = {"input_rate": self.in_rate, "output_rate": self.out_rate}
        write_conversation(folder / "user.wav", user=user, agent=None, channels=USER_ONLY, rate=self.in_rate, **rates)
        write_conversation(folder / "agent.wav", user=None, agent=agent, channels=AGENT_ONLY, **rates)


@contextlib.contextmanager
def _bench_session(config: Any, clock: Literal["realtime", "offline"]) -> Iterator[Session]:
    """A session ``bench-<clock>`` on a runtime of its own, closed on the way out."""
    rt = Runtime(config, clock=clock)
    try:
        yield rt.open_session(f"bench-{clock}")
    finally:
        rt.close()


def run_offline(
    config: Any, user: WaitingUser | FixedTimelineUser, tape: Tape | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    with _bench_session(config, "offline") as s:
        listener = _Listener(user, config.audio.output_sample_rate, tape)

        def on_tick(tick: Tick) -> None:
            if tape is not None:
                tape.user(tick.input)
            listener.hear(tick.events)

        drive(s, UserFrames(user, s.frame_samples), NO_TAIL, on_tick)
        return listener.collect(), s.metrics.summary()


def run_realtime(
    config: Any, user: WaitingUser | FixedTimelineUser, tape: Tape | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    with _bench_session(config, "realtime") as s:
        listener = _Listener(user, config.audio.output_sample_rate, tape)
        n = s.frame_samples
        rate = config.audio.input_sample_rate
        t0 = time.monotonic()
        sent = 0
        # A starved sender (a loaded machine) lets the engine tick in silence, and stream
        # time runs ahead of the user's clock: keep track, to place the user's speech.
        filled: list[tuple[float, float]] = []
        seen = 0
        while not user.finished:
            now_filled = s.filled_input_samples
            if not filled or now_filled != seen:
                if tape is not None:
                    tape.user(np.zeros(now_filled - seen, np.float32))  # where the engine put it
                filled.append((sent / rate, now_filled / rate))
                seen = now_filled
            frame = user.frame(n)
            if tape is not None:
                tape.user(frame)
            s.push_audio(frame)
            sent += n
            listener.hear(s.take_events())
            due = t0 + sent / rate
            time.sleep(max(0.0, due - time.monotonic()))
        time.sleep(0.3)
        listener.hear(s.take_events())
        return listener.collect(filled), s.metrics.summary()


def _p50_p95(values: list[float]) -> str:
    p = percentiles([v for v in values if v == v])
    return "-" if p["p50"] != p["p50"] else f"{p['p50']:.0f} / {p['p95']:.0f}"


def _table(results: dict[str, Any]) -> str:
    header = (
        f"| clock | answers | audible p50 | audible p95 | over {SLOW_MS:.0f} ms "
        "| endpoint lag p50 / p95 | event latency p50 / p95 | lead-in p50 / p95 | "
        + " | ".join(f"{s} p50" for s in STAGES)
        + " | tick RTF p99 (duplex) | barge-ins | stalls |"
    )
    sep = "|" + "---|" * (header.count("|") - 1)
    rows = [header, sep]
    for clock, r in results.items():
        lat = percentiles([v for v in r["audible_ms"] if v == v])
        slow = len(r["slow_turns"])
        cells = [clock, f"{len(r['audible_ms'])}/{r['turns_taken']}", f"{lat['p50']:.0f}", f"{lat['p95']:.0f}", str(slow)]
        cells += [_p50_p95(r[k]) for k in PARTS]
        for st in STAGES:
            cells.append(f"{np.nanmedian(r[st]):.0f}" if r[st] else "-")
        rtf = r["tick"]["tick_rtf_while_speaking"]["p99"]
        cells += [f"{rtf:.3f}", str(r["barge_ins"]), str(r["stalls"])]
        rows.append("| " + " | ".join(cells) + " |")
    slow_lines = []
    for clock, r in results.items():
        for slow in r["slow_turns"]:
            taken = [e for e in slow["events"] if e["type"] == "turn.taken"]
            why = f"heard {taken[-1]['text']!r}, end-of-turn score {taken[-1]['eot_score']:.2f}" if taken else "no turn taken"
            parts = ", ".join(f"{k.removesuffix('_ms').replace('_', ' ')} {slow[k]:.0f}" for k in PARTS)
            slow_lines.append(f"- {clock}: {slow['audible_ms']:.0f} ms ({parts}), {why}")
    if slow_lines:
        rows += ["", f"answers over {SLOW_MS:.0f} ms (audible):", *slow_lines]
    return "\n".join(rows)


def run_latency_bench(
    config_name: str | None = None,
    overrides: list[str] | None = None,
    turns: int = 20,
    clocks: list[str] | None = None,
    out: Path | None = None,
    user_voice: str = "espeak",
    user_waits: bool = True,
    audio_dir: Path | None = None,
) -> dict[str, Any]:
    """Run the benchmark and return {"table": markdown, "results": {...}}.

    ``user_voice`` speaks the questions (``duplex.bench.speech.USER_VOICES``).
    ``user_waits``: each question waits for the answer before it to end
    (``bench.user.WaitingUser``); False asks on a fixed timeline, so a long answer
    runs into the next question. ``audio_dir``: write each clock's two sides there
    (``CLOCK/user.wav``, ``CLOCK/agent.wav``, stream time from sample 0), the audio
    the audible latency is read from.
    """
    config = load_config(config_name, overrides)
    rate = config.audio.input_sample_rate
    spoken = questions(turns, rate, user_voice=user_voice)
    results: dict[str, Any] = {}
    for clock in clocks or ["offline", "realtime"]:
        runner = run_offline if clock == "offline" else run_realtime
        user: WaitingUser | FixedTimelineUser
        if user_waits:
            user = WaitingUser(spoken, rate)
        else:
            user = FixedTimelineUser(*conversation(turns, rate=rate, user_voice=user_voice), rate=rate)
        tape = Tape(rate, config.audio.output_sample_rate) if audio_dir is not None else None
        r, tick = runner(config, user, tape)
        if tape is not None and audio_dir is not None:
            tape.write(audio_dir / clock)
        r["tick"] = tick
        results[clock] = r
    summary = {
        clock: {
            "audible_ms": percentiles([v for v in r["audible_ms"] if v == v]),
            **{k: percentiles([v for v in r[k] if v == v]) for k in PARTS},
            **{st: percentiles([v for v in r[st] if v == v]) for st in STAGES},
            "tick_rtf": r["tick"]["tick_rtf"],
            "tick_rtf_while_speaking": r["tick"]["tick_rtf_while_speaking"],
            "over_800_ms": len(r["slow_turns"]),
            "turns": len(r["question_spans_s"]),
            "responses": len(r["audible_ms"]),
            "barge_ins": r["barge_ins"],
            "stalls": r["stalls"],
        }
        for clock, r in results.items()
    }
    report = {
        "table": _table(results),
        "summary": summary,
        "raw": {c: {k: v for k, v in r.items() if k != "tick"} for c, r in results.items()},
        "config": config.name,
        "user_voice": user_voice,
        "user": "waits for each answer" if user_waits else "fixed timeline",
    }
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({k: v for k, v in report.items() if k != "table"}, indent=2))
    return report
