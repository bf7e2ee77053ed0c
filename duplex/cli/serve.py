"""``duplex serve``: the WebSocket endpoint and web page, in this process or on Ray
Serve replicas."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING

from duplex.cli.common import add_config_args
from duplex.errors import ConfigError, DuplexError

if TYPE_CHECKING:
    from duplex.config import Config


def add_serve_parser(sub: argparse._SubParsersAction) -> None:
    """The ``serve`` command."""
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
    add_config_args(p)
    _add_ray_args(p)
    p.set_defaults(func=_cmd_serve)


def _add_ray_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("Ray Serve (pip install 'duplex[ray]'; docs/deploy.md)")
    g.add_argument("--replicas", type=int, default=None, help="serve on Ray Serve with N replicas, one engine each")
    g.add_argument("--min-replicas", type=int, default=None, help="autoscaling: fewest replicas (default 1)")
    g.add_argument("--max-replicas", type=int, default=None, help="autoscaling: most replicas (scales on open sessions)")
    g.add_argument("--sessions-per-replica", type=int, default=None, help="engine.max_sessions of each replica (default: the profile's)")
    g.add_argument("--cpus-per-replica", type=float, default=None, help="CPUs each replica reserves (default 1)")
    g.add_argument("--gpus-per-replica", type=float, default=None, help="GPUs each replica reserves (codec LM: 1)")
    g.add_argument("--address", default=None, help="join this Ray cluster (e.g. 10.0.0.5:6379 or auto) instead of starting one")


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
