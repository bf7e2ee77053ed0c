"""Measure the echo cancellers on simulated laptop echo of real (synthetic) speech.

Run from the repo root::

    python models/scripts/measure_aec.py [--engines webrtc,speex,none] [--far piper,espeak]
                                         [--quick] [--asr] [--wav DIR]

Each scenario plays ~22 s of agent speech (Piper or espeak-ng) through a
simulated echo path (delay, gain, synthetic room impulse response with an
exponentially decaying noise tail, optional loudspeaker soft-clipping) into a
microphone with a little white noise. The user (espeak-ng voices) talks over the
agent from 14 s on (double talk). The canceller is fed 512-sample (32 ms) ticks
as the runtime does.

Reported per engine and scenario (printed as a Markdown table for models/aec.md):

- ERLE (dB): echo energy / cleaned energy over the echo-only stretch after 4 s,
  frames where the agent is audible (the mic noise, -70 dBFS, bounds it).
- t10 / t20 (s): first time the 1 s windowed ERLE reaches 10 / 20 dB.
- VAD raw / clean (%): Silero VAD frames with p >= 0.5 over the echo-only
  stretch, on the raw mic and the cleaned mic (from a cold start; "clean>2s"
  leaves out the first 2 s of convergence).
- DT SNR (dB): near-end user speech vs cleaned output during double talk, after
  the best short linear filter (so fixed filtering such as AEC3's high-pass and
  the output latency do not count), next to the raw mic's SIR in the same span.
- DT VAD recall (%): of the frames where VAD fires on the clean user speech, the
  share where it still fires on the cleaned mic during double talk.
- est (%): frames the EchoEstimator calls "explained" among echo-only frames where
  VAD fired on the cleaned mic (should be high), and among double-talk frames
  where VAD fires on the user (should be low).
- ms/frame: CPU time of one 32 ms tick.

With ``--asr`` the double-talk stretch (raw and cleaned) and the user alone are
transcribed with the packaged Whisper tiny.en.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from duplex.audio.resample import resample
from duplex.bench.speech import QUESTIONS, speak
from duplex.models.vad_silero import SileroVad
from duplex.policy.echo import EchoEstimator
from duplex.policy.echo_cancel import make_echo_canceller

SR = 16000
FRAME = 512
DT_START_S = 14.0
TOTAL_S = 22.0
NOISE_DBFS = -70.0

AGENT_TEXT = [
    "Sure, I can help you with that.",
    "What time would work best for you tomorrow?",
    "I think the meeting was moved to Thursday afternoon.",
    "Oh, that sounds like a really good idea.",
    "Let me check the weather for the weekend.",
    "It should be sunny with a high of about seventy degrees.",
    "Do you want me to set a reminder for that?",
    "Okay, I have added milk and eggs to your shopping list.",
    "The nearest pharmacy closes at nine tonight, so you still have time.",
    "Honestly, I would start with the shorter book and see if you like the style.",
    "Right, so the train leaves at half past six from platform four.",
    "If you turn left at the next corner, the cafe will be on your right side.",
]


@dataclass(frozen=True)
class Scenario:
    name: str
    delay_ms: float
    gain_db: float
    rt60_s: float = 0.3
    drr_db: float = 3.0
    clip: bool = False


SCENARIOS = [
    Scenario("d30 g-6", 30, -6),
    Scenario("d80 g-12", 80, -12),
    Scenario("d150 g-20", 150, -20),
    Scenario("d150 g-6 rt0.4", 150, -6, rt60_s=0.4),
    Scenario("d80 g-12 clip", 80, -12, clip=True),
    Scenario("d300 g-12", 300, -12),
]
QUICK = SCENARIOS[:3]


def agent_speech(kind: str) -> np.ndarray:
    """~TOTAL_S s of agent speech with short pauses, peak 0.5."""
    rng = np.random.default_rng(1)
    if kind == "piper":
        from duplex.models.tts_piper import PiperSynthesizer

        tts = PiperSynthesizer()

        def say(text: str) -> np.ndarray:
            chunks = [c.samples for c in tts.synthesize(text)]
            return resample(np.concatenate(chunks), tts.sample_rate, SR)
    else:

        def say(text: str) -> np.ndarray:
            return speak(text, ["en-us+m3", "en+f4"][len(text) % 2], SR)

    parts: list[np.ndarray] = []
    n = 0
    i = 0
    while n < TOTAL_S * SR:
        s = say(AGENT_TEXT[i % len(AGENT_TEXT)])
        s = 0.5 * s / max(1e-6, float(np.abs(s).max()))
        gap = np.zeros(int(rng.uniform(0.15, 0.5) * SR), np.float32)
        parts += [s.astype(np.float32), gap]
        n += len(s) + len(gap)
        i += 1
    return np.concatenate(parts)[: int(TOTAL_S * SR)]


def user_speech() -> np.ndarray:
    """The user's questions, placed from DT_START_S on (zeros before)."""
    out = np.zeros(int(TOTAL_S * SR), np.float32)
    t = int((DT_START_S + 0.3) * SR)
    for q, v in zip(QUESTIONS[:3], ["en-us+f3", "en-us+m3", "en-us+f2"], strict=True):
        s = speak(q, v, SR, level=0.5)
        end = min(len(out), t + len(s))
        out[t:end] = s[: end - t]
        t = end + int(0.4 * SR)
        if t >= len(out):
            break
    return out


