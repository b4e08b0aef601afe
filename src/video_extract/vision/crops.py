"""Crops of chosen frames of the source as JPEGs: the picture that stands for a track."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from video_extract.errors import VideoExtractError
from video_extract.media import iter_frames
from video_extract.media.image import Still, save_jpeg


def save_crops(pixels: Path | Still, wanted: Mapping[int, list[tuple[list[float], Path]]], quality: int = 90) -> set[Path]:
    """Write each (box, path) of ``wanted`` (by frame index) as a JPEG of that box in that frame.

    One pass over the source decodes the frames up to the last one wanted and converts only the
    wanted ones. Boxes are in displayed-frame pixels, as detections are. Returns the paths
    written; a source that cannot be decoded (again) writes none rather than failing.
    """
    written: set[Path] = set()
    if not wanted:
        return written
    try:
        frames = iter_frames(pixels, select=lambda info: info.index in wanted, last_index=max(wanted))
        for frame in frames:
            height, width = frame.image.shape[:2]
            for box, path in wanted.get(frame.index, ()):
                x1, y1 = max(0, int(box[0])), max(0, int(box[1]))
                x2, y2 = min(width, int(round(box[2]))), min(height, int(round(box[3])))
                if x2 > x1 and y2 > y1:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    save_jpeg(path, frame.image[y1:y2, x1:x2].copy(), quality)
                    written.add(path)
    except (VideoExtractError, OSError, ValueError):
        return written
    return written
