"""``duplex bench serve``: many WebSocket clients over loopback against one server.

Each client connects to ``/ws``, streams spoken questions in real time (32 ms
PCM16 chunks, paced by the wall clock) and measures, on its own side, the time
from the end of its question audio to the first agent audio frame that arrives
(client-observed latency), next to the server's stream-time ``latency_ms``. It
also counts the server's ``stall`` events (a session falling behind real time).
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import websockets

from duplex.audio.frame import float_to_pcm16
from duplex.bench.speech import QUESTIONS, VOICES, speak
from duplex.config import load_config
from duplex.runtime.metrics import percentiles
from duplex.runtime.runtime import Runtime
from duplex.transports.server import BackgroundServer


async def _client(port: int, turns: list[np.ndarray], gap_s: float, offset_s: float) -> dict[str, Any]:
    await asyncio.sleep(offset_s)
    out: dict[str, Any] = {"client_ms": [], "server_ms": [], "stalls": 0, "answers": 0, "errors": []}
    async with websockets.connect(f"ws://127.0.0.1:{port}/ws?input_sample_rate=16000", max_size=2**22) as ws:
        await ws.recv()  # session.created
        speech_end: list[float] = []
        waiting = {"on": False}

        async def receive() -> None:
            async for msg in ws:
                if isinstance(msg, bytes):
                    if waiting["on"] and speech_end:
                        out["client_ms"].append(1000 * (time.monotonic() - speech_end[-1]))
                        waiting["on"] = False
                    continue
                e = json.loads(msg)
                if e["type"] == "agent.audio.started":
                    out["server_ms"].append(e["latency_ms"])
                elif e["type"] == "agent.audio.done":
                    out["answers"] += 1
                elif e["type"] == "stall" and e.get("stage") == "session":
                    out["stalls"] += 1
                elif e["type"] == "error":
                    out["errors"].append(e["message"])

        rx = asyncio.create_task(receive())
        chunk = 512
        t0 = time.monotonic()
        sent = 0
        for q in turns:
            audio = np.concatenate([q, np.zeros(int(gap_s * 16000), np.float32)])
            for i in range(0, len(audio), chunk):
                await ws.send(float_to_pcm16(audio[i : i + chunk]))
                sent += chunk
                if i + chunk >= len(q) and not waiting["on"] and i < len(q):
                    speech_end.append(time.monotonic())
                    waiting["on"] = True
                await asyncio.sleep(max(0.0, t0 + sent / 16000 - time.monotonic()))
        await asyncio.sleep(1.0)
        rx.cancel()
    return out


def run_serve_bench(
    clients: list[int], turns: int = 3, gap_s: float = 7.0, config_name: str | None = None,
    overrides: list[str] | None = None, out: Path | None = None,
) -> dict[str, Any]:
    """Measure per-client latency for each number of concurrent clients."""
    config = load_config(config_name, overrides)
    runtime = Runtime(config, clock="realtime")
    server = BackgroundServer(runtime).start(60)
    speech = [speak(QUESTIONS[i % len(QUESTIONS)], VOICES[i % len(VOICES)]) for i in range(turns + max(clients))]
    results: dict[str, Any] = {}
    try:
        for n in clients:

            async def main(n: int = n) -> list[dict[str, Any]]:
                jobs = [_client(server.port, speech[c : c + turns], gap_s, 0.37 * c) for c in range(n)]
                return list(await asyncio.gather(*jobs))

            per = asyncio.run(main())
            client_ms = [v for r in per for v in r["client_ms"]]
            server_ms = [v for r in per for v in r["server_ms"]]
            results[str(n)] = {
                "client_latency_ms": percentiles(client_ms),
                "server_latency_ms": percentiles(server_ms),
                "answers": sum(r["answers"] for r in per),
                "expected_answers": n * turns,
                "session_stalls": sum(r["stalls"] for r in per),
                "errors": [e for r in per for e in r["errors"]],
            }
    finally:
        server.stop()
        runtime.close()
    rows = ["| clients | answers | client latency p50 / p95 | server latency p50 / p95 | session stalls | real time |", "|---|---|---|---|---|---|"]
    for key, r in results.items():
        c, s = r["client_latency_ms"], r["server_latency_ms"]
        held = r["session_stalls"] == 0 and r["answers"] >= r["expected_answers"]
        rows.append(f"| {key} | {r['answers']}/{r['expected_answers']} | {c['p50']:.0f} / {c['p95']:.0f} ms | {s['p50']:.0f} / {s['p95']:.0f} ms | {r['session_stalls']} | {'yes' if held else 'no'} |")
    report = {"table": "\n".join(rows), "results": results, "config": config.name}
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({k: v for k, v in report.items() if k != "table"}, indent=2))
    return report