def room_ir(sc: Scenario, seed: int = 0) -> np.ndarray:
    """Delay + direct path + exponentially decaying noise tail, scaled to ``gain_db`` energy."""
    rng = np.random.default_rng(seed)
    d = int(sc.delay_ms * SR / 1000)
    n_tail = int(sc.rt60_s * SR)
    t = np.arange(n_tail) / SR
    tail = rng.standard_normal(n_tail) * np.exp(-6.91 * t / sc.rt60_s)
    tail[: int(0.002 * SR)] = 0.0
    tail *= np.sqrt(10 ** (-sc.drr_db / 10) / np.sum(tail**2))
    h = np.zeros(d + n_tail)
    h[d] = 1.0
    h[d:] += tail
    h *= 10 ** (sc.gain_db / 20) / np.sqrt(np.sum(h**2))
    return h


def echo_of(far: np.ndarray, sc: Scenario) -> np.ndarray:
    x = np.tanh(2.5 * far) / 2.5 if sc.clip else far
    return fftconvolve(x, room_ir(sc))[: len(far)].astype(np.float32)


def fftconvolve(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    n = len(a) + len(b) - 1
    size = 1 << (n - 1).bit_length()
    return np.fft.irfft(np.fft.rfft(a, size) * np.fft.rfft(b, size), size)[:n]


def frames(x: np.ndarray) -> np.ndarray:
    n = len(x) // FRAME
    return x[: n * FRAME].reshape(n, FRAME)


def vad_probs(x: np.ndarray) -> np.ndarray:
    vad = SileroVad()
    return np.array([vad.probability(f) for f in frames(x)])


def db(x: float) -> float:
    return 10 * np.log10(max(x, 1e-20))


def linear_snr(s: np.ndarray, y: np.ndarray, taps: int = 64, pre: int = 16) -> float:
    """SNR (dB) of ``y`` as a linearly filtered copy of ``s``.

    The best ``taps``-long FIR (lags -pre..taps-pre) from ``s`` to ``y`` is
    fitted by least squares, so fixed filtering (the high-pass filter in front
    of AEC3, small lags) is not counted as distortion; what is left (residual
    echo, time-varying suppression of the user, noise) is.
    """
    n = len(s)
    cols = [np.roll(np.pad(s, (taps, taps)), k - pre)[taps : taps + n] for k in range(taps)]
    a = np.stack(cols, axis=1).astype(np.float64)
    h, *_ = np.linalg.lstsq(a, y.astype(np.float64), rcond=None)
    fit = a @ h
    return db(float(np.sum(fit**2))) - db(float(np.sum((y - fit) ** 2)))


def run_one(engine: str, far: np.ndarray, near: np.ndarray, sc: Scenario, opts: dict) -> dict:
    rng = np.random.default_rng(7)
    echo = echo_of(far, sc)
    noise = (10 ** (NOISE_DBFS / 20) * rng.standard_normal(len(far))).astype(np.float32)
    mic = echo + near + noise
    aec = make_echo_canceller(engine, SR, FRAME, **opts)
    est = EchoEstimator(1000.0 * FRAME / SR)
    out = np.zeros_like(mic)
    cpu: list[float] = []
    explained: list[bool] = []
    for k, (m, p) in enumerate(zip(frames(mic), frames(far), strict=True)):
        t0 = time.perf_counter()
        out[k * FRAME : (k + 1) * FRAME] = aec.process(m, p)
        cpu.append((time.perf_counter() - t0) * 1000)
    lat = aec.latency_samples
    clean = np.concatenate([out[lat:], np.zeros(lat, np.float32)])
    # explained() sees the frames as the runtime would (with the canceller's lag)
    for c, p in zip(frames(out), frames(far), strict=True):
        explained.append(est.explained(c, p))
    expl = np.array(explained)

    nf = len(mic) // FRAME
    dt_frame = int(DT_START_S * SR) // FRAME
    far_db = np.array([db(float(np.mean(f**2))) for f in frames(far)])
    echo_f, clean_f = frames(echo), frames(clean)
    active = np.zeros(nf, bool)
    # agent audible: its echo is well above the mic noise
    active[:] = [db(float(np.mean(f**2))) > NOISE_DBFS + 10 for f in echo_f]

    def erle(lo: int, hi: int) -> float:
        sel = active[lo:hi]
        e = float(np.sum(echo_f[lo:hi][sel] ** 2))
        c = float(np.sum(clean_f[lo:hi][sel] ** 2))
        return db(e) - db(c) if sel.any() else float("nan")

    conv_lo = int(4.0 * SR) // FRAME
    win = int(1.0 * SR) // FRAME
    series = [(k * FRAME / SR, erle(k, k + win)) for k in range(0, dt_frame - win)]
    t10 = next((t + 1.0 for t, e in series if e >= 10), float("nan"))
    t20 = next((t + 1.0 for t, e in series if e >= 20), float("nan"))

    p_raw, p_clean = vad_probs(mic), vad_probs(clean)
    p_user = vad_probs(near + noise)
    eo = slice(0, dt_frame)
    eo2 = slice(int(2.0 * SR) // FRAME, dt_frame)
    dt = slice(dt_frame, nf)
    user_on = p_user[dt] >= 0.5

    # double talk: near-end fidelity
    s0, s1 = dt_frame * FRAME, nf * FRAME
    s, y, r = near[s0:s1], clean[s0:s1], mic[s0:s1]
    snr = linear_snr(s, y)
    sir = linear_snr(s, r)
    vad_echo_fired = p_clean[eo] >= 0.5
    return {
        "erle": erle(conv_lo, dt_frame),
        "t10": t10,
        "t20": t20,
        "vad_raw": 100 * float(np.mean(p_raw[eo] >= 0.5)),
        "vad_clean": 100 * float(np.mean(p_clean[eo] >= 0.5)),
        "vad_clean2": 100 * float(np.mean(p_clean[eo2] >= 0.5)),
        "dt_snr": snr,
        "dt_sir": sir,
        "dt_recall": 100 * float(np.mean(p_clean[dt][user_on] >= 0.5))
        if user_on.any()
        else float("nan"),
        "est_echo": 100 * float(np.mean(expl[eo][vad_echo_fired]))
        if vad_echo_fired.any()
        else float("nan"),
        "est_user": 100 * float(np.mean(expl[dt][user_on])) if user_on.any() else float("nan"),
        "ms": statistics.median(cpu),
        "ms_p99": float(np.percentile(cpu, 99)),
        "far_db": float(np.median(far_db[active])),
        "_mic": mic,
        "_clean": clean,
        "_near": near,
        "_dt": (s0, s1),
    }


def fmt(v: float, nd: int = 1) -> str:
    return "n/a" if v != v else f"{v:.{nd}f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--engines", default="webrtc,speex,none")
    ap.add_argument("--far", default="piper,espeak", help="agent voices: piper, espeak")
    ap.add_argument("--quick", action="store_true", help="three scenarios only")
    ap.add_argument("--asr", action="store_true", help="transcribe the double-talk stretch")
    ap.add_argument("--wav", type=Path, help="write mic/clean WAVs of each run here")
    ap.add_argument("--opt", action="append", default=[], help="engine option key=value (int)")
    args = ap.parse_args(argv)
    opts = {k: int(v) for k, v in (o.split("=", 1) for o in args.opt)}
    near = user_speech()
    asr = None
    if args.asr:
        from duplex.models.asr_whisper import WhisperRecognizer

        asr = WhisperRecognizer()
    print(
        "| far | scenario | engine | ERLE dB | t10 s | t20 s | VAD raw % | VAD clean % | clean>2s % "
        "| DT SNR dB (raw SIR) | DT VAD recall % | est echo % | est user % | ms/frame (p99) |"
    )
    print("| --- " * 14 + "|")
    for kind in args.far.split(","):
        far = agent_speech(kind)
        for sc in QUICK if args.quick else SCENARIOS:
            for engine in args.engines.split(","):
                r = run_one(engine, far, near, sc, opts if engine != "none" else {})
                print(
                    f"| {kind} | {sc.name} | {engine} | {fmt(r['erle'])} | {fmt(r['t10'])} | {fmt(r['t20'])} "
                    f"| {fmt(r['vad_raw'], 0)} | {fmt(r['vad_clean'], 0)} | {fmt(r['vad_clean2'], 0)} "
                    f"| {fmt(r['dt_snr'])} ({fmt(r['dt_sir'])}) | {fmt(r['dt_recall'], 0)} "
                    f"| {fmt(r['est_echo'], 0)} | {fmt(r['est_user'], 0)} | {r['ms']:.2f} ({r['ms_p99']:.2f}) |",
                    flush=True,
                )
                if asr is not None:
                    s0, s1 = r["_dt"]
                    for label, x in (
                        ("user", r["_near"]),
                        ("raw", r["_mic"]),
                        ("clean", r["_clean"]),
                    ):
                        print(
                            f"    asr {label}: {asr.transcribe(x[s0:s1]).text!r}", file=sys.stderr
                        )
                if args.wav:
                    import soundfile as sf

                    args.wav.mkdir(parents=True, exist_ok=True)
                    tag = f"{kind}_{sc.name.replace(' ', '_')}_{engine}"
                    sf.write(args.wav / f"{tag}_mic.wav", r["_mic"], SR)
                    sf.write(args.wav / f"{tag}_clean.wav", r["_clean"], SR)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
