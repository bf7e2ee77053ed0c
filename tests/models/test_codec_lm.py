"""The end-to-end codec LM backend, on a tiny random-weight Moshi built by the tests.

The tiny model keeps Moshi's layout (Mimi at 24 kHz / 12.5 Hz, n_q 16 with
dep_q 8 so the model hears the user's 8 codebooks, the same delays) with small
widths. It is saved as safetensors and loaded back through the real loading
path. Decoding is greedy unless a test says otherwise, so outputs are exact.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch  # the codec LM backend: make install-torch (pinned CPU torch, moshi --no-deps)

from duplex.config import CodecLmConfig, config_from_dict  # noqa: E402
from duplex.errors import ModelNotFound  # noqa: E402
from duplex.models.codec_lm.checkpoint import (  # noqa: E402
    build_tiny_models,
    load_checkpoint,
    write_tiny_checkpoint,
)
from duplex.models.codec_lm.core import CodecCore  # noqa: E402
from duplex.models.codec_lm.stepper import BatchStepper  # noqa: E402

from conftest import silence  # noqa: E402

torch.set_num_threads(1)
GREEDY = CodecLmConfig(temperature=0.0, temperature_text=0.0, threads=1)
FRAME = 1920  # 80 ms at 24 kHz
SPEECH = Path(__file__).resolve().parents[1] / "data" / "asr" / "real" / "arctic_a0007.wav"


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_checkpoint(tmp_path_factory.mktemp("codec-lm") / "tiny", seed=0)


@pytest.fixture(scope="module")
def bundle(tiny_dir: Path):  # noqa: ANN201
    return load_checkpoint(tiny_dir, device="cpu", dtype="float32")


def _signal(seed: int, frames: int) -> list[np.ndarray]:
    """Distinct, deterministic input per session: a chirp-ish tone plus noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(frames * FRAME) / 24000
    x = 0.2 * np.sin(2 * np.pi * (150 + 40 * seed) * t * (1 + t)) + 0.02 * rng.standard_normal(len(t))
    x = x.astype(np.float32)
    return [x[i * FRAME : (i + 1) * FRAME] for i in range(frames)]


def _tokens(outputs: list) -> list[tuple[int, tuple[int, ...]]]:  # noqa: ANN001
    return [
        (o.text_token, tuple(int(v) for v in o.audio_tokens) if o.audio_tokens is not None else ())
        for o in outputs
    ]


def _single(bundle, frames: list[np.ndarray]) -> list:  # noqa: ANN001
    """A fresh session alone: a core of one slot."""
    core = CodecCore(bundle, 1, GREEDY)
    try:
        return [core.step({0: f})[0] for f in frames]
    finally:
        core.close()


def test_checkpoint_loaded_from_safetensors_decodes_exactly_like_the_model_that_wrote_it(tiny_dir, bundle):
    text_card = json.loads((tiny_dir / "config.json").read_text())["text_card"]
    mimi, lm, _, _ = build_tiny_models(seed=0, text_card=text_card)
    built = type(bundle)(mimi, lm, bundle.tokenizer)
    frames = _signal(1, 8)
    a, b = _single(built, frames), _single(bundle, frames)
    assert _tokens(a) == _tokens(b)
    assert all(np.array_equal(x.pcm, y.pcm) for x, y in zip(a, b, strict=True))
    assert sum(1 for o in b if o.audio_tokens is not None) == 7  # one tick of acoustic delay


def test_missing_checkpoint_files_are_all_named(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"moshi_name": "lm.safetensors"}))
    with pytest.raises(ModelNotFound) as err:
        load_checkpoint(tmp_path, device="cpu")
    message = str(err.value)
    for name in ("lm.safetensors", "tokenizer-e351c8d8-checkpoint125.safetensors", "tokenizer_spm_32k_3.model"):
        assert name in message
    with pytest.raises(ModelNotFound, match="models.codec_lm.path"):
        load_checkpoint(tmp_path / "nowhere", device="cpu")


def test_a_batch_slot_gives_bit_identical_tokens_to_a_single_session(bundle):
    frames = {slot: _signal(slot, 10) for slot in range(4)}
    core = CodecCore(bundle, 4, GREEDY)
    try:
        batched = [core.step({s: frames[s][i] for s in range(4)}) for i in range(10)]
    finally:
        core.close()
    for slot in (0, 2):
        alone = _single(bundle, frames[slot])
        assert _tokens([b[slot] for b in batched]) == _tokens(alone)


