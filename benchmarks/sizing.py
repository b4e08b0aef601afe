"""Sizing benchmark: the cost model (``video-extract sizing``) fitted on one bulk run predicts the
files/hour of another batch, of other durations, and the prediction is checked against that
batch's measured rate.

Calibration: 16 clips of 2 s and 8 s; checked on 24 clips of 4 s and 12 s; both with 2 workers
and a fresh cache, request ``metadata,scenes,keyframes,frames``. The measured rate is the
steady state (each worker's files over its first start to last finish, summed), the rate the
model describes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from common import MEDIA, Row, clean, fresh_dir

SECTION = "sizing"
OPS = "metadata,scenes,keyframes,frames"
WORKERS = 2


def clips(name: str, seconds: list[int], count: int) -> Path:
    from video_extract.testing import media

    folder = MEDIA / name
    if not folder.exists():
        tmp = folder.with_name(folder.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        for i in range(count):
            frames = 30 * seconds[i % len(seconds)]
            media.scene_clip(tmp / f"clip{i:03d}.mp4", cuts=(frames // 2,), frames=frames, width=320, height=240, seed=i)
        os.replace(tmp, folder)
    return folder


def bulk(folder: Path) -> tuple[Path, Path]:
    out, cache = fresh_dir("size-o"), fresh_dir("size-c")
    argv = [sys.executable, "-m", "video_extract.cli", "bulk", str(folder), "--ops", OPS, "-o", str(out)]
    argv += ["--cache-dir", str(cache), "--workers", str(WORKERS), "--progress", "none"]
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return out, cache


def steady_files_per_hour(out: Path) -> float:
    per_worker: dict = {}
    for f in json.loads((out / "batch_summary.json").read_text())["files"]:
        per_worker.setdefault(f["worker"]["pid"], []).append(f)
    return 3600 * sum(len(fs) / (max(f["finished_at"] for f in fs) - min(f["started_at"] for f in fs)) for fs in per_worker.values())


def run() -> list[Row]:
    from video_extract import Client
    from video_extract.executors.sizing import calibration_files

    calibration = clips("sizing-calibration", [2, 8], 16)
    target = clips("sizing-target", [4, 12], 24)
    cal_out, cal_cache = bulk(calibration)
    model = Client.cost_model(cal_out)
    target_out, target_cache = bulk(target)
    durations = [f.duration for f in calibration_files(target_out)]
    predicted = model.files_per_hour(durations)
    measured = steady_files_per_hour(target_out)
    clean(cal_out, cal_cache, target_out, target_cache)
    ratio = predicted / measured
    costs = ", ".join(f"{label} {fixed:.3f}+{per_second:.4f}/s" for label, fixed, per_second in model.table())
    return [
        Row(
            SECTION,
            f"sizing model: predicted vs measured files/hour, 24 clips of 4 s and 12 s ({OPS}, {WORKERS} workers), fitted on 16 of 2 s and 8 s",
            predicted,
            measured,
            unit="files/h",
            target="0.85x-1.15x",
            passed=0.85 <= ratio <= 1.15,
            note=costs,
        ),
        Row(
            SECTION,
            "sizing model: the same request on a 4-node cluster of such machines (prediction)",
            model.files_per_hour(durations, nodes=4),
            None,
            unit="files/h",
            target="report",
        ),
    ]


if __name__ == "__main__":
    for row in run():
        print(row)
