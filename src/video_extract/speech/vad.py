"""Voice activity with Silero VAD v6 (the ONNX model that ships inside faster-whisper).

One entry point, ``speech_segments``, reused by whoever needs to know where speech is: the
``vad`` operation itself, transcription (which decodes only speech) and diarization (which
embeds only speech). It is computed once per input: those plugins read the ``vad`` stage's
output rather than running the model again (``plugins/speech_inputs.py``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache

import numpy as np


@dataclass(frozen=True)
class SpeechSegment:
    start: float
    end: float


#: Silero's input: 512-sample chunks (32 ms at 16 kHz), each with the 64 samples before it.
CHUNK = 512
CONTEXT = 64
#: Chunks per model call (16 s of audio); the LSTM state carries across calls. faster-whisper
#: uses 10,000 (320 s), whose activations take ~140 MB more; the probabilities are the same bit
#: for bit at 250, 500, 1,000, 2,000 and 10,000 (measured on the AMI excerpts), and faster.
BATCH = 500


@cache
def _silero():
    """The Silero VAD model faster-whisper ships, loaded once per process (faster-whisper's
    ``get_vad_model`` loads it anew each call), on one thread as faster-whisper runs it, in ONNX
    Runtime's memory arena: faster-whisper's session runs without it, and glibc 2.36 reuses a
    freed aligned block only with room to spare, so a 10 min VAD's peak grew by 38-47 MiB in some
    runs where it grew by under 30 in others."""
    from faster_whisper.utils import get_assets_path

    from video_extract.models.runtime import onnx_session

    return onnx_session(os.path.join(get_assets_path(), "silero_vad_v6.onnx"), threads=1)


def speech_probabilities(samples, batch: int = BATCH) -> np.ndarray:
    """Silero's speech probability per 512-sample chunk, computed block by block.

    faster-whisper's ``SileroVADModel`` takes the whole track and makes two padded copies of it
    (an hour at 16 kHz: ~0.7 GB); this reads ``batch`` chunks at a time from ``samples`` (an
    array or a ``WavSamples``) and reproduces its input exactly: zero padding to a whole chunk
    (a full chunk when already whole), each chunk's context the tail of the previous one
    (zeros for the first), and the last chunk's final 64 samples zeroed as its in-place
    context setup does.
    """
    session = _silero()
    n = len(samples)
    padded = n + CHUNK - n % CHUNK
    h = np.zeros((1, 1, 128), dtype="float32")
    c = np.zeros((1, 1, 128), dtype="float32")
    tail = np.zeros((1, CONTEXT), np.float32)
    out = []
    step = batch * CHUNK
    for start in range(0, padded, step):
        stop = min(padded, start + step)
        block = np.zeros(stop - start, np.float32)
        piece = np.asarray(samples[start : min(n, stop)], dtype=np.float32)
        block[: len(piece)] = piece
        chunks = block.reshape(-1, CHUNK)
        if stop == padded:
            chunks[-1, -CONTEXT:] = 0
        context = np.concatenate([tail, chunks[:-1, -CONTEXT:]])
        tail = chunks[-1:, -CONTEXT:].copy()
        output, h, c = session.run(None, {"input": np.concatenate([context, chunks], 1), "h": h, "c": c})
        out.append(output)
    return np.concatenate(out)


def speech_segments(
    samples,
    sample_rate: int = 16000,
    threshold: float = 0.5,
    min_speech_duration_ms: int = 100,
    min_silence_duration_ms: int = 200,
    speech_pad_ms: int = 30,
) -> list[SpeechSegment]:
    """Speech regions of mono float32 audio (an array or a ``WavSamples``), in seconds from the
    start of ``samples``; what faster-whisper's ``get_speech_timestamps`` gives, in bounded memory."""
    from faster_whisper.vad import VadOptions

    if len(samples) == 0:
        return []
    options = VadOptions(
        threshold=threshold,
        min_speech_duration_ms=min_speech_duration_ms,
        min_silence_duration_ms=min_silence_duration_ms,
        speech_pad_ms=speech_pad_ms,
    )
    chunks = _timestamps(speech_probabilities(samples), len(samples), options, sample_rate)
    return [SpeechSegment(round(c["start"] / sample_rate, 3), round(c["end"] / sample_rate, 3)) for c in chunks]


