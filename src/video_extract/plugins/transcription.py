"""transcription: speech to text with word times; segments stream out as they are decoded."""

from __future__ import annotations

from typing import Iterator

from video_extract.plugins.base import Artifact, InputSpec, Plugin, StageContext, write_json
from video_extract.spec import Transcription
from video_extract.speech.subtitles import to_srt, to_vtt
from video_extract.speech.vad import merge_segments, read_speech_inputs
from video_extract.speech.whisper import check_model_name, load_whisper, transcribe

#: Speech regions closer than this are decoded as one piece (faster-whisper's own VAD default).
ASR_MAX_GAP = 2.0
ASR_PAD = 0.3


def write_transcript(ctx: StageContext, transcript: dict) -> None:
    write_json(ctx.work_dir / "transcription.json", transcript)
    (ctx.work_dir / "transcription.srt").write_text(to_srt(transcript["segments"]))
    (ctx.work_dir / "transcription.vtt").write_text(to_vtt(transcript["segments"]))


class TranscriptionPlugin(Plugin):
    def validate(self, params: Transcription) -> None:
        check_model_name(params.model)

    def requires(self, params: Transcription) -> list[InputSpec]:
        needs = super().requires(params)
        return needs if params.vad_filter else [n for n in needs if n.type != "VoiceActivity"]

    def stream(self, ctx: StageContext, inputs: dict[str, Artifact], params: Transcription) -> Iterator[dict]:
        model = load_whisper(ctx.models, params.model, params.device, params.compute_type)
        samples, offset, speech = read_speech_inputs(inputs)
        if speech is not None:
            speech = merge_segments(speech, ASR_MAX_GAP, ASR_PAD, len(samples) / 16000)
        segments, info = transcribe(
            model,
            samples,
            speech,
            language=params.language,
            beam_size=params.beam_size,
            word_timestamps=params.word_timestamps,
            initial_prompt=params.initial_prompt,
            no_speech_threshold=params.no_speech_threshold,
        )
        kept = []
        for segment in segments:
            segment = _shift(segment, offset)
            kept.append(segment)
            yield segment
        transcript = {
            "language": info["language"] or params.language,
            "language_probability": info["language_probability"],
            "duration": info["duration"],
            "model": params.model,
            "text": " ".join(s["text"] for s in kept),
            "segments": kept,
        }
        write_transcript(ctx, transcript)
        return {"segments": len(kept), "language": transcript["language"]}


def _shift(segment: dict, offset: float) -> dict:
    if not offset:
        return segment
    segment["start"] = round(segment["start"] + offset, 3)
    segment["end"] = round(segment["end"] + offset, 3)
    for word in segment.get("words", []):
        word["start"] = round(word["start"] + offset, 3)
        word["end"] = round(word["end"] + offset, 3)
    return segment