def test_a_session_joining_mid_batch_matches_a_fresh_session(bundle):
    core = CodecCore(bundle, 2, GREEDY)
    stepper = BatchStepper(core, wait_ms=1.0)
    try:
        a, b = stepper.join(), stepper.join()
        sig_a, sig_b, sig_c = _signal(0, 20), _signal(1, 4), _signal(2, 10)
        for i in range(4):  # b dirties its row, then leaves
            ta, tb = stepper.submit(a, sig_a[i]), stepper.submit(b, sig_b[i])
            stepper.result(a, ta), stepper.result(b, tb)
        stepper.leave(b)
        for i in range(4, 6):
            stepper.result(a, stepper.submit(a, sig_a[i]))
        c = stepper.join()
        assert c == b  # the reused, dirty row
        joined = []
        for i in range(10):
            ta, tc = stepper.submit(a, sig_a[6 + i]), stepper.submit(c, sig_c[i])
            stepper.result(a, ta)
            joined.append(stepper.result(c, tc))
    finally:
        core.close()
    assert _tokens(joined) == _tokens(_single(bundle, sig_c))


def test_a_late_slot_is_masked_and_its_stream_stays_intact(bundle):
    core = CodecCore(bundle, 2, GREEDY)
    stepper = BatchStepper(core, wait_ms=1.0)
    sig_a, sig_b = _signal(3, 10), _signal(4, 8)
    outs_b = []
    try:
        a, b = stepper.join(), stepper.join()
        ib = 0
        for i in range(10):
            ta = stepper.submit(a, sig_a[i])
            if i in (3, 4):  # b misses two ticks: the round runs without it
                stepper.result(a, ta)
                continue
            tb = stepper.submit(b, sig_b[ib])
            ib += 1
            stepper.result(a, ta)
            outs_b.append(stepper.result(b, tb))
        assert [r.masked_late for r in stepper.rounds][3:5] == [1, 1]
    finally:
        core.close()
    assert _tokens(outs_b) == _tokens(_single(bundle, sig_b))


def test_sampling_is_per_slot_and_a_greedy_slot_stays_exact_beside_a_sampling_one(bundle):
    frames = {slot: _signal(slot, 8) for slot in range(2)}
    core = CodecCore(bundle, 2, GREEDY)
    try:
        core.set_sampling(1, temperature=1.0, temperature_text=1.0)
        outs = [core.step({s: frames[s][i] for s in range(2)}) for i in range(8)]
    finally:
        core.close()
    assert _tokens([o[0] for o in outs]) == _tokens(_single(bundle, frames[0]))
    greedy_b = _tokens(_single(bundle, frames[1]))
    assert _tokens([o[1] for o in outs]) != greedy_b


def test_torch_resampler_is_an_exact_frame_delayed_resampling():
    from duplex.models.codec_lm.resample import SoxrFrameResampler, TorchFrameResampler

    t = np.arange(16000) / 16000
    x = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    rs = TorchFrameResampler(16000, 24000, 1280, slots=2, device="cpu")
    active = torch.tensor([True, True])
    out = np.concatenate(
        [rs.process(torch.from_numpy(np.stack([x[i : i + 1280]] * 2)), active)[0].numpy() for i in range(0, 16000 - 1279, 1280)]
    )
    assert len(out) == 12 * 1920
    delay = rs.width * 24000 / 16000 / 24000  # seconds
    ref = 0.5 * np.sin(2 * np.pi * 440 * (np.arange(len(out)) / 24000 - delay))
    assert np.max(np.abs(out[480:] - ref[480:])) < 0.02
    soxr = SoxrFrameResampler(16000, 24000, 1920)
    assert all(len(soxr.process(x[i : i + 1280])) == 1920 for i in range(0, 12800, 1280))


# ---------------------------------------------------------------- through the engine


def _config(rate: int = 16000) -> object:
    return config_from_dict(
        {
            "audio": {"input_sample_rate": rate, "output_sample_rate": 24000, "frame_ms": 80},
            "engine": {"max_sessions": 2},
            "models": {"kind": "scripted"},  # the model object is handed to the runtime
        }
    )


def _speech_then_silence() -> np.ndarray:
    import soundfile as sf

    speech, rate = sf.read(SPEECH, dtype="float32")
    assert rate == 16000
    return np.concatenate([silence(0.5), speech[:32000], silence(2.0)])


