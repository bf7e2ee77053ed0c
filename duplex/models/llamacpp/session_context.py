"""A llama.cpp context of its own for each holder, over weights loaded once per process.

A llama.cpp *model* (``llama_model``: the weights, repacked for this CPU at load) is
read-only once loaded and serves any number of *contexts* (``llama_context``: KV cache,
compute buffers, thread pool), each used by its own thread; llama.cpp's server works the
same way. ``llama_cpp.Llama`` always loads a model of its own, so every session paid for
a copy of the weights. Here:

* ``gguf.llama_weights`` leases the model of one GGUF file from ``shared_weights`` (one
  llama-cpp-python ``_internals.LlamaModel`` a file per process);
* ``LlamaSessionContext`` is one holder's ``llama_context`` over it, with the
  part of ``Llama``'s interface the stages use (``eval``, ``input_ids``/``n_tokens``,
  ``reset``, ``tokenize``/``detokenize``, ``scores`` with ``logits_all``), set up with
  ``Llama``'s own context parameters, so a context computes what a ``Llama`` of the same
  settings computes.

Closing a context frees its KV cache and buffers and releases its lease; the model is
freed with the last lease, so never before a context over it.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from duplex.errors import BackendError
from duplex.models.llamacpp.gguf import LlamaWeights, llama_weights
from duplex.models.shared_weights import Lease


class _NativeContext:
    """A ``llama_context`` over a model, with the calls the stages make on it (those of
    llama-cpp-python's ``_internals.LlamaContext``, which would also register itself with
    the model for good: one object more for every session a server ever opened)."""

    def __init__(self, model: Any, params: Any) -> None:
        import llama_cpp

        self._lib = llama_cpp
        self.ctx = llama_cpp.llama_init_from_model(model.model, params)
        if self.ctx is None:
            raise ValueError("llama_init_from_model returned no context")
        self.memory = llama_cpp.llama_get_memory(self.ctx)

    def decode(self, batch: Any) -> None:
        code = self._lib.llama_decode(self.ctx, batch.batch)
        if code != 0:
            raise RuntimeError(f"llama_decode returned {code}")

    def kv_cache_seq_rm(self, seq_id: int, p0: int, p1: int) -> bool:
        return bool(self._lib.llama_memory_seq_rm(self.memory, max(seq_id, 0), p0, p1))

    def kv_cache_seq_shift(self, seq_id: int, p0: int, p1: int, shift: int) -> None:
        self._lib.llama_memory_seq_add(self.memory, seq_id, p0, p1, shift)

    def kv_cache_clear(self) -> None:
        if self.memory is not None:
            self._lib.llama_memory_clear(self.memory, True)

    def get_logits(self) -> Any:
        return self._lib.llama_get_logits(self.ctx)

    def get_logits_ith(self, i: int) -> Any:
        return self._lib.llama_get_logits_ith(self.ctx, i)


def _free(native: _NativeContext | None, batch: Any, lease: Lease[LlamaWeights]) -> None:
    """Free a context's buffers, then give its weights back (in that order: llama.cpp
    frees a context before its model)."""
    if batch is not None:
        batch.close()
    if native is not None and native.ctx is not None:
        native._lib.llama_free(native.ctx)
        native.ctx = None
    lease.release()


class LlamaSessionContext:
    """A llama.cpp context over shared weights: the per-holder half of a ``Llama``.

    Not thread-safe: one holder uses it from one thread at a time.

    Args:
        path: the GGUF file (its weights are leased from ``shared_weights``).
        n_ctx: context length in tokens.
        threads: CPU threads for decoding and prompt processing.
        n_batch: tokens decoded in one llama.cpp batch.
        embedding: also compute hidden states (``llama_get_embeddings_ith``); the
            context then holds up to ``n_batch`` sequences over one unified KV cache.
        logits_all: keep every evaluated row's logits in ``scores``.
        last_n_tokens_size: the repeat-penalty window samplers are given.

    Raises:
        BackendError: the weights or the context could not be loaded.
    """

    def __init__(
        self,
        path: Path,
        *,
        n_ctx: int,
        threads: int,
        n_batch: int = 512,
        embedding: bool = False,
        logits_all: bool = False,
        last_n_tokens_size: int = 64,
    ) -> None:
        import llama_cpp
        from llama_cpp import _internals

        self._lease = llama_weights(path)
        weights = self._lease.weights
        self.model_path = path
        self.metadata = weights.metadata
        self._model: Any = weights.model
        self.n_batch = min(n_ctx, n_batch)
        self.last_n_tokens_size = last_n_tokens_size
        self._logits_all = logits_all
        # Llama's context parameters, so a context computes what a Llama would.
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = n_ctx
        params.n_batch = self.n_batch
        params.n_ubatch = self.n_batch
        params.n_threads = threads
        params.n_threads_batch = threads
        params.rope_scaling_type = llama_cpp.LLAMA_ROPE_SCALING_TYPE_UNSPECIFIED
        params.pooling_type = llama_cpp.LLAMA_POOLING_TYPE_UNSPECIFIED
        params.attention_type = llama_cpp.LLAMA_ATTENTION_TYPE_UNSPECIFIED
        params.rope_freq_base = 0
        params.rope_freq_scale = 0
        params.yarn_ext_factor = -1.0
        params.yarn_attn_factor = 1.0
        params.yarn_beta_fast = 32.0
        params.yarn_beta_slow = 1.0
        params.yarn_orig_ctx = 0
        params.embeddings = embedding
        params.offload_kqv = True
        params.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED
        params.no_perf = False
        if embedding:
            params.n_seq_max = min(self.n_batch, llama_cpp.llama_max_parallel_sequences())
            params.kv_unified = True
        self.context_params = params
        native: _NativeContext | None = None
        batch = None
        try:
            native = _NativeContext(self._model, params)
            batch = _internals.LlamaBatch(n_tokens=self.n_batch, embd=0, n_seq_max=n_ctx, verbose=False)
        except (ValueError, RuntimeError) as exc:
            _free(native, batch, self._lease)
            raise BackendError(f"llama.cpp could not make a context of {n_ctx} tokens over {path}: {exc}") from exc
        self._ctx: Any = native
        self._batch: Any = batch
        # Frees the context and releases the weights on ``close``, or when a holder that
        # was never closed is collected (not at interpreter exit: a lane thread may still
        # be decoding then).
        self._finalizer = weakref.finalize(self, _free, native, batch, self._lease)
        self._finalizer.atexit = False
        self._n_vocab = int(self._model.n_vocab())
        self._clear_on_reset = bool(
            llama_cpp.llama_model_is_recurrent(self._model.model) or llama_cpp.llama_model_is_hybrid(self._model.model)
        )
        self.n_tokens = 0
        self.input_ids = np.zeros(n_ctx, dtype=np.intc)
        # Rows are written only as tokens are evaluated (np.empty commits no memory yet).
        self.scores = np.empty((n_ctx if logits_all else 0, self._n_vocab), dtype=np.single)

    # -- the model's vocabulary (shared, read-only) ---------------------------------------

    def tokenize(self, text: bytes, add_bos: bool = True, special: bool = False) -> list[int]:
        return list(self._model.tokenize(text, add_bos=add_bos, special=special))

    def detokenize(self, tokens: Sequence[int], special: bool = False) -> bytes:
        return bytes(self._model.detokenize(list(tokens), special=special))

    def n_vocab(self) -> int:
        return self._n_vocab

    def n_embd(self) -> int:
        return int(self._model.n_embd())

    def token_eos(self) -> int:
        return int(self._model.token_eos())

    # -- this context's state -------------------------------------------------------------

    def eval(self, tokens: Sequence[int]) -> None:
        """Evaluate ``tokens`` after the ``n_tokens`` already in the cache (``Llama.eval``).

        Raises:
            RuntimeError: llama.cpp failed to decode.
        """
        self._ctx.kv_cache_seq_rm(-1, self.n_tokens, -1)
        for i in range(0, len(tokens), self.n_batch):
            batch = list(tokens[i : i + self.n_batch])
            n_past = self.n_tokens
            self._batch.set_batch(batch=batch, n_past=n_past, logits_all=self._logits_all)
            self._ctx.decode(self._batch)
            self.input_ids[n_past : n_past + len(batch)] = batch
            if self._logits_all:
                logits = np.ctypeslib.as_array(self._ctx.get_logits(), shape=(len(batch) * self._n_vocab,))
                self.scores[n_past : n_past + len(batch), :].reshape(-1)[:] = logits
            self.n_tokens += len(batch)

    def reset(self) -> None:
        """Forget the evaluated tokens (``Llama.reset``: the next ``eval`` overwrites the
        KV cells; a recurrent model's state is cleared)."""
        self.n_tokens = 0
        if self._clear_on_reset:
            self._ctx.kv_cache_clear()

    def close(self) -> None:
        """Free this context's KV cache and buffers and release the weights. Idempotent."""
        self._finalizer()
