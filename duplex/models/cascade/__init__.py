"""The cascade duplex model: VAD + streaming ASR + LLM + streaming TTS.

Per tick the session runs VAD on the input frame (listen), executes the
turn-taker's commands (act), collects finished work from its lanes (think) and
plays exactly one output frame (speak). Long work runs on lanes:

- *hearing* (``hearing.py``): the listen lane transcribes a final at a pause,
  scores its end of turn and, when it reads as unfinished, takes a second look
  (n-best re-ranked); a background partial lane transcribes while the user talks
  (the partials prefill the LLM's prompt);
- *responding* (``responding.py``, ``draft.py``): the respond lane drafts the
  answer: LLM text, cut into clauses (``clauses.py``), each clause synthesized
  as soon as it is complete, so the first audio comes while the LLM still writes
  the rest. It steps one token at a time, so a draft cancelled or paused (for
  the second look, which needs the cores) stops within a token.

A response drafted before the turn is taken is *held*: queued, not played,
until ``TakeTurn`` releases it or ``DiscardDraft`` throws it away. Lane jobs
hand back typed results (``results.py``); ``session.py`` is the tick's glue.
"""

from duplex.models.cascade.clauses import ClauseSplitter, trim_seam
from duplex.models.cascade.model import CascadeModel, CascadeSettings, CascadeStages
from duplex.models.cascade.session import CascadeSession

__all__ = [
    "CascadeModel",
    "CascadeSession",
    "CascadeSettings",
    "CascadeStages",
    "ClauseSplitter",
    "trim_seam",
]
