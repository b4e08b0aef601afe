"""YOLOX's pre- and post-processing written plainly, as its ONNX demo does it: the baseline.

The detector's own (``video_extract.vision.yolox``) fill a kept blob plane by plane and score
only the rows that can pass; the tests hold them to these for the same blob and detections, and
the still-image benchmark's bare loop runs these (what a user of the bare library writes).
"""

from __future__ import annotations

import cv2
import numpy as np

from video_extract.vision.yolox import boxes_after_nms


def preprocess(bgr: np.ndarray, size: int) -> tuple[np.ndarray, float]:
    """YOLOX's ``preproc``: a new padded image, transposed and cast whole."""
    h, w = bgr.shape[:2]
    ratio = min(size / h, size / w)
    nh, nw = max(1, int(round(h * ratio))), max(1, int(round(w * ratio)))
    padded = np.full((size, size, 3), 114, dtype=np.uint8)
    padded[:nh, :nw] = cv2.resize(bgr, (nw, nh), interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(padded.transpose(2, 0, 1)[None], dtype=np.float32), ratio


def postprocess(raw: np.ndarray, ratio: float, height: int, width: int, size: int, confidence: float, nms: float) -> list[tuple[int, float, list[float]]]:
    """Every row scored (objectness x best class); the boxes and NMS are the detector's own."""
    class_ids = raw[:, 5:].argmax(1)
    scores = raw[:, 4] * raw[np.arange(len(raw)), 5 + class_ids]
    keep = scores >= confidence
    if not keep.any():
        return []
    return boxes_after_nms(raw[keep], np.flatnonzero(keep), scores[keep], class_ids[keep], ratio, height, width, size, confidence, nms)
