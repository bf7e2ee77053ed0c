"""``duplex bench serve``: many WebSocket clients over loopback against one server.

Each client connects to ``/ws``, streams spoken questions in real time (32 ms
PCM16 chunks, paced by the wall clock) and measures, on its own side, the time
from the end of its question audio to the first agent audio frame that arrives
(client-observed latency), next to the server's stream-time ``latency_ms``. It
also counts the server's ``stall`` events (a session falling behind real time) and
times the opening of its session (connect to ``session.created``).

For each number of clients the server side is watched too: every session's tick
compute against its 32 ms budget (tick real-time factor: p50/p95, and the share of
ticks over budget) and the server process's peak memory (RSS and USS; the bench's
clients live in the same process but hold only their audio). Memory per session is
the peak USS over the server's USS with no client (after one warm-up answer), divided
by the clients.
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
from duplex.bench.memory import PeakMemory, PeriodicSampler, memory_now
from duplex.bench.speech import QUESTIONS, VOICES, speak
from duplex.config import load_config
from duplex.runtime.metrics import percentiles
from duplex.runtime.runtime import Runtime
from duplex.transports.server import BackgroundServer

ANSWER_WAIT_S = 20.0


async def _client(port: int, turns: list[np.ndarray], gap_s: float, offset_s: float) -> dict[str, Any]:
    await asyncio.sleep(offset_s)
    out: dict[str, Any] = {"client_ms": [], "server_ms": [], "stalls": 0, "lag_ms": 0.0, "answers": 0, "errors": []}
    opening = time.monotonic()
    # A session that loads its own models takes seconds to open on a busy machine.
    url = f"ws://127.0.0.1:{port}/ws?input_sample_rate=16000"
    async with websockets.connect(url, max_size=2**22, open_timeout=120) as ws:
        await ws.recv()  # session.created
        out["open_ms"] = 1000 * (time.monotonic() - opening)
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
                    out["lag_ms"] = max(out["lag_ms"], float(e.get("lag_ms", 0.0)))
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
        # The last answer may still be playing: listen on (silence, in real time) until it
        # is done, for at most ANSWER_WAIT_S, so an answer is not counted missing for that.
        silence = float_to_pcm16(np.zeros(chunk, np.float32))
        waited = time.monotonic() + ANSWER_WAIT_S
        while out["answers"] < len(turns) and time.monotonic() < waited:
            await ws.send(silence)
            sent += chunk
            await asyncio.sleep(max(0.0, t0 + sent / 16000 - time.monotonic()))
        await asyncio.sleep(1.0)
        rx.cancel()
    return out


class _TickWatch(PeriodicSampler):
    """Keeps the latest tick times of every session the runtime has open, read every
    ``interval_s`` (a session's own metrics go with it when it closes)."""

    def __init__(self, runtime: Runtime, interval_s: float = 0.5) -> None:
        super().__init__(interval_s, "bench-ticks")
        self._runtime = runtime
        self._ticks: dict[str, tuple[list[float], int, int, float]] = {}  # id: (ms, ticks, overruns, budget)

    def sample(self) -> None:
        for sid, s in list(self._runtime.sessions.items()):
            m = s.metrics
            self._ticks[sid] = (list(m.tick_ms.values), m.ticks, m.overruns, m.budget_ms)

    def summary(self) -> dict[str, Any]:
        """Tick real-time factor (compute / budget) over every session's ticks."""
        rtf = [ms / budget for values, _, _, budget in self._ticks.values() for ms in values]
        ticks = sum(t for _, t, _, _ in self._ticks.values())
        overruns = sum(o for _, _, o, _ in self._ticks.values())
        return {"tick_rtf": percentiles(rtf), "ticks": ticks, "overruns": overruns,
                "overrun_share": overruns / ticks if ticks else 0.0}


def run_serve_bench(
    clients: list[int], turns: int = 3, gap_s: float = 7.0, config_name: str | None = None,
    overrides: list[str] | None = None, out: Path | None = None,
) -> dict[str, Any]:
    """Measure per-client latency, tick real time and server memory for each number of
    concurrent clients."""
    config = load_config(config_name, overrides)
    runtime = Runtime(config, clock="realtime")
    server = BackgroundServer(runtime).start(60)
    speech = [speak(QUESTIONS[i % len(QUESTIONS)], VOICES[i % len(VOICES)]) for i in range(turns + max(clients))]
    # One unmeasured answer first: what every session shares grows on first use (the
    # llama.cpp and onnxruntime work buffers), and belongs to the server, not a session.
    asyncio.run(_client(server.port, speech[:1], gap_s, 0.0))
    idle = memory_now(collect=True)
    results: dict[str, Any] = {}
    try:
        for n in clients:

            async def main(n: int = n) -> list[dict[str, Any]]:
                jobs = [_client(server.port, speech[c : c + turns], gap_s, 0.37 * c) for c in range(n)]
                return list(await asyncio.gather(*jobs))

            with PeakMemory() as memory, _TickWatch(runtime) as ticks:
                per = asyncio.run(main())
            client_ms = [v for r in per for v in r["client_ms"]]
            server_ms = [v for r in per for v in r["server_ms"]]
            peak = memory.peak
            results[str(n)] = {
                "client_latency_ms": percentiles(client_ms),
                "server_latency_ms": percentiles(server_ms),
                "answers": sum(r["answers"] for r in per),
                "expected_answers": n * turns,
                "session_stalls": sum(r["stalls"] for r in per),
                "max_lag_ms": max(r["lag_ms"] for r in per),
                "session_open_ms": percentiles([r["open_ms"] for r in per]),
                "errors": [e for r in per for e in r["errors"]],
                **ticks.summary(),
                "server_memory_peak": peak.as_dict(),
                "uss_per_session_mb": round((peak.uss_mb - idle.uss_mb) / n, 1),
            }
    finally:
        server.stop()
        runtime.close()
    rows = [
        "| clients | answers | client latency p50 / p95 | server latency p50 / p95 | tick RTF p50 / p95 | ticks over budget | session stalls | real time | session open max | server RSS / USS peak | USS per session |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key, r in results.items():
        c, s, t, m = r["client_latency_ms"], r["server_latency_ms"], r["tick_rtf"], r["server_memory_peak"]
        held = r["session_stalls"] == 0 and r["answers"] >= r["expected_answers"]
        rows.append(
            f"| {key} | {r['answers']}/{r['expected_answers']} | {c['p50']:.0f} / {c['p95']:.0f} ms "
            f"| {s['p50']:.0f} / {s['p95']:.0f} ms | {t['p50']:.2f} / {t['p95']:.2f} | {100 * r['overrun_share']:.1f} % "
            f"| {r['session_stalls']} | {'yes' if held else 'no'} | {r['session_open_ms']['max']:.0f} ms "
            f"| {m['rss_mb']:.0f} / {m['uss_mb']:.0f} MB "
            f"| {r['uss_per_session_mb']:.0f} MB |"
        )
    rows.append(f"\nserver with no client (after a warm-up answer): RSS {idle.rss_mb:.0f} MB, USS {idle.uss_mb:.0f} MB")
    report = {"table": "\n".join(rows), "results": results, "config": config.name, "server_idle_memory": idle.as_dict()}
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({k: v for k, v in report.items() if k != "table"}, indent=2))
    return report
