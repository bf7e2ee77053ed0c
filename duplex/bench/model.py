"""``duplex bench model``: codec LM tick time versus concurrent sessions, and a 7B estimate.

Measures one batched tick (Mimi encode + LM step + Mimi decode for every slot,
``CodecCore.step``) for batches of 1, 8, 32, 64 and 128 sessions on a tiny
random-weight Moshi (``write_tiny_checkpoint``) or any checkpoint directory,
on whatever device is present. A tick is real time when its p99 fits the 80 ms
frame.

For the real Moshi 7B, which no CPU runs in real time, it prints an estimate per
session on an H100 from the architecture itself (parameter counts from the
model built on the meta device; Mimi FLOPs counted on one real step): weights,
KV cache per session at the LM's full context, FLOPs per 80 ms step, and what
bounds the number of sessions (memory or bandwidth).
"""

from __future__ import annotations

import json
import logging
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from duplex.runtime.metrics import percentiles

log = logging.getLogger(__name__)

SESSIONS = [1, 8, 32, 64, 128]
FRAME_MS = 80.0

# H100 SXM 80 GB, dense bf16 without sparsity, HBM3 bandwidth (vendor figures).
H100 = {"name": "H100 SXM 80GB", "memory_gb": 80.0, "bf16_tflops": 989.0, "hbm_tb_s": 3.35}


def _tick_times(bundle: Any, sessions: int, ticks: int, warmup: int, settings: Any) -> list[float]:
    from duplex.models.codec_lm.core import CodecCore

    core = CodecCore(bundle, sessions, settings)
    rng = np.random.default_rng(sessions)
    frames = (0.05 * rng.standard_normal((sessions, core.in_frame_samples))).astype(np.float32)
    times = []
    try:
        for i in range(warmup + ticks):
            t0 = time.perf_counter()
            core.step({s: frames[s] for s in range(sessions)})
            if i >= warmup:
                times.append(1000.0 * (time.perf_counter() - t0))
    finally:
        core.close()
    return times


