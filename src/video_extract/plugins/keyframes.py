"""keyframes: the encoder's keyframes, decoded without the frames between them."""

from __future__ import annotations

from typing import Iterator

from video_extract.errors import InputError
from video_extract.media import iter_frames, is_still_image
from video_extract.media.image import save_jpeg
from video_extract.media.prefetch import prefetch
from video_extract.media.video import keyframe_times
from video_extract.plugins.base import Artifact, Plugin, StageContext, write_json
from video_extract.plugins.frames import frame_file
from video_extract.results import FrameEntry
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
    def stream(self, ctx: StageContext, inputs: dict[str, Artifact], params: Keyframes) -> Iterator[dict]:
        folder = ctx.work_dir / "keyframes"
        folder.mkdir()
        path = ctx.source.path
        select = None
        if params.max_frames and not is_still_image(path):
            # Spreading N picks over the whole file needs every keyframe's time first: one
            # demux pass over packet flags, no decoding.
            chosen = choose_keyframes(keyframe_times(path), params.min_interval_sec, params.max_frames)
            select = lambda f: f.pts in chosen  # noqa: E731
        elif params.min_interval_sec > 0:
            state = {"last": None}

            def select(f) -> bool:
                if state["last"] is not None and f.time - state["last"] < params.min_interval_sec - 1e-9:
                    return False
                state["last"] = f.time
                return True

        entries: list[FrameEntry] = []
        # Decoding runs ahead in its own thread while this one encodes JPEGs (both release the GIL).
        frames = prefetch(iter_frames(path, keyframes_only=True, max_size=params.max_size, select=select), depth=4)
        for frame in frames:
            entry = FrameEntry(file=frame_file(len(entries)), frame=frame.index, time=round(frame.time, 6))
            save_jpeg(folder / entry.file, frame.image, params.quality)
            entries.append(entry)
            yield entry.model_dump()
        if not entries:
            raise InputError("no keyframe could be decoded", path)
        write_json(folder / "index.json", [e.model_dump() for e in entries])
        return {"count": len(entries)}
