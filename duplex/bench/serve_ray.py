"""``duplex bench serve --via ray``: the same clients direct and through Ray Serve.

For each number of concurrent clients it runs ``duplex bench serve``'s client
(spoken questions in real time over ``/ws``) twice: against a plain
``DuplexServer`` in this process, then against a Ray Serve application of
``replicas`` replicas on this machine. What Ray adds is read from both runs:

- per answer: the client-observed latency (end of question audio → first agent
  audio), p50 / p99;
- per message: one more connection on the same path sends a ``ping`` every
  200 ms while the clients talk and times its ``pong`` (client → proxy → replica
  and back, the path every audio frame takes one way);
- memory: the resident set of each replica process, of Serve's proxy and
  controller, against this process with its direct server.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import websockets

from duplex.bench.serve import _client
from duplex.bench.speech import QUESTIONS, VOICES, speak
from duplex.config import Config, load_config
from duplex.runtime.metrics import percentiles
from duplex.runtime.runtime import Runtime
from duplex.transports.server import BackgroundServer

log = logging.getLogger(__name__)

PING_EVERY_S = 0.2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _pinger(port: int, stop: asyncio.Event) -> list[float]:
    """Round trips of ``ping`` → ``pong`` on one more connection, until ``stop``."""
    rtts: list[float] = []
    async with websockets.connect(f"ws://127.0.0.1:{port}/ws", max_size=2**22, open_timeout=60) as ws:
        await ws.recv()  # session.created
        while not stop.is_set():
            t0 = time.perf_counter()
            await ws.send(json.dumps({"type": "ping"}))
            while True:
                msg = await ws.recv()
                if isinstance(msg, str) and json.loads(msg)["type"] == "pong":
                    break
            rtts.append(1000 * (time.perf_counter() - t0))
            await asyncio.sleep(PING_EVERY_S)
    return rtts


def _run_clients(port: int, n: int, speech: list[np.ndarray], turns: int, gap_s: float) -> dict[str, Any]:
    async def main() -> tuple[list[dict[str, Any]], list[float]]:
        stop = asyncio.Event()
        pinger = asyncio.create_task(_pinger(port, stop))
        per = list(await asyncio.gather(*[_client(port, speech[c : c + turns], gap_s, 0.37 * c) for c in range(n)]))
        stop.set()
        return per, await pinger

    per, rtts = asyncio.run(main())
    return {
        "client_latency_ms": percentiles([v for r in per for v in r["client_ms"]]),
        "server_latency_ms": percentiles([v for r in per for v in r["server_ms"]]),
        "ping_rtt_ms": percentiles(rtts),
        "answers": sum(r["answers"] for r in per),
        "expected_answers": n * turns,
        "session_stalls": sum(r["stalls"] for r in per),
        "errors": [e for r in per for e in r["errors"]],
    }


def _rss_mb(pattern: str) -> list[float]:
    """Resident memory (MB) of every process whose title contains ``pattern``."""
    out = []
    for p in psutil.process_iter(["cmdline", "memory_info"]):
        title = " ".join(p.info["cmdline"] or [])
        if pattern in title and p.info["memory_info"] is not None:
            out.append(p.info["memory_info"].rss / 2**20)
    return out


def _direct(config: Config, clients: list[int], speech: list[np.ndarray], turns: int, gap_s: float) -> dict[str, Any]:
    runtime = Runtime(config, clock="realtime")
    server = BackgroundServer(runtime).start(60)
    try:
        results = {str(n): _run_clients(server.port, n, speech, turns, gap_s) for n in clients}
        results["rss_mb"] = psutil.Process().memory_info().rss / 2**20
    finally:
        server.stop()
        runtime.close()
    return results


def _via_ray(config: Config, clients: list[int], speech: list[np.ndarray], turns: int, gap_s: float, replicas: int) -> dict[str, Any]:
    import ray

    from duplex.transports import ray_serve

    port = _free_port()
    t0 = time.monotonic()
    ray_serve.start(config, ray_serve.RayServeOptions(replicas=replicas, cpus_per_replica=0.5, port=port), wait_s=300)
    results: dict[str, Any] = {"startup_s": time.monotonic() - t0}
    try:
        for n in clients:
            results[str(n)] = _run_clients(port, n, speech, turns, gap_s)
        results["replica_rss_mb"] = _rss_mb("ServeReplica:duplex")
        results["proxy_rss_mb"] = _rss_mb("ProxyActor")
        results["controller_rss_mb"] = _rss_mb("ServeController")
    finally:
        ray_serve.stop()
        ray.shutdown()
    return results


def run_serve_bench_via_ray(
    clients: list[int], turns: int = 3, gap_s: float = 7.0, config_name: str | None = None,
    overrides: list[str] | None = None, replicas: int = 2, out: Path | None = None,
) -> dict[str, Any]:
    """Per-client latency and per-message round trip, direct and through Ray Serve."""
    config = load_config(config_name, overrides)
    if config.engine.max_sessions * replicas < max(clients) + 1:
        raise ValueError(
            f"{replicas} replicas of {config.engine.max_sessions} sessions cannot hold {max(clients)} clients "
            "and the ping connection; raise --replicas or engine.max_sessions"
        )
    speech = [speak(QUESTIONS[i % len(QUESTIONS)], VOICES[i % len(VOICES)]) for i in range(turns + max(clients))]
    direct = _direct(config, clients, speech, turns, gap_s)
    via = _via_ray(config, clients, speech, turns, gap_s, replicas)
    rows = [
        "| clients | answers direct / ray | answer latency p50 / p99 direct | ray | message RTT p50 / p99 direct | ray | stalls direct / ray |",
        "|---|---|---|---|---|---|---|",
    ]
    for n in map(str, clients):
        d, r = direct[n], via[n]
        rows.append(
            f"| {n} | {d['answers']}/{d['expected_answers']} / {r['answers']}/{r['expected_answers']} "
            f"| {d['client_latency_ms']['p50']:.0f} / {d['client_latency_ms']['p99']:.0f} ms "
            f"| {r['client_latency_ms']['p50']:.0f} / {r['client_latency_ms']['p99']:.0f} ms "
            f"| {d['ping_rtt_ms']['p50']:.1f} / {d['ping_rtt_ms']['p99']:.1f} ms "
            f"| {r['ping_rtt_ms']['p50']:.1f} / {r['ping_rtt_ms']['p99']:.1f} ms "
            f"| {d['session_stalls']} / {r['session_stalls']} |"
        )
    memory = (
        f"memory: direct process {direct['rss_mb']:.0f} MB; per replica "
        + ", ".join(f"{v:.0f}" for v in via["replica_rss_mb"])
        + f" MB; Serve proxy {sum(via['proxy_rss_mb']):.0f} MB, controller {sum(via['controller_rss_mb']):.0f} MB"
        + f"; Ray start {via['startup_s']:.0f} s"
    )
    report = {"table": "\n".join(rows) + "\n\n" + memory, "direct": direct, "ray": via, "replicas": replicas, "config": config.name}
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({k: v for k, v in report.items() if k != "table"}, indent=2))
    return report
