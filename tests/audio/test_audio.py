"""Audio primitives: ring buffer bounds, resampling, WAV validation."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from duplex.audio import (
    RingBuffer,
    StreamResampler,
    float_to_pcm16,
    pcm16_to_float,
    read_wav,
    resample,
)
from duplex.audio.playout import PlayoutQueue
from duplex.errors import AudioFormatError


def test_ring_buffer_keeps_the_latest_samples_by_absolute_index():
    rb = RingBuffer(10)
    rb.write(np.arange(7, dtype=np.float32))
    rb.write(np.arange(7, 15, dtype=np.float32))
    assert rb.total_written == 15
    assert len(rb) == 10
    np.testing.assert_array_equal(rb.latest(3), [12, 13, 14])
    np.testing.assert_array_equal(rb.since(8), np.arange(8, 15))
    np.testing.assert_array_equal(rb.since(0), np.arange(5, 15))  # clamped to what is kept


def test_streaming_resampler_matches_one_shot_length_and_content():
    sr_in, sr_out = 16000, 24000
    t = np.arange(sr_in) / sr_in
    x = np.sin(2 * np.pi * 440 * t).astype(np.float32)
    rs = StreamResampler(sr_in, sr_out)
    parts = [rs.process(x[i : i + 512]) for i in range(0, len(x), 512)]
    parts.append(rs.process(np.zeros(0, np.float32), last=True))
    y = np.concatenate(parts)
    ref = resample(x, sr_in, sr_out)
    assert abs(len(y) - len(ref)) <= 2
    n = min(len(y), len(ref)) - 200
    assert np.max(np.abs(y[200:n] - ref[200:n])) < 1e-3


def test_pcm16_round_trip():
    x = np.array([0.0, 0.5, -0.5, 0.999], np.float32)
    np.testing.assert_allclose(pcm16_to_float(float_to_pcm16(x)), x, atol=1 / 32768)
    with pytest.raises(AudioFormatError, match="odd byte count"):
        pcm16_to_float(b"\x00\x01\x02")


def test_read_wav_rejects_stereo_wrong_rate_empty_and_corrupt(tmp_path):
    stereo = tmp_path / "stereo.wav"
    sf.write(stereo, np.zeros((1600, 2), np.float32), 16000)
    with pytest.raises(AudioFormatError, match="2 channels"):
        read_wav(stereo)
    rate = tmp_path / "rate.wav"
    sf.write(rate, np.zeros(800, np.float32), 8000)
    with pytest.raises(AudioFormatError, match="8000 Hz"):
        read_wav(rate, expect_rate=16000)
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0, np.float32), 16000)
    with pytest.raises(AudioFormatError, match="no samples"):
        read_wav(empty)
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00garbage" * 10)
    with pytest.raises(AudioFormatError, match="cannot read"):
        read_wav(corrupt)


def test_playout_tracks_heard_words_and_flushes():
    q = PlayoutQueue(1000)
    track = q.start("r1")
    q.append(np.ones(300, np.float32), "one two three", [("one", 0, 100), ("two", 100, 200), ("three", 200, 300)])
    frame, real = q.pop(160)
    assert real == 160 and track.played == 160
    assert track.heard_text() == "one two"  # "two" is past its midpoint (150)
    assert q.flush() == 140
    frame, real = q.pop(100)
    assert real == 0 and not frame.any()
