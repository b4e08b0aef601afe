"""vad: where speech is, from 16 kHz mono audio."""

from __future__ import annotations

from video_extract.media import read_wav
from video_extract.plugins.base import Artifact, Plugin, StageContext, write_json
from video_extract.spec import VoiceActivity
from video_extract.speech.vad import speech_segments


class VadPlugin(Plugin):
    def run(self, ctx: StageContext, inputs: dict[str, Artifact], params: VoiceActivity) -> dict:
        audio = read_wav(inputs["Audio"].file("audio.wav"))
        offset = float(inputs["Audio"].data.get("start_time", 0.0))
        segments = speech_segments(
            audio.samples,
            audio.sample_rate,
            threshold=params.threshold,
            min_speech_duration_ms=params.min_speech_duration_ms,
            min_silence_duration_ms=params.min_silence_duration_ms,
            speech_pad_ms=params.speech_pad_ms,
        )
        speech = round(sum(s.end - s.start for s in segments), 3)
        write_json(
            ctx.work_dir / "vad.json",
            {
                "duration": round(audio.duration, 3),
                "speech_duration": speech,
                "segments": [{"start": round(s.start + offset, 3), "end": round(s.end + offset, 3)} for s in segments],
            },
        )
        return {"segments": len(segments), "speech_duration": speech, "audio_start": offset}
