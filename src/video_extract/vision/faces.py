"""YuNet face detection through OpenCV's ``cv2.FaceDetectorYN``.

Each detection row is [x, y, w, h, right eye x/y, left eye x/y, nose x/y, right mouth corner
x/y, left mouth corner x/y, score] ("right" is the subject's right: the left of the image).
Frames are detected at a bounded size (YuNet finds faces down to ~10 px at that size) and the
boxes mapped back, which keeps a 4K frame as cheap as a 960 px one.
"""

from __future__ import annotations

import threading

import cv2
import numpy as np

LANDMARKS = ("right_eye", "left_eye", "nose_tip", "right_mouth_corner", "left_mouth_corner")


class FaceDetector:
    """cv2.FaceDetectorYN holds the input size as state, so each thread gets its own instance."""

    def __init__(self, model_path: str, score_threshold: float = 0.6, nms_threshold: float = 0.3, top_k: int = 5000):
        self.model_path = model_path
        self.settings = (score_threshold, nms_threshold, top_k)
        self._local = threading.local()

    def _detector(self, width: int, height: int):
        detector = getattr(self._local, "detector", None)
        if detector is None:
            score, nms, top_k = self.settings
            detector = cv2.FaceDetectorYN.create(self.model_path, "", (width, height), score, nms, top_k)
            self._local.detector, self._local.size = detector, (width, height)
        elif self._local.size != (width, height):
            detector.setInputSize((width, height))
            self._local.size = (width, height)
        return detector

    def detect(self, bgr: np.ndarray, max_side: int | None = 960) -> list[dict]:
        """Faces in ``bgr`` (pixels of that frame): [{confidence, box, landmarks}] best first."""
        height, width = bgr.shape[:2]
        scale = 1.0
        work = bgr
        if max_side and max(height, width) > max_side:
            scale = max_side / max(height, width)
            work = cv2.resize(bgr, (max(1, round(width * scale)), max(1, round(height * scale))), interpolation=cv2.INTER_AREA)
        sx, sy = work.shape[1] / width, work.shape[0] / height
        _, rows = self._detector(work.shape[1], work.shape[0]).detect(work)
        faces = []
        for row in rows if rows is not None else ():
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
