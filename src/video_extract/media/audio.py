"""Audio, streamed and resampled by FFmpeg's swresample (through PyAV).

Chunks come out as interleaved int16 or float32 arrays of shape (samples, channels), so
16 kHz mono for speech models, or whatever a user asks for in ``audio.wav``, is produced in
one pass without holding the whole track.
"""

from __future__ import annotations

import wave
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import av
import numpy as np

from video_extract.errors import InputError
from video_extract.media.container import decode_stream, open_input

SampleFormat = Literal["s16", "flt"]


@dataclass
class AudioChunk:
    samples: np.ndarray  # (n, channels), int16 or float32
    time: float  # seconds of the first sample, source timeline


def select_audio_stream(container, path, stream: int | None):
    streams = container.streams.audio
    if not streams:
        raise InputError("has no audio stream", path)
    if stream is None:
        return streams[0]
    if stream >= len(streams):
        raise InputError(f"has {len(streams)} audio stream(s); stream {stream} does not exist", path)
    return streams[stream]


def iter_audio(
    path: str | Path,
    *,
    sample_rate: int = 16000,
    channels: int = 1,
    stream: int | None = None,
    sample_format: SampleFormat = "s16",
) -> Iterator[AudioChunk]:
    with open_input(path) as container:
        source = select_audio_stream(container, path, stream)
        resampler = av.AudioResampler(format=sample_format, layout=_layout(channels), rate=sample_rate)
        for frame in decode_stream(path, container, source):
            for out in resampler.resample(frame):
                yield AudioChunk(_interleaved(out, channels), float(out.time or 0.0) if out.pts is not None else 0.0)
        for out in resampler.resample(None):  # flush the resampler's delay line
            yield AudioChunk(_interleaved(out, channels), float(out.time or 0.0) if out.pts is not None else 0.0)


def _layout(channels: int) -> str:
    return {1: "mono", 2: "stereo", 3: "2.1", 4: "quad", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}[channels]


def _interleaved(frame, channels: int) -> np.ndarray:
    # Packed formats arrive as one plane of shape (1, n * channels).
    return frame.to_ndarray().reshape(-1, channels)


@dataclass
class AudioData:
    samples: np.ndarray  # float32 (n,) for mono, (n, channels) otherwise, in [-1, 1]
    sample_rate: int
    start_time: float

    @property
    def duration(self) -> float:
        return len(self.samples) / self.sample_rate


def decode_audio(path: str | Path, *, sample_rate: int = 16000, channels: int = 1, stream: int | None = None) -> AudioData:
    """The whole track in memory as float32: for models that want an array (16 kHz mono is 230 MB per hour)."""
    chunks = list(iter_audio(path, sample_rate=sample_rate, channels=channels, stream=stream, sample_format="flt"))
    start = chunks[0].time if chunks else 0.0
    samples = np.concatenate([c.samples for c in chunks]) if chunks else np.zeros((0, channels), np.float32)
    return AudioData(samples[:, 0] if channels == 1 else samples, sample_rate, start)


def write_wav(path: str | Path, chunks: Iterator[AudioChunk], *, sample_rate: int, channels: int) -> tuple[int, float]:
    """Stream int16 chunks into a WAV file; returns (samples written, time of the first sample)."""
    written = 0
    start = None
    with wave.open(str(path), "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(sample_rate)
        for chunk in chunks:
            if start is None:
                start = chunk.time
            out.writeframes(np.ascontiguousarray(chunk.samples, dtype="<i2").tobytes())
            written += len(chunk.samples)
    return written, start or 0.0


def read_wav(path: str | Path) -> AudioData:
    """A WAV written by ``write_wav``, as float32 in [-1, 1]."""
    with wave.open(str(path), "rb") as f:
        channels, rate, n = f.getnchannels(), f.getframerate(), f.getnframes()
        data = np.frombuffer(f.readframes(n), dtype="<i2").astype(np.float32) / 32768.0
    data = data.reshape(-1, channels)
    return AudioData(data[:, 0] if channels == 1 else data, rate, 0.0)


class WavSamples:
    """The samples of a mono 16-bit WAV (as ``write_wav`` makes), read from the file a slice
    at a time as float32 (the values ``read_wav`` gives): stages that walk a long recording in
    windows hold one window, not the track (an hour at 16 kHz is 230 MB as float32). Read with
    ``seek`` + ``read``, not ``mmap``, so pages already used do not stay in the process's RSS."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        with wave.open(str(path), "rb") as f:
            if f.getnchannels() != 1 or f.getsampwidth() != 2:
                raise ValueError(f"{path}: WavSamples reads mono 16-bit WAV only")
            self.sample_rate, self.frames = f.getframerate(), f.getnframes()
        self._offset = _data_offset(self.path)

    def __len__(self) -> int:
        return self.frames

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate

    def __getitem__(self, key: slice) -> np.ndarray:
        if not isinstance(key, slice) or key.step not in (None, 1):
            raise TypeError("WavSamples takes contiguous slices")
        start, stop, _ = key.indices(self.frames)
        count = max(0, stop - start)
        with open(self.path, "rb") as f:
            f.seek(self._offset + 2 * start)
            data = np.frombuffer(f.read(2 * count), dtype="<i2")
        return data.astype(np.float32) / 32768.0

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        """The whole track (for callers that need one array)."""
        out = self[:]
        return out if dtype is None else out.astype(dtype, copy=False)


def _data_offset(path: Path) -> int:
    """Byte offset of a RIFF/WAVE file's ``data`` chunk payload."""
    with open(path, "rb") as f:
        f.seek(12)
        while True:
            head = f.read(8)
            if len(head) < 8:
                raise ValueError(f"{path}: no data chunk")
            size = int.from_bytes(head[4:], "little")
            if head[:4] == b"data":
                return f.tell()
            f.seek(size + (size & 1), 1)


def wav_samples(path: str | Path, *, sample_rate: int) -> WavSamples | np.ndarray:
    """Mono samples at ``sample_rate`` for windowed readers: the file read lazily when it is
    already in that format, else the resampled track in memory (a spec pinned another one)."""
    with wave.open(str(path), "rb") as f:
        same = f.getframerate() == sample_rate and f.getnchannels() == 1 and f.getsampwidth() == 2
    if same:
        return WavSamples(path)
    return read_wav_as(path, sample_rate=sample_rate).samples


def read_wav_as(path: str | Path, *, sample_rate: int, channels: int = 1) -> AudioData:
    """A WAV written by ``write_wav``, in the format a model needs: read as is when it already
    is, else resampled and remixed by swresample (a spec may pin another format for the audio
    stage; a model fed the wrong rate gives wrong answers, not errors)."""
    with wave.open(str(path), "rb") as f:
        same = f.getframerate() == sample_rate and f.getnchannels() == channels
    if same:
        return read_wav(path)
    audio = decode_audio(path, sample_rate=sample_rate, channels=channels)
    return AudioData(audio.samples, sample_rate, 0.0)
