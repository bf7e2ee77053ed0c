"""The batched codec LM step: one Mimi encode, one LM step, one Mimi decode for every slot.

``CodecCore`` holds the models in streaming mode with a fixed batch of
``slots`` rows, so every tensor keeps its shape for the life of the engine and
CUDA graphs captured once stay valid. A session owns one row (a *slot*):

- joining resets that row only (``reset_streaming(mask)`` on Mimi and on
  ``LMGen``), so a session that joins mid-batch starts exactly like a fresh one;
- a row that has no input this tick (a free slot, or a session that was late) is
  masked with ``set_exec_mask``: its state does not move, as if the tick never
  happened (``LMGen(support_out_of_sync=True)``), and it produces no output;
- a row whose LM has not produced output yet (the first tick after a join, while
  the acoustic delay fills) is masked in the decoder too and plays silence.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from duplex.config import CodecLmConfig
from duplex.models.codec_lm import sampling
from duplex.models.codec_lm.checkpoint import CodecBundle
from duplex.models.codec_lm.resample import TorchFrameResampler

log = logging.getLogger(__name__)

MIMI_RATE = 24000


@dataclass(frozen=True)
class SlotOutput:
    """What one slot produced in one tick.

    Attributes:
        pcm: the output frame (float32 at ``CodecCore.output_rate``); silence
            while the slot's LM warms up.
        text: the text piece the model wrote with this frame ("" for padding).
        text_token: the raw text token (-1 when nothing was generated yet).
        audio_tokens: the dep_q audio tokens decoded into ``pcm`` (None while warming up).
    """

    pcm: np.ndarray
    text: str
    text_token: int
    audio_tokens: np.ndarray | None


class CodecCore:
    """A fixed batch of streaming codec-LM rows.

    Args:
        bundle: the loaded Mimi, LM and tokenizer.
        slots: batch size (the most concurrent sessions).
        settings: sampling defaults, CUDA graphs, resampler choice.
        input_rate: rate of the frames the transports hand in.
        output_rate: rate of the frames they expect back.
    """

    def __init__(
        self,
        bundle: CodecBundle,
        slots: int,
        settings: CodecLmConfig,
        input_rate: int = MIMI_RATE,
        output_rate: int = MIMI_RATE,
    ) -> None:
        from moshi.models import LMGen

        if slots < 1:
            raise ValueError("a codec LM needs at least one slot")
        self.mimi, self.lm, self.tokenizer = bundle.mimi, bundle.lm, bundle.tokenizer
        self.slots = slots
        self.settings = settings
        self.device = self.lm.device
        self.frame_samples = int(self.mimi.frame_size)  # 1920 at 24 kHz / 12.5 Hz
        self.frame_ms = int(round(1000 * self.frame_samples / self.mimi.sample_rate))
        if int(self.mimi.sample_rate) != MIMI_RATE:
            raise ValueError(f"Mimi runs at {self.mimi.sample_rate} Hz; this backend expects {MIMI_RATE}")
        self.cuda_graphs = settings.cuda_graphs and self.device.type == "cuda"
        kind = settings.resampler
        if kind == "auto":
            kind = "torch" if self.device.type == "cuda" else "soxr"
        self.resampler_kind = kind
        # With soxr, sessions resample on their own threads; with torch, the core does it batched.
        self.input_rate = input_rate if kind == "torch" else MIMI_RATE
        self.output_rate = output_rate if kind == "torch" else MIMI_RATE
        self._in_rs = self._out_rs = None
        if kind == "torch":
            n_in = input_rate * self.frame_ms // 1000
            self._in_rs = TorchFrameResampler(input_rate, MIMI_RATE, n_in, slots, self.device)
            self._out_rs = TorchFrameResampler(MIMI_RATE, output_rate, self.frame_samples, slots, self.device)
        self.in_frame_samples = self.input_rate * self.frame_ms // 1000
        self.out_frame_samples = self.output_rate * self.frame_ms // 1000

        sampling.install()
        k_audio = settings.top_k if settings.top_k > 0 else int(self.lm.card)
        k_text = settings.top_k_text if settings.top_k_text > 0 else int(self.lm.text_card)
        dev = self.device
        self.audio_sampling = sampling.SlotSampling(
            torch.full((slots,), settings.temperature, device=dev), torch.full((slots,), k_audio, device=dev), k_audio
        )
        self.text_sampling = sampling.SlotSampling(
            torch.full((slots,), settings.temperature_text, device=dev), torch.full((slots,), k_text, device=dev), k_text
        )
        self.lm_gen = LMGen(self.lm, use_sampling=True, support_out_of_sync=True)
        self.lm_gen.temp = self.audio_sampling  # type: ignore[assignment]  # see sampling.install
        self.lm_gen.temp_text = self.text_sampling  # type: ignore[assignment]
        self.dep_q = int(self.lm.dep_q)
        self._skip_text = {int(self.lm.text_padding_token_id), int(self.lm.end_of_text_padding_id)}
        self._vocab = int(self.tokenizer.vocab_size())
        self._x = torch.zeros(slots, 1, self.frame_samples, device=dev)
        self._streaming = contextlib.ExitStack()
        with self._graph_context():
            self._streaming.enter_context(self.mimi.streaming(slots))
            self._streaming.enter_context(self.lm_gen.streaming(slots))
        self.steps = 0
        self.last_step_ms = 0.0
        if self.device.type == "cuda":
            self.warmup()

    # ------------------------------------------------------------ slots
    def reset(self, slots: list[int]) -> None:
        """Reset the given rows to a fresh conversation (sampling settings are left alone)."""
        if not slots:
            return
        mask = torch.zeros(self.slots, dtype=torch.bool, device=self.device)
        mask[slots] = True
        with torch.no_grad(), self._graph_context():
            self.mimi.reset_streaming(mask)
            self.lm_gen.reset_streaming(mask)
            if self._in_rs is not None and self._out_rs is not None:
                self._in_rs.reset(mask)
                self._out_rs.reset(mask)

    def default_sampling(self, slot: int) -> None:
        """Give a slot the profile's sampling settings."""
        s = self.settings
        self.set_sampling(slot, s.temperature, s.temperature_text, s.top_k, s.top_k_text)

    def set_sampling(self, slot: int, temperature: float, temperature_text: float, top_k: int = 0, top_k_text: int = 0) -> None:
        """Sampling settings of one slot (0 temperature = greedy; 0 top-k = the profile's)."""
        self.audio_sampling.set(slot, temperature, top_k or self.audio_sampling.k_max)
        self.text_sampling.set(slot, temperature_text, top_k_text or self.text_sampling.k_max)

    def text_piece(self, token: int) -> str:
        """The text a token stands for ("" for padding and out-of-vocabulary ids)."""
        if token < 0 or token in self._skip_text or token >= self._vocab:
            return ""
        return str(self.tokenizer.id_to_piece(token)).replace("▁", " ")

    # ------------------------------------------------------------ the step
    def _graph_context(self) -> contextlib.AbstractContextManager[Any]:
        if self.cuda_graphs or self.device.type != "cuda":
            return contextlib.nullcontext()
        from moshi.utils.compile import no_cuda_graph

        return no_cuda_graph()

    def step(self, frames: dict[int, np.ndarray]) -> dict[int, SlotOutput]:
        """One tick for the whole batch. Rows not in ``frames`` are masked.

        Args:
            frames: slot → one input frame (``in_frame_samples`` float32 samples).

        Returns:
            slot → its output, for every slot in ``frames``.
        """
        t0 = time.perf_counter()
        n = self.in_frame_samples
        host = np.zeros((self.slots, n), np.float32)
        active_host = np.zeros(self.slots, bool)
        for slot, frame in frames.items():
            if len(frame) != n:
                raise ValueError(f"slot {slot}: frame of {len(frame)} samples, expected {n}")
            host[slot] = frame
            active_host[slot] = True
        with torch.no_grad(), self._graph_context():
            active = torch.from_numpy(active_host).to(self.device)
            x: torch.Tensor = torch.from_numpy(host).to(self.device)
            if self._in_rs is not None:
                x = self._in_rs.process(x, active)
            self._x[:, 0, :] = x
            self.mimi.set_exec_mask(active)
            codes = self.mimi.encode(self._x)  # [B, n_q_user, 1]
            self.lm_gen.set_exec_mask(active)
            out = self.lm_gen.step(codes)  # [B, 1 + dep_q, 1], -2 where nothing was generated
            assert out is not None  # support_out_of_sync always returns a tensor
            has_out = active & (out[:, 1, 0] >= 0)
            self.mimi.set_exec_mask(has_out)
            pcm = self.mimi.decode(out[:, 1:].clamp_min(0))[:, 0, :]  # [B, 1920]
            pcm = torch.where(has_out[:, None], pcm.float(), torch.zeros_like(pcm, dtype=torch.float32))
            if self._out_rs is not None:
                pcm = self._out_rs.process(pcm, has_out)
            pcm_host = pcm.cpu().numpy()
            tokens_host = out[:, :, 0].cpu().numpy()
            has_host = has_out.cpu().numpy()
        result: dict[int, SlotOutput] = {}
        for slot in frames:
            if has_host[slot]:
                tok = int(tokens_host[slot, 0])
                result[slot] = SlotOutput(pcm_host[slot].copy(), self.text_piece(tok), tok, tokens_host[slot, 1:].copy())
            else:
                result[slot] = SlotOutput(np.zeros(self.out_frame_samples, np.float32), "", -1, None)
        self.steps += 1
        self.last_step_ms = 1000.0 * (time.perf_counter() - t0)
        return result

    def close(self) -> None:
        """Leave streaming mode: the models can back another core afterwards."""
        self._streaming.close()

    def warmup(self, steps: int = 4) -> None:
        """Run a few steps on silence (captures CUDA graphs), then reset every slot."""
        silence = np.zeros(self.in_frame_samples, np.float32)
        for _ in range(steps):
            self.step({i: silence for i in range(self.slots)})
        self.reset(list(range(self.slots)))
