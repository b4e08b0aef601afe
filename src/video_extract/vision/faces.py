"""YuNet face detection: the network on ONNX Runtime, its outputs decoded as OpenCV's
``cv2.FaceDetectorYN`` decodes them.

Each detection row is [x, y, w, h, right eye x/y, left eye x/y, nose x/y, right mouth corner
x/y, left mouth corner x/y, score] ("right" is the subject's right: the left of the image).
Frames are detected at a bounded size (YuNet finds faces down to ~10 px at that size) and the
boxes mapped back, which keeps a 4K frame as cheap as a 960 px one.

Why not ``cv2.FaceDetectorYN`` itself: OpenCV's DNN module runs YuNet in 9 ms on a 512x512
picture where ONNX Runtime takes 5 (2 cores). The decoding below is OpenCV's step for step
(same float32 arithmetic, OpenCV's own NMS), so given the same network outputs the rows are
the same bits (``tests/test_vision.py``); the two runtimes' network outputs differ by ~1e-5.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

LANDMARKS = ("right_eye", "left_eye", "nose_tip", "right_mouth_corner", "left_mouth_corner")
STRIDES = (8, 16, 32)
#: The network's outputs in the order ``decode`` takes them (OpenCV's order).
OUTPUTS = tuple(f"{kind}_{stride}" for kind in ("cls", "obj", "bbox", "kps") for stride in STRIDES)
_DIVISOR = 32


def padded_blob(bgr: np.ndarray) -> np.ndarray:
    """1x3xHxW float32, the picture padded with zeros to multiples of 32 at the bottom and right
    (``FaceDetectorYN``: ``copyMakeBorder`` then ``blobFromImage``, no scaling, BGR kept)."""
    height, width = bgr.shape[:2]
    blob = np.zeros((1, 3, ((height - 1) // _DIVISOR + 1) * _DIVISOR, ((width - 1) // _DIVISOR + 1) * _DIVISOR), np.float32)
    blob[0, :, :height, :width] = bgr.transpose(2, 0, 1)
    return blob


def decode(outputs: list[np.ndarray], padded_width: int, score_threshold: float, nms_threshold: float, top_k: int) -> np.ndarray:
    """Network outputs (``OUTPUTS`` order) -> Nx15 float32 rows, as ``FaceDetectorYN::postProcess``."""
    threshold = np.float32(score_threshold)
    found = []
    for i, stride in enumerate(STRIDES):
        cols = padded_width // stride
        cls, obj = outputs[i].reshape(-1), outputs[i + 3].reshape(-1)
        score = np.sqrt(np.clip(cls, np.float32(0), np.float32(1)) * np.clip(obj, np.float32(0), np.float32(1)))
        keep = np.flatnonzero(score >= threshold)
        if not len(keep):
            continue
        bbox, kps = outputs[i + 6].reshape(-1, 4)[keep], outputs[i + 9].reshape(-1, 10)[keep]
        r, c = np.divmod(keep, cols)
        r, c, s = r.astype(np.float32)[:, None], c.astype(np.float32)[:, None], np.float32(stride)
        centre = (np.concatenate([c, r], 1) + bbox[:, :2]) * s
        # expf, then a power-of-two stride: exact, so the product is the rounded exp times the stride
        size = np.exp(bbox[:, 2:].astype(np.float64)).astype(np.float32) * s
        points = (kps + np.tile(np.concatenate([c, r], 1), 5)) * s
        found.append(np.concatenate([centre - size / np.float32(2), size, points, score[keep, None]], 1))
    if not found:
        return np.zeros((0, 15), np.float32)
    faces = np.concatenate(found)
    if len(faces) > 1:
        boxes = np.trunc(faces[:, :4]).astype(np.int64).tolist()  # OpenCV's Rect2i(int(x), ...)
        chosen = np.asarray(cv2.dnn.NMSBoxes(boxes, faces[:, 14].tolist(), float(threshold), nms_threshold, 1.0, top_k), dtype=np.int64).reshape(-1)
        faces = faces[chosen]
    return faces


class FaceDetector:
    """One ONNX Runtime session (thread-safe: frames of any size, from any thread)."""

    def __init__(
        self,
        model_path: str,
        score_threshold: float = 0.6,
        nms_threshold: float = 0.3,
        top_k: int = 5000,
        threads: int | None = None,
        cache_dir: Path | None = None,
    ):
        from video_extract.models.runtime import onnx_session

        self.settings = (score_threshold, nms_threshold, top_k)
        self.session = onnx_session(model_path, threads, cache_dir=cache_dir)
        self.input_name = self.session.get_inputs()[0].name

    def rows(self, bgr: np.ndarray) -> np.ndarray:
        """``cv2.FaceDetectorYN.detect(bgr)[1]`` at this picture's size (Nx15, never None)."""
        blob = padded_blob(bgr)
        outputs = self.session.run(list(OUTPUTS), {self.input_name: blob})
        return decode(outputs, blob.shape[3], *self.settings)

    def detect(self, bgr: np.ndarray, max_side: int | None = 960) -> list[dict]:
        """Faces in ``bgr`` (pixels of that frame): [{confidence, box, landmarks}] best first."""
        height, width = bgr.shape[:2]
        work = bgr
        if max_side and max(height, width) > max_side:
            scale = max_side / max(height, width)
            work = cv2.resize(bgr, (max(1, round(width * scale)), max(1, round(height * scale))), interpolation=cv2.INTER_AREA)
        sx, sy = work.shape[1] / width, work.shape[0] / height
        faces = []
        for row in self.rows(work):
            x, y, w, h = row[:4]
            box = [
                float(np.clip(x / sx, 0, width)),
                float(np.clip(y / sy, 0, height)),
                float(np.clip((x + w) / sx, 0, width)),
                float(np.clip((y + h) / sy, 0, height)),
            ]
            points = {name: [round(float(row[4 + 2 * i] / sx), 2), round(float(row[5 + 2 * i] / sy), 2)] for i, name in enumerate(LANDMARKS)}
            faces.append({"confidence": float(row[14]), "box": box, "landmarks": points})
        faces.sort(key=lambda f: -f["confidence"])
        return faces
