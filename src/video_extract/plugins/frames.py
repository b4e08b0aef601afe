"""frames: frames on a fixed time grid, saved as JPEG with their index and time."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from video_extract.errors import InputError
from video_extract.media import iter_frames
from video_extract.media.image import RGB, in_order, save_jpeg
from video_extract.media.prefetch import prefetch
from video_extract.media.video import still_picture
from video_extract.plugins.base import Inputs, Plugin, Source, StageContext
from video_extract.results import FrameEntry, FramesResult
from video_extract.spec import Frames


def frame_file(n: int) -> str:
    return f"frame_{n:05d}.jpg"


def still_frame(ctx: StageContext, name: str, record: FramesResult, max_size: int | None, quality: int) -> FramesResult:
    """Hand a still image's one frame on in memory: consumers in this process get the picture
    the request decodes once (``Source.still``), sized as the frame file would be, in the
    channel order it was decoded in, never a JPEG round trip. Nothing is decoded here: a
    request whose consumers are all cache hits decodes nothing. The JPEG (and its folder,
    ``name``) is written only when the frame is published."""
    still = ctx.source.still
    assert still is not None

    def images() -> list[tuple[np.ndarray, str]]:
        return [still_picture(still, max_size=max_size)]

    if ctx.publishes:
        folder = ctx.path(name)
        folder.mkdir()
        for entry, (image, order) in zip(record.frames, images(), strict=True):
            save_jpeg(folder / entry.file, in_order(image, order, RGB), quality)
    written = ctx.write(record)
    assert isinstance(written, FramesResult)
    written._pixels = images
    return written


class FramesPlugin(Plugin):
    def cacheable(self, source: Source, params: Frames) -> bool:
        return source.still is None  # a still's frame is handed on in memory (``still_frame``)

    def stream(self, ctx: StageContext, inputs: Inputs, params: Frames) -> Iterator[FrameEntry]:
        if ctx.source.still is not None:
            entry = FrameEntry(file=frame_file(0), frame=0, time=0.0)
            still_frame(ctx, "frames", FramesResult(frames=[entry]), params.max_size, params.quality)
            yield entry
            return
        folder = ctx.path("frames")
        folder.mkdir()
        entries: list[FrameEntry] = []
        frames = prefetch(iter_frames(ctx.source.pixels, fps=params.fps, start=params.start, end=params.end, max_size=params.max_size), depth=4)
        for frame in frames:
            entry = FrameEntry(file=frame_file(len(entries)), frame=frame.index, time=round(frame.time, 6))
            save_jpeg(folder / entry.file, frame.image, params.quality)
            entries.append(entry)
            yield entry
            if params.max_frames and len(entries) >= params.max_frames:
                break
        if not entries:
            raise InputError("no frame was decoded in the requested range", ctx.source.path)
        ctx.write(FramesResult(frames=entries))
