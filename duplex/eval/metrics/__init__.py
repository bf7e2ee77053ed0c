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

from duplex.eval.metrics.aggregate import aggregate
from duplex.eval.metrics.judge import judge, score_trial
from duplex.eval.metrics.output import (
    agent_chunks,
    chunks_in,
    fdb_takes_turn,
    first_voiced_ms,
    responses,
    stop_time_ms,
    voiced_frames,
)
from duplex.eval.metrics.trial import Outcome, PlayedInsert, Response, Trial, WordChunk

__all__ = [
    "Outcome",
    "PlayedInsert",
    "Response",
    "Trial",
    "WordChunk",
    "agent_chunks",
    "aggregate",
    "chunks_in",
    "fdb_takes_turn",
    "first_voiced_ms",
    "judge",
    "responses",
    "score_trial",
    "stop_time_ms",
    "voiced_frames",
]
