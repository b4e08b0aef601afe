"""scene_frames: one representative frame per scene (the frame nearest its middle)."""

from __future__ import annotations

from collections.abc import Iterator

from video_extract.errors import InputError
from video_extract.media import iter_frames
from video_extract.media.image import save_jpeg
from video_extract.media.prefetch import prefetch
from video_extract.plugins.base import Inputs, Plugin, StageContext
from video_extract.plugins.frames import frame_file
from video_extract.results import SceneFrameEntry, SceneFramesResult, ScenesResult
from video_extract.spec import SceneFrames


class SceneFramesPlugin(Plugin):
    def stream(self, ctx: StageContext, inputs: Inputs, params: SceneFrames) -> Iterator[SceneFrameEntry]:
        scenes = inputs[ScenesResult].scenes
        targets = [(s.start_frame + s.end_frame - 1) // 2 for s in scenes]  # middle frame index
        wanted = set(targets)
        folder = ctx.path("scene_frames")
        folder.mkdir()
        entries: list[SceneFrameEntry] = []
        frames = iter_frames(ctx.source.pixels, max_size=params.max_size, select=lambda f: f.index in wanted, last_index=max(targets, default=0))
        for frame in prefetch(frames, depth=4):
            n = targets.index(frame.index)
            entry = SceneFrameEntry(
                file=frame_file(len(entries)), frame=frame.index, time=round(frame.time, 6), scene=n, start=scenes[n].start, end=scenes[n].end
            )
            save_jpeg(folder / entry.file, frame.image, params.quality)
            entries.append(entry)
            yield entry
        if not entries:
            raise InputError("no scene frame could be decoded", ctx.source.path)
        ctx.write(SceneFramesResult(frames=entries))
