"""YOLOX's pre- and post-processing written plainly, as its ONNX demo does it: the baseline.

The detector's own (``video_extract.vision.yolox``) fill a kept blob plane by plane and score
only the rows that can pass; the tests hold them to these for the same blob and detections, and
the still-image benchmark's bare loop runs these (what a user of the bare library writes).
"""

from __future__ import annotations

import cv2
import numpy as np

from video_extract.vision.yolox import grid


def preprocess(bgr: np.ndarray, size: int) -> tuple[np.ndarray, float]:
    """YOLOX's ``preproc``: a new padded image, transposed and cast whole."""
    h, w = bgr.shape[:2]
    ratio = min(size / h, size / w)
    nh, nw = max(1, int(round(h * ratio))), max(1, int(round(w * ratio)))
    padded = np.full((size, size, 3), 114, dtype=np.uint8)
    padded[:nh, :nw] = cv2.resize(bgr, (nw, nh), interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(padded.transpose(2, 0, 1)[None], dtype=np.float32), ratio


def postprocess(raw: np.ndarray, ratio: float, height: int, width: int, size: int, confidence: float, nms: float) -> list[tuple[int, float, list[float]]]:
    """Every row scored (objectness x best class), then decoded and put through NMS."""
    class_ids = raw[:, 5:].argmax(1)
    scores = raw[:, 4] * raw[np.arange(len(raw)), 5 + class_ids]
    keep = scores >= confidence
    if not keep.any():
        return []
    cells, strides = grid(size)
    rows, cells, strides = raw[keep], cells[keep], strides[keep]
    centres = (rows[:, :2] + cells) * strides
    sizes = np.exp(rows[:, 2:4]) * strides
    boxes = np.concatenate([centres - sizes / 2, centres + sizes / 2], 1) / ratio
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, width)
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, height)
    kept_scores, kept_ids = scores[keep], class_ids[keep]
    xywh = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], 1)
    chosen = np.asarray(cv2.dnn.NMSBoxesBatched(xywh.tolist(), kept_scores.tolist(), kept_ids.tolist(), confidence, nms), dtype=int).reshape(-1)
    chosen = chosen[np.argsort(-kept_scores[chosen])]
    return [(int(kept_ids[i]), float(kept_scores[i]), [float(v) for v in boxes[i]]) for i in chosen]