def estimate_7b(device_spec: dict[str, Any] = H100) -> dict[str, Any]:
    """Per-session memory and compute of Moshi 7B (bf16) on ``device_spec``, from the architecture."""
    import torch

    from duplex.models.codec_lm.checkpoint import import_moshi

    import_moshi("cpu")
    from moshi.models import LMModel, loaders

    kw: dict[str, Any] = dict(loaders._lm_kwargs)
    with torch.device("meta"):
        lm = LMModel(device="meta", dtype=torch.bfloat16, **kw)
    n = {name: sum(p.numel() for p in mod.parameters()) for name, mod in lm.named_children()}
    total = sum(p.numel() for p in lm.parameters())
    embeddings = n.get("emb", 0) + n.get("text_emb", 0) + n.get("depformer_emb", 0) + n.get("depformer_text_emb", 0)
    matmul_params = total - embeddings  # every other weight is used once per step (depformer: one set per codebook)
    dim, layers, context = kw["dim"], kw["num_layers"], kw["context"]
    dep_dim, dep_layers, dep_q, dep_ctx = kw["depformer_dim"], kw["depformer_num_layers"], kw["dep_q"], kw["depformer_context"]
    bytes_per = 2  # bf16
    kv_main = 2 * layers * context * dim * bytes_per
    kv_dep = 2 * dep_layers * dep_ctx * dep_dim * bytes_per
    attn_flops = 4 * layers * dim * context + dep_q * 4 * dep_layers * dep_dim * dep_ctx  # QK^T and AV, full ring
    lm_flops = 2 * matmul_params + attn_flops
    mimi = _mimi_costs()
    weights_bytes = total * bytes_per + mimi["params"] * 4
    per_session_bytes = kv_main + kv_dep + mimi["state_bytes"]
    step_flops = lm_flops + mimi["flops_per_frame"]
    free = device_spec["memory_gb"] * 1e9 * 0.92 - weights_bytes  # ~8% for CUDA context, workspaces, graphs
    max_by_memory = int(free // per_session_bytes)
    weights_read_ms = 1000 * weights_bytes / (device_spec["hbm_tb_s"] * 1e12)
    kv_read_ms = 1000 * (kv_main + kv_dep) / (device_spec["hbm_tb_s"] * 1e12)
    compute_ms = 1000 * step_flops / (device_spec["bf16_tflops"] * 1e12)
    max_by_bandwidth = int((FRAME_MS * 0.5 - weights_read_ms) // (kv_read_ms + compute_ms))  # half the frame: margin
    return {
        "device": device_spec,
        "context_steps": context,
        "context_s": context / 12.5,
        "lm_params": total,
        "mimi_params": mimi["params"],
        "weights_gb": weights_bytes / 1e9,
        "kv_cache_per_session_gb": (kv_main + kv_dep) / 1e9,
        "state_per_session_gb": per_session_bytes / 1e9,
        "lm_gflops_per_step": lm_flops / 1e9,
        "mimi_gflops_per_step": mimi["flops_per_frame"] / 1e9,
        "tflops_per_session": step_flops * 12.5 / 1e12,
        "weights_read_ms_per_tick": weights_read_ms,
        "kv_read_ms_per_session_per_tick": kv_read_ms,
        "max_sessions_by_memory": max_by_memory,
        "max_sessions_by_bandwidth": max_by_bandwidth,
    }


def _mimi_costs() -> dict[str, float]:
    """Mimi's parameters, FLOPs of one streaming encode + decode, and per-session state."""
    import torch
    from moshi.models import loaders
    from torch.utils.flop_counter import FlopCounterMode

    mimi = loaders.get_mimi(None, device="cpu", num_codebooks=8)
    params = sum(p.numel() for p in mimi.parameters())
    with torch.no_grad(), mimi.streaming(1):
        x = torch.zeros(1, 1, mimi.frame_size)
        mimi.encode(x)  # first step: warm the state
        with FlopCounterMode(display=False) as counter:
            codes = mimi.encode(x)
            mimi.decode(codes)
        flops = counter.get_total_flops()
        state_bytes = 0
        for st in mimi.get_streaming_state().values():
            for v in vars(st).values():
                if isinstance(v, torch.Tensor):
                    state_bytes += v.numel() * v.element_size()
                kv = getattr(v, "cache", None)
                if isinstance(kv, torch.Tensor):
                    state_bytes += kv.numel() * kv.element_size()
    return {"params": params, "flops_per_frame": float(flops), "state_bytes": float(state_bytes)}


def _table(rows: list[dict[str, Any]]) -> str:
    out = ["| sessions | tick p50 (ms) | tick p99 (ms) | per session p50 (ms) | real time (p99 < 80 ms) |", "|---|---|---|---|---|"]
    for r in rows:
        out.append(
            f"| {r['sessions']} | {r['p50']:.1f} | {r['p99']:.1f} | {r['p50'] / r['sessions']:.2f} | {'yes' if r['p99'] < FRAME_MS else 'no'} |"
        )
    return "\n".join(out)


def _estimate_text(e: dict[str, Any]) -> str:
    return "\n".join(
        [
            f"Moshi 7B on {e['device']['name']} (bf16, estimate from the architecture; context {e['context_steps']} steps = {e['context_s']:.0f} s):",
            f"- weights: {e['lm_params'] / 1e9:.2f} B LM parameters + {e['mimi_params'] / 1e6:.0f} M Mimi = {e['weights_gb']:.1f} GB",
            f"- per session: KV cache {e['kv_cache_per_session_gb']:.2f} GB at full context (state incl. Mimi {e['state_per_session_gb']:.2f} GB)",
            f"- per session per 80 ms step: {e['lm_gflops_per_step']:.1f} GFLOP LM + {e['mimi_gflops_per_step']:.1f} GFLOP Mimi"
            f" = {e['tflops_per_session']:.2f} TFLOP/s sustained",
            f"- per tick: weights read {e['weights_read_ms_per_tick']:.1f} ms, + {e['kv_read_ms_per_session_per_tick']:.2f} ms KV read per session",
            f"- sessions per GPU: {e['max_sessions_by_memory']} by memory, {e['max_sessions_by_bandwidth']} by bandwidth (half-frame budget)",
        ]
    )


def run_model_bench(
    sessions: list[int] | None = None,
    ticks: int = 20,
    warmup: int = 3,
    checkpoint: str | Path | None = None,
    device: str = "auto",
    estimate: bool = True,
    out: Path | None = None,
) -> dict[str, Any]:
    """Tick time p50/p99 of the batched codec LM step versus concurrent sessions.

    Args:
        sessions: batch sizes to measure (default 1, 8, 32, 64, 128).
        ticks: measured ticks per batch size (after ``warmup`` ticks).
        checkpoint: a checkpoint directory; None writes and uses the tiny random model.
        device: ``auto``, ``cpu`` or ``cuda``.
        estimate: add the Moshi 7B per-session estimate for an H100.
        out: write the JSON results here.

    Returns:
        {"table": markdown, "rows": [...], "estimate_7b": {...}, "estimate_text": str, ...}
    """
    import torch

    from duplex.config import CodecLmConfig
    from duplex.models.codec_lm.checkpoint import (
        load_checkpoint,
        resolve_device,
        write_tiny_checkpoint,
    )

    dev = resolve_device(device)
    if dev == "cpu":
        torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(checkpoint) if checkpoint else write_tiny_checkpoint(Path(tmp) / "tiny")
        bundle = load_checkpoint(path, dev)
        settings = CodecLmConfig(device=dev)
        rows = []
        for n in sessions or SESSIONS:
            times = _tick_times(bundle, n, ticks, warmup, settings)
            p = percentiles(times)
            rows.append({"sessions": n, "p50": p["p50"], "p99": p["p99"], "ticks": ticks, "real_time": p["p99"] < FRAME_MS})
            log.info("%d sessions: p50 %.1f ms p99 %.1f ms", n, p["p50"], p["p99"])
    report: dict[str, Any] = {
        "model": "tiny random-weight Moshi layout" if checkpoint is None else str(checkpoint),
        "device": dev if dev != "cpu" else f"cpu ({platform.processor() or platform.machine()}, torch threads 1)",
        "frame_ms": FRAME_MS,
        "rows": rows,
        "table": _table(rows),
    }
    if estimate:
        report["estimate_7b"] = estimate_7b()
        report["estimate_text"] = _estimate_text(report["estimate_7b"])
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({k: v for k, v in report.items() if k != "table"}, indent=2))
    return report
