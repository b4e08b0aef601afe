"""Speaker attribution: the transcript, with each segment and word given the diarized speaker."""

from __future__ import annotations

import json

from video_extract.plugins.base import Artifact, Plugin, StageContext
from video_extract.plugins.transcription import write_transcript
from video_extract.spec import Transcription
from video_extract.speech.attribution import attribute_speakers


class SpeakerAttributionPlugin(Plugin):
    def run(self, ctx: StageContext, inputs: dict[str, Artifact], params: Transcription) -> dict:
        transcript = json.loads(inputs["Transcription"].file("transcription.json").read_text())
        turns = json.loads(inputs["Diarization"].file("diarization.json").read_text())["segments"]
        transcript["segments"] = attribute_speakers(transcript["segments"], turns)
        write_transcript(ctx, transcript)
        return {"segments": len(transcript["segments"]), "speakers": sorted({s["speaker"] for s in transcript["segments"] if s.get("speaker")})}
