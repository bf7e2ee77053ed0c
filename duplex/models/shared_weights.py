"""Weights loaded once per process and shared by every session that uses them.

A conversation needs its own *state* (a KV cache, an RNN state, audio buffers) but not
its own copy of a network. Each stage backend asks this cache for its weights under a
``WeightsKey`` (what the weights are: the file, and the load options that change the
loaded object, such as an onnxruntime session's thread count) and gets the one loaded
object every holder of that key shares, with a ``Lease`` on it. The weights are freed
when the last lease is released: a session's stages release theirs when the session
closes, the model's shared stages when the runtime closes (``Runtime.close``).

What is shared, and what each holder keeps of its own:

=================  ===========================================  ============================
stage              shared object (one a process)                per holder
=================  ===========================================  ============================
LLM, end of turn   llama.cpp ``llama_model`` (llama-cpp-python  a ``llama_context``: KV
                   ``_internals.LlamaModel``; the re-encoded    cache, compute buffers,
                   weights, repacked for this CPU)              token history, sampler
Piper voice        onnxruntime ``InferenceSession``            the synthesis settings
                   (``run`` is thread-safe)                     (speaker, length scale)
Silero VAD         onnxruntime ``InferenceSession``            the RNN state and context
Whisper            CTranslate2 ``models.Whisper``               the decode options
=================  ===========================================  ============================

The LLM of the answers and the end-of-turn model load the same GGUF by default, so they
share one ``llama_model`` too. Loading happens under the cache's lock, so concurrent
sessions never load the same weights twice; what a holder builds over the weights (a
llama.cpp context) is built outside it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

Option = str | int | float | bool


@dataclass(frozen=True)
class WeightsKey:
    """What a loaded object is: two holders with equal keys get the same object.

    Attributes:
        kind: the backend's kind of weights (``"llama.cpp model"``, ``"piper voice"`` ...).
        path: the file or directory the weights come from, resolved.
        options: the load options that change the loaded object, as (name, value) pairs.
    """

    kind: str
    path: str
    options: tuple[tuple[str, Option], ...] = ()

    def __str__(self) -> str:
        opts = ", ".join(f"{k}={v}" for k, v in self.options)
        return f"{self.kind} {self.path}" + (f" ({opts})" if opts else "")


class _Entry:
    """One loaded object, its release function and how many leases hold it."""

    def __init__(self, weights: object, free: Callable[[], None]) -> None:
        self.weights = weights
        self.free = free
        self.holders = 0


class Lease(Generic[T]):
    """One holder's claim on shared weights; ``release`` once it is done with them.

    Attributes:
        key: what the weights are.
        weights: the shared object (valid until this lease is released).
    """

    def __init__(self, cache: SharedWeights, key: WeightsKey, weights: T) -> None:
        self._cache = cache
        self.key = key
        self.weights = weights
        self._released = False
        self._lock = threading.Lock()

    def release(self) -> None:
        """Give the claim back; the weights are freed when no lease holds them. Idempotent."""
        with self._lock:
            if self._released:
                return
            self._released = True
        self._cache._release(self.key)


class SharedWeights:
    """A thread-safe cache of loaded weights with a count of holders per key."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[WeightsKey, _Entry] = {}

    def acquire(self, key: WeightsKey, load: Callable[[], T], free: Callable[[T], None]) -> Lease[T]:
        """The weights under ``key``, loaded by ``load()`` if no one holds them yet.

        Args:
            key: what the weights are.
            load: loads them (called at most once while the key is held; its errors,
                such as ``ModelNotFound``, reach the caller and nothing is cached).
            free: frees them once the last lease is released.

        Returns:
            A lease on the shared object.
        """
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                weights = load()
                entry = _Entry(weights, lambda: free(weights))
                self._entries[key] = entry
                log.info("loaded %s", key)
            entry.holders += 1
            return Lease(self, key, entry.weights)  # type: ignore[arg-type]

    def _release(self, key: WeightsKey) -> None:
        with self._lock:
            entry = self._entries[key]
            entry.holders -= 1
            if entry.holders > 0:
                return
            del self._entries[key]
        entry.free()
        log.info("freed %s", key)

    def holders(self) -> dict[WeightsKey, int]:
        """How many leases hold each loaded key (what is loaded now)."""
        with self._lock:
            return {key: entry.holders for key, entry in self._entries.items()}


_PROCESS = SharedWeights()


def shared_weights() -> SharedWeights:
    """The process's cache: every runtime and session in this process shares it."""
    return _PROCESS
