"""faces: face boxes (and landmarks) per analysed frame, in displayed-frame pixels."""

from __future__ import annotations

from pathlib import Path

from video_extract.errors import UsageError
from video_extract.plugins.base import StageContext
from video_extract.plugins.frame_analysis import FrameDetectionPlugin
from video_extract.results import Detection
from video_extract.spec import FaceDetection
from video_extract.vision.faces import FaceDetector
from video_extract.vision.frames import FrameItem


class FacesPlugin(FrameDetectionPlugin):
    def validate(self, params: FaceDetection) -> None:
        if params.model != "yunet" and not params.model.endswith(".onnx"):
            raise UsageError(f"faces: unknown model '{params.model}'; known models: yunet (or a YuNet .onnx file)")
        if params.model.endswith(".onnx") and not Path(params.model).is_file():
            raise UsageError(f"faces: model file not found: {params.model}")

    def load(self, ctx: StageContext, params: FaceDetection) -> FaceDetector:
        path = params.model if params.model.endswith(".onnx") else str(ctx.models.path(params.model))
        key = ("yunet", path, params.confidence_threshold, params.nms_threshold)
        return ctx.models.load(key, lambda: FaceDetector(path, params.confidence_threshold, params.nms_threshold))

    def analyse(self, model: FaceDetector, item: FrameItem, params: FaceDetection) -> list[Detection]:
        faces = []
        for face in model.detect(item.bgr, params.max_side):
            x1, y1, x2, y2 = face["box"]
            if min(x2 - x1, y2 - y1) < params.min_size:
                continue
            landmarks = face["landmarks"] if params.include_landmarks else None
            faces.append(Detection(label="face", confidence=round(face["confidence"], 4), box=[round(v, 1) for v in face["box"]], landmarks=landmarks))
        return faces
