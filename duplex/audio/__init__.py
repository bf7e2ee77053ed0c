"""Audio primitives: PCM frames, resampling, ring buffers and WAV I/O."""

from duplex.audio.conversation_writer import ConversationWriter, write_conversation
from duplex.audio.frame import AudioFrame, float_to_pcm16, pcm16_to_float
from duplex.audio.resample import StreamResampler, resample
from duplex.audio.ring import RingBuffer
from duplex.audio.wav import read_wav, write_wav

__all__ = [
    "AudioFrame",
    "ConversationWriter",
    "RingBuffer",
    "StreamResampler",
    "float_to_pcm16",
    "pcm16_to_float",
    "read_wav",
    "resample",
    "write_conversation",
    "write_wav",
]
