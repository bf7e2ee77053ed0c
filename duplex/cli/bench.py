"""``duplex bench``: latency, soak, serving and codec-LM benchmarks."""

from __future__ import annotations

import argparse
from pathlib import Path

from duplex.bench.speech import USER_VOICES
from duplex.cli.common import add_config_args
from duplex.errors import DuplexError


def add_bench_parser(sub: argparse._SubParsersAction) -> None:
    """The ``bench`` command and its subcommands."""
    p = sub.add_parser("bench", help="benchmarks")
    bsub = p.add_subparsers(dest="bench_command", required=True)
    b = bsub.add_parser("latency", help="real end of user speech → first audible agent sample, per part and stage")
    b.add_argument("--turns", type=int, default=20, help="spoken questions per clock")
    b.add_argument("--clock", action="append", choices=["offline", "realtime"], help="clock(s) to measure (default both)")
    b.add_argument(
        "--user-voice", choices=USER_VOICES, default="espeak",
        help="who speaks the questions: four espeak-ng voices (default; hard for the recognizer) "
        "or the packaged Piper voice at three rates",
    )
    b.add_argument(
        "--fixed-timeline", action="store_true",
        help="ask each question 7 s after the last whatever the agent does (a long answer then "
        "runs into the next question, a barge-in); by default the user waits for each answer",
    )
    b.add_argument("--out", default=None, help="write the JSON results here")
    b.add_argument(
        "--save-audio", default=None, metavar="DIR",
        help="write each clock's user.wav and agent.wav (stream time from sample 0) under DIR/CLOCK",
    )
    add_config_args(b)
    b.set_defaults(func=_cmd_bench)

    b = bsub.add_parser("soak", help="a long conversation offline: memory and latency drift")
    b.add_argument("--minutes", type=float, default=60.0, help="minutes of stream time")
    b.add_argument("--out", default="out/bench/soak.json")
    add_config_args(b)
    b.set_defaults(func=_cmd_bench_soak)

    b = bsub.add_parser("serve", help="concurrent WebSocket clients over loopback: latency and real time")
    b.add_argument("--clients", type=int, nargs="+", default=[1, 2, 4])
    b.add_argument("--turns", type=int, default=3, help="spoken questions per client")
    b.add_argument(
        "--soak", type=float, default=None, metavar="MINUTES",
        help="instead: a duplex serve process for MINUTES under misbehaving clients while one "
        "client keeps talking (scripted profile unless --config): RSS, threads, files, latency, /healthz",
    )
    b.add_argument("--out", default="out/bench/serve.json")
    b.add_argument("--via", choices=["direct", "ray"], default="direct", help="ray: the same clients direct, then through Ray Serve")
    b.add_argument("--replicas", type=int, default=2, help="with --via ray: replicas of the Serve application")
    add_config_args(b)
    b.set_defaults(func=_cmd_bench_serve)

    b = bsub.add_parser("model", help="codec LM tick time versus concurrent sessions (+ 7B estimate)")
    b.add_argument("--sessions", type=int, nargs="+", default=[1, 8, 32, 64, 128])
    b.add_argument("--ticks", type=int, default=30, help="measured ticks per batch size")
    b.add_argument("--checkpoint", default=None, help="checkpoint dir (default: tiny random model)")
    b.add_argument("--device", default="auto", help="auto, cpu or cuda")
    b.add_argument("--no-estimate", action="store_true", help="skip the Moshi 7B estimate")
    b.add_argument("--out", default="out/bench/model.json")
    b.set_defaults(func=_cmd_bench_model)


def _out(args: argparse.Namespace) -> Path | None:
    """Where ``--out`` asks the report to be written (None: nowhere)."""
    return Path(args.out) if args.out else None


def _wrote(out: str | Path | None) -> None:
    if out:
        print(f"\nwrote {out}")


def _cmd_bench(args: argparse.Namespace) -> int:
    from duplex.bench.latency import run_latency_bench

    report = run_latency_bench(
        config_name=args.config,
        overrides=args.overrides,
        turns=args.turns,
        clocks=args.clock,
        out=_out(args),
        user_voice=args.user_voice,
        user_waits=not args.fixed_timeline,
        audio_dir=Path(args.save_audio) if args.save_audio else None,
    )
    print(report["table"])
    _wrote(args.out)
    return 0


def _cmd_bench_soak(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from duplex.bench.soak import run_soak

    bar = tqdm(unit="tick", desc="soak")

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    report = run_soak(args.minutes, config_name=args.config, overrides=args.overrides, out=_out(args), progress=progress)
    bar.close()
    print(report["table"])
    if report["slow_answers"]:
        print("\nanswers over 800 ms:")
        for a in report["slow_answers"]:
            score = "-" if a["eot_score"] is None else f"{a['eot_score']:.2f}"
            print(f"- minute {a['stream_min']}: {a['latency_ms']:.0f} ms, heard {a['heard']!r}, end-of-turn score {score}")
    return 0


def _cmd_bench_serve(args: argparse.Namespace) -> int:
    if args.soak is not None:
        return _cmd_bench_serve_soak(args)
    if args.via == "ray":
        return _cmd_bench_serve_ray(args)
    from duplex.bench.serve import run_serve_bench

    report = run_serve_bench(args.clients, turns=args.turns, config_name=args.config, overrides=args.overrides, out=_out(args))
    print(report["table"])
    _wrote(args.out)
    return 0


def _cmd_bench_serve_soak(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from duplex.bench.serve_soak import run_serve_soak

    out = Path(args.out.replace("serve.json", "serve_soak.json")) if args.out else None
    bar = tqdm(total=int(args.soak * 60), unit="s", desc="serve soak")

    def progress(elapsed_s: float) -> None:
        bar.update(min(int(elapsed_s), bar.total) - bar.n)

    report = run_serve_soak(args.soak, config_name=args.config, overrides=args.overrides, out=out, progress=progress)
    bar.close()
    print(report["table"])
    if report["client_failures"]:
        print("\nclient-side failures (first 20):")
        for f in report["client_failures"]:
            print(f"- {f}")
    _wrote(out)
    return 0


def _cmd_bench_serve_ray(args: argparse.Namespace) -> int:
    from duplex.bench.serve_ray import run_serve_bench_via_ray

    try:
        report = run_serve_bench_via_ray(
            args.clients, turns=args.turns, config_name=args.config, overrides=args.overrides,
            replicas=args.replicas, out=_out(args),
        )
    except ValueError as exc:
        raise DuplexError(str(exc)) from exc
    print(report["table"])
    _wrote(args.out)
    return 0


def _cmd_bench_model(args: argparse.Namespace) -> int:
    from duplex.bench.model import run_model_bench

    report = run_model_bench(
        sessions=args.sessions,
        ticks=args.ticks,
        checkpoint=args.checkpoint,
        device=args.device,
        estimate=not args.no_estimate,
        out=_out(args),
    )
    print(report["table"])
    if "estimate_text" in report:
        print("\n" + report["estimate_text"])
    _wrote(args.out)
    return 0
