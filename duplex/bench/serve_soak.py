"""``duplex bench serve --soak MINUTES``: a server under misbehaving clients.

A real ``duplex serve`` process (scripted profile by default, a token required)
on loopback. One well-behaved client talks turn after turn the whole time: alone
first (the quiet baseline), then while misbehaving clients come and go in
bounded loops:

- ``bad``: wrong tokens, then a connection that sends malformed messages;
- ``abrupt``: starts an answer and drops the TCP connection without a close;
- ``slow``: starts an answer and stops reading (the server closes it);
- ``fast``: sends ten seconds of audio at once (dropped and reported);
- ``churn``: connects, says a few words, leaves.

``/healthz`` is probed from a process of its own.

Measured: the server's RSS, threads and open files every few seconds (flat after
warm-up is the goal), the well-behaved client's answer latency (end of its
speech → first agent audio, on its side) quiet and under load, and ``/healthz``
round trips (p99 under 50 ms is the goal).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import websockets

from duplex.audio.frame import float_to_pcm16
from duplex.runtime.metrics import percentiles

TOKEN = "soak-token"
RATE = 16000
CHUNK = 512
BAD_MESSAGES = ["{not json", "[1]", '{"type": 5}', '{"type": "text"}', '{"type": "session.update", "input_sample_rate": "x"}', "[" * 50_000 + "]" * 50_000, "null"]


def _probe_health(url: str, out_path: str, stop_at: float) -> None:
    """``/healthz`` round trips every 0.2 s until ``stop_at`` (monotonic), one
    "t_monotonic ms" line each (an error: ms -1). It runs in a process of its own, so
    the misbehaving clients' work in the bench process does not inflate the figures."""
    with open(out_path, "w") as out:
        while time.monotonic() < stop_at:
            t0 = time.perf_counter()
            try:
                urllib.request.urlopen(url, timeout=5).read()
                ms = 1000 * (time.perf_counter() - t0)
            except OSError:
                ms = -1.0
            out.write(f"{time.monotonic():.3f} {ms:.3f}\n")
            out.flush()
            time.sleep(0.2)