def test_offline_run_reports_turns_and_agent_speech_aligned_with_its_text(bundle):
    from duplex.models.codec_lm.model import CodecLMModel
    from duplex.runtime.runtime import Runtime

    config = _config()
    model = CodecLMModel(config, CodecLmConfig(slots=1, threads=1, seed=1), bundle=bundle)
    rt = Runtime(config, model=model, clock="offline")
    try:
        s = rt.open_session("tiny")
        rt.run_offline(s, _speech_then_silence(), tail_s=0.0)
        events = s.channel.drain()
    finally:
        rt.close()
    types = [e.type for e in events]
    assert "user.speech_started" in types and "turn.taken" in types
    started = [e for e in events if e.type == "agent.audio.started"]
    assert started, "random weights make noise: some agent speech is reported"
    audio_frames = {(e.response_id, e.t_ms) for e in events if e.type == "agent.audio"}
    deltas = [e for e in events if e.type == "agent.text.delta"]
    assert deltas and all((d.response_id, d.t_ms) in audio_frames for d in deltas)
    assert all(len(e.samples) == 1920 for e in events if e.type == "agent.audio")


def test_real_time_sessions_on_their_own_threads_share_each_batch_step(bundle):
    from duplex.models.codec_lm.model import CodecLMModel
    from duplex.runtime.runtime import Runtime

    config = _config()
    model = CodecLMModel(config, CodecLmConfig(slots=2, threads=1, batch_wait_ms=60.0), bundle=bundle)
    rt = Runtime(config, model=model, clock="realtime")
    try:
        sessions = [rt.open_session(f"rt{i}") for i in range(2)]
        audio = _speech_then_silence()[: 16000 * 2]
        for s in sessions:
            s.push_audio(audio)
        deadline = time.monotonic() + 10.0
        while min(s.ticks for s in sessions) < 20 and time.monotonic() < deadline:
            time.sleep(0.05)
        rounds = list(model.stepper.rounds)
    finally:
        rt.close()
    assert min(s.ticks for s in sessions) >= 20
    assert sum(r.stepped for r in rounds) >= 40
    shared = sum(1 for r in rounds if r.stepped == 2)
    assert shared >= 0.7 * len(rounds), [(r.stepped, r.masked_late) for r in rounds]


def test_the_tiny_profiles_echo_guard_counts_in_its_own_80_ms_frames(tiny_dir, bundle):
    """The echo guard of a codec-LM session runs on the profile's 80 ms frames: its
    echo tail lasts as long in stream time as a 32 ms guard's, not 2.5 times longer."""
    import echo_path

    from duplex.config import load_config
    from duplex.models.codec_lm.model import CodecLMModel
    from duplex.policy.echo import EchoEstimator
    from duplex.runtime.runtime import Runtime

    config = load_config("codec-lm-tiny", [f"models.codec_lm.path={json.dumps(str(tiny_dir))}", "models.codec_lm.slots=1", "engine.max_sessions=1"])
    assert config.audio.frame_ms == 80 and config.echo.guard
    rt = Runtime(config, model=CodecLMModel(config, bundle=bundle), clock="offline")
    try:
        s = rt.open_session("echo")
        guard = s.echo_guard
        assert guard is not None and guard.frame_ms == 80.0
        rate = config.audio.input_sample_rate
        tail = echo_path.echo_tail_ms(guard, s.frame_samples, rate)
    finally:
        rt.close()
    reference = echo_path.echo_tail_ms(EchoEstimator(32.0), rate * 32 // 1000, rate)
    assert abs(tail - reference) <= 80.0 + 32.0, (tail, reference)


def test_duplex_run_with_the_tiny_profile(tiny_dir, tmp_path):
    from duplex import config as config_module

    assert "codec_lm" in config_module.ModelsConfig.__dataclass_fields__
    import soundfile as sf

    from duplex.cli import main

    wav = tmp_path / "in.wav"
    sf.write(wav, _speech_then_silence()[8000:40000], 16000)
    out = tmp_path / "run"
    overrides = {
        "models.codec_lm.path": json.dumps(str(tiny_dir)),
        "models.codec_lm.slots": "1",  # one session: the smallest batch (the babble never ends; tail is 15 s)
        "engine.max_sessions": "1",
        "audio.input_sample_rate": "16000",
    }
    args = ["run", str(wav), "--out", str(out), "--no-plot", "--quiet", "--config", "codec-lm-tiny"]
    for key, value in overrides.items():
        args += ["--set", f"{key}={value}"]
    rc = main(args)
    assert rc == 0
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    assert any(e["type"] == "agent.audio.started" for e in events)
    assert (out / "conversation.wav").is_file()
