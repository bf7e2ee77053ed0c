"""Builds the model a profile names, with each stage's real backend."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from duplex.config import Config
from duplex.errors import ConfigError
from duplex.models.base import DuplexModel
from duplex.models.cascade import CascadeModel, CascadeStages
from duplex.models.stages import SpeechSynthesizer

if TYPE_CHECKING:
    from duplex.models.asr_rescore import LmRescoredRecognizer
    from duplex.models.asr_whisper import WhisperRecognizer
    from duplex.models.llamacpp.end_of_turn import LlamaCppEndOfUtterance

log = logging.getLogger(__name__)


def build_model(config: Config) -> DuplexModel:
    """Load the model named by ``config.models.kind``.

    Raises:
        ModelNotFound: a weight file is missing (the message says how to install it).
        ConfigError: the profile names an unknown backend.
    """
    kind = config.models.kind
    if kind == "scripted":
        from duplex.models.scripted import scripted_model

        return scripted_model(config)
    if kind == "cascade":
        return CascadeModel.from_config(config, cascade_stages(config))
    if kind == "codec_lm":
        from duplex.models.codec_lm.model import CodecLMModel

        return CodecLMModel(config)
    raise ConfigError(f"models.kind = {kind!r} is not a known model")


def final_recognizer(config: Config) -> WhisperRecognizer:
    """The recognizer of the cascade's finals, as the profile sets it up."""
    from duplex.models.asr_whisper import WhisperRecognizer

    m = config.models
    return WhisperRecognizer(m.asr.path or None, threads=m.asr.threads, beam_size=m.asr.beam_size)


def second_look_recognizer(
    config: Config, asr: WhisperRecognizer, eou: LlamaCppEndOfUtterance | None
) -> LmRescoredRecognizer | None:
    """``asr``'s n-best readings re-ranked by the end-of-utterance model's LLM, for finals
    that read as unfinished; None where the profile turns it off or has no such model."""
    m = config.models
    if eou is None or m.asr.n_best < 2 or m.asr.lm_weight <= 0:
        return None
    from duplex.models.asr_rescore import LmRescoredRecognizer

    return LmRescoredRecognizer(asr, eou, m.asr.lm_weight, m.asr.n_best, m.asr.wide_window_s)


def end_of_utterance_model(config: Config) -> LlamaCppEndOfUtterance | None:
    """The separate end-of-utterance model (``models.eou.engine = "llamacpp"``), else None."""
    m = config.models
    if m.eou.engine != "llamacpp":
        return None
    from duplex.models.llamacpp.end_of_turn import LlamaCppEndOfUtterance

    return LlamaCppEndOfUtterance(
        m.eou.path or None,
        threads=m.eou.threads,
        system_prompt=m.eou.system_prompt,
        head=m.eou.head,
        weights_type=m.eou.weights_type,
    )


def cascade_stages(config: Config) -> CascadeStages:
    """Real stage backends for the cascade.

    Every network is loaded once per process (``shared_weights``), eagerly, so a missing
    model fails at start-up, not mid-conversation, and the returned stages hold it until
    their ``close``: sessions opening and closing never load or free weights. Each
    session gets its own VAD (RNN state), LLM (a llama.cpp context) and voice over them;
    the recognizers and the end-of-utterance model are one object each, shared.
    """
    held: list[Callable[[], None]] = []  # what the stages' close releases, in order
    try:
        return _cascade_stages(config, held)
    except BaseException:
        _close_all(held)
        raise


def _close_all(closers: list[Callable[[], None]]) -> None:
    for close in reversed(closers):
        close()
    closers.clear()


def _cascade_stages(config: Config, held: list[Callable[[], None]]) -> CascadeStages:
    m = config.models
    from duplex.models.vad_silero import SileroVad

    def vad() -> SileroVad:
        return SileroVad(m.vad.path or None, config.audio.input_sample_rate, m.vad.threads)

    held.append(vad().close)  # the model's hold on the network

    from duplex.models.asr_whisper import WhisperRecognizer

    eou_model = end_of_utterance_model(config)
    if eou_model is not None:
        held.append(eou_model.close)
    asr = final_recognizer(config)
    held.append(asr.close)
    second_look = second_look_recognizer(config, asr, eou_model)
    # Partials get their own instance (one thread): a final never queues behind one.
    asr_partial = asr
    if m.asr.partial_interval_ms > 0:
        asr_partial = WhisperRecognizer(m.asr.path or None, threads=1, beam_size=1)
        held.append(asr_partial.close)

    tts: Callable[[], SpeechSynthesizer]
    if m.tts.engine == "piper":
        from duplex.models.tts_piper import PiperSynthesizer

        tts = functools.partial(
            PiperSynthesizer, m.tts.path or None, threads=m.tts.threads, length_scale=m.tts.length_scale
        )
    else:
        from duplex.models.tts_espeak import EspeakSynthesizer

        tts = functools.partial(EspeakSynthesizer, voice=m.tts.voice)
    held.append(tts().close)

    if m.llm.engine == "llamacpp":
        from duplex.models.llamacpp.generator import LlamaCppGenerator
        from duplex.models.llamacpp.gguf import gguf_to_load, llama_weights

        held.append(llama_weights(gguf_to_load(m.llm.path or None, m.llm.weights_type, "models.llm.path")[1]).release)

        def llm() -> LlamaCppGenerator:
            return LlamaCppGenerator(
                m.llm.path or None,
                threads=m.llm.threads,
                n_ctx=m.llm.n_ctx,
                temperature=m.llm.temperature,
                top_p=m.llm.top_p,
                seed=m.llm.seed,
                score_end=m.eou.engine == "llm",
                min_words=m.llm.min_words,
                dry_multiplier=m.llm.dry_multiplier,
                weights_type=m.llm.weights_type,
            )
    else:
        import os

        from duplex.models.llm_openai_http import OpenAIHttpGenerator

        def llm() -> OpenAIHttpGenerator:  # type: ignore[misc]
            return OpenAIHttpGenerator(
                m.llm.base_url,
                m.llm.model,
                api_key=os.environ.get(m.llm.api_key_env),
                timeout_s=m.llm.timeout_s,
                temperature=m.llm.temperature,
            )

    eou = None
    if eou_model is not None:

        def eou() -> LlamaCppEndOfUtterance:
            return eou_model

    return CascadeStages(
        vad=vad,
        asr=lambda: asr,
        llm=llm,
        tts=tts,
        asr_partial=lambda: asr_partial,
        eou=eou,
        asr_second_look=(lambda: second_look) if second_look is not None else None,
        eou_from_llm=m.eou.engine == "llm" and m.llm.engine == "llamacpp",
        close=functools.partial(_close_all, held),
    )
