"""faces: face boxes (and landmarks) per analysed frame, in displayed-frame pixels."""

from __future__ import annotations

from video_extract.models.catalog import check_name
from video_extract.plugins.base import StageContext
from video_extract.plugins.frame_analysis import FrameDetectionPlugin
from video_extract.results import Detection
from video_extract.spec import FaceDetection
from video_extract.vision.faces import FaceDetector
from video_extract.vision.frames import FrameItem


class FacesPlugin(FrameDetectionPlugin):
    def validate(self, params: FaceDetection) -> None:
        check_name("faces", params.model, "yunet", other="a YuNet .onnx file", local=".onnx")

    def load(self, ctx: StageContext, params: FaceDetection) -> FaceDetector:
        path = params.model if params.model.lower().endswith(".onnx") else str(ctx.models.path(params.model))
        threads = ctx.threads
        key = ("yunet", path, params.confidence_threshold, params.nms_threshold, threads)
        return ctx.models.load(
            key, lambda: FaceDetector(path, params.confidence_threshold, params.nms_threshold, threads=threads, cache_dir=ctx.models.cache_dir)
        )

    def working_side(self, params: FaceDetection) -> int | None:
        return params.max_side

    def analyse(self, model: FaceDetector, item: FrameItem, params: FaceDetection) -> list[Detection]:
        faces = []
        for face in model.detect(item.bgr, params.max_side):
            x1, y1, x2, y2 = face["box"]
            if min(x2 - x1, y2 - y1) * item.scale < params.min_size:  # min_size is in frame pixels
                continue
            landmarks = face["landmarks"] if params.include_landmarks else None
            faces.append(Detection(label="face", confidence=round(face["confidence"], 4), box=[round(v, 1) for v in face["box"]], landmarks=landmarks))
        return faces
