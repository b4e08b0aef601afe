"""Text reading with RapidOCR (PP-OCRv4 detection + recognition, ONNX, shipped in the wheel).

Detector size: RapidOCR's default scales a frame's *short* side up to 736 px (a 1280x720 frame
is detected at 1312x736). We bound the *long* side instead (``max_side_len`` with
``det_limit_type="max"``): at 960 the same text is read several times faster. The shipped
recogniser's dictionary covers Chinese and printable ASCII, so English and Chinese only.
"""

from __future__ import annotations

import numpy as np

SUPPORTED_LANGUAGES = ("en", "ch")


def make_engine(det_limit_side_len: int | None, threads: int):
    """A RapidOCR engine; ``det_limit_side_len=None`` keeps the package's own detector sizing."""
    from rapidocr_onnxruntime import RapidOCR

    kwargs = {"intra_op_num_threads": threads, "inter_op_num_threads": 1}
    if det_limit_side_len:
        kwargs.update(max_side_len=int(det_limit_side_len), det_limit_type="max", det_limit_side_len=int(det_limit_side_len))
    return RapidOCR(**kwargs)


def read_text(engine, bgr: np.ndarray, min_confidence: float) -> list[dict]:
    """Lines in reading order: [{text, confidence, box: [x1, y1, x2, y2]}] in frame pixels."""
    result, _ = engine(np.ascontiguousarray(bgr), text_score=min_confidence)
    lines = []
    for quad, text, score in result or []:
        q = np.asarray(quad, dtype=np.float32)
        lines.append({"text": text.strip(), "confidence": round(float(score), 4), "box": [float(q[:, 0].min()), float(q[:, 1].min()), float(q[:, 0].max()), float(q[:, 1].max())]})
    return [line for line in lines if line["text"]]


def merge_timed_texts(frames: list[dict], next_times: list[float | None]) -> list[dict]:
    """Identical text in consecutive analysed frames becomes one entry with a start and an end.

    ``frames``: [{frame, time, detections}] in time order; ``next_times``: the time of the
    analysed frame after each (None for the last), which is where a text stops being seen.
    """
    open_entries: dict[str, dict] = {}
    done: list[dict] = []
    for item, next_time in zip(frames, next_times):
        seen = {d["text"].lower(): d for d in item["detections"]}
        for key in list(open_entries):
            if key not in seen:
                done.append(open_entries.pop(key))
        for key, det in seen.items():
            entry = open_entries.get(key)
            if entry is None:
                open_entries[key] = entry = {"text": det["text"], "start": item.get("start", item["time"]), "end": item["time"], "first_frame": item["frame"], "box": det["box"], "confidence": det["confidence"], "frames": 0}
            entry["end"] = next_time if next_time is not None else item["time"]
            entry["last_frame"] = item["frame"]
            entry["frames"] += 1
            entry["confidence"] = max(entry["confidence"], det["confidence"])
    done.extend(open_entries.values())
    done.sort(key=lambda e: (e["start"], e["box"][1], e["box"][0]))
    return done
