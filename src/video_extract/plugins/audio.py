"""audio: the audio track as 16-bit PCM WAV at the requested rate and channel count."""

from __future__ import annotations

from video_extract.errors import InputError
from video_extract.media import iter_audio, write_wav
from video_extract.plugins.base import Inputs, Plugin, StageContext
from video_extract.results import AudioResult
from video_extract.spec import Audio


class AudioPlugin(Plugin):
    def run(self, ctx: StageContext, inputs: Inputs, params: Audio) -> None:
        chunks = iter_audio(ctx.source.path, sample_rate=params.sample_rate, channels=params.channels, stream=params.stream)
        samples, start = write_wav(ctx.path("audio.wav"), chunks, sample_rate=params.sample_rate, channels=params.channels)
        if samples == 0:
            raise InputError("the audio stream holds no decodable samples", ctx.source.path)
        ctx.write(
            AudioResult(
                sample_rate=params.sample_rate,
                channels=params.channels,
                samples=samples,
                duration=round(samples / params.sample_rate, 6),
                start_time=round(start, 6),
            )
        )
