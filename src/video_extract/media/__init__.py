"""The media layer: everything that touches decoding. PyAV only, no ffmpeg subprocess.

Nothing above this package knows which library decodes: plugins ask for probes, frames and
audio chunks here and receive numpy arrays with times in seconds.
"""

from video_extract.media.audio import AudioChunk, AudioData, WavSamples, decode_audio, iter_audio, read_wav, read_wav_as, wav_samples, write_wav
from video_extract.media.probe import is_still_image, probe
from video_extract.media.video import DecodedFrame, decode_counters, iter_frames, iter_keyframes

__all__ = [
    "AudioChunk",
    "AudioData",
    "DecodedFrame",
    "decode_audio",
    "decode_counters",
    "is_still_image",
    "iter_audio",
    "iter_frames",
    "iter_keyframes",
    "probe",
    "read_wav",
    "read_wav_as",
    "wav_samples",
    "WavSamples",
    "write_wav",
]
