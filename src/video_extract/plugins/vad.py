"""vad: where speech is, from 16 kHz mono audio."""

from __future__ import annotations

from video_extract.media import wav_samples
from video_extract.plugins.base import Inputs, Plugin, StageContext
from video_extract.results import AudioResult, TimeSpan, VadResult
from video_extract.spec import VoiceActivity
from video_extract.speech.vad import speech_segments


class VadPlugin(Plugin):
    def run(self, ctx: StageContext, inputs: Inputs, params: VoiceActivity) -> None:
        audio_record = inputs[AudioResult]
        samples = wav_samples(audio_record.path, sample_rate=16000)  # Silero's rate, read in blocks
        offset = audio_record.start_time
        segments = speech_segments(
            samples,
            16000,
            threshold=params.threshold,
            min_speech_duration_ms=params.min_speech_duration_ms,
            min_silence_duration_ms=params.min_silence_duration_ms,
            speech_pad_ms=params.speech_pad_ms,
        )
        ctx.write(
            VadResult(
                duration=round(len(samples) / 16000, 3),
                speech_duration=round(sum(s.end - s.start for s in segments), 3),
                segments=[TimeSpan(start=round(s.start + offset, 3), end=round(s.end + offset, 3)) for s in segments],
            )
        )
