"""Profiles load typed, and bad keys or values fail with an error naming them."""

from __future__ import annotations

import pytest

from duplex.config import CONFIG_DIR, load_config
from duplex.errors import ConfigError


def test_default_profile_loads_with_cascade():
    cfg = load_config("default")
    assert cfg.models.kind == "cascade"
    assert cfg.frame_samples == 512
    assert cfg.output_frame_samples == 768


def test_override_sets_nested_value_with_its_type():
    cfg = load_config("default", ["models.llm.threads=2", "models.tts.engine=espeak", "turn.vad_threshold=0.6"])
    assert cfg.models.llm.threads == 2
    assert cfg.models.tts.engine == "espeak"
    assert cfg.turn.vad_threshold == pytest.approx(0.6)


def test_unknown_key_is_named_in_the_error():
    with pytest.raises(ConfigError, match="treads"):
        load_config("default", ["models.llm.treads=2"])


def test_bad_value_type_is_named_in_the_error():
    with pytest.raises(ConfigError, match="models.llm.threads must be an integer"):
        load_config("default", ["models.llm.threads=fast"])


def test_bad_choice_lists_the_choices():
    with pytest.raises(ConfigError, match="piper"):
        load_config("default", ["models.tts.engine=festival"])


def test_frame_must_fit_both_rates():
    with pytest.raises(ConfigError, match="frame_ms"):
        load_config("default", ["audio.output_sample_rate=22050"])


def test_unknown_profile_lists_known_ones(tmp_path):
    with pytest.raises(ConfigError, match="default"):
        load_config("no-such-profile")


def test_invalid_toml_is_reported(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text("[audio\nframe_ms = 3")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(p)


@pytest.mark.parametrize("profile", sorted(p.stem for p in CONFIG_DIR.glob("*.toml")))
def test_every_shipped_profile_loads(profile):
    cfg = load_config(profile)
    assert cfg.name == profile


def test_a_removed_setting_is_an_unknown_key():
    # engine.workers_per_session was declared and never read: a profile naming it is told so.
    with pytest.raises(ConfigError, match="workers_per_session"):
        load_config("default", ["engine.workers_per_session=2"])