def _turn_audio(seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    tone = (0.2 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)
    return np.concatenate([np.zeros(int(0.3 * RATE), np.float32), tone])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Soak:
    def __init__(self, port: int) -> None:
        self.url = f"ws://127.0.0.1:{port}"
        self.health_url = f"http://127.0.0.1:{port}/healthz"
        self.phase = "quiet"
        self.latency: dict[str, list[float]] = {"quiet": [], "load": []}
        self.health_ms: dict[str, list[float]] = {"quiet": [], "load": []}
        self.counts: dict[str, int] = {"bad": 0, "abrupt": 0, "slow": 0, "fast": 0, "churn": 0, "refused": 0}
        self.failures: list[str] = []
        self.stop = asyncio.Event()

    async def talker(self, gap_s: float) -> None:
        """The well-behaved client: a turn, wait for the answer, a pause, again."""
        try:
            await self._talk(gap_s)
        except Exception as exc:
            self.failures.append(f"WELL-BEHAVED CLIENT: {type(exc).__name__}: {exc}"[:200])
            raise

    async def _talk(self, gap_s: float) -> None:
        async with websockets.connect(f"{self.url}/ws?token={TOKEN}") as ws:
            await ws.recv()
            turn = _turn_audio()
            state: dict[str, float | None] = {"speech_end": None}

            async def receive() -> None:
                async for msg in ws:
                    end = state["speech_end"]
                    if isinstance(msg, bytes) and end is not None:
                        self.latency[self.phase].append(1000 * (time.monotonic() - end))
                        state["speech_end"] = None

            rx = asyncio.create_task(receive())
            try:
                while not self.stop.is_set():
                    audio = np.concatenate([turn, np.zeros(int(gap_s * RATE), np.float32)])
                    t0, sent = time.monotonic(), 0
                    for i in range(0, len(audio), CHUNK):
                        await ws.send(float_to_pcm16(audio[i : i + CHUNK]))
                        sent += CHUNK
                        if sent >= len(turn) and i < len(turn):
                            state["speech_end"] = time.monotonic()
                        await asyncio.sleep(max(0.0, t0 + sent / RATE - time.monotonic()))
            finally:
                rx.cancel()

    async def _session(self, **kwargs: Any) -> Any:
        ws = await websockets.connect(f"{self.url}/ws?token={TOKEN}", **kwargs)
        await ws.recv()
        return ws

    async def bad(self) -> None:
        for token in ("wrong", ""):
            with contextlib.suppress(websockets.InvalidStatus):
                await websockets.connect(f"{self.url}/ws?token={token}")
            self.counts["refused"] += 1
        async with await self._session(max_size=None) as ws:
            for m in BAD_MESSAGES:
                await ws.send(m)
            await ws.send(b"\x01\x02\x03")
            await ws.send('{"type": "ping"}')
            async with asyncio.timeout(10):
                while not (isinstance(msg := await ws.recv(), str) and json.loads(msg)["type"] == "pong"):
                    pass

    async def abrupt(self) -> None:
        ws = await self._session()
        await ws.send(json.dumps({"type": "text", "text": "Tell me a story."}))
        await asyncio.sleep(random.uniform(0.1, 1.5))
        ws.transport.abort()

    async def slow(self) -> None:
        ws = await self._session(max_queue=1)
        await ws.send(json.dumps({"type": "text", "text": "Say something long."}))
        ws.transport.pause_reading()
        await asyncio.sleep(8.0)
        ws.transport.abort()

    async def fast(self) -> None:
        async with await self._session() as ws:
            pcm = float_to_pcm16(np.zeros(RATE // 10, np.float32))
            for _ in range(100):  # 10 s of audio at once
                await ws.send(pcm)
            await asyncio.sleep(1.2)
            await ws.send(pcm)

    async def churn(self) -> None:
        async with await self._session() as ws:
            audio = _turn_audio(0.5)
            for i in range(0, len(audio), CHUNK):
                await ws.send(float_to_pcm16(audio[i : i + CHUNK]))
                await asyncio.sleep(CHUNK / RATE)

    async def misbehave(self, kind: str, action: Callable[[], Any], pause_s: float) -> None:
        while not self.stop.is_set():
            try:
                await action()
                self.counts[kind] += 1
            except Exception as exc:  # a refusal or close is data, not the end of the soak
                self.failures.append(f"{kind}: {type(exc).__name__}: {exc}"[:200])
            await asyncio.sleep(pause_s)


def run_serve_soak(
    minutes: float,
    config_name: str | None = None,
    overrides: list[str] | None = None,
    quiet_s: float | None = None,
    out: Path | None = None,
    progress: Callable[[float], None] | None = None,
) -> dict[str, Any]:
    """Run the soak; returns figures and a Markdown table."""
    port = _free_port()
    quiet = quiet_s if quiet_s is not None else min(60.0, 12.0 * minutes)
    env = {**os.environ, "DUPLEX_TOKEN": TOKEN}
    cmd = [sys.executable, "-m", "duplex", "serve", "--config", config_name or "scripted", "--port", str(port)]
    for item in [*(overrides or []), "server.max_connects_per_minute_per_ip=100000", "server.max_connections_per_ip=64"]:
        cmd += ["--set", item]
    server = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    samples: list[dict[str, float]] = []
    try:
        proc = psutil.Process(server.pid)
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).read()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"duplex serve did not start: {server.stderr.read() if server.stderr else ''}") from None
                time.sleep(0.2)
        soak = _Soak(port)

        async def sample(t_start: float) -> None:
            while not soak.stop.is_set():
                samples.append({"t_s": time.monotonic() - t_start, "rss_mb": proc.memory_info().rss / 1e6, "threads": proc.num_threads(), "fds": proc.num_fds(), "phase": 0 if soak.phase == "quiet" else 1})
                if progress is not None:
                    progress(time.monotonic() - t_start)
                await asyncio.sleep(5.0)

        health_file = tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False)  # noqa: SIM115
        health_file.close()
        load_from = [0.0]

        async def main() -> None:
            t_start = time.monotonic()
            prober = multiprocessing.get_context("spawn").Process(
                target=_probe_health, args=(soak.health_url, health_file.name, t_start + minutes * 60), daemon=True
            )
            prober.start()
            tasks = [asyncio.create_task(soak.talker(gap_s=4.0)), asyncio.create_task(sample(t_start))]
            await asyncio.sleep(quiet)
            soak.phase = "load"
            load_from[0] = time.monotonic()
            tasks += [
                asyncio.create_task(soak.misbehave("bad", soak.bad, 1.0)),
                asyncio.create_task(soak.misbehave("abrupt", soak.abrupt, 0.5)),
                asyncio.create_task(soak.misbehave("slow", soak.slow, 1.0)),
                asyncio.create_task(soak.misbehave("fast", soak.fast, 1.0)),
                asyncio.create_task(soak.misbehave("churn", soak.churn, 0.3)),
            ]
            await asyncio.sleep(max(0.0, minutes * 60 - quiet))
            soak.stop.set()
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await asyncio.to_thread(prober.join, 10)

        asyncio.run(main())
        for line in Path(health_file.name).read_text().splitlines():
            t, ms = (float(v) for v in line.split())
            if ms < 0:
                soak.failures.append("healthz: no answer")
            else:
                soak.health_ms["quiet" if t < load_from[0] else "load"].append(ms)
        os.unlink(health_file.name)
        server.terminate()
        exit_code = server.wait(60)
    finally:
        if server.poll() is None:
            server.kill()
    report = _report(minutes, quiet, samples, soak, exit_code)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({k: v for k, v in report.items() if k != "table"}, indent=2))
    return report


