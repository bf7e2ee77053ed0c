"""Scenario families on real human speech (``duplex eval make-scenarios DIR --set human``).

Every user utterance here is a recording of a person (see
``duplex/eval/human_speech.py``: Asterisk voice prompts from Debian packages),
cut at its voiced span and levelled; no synthetic voice is used. Recordings are
concatenated with pauses the scenario chooses, so the words come from one
speaker but the order of sentences is ours: a "story" is a sequence of
complete sentences, each with the finished intonation the speaker gave it.

| family | what | judged by |
|---|---|---|
| ``story`` | 4–5 sentences, 0.5–0.9 s gaps | no take-over in any gap (TOR listen, ↓); agent backchannel frequency and JSD; the turn after the last sentence |
| ``thinking`` | a short complete clause (or a fragment read as continuing), ~1 s pause, then more | no take-over in the pause (TOR pause, ↓) |
| ``digits`` | "the number I have is", then 3+3+4 digits with 0.8–1.2 s pauses between groups | no take-over in any group pause (TOR pause, ↓) |
| ``quiet-interrupt`` | a question, then while the agent answers an interruption 10 dB softer than it | stop latency p50/p95 and stop rate (yield) |
| ``background-first`` | 2.5–5 s of reverberant talk in another language before the user's first turn | no turn on the background (false turns, ↓), then the user's turn |

The held-out part: scenario ``i`` of a family is held out when ``i % 4 == 3``;
it draws only held-out recordings (and the held-out speaker for background
talk), the rest only tuning ones. Digits are shared by both parts (ten clips).
Tags: ``human``, ``family:NAME``, and ``heldout`` or ``tuning``; ``meta`` holds
the family, split, clip ids, speakers and licences.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np

from duplex.audio.level import speech_span_ms
from duplex.eval.human_speech import HumanClip, human_clips
from duplex.eval.scenarios import Expectation, Insert, Scenario
from duplex.eval.synthesis import SR, reverb
from duplex.eval.track import Built, ScenarioWriter, Track

HUMAN_VERSION = 1
SPEECH_RMS_DB = -20.0  # every user utterance is levelled to this active-speech RMS
QUIET_DB = -10.0  # a quiet interruption, against the user's first turn

Rng = np.random.Generator
Family = Callable[[str, Rng, int, "Pools"], Built]


@dataclasses.dataclass(frozen=True)
class Pools:
    """Recordings one split may draw from."""

    held_out: bool
    sentences: list[HumanClip]
    short: list[HumanClip]  # complete sentences of at most 6 words
    continues: list[HumanClip]
    questions: list[HumanClip]
    digits: dict[str, HumanClip]
    foreign: list[HumanClip]

    @property
    def split(self) -> str:
        return "heldout" if self.held_out else "tuning"


def pools(held_out: bool) -> Pools:
    """The tuning or held-out recordings, sorted by id (deterministic)."""
    en = human_clips(held_out=held_out, language="en")
    sentences = [c for c in en if c.style == "sentence" and len(c.text.split()) <= 22]
    digits = {c.id.rsplit("/", 1)[1]: c for c in human_clips(style="digit")}
    return Pools(
        held_out,
        sentences,
        [c for c in sentences if len(c.text.split()) <= 6],
        [c for c in en if c.style == "continues"],
        [c for c in en if c.style == "question"] or sentences,
        digits,
        [
            c
            for c in human_clips(held_out=held_out)
            if c.language != "en" and len(c.text.split()) >= 8
        ],
    )


def active_rms_db(x: np.ndarray) -> float:
    """RMS in dBFS over the 10 ms blocks within 30 dB of the loudest (the speech itself)."""
    n = SR // 100
    b = x[: len(x) // n * n].astype(np.float64).reshape(-1, n)
    db = 10 * np.log10(np.mean(b**2, axis=1) + 1e-12)
    keep = b[db > db.max() - 30.0]
    return float(10 * np.log10(np.mean(keep**2) + 1e-12))


def utterance(clip: HumanClip, level_db: float = SPEECH_RMS_DB) -> np.ndarray:
    """The clip at 16 kHz, cut to its voiced span, at ``level_db`` active RMS."""
    x = clip.load(SR)
    a, b = speech_span_ms(x, SR, -45.0)
    x = x[int(a * SR / 1000) : int(b * SR / 1000)]
    x = x * 10 ** ((level_db - active_rms_db(x)) / 20)
    return np.clip(x, -1, 1).astype(np.float32)


def _pick(rng: Rng, clips: list[HumanClip], k: int) -> list[HumanClip]:
    idx = rng.choice(len(clips), size=k, replace=False)
    return [clips[int(i)] for i in idx]


def _meta(family: str, p: Pools, clips: list[HumanClip], **extra: object) -> dict:
    return {
        "family": family,
        "split": p.split,
        "human": True,
        "clips": [c.id for c in clips],
        "speakers": sorted({c.speaker for c in clips}),
        "licences": sorted({f"{c.package} ({c.licence})" for c in clips}),
        **extra,
    }


def story(sid: str, rng: Rng, i: int, p: Pools) -> Built:
    clips = _pick(rng, p.sentences, 4 + i % 2)
    t = Track()
    t.silence(0.6)
    expect: list[Expectation] = []
    gaps: list[float] = []
    segs = [t.add(utterance(c), c.text) for c in clips[:1]]
    for c in clips[1:]:
        gap = round(0.5 + 0.4 * float(rng.random()), 2)
        gaps.append(gap)
        t.silence(gap)
        segs.append(t.add(utterance(c), c.text))
    for (_, g0), (n0, n1) in zip(segs, segs[1:], strict=False):
        expect.append(Expectation("no_take", onset_ms=g0, end_ms=n0, window_ms=(g0, n1)))
    text = " ".join(c.text for c in clips)
    expect.append(Expectation("take_turn", end_ms=segs[-1][1], text=text, category="smooth_turn"))
    sc = Scenario(
        sid,
        "listen",
        Path(f"{sid}.wav"),
        tuple(t.segments),
        tuple(expect),
        description=(
            f"a human speaker tells {len(clips)} sentences with gaps of "
            + ", ".join(f"{g:.2f}" for g in gaps)
            + " s; the agent should not take the turn in a gap (a backchannel is fine)"
        ),
        meta=_meta("story", p, clips, gaps_s=gaps),
    )
    return Built(sc, {f"{sid}.wav": t.render(1.0)})


def thinking(sid: str, rng: Rng, i: int, p: Pools) -> Built:
    complete = i % 2 == 0 or not p.continues
    first = _pick(rng, p.short if complete else p.continues, 1)[0]
    rest = _pick(rng, [c for c in p.sentences if c.id != first.id], 1)[0]
    gap = round(0.9 + 0.3 * float(rng.random()), 2)
    t = Track()
    t.silence(0.6)
    _, p0 = t.add(utterance(first), first.text)
    t.silence(gap)
    r0, r1 = t.add(utterance(rest), rest.text)
    kind = "complete" if complete else "continues"
    sc = Scenario(
        sid,
        "pause",
        Path(f"{sid}.wav"),
        tuple(t.segments),
        (
            Expectation("no_take", onset_ms=p0, end_ms=r0, window_ms=(p0, r1), text=first.text),
            Expectation(
                "take_turn", end_ms=r1, text=f"{first.text} {rest.text}", category="smooth_turn"
            ),
        ),
        description=f"a {gap:.2f} s thinking pause after a {kind} clause ({first.text!r}); the agent should wait",
        meta=_meta("thinking", p, [first, rest], pause_s=gap, clause=kind),
    )
    return Built(sc, {f"{sid}.wav": t.render(1.0)})


def digits(sid: str, rng: Rng, i: int, p: Pools) -> Built:
    lead = next((c for c in p.continues if c.id.endswith("vm-num-i-have")), None)
    lead = lead or _pick(rng, p.continues, 1)[0]
    groups = [[str(int(d)) for d in rng.integers(0, 10, size=n)] for n in (3, 3, 4)]
    t = Track()
    t.silence(0.6)
    t.add(utterance(lead), lead.text)
    t.silence(0.3)
    pauses: list[float] = []
    spans: list[tuple[float, float]] = []
    for g, group in enumerate(groups):
        if g:
            pauses.append(round(0.8 + 0.4 * float(rng.random()), 2))
            t.silence(pauses[-1])
        first = last = None
        for k, d in enumerate(group):
            if k:
                t.silence(0.06 + 0.09 * float(rng.random()))
            s, e = t.add(utterance(p.digits[d]), d)
            first = s if first is None else first
            last = e
        assert first is not None and last is not None
        spans.append((first, last))
    expect = [
        Expectation("no_take", onset_ms=a[1], end_ms=b[0], window_ms=(a[1], b[1]))
        for a, b in zip(spans, spans[1:], strict=False)
    ]
    number = " ".join("".join(g) for g in groups)
    expect.append(
        Expectation(
            "take_turn", end_ms=spans[-1][1], text=f"{lead.text} {number}", category="smooth_turn"
        )
    )
    used = [lead] + [p.digits[d] for g in groups for d in g]
    sc = Scenario(
        sid,
        "pause",
        Path(f"{sid}.wav"),
        tuple(t.segments),
        tuple(expect),
        description=f"a number read in groups ({number}) with pauses of "
        + ", ".join(f"{x:.2f}" for x in pauses)
        + " s; the agent should wait for the last group",
        meta=_meta("digits", p, list(dict.fromkeys(used)), pauses_s=pauses, number=number),
    )
    return Built(sc, {f"{sid}.wav": t.render(1.0)})


def quiet_interrupt(sid: str, rng: Rng, i: int, p: Pools) -> Built:
    q = _pick(rng, p.questions if i % 3 == 0 else p.sentences, 1)[0]
    cut = _pick(rng, [c for c in p.sentences if c.id != q.id and len(c.text.split()) >= 3], 1)[0]
    t = Track()
    t.silence(0.6 + 0.4 * float(rng.random()))
    _, end = t.add(utterance(q), q.text)
    quiet = utterance(cut, SPEECH_RMS_DB + QUIET_DB)
    off = round(600 + 900 * float(rng.random()))
    sc = Scenario(
        sid,
        "interruption",
        Path(f"{sid}.wav"),
        tuple(t.segments),
        (
            Expectation("take_turn", end_ms=end, text=q.text, category="smooth_turn"),
            Expectation("yield", insert=0, text=cut.text),
        ),
        inserts=(
            Insert(
                f"{sid}.interruption.wav", "agent_audio_start", 1, off, cut.text, "interruption"
            ),
        ),
        description=f"the user interrupts {off} ms into the answer, {-QUIET_DB:.0f} dB softer than the first turn, no echo; the agent should stop",
        meta=_meta("quiet-interrupt", p, [q, cut], relative_db=QUIET_DB, offset_ms=off),
    )
    return Built(sc, {f"{sid}.wav": t.render(1.0), f"{sid}.interruption.wav": quiet})


def background_first(sid: str, rng: Rng, i: int, p: Pools) -> Built:
    bg = _pick(rng, p.foreign, 1)[0]
    q = _pick(rng, p.sentences, 1)[0]
    x = utterance(bg, SPEECH_RMS_DB - 12.0)[: 5 * SR]
    x = reverb(x, 70, 100)
    t = Track()
    t.silence(0.8)
    b0, b1 = t.add(x, bg.text, "background")
    t.silence(1.5 + 0.5 * float(rng.random()))
    u0, u1 = t.add(utterance(q), q.text)
    sc = Scenario(
        sid,
        "background_speech",
        Path(f"{sid}.wav"),
        tuple(t.segments),
        (
            Expectation("no_take", onset_ms=b0, end_ms=b1, window_ms=(b0, u0 + 500.0)),
            Expectation("take_turn", end_ms=u1, text=q.text, category="smooth_turn"),
        ),
        description=f"{(b1 - b0) / 1000:.1f} s of distant talk ({bg.speaker}, {bg.language}, -12 dB, reverberant) before the user's first turn; the agent should answer only the user",
        meta=_meta("background-first", p, [bg, q], background_db=-12.0),
    )
    return Built(sc, {f"{sid}.wav": t.render(1.0)})


# (family, builder, count); scenario i is held out when i % 4 == 3
HUMAN_PLAN: list[tuple[str, Family, int]] = [
    ("story", story, 8),
    ("thinking", thinking, 8),
    ("digits", digits, 4),
    ("quiet-interrupt", quiet_interrupt, 8),
    ("background-first", background_first, 4),
]


def make_human_scenarios(
    folder: str | Path, *, seed: int = 0, only: list[str] | None = None
) -> list[Scenario]:
    """Write the human-speech families into ``folder`` (a pure function of ``seed``).

    Raises:
        HumanSpeechMissing: the recordings are not installed (``duplex eval fetch-human-speech``).
    """
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    split = {False: pools(False), True: pools(True)}
    writer = ScenarioWriter(out)
    for n, (family, build, count) in enumerate(HUMAN_PLAN):
        if only and family not in only:
            continue
        for i in range(count):
            rng = np.random.default_rng([seed, 1000 + n, i])
            p = split[i % 4 == 3]
            built = build(f"human-{family}-{i + 1:02d}", rng, i, p)
            writer.write(built, ("human", f"family:{family}", p.split))
    return writer.finish(
        "duplex.eval.human_scenarios", HUMAN_VERSION, seed, {"heldout": "heldout"}
    )
