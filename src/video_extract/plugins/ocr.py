"""ocr: lines of text per analysed frame, and the same text across frames merged into timed entries."""

from __future__ import annotations

from video_extract.errors import UsageError
from video_extract.plugins.base import StageContext
from video_extract.plugins.frame_analysis import FrameDetectionPlugin
from video_extract.results import Detection
from video_extract.spec import OCR
from video_extract.vision.frames import FrameItem
from video_extract.vision.ocr import LANGUAGES, keep_line, language_code, lone_glyph, make_engine, merge_timed_texts, read_text
from video_extract.vision.runs import coverage_ends


def _codes(params: OCR) -> list[str]:
    """The requested languages as codes (``zh`` for ``ch``, ``Chinese``...), in a stable order."""
    return sorted({language_code(lang) or lang for lang in params.languages})


class OcrPlugin(FrameDetectionPlugin):
    def validate(self, params: OCR) -> None:
        unsupported = [lang for lang in params.languages if language_code(lang) is None]
        if unsupported:
            spellings = "; ".join(f"{code} ({', '.join(other)})" for code, other in LANGUAGES.items())
            raise UsageError(f"ocr: language '{unsupported[0]}' is not covered by the shipped PP-OCRv4 models; supported: {spellings}")

    def load(self, ctx: StageContext, params: OCR):
        weights = str(ctx.models.path("ppocr-v4"))  # fails clearly if the package's models are missing
        threads = ctx.threads
        # The weights' path in the key sizes the engine for the warm-model budget.
        return ctx.models.load(
            ("rapidocr", weights, params.det_limit_side_len, threads), lambda: make_engine(params.det_limit_side_len, threads, ctx.models.cache_dir)
        )

    def working_side(self, params: OCR) -> int:
        return params.det_limit_side_len  # the engine shrinks frames to it (detection and the crops read)

    def analyse(self, engine, item: FrameItem, params: OCR) -> list[Detection]:
        languages = _codes(params)
        return [
            line
            for line in read_text(engine, item.bgr, params.min_confidence)
            if keep_line(line.text or "", languages) and not (lone_glyph(line.text or "") and line.confidence < params.min_single_char_confidence)
        ]

    def summarise(self, frames, params: OCR, ctx: StageContext) -> dict:
        # A text is seen until the next analysed frame (for one frame per scene: until the scene
        # ends; after the last frame: until the video ends).
        info = ctx.source.info
        video_end = info.start_time + info.duration if info.duration else None
        return {"languages": _codes(params), "texts": merge_timed_texts(frames, coverage_ends(frames, video_end))}
