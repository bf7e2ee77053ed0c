"""Per-slot sampling settings for ``moshi.models.lm.LMGen``.

``LMGen`` takes one temperature and one top-k for the whole batch. Here each
slot gets its own: ``LMGen.temp``/``temp_text`` become ``SlotSampling`` values
holding a [slots] tensor of temperatures and of top-k, and ``install()``
wraps ``moshi.models.lm.sample_token`` so that it understands them (scalar
settings go through moshi's own function unchanged). The per-slot path has no
host synchronisation and fixed shapes, so it stays valid inside a CUDA graph;
a temperature of 0 is greedy (argmax), bit for bit moshi's greedy path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

_installed = False


@dataclass
class SlotSampling:
    """Sampling settings of every slot for one stream (audio or text).

    Attributes:
        temperature: [slots] float tensor; 0 = greedy.
        top_k: [slots] long tensor; 0 = no top-k (up to ``k_max``).
        k_max: the largest top-k any slot may use (a fixed shape).
    """

    temperature: torch.Tensor
    top_k: torch.Tensor
    k_max: int

    def set(self, slot: int, temperature: float, top_k: int) -> None:
        self.temperature[slot] = float(temperature)
        self.top_k[slot] = int(top_k) if 0 < top_k <= self.k_max else self.k_max


def sample_per_slot(logits: torch.Tensor, settings: SlotSampling) -> torch.Tensor:
    """Sample one token per row of ``logits`` [B, ..., card] with per-row settings → [B, ...]."""
    shape = (logits.shape[0],) + (1,) * (logits.dim() - 1)
    greedy = logits.argmax(dim=-1)
    temp = settings.temperature.view(shape).to(logits.dtype)
    probs = torch.softmax(logits / temp.clamp_min(1e-5), dim=-1)
    k_max = min(settings.k_max, logits.shape[-1]) if settings.k_max > 0 else logits.shape[-1]
    vals, idx = torch.topk(probs, k_max, dim=-1)
    rank = torch.arange(k_max, device=logits.device)
    vals = vals * (rank < settings.top_k.view(shape)).to(vals.dtype)
    # Exponential race = multinomial draw without a host sync (as moshi's sampler).
    q = torch.empty_like(vals).exponential_(1)
    choice = (vals / q).argmax(dim=-1, keepdim=True)
    sampled = idx.gather(-1, choice)[..., 0]
    return torch.where(temp[..., 0] <= 0, greedy, sampled)


def install() -> None:
    """Teach ``moshi.models.lm.sample_token`` the per-slot settings (idempotent)."""
    global _installed
    if _installed:
        return
    import moshi.models.lm as lm_module

    original = lm_module.sample_token

    def sample_token(
        logits: torch.Tensor, use_sampling: bool = False, temp: Any = 1.0, top_k: Any = 0, top_p: float = 0.0
    ) -> torch.Tensor:
        if isinstance(temp, SlotSampling):
            if not use_sampling:
                return logits.argmax(dim=-1)
            return sample_per_slot(logits, temp)
        return original(logits, use_sampling, temp, top_k, top_p)

    lm_module.sample_token = sample_token
    _installed = True
