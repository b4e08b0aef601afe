"""objects: COCO objects per analysed frame, boxes in displayed-frame pixels."""

from __future__ import annotations

import difflib

from video_extract.errors import UsageError
from video_extract.models.catalog import check_name
from video_extract.plugins.base import StageContext
from video_extract.plugins.frame_analysis import FrameDetectionPlugin
from video_extract.results import Detection
from video_extract.spec import ObjectDetection
from video_extract.vision.frames import FrameItem
from video_extract.vision.yolox import COCO_CLASSES, YoloxDetector


class ObjectsPlugin(FrameDetectionPlugin):
    def validate(self, params: ObjectDetection) -> None:
        check_name("objects", params.model, "yolox", other="a YOLOX .onnx file", local=".onnx")
        for name in params.classes or ():
            if name not in COCO_CLASSES:
                close = difflib.get_close_matches(name, COCO_CLASSES, n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                raise UsageError(f"objects: unknown class '{name}'{hint}; COCO classes: {', '.join(COCO_CLASSES)}")

    def load(self, ctx: StageContext, params: ObjectDetection) -> YoloxDetector:
        path = params.model if params.model.lower().endswith(".onnx") else str(ctx.models.path(params.model))
        threads = ctx.threads
        return ctx.models.load(("yolox", path, threads), lambda: YoloxDetector(path, threads, ctx.models.cache_dir))

    def working_side(self, params: ObjectDetection) -> int:
        return 640  # the largest YOLOX input (nano and tiny take 416)

    def analyse(self, model: YoloxDetector, item: FrameItem, params: ObjectDetection) -> list[Detection]:
        keep = {COCO_CLASSES.index(c) for c in params.classes} if params.classes else None
        found = model.detect(item.bgr, params.confidence_threshold, params.nms_threshold, keep)
        return [Detection(label=COCO_CLASSES[cid], confidence=round(score, 4), box=[round(v, 1) for v in box]) for cid, score, box in found]

    def summarise(self, frames, params: ObjectDetection, ctx: StageContext) -> dict:
        return {"model": params.model}
