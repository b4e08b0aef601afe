"""ocr: lines of text per analysed frame, and the same text across frames merged into timed entries."""

from __future__ import annotations

from video_extract.errors import UsageError
from video_extract.models.runtime import model_threads
from video_extract.plugins.base import StageContext
from video_extract.plugins.frame_analysis import FrameDetectionPlugin
from video_extract.results import Detection
from video_extract.spec import OCR
from video_extract.vision.frames import FrameItem
from video_extract.vision.ocr import SUPPORTED_LANGUAGES, keep_line, make_engine, merge_timed_texts, read_text
from video_extract.vision.runs import coverage_ends


class OcrPlugin(FrameDetectionPlugin):
    def validate(self, params: OCR) -> None:
        unsupported = [lang for lang in params.languages if lang not in SUPPORTED_LANGUAGES]
        if unsupported:
            raise UsageError(f"ocr: language '{unsupported[0]}' is not covered by the shipped PP-OCRv4 models; supported: {', '.join(SUPPORTED_LANGUAGES)}")

    def load(self, ctx: StageContext, params: OCR):
        ctx.models.path("ppocr-v4")  # fails clearly if the package's models are missing
        threads = model_threads()
        return ctx.models.load(("rapidocr", params.det_limit_side_len, threads), lambda: make_engine(params.det_limit_side_len, threads))

    def analyse(self, engine, item: FrameItem, params: OCR) -> list[Detection]:
        return [line for line in read_text(engine, item.bgr, params.min_confidence) if keep_line(line.text or "", params.languages)]

    def summarise(self, frames, params: OCR, ctx: StageContext) -> dict:
        # A text is seen until the next analysed frame (for one frame per scene: until the scene
        # ends; after the last frame: until the video ends).
        info = ctx.source.info
        video_end = info.start_time + info.duration if info.duration else None
        return {"languages": params.languages, "texts": merge_timed_texts(frames, coverage_ends(frames, video_end))}
