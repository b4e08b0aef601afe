"""diarization: speaker turns (JSON and RTTM), from the shared audio (and, for the resemblyzer
method, VAD) stages."""

from __future__ import annotations

from pathlib import Path

from video_extract.errors import UsageError
from video_extract.plugins.base import Inputs, InputSpec, Plugin, StageContext
from video_extract.plugins.speech_inputs import speech_inputs
from video_extract.results import DiarizationResult, SpeakerTurn
from video_extract.spec import Diarization


def speaker_name(index: int) -> str:
    return f"SPEAKER_{index:02d}"


def to_rttm(turns: list[SpeakerTurn], file_id: str) -> str:
    """NIST RTTM: one SPEAKER line per turn (onset and duration in seconds)."""
    return "".join(f"SPEAKER {file_id} 1 {t.start:.3f} {t.end - t.start:.3f} <NA> <NA> {t.speaker} <NA> <NA>\n" for t in turns)


class DiarizationPlugin(Plugin):
    def validate(self, params: Diarization) -> None:
        if params.min_speakers > params.max_speakers:
            raise UsageError(f"diarization: min_speakers ({params.min_speakers}) is above max_speakers ({params.max_speakers})")

    def requires(self, params: Diarization) -> list[InputSpec]:
        """The segmentation method finds speech itself: only the resemblyzer baseline reads the VAD stage."""
        needs = super().requires(params)
        return needs if params.method == "resemblyzer" else [n for n in needs if n.type != "VoiceActivity"]

    def run(self, ctx: StageContext, inputs: Inputs, params: Diarization) -> None:
        samples, offset, speech = speech_inputs(inputs)
        if params.method == "resemblyzer":
            found = self._resemblyzer(ctx, samples, speech, params)
        else:
            found = self._segmentation(ctx, samples, params)
        turns = [SpeakerTurn(start=round(t["start"] + offset, 3), end=round(t["end"] + offset, 3), speaker=speaker_name(t["speaker"])) for t in found]
        speakers = sorted({t.speaker for t in turns})
        ctx.path("diarization.rttm").write_text(to_rttm(turns, Path(ctx.source.path).stem.replace(" ", "_")))
        ctx.write(DiarizationResult(num_speakers=len(speakers), speakers=speakers, segments=turns))

    @staticmethod
    def _segmentation(ctx: StageContext, samples, params: Diarization) -> list[dict]:
        from video_extract.speech import diarize as seg

        seg_path = str(ctx.models.path("pyannote-segmentation-3.0"))
        emb_path = str(ctx.models.path("campplus-sv-zh-en"))
        exports = Path(ctx.models.cache_dir)  # their ONNX copies: no torch in the process (speech/diarize_models.py)
        segmenter = ctx.models.load(("pyannote-segmentation-3.0", seg_path), lambda: seg.load_segmenter(seg_path, exports))
        embedder = ctx.models.load(("campplus-sv-zh-en", emb_path), lambda: seg.load_embedder(emb_path, exports))
        return seg.diarize(
            samples,
            segmenter,
            embedder,
            num_speakers=params.num_speakers,
            min_speakers=params.min_speakers,
            max_speakers=params.max_speakers,
            threshold=params.threshold if params.threshold is not None else seg.DEFAULT_THRESHOLD,
        )

    @staticmethod
    def _resemblyzer(ctx: StageContext, samples, speech, params: Diarization) -> list[dict]:
        from video_extract.speech import diarize_resemblyzer as old

        weights = str(ctx.models.path("resemblyzer"))
        encoder = ctx.models.load(("resemblyzer", weights), lambda: old.load_encoder(weights))
        return old.diarize(
            samples,
            [(s.start, s.end) for s in speech or ()],
            num_speakers=params.num_speakers,
            min_speakers=params.min_speakers,
            max_speakers=params.max_speakers,
            window_sec=params.window_sec,
            step_sec=params.step_sec,
            encoder=encoder,
            distance_threshold=params.threshold if params.threshold is not None else old.DEFAULT_DISTANCE_THRESHOLD,
        )
