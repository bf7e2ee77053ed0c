"""The ``duplex`` command line: run, models, bench (and more as transports land).

The CLI owns user-facing output (tables, progress bars). Errors the runtime
raises on purpose print one clear line and exit with status 2, no traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from duplex.bench.speech import USER_VOICES
from duplex.errors import ConfigError, DuplexError

if TYPE_CHECKING:
    from duplex.config import Config

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", "-c", default=None, help="profile path or name in configs/ (default: default)")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a profile value, e.g. --set models.llm.threads=1 (repeatable)",
    )


def _add_ray_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("Ray Serve (pip install 'duplex[ray]'; docs/deploy.md)")
    g.add_argument("--replicas", type=int, default=None, help="serve on Ray Serve with N replicas, one engine each")
    g.add_argument("--min-replicas", type=int, default=None, help="autoscaling: fewest replicas (default 1)")
    g.add_argument("--max-replicas", type=int, default=None, help="autoscaling: most replicas (scales on open sessions)")
    g.add_argument("--sessions-per-replica", type=int, default=None, help="engine.max_sessions of each replica (default: the profile's)")
    g.add_argument("--cpus-per-replica", type=float, default=None, help="CPUs each replica reserves (default 1)")
    g.add_argument("--gpus-per-replica", type=float, default=None, help="GPUs each replica reserves (codec LM: 1)")
    g.add_argument("--address", default=None, help="join this Ray cluster (e.g. 10.0.0.5:6379 or auto) instead of starting one")


def _cmd_run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from duplex.config import load_config
    from duplex.report.summary import format_summary
    from duplex.transports.files import run_file

    config = load_config(args.config, args.overrides)
    bar = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, unit="frame", desc="run", disable=total < 300 or args.quiet, leave=False)
        bar.update(done - bar.n)

    result = run_file(
        args.input, args.out, config, allow_resample=args.resample, plot=not args.no_plot, progress=progress
    )
    if bar is not None:
        bar.close()
    print(format_summary(result.summary))
    print(f"\nwrote {result.out_dir}/conversation.wav, events.jsonl, summary.json" + ("" if args.no_plot else ", timeline.png"))
    return 0


def _cmd_models(args: argparse.Namespace) -> int:
    from duplex.models.manifest import check_all, load_manifests

    manifests = load_manifests()
    results = check_all(manifests, verify_hash=not args.fast)
    width = max(len(m.name) for m in manifests)
    bad = 0
    for r in results:
        status = "ok" if r.ok else "MISSING" if r.missing else "BAD"
        print(f"{r.manifest.name.ljust(width)}  {r.manifest.stage:8}  {status:7}  {r.detail}")
        bad += not r.ok
    return 1 if bad else 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from duplex.bench.latency import run_latency_bench

    report = run_latency_bench(
        config_name=args.config,
        overrides=args.overrides,
        turns=args.turns,
        clocks=args.clock,
        out=Path(args.out) if args.out else None,
        user_voice=args.user_voice,
        user_waits=not args.fixed_timeline,
        audio_dir=Path(args.save_audio) if args.save_audio else None,
    )
    print(report["table"])
    if args.out:
        print(f"\nwrote {args.out}")
    return 0


def _serve_token(args: argparse.Namespace, config: Config) -> str:
    """The token clients must present (``--token-file`` or ``server.token_env``); "" for
    none, which only a loopback address may serve."""
    from duplex.transports.access import is_loopback

    token = Path(args.token_file).read_text().strip() if args.token_file else os.environ.get(config.server.token_env, "")
    if not token and not is_loopback(args.host):
        raise ConfigError(
            f"refusing to serve on {args.host} without a token: anyone who can reach it could "
            f"use the agent. Set one (--token-file PATH or the {config.server.token_env} "
            "environment variable), or listen on 127.0.0.1"
        )
    return token


def _cmd_serve(args: argparse.Namespace) -> int:
    if args.replicas is not None or args.max_replicas is not None:
        return _cmd_serve_ray(args)
    from duplex.config import load_config
    from duplex.runtime.runtime import Runtime
    from duplex.transports.server import run_server

    config = load_config(args.config, args.overrides)
    token = _serve_token(args, config)
    runtime = Runtime(config, clock="realtime")
    scheme = "https" if args.tls_cert else "http"
    print(
        f"duplex serving on {scheme}://{args.host}:{args.port}/  (native: /ws, OpenAI Realtime: /v1/realtime)"
        + ("; a token is required" if token else "; no token (loopback only)"),
        flush=True,
    )
    try:
        run_server(runtime, args.host, args.port, token=token, tls_cert=args.tls_cert, tls_key=args.tls_key)
    finally:
        runtime.close()
    print("duplex: stopped", flush=True)
    return 0


def _cmd_serve_ray(args: argparse.Namespace) -> int:
    try:
        from duplex.transports import ray_serve
    except ImportError as exc:
        raise DuplexError(f"--replicas needs Ray Serve ({exc}); install it with: pip install 'duplex[ray]'") from exc
    import signal
    import time

    try:
        options = ray_serve.options_from(
            replicas=args.replicas, min_replicas=args.min_replicas, max_replicas=args.max_replicas,
            cpus_per_replica=args.cpus_per_replica, gpus_per_replica=args.gpus_per_replica,
            host=args.host, port=args.port, address=args.address,
        )
    except ValueError as exc:
        raise DuplexError(str(exc)) from exc
    config = ray_serve.replica_config(args.config, args.overrides, args.sessions_per_replica)
    token = _serve_token(args, config)
    if args.tls_cert or args.tls_key:
        raise DuplexError("--replicas serves through Ray Serve's proxy, which terminates no TLS here: put TLS in front of it (docs/deploy.md)")
    ray_serve.start(config, options, token=token)
    scale = f"{options.min_replicas or 1}-{options.max_replicas}" if options.max_replicas else str(options.replicas)
    print(
        f"duplex on Ray Serve: {scale} replicas of {config.name}, {config.engine.max_sessions} sessions each, "
        f"on http://{args.host}:{args.port}/  (native: /ws, OpenAI Realtime: /v1/realtime)"
        + ("; a token is required" if token else "; no token (loopback only)") + "; Ctrl-C ends"
    )
    def _interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # SIGTERM (a service manager) ends the application as Ctrl-C does

    signal.signal(signal.SIGTERM, _interrupt)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        ray_serve.stop()
    return 0


def _cmd_talk(args: argparse.Namespace) -> int:
    from duplex.runtime.runtime import Runtime
    from duplex.transports.microphone import list_devices, talk

    if args.list_devices:
        print(list_devices())
        return 0
    runtime = Runtime.from_config(args.config, args.overrides, clock="realtime")
    print("duplex: talk now (Ctrl-C to end)")
    try:
        talk(
            runtime,
            input_device=_device(args.input_device),
            output_device=_device(args.output_device),
            duration_s=args.duration,
            save_dir=Path(args.save) if args.save else None,
        )
    finally:
        runtime.close()
    if args.save:
        print(f"\nsaved {args.save}/conversation.wav and events.jsonl")
    return 0


def _device(value: str | None) -> int | str | None:
    if value is None:
        return None
    return int(value) if value.isdigit() else value


def _cmd_bench_serve(args: argparse.Namespace) -> int:
    if args.soak is not None:
        return _cmd_bench_serve_soak(args)
    if args.via == "ray":
        return _cmd_bench_serve_ray(args)
    from duplex.bench.serve import run_serve_bench

    report = run_serve_bench(args.clients, turns=args.turns, config_name=args.config, overrides=args.overrides, out=Path(args.out) if args.out else None)
    print(report["table"])
    if args.out:
        print(f"\nwrote {args.out}")
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
    if out:
        print(f"\nwrote {out}")
    return 0


def _cmd_bench_serve_ray(args: argparse.Namespace) -> int:
    from duplex.bench.serve_ray import run_serve_bench_via_ray

    try:
        report = run_serve_bench_via_ray(
            args.clients, turns=args.turns, config_name=args.config, overrides=args.overrides,
            replicas=args.replicas, out=Path(args.out) if args.out else None,
        )
    except ValueError as exc:
        raise DuplexError(str(exc)) from exc
    print(report["table"])
    if args.out:
        print(f"\nwrote {args.out}")
    return 0


def _cmd_bench_soak(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from duplex.bench.soak import run_soak

    bar = tqdm(unit="tick", desc="soak")

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    report = run_soak(args.minutes, config_name=args.config, overrides=args.overrides, out=Path(args.out) if args.out else None, progress=progress)
    bar.close()
    print(report["table"])
    if report["slow_answers"]:
        print("\nanswers over 800 ms:")
        for a in report["slow_answers"]:
            score = "-" if a["eot_score"] is None else f"{a['eot_score']:.2f}"
            print(f"- minute {a['stream_min']}: {a['latency_ms']:.0f} ms, heard {a['heard']!r}, end-of-turn score {score}")
    return 0


def _cmd_bench_model(args: argparse.Namespace) -> int:
    from duplex.bench.model import run_model_bench

    report = run_model_bench(
        sessions=args.sessions,
        ticks=args.ticks,
        checkpoint=args.checkpoint,
        device=args.device,
        estimate=not args.no_estimate,
        out=Path(args.out) if args.out else None,
    )
    print(report["table"])
    if "estimate_text" in report:
        print("\n" + report["estimate_text"])
    if args.out:
        print(f"\nwrote {args.out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="duplex", description="Full-duplex speech dialogue runtime.")
    parser.add_argument("--verbose", "-v", action="store_true", help="log at INFO level")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="run a WAV file through the runtime (offline clock)")
    p.add_argument("input", help="mono WAV at the profile's input rate (16 kHz by default)")
    p.add_argument("--out", "-o", default="out/run", help="output folder")
    p.add_argument("--resample", action="store_true", help="accept other sample rates by resampling")
    p.add_argument("--no-plot", action="store_true", help="skip timeline.png")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    _add_config_args(p)
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("talk", help="talk through the microphone and speakers")
    p.add_argument("--list-devices", action="store_true", help="list audio devices and exit")
    p.add_argument("--input-device", default=None, help="input device index or name")
    p.add_argument("--output-device", default=None, help="output device index or name")
    p.add_argument("--save", default=None, metavar="DIR", help="save conversation.wav and events.jsonl here at the end")
    p.add_argument("--duration", type=float, default=None, help="end after this many seconds")
    _add_config_args(p)
    p.set_defaults(func=_cmd_talk)

    p = sub.add_parser("serve", help="WebSocket endpoint (native + OpenAI Realtime) and the web page")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument(
        "--token-file", default=None,
        help="a file holding the token clients must present (default: the DUPLEX_TOKEN "
        "environment variable; none: loopback only)",
    )
    p.add_argument("--tls-cert", default=None, help="PEM certificate chain: serve https/wss")
    p.add_argument("--tls-key", default=None, help="PEM private key of --tls-cert")
    _add_config_args(p)
    _add_ray_args(p)
    p.set_defaults(func=_cmd_serve)

    p = sub.add_parser("models", help="model weights: check that every manifest's file is installed")
    msub = p.add_subparsers(dest="models_command", required=True)
    c = msub.add_parser("check", help="verify each model file (presence, size, sha256)")
    c.add_argument("--fast", action="store_true", help="skip the sha256 check")
    c.set_defaults(func=_cmd_models)

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
    _add_config_args(b)
    b.set_defaults(func=_cmd_bench)

    b = bsub.add_parser("soak", help="a long conversation offline: memory and latency drift")
    b.add_argument("--minutes", type=float, default=60.0, help="minutes of stream time")
    b.add_argument("--out", default="out/bench/soak.json")
    _add_config_args(b)
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
    _add_config_args(b)
    b.set_defaults(func=_cmd_bench_serve)

    b = bsub.add_parser("model", help="codec LM tick time versus concurrent sessions (+ 7B estimate)")
    b.add_argument("--sessions", type=int, nargs="+", default=[1, 8, 32, 64, 128])
    b.add_argument("--ticks", type=int, default=30, help="measured ticks per batch size")
    b.add_argument("--checkpoint", default=None, help="checkpoint dir (default: tiny random model)")
    b.add_argument("--device", default="auto", help="auto, cpu or cuda")
    b.add_argument("--no-estimate", action="store_true", help="skip the Moshi 7B estimate")
    b.add_argument("--out", default="out/bench/model.json")
    b.set_defaults(func=_cmd_bench_model)

    from duplex.eval.cli import add_eval_parser

    add_eval_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args) or 0)
    except DuplexError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