def _report(minutes: float, quiet: float, samples: list[dict[str, float]], soak: _Soak, exit_code: int) -> dict[str, Any]:
    load = [s for s in samples if s["phase"] == 1]
    warm = [s for s in load if s["t_s"] >= quiet + 60] or load  # after a minute of load
    first, last = (warm[0], warm[-1]) if warm else ({}, {})

    def span(key: str) -> dict[str, float]:
        values = [s[key] for s in warm]
        # Least-squares trend over the warm part, per minute: ~0 when flat.
        slope = float(np.polyfit([s["t_s"] / 60 for s in warm], values, 1)[0]) if len(warm) > 2 else 0.0
        return {"after_warmup": first.get(key, 0.0), "end": last.get(key, 0.0), "min": min(values, default=0.0), "max": max(values, default=0.0), "trend_per_min": slope}

    health = percentiles(soak.health_ms["quiet"] + soak.health_ms["load"])
    health_quiet, health_load = percentiles(soak.health_ms["quiet"]), percentiles(soak.health_ms["load"])
    result: dict[str, Any] = {
        "minutes": minutes,
        "quiet_s": quiet,
        "server": {"rss_mb": span("rss_mb"), "threads": span("threads"), "fds": span("fds")},
        "latency_ms": {"quiet": percentiles(soak.latency["quiet"]), "load": percentiles(soak.latency["load"])},
        "answers": {k: len(v) for k, v in soak.latency.items()},
        "healthz_ms": health,
        "healthz_ms_quiet": health_quiet,
        "healthz_ms_load": health_load,
        "misbehaviours": soak.counts,
        "client_failures": soak.failures[:20],
        "client_failure_count": len(soak.failures),
        "server_exit_code": exit_code,
        "samples": samples,
    }
    s, q, ld = result["server"], result["latency_ms"]["quiet"], result["latency_ms"]["load"]
    rows = [
        "| measure | value |",
        "|---|---|",
        f"| server RSS after warm-up → end (min–max; trend) | {s['rss_mb']['after_warmup']:.0f} → {s['rss_mb']['end']:.0f} MB ({s['rss_mb']['min']:.0f}–{s['rss_mb']['max']:.0f}; {s['rss_mb']['trend_per_min']:+.2f} MB/min) |",
        f"| server threads after warm-up → end (min–max) | {s['threads']['after_warmup']:.0f} → {s['threads']['end']:.0f} ({s['threads']['min']:.0f}–{s['threads']['max']:.0f}) |",
        f"| server open files after warm-up → end (min–max) | {s['fds']['after_warmup']:.0f} → {s['fds']['end']:.0f} ({s['fds']['min']:.0f}–{s['fds']['max']:.0f}) |",
        f"| well-behaved answers, quiet / under load | {result['answers']['quiet']} / {result['answers']['load']} |",
        f"| answer latency p50 / p95, quiet | {q['p50']:.0f} / {q['p95']:.0f} ms |",
        f"| answer latency p50 / p95, under load | {ld['p50']:.0f} / {ld['p95']:.0f} ms |",
        f"| /healthz p50 / p99 / max, quiet ({len(soak.health_ms['quiet'])} probes) | {health_quiet['p50']:.1f} / {health_quiet['p99']:.1f} / {health_quiet['max']:.1f} ms |",
        f"| /healthz p50 / p99 / max, under load ({len(soak.health_ms['load'])} probes) | {health_load['p50']:.1f} / {health_load['p99']:.1f} / {health_load['max']:.1f} ms |",
        f"| misbehaving clients run | {', '.join(f'{k} {v}' for k, v in soak.counts.items())} |",
        f"| client-side failures | {len(soak.failures)} |",
        f"| server exit code after SIGTERM | {exit_code} |",
    ]
    result["table"] = "\n".join(rows)
    return result
