"""A bounded LLM context: attention sinks plus the most recent messages, and a KV cache
that keeps being reused as the window slides.

``fit_context`` keeps the system prompt and the first exchange (the "sinks") plus the
most recent messages that fit a token budget. ``CachedWindow`` remembers which messages
the llama.cpp KV cache holds (and how many tokens each took). When messages drop out of
the middle, their span is removed from the KV cache and the later positions are shifted
down (llama.cpp's context shift), so the cached tail is reused instead of re-evaluated
and time to first token stays flat over hundreds of turns.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from duplex.models.llamacpp.session_context import LlamaSessionContext
from duplex.models.stages import ChatMessage

log = logging.getLogger(__name__)

# Tokens kept free beyond the answer budget: the generation prompt and rounding slack.
CONTEXT_MARGIN_TOKENS = 32


def fit_context(
    messages: Sequence[ChatMessage],
    count_tokens: Callable[[ChatMessage], int],
    budget: int,
) -> list[ChatMessage]:
    """Select the messages that go into a bounded prompt, keeping attention sinks.

    Always kept: the leading system message(s), the first user message and the answer that
    follows it (the sinks), and the last message. Then as many of the most recent messages
    as fit ``budget`` are added, newest first, stopping at the first one that does not fit so
    the kept tail is contiguous. If the sinks and the last message alone exceed the budget,
    the first answer and then the first user message are given up (the system prompt and the
    last message never are).

    Args:
        messages: the whole dialogue history, oldest first.
        count_tokens: tokens one message takes in the prompt (template included).
        budget: tokens the selected messages may take together.

    Returns:
        The selected messages, in their original order.
    """
    n = len(messages)
    if n == 0:
        return []
    costs = [count_tokens(m) for m in messages]
    if sum(costs) <= budget:
        return list(messages)

    n_system = 0
    while n_system < n and messages[n_system].role == "system":
        n_system += 1
    sink_end = n_system
    if sink_end < n and messages[sink_end].role == "user":
        sink_end += 1
        if sink_end < n and messages[sink_end].role == "assistant":
            sink_end += 1
    last = n - 1
    # Shrink the sinks until they fit next to the last message.
    while sink_end > n_system and sum(costs[:sink_end]) + costs[last] > budget:
        sink_end -= 1
    if last < sink_end:  # the last message is itself a sink
        return list(messages[: last + 1])

    used = sum(costs[:sink_end]) + costs[last]
    first_tail = last
    while first_tail - 1 >= sink_end and used + costs[first_tail - 1] <= budget:
        first_tail -= 1
        used += costs[first_tail]
    return list(messages[:sink_end]) + list(messages[first_tail:])


class CachedWindow:
    """What a llama.cpp KV cache holds, message by message (one conversation at a time).

    ``messages``/``lengths`` are the prompt segments evaluated by the last prompt pass
    (after the BOS segment); a generated answer follows them in the cache.

    Args:
        llm: the context whose cache this describes.
        bos: the tokens every prompt starts with.
    """

    def __init__(self, llm: LlamaSessionContext, bos: list[int]) -> None:
        self._llm = llm
        self._bos = bos
        self.messages: list[ChatMessage] = []
        self.lengths: list[int] = []

    def hold(self, messages: Sequence[ChatMessage], lengths: Sequence[int]) -> None:
        """Record that the cache now holds ``messages``, of ``lengths`` tokens each."""
        self.messages, self.lengths = list(messages), list(lengths)

    def forget(self) -> None:
        """Record that the cache holds no message (its tokens are no longer trusted)."""
        self.hold([], [])

    def clear(self) -> None:
        """Empty the cache itself: no token, no KV cell, no message."""
        self._llm.reset()
        self._llm._ctx.kv_cache_clear()
        self.forget()

    def without_readmitted(self, kept: list[ChatMessage]) -> list[ChatMessage]:
        """``kept`` without the messages the cache has already evicted.

        The window's oldest edge moves with the last message's length: a final transcript
        shorter than the partial that was prefilled leaves room for a message the partial
        pushed out. Taken back, it sits where the cache no longer has it, so everything
        after the sinks would be evaluated again (590 tokens, ~3 s on 2 cores, seen at turn
        28 of the latency bench). Once out, a message stays out.
        """
        old = self.messages
        i = 0
        while i < min(len(old), len(kept)) and old[i] == kept[i]:
            i += 1
        if i == len(old) or i == len(kept) or old[i] not in kept[i + 1 :]:
            return kept
        r = kept.index(old[i], i + 1)
        if any(m in old[i:] for m in kept[i:r]):
            return kept
        return kept[:i] + kept[r:]

    def drop_evicted_span(self, kept: list[ChatMessage]) -> None:
        """Remove messages that fell out of the window from the KV cache, shifting the rest.

        The previous pass cached ``old`` messages. If ``kept`` is ``old`` with a contiguous
        run ``old[i:j]`` removed (the oldest non-sink messages evicted), that token span is
        deleted and everything after it moves down by its length, so the prefix match
        (``reuse_prefix``) reuses the whole cached tail.
        """
        old, lengths = self.messages, self.lengths
        i = 0
        while i < min(len(old), len(kept)) and old[i] == kept[i]:
            i += 1
        if i == len(old) or i == len(kept):
            return
        try:
            j = old.index(kept[i], i + 1)
        except ValueError:
            return
        if old[j:] != kept[i : i + len(old) - j]:
            return
        llm = self._llm
        start = len(self._bos) + sum(lengths[:i])
        end = len(self._bos) + sum(lengths[:j])
        n_cached = llm.n_tokens
        if end > n_cached or not _can_shift(llm):
            return
        shift = end - start
        ctx = llm._ctx
        if not ctx.kv_cache_seq_rm(0, start, end):
            return
        ctx.kv_cache_seq_shift(0, end, -1, -shift)
        ids = llm.input_ids
        ids[start : n_cached - shift] = ids[end:n_cached].copy()
        llm.n_tokens = n_cached - shift
        self.hold(old[:i] + old[j:], lengths[:i] + lengths[j:])
        log.debug("context shift: evicted %d tokens (messages %d..%d)", shift, i, j)

    def reuse_prefix(self, prompt: list[int]) -> int:
        """Keep the cached tokens that prefix ``prompt``; returns how many are reused."""
        llm = self._llm
        cached = llm.input_ids[: llm.n_tokens]
        n = 0
        limit = min(len(cached), len(prompt))
        while n < limit and cached[n] == prompt[n]:
            n += 1
        # At least one token must be evaluated to get fresh logits to sample from.
        n = min(n, len(prompt) - 1)
        if n > 0 and llm._ctx.kv_cache_seq_rm(0, n, -1):
            llm.n_tokens = n
            return n
        self.clear()
        return 0


def _can_shift(llm: LlamaSessionContext) -> bool:
    try:
        from llama_cpp import llama_cpp as lib

        return bool(lib.llama_memory_can_shift(llm._ctx.memory))
    except (AttributeError, ImportError):  # older bindings
        return False
