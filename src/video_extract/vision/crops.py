"""Crops of chosen frames of the source as JPEGs: the picture that stands for a track."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from video_extract.errors import VideoExtractError
from video_extract.media.image import Still, save_jpeg
from video_extract.media.video import frames_at


def save_crops(pixels: Path | Still, wanted: Mapping[float, list[tuple[list[float], Path]]], quality: int = 90) -> set[Path]:
    """Write each (box, path) of ``wanted`` (by frame time) as a JPEG of that box in that frame.

    The frames are decoded by seeking near each one (``media.video.frames_at``): a few crops of
    a long file cost a few GOPs, not a second decode of the whole file. Boxes are in
    displayed-frame pixels, as detections are. Returns the paths written; a source that cannot
    be decoded (again) writes none rather than failing.
    """
    written: set[Path] = set()
    if not wanted:
        return written
    try:
        for time, image in frames_at(pixels, list(wanted)):
            height, width = image.shape[:2]
            for box, path in wanted.get(time, ()):
                x1, y1 = max(0, int(box[0])), max(0, int(box[1]))
                x2, y2 = min(width, int(round(box[2]))), min(height, int(round(box[3])))
                if x2 > x1 and y2 > y1:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    save_jpeg(path, image[y1:y2, x1:x2].copy(), quality)
                    written.add(path)
    except (VideoExtractError, OSError, ValueError):
        return written
    return written