def _timestamps(speech_probs: np.ndarray, audio_length_samples: int, vad_options, sampling_rate: int) -> list[dict]:
    """faster-whisper 1.2's ``get_speech_timestamps`` (MIT) from the probabilities on: the
    hysteresis over chunks, then the padding. Kept line for line so results stay identical
    (``tests/test_speech.py`` compares the two)."""
    threshold = vad_options.threshold
    neg_threshold = vad_options.neg_threshold
    min_speech_duration_ms = vad_options.min_speech_duration_ms
    max_speech_duration_s = vad_options.max_speech_duration_s
    min_silence_duration_ms = vad_options.min_silence_duration_ms
    window_size_samples = CHUNK
    speech_pad_ms = vad_options.speech_pad_ms
    min_speech_samples = sampling_rate * min_speech_duration_ms / 1000
    speech_pad_samples = sampling_rate * speech_pad_ms / 1000
    max_speech_samples = sampling_rate * max_speech_duration_s - window_size_samples - 2 * speech_pad_samples
    min_silence_samples = sampling_rate * min_silence_duration_ms / 1000
    min_silence_samples_at_max_speech = sampling_rate * 98 / 1000

    triggered = False
    speeches = []
    current_speech: dict = {}
    if neg_threshold is None:
        neg_threshold = max(threshold - 0.15, 0.01)
    temp_end = 0  # a potential segment end (tolerating some silence)
    prev_end = next_start = 0  # segment limits in case the maximum segment size is reached

    for i, speech_prob in enumerate(speech_probs):
        if (speech_prob >= threshold) and temp_end:
            temp_end = 0
            if next_start < prev_end:
                next_start = window_size_samples * i

        if (speech_prob >= threshold) and not triggered:
            triggered = True
            current_speech["start"] = window_size_samples * i
            continue

        if triggered and (window_size_samples * i) - current_speech["start"] > max_speech_samples:
            if prev_end:
                current_speech["end"] = prev_end
                speeches.append(current_speech)
                current_speech = {}
                if next_start < prev_end:  # reached silence before and is still not speech
                    triggered = False
                else:
                    current_speech["start"] = next_start
                prev_end = next_start = temp_end = 0
            else:
                current_speech["end"] = window_size_samples * i
                speeches.append(current_speech)
                current_speech = {}
                prev_end = next_start = temp_end = 0
                triggered = False
                continue

        if (speech_prob < neg_threshold) and triggered:
            if not temp_end:
                temp_end = window_size_samples * i
            if (window_size_samples * i) - temp_end > min_silence_samples_at_max_speech:
                prev_end = temp_end
            if (window_size_samples * i) - temp_end < min_silence_samples:
                continue
            current_speech["end"] = temp_end
            if (current_speech["end"] - current_speech["start"]) > min_speech_samples:
                speeches.append(current_speech)
            current_speech = {}
            prev_end = next_start = temp_end = 0
            triggered = False
            continue

    if current_speech and (audio_length_samples - current_speech["start"]) > min_speech_samples:
        current_speech["end"] = audio_length_samples
        speeches.append(current_speech)

    for i, speech in enumerate(speeches):
        if i == 0:
            speech["start"] = int(max(0, speech["start"] - speech_pad_samples))
        if i != len(speeches) - 1:
            silence_duration = speeches[i + 1]["start"] - speech["end"]
            if silence_duration < 2 * speech_pad_samples:
                speech["end"] += int(silence_duration // 2)
                speeches[i + 1]["start"] = int(max(0, speeches[i + 1]["start"] - silence_duration // 2))
            else:
                speech["end"] = int(min(audio_length_samples, speech["end"] + speech_pad_samples))
                speeches[i + 1]["start"] = int(max(0, speeches[i + 1]["start"] - speech_pad_samples))
        else:
            speech["end"] = int(min(audio_length_samples, speech["end"] + speech_pad_samples))
    return speeches


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
