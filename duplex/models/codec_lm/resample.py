"""Resampling at the codec LM's edges: transports speak 16 or 24 kHz, Mimi 24 kHz.

Mimi steps on exactly one 80 ms frame (1920 samples at 24 kHz), so the
resamplers here return exactly one frame per frame:

- ``SoxrFrameResampler`` (CPU): one soxr stream per session. soxr hands out
  its output in bursts, so a FIFO evens them out: while it runs short at the
  start, zeros are put in front (a fixed delay of at most one soxr block,
  ~30 ms), after which every frame is whole.
- ``TorchFrameResampler`` (GPU): one batched windowed-sinc polyphase filter
  for all slots (torchaudio's ``sinc_interp_hann`` kernel, computed here so
  torchaudio is not needed), with per-slot history. Its delay is the filter's
  half-width, under a millisecond.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from duplex.audio.resample import StreamResampler


class SoxrFrameResampler:
    """Streams fixed-size frames from ``from_rate`` to ``to_rate`` with soxr."""

    def __init__(self, from_rate: int, to_rate: int, out_samples: int) -> None:
        self.out_samples = out_samples
        self._stream = StreamResampler(from_rate, to_rate)
        self._fifo = np.zeros(0, np.float32)
        self.padded_samples = 0  # zeros inserted so far (the fixed delay)

    def process(self, frame: np.ndarray) -> np.ndarray:
        out = self._stream.process(frame)
        fifo = np.concatenate([self._fifo, out]) if len(self._fifo) else out
        short = self.out_samples - len(fifo)
        if short > 0:
            fifo = np.concatenate([np.zeros(short, np.float32), fifo])
            self.padded_samples += short
        self._fifo = fifo[self.out_samples :]
        return fifo[: self.out_samples]


def sinc_kernel(orig: int, new: int, lowpass_filter_width: int = 6, rolloff: float = 0.99) -> tuple[np.ndarray, int]:
    """torchaudio's ``sinc_interp_hann`` resampling kernel for reduced rates ``orig`` → ``new``.

    Returns (kernel of shape [new, orig + 2 * width], width).
    """
    base_freq = min(orig, new) * rolloff
    width = math.ceil(lowpass_filter_width * orig / base_freq)
    idx = np.arange(-width, width + orig, dtype=np.float64)[None, :] / orig
    t = np.arange(0, -new, -1, dtype=np.float64)[:, None] / new + idx
    t *= base_freq
    t = np.clip(t, -lowpass_filter_width, lowpass_filter_width)
    window = np.cos(t * math.pi / lowpass_filter_width / 2) ** 2
    t *= math.pi
    scale = base_freq / orig
    kernel = np.where(t == 0, 1.0, np.sin(t) / np.where(t == 0, 1.0, t)) * window * scale
    return kernel.astype(np.float32), width


class TorchFrameResampler:
    """Batched streaming resampler on a torch device: [slots, n_in] → [slots, n_out] per frame."""

    def __init__(self, from_rate: int, to_rate: int, in_samples: int, slots: int, device: Any) -> None:
        import torch

        g = math.gcd(from_rate, to_rate)
        self.orig, self.new = from_rate // g, to_rate // g
        if in_samples % self.orig:
            raise ValueError(f"a frame of {in_samples} samples is not a whole number of {self.orig}-sample blocks")
        self.identity = from_rate == to_rate
        self.in_samples = in_samples
        self.out_samples = in_samples // self.orig * self.new
        kernel, self.width = sinc_kernel(self.orig, self.new)
        self._kernel = torch.from_numpy(kernel)[:, None, :].to(device)
        # History: 2 * width samples per slot (left context and the look-ahead we wait for).
        self._history = torch.zeros(slots, 2 * self.width, device=device)

    def reset(self, mask: Any) -> None:
        """Zero the history of the slots in ``mask`` (a bool tensor [slots])."""
        self._history[mask] = 0.0

    def process(self, frames: Any, active: Any) -> Any:
        """Resample one frame per slot; only ``active`` slots advance their history."""
        import torch

        if self.identity:
            return frames
        x = torch.cat([self._history, frames.to(self._history.dtype)], dim=1)
        y = torch.nn.functional.conv1d(x[:, None, :], self._kernel, stride=self.orig)  # [B, new, blocks]
        out = y.transpose(1, 2).reshape(x.shape[0], -1)[:, : self.out_samples]
        self._history = torch.where(active[:, None], x[:, -2 * self.width :], self._history)
        return out
