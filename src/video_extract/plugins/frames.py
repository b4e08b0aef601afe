"""frames: frames on a fixed time grid, saved as JPEG with their index and time."""

from __future__ import annotations

from collections.abc import Iterator

from video_extract.errors import InputError
from video_extract.media import iter_frames
from video_extract.media.image import save_jpeg
from video_extract.media.prefetch import prefetch
from video_extract.plugins.base import Inputs, Plugin, StageContext
from video_extract.results import FrameEntry, FramesResult
from video_extract.spec import Frames


def frame_file(n: int) -> str:
    return f"frame_{n:05d}.jpg"


class FramesPlugin(Plugin):
    def stream(self, ctx: StageContext, inputs: Inputs, params: Frames) -> Iterator[FrameEntry]:
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
