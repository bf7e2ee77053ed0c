"""The conversation writer: every channel in stream time to the sample, whatever sizes
the resampler hands back; the file as long as the stream; a valid WAV at every sync."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from alignment import lag

from duplex.audio import ConversationWriter, StreamResampler, resample, write_conversation
from duplex.audio.conversation_writer import AGENT_ONLY, WriterClosed

IN, OUT = 16000, 24000
LSB = 1.5 / 32768  # one PCM16 step, and rounding


def _noise(n: int, seed: int, amp: float = 0.3) -> np.ndarray:
    return (amp * np.random.default_rng(seed).uniform(-1, 1, n)).astype(np.float32)


def _chunks(x: np.ndarray, sizes: list[int]) -> list[np.ndarray]:
    out, i, k = [], 0, 0
    while i < len(x):
        out.append(x[i : i + sizes[k % len(sizes)]])
        i += sizes[k % len(sizes)]
        k += 1
    return out


def test_the_resampler_really_hands_back_uneven_blocks():
    """The premise: 512 samples in do not give 768 out each time (nor the first time)."""
    rs = StreamResampler(IN, OUT)
    sizes = {len(rs.process(np.zeros(512, np.float32))) for _ in range(300)}
    assert sizes - {768} and 0 in sizes, sizes


@pytest.mark.parametrize(
    ("user_sizes", "agent_sizes"),
    [
        ([512], [768]),  # one tick at a time: the resampler gives 0, 734, 1468
        ([1, 7, 511, 0, 1000, 3], [768]),  # odd input blocks: odd resampler output
        ([512], [5, 1500, 0, 77, 2]),  # the agent's side in odd blocks too
        ([16000 * 3], [24000 * 3]),  # everything at once
    ],
)
def test_each_channel_is_its_source_in_stream_time(tmp_path, user_sizes, agent_sizes):
    user, agent = _noise(3 * IN, 1), _noise(3 * OUT, 2)
    path = tmp_path / "c.wav"
    with ConversationWriter(path, input_rate=IN, output_rate=OUT) as w:
        # Interleave the two sides as a transport would, each in its own block sizes.
        us, ags = _chunks(user, user_sizes), _chunks(agent, agent_sizes)
        for k in range(max(len(us), len(ags))):
            if k < len(us):
                w.write_user(us[k])
            if k < len(ags):
                w.write_agent(ags[k])
    data, rate = sf.read(str(path), dtype="float32")
    assert rate == OUT and data.shape == (3 * OUT, 2)  # exactly the stream's length
    expected_user = resample(user, IN, OUT)  # the whole signal at once: no block edges
    assert np.abs(data[:, 0] - expected_user).max() < LSB
    assert np.abs(data[:, 1] - agent).max() < LSB


def test_a_click_lands_at_its_stream_time_on_both_channels(tmp_path):
    ticks, n_in, n_out = 200, 512, 768
    user = np.zeros(ticks * n_in, np.float32)
    agent = np.zeros(ticks * n_out, np.float32)
    for t_s in (0.1, 3.2, 6.3):  # near the start, the middle and the end
        user[int(t_s * IN)] = 0.9
        agent[int(t_s * OUT) + 100] = 0.9  # 100 output samples after the user's click
    path = tmp_path / "c.wav"
    with ConversationWriter(path, input_rate=IN, output_rate=OUT) as w:
        for i in range(ticks):
            w.write_tick(user[i * n_in : (i + 1) * n_in], agent[i * n_out : (i + 1) * n_out])
    data, _ = sf.read(str(path), dtype="float32")
    for t_s in (0.1, 3.2, 6.3):
        k = int(t_s * OUT)
        window = slice(k - 2000, k + 2000)
        assert int(np.argmax(np.abs(data[window, 0]))) == 2000  # the user's click, at its time
        assert int(np.argmax(np.abs(data[window, 1]))) == 2100
        assert lag(data[window, 0], resample(user, IN, OUT)[window], 500) == 0


def test_the_file_ends_at_the_stream_end_with_the_resamplers_tail(tmp_path):
    """The last user samples sit in the resampler until close(): they are written, and the
    file is as long as the stream, not a block shorter or longer."""
    user = np.zeros(10 * 512, np.float32)
    user[-40:] = 0.5  # sound in the last 2.5 ms
    path = tmp_path / "c.wav"
    w = ConversationWriter(path, input_rate=IN, output_rate=OUT)
    for i in range(10):
        w.write_tick(user[i * 512 : (i + 1) * 512], np.zeros(768, np.float32))
    assert w.samples_written < 10 * 768  # the tail is still inside the resampler
    w.close()
    data, _ = sf.read(str(path), dtype="float32")
    assert len(data) == 10 * 768 == w.stream_samples
    assert np.abs(data[-50:, 0]).max() > 0.4


def test_a_synced_file_holds_everything_written_up_to_the_sync(tmp_path):
    """What a crash would leave: a readable WAV of all the audio before the last sync."""
    path = tmp_path / "c.wav"
    w = ConversationWriter(path, input_rate=IN, output_rate=OUT)
    for _ in range(30):
        w.write_tick(_noise(512, 3), _noise(768, 4))
    w.sync()
    synced = w.samples_written
    for _ in range(10):
        w.write_tick(_noise(512, 3), _noise(768, 4))  # not synced yet: a crash loses these
    info = sf.info(str(path))
    assert info.channels == 2 and info.frames == synced > 29 * 768
    data, _ = sf.read(str(path), dtype="float32", frames=synced)
    assert len(data) == synced and np.abs(data[-100:, 1]).max() > 0.1
    w.close()
    assert sf.info(str(path)).frames == 40 * 768
    with pytest.raises(WriterClosed):
        w.write_user(np.zeros(512, np.float32))


def test_sync_from_another_thread_while_a_session_writes(tmp_path):
    import threading

    path = tmp_path / "c.wav"
    w = ConversationWriter(path, input_rate=IN, output_rate=OUT)
    agent = _noise(300 * 768, 6)
    done = threading.Event()

    def session_thread() -> None:
        for i in range(300):
            w.write_tick(np.zeros(512, np.float32), agent[i * 768 : (i + 1) * 768])
        done.set()

    t = threading.Thread(target=session_thread)
    t.start()
    while not done.is_set():
        w.sync()
    t.join()
    w.close()
    data, _ = sf.read(str(path), dtype="float32")
    assert np.abs(data[:, 1] - agent).max() < LSB  # nothing lost or moved by the syncs


def test_agent_only_output_at_the_input_rate_is_as_long_as_the_input(tmp_path):
    ticks = 37
    agent = _noise(ticks * 768, 5)
    path = tmp_path / "output.wav"
    write_conversation(
        path, user=None, agent=agent, input_rate=IN, output_rate=OUT, channels=AGENT_ONLY, rate=IN
    )
    data, rate = sf.read(str(path), dtype="float32")
    assert rate == IN and data.ndim == 1 and len(data) == ticks * 512
    assert np.abs(data - resample(agent, OUT, IN)).max() < LSB


def test_bad_channels_and_bad_audio_are_refused(tmp_path):
    with pytest.raises(ValueError, match="user' or 'agent"):
        ConversationWriter(tmp_path / "x.wav", input_rate=IN, output_rate=OUT, channels=("left",))  # type: ignore[arg-type]
    from duplex.errors import AudioFormatError

    with ConversationWriter(tmp_path / "y.wav", input_rate=IN, output_rate=OUT) as w, pytest.raises(
        AudioFormatError, match="mono"
    ):
        w.write_user(np.zeros((10, 2), np.float32))
