"""Measure the acoustic end-of-turn score (Smart Turn v3.2) on turn ends and mid-turn pauses.

Each sentence below has a pause inside it after a clause that reads complete
("I went to the shop, | and then I bought some milk."). It is synthesised in ONE
call, so the voice says the first clause with the intonation of a speaker who goes
on, and two clips are cut from it:

* **continuing**: up to the end of the word before the pause (a thinking pause
  after a complete clause, the case issue #25 says a listener must not answer);
* **finished**: the whole sentence, up to the end of its last word.

Both clips then get the same ``--silence-ms`` of digital silence (the pause the
turn-taker has heard when it scores the turn; 200 ms by default, Smart Turn's own
setting). The word ends come from the engines' own timings (Piper's duration
predictor, espeak-ng's word events), so the cut is exactly at the pause.

Sources, reported apart:

* ``piper``: the default voice (en_US-joe-medium), natural prosody;
* ``espeak``: the same sentences in four espeak-ng voices;
* ``piper-intonation``, ``espeak-intonation``: the words before each pause spoken alone
  twice, ending on a full stop and on a comma: only the intonation differs.
* ``espeak-fragments``: the earlier yardstick (``measure_eou.py``'s held-out set),
  fragments spoken on their own: espeak gives them a finished sentence's intonation.
* ``human`` and ``human-held-out``: real speech, the English Asterisk prompts of
  ``duplex.eval.human_speech`` (a professional speaker reading finished sentences,
  questions, and fragments meant to be continued: "The estimated hold time is
  currently ..."), trimmed to the last loud frame. Its split is kept apart.
* ``human-cut``: each finished human sentence whole against the same sentence stopped
  at 60 % of its length (a check that the model hears a cut-off turn at all).

With ``--semantic`` every clip is also transcribed by the default recognizer and
scored by the default end-of-utterance model and blended as the turn-taker does
(``blend_end_of_turn``): the table then shows the semantic score alone and fused
with the acoustic one (``fuse_end_of_turn``) at a few weights.

Usage::

    python models/eou_acoustic/measure.py [--sources piper,espeak,espeak-fragments,human]
        [--silence-ms 200] [--semantic] [--out F.json] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]

# (sentence, the word before the pause): the pause comes after a clause that reads
# complete on its own, or after a group of a number or a list that could be its end.
PAUSED_SENTENCES = [
    ("I went to the shop, and then I bought some milk.", "shop"),
    ("We watched a film last night, but it was far too long.", "night"),
    ("My sister lives in Boston, and she works at a hospital there.", "Boston"),
    ("I tried the new cafe on the corner, and the coffee was great.", "corner"),
    ("The meeting moved to Thursday, so I need to change my plans.", "Thursday"),
    ("I'd like a pizza, with mushrooms and olives on it.", "pizza"),
    ("Set an alarm for seven, and another one for half past.", "seven"),
    ("It rained all morning, then the sun came out after lunch.", "morning"),
    ("I called my mother yesterday, and we talked for an hour.", "yesterday"),
    ("The train was late again, which made me miss the bus.", "again"),
    ("My number is five five five, two one eight, four four nine zero.", "five"),
    ("We need eggs, flour, butter and sugar for the cake.", "eggs"),
    ("I finished the report, but I still have to send it to my boss.", "report"),
    ("Book a table for two, at eight o'clock on Friday.", "two"),
    ("The kids are asleep, so we can finally watch something.", "asleep"),
    ("I think it's a good idea, as long as it doesn't cost too much.", "idea"),
    ("Play some jazz, something quiet for the evening.", "jazz"),
    ("My flight lands at noon, and I'll take a taxi from the airport.", "noon"),
    ("I'm reading a book about whales, and it's really fascinating.", "whales"),
    ("Turn off the lights in the kitchen, and lock the front door.", "kitchen"),
    ("We got a new puppy, she is three months old.", "puppy"),
    ("The code is four seven one, nine nine three.", "one"),
    ("I lost my keys this morning, and I found them in the fridge.", "morning"),
    ("Tell me about the weather, and whether I need an umbrella.", "weather"),
    ("My car broke down on the highway, so I had to call for help.", "highway"),
    ("I love hiking in the mountains, especially in the autumn.", "mountains"),
    ("Remind me to call the dentist, tomorrow before ten.", "dentist"),
    ("We moved here two years ago, from a small town in Ohio.", "ago"),
    ("The soup is too salty, I think I added it twice.", "salty"),
    ("Send a message to Anna, saying I'll be ten minutes late.", "Anna"),
    ("I started learning the piano, and I practise every evening.", "piano"),
    ("The shop closes at six, but the pharmacy stays open later.", "six"),
    ("I don't like cold weather, it makes my hands hurt.", "weather"),
    ("Add milk to the shopping list, and some bread as well.", "list"),
    ("My brother got married in June, at a castle in Scotland.", "June"),
    ("I was walking the dog, when it suddenly started to snow.", "dog"),
    ("The printer is out of paper, and the ink is low too.", "paper"),
    ("We went to the beach on Sunday, and the water was freezing.", "Sunday"),
    ("Find me a recipe for pasta, one without any cheese.", "pasta"),
    ("I have a question about my bill, it seems higher than usual.", "bill"),
]

ESPEAK_VOICES = ["en-us+m3", "en-us+f3", "en+m1", "en+f4"]


@dataclass(frozen=True)
class Clip:
    source: str
    label: str  # "finished" or "continuing"
    text: str  # what the clip says
    voice: str
    audio: np.ndarray  # 16 kHz mono float32, ending in the pause


@dataclass(frozen=True)
class Row:
    source: str
    label: str
    text: str
    voice: str
    acoustic: float
    compute_ms: float
    heard: str | None = None
    semantic: float | None = None  # the blended semantic score (blend_end_of_turn)
    semantic_ms: float | None = None  # the end-of-utterance model's call on the transcript


def auc(pos: list[float], neg: list[float]) -> float:
    """P(a finished clip scores above a continuing one); ties count half."""
    if not pos or not neg:
        return float("nan")
    p, n = np.asarray(pos)[:, None], np.asarray(neg)[None, :]
    return float((p > n).mean() + 0.5 * (p == n).mean())


def _to16k(samples: np.ndarray, rate: int) -> np.ndarray:
    import soxr

    x = np.asarray(samples, np.float32)
    return x if rate == 16000 else soxr.resample(x, rate, 16000, quality="HQ").astype(np.float32)


def _cut_clips(source: str, voice: str, chunk: object, rate: int, word: str, silence: np.ndarray) -> list[Clip]:
    from duplex.models.stages import SpeechChunk

    assert isinstance(chunk, SpeechChunk)
    words = [w.word.strip(".,!?").lower() for w in chunk.words]
    i = words.index(word.lower())
    cut = chunk.words[i].end_sample
    end = chunk.words[-1].end_sample
    text_words = chunk.text.split()
    return [
        Clip(source, "continuing", " ".join(text_words[: i + 1]), voice,
             np.concatenate([_to16k(chunk.samples[:cut], rate), silence])),
        Clip(source, "finished", chunk.text, voice, np.concatenate([_to16k(chunk.samples[:end], rate), silence])),
    ]


def piper_clips(silence: np.ndarray) -> list[Clip]:
    from duplex.models.tts_piper import PiperSynthesizer

    tts = PiperSynthesizer()
    out: list[Clip] = []
    for sentence, word in PAUSED_SENTENCES:
        (chunk,) = list(tts.synthesize(sentence))
        out += _cut_clips("piper", "joe-medium", chunk, tts.sample_rate, word, silence)
    tts.close()
    return out


def espeak_clips(silence: np.ndarray) -> list[Clip]:
    from duplex.models.tts_espeak import EspeakSynthesizer

    out: list[Clip] = []
    for voice in ESPEAK_VOICES:
        tts = EspeakSynthesizer(voice)
        for sentence, word in PAUSED_SENTENCES:
            (chunk,) = list(tts.synthesize(sentence))
            out += _cut_clips("espeak", voice, chunk, tts.sample_rate, word, silence)
    return out


def _intonation_clips(source: str, voice: str, tts: object, silence: np.ndarray) -> list[Clip]:
    """The same words twice, spoken alone: ending on a full stop, and on a comma."""
    out: list[Clip] = []
    for sentence, word in PAUSED_SENTENCES:
        words = sentence.split()
        prefix = " ".join(words[: 1 + [w.strip(".,!?").lower() for w in words].index(word.lower())]).rstrip(",")
        for label, text in (("finished", prefix + "."), ("continuing", prefix + ",")):
            (chunk,) = list(tts.synthesize(text))  # type: ignore[attr-defined]
            audio = _to16k(chunk.samples[: chunk.words[-1].end_sample], tts.sample_rate)  # type: ignore[attr-defined]
            out.append(Clip(source, label, text, voice, np.concatenate([audio, silence])))
    return out


def piper_intonation_clips(silence: np.ndarray) -> list[Clip]:
    from duplex.models.tts_piper import PiperSynthesizer

    tts = PiperSynthesizer()
    try:
        return _intonation_clips("piper-intonation", "joe-medium", tts, silence)
    finally:
        tts.close()


def espeak_intonation_clips(silence: np.ndarray) -> list[Clip]:
    from duplex.models.tts_espeak import EspeakSynthesizer

    return [c for v in ESPEAK_VOICES for c in _intonation_clips("espeak-intonation", v, EspeakSynthesizer(v), silence)]


def espeak_fragment_clips(silence: np.ndarray) -> list[Clip]:
    sys.path.insert(0, str(ROOT / "models" / "scripts"))
    from measure_eou import HELD_OUT_FINISHED, HELD_OUT_FRAGMENTS

    from duplex.models.tts_espeak import EspeakSynthesizer

    out: list[Clip] = []
    for voice in ESPEAK_VOICES:
        tts = EspeakSynthesizer(voice)
        for label, sentences in (("finished", HELD_OUT_FINISHED), ("continuing", HELD_OUT_FRAGMENTS)):
            for s in sentences:
                audio = np.concatenate([_to16k(c.samples[: c.words[-1].end_sample], tts.sample_rate) for c in tts.synthesize(s)])
                out.append(Clip("espeak-fragments", label, s, voice, np.concatenate([audio, silence])))
    return out


def _trim(audio: np.ndarray, floor_db: float = -40.0) -> np.ndarray:
    """``audio`` up to its last 10 ms frame within ``floor_db`` of its loudest one."""
    frames = len(audio) // 160
    rms = np.sqrt(np.mean(audio[: frames * 160].reshape(frames, 160) ** 2, axis=1) + 1e-12)
    loud = np.nonzero(20 * np.log10(rms / rms.max()) > floor_db)[0]
    return audio[: (loud[-1] + 1) * 160]


# The human recordings' styles (duplex.eval.human_speech): what each is at its end.
HUMAN_LABELS = {"sentence": "finished", "question": "finished", "continues": "continuing"}


def human_clips(silence: np.ndarray, manifest: Path | None, root: Path | None, cut: bool = False) -> list[Clip]:
    """Real speech: the Asterisk prompts of ``duplex.eval.human_speech`` (studio recordings
    of finished sentences, questions and fragments read to be continued), English only
    (the other speakers read no fragments). Each is trimmed to its last loud frame.

    ``manifest`` and ``root`` read a human_speech.json and the folder its package is
    unpacked into, where ``duplex.eval.human_speech`` is not on this branch. ``cut`` adds
    the ``human-cut`` pairs: each finished sentence whole and stopped at 60 %."""
    import soundfile as sf

    if manifest is None:
        from duplex.eval.human_speech import human_clips as recordings  # type: ignore[import-not-found]

        items = [(c.path, c.style, c.held_out, c.text) for c in recordings(language="en")]
    else:
        data = json.loads(manifest.read_text())["clips"]
        folder = (root or Path.home() / ".cache/duplex/human-speech") / "usr/share/asterisk/sounds/en_US_f_Allison"
        items = [(folder / c["file"], c["style"], c["held_out"], c["text"]) for c in data if c["source"] == "en"]
    out = []
    for path, style, held_out, text in items:
        if style not in HUMAN_LABELS:
            continue
        audio, rate = sf.read(path, dtype="float32", always_2d=True)
        x = _trim(_to16k(audio.mean(axis=1), rate))
        name = "human-held-out" if held_out else "human"
        out.append(Clip(name, HUMAN_LABELS[style], text, "Allison (en)", np.concatenate([x, silence])))
        if cut and HUMAN_LABELS[style] == "finished" and len(x) >= 16000:
            # The same sentence stopped at 60 % of its length (mostly inside a word or a
            # phrase): a turn cut off, not a pause with continuing intonation.
            for label, part in (("finished", x), ("continuing", x[: int(0.6 * len(x))])):
                out.append(Clip("human-cut", label, text, "Allison (en)", np.concatenate([part, silence])))
    return out


def main() -> None:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sources", default="piper,espeak,espeak-fragments")
    ap.add_argument("--human-manifest", type=Path, help="a human_speech.json (default: duplex.eval.human_speech)")
    ap.add_argument("--human-root", type=Path, help="where its Debian package is unpacked")
    ap.add_argument("--silence-ms", type=float, default=200.0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--semantic", action="store_true", help="also transcribe and score the words")
    ap.add_argument("--weights", default="0.25,0.5", help="acoustic weights of the fused score")
    ap.add_argument("--out", type=Path, help="every clip's scores as JSON")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.path.insert(0, str(ROOT))
    from duplex.models.smart_turn import SmartTurn
    from duplex.policy.end_of_turn import fuse_end_of_turn

    silence = np.zeros(int(args.silence_ms * 16), np.float32)
    makers = {
        "piper": piper_clips,
        "espeak": espeak_clips,
        "espeak-fragments": espeak_fragment_clips,
        "piper-intonation": piper_intonation_clips,
        "espeak-intonation": espeak_intonation_clips,
    }
    clips: list[Clip] = []
    for name in args.sources.split(","):
        if name in makers:
            clips += makers[name](silence)
    wanted = args.sources.split(",")
    if "human" in wanted or "human-cut" in wanted:
        found = human_clips(silence, args.human_manifest, args.human_root, cut="human-cut" in wanted)
        clips += [c for c in found if c.source in wanted or (c.source == "human-held-out" and "human" in wanted)]

    model = SmartTurn(threads=args.threads)
    asr = eou = None
    if args.semantic:
        from duplex.config import load_config
        from duplex.models.registry import end_of_utterance_model, final_recognizer

        cfg = load_config("default")
        asr, eou = final_recognizer(cfg), end_of_utterance_model(cfg)
    from duplex.policy.end_of_turn import blend_end_of_turn

    load_before = os.getloadavg()
    rows: list[Row] = []
    for c in clips:
        r = model.score(c.audio)
        heard = semantic = semantic_ms = None
        if asr is not None:
            heard = asr.transcribe(c.audio).text
            t0 = time.perf_counter()
            p = eou.end_score(heard) if eou is not None and heard else None
            semantic_ms = (time.perf_counter() - t0) * 1000.0
            semantic = blend_end_of_turn(heard, p)
        rows.append(Row(c.source, c.label, c.text, c.voice, r.probability, r.compute_ms, heard, semantic, semantic_ms))
    load_after = os.getloadavg()

    weights = [float(w) for w in args.weights.split(",") if w]
    head = "| source | clips (fin / cont) | acoustic AUC | acc @0.5 | fin ≥0.5 | cont <0.5 |"
    if args.semantic:
        head += " semantic AUC | " + " | ".join(f"fused w={w} AUC" for w in weights) + " |"
    print(f"Smart Turn v3.2, {args.silence_ms:.0f} ms of silence after the cut\n")
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for source in dict.fromkeys(r.source for r in rows):
        fin = [r for r in rows if r.source == source and r.label == "finished"]
        cont = [r for r in rows if r.source == source and r.label == "continuing"]
        a_fin = [r.acoustic >= 0.5 for r in fin]
        a_cont = [r.acoustic < 0.5 for r in cont]
        line = (
            f"| {source} | {len(fin)} / {len(cont)} | {auc([r.acoustic for r in fin], [r.acoustic for r in cont]):.3f} "
            f"| {(sum(a_fin) + sum(a_cont)) / (len(fin) + len(cont)):.3f} | {sum(a_fin)}/{len(fin)} | {sum(a_cont)}/{len(cont)} |"
        )
        if args.semantic:
            def sem(r: Row) -> float:
                return 0.0 if r.semantic is None else r.semantic

            line += f" {auc([sem(r) for r in fin], [sem(r) for r in cont]):.3f} |"
            for w in weights:
                f_ = [fuse_end_of_turn(sem(r), r.acoustic, w) for r in fin]
                c_ = [fuse_end_of_turn(sem(r), r.acoustic, w) for r in cont]
                line += f" {auc(f_, c_):.3f} |"
        print(line)
    ms = np.array([r.compute_ms for r in rows])
    print(
        f"\ncost a call (features + model, {args.threads} thread): p50 {np.percentile(ms, 50):.0f} ms, "
        f"p95 {np.percentile(ms, 95):.0f} ms over {len(ms)} calls; load average "
        f"{load_before[0]:.1f} before, {load_after[0]:.1f} after, on {os.cpu_count()} CPUs"
    )
    sem_ms = [r.semantic_ms for r in rows if r.semantic_ms is not None]
    if sem_ms:
        print(
            f"the end-of-utterance model's call on the transcript, same run: p50 {np.percentile(sem_ms, 50):.0f} ms, "
            f"p95 {np.percentile(sem_ms, 95):.0f} ms"
        )
    if args.out:
        args.out.write_text(json.dumps([asdict(r) for r in rows], indent=1))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    t0 = time.time()
    main()
    print(f"({time.time() - t0:.0f} s)")
