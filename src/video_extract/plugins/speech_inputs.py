"""What the speech plugins get from the shared stages: the 16 kHz mono audio and its speech regions."""

from __future__ import annotations

import numpy as np

from video_extract.errors import OperationError
from video_extract.media import read_wav
from video_extract.plugins.base import Inputs
from video_extract.results import AudioResult, VadResult
from video_extract.speech.vad import SpeechSegment

SPEECH_RATE = 16000


def speech_inputs(inputs: Inputs) -> tuple[np.ndarray, float, list[SpeechSegment] | None]:
    """Mono samples at 16 kHz, the time of the first sample on the source timeline, and the
    VAD's speech regions relative to the samples (None when no VAD stage was planned)."""
    audio = inputs[AudioResult]
    if audio.sample_rate != SPEECH_RATE or audio.channels != 1:
        raise OperationError("speech", f"needs 16 kHz mono audio, got {audio.sample_rate} Hz with {audio.channels} channel(s)")
    samples = read_wav(audio.path).samples
    speech = None
    if VadResult in inputs:
        speech = [SpeechSegment(s.start - audio.start_time, s.end - audio.start_time) for s in inputs[VadResult].segments]
    return samples, audio.start_time, speech
