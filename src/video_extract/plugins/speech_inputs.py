"""What the speech plugins get from the shared stages: the 16 kHz mono audio and its speech regions."""

from __future__ import annotations

import numpy as np

from video_extract.media import WavSamples, wav_samples
from video_extract.plugins.base import Inputs
from video_extract.results import AudioResult, VadResult
from video_extract.speech.vad import SpeechSegment

SPEECH_RATE = 16000


def speech_inputs(inputs: Inputs) -> tuple[WavSamples | np.ndarray, float, list[SpeechSegment] | None]:
    """Mono samples at 16 kHz, read from the file a window at a time (a ``WavSamples``; an
    array, resampled and downmixed, when the audio stage made another format), the time of the first sample on the source timeline, and the
    VAD's speech regions relative to the samples (None when no VAD stage was planned)."""
    audio = inputs[AudioResult]
    samples = wav_samples(audio.path, sample_rate=SPEECH_RATE)
    speech = None
    if VadResult in inputs:
        speech = [SpeechSegment(s.start - audio.start_time, s.end - audio.start_time) for s in inputs[VadResult].segments]
    return samples, audio.start_time, speech
