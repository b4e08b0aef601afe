"""Helpers shared by the benchmark sections: timing, generated media, the result table."""

from __future__ import annotations

import gc
import itertools
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

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
    """Put benchmark scratch out of the way now, and delete it when the benchmark process ends.

    Deleting it at once slowed the runs measured after it. On a journal-less ext4 (this
    project's VMs), the kernel skips each inode freed in the last minute or more when it
    allocates a new one (``recently_deleted`` in ext4's inode allocator, seen with perf):
    after a bulk run's 3 000 files were removed, each file the next run created took
    0.25-0.5 ms of kernel time instead of 0.03 ms, up to a third of a short clip's CPU. A
    rename frees no inode, so the measured runs never follow a delete of the benchmark's own.
    """
    for path in paths:
        path = Path(path)
        if not path.exists():
            continue
        try:
            path.rename(_trash() / f"{next(_TRASHED)}-{path.name}")
        except OSError:  # another file system than the trash's: delete it now
            shutil.rmtree(path, ignore_errors=True)


_TRASH: list[Path] = []
_TRASHED = itertools.count()


def _trash() -> Path:
    if not _TRASH:
        import atexit

        _TRASH.append(Path(tempfile.mkdtemp(prefix="vebench-trash-")))
        atexit.register(shutil.rmtree, _TRASH[0], ignore_errors=True)
    return _TRASH[0]


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


def speech_clip_60s() -> tuple[Path, list[tuple[float, float, str]]]:
    """About 60 s of two espeak-ng voices taking turns (with pauses), in a 320x240 video.

    Returns the path and the truth: (start, end, voice) of each spoken line.
    """
    import json

    from video_extract.testing import media
    from video_extract.testing.speech import DIALOGUE, conversation

    path = MEDIA / "speech60s.mp4"
    truth_path = path.with_suffix(".json")
    if not path.exists() or not truth_path.exists():
        MEDIA.mkdir(parents=True, exist_ok=True)
        audio, truth = conversation(DIALOGUE * 4, pauses=[0.7])
        audio = audio[: 60 * 16000]
        truth = [(start, end, voice) for start, end, voice, _ in truth if end <= 60]
        tmp = path.with_suffix(".tmp.mp4")
        media.slideshow_clip(tmp, [media.text_image(["speech"], 320, 240)], seconds_each=len(audio) / 16000, fps=10, width=320, height=240, audio=audio)
        os.replace(tmp, path)
        truth_path.write_text(json.dumps(truth))
    return path, [tuple(x) for x in json.loads(truth_path.read_text())]


#: Runs the command in its arguments from a small process and prints the command's peak RSS.
#: Linux counts the RSS of the process a child was forked from in its ``ru_maxrss`` (kept
#: across exec): measured straight from this benchmark process, which may hold warm models
#: from an earlier section (~1 GB), every command's peak read as that.
_PEAK = """
import os, subprocess, sys
proc = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
_, status, usage = os.wait4(proc.pid, 0)
print(os.waitstatus_to_exitcode(status), usage.ru_maxrss)
"""


def peak_rss_mb(argv: list[str]) -> float:
    """Peak resident memory of a command (MiB), run by a small launcher process (see ``_PEAK``)."""
    import subprocess

    out = subprocess.run([sys.executable, "-c", _PEAK, *argv], capture_output=True, text=True, check=True).stdout.split()
    code, kib = int(out[0]), int(out[1])
    if code != 0:
        raise subprocess.CalledProcessError(code, argv)
    return kib / 1024


SHARED_MODELS = Path(__file__).resolve().parents[2] / "shared" / "models"


def vision_clip_60s() -> Path:
    """60 s of 1280x720 at 30 fps: photos (a face, a cat, a cup, ...) and text cards, 5 s each, panning."""
    from skimage import data

    from video_extract.testing import media

    path = MEDIA / "vision720p60s.mp4"
    if not path.exists():
        MEDIA.mkdir(parents=True, exist_ok=True)
        cards = [media.text_image([f"Chapter {n}", "video-extract benchmark"], 1280, 720, size=64) for n in range(1, 4)]
        photos = [data.astronaut(), data.chelsea(), data.coffee(), data.rocket(), data.astronaut(), data.chelsea(), data.coffee(), data.camera()]
        images = [img if img.ndim == 3 else __import__("numpy").stack([img] * 3, -1) for img in photos] + cards + [data.coffee()]
        tmp = path.with_suffix(".tmp.mp4")
        media.slideshow_clip(tmp, images[:12], seconds_each=5.0, fps=30, width=1280, height=720)
        os.replace(tmp, path)
    return path


def short_clips(count: int, folder_name: str = "short") -> Path:
    """``count`` different 2 s 320x240 clips with a cut at 1 s (bulk throughput)."""
    from video_extract.testing import media

    folder = MEDIA / f"{folder_name}{count}"
    if not folder.exists() or len(list(folder.glob("*.mp4"))) < count:
        tmp = folder.with_name(folder.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        for i in range(count):
            media.scene_clip(tmp / f"clip{i:03d}.mp4", cuts=(30,), frames=60, width=320, height=240, seed=i)
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(tmp, folder)
    return folder


def tree_peak_rss_mb(argv: list[str], env: dict | None = None, every: float = 0.05) -> tuple[float, int]:
    """Run a command; sample the summed RSS of it and all its descendants every ``every`` s
    (each sample reads every process's stat: ~1 ms of CPU).

    Returns (peak MiB, exit status).
    """
    import subprocess

    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak = 0
    page = os.sysconf("SC_PAGE_SIZE")
    while proc.poll() is None:
        children: dict[int, list[int]] = {}
        rss: dict[int, int] = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
                fields = stat.rsplit(")", 1)[1].split()
                children.setdefault(int(fields[1]), []).append(int(entry))
                rss[int(entry)] = int(fields[21]) * page
            except (OSError, IndexError, ValueError):
                continue
        total, stack = 0, [proc.pid]
        while stack:
            pid = stack.pop()
            total += rss.get(pid, 0)
            stack.extend(children.get(pid, []))
        peak = max(peak, total)
        time.sleep(every)
    return peak / 2**20, proc.returncode
