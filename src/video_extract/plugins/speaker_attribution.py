"""Speaker attribution: the transcript, with each segment and word given the diarized speaker."""

from __future__ import annotations

from video_extract.plugins.base import Inputs, Plugin, StageContext
from video_extract.plugins.transcription import write_transcript
from video_extract.results import DiarizationResult, TranscriptionResult
from video_extract.spec import Transcription
from video_extract.speech.attribution import attribute_speakers


class SpeakerAttributionPlugin(Plugin):
    def run(self, ctx: StageContext, inputs: Inputs, params: Transcription) -> None:
        transcript = inputs[TranscriptionResult]
        segments = attribute_speakers(transcript.segments, inputs[DiarizationResult].segments)
        write_transcript(ctx, transcript.model_copy(update={"segments": segments}), params)
