"""Memory benchmark: peak RSS of transcription + diarization + keyframes + objects on 2, 10 and
60 minutes of input (a CLI process each, ``--no-cache``): flat in input length means the
60-minute figure is <= 1.2 GB and <= 1.15x the 2-minute one.

The input is real speech (the AMI excerpts of ``../shared/media/ami-debug`` one after another,
looped; espeak dialogue when they are absent) under a 160x120 1 fps slideshow.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from common import MEDIA, SHARED_MODELS, Row, clean, fresh_dir, peak_rss_mb

SECTION = "memory"
MINUTES = (2, 10, 60)
OPS = "transcription,diarization,keyframes,objects"
AMI = Path(__file__).resolve().parents[2] / "shared" / "media" / "ami-debug"


def speech_loop(seconds: int):
    """``seconds`` of 16 kHz speech: the AMI excerpts in turn (looped), or espeak dialogue."""
    import numpy as np
    import soundfile

    pieces = [soundfile.read(p, dtype="float32")[0] for p in sorted(AMI.glob("*.wav"))]
    if not pieces:
        from video_extract.testing.speech import DIALOGUE, conversation

        pieces = [conversation(DIALOGUE * 4, pauses=[0.7])[0]]
    one = np.concatenate(pieces)
    return np.resize(one, seconds * 16000).astype(np.float32)


def long_clip(minutes: int) -> Path:
    from skimage import data

    from video_extract.testing import media

    path = MEDIA / f"memory{minutes}min.mp4"
    if not path.exists():
        MEDIA.mkdir(parents=True, exist_ok=True)
        photos = [data.astronaut(), data.chelsea(), data.coffee(), data.rocket()]
        seconds = minutes * 60
        images = [photos[i % len(photos)] for i in range(seconds // 10)]
        tmp = path.with_suffix(".tmp.mp4")
        media.slideshow_clip(tmp, images, seconds_each=10.0, fps=1, width=160, height=120, audio=speech_loop(seconds))
        os.replace(tmp, path)
    return path


def memory_rows(minutes: tuple[int, ...] = MINUTES) -> list[Row]:
    peaks: dict[int, float] = {}
    dirs = []
    for m in minutes:
        clip = long_clip(m)
        out = fresh_dir("mem")
        dirs.append(out)
        argv = [sys.executable, "-m", "video_extract", "debug", str(clip), "--ops", OPS, "-o", str(out), "--no-cache"]
        if SHARED_MODELS.exists():
            argv += ["--models-dir", str(SHARED_MODELS)]
        peaks[m] = peak_rss_mb(argv)
        print(f"[memory] {m} min: {peaks[m]:.0f} MiB", file=sys.stderr)
    clean(*dirs)
    first, last = minutes[0], minutes[-1]
    rows = []
    for m in minutes[1:]:
        ratio_ok = peaks[m] <= 1.15 * peaks[first]
        cap_ok = peaks[m] <= 1200 * 1e6 / 2**20 if m == last else True
        rows.append(
            Row(
                SECTION,
                f"peak RSS, {OPS} (CLI --no-cache), {m} min vs {first} min of input",
                peaks[m],
                peaks[first],
                unit="MiB",
                target="<= 1.15x" + (", <= 1.2 GB" if m == last else ""),
                passed=ratio_ok and cap_ok,
            )
        )
    return rows


def run() -> list[Row]:
    return memory_rows()


if __name__ == "__main__":
    for row in memory_rows(tuple(int(a) for a in sys.argv[1:]) or MINUTES):
        print(row)
