"""Measure the end-of-turn decision on spoken finished turns and mid-sentence fragments.

Each sentence is spoken by espeak-ng in eight voices, transcribed by the default
recognizer (Whisper tiny.en, the fast final the turn-taker gets), scored by the
end-of-utterance model and blended as the turn-taker blends it
(``policy/end_of_turn.py``). The pause the turn-taker would wait after each one
(``pause_needed_ms``, with the turn's ``TurnContext``: a statement is held) is what
matters, and each set's second row gives it with the look the turn-taker asks for at a
final held for its form (``LookAgain``):

* a finished turn that waits over a second is a slow answer;
* a fragment that waits under a second is answered in the middle of a pause.

Two sets, reported apart: ``eval``, the sentences of the eval scenarios (the
default thresholds were first chosen on them), and ``held-out``, sentences no
setting was chosen on. A change is judged on ``held-out``.

Usage::

    python models/scripts/measure_eou.py                      # the default profile
    python models/scripts/measure_eou.py --set models.eou.system_prompt="..."
    python models/scripts/measure_eou.py --out eou.json -v    # every transcript and score
    python models/scripts/measure_eou.py --audio clips.npz    # the same speech in every run

espeak-ng's in-process library does not say a sentence the same way twice in one process
(models/asr.md), so two runs hear slightly different audio. To compare two settings or two
commits on the same speech, pass ``--audio``: the first run saves what it synthesized
there, later runs read it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]

# Written for this measurement, never used to choose a setting.
HELD_OUT_FINISHED = [
    "What's the weather like in Paris in spring?",
    "How do I fix a flat tyre?",
    "Which planet is closest to the sun?",
    "Can you tell me a joke?",
    "What is the tallest mountain in the world?",
    "How many days are in a leap year?",
    "What should I name my cat?",
    "Why do leaves change colour in autumn?",
    "How does a rainbow form?",
    "Who painted the Mona Lisa?",
    "What is the speed of light?",
    "How do I get better sleep?",
    "What are some healthy snacks?",
    "Where do penguins live?",
    "How old is the universe?",
    "Can you recommend a film for tonight?",
    "What language do they speak in Brazil?",
    "How do airplanes stay in the air?",
    "What's a good gift for my mother?",
    "How do I say thank you in Spanish?",
]
HELD_OUT_FRAGMENTS = [
    "My sister and I were trying to decide",
    "I was reading an article yesterday and",
    "Could you remind me",
    "What I wanted to ask you",
    "I'm looking for a recipe that",
    "The thing I don't understand",
    "Is it possible to",
    "I wonder whether",
    "Do you happen to know",
    "I've always wanted to learn",
    "My question is about",
    "Last week my brother told me",
    "I'm not sure whether I should",
    "Can you help me figure out",
    "I'd like to hear more about",
    "When I was young my grandmother",
    "The reason I'm asking is",
    "Please tell me",
    "So the problem is",
    "What do you think about",
]
VOICES = ["en-us+f3", "en-us+m3", "en+f4", "en-us+f2", "en+m1", "en-us+m7", "en+f3", "en-us+m2"]
SLOW_MS = 1000.0  # a finished turn waiting longer is a slow answer; a fragment waiting less is cut off


@dataclass
class Scored:
    set: str
    kind: str  # "finished" or "fragment"
    sentence: str
    voice: str
    text: str
    confidence: float | None  # the recognizer's mean token log-probability
    semantic: float | None  # the EOU model's end_score
    score: float
    pause_ms: float
    # The pause with the look the turn-taker asks for at a final held for its form (a
    # statement: ``LookAgain``), and the words that look read ("" where none was asked).
    looked_pause_ms: float = 0.0
    looked_text: str = ""


def auc(positives: list[float], negatives: list[float]) -> float:
    """Probability that a random finished turn outscores a random fragment (ties count half)."""
    if not positives or not negatives:
        return float("nan")
    p = np.asarray(positives)[:, None]
    n = np.asarray(negatives)[None, :]
    return float(np.mean((p > n) + 0.5 * (p == n)))


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", default="default")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--out", type=Path, help="write every transcript and score as JSON")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every miss")
    parser.add_argument(
        "--audio", type=Path, help="an .npz of the spoken sentences: read if it exists, else written"
    )
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.path.insert(0, str(ROOT))
    from duplex.bench.speech import speak
    from duplex.config import load_config
    from duplex.eval.generate import PAUSED, QUESTIONS
    from duplex.models.asr_rescore import look_again
    from duplex.models.registry import (
        end_of_utterance_model,
        final_recognizer,
        second_look_recognizer,
    )
    from duplex.policy.end_of_turn import TurnContext, blend_end_of_turn, pause_needed_ms

    cfg = load_config(args.config, overrides=args.set)
    if cfg.models.eou.engine not in ("llamacpp", "lexical"):
        parser.error("models.eou.engine must be llamacpp or lexical here")
    eou = end_of_utterance_model(cfg)
    asr = final_recognizer(cfg)
    second_look = second_look_recognizer(cfg, asr, eou)

    sets = {
        "eval": (QUESTIONS, [first for first, _ in PAUSED]),
        "held-out": (HELD_OUT_FINISHED, HELD_OUT_FRAGMENTS),
    }
    spoken = [
        (name, kind, sentence, voice)
        for name, (finished, fragments) in sets.items()
        for kind, sentences in (("finished", finished), ("fragment", fragments))
        for sentence in sentences
        for voice in VOICES
    ]
    keys = [f"{name}|{kind}|{sentence}|{voice}" for name, kind, sentence, voice in spoken]
    if args.audio is not None and args.audio.exists():
        with np.load(args.audio) as saved:
            missing = [k for k in keys if k not in saved.files]
            if missing:
                parser.error(f"{args.audio} has no audio for {len(missing)} sentences, e.g. {missing[0]!r}")
            clips = [saved[k] for k in keys]
    else:
        silence = np.zeros(3200, np.float32)
        clips = [np.concatenate([silence, speak(s, voice), silence]) for _, _, s, voice in spoken]
        if args.audio is not None:
            np.savez_compressed(args.audio, **dict(zip(keys, clips, strict=True)))
            print(f"saved the spoken sentences to {args.audio}")

    rows: list[Scored] = []
    for (name, kind, sentence, voice), audio in zip(spoken, clips, strict=True):
        heard = asr.transcribe(audio)
        text = heard.text
        p = eou.end_score(text) if eou is not None and text else None
        looked = False
        if second_look is not None and eou is not None and p is not None:
            # as the cascade's final job does
            below = cfg.models.asr.rescore_below
            looked = p < below
            for step in look_again(second_look, audio, text, p, eou.end_score, below):
                if step is not None:
                    heard, p = step
                    text = heard.text
        score = blend_end_of_turn(text, p)
        # The turn-taker's pause: a statement (not a question or a request) is held.
        context = TurnContext.of(text)
        pause = pause_needed_ms(score, cfg.turn, context)
        row = Scored(name, kind, sentence, voice, text, heard.confidence, p, score, pause, pause)
        if second_look is not None and eou is not None and text and not looked and context.held_for_form:
            # held for its form: the turn-taker asks for one look (``LookAgain``)
            again = second_look.other_reading(audio, text, cfg.models.asr.held_look_gain)
            words = again.text.strip() if again is not None else ""
            if words:
                row.looked_text = words
                looked_score = blend_end_of_turn(words, eou.end_score(words))
                row.looked_pause_ms = pause_needed_ms(looked_score, cfg.turn, TurnContext.of(words))
        rows.append(row)

    print(f"profile {args.config} {' '.join(args.set)}; {len(VOICES)} espeak-ng voices\n")
    print(
        "| set | AUC | finished: pause p50 / p95 ms | finished waiting > 1 s "
        "| fragments: pause p50 ms | fragments answered within 1 s |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for name in sets:
        for label, pause_of in (("", lambda r: r.pause_ms), (", look at held", lambda r: r.looked_pause_ms)):
            fin = [r for r in rows if r.set == name and r.kind == "finished"]
            frag = [r for r in rows if r.set == name and r.kind == "fragment"]
            slow = sum(pause_of(r) > SLOW_MS for r in fin)
            cut = sum(pause_of(r) < SLOW_MS for r in frag)
            print(
                f"| {name}{label} | {auc([r.score for r in fin], [r.score for r in frag]):.3f} "
                f"| {np.percentile([pause_of(r) for r in fin], 50):.0f} / "
                f"{np.percentile([pause_of(r) for r in fin], 95):.0f} "
                f"| {slow}/{len(fin)} ({slow / len(fin):.0%}) "
                f"| {np.percentile([pause_of(r) for r in frag], 50):.0f} "
                f"| {cut}/{len(frag)} ({cut / len(frag):.0%}) |"
            )
        looks = [r for r in rows if r.set == name and r.looked_text]
        if looks and args.verbose:
            print(f"  {name}: looks at held finals that read other words:")
            for r in looks:
                print(f"  - {r.kind} {r.voice}: {r.text!r} -> {r.looked_text!r}: {r.pause_ms:.0f} -> {r.looked_pause_ms:.0f} ms")
    if args.verbose:
        print("\nMisses (pause, blended score, EOU score, transcript):")
        for r in rows:
            if (r.kind == "finished") == (r.pause_ms > SLOW_MS):
                p = "-" if r.semantic is None else f"{r.semantic:.4f}"
                print(f"- {r.set} {r.kind} {r.voice}: {r.pause_ms:.0f} ms, {r.score:.2f}, {p}, {r.text!r}")
    if args.out:
        args.out.write_text(json.dumps([r.__dict__ for r in rows], indent=1))
        print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
