"""A draft: one response being written, spoken and played, and the job that writes it.

The job streams the LLM's answer, cuts it into clauses and synthesizes each
clause as soon as it is complete, so the first audio comes while the LLM still
writes the rest. It steps one token at a time: a draft cancelled or paused stops
within a token.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field

from duplex.audio.resample import resample
from duplex.lanes import Job
from duplex.models.actions import ResponseOptions
from duplex.models.cascade.clauses import ENDS_PUNCTUATED, SPECIAL_TOKENS, ClauseSplitter, trim_seam
from duplex.models.cascade.results import (
    AudioChunk,
    Clause,
    Done,
    DraftResult,
    EouScore,
    Pending,
    Prefilled,
)
from duplex.models.end_of_utterance import semantic_end_score
from duplex.models.spoken_text import SpokenText
from duplex.models.stages import (
    ChatMessage,
    SpeechSynthesizer,
    TextGenerator,
    Tool,
    ToolCall,
    ToolChoice,
)


@dataclass
class Draft:
    """A response being generated, *held* (queued, not played) until the turn is taken.

    Results arrive from its job in ``text_parts``, ``audio`` and ``calls_to_emit``;
    once released they are emitted and queued for playout at each tick.
    """

    response_id: str
    user_text: str
    job: Job | None
    held: bool = True
    text_parts: list[str] = field(default_factory=list)
    audio: list[AudioChunk] = field(default_factory=list)
    done: bool = False
    end_of_speech_ms: float = 0.0
    taken_ms: float = 0.0
    stage_ms: dict[str, float] = field(default_factory=dict)
    started: bool = False  # its first audio has played
    options: ResponseOptions = ResponseOptions()
    tool_calls: list[ToolCall] = field(default_factory=list)  # all the calls it made
    calls_to_emit: list[ToolCall] = field(default_factory=list)
    history_at: tuple[int, int] | None = (
        None  # where its answer goes in the history (Dialogue.mark)
    )


def close_stream(stream: Iterator[object]) -> None:
    """Stop an LLM's stream early: a generator's ``close`` cancels generation (the
    ``TextGenerator.stream`` contract); any other iterator holds nothing to stop."""
    if isinstance(stream, Generator):
        stream.close()


def draft_job(
    llm: TextGenerator,
    tts: SpeechSynthesizer,
    messages: Sequence[ChatMessage],
    *,
    max_tokens: int,
    out_rate: int,
    tools: tuple[Tool, ...] = (),
    tool_choice: ToolChoice = "auto",
) -> Callable[[], Iterator[DraftResult]]:
    """The respond lane's job for one draft: LLM text → clauses → speech at ``out_rate``.

    One step per token (``Pending`` when it completes no clause): a draft cancelled
    mid-clause (a revised final, a barge-in) stops within a token instead of
    finishing its clause on cores the listener needs.
    """

    def job() -> Iterator[DraftResult]:
        t0 = time.perf_counter()
        if tools:
            stream = llm.stream(
                messages, max_tokens=max_tokens, tools=tools, tool_choice=tool_choice
            )
        else:
            stream = llm.stream(messages, max_tokens=max_tokens)
        spoken, splitter = SpokenText(), ClauseSplitter()
        first, joined = True, False  # joined: the previous clause stopped mid-sentence
        ttft = 0.0

        def speak(clause: str) -> Iterator[DraftResult]:
            nonlocal first, joined
            t_clause = time.perf_counter()
            stage = {"llm_first_clause": 1000.0 * (t_clause - t0), "llm_ttft": ttft}
            yield Clause(clause, stage if first else {})
            open_end = not ENDS_PUNCTUATED.search(clause)
            chunks = list(tts.synthesize(clause))  # a clause is one sentence: one chunk, mostly
            for i, chunk in enumerate(chunks):
                audio = resample(chunk.samples, tts.sample_rate, out_rate)
                scale = out_rate / tts.sample_rate
                words = [
                    (w.word, int(w.start_sample * scale), int(w.end_sample * scale))
                    for w in chunk.words
                ]
                lead, tail = joined and i == 0, open_end and i == len(chunks) - 1
                audio, words = trim_seam(audio, words, out_rate, lead, tail)
                info = (
                    {"tts_first_chunk": 1000.0 * (time.perf_counter() - t_clause)} if first else {}
                )
                first = False
                yield AudioChunk(audio, chunk.text, tuple(words), info)
            joined = open_end

        try:
            piece = next(stream, None)  # the prompt has been evaluated by now
            ttft = 1000.0 * (time.perf_counter() - t0)
            end_probability = llm.last_end_probability
            if end_probability is not None:
                yield EouScore(semantic_end_score(end_probability))
            while piece is not None:
                if isinstance(piece, ToolCall):
                    yield piece
                    piece = next(stream, None)
                    continue
                clauses = splitter.feed(spoken.feed(SPECIAL_TOKENS.sub("", piece)))
                for clause in clauses:
                    yield from speak(clause)
                if not clauses:
                    yield Pending()
                piece = next(stream, None)
            for clause in splitter.feed(spoken.finish()) + splitter.finish():
                yield from speak(clause)
        finally:
            close_stream(stream)
        yield Done()

    return job


def prefill_job(
    prefill: Callable[[Sequence[ChatMessage]], int], messages: Sequence[ChatMessage]
) -> Callable[[], Iterator[DraftResult]]:
    """The respond lane's job that evaluates a partial transcript's prompt ahead of the answer."""

    def job() -> Iterator[DraftResult]:
        yield Prefilled(prefill(messages))

    return job
