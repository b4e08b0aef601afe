"""Execution modes: time to first streamed result, perf vs debug (bulk and Ray: ``scaling``)."""

from __future__ import annotations

import time
from pathlib import Path

from common import Row, best_of, clean, fresh_dir

SECTION = "modes"


def run() -> list[Row]:
    from video_extract import Client
    from video_extract.testing import media

    rows: list[Row] = []
    dirs: list[Path] = []

    # Time to the first streamed result on a 10 s clip.
    folder = fresh_dir("ten")
    dirs.append(folder)
    ten = media.scene_clip(folder / "ten.mp4", cuts=(75, 150, 225), frames=300, width=640, height=360, tone_hz=440.0).path
    ops = ["metadata", "scenes", "keyframes", "frames", "audio"]
    Client(cache_dir=fresh_dir("w"), output_dir=fresh_dir("w")).run(ten, ops)  # imports, page cache

    def first_event() -> float:
        c, o = fresh_dir("c"), fresh_dir("o")
        dirs.extend([c, o])
        started = time.perf_counter()
        stream = Client(cache_dir=c, output_dir=o).execute_streaming(ten, ops)
        next(stream)
        elapsed = time.perf_counter() - started
        for _ in stream:
            pass
        return elapsed

    t_first = min(first_event() for _ in range(3))
    rows.append(
        Row(SECTION, "time to first streamed result (perf mode, 10 s 640x360 clip, 5 operations)", t_first, None, target="< 0.5 s", passed=t_first < 0.5)
    )

    # perf vs debug on a multi-operation request (independent stages: they can overlap)
    from common import SHARED_MODELS, vision_clip_60s

    clip = vision_clip_60s()
    many = ["metadata", "scenes", "keyframes", "objects", "faces", "ocr"]
    if not (SHARED_MODELS / "yolox_nano.onnx").exists():  # offline copies absent: models ship-in-wheel only
        many = ["metadata", "scenes", "keyframes", "frames", "ocr"]

    def with_executor(kind: str):
        def go():
            c, o = fresh_dir("c"), fresh_dir("o")
            dirs.extend([c, o])
            assert Client(cache_dir=c, output_dir=o, executor=kind, models_dir=SHARED_MODELS).run(clip, many).ok

        return go

    with_executor("perf")()  # loads every model once
    t_debug = best_of(with_executor("debug"), 2)
    t_perf = best_of(with_executor("perf"), 2)
    rows.append(Row(SECTION, f"perf vs debug mode, 60 s 720p clip: {'+'.join(many)}", t_perf, t_debug, target="faster (< 1x)", passed=t_perf < t_debug))

    clean(*dirs)
    return rows
