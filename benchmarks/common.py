"""Helpers shared by the benchmark sections: timing, generated media, the result table."""

from __future__ import annotations

import gc
import os
import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

MEDIA = Path(__file__).parent / ".media"


@dataclass
class Row:
    section: str
    name: str
    ours: float
    baseline: float | None
    unit: str = "s"
    target: str = ""  # e.g. "<= 1.2x"
    passed: bool | None = None
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.baseline in (None, 0):
            return None
        return self.ours / self.baseline


def best_of(fn: Callable[[], object], repeat: int = 3, setup: Callable[[], object] | None = None) -> float:
    """Best wall time of ``repeat`` runs (the least disturbed by the rest of the machine)."""
    times = []
    for _ in range(repeat):
        if setup is not None:
            setup()
        gc.collect()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def median_of(fn: Callable[[], object], repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def fresh_dir(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"vebench-{prefix}-"))


def clean(*paths: Path) -> None:
    for path in paths:
        shutil.rmtree(path, ignore_errors=True)


def clip_720p_60s() -> Path:
    """A 60 s 1280x720 30 fps H.264 clip: a cut every 5 s, a keyframe every 2 s, a 440 Hz track."""
    from video_extract.testing import media

    path = MEDIA / "clip720p60s.mp4"
    if not path.exists():
        MEDIA.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.mp4")
        media.scene_clip(tmp, cuts=tuple(range(150, 1800, 150)), frames=1800, width=1280, height=720, fps=30, gop=60, tone_hz=440.0)
        os.replace(tmp, path)
    return path
