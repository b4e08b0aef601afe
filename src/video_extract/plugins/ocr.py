"""ocr: lines of text per analysed frame, and the same text across frames merged into timed entries."""

from __future__ import annotations

from video_extract.errors import UsageError
from video_extract.plugins.base import StageContext
from video_extract.spec import OCR
from video_extract.vision.analysis import FrameDetectionPlugin, coverage_ends
from video_extract.vision.frames import FrameItem
from video_extract.vision.ocr import SUPPORTED_LANGUAGES, keep_line, make_engine, merge_timed_texts, read_text
from video_extract.vision.runtime import model_threads


class OcrPlugin(FrameDetectionPlugin):
    output_file = "ocr.json"

    def validate(self, params: OCR) -> None:
        unsupported = [lang for lang in params.languages if lang not in SUPPORTED_LANGUAGES]
        if unsupported:
            raise UsageError(f"ocr: language '{unsupported[0]}' is not covered by the shipped PP-OCRv4 models; supported: {', '.join(SUPPORTED_LANGUAGES)}")

    def load(self, ctx: StageContext, params: OCR):
        ctx.models.path("ppocr-v4")  # fails clearly if the package's models are missing
        threads = model_threads()
        return ctx.models.load(("rapidocr", params.det_limit_side_len, threads), lambda: make_engine(params.det_limit_side_len, threads))

    def analyse(self, engine, item: FrameItem, params: OCR) -> list[dict]:
        lines = read_text(engine, item.bgr, params.min_confidence)
        return [{"label": "text", **line} for line in lines if keep_line(line["text"], params.languages)]

    def summarise(self, frames: list[dict], params: OCR, ctx: StageContext) -> dict:
        # A text is seen until the next analysed frame (for one frame per scene: until the scene
        # ends; after the last frame: until the video ends).
        info = ctx.source.info
        video_end = info.start_time + info.duration if info.duration else None
        return {"languages": params.languages, "texts": merge_timed_texts(frames, coverage_ends(frames, video_end))}
