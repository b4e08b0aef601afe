"""Execution modes: time to first streamed result, perf vs debug, bulk scaling, Ray overhead, memory."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from common import Row, best_of, clean, fresh_dir, short_clips, tree_peak_rss_mb

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

    # bulk throughput: 100 short clips, 1 vs 2 workers, local vs Ray
    clips = short_clips(100)
    bulk_ops = "metadata,scenes,keyframes,frames"

    def bulk(workers: int, engine: str = "local") -> float:
        """Whole-command seconds; also keeps the steady-state rate (first file start to last finish)."""
        o, c = fresh_dir("o"), fresh_dir("c")
        dirs.extend([o, c])
        argv = [
            sys.executable,
            "-m",
            "video_extract.cli",
            "bulk",
            str(clips),
            "--ops",
            bulk_ops,
            "-o",
            str(o),
            "--cache-dir",
            str(c),
            "--workers",
            str(workers),
            "--engine",
            engine,
            "--progress",
            "none",
        ]
        started = time.perf_counter()
        peak, code = tree_peak_rss_mb(argv, env={**os.environ, "RAY_AUTH_MODE": "disabled"})
        assert code == 0
        bulk.peak = max(getattr(bulk, "peak", 0.0), peak) if engine == "local" else getattr(bulk, "peak", 0.0)
        files = json.loads((o / "batch_summary.json").read_text())["files"]
        per_worker: dict = {}
        for f in files:
            per_worker.setdefault(f["worker"]["pid"], []).append(f)
        # Each worker's rate from its first start to its last finish, summed: the pool's rate
        # once running (worker start-up, which differs by a few hundred ms, is left out).
        rate = sum(len(fs) / (max(f["finished_at"] for f in fs) - min(f["started_at"] for f in fs)) for fs in per_worker.values())
        bulk.steady[(workers, engine)] = max(bulk.steady.get((workers, engine), 0.0), rate)
        return time.perf_counter() - started

    bulk.steady = {}
    t1 = min(bulk(1) for _ in range(2))
    t2 = min(bulk(2) for _ in range(2))
    steady1, steady2 = bulk.steady[(1, "local")], bulk.steady[(2, "local")]
    scaling = steady2 / steady1
    rows.append(
        Row(
            SECTION,
            f"bulk throughput, 100 clips ({bulk_ops}), workers running: 2 workers vs 1",
            steady2,
            steady1,
            unit="files/s",
            target=">= 1.8x scaling",
            passed=scaling >= 1.8,
            note=f"scaling {scaling:.2f}x",
        )
    )
    rows.append(
        Row(
            SECTION,
            "bulk, 100 clips, whole command (worker start-up included): 2 workers vs 1",
            100 / t2,
            100 / t1,
            unit="files/s",
            target="report",
            note=f"scaling {t1 / t2:.2f}x",
        )
    )
    t_ray = min(bulk(2, "ray") for _ in range(2))
    rows.append(
        Row(
            SECTION,
            "bulk, 100 clips, 2 workers: Ray engine (local Ray started by the command) vs local processes",
            t_ray,
            t2,
            target="report (overhead)",
            note=f"{100 / t_ray:.1f} vs {100 / t2:.1f} files/s",
        )
    )
    rows.append(Row(SECTION, "peak memory of a bulk run (parent + 2 workers, summed RSS)", bulk.peak, None, unit="MiB", target="report"))
    clean(*dirs)
    return rows
