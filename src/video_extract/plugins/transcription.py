"""transcription: speech to text with word times; segments stream out as they are decoded."""

from __future__ import annotations

from collections.abc import Iterator

from video_extract.plugins.base import Inputs, InputSpec, Plugin, StageContext
from video_extract.plugins.speech_inputs import SPEECH_RATE, speech_inputs
from video_extract.results import TranscriptionResult, TranscriptSegment
from video_extract.spec import Transcription
from video_extract.speech.subtitles import cues, to_srt, to_tsv, to_txt, to_vtt
from video_extract.speech.vad import merge_segments
from video_extract.speech.whisper import check_model_name, load_whisper, transcribe

#: Speech regions closer than this are decoded as one piece (faster-whisper's own VAD default).
ASR_MAX_GAP = 2.0
ASR_PAD = 0.3


def write_transcript(ctx: StageContext, transcript: TranscriptionResult, params: Transcription) -> None:
    """The transcript record, with the renderings ``params.formats`` asks for beside it."""
    cue_list = cues(transcript.segments, params.max_line_width, params.max_line_count)
    writers = {
        "srt": lambda: to_srt(cue_list),
        "vtt": lambda: to_vtt(cue_list),
        "txt": lambda: to_txt(transcript.segments),
        "tsv": lambda: to_tsv(transcript.segments),
    }
    for fmt in dict.fromkeys(params.formats):
        ctx.path(f"transcription.{fmt}").write_text(writers[fmt](), encoding="utf-8")
    ctx.write(transcript)


class TranscriptionPlugin(Plugin):
    def validate(self, params: Transcription) -> None:
        check_model_name(params.model)

    def requires(self, params: Transcription) -> list[InputSpec]:
        needs = super().requires(params)
        return needs if params.vad_filter else [n for n in needs if n.type != "VoiceActivity"]

    def stream(self, ctx: StageContext, inputs: Inputs, params: Transcription) -> Iterator[TranscriptSegment]:
        model = load_whisper(ctx.models, params.model, params.device, params.compute_type)
        samples, offset, speech = speech_inputs(inputs)
        if speech is not None:
            speech = merge_segments(speech, ASR_MAX_GAP, ASR_PAD, len(samples) / SPEECH_RATE)
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
        write_transcript(
            ctx,
            TranscriptionResult(
                language=info["language"] or params.language,
                language_probability=info["language_probability"],
                duration=info["duration"],
                model=params.model,
                text=" ".join(s.text for s in kept),
                segments=kept,
            ),
            params,
        )


def _shift(segment: TranscriptSegment, offset: float) -> TranscriptSegment:
    """Times on the source timeline (the audio may start after 0)."""
    if not offset:
        return segment
    words = [w.model_copy(update={"start": round(w.start + offset, 3), "end": round(w.end + offset, 3)}) for w in segment.words]
    return segment.model_copy(update={"start": round(segment.start + offset, 3), "end": round(segment.end + offset, 3), "words": words})
