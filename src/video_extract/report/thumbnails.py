"""Small pictures of the scenes, as JPEG data URIs the page embeds (it stays one file)."""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from pathlib import Path


def _data_uri(rgb, size: int) -> str:
    from PIL import Image

    image = Image.fromarray(rgb)
    image.thumbnail((size, size))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=70, optimize=True)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def spread(count: int, limit: int) -> list[int]:
    """At most ``limit`` indexes out of ``count``, evenly spread, first and last included."""
    if count <= limit:
        return list(range(count))
    if limit == 1:
        return [0]
    return sorted({round(i * (count - 1) / (limit - 1)) for i in range(limit)})


def from_files(files: dict[int, Path], size: int) -> dict[int, str]:
    """Scene index -> data URI, from pictures already on disk (``scene_frames/``)."""
    import numpy as np
    from PIL import Image

    out = {}
    for scene, path in files.items():
        with Image.open(path) as image:
            out[scene] = _data_uri(np.asarray(image.convert("RGB")), size)
    return out


def scene_thumbnails(pixels, scenes: Sequence, *, limit: int, size: int) -> dict[int, str]:
    """Scene index -> data URI of a keyframe inside the scene (the one nearest its middle);
    ``scenes``: anything with ``start`` and ``end`` (scenes, scene digests).

    Only keyframes are decoded (a one-hour file is not decoded frame by frame); a scene with no
    keyframe of its own gets no picture rather than another scene's."""
    from video_extract.media import is_still_image, iter_keyframes
    from video_extract.media.image import Still
    from video_extract.media.video import keyframe_times

    chosen = spread(len(scenes), limit)
    if not chosen:
        return {}
    if not isinstance(pixels, Still) and is_still_image(pixels):
        pixels = Still(pixels)  # decoded as a request decodes it, so a rebuilt page has the same picture
    if isinstance(pixels, Still):
        frame = next(iter_keyframes(pixels, max_size=size), None)
        return {n: _data_uri(frame.image, size) for n in chosen} if frame is not None else {}
    times = keyframe_times(pixels)
    wanted: dict[int, int] = {}  # pts -> scene
    for n in chosen:
        scene = scenes[n]
        middle = (scene.start + scene.end) / 2
        inside = [(abs(t - middle), pts) for pts, t in times if scene.start <= t < scene.end]
        if inside:
            wanted.setdefault(min(inside)[1], n)
    out: dict[int, str] = {}
    if wanted:
        for frame in iter_keyframes(pixels, max_size=size, keyframes=times, select=lambda f: f.pts in wanted):
            if frame.pts in wanted:
                out[wanted[frame.pts]] = _data_uri(frame.image, size)
    return out
