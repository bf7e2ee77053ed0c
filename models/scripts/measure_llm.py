"""Measure the CPU LLM stage: time to first token (first turn and 10th turn), decode speed,
tokens until the first clause boundary, and sample answers to voice-assistant questions.

Usage:
    python models/scripts/measure_llm.py                      # SmolLM2-135M, threads 1 and 2
    python models/scripts/measure_llm.py --gguf gemma3-270m=/path/gemma-3-270m-q4_k_m.gguf
    python models/scripts/measure_llm.py --reps 10 --threads 1 2

Prints a Markdown table to stdout. Timings are wall clock on whatever else the machine runs.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass

from duplex.models.llamacpp.generator import LlamaCppGenerator
from duplex.models.llamacpp.gguf import default_model_path
from duplex.models.stages import ChatMessage

SYSTEM = ChatMessage(
    "system",
    "You are a friendly voice assistant. Answer in one or two short spoken sentences.",
)
QUESTIONS = [
    "What's the capital of Japan?",
    "How do I boil an egg?",
    "Can you recommend a good book for a long flight?",
    "Why is the sky blue?",
    "What should I wear if it's raining today?",
    "How many minutes are in a day?",
    "What's a quick dinner I can make with pasta?",
    "Tell me a fun fact about octopuses.",
    "How do I say thank you in Spanish?",
    "What is the tallest mountain in the world?",
]
HISTORY_ANSWER = "Sure, here is a short answer to that."
CLAUSE_END = (",", ".", "?", "!")


@dataclass
class Row:
    model: str
    threads: int
    ttft1_ms: list[float]
    ttft10_ms: list[float]
    eval10_tokens: list[int]
    tok_s: list[float]
    clause_tokens: list[int]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def first_token_ms(llm: LlamaCppGenerator, messages: list[ChatMessage]) -> float:
    t0 = time.perf_counter()
    stream = llm.stream(messages, max_tokens=8)
    next(stream, None)
    elapsed = (time.perf_counter() - t0) * 1000
    stream.close()
    return elapsed


def decode(llm: LlamaCppGenerator, messages: list[ChatMessage]) -> tuple[str, float, int]:
    """Answer text, decode tokens/s after the first piece, pieces until a clause ends."""
    pieces: list[str] = []
    t_first = 0.0
    clause_at = 0
    for piece in llm.stream(messages, max_tokens=64):
        if not pieces:
            t_first = time.perf_counter()
        pieces.append(piece)
        if not clause_at and any(c in piece for c in CLAUSE_END):
            clause_at = len(pieces)
    t_end = time.perf_counter()
    rate = (len(pieces) - 1) / (t_end - t_first) if len(pieces) > 1 else 0.0
    return "".join(pieces), rate, clause_at or len(pieces)


def measure(name: str, path: str | None, threads: int, reps: int) -> tuple[Row, list[str]]:
    llm = LlamaCppGenerator(path, threads=threads, n_ctx=2048, temperature=0.7, seed=0)
    row = Row(name, threads, [], [], [], [], [])
    first_token_ms(llm, [SYSTEM, ChatMessage("user", "Hi.")])  # warm up
    for r in range(reps):
        question = QUESTIONS[r % len(QUESTIONS)]
        llm.reset()
        row.ttft1_ms.append(first_token_ms(llm, [SYSTEM, ChatMessage("user", question)]))
        # Turn 10: nine earlier exchanges already in the cache, as in a live session.
        history = [SYSTEM]
        for k in range(9):
            history.append(ChatMessage("user", QUESTIONS[(r + k + 1) % len(QUESTIONS)]))
            if k < 8:
                history.append(ChatMessage("assistant", HISTORY_ANSWER))
        llm.reset()
        first_token_ms(llm, history)
        history += [ChatMessage("assistant", HISTORY_ANSWER), ChatMessage("user", question)]
        row.ttft10_ms.append(first_token_ms(llm, history))
        row.eval10_tokens.append(llm.last_prompt_eval_tokens)
    answers = []
    for question in QUESTIONS[:5]:
        llm.reset()
        text, rate, clause = decode(llm, [SYSTEM, ChatMessage("user", question)])
        row.tok_s.append(rate)
        row.clause_tokens.append(clause)
        answers.append(f"- **{question}** {text.strip()}")
    llm.close()
    return row, answers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument(
        "--gguf", action="append", default=[], metavar="NAME=PATH", help="extra model to measure"
    )
    args = parser.parse_args()
    models: list[tuple[str, str | None]] = [("smollm2-135m-q4_1", str(default_model_path()))]
    for spec in args.gguf:
        name, _, path = spec.partition("=")
        models.append((name, path))

    rows: list[Row] = []
    samples: dict[str, list[str]] = {}
    for name, path in models:
        for threads in args.threads:
            row, answers = measure(name, path, threads, args.reps)
            rows.append(row)
            samples.setdefault(name, answers)

    print(
        "| model | threads | TTFT turn 1 p50/p95 (ms) | TTFT turn 10 p50/p95 (ms) "
        "| turn-10 prompt tokens evaluated | decode tok/s | tokens to first clause (median) |"
    )
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row.model} | {row.threads} "
            f"| {pct(row.ttft1_ms, 0.5):.0f} / {pct(row.ttft1_ms, 0.95):.0f} "
            f"| {pct(row.ttft10_ms, 0.5):.0f} / {pct(row.ttft10_ms, 0.95):.0f} "
            f"| {statistics.median(row.eval10_tokens):.0f} "
            f"| {statistics.median(row.tok_s):.0f} "
            f"| {statistics.median(row.clause_tokens):.0f} |"
        )
    for name, answers in samples.items():
        print(f"\nSample answers, {name} (temperature 0.7):\n")
        print("\n".join(answers))


if __name__ == "__main__":
    main()
