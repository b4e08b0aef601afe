"""keyframes: the encoder's keyframes, decoded without the frames between them."""

from __future__ import annotations

import os
from collections.abc import Iterator

from video_extract.errors import InputError
from video_extract.media import is_still_image, iter_frames, iter_keyframes
from video_extract.media.image import save_jpeg
from video_extract.media.prefetch import prefetch
from video_extract.media.video import keyframe_times
from video_extract.plugins.base import Inputs, Plugin, Source, StageContext
from video_extract.plugins.frames import frame_file, still_frame
from video_extract.results import FrameEntry, KeyframesResult
from video_extract.spec import Keyframes


def choose_keyframes(times: list[tuple[int, float]], min_interval: float, max_frames: int | None) -> set[int]:
    """Keyframe pts to keep: spaced at least ``min_interval`` apart, then thinned evenly to ``max_frames``."""
    spaced: list[int] = []
    last = None
    for pts, time in times:
        if last is None or time - last >= min_interval - 1e-9:
            spaced.append(pts)
            last = time
    if max_frames and len(spaced) > max_frames:
        step = len(spaced) / max_frames
        spaced = [spaced[int(i * step)] for i in range(max_frames)]
    return set(spaced)


class KeyframesPlugin(Plugin):
    def cacheable(self, source: Source, params: Keyframes) -> bool:
        return source.still is None  # a still's frame is handed on in memory (``still_frame``)

    def stream(self, ctx: StageContext, inputs: Inputs, params: Keyframes) -> Iterator[FrameEntry]:
        path = ctx.source.path
        if ctx.source.still is not None:
            entry = FrameEntry(file=frame_file(0), frame=0, time=0.0)
            still_frame(ctx, "keyframes", KeyframesResult(frames=[entry]), params.max_size, params.quality)
            yield entry
            return
        folder = ctx.path("keyframes")
        folder.mkdir()
        if is_still_image(path):
            frames = iter_frames(ctx.source.pixels, max_size=params.max_size)
        elif params.max_frames or params.min_interval_sec > 0:
            # Spacing and thinning are decided over the whole file before anything is decoded:
            # which keyframes exist comes from packet flags (one demux pass, no decoding).
            times = keyframe_times(path)
            chosen = choose_keyframes(times, params.min_interval_sec, params.max_frames)
            frames = iter_keyframes(path, max_size=params.max_size, keyframes=times, select=lambda f: f.pts in chosen)
        else:
            frames = iter_keyframes(path, max_size=params.max_size)  # every keyframe: one read of the file
        entries: list[FrameEntry] = []
        # Decoding runs ahead in its own thread while this one encodes JPEGs (both release the GIL).
        for frame in prefetch(frames, depth=4):
            entry = FrameEntry(file=frame_file(len(entries)), frame=frame.index, time=round(frame.time, 6))
            save_jpeg(folder / entry.file, frame.image, params.quality)
            entries.append(entry)
            yield entry
        if not entries:
            raise InputError("no keyframe could be decoded", path)
        ctx.write(KeyframesResult(frames=_in_time_order(folder, entries)))


def _in_time_order(folder, entries: list[FrameEntry]) -> list[FrameEntry]:
    """File names follow time. Open-GOP keyframes come from a second decoding pass, after the
    others: rename (through temporary names) so that frame_00000.jpg is the first in time."""
    ordered = sorted(entries, key=lambda e: e.time)
    if ordered == entries:
        return entries
    for n, entry in enumerate(ordered):
        os.rename(folder / entry.file, folder / f".{n}.tmp")
    renamed = []
    for n, entry in enumerate(ordered):
        os.rename(folder / f".{n}.tmp", folder / frame_file(n))
        renamed.append(FrameEntry(file=frame_file(n), frame=entry.frame, time=entry.time))
    return renamed
