"""Frames handed from a frame-sampling stage to the vision plugins that share it.

The sampling stage decodes the video once and leaves JPEG files with an index (frame number,
time); each vision plugin reads them back in batches, with JPEG decoding running ahead in a
background thread. One decode of the video serves every vision operation of a request.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np

from video_extract.media.prefetch import prefetch
from video_extract.results import FramesResult


@dataclass
class FrameItem:
    frame: int
    time: float
    bgr: np.ndarray
    extra: dict  # what the sampling stage says besides frame and time (a scene frame's scene, start, end)

    @property
    def rgb(self) -> np.ndarray:
        return cv2.cvtColor(self.bgr, cv2.COLOR_BGR2RGB)


def read_frames(frames: FramesResult) -> Iterator[FrameItem]:
    """Frames of a sampling stage in order, decoded from JPEG one step ahead of the caller."""
    folder = frames.directory

    def load() -> Iterator[FrameItem]:
        for entry in frames.frames:
            bgr = cv2.imread(str(folder / entry.file), cv2.IMREAD_COLOR)
            if bgr is None:
                raise OSError(f"cannot read frame file {folder / entry.file}")
            extra = entry.model_dump(exclude={"file", "frame", "time"})
            yield FrameItem(entry.frame, entry.time, bgr, extra)

    return prefetch(load(), depth=4)


def iter_batches(frames: FramesResult, size: int) -> Iterator[list[FrameItem]]:
    batch: list[FrameItem] = []
    for item in read_frames(frames):
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
