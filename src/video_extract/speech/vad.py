"""Voice activity with Silero VAD v6 (the ONNX model that ships inside faster-whisper).

One entry point, ``speech_segments``, reused by whoever needs to know where speech is: the
``vad`` operation itself, transcription (which decodes only speech) and diarization (which
embeds only speech). It is computed once per input: those plugins read the ``vad`` stage's
output rather than running the model again (``plugins/speech_inputs.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SpeechSegment:
    start: float
    end: float


def speech_segments(
    samples: np.ndarray,
    sample_rate: int = 16000,
    threshold: float = 0.5,
    min_speech_duration_ms: int = 100,
    min_silence_duration_ms: int = 200,
    speech_pad_ms: int = 30,
) -> list[SpeechSegment]:
    """Speech regions of mono float32 audio, in seconds from the start of ``samples``."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    if len(samples) == 0:
        return []
    options = VadOptions(
        threshold=threshold,
        min_speech_duration_ms=min_speech_duration_ms,
        min_silence_duration_ms=min_silence_duration_ms,
        speech_pad_ms=speech_pad_ms,
    )
    chunks = get_speech_timestamps(np.ascontiguousarray(samples, dtype=np.float32), options, sampling_rate=sample_rate)
    return [SpeechSegment(round(c["start"] / sample_rate, 3), round(c["end"] / sample_rate, 3)) for c in chunks]


def merge_segments(segments: list[SpeechSegment], max_gap: float, pad: float, duration: float) -> list[SpeechSegment]:
    """Pad each segment and join those closer than ``max_gap``: speech recognisers want context,
    not the fine-grained turns a diarizer wants (faster-whisper's own VAD defaults: 2 s, 0.4 s)."""
    merged: list[SpeechSegment] = []
    for seg in segments:
        start, end = max(0.0, seg.start - pad), min(duration, seg.end + pad)
        if merged and start - merged[-1].end <= max_gap:
            merged[-1] = SpeechSegment(merged[-1].start, max(merged[-1].end, end))
        else:
            merged.append(SpeechSegment(start, end))
    return merged
