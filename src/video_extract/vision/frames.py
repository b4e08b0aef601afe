"""Frames handed from a frame-sampling stage to the vision plugins that share it.

The sampling stage decodes the video once and leaves JPEG files with an index (frame number,
time); each vision plugin reads them back in batches, with JPEG decoding running ahead in a
background thread. One decode of the video serves every vision operation of a request. A
still image's frame is handed on in memory instead (``FramesResult._pixels``): the picture
the request decoded once, with no JPEG written or read.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from video_extract.media.image import BGR, image_size, in_order
from video_extract.media.prefetch import prefetch
from video_extract.media.video import count
from video_extract.results import FramesResult


@dataclass
class FrameItem:
    frame: int
    time: float
    bgr: np.ndarray
    extra: dict  # what the sampling stage says besides frame and time (a scene frame's scene, start, end)
    scale: int = 1  # frame pixels per ``bgr`` pixel: a large frame file may be read at 1/2, 1/4 or 1/8

    @property
    def rgb(self) -> np.ndarray:
        return cv2.cvtColor(self.bgr, cv2.COLOR_BGR2RGB)


def read_frames(frames: FramesResult, side: int | None = None) -> Iterator[FrameItem]:
    """Frames of a sampling stage in order, decoded from JPEG one step ahead of the caller.

    ``side``: the longer side the caller shrinks frames to itself. A frame file at least
    four times that is decoded at 1/2, 1/4 or 1/8 of its size (JPEG's own scaled decoding,
    in a fraction of the memory and time), never below twice ``side``; ``scale`` says which.
    """
    if frames._pixels is not None:
        return _in_memory(frames, side)
    folder = frames.directory

    def load() -> Iterator[FrameItem]:
        for entry in frames.frames:
            bgr, scale = imread(folder / entry.file, side)
            if bgr is None:
                raise OSError(f"cannot read frame file {folder / entry.file}")
            extra = entry.model_dump(exclude={"file", "frame", "time"})
            yield FrameItem(entry.frame, entry.time, bgr, extra, scale)

    return prefetch(load(), depth=4)


def _in_memory(frames: FramesResult, side: int | None) -> Iterator[FrameItem]:
    """Frames a sampling stage of this process handed on as arrays (a still's picture, in the
    channel order it was decoded in), reduced as a frame file would be read (``reduction``),
    then in BGR: a still OpenCV decoded is handed over as it is, read-only and shared, with
    no copy; one in RGB is turned once reduced."""
    for entry, (image, order) in zip(frames.frames, frames._pixels(), strict=True):
        height, width = image.shape[:2]
        scale = reduction((width, height), side)
        if scale > 1:
            image = cv2.resize(image, (-(-width // scale), -(-height // scale)), interpolation=cv2.INTER_AREA)
        yield FrameItem(entry.frame, entry.time, in_order(image, order, BGR), entry.model_dump(exclude={"file", "frame", "time"}), scale)


def reduction(size: tuple[int, int], side: int | None) -> int:
    """1, 2, 4 or 8: how far a frame of ``size`` may be reduced for a caller that shrinks frames to
    ``side`` itself, never below twice ``side``."""
    scale = 1
    while side and scale < 8 and max(size) / (scale * 2) >= 2 * side:
        scale *= 2
    return scale


_REDUCED = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8}


def imread(path: Path, side: int | None = None) -> tuple[np.ndarray | None, int]:
    """A frame file's BGR pixels (None when it cannot be read), and the factor they were reduced by.

    Decoded into an array of the size its header gives: given none, OpenCV's binding returns a
    copy of what it decoded, so the picture is in memory twice (0.5 GB more for an 88 Mpx still).
    """
    size = image_size(path)
    if size is None:
        return None, 1
    scale = reduction(size, side)
    count("jpeg_reads")
    # JPEG's scaled decoding rounds up (an 8x8 block to one pixel at 1/8).
    shape = (-(-size[1] // scale), -(-size[0] // scale), 3)
    try:
        bgr = cv2.imread(str(path), np.empty(shape, np.uint8), _REDUCED[scale])
    except TypeError:  # OpenCV before 4.11 takes no ``dst``
        bgr = cv2.imread(str(path), _REDUCED[scale])
    return bgr, scale


def iter_batches(frames: FramesResult, size: int) -> Iterator[list[FrameItem]]:
    batch: list[FrameItem] = []
    for item in read_frames(frames):
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
