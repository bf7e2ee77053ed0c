"""Measure the TTS engines: time to first chunk, real-time factor, and a listen-check.

Run from the repo root::

    python models/scripts/measure_tts.py [--threads 1] [--out DIR]

Prints a Markdown table (for ``models/tts.md``) and writes a few WAVs to a temp
directory (or ``--out``), reporting each one's duration and loudness; if
faster-whisper and a local Whisper model are available, one WAV is transcribed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from duplex.models.stages import SpeechSynthesizer
from duplex.models.tts_espeak import EspeakSynthesizer
from duplex.models.tts_piper import PiperSynthesizer

SENTENCES = [
    "Sure, I can help you with that.",
    "What time would work best for you tomorrow?",
    "I think the meeting was moved to Thursday afternoon.",
    "Oh, that sounds like a really good idea.",
    "Let me check the weather for the weekend.",
    "It should be sunny with a high of about seventy degrees.",
    "Do you want me to set a reminder for that?",
    "Okay, I have added milk and eggs to your shopping list.",
    "Sorry, I did not quite catch that, could you say it again?",
    "The nearest pharmacy closes at nine tonight, so you still have time.",
    "Honestly, I would start with the shorter book and see if you like the style.",
    "Yes.",
    "Right, so the train leaves at half past six from platform four.",
    "If you turn left at the next corner, the cafe will be on your right side.",
    "Great, talk to you later.",
]


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def measure(name: str, synth: SpeechSynthesizer, out_dir: Path) -> dict[str, float]:
    """Time every sentence (first chunk and total) and write a few WAVs."""
    list(synth.synthesize("Warm up."))  # first-call costs (session, phonemizer) excluded
    first_ms: list[float] = []
    compute_s = audio_s = 0.0
    for i, sentence in enumerate(SENTENCES):
        start = time.perf_counter()
        stream = synth.synthesize(sentence)
        first = next(stream)
        first_ms.append((time.perf_counter() - start) * 1000)
        chunks = [first, *stream]
        compute_s += time.perf_counter() - start
        samples = np.concatenate([c.samples for c in chunks])
        audio_s += len(samples) / synth.sample_rate
        if i in (0, 9, 13):
            path = out_dir / f"{name}-{i:02d}.wav"
            sf.write(path, samples, synth.sample_rate)
            rms_db = 20 * np.log10(np.sqrt(np.mean(samples**2)) + 1e-12)
            words = len(sentence.split())
            print(
                f"  {path}: {len(samples) / synth.sample_rate:.2f} s "
                f"({len(samples) / synth.sample_rate / words:.2f} s/word), RMS {rms_db:.1f} dBFS"
            )
    return {
        "p50": statistics.median(first_ms),
        "p95": _percentile(first_ms, 95),
        "rtf": compute_s / audio_s,
        "audio_s": audio_s,
    }


def transcribe(path: Path) -> str | None:
    """Transcribe a WAV with faster-whisper's tiny.en if it is cached locally."""
    try:
        import soxr
        from faster_whisper import WhisperModel

        model = WhisperModel("tiny.en", device="cpu", compute_type="int8", local_files_only=True)
    except Exception as exc:  # optional check: any missing piece just skips it
        print(f"  (no ASR check: {type(exc).__name__}: {exc})")
        return None
    audio, rate = sf.read(path, dtype="float32")
    segments, _ = model.transcribe(soxr.resample(audio, rate, 16000), language="en")
    return " ".join(s.text.strip() for s in segments)


def main() -> None:
    """Measure both engines and print the Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="Piper onnxruntime threads")
    parser.add_argument("--out", type=Path, default=None, help="where to write WAVs")
    args = parser.parse_args()
    out_dir = args.out or Path(tempfile.mkdtemp(prefix="duplex-tts-"))
    out_dir.mkdir(parents=True, exist_ok=True)

    rows = []
    for name, factory in [
        ("piper en_US-joe-medium", lambda: PiperSynthesizer(threads=args.threads)),
        ("espeak-ng en-us", EspeakSynthesizer),
    ]:
        start = time.perf_counter()
        synth = factory()
        load_s = time.perf_counter() - start
        print(f"{name}: loaded in {load_s:.2f} s")
        stats = measure(name.split()[0], synth, out_dir)
        rows.append((name, load_s, stats))

    text = transcribe(out_dir / "piper-09.wav")
    if text is not None:
        print(f"  ASR of piper-09.wav: {text!r}\n  reference: {SENTENCES[9]!r}")

    print(
        f"\n{len(SENTENCES)} sentences, {os.cpu_count()} CPU cores, piper threads={args.threads}\n"
    )
    print("| engine | load s | first chunk p50 ms | first chunk p95 ms | RTF | audio s |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, load_s, s in rows:
        print(
            f"| {name} | {load_s:.2f} | {s['p50']:.0f} | {s['p95']:.0f} | "
            f"{s['rtf']:.3f} | {s['audio_s']:.1f} |"
        )


if __name__ == "__main__":
    main()
