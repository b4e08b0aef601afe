"""Every frame of a video as PySceneDetect's OpenCV backend hands it to a detector, decoded by PyAV.

PySceneDetect reads full-size BGR frames with ``cv2.VideoCapture`` (FFmpeg's decoder and
swscale, then a turn by the display matrix; no pixel-aspect correction) and shrinks each with
``cv2.resize(INTER_LINEAR)``. Ours go through the same decoder, the same swscale conversion and
the same ``cv2.resize``, so the pixels are the same (tests compare them with VideoCapture's).

The saving: bilinear shrinking reads two source rows per output row, so of a 1080p frame
shrunk 7.5x only 40 % of the rows (in YUV 4:2:0 row pairs) are ever read. swscale's YUV->BGR
of a row depends on its own luma row and the chroma row of its pair alone, so we convert just
those pairs into a reused full-size buffer and let ``cv2.resize`` read it. Both claims are
checked with noise once per size, never trusted: noise in the rows not gathered must leave the
resize unchanged, and a frame of noise (with the real frames' colour properties) converted
row-pairs-only must equal its whole conversion; on any difference every row is converted.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from video_extract.media.container import decode_stream, open_input
from video_extract.media.geometry import normalise_rotation, rotate_image
from video_extract.media.prefetch import prefetch
from video_extract.media.video import count, open_video_stream

#: OpenCV's FFmpeg backend converts with SWS_BICUBIC (it matters only where chroma is scaled).
_INTERPOLATION = "BICUBIC"


@dataclass(frozen=True)
class ShrunkFrame:
    index: int  # 0-based, in decoding (display) order
    time: float  # seconds from pts, on the source timeline
    msec: float  # what cv2.CAP_PROP_POS_MSEC says for this frame: pts after the stream's start, in ms
    image: np.ndarray  # BGR, display orientation, shrunk
    decoded_size: tuple[int, int]  # (width, height) before shrinking, display orientation


@dataclass(frozen=True)
class CaptureInfo:
    """What ``cv2.VideoCapture`` reports for a file, read from the same FFmpeg fields."""

    fps: float  # CAP_PROP_FPS: the stream's average frame rate
    width: int  # CAP_PROP_FRAME_WIDTH/HEIGHT: coded size, turned by the display rotation
    height: int


def capture_info(stream) -> CaptureInfo:
    rate = stream.average_rate or stream.base_rate or stream.guessed_rate
    fps = rate.numerator / rate.denominator if rate else 0.0
    width, height = stream.codec_context.width, stream.codec_context.height
    return CaptureInfo(fps=fps, width=width, height=height)


def shrunk_size(width: int, height: int, factor: float) -> tuple[int, int] | None:
    """PySceneDetect's output size for a downscale factor; None when it does not resize (factor <= 1)."""
    if factor <= 1.0:
        return None
    return max(1, round(width / factor)), max(1, round(height / factor))


def iter_shrunk_frames(path: str | Path, factor: Callable[[CaptureInfo], float]) -> Iterator[tuple[CaptureInfo, ShrunkFrame]]:
    """Every decodable frame of the first video stream, shrunk as PySceneDetect shrinks it.

    ``factor`` picks the downscale factor from the capture's size (PySceneDetect's auto
    downscale, or a fixed one). Yields the capture facts with each frame.
    """
    with open_input(path) as container:
        stream = open_video_stream(container, path, busy=1)  # this thread converts and shrinks every frame
        info = capture_info(stream)
        scale = factor(info)
        tb = stream.time_base
        seconds_per_tick = tb.numerator / tb.denominator if tb else 0.0
        origin = stream.start_time or 0
        shrinkers: dict[tuple, _Shrinker] = {}
        frames = prefetch(decode_stream(path, container, stream), depth=8)
        index = -1
        try:
            for frame in frames:
                index += 1
                key = (frame.width, frame.height, frame.format.name, normalise_rotation(frame.rotation or 0))
                shrinker = shrinkers.get(key)
                if shrinker is None:
                    shrinker = shrinkers[key] = _Shrinker(*key, scale)
                image = shrinker(frame)
                decoded = (frame.height, frame.width) if key[3] % 180 else (frame.width, frame.height)
                pts = frame.pts
                msec = (pts - origin) * seconds_per_tick * 1000 if pts is not None else 0.0
                time = float(frame.time) if frame.time is not None else index / (info.fps or 25.0)
                yield info, ShrunkFrame(index=index, time=time, msec=msec, image=image, decoded_size=decoded)
        finally:
            frames.close()
            count("frames_decoded", index + 1)
            count("frames_converted", index + 1)


class _Shrinker:
    """Frames of one size and format to BGR shrunk by ``factor``, converting only the rows read."""

    def __init__(self, width: int, height: int, pix_fmt: str, rotation: int, factor: float):
        self.rotation = rotation
        turned = (height, width) if rotation % 180 else (width, height)
        self.size = shrunk_size(*turned, factor)
        self.reformatter = VideoReformatter()
        self.rows = None
        sparse_ok = self.size is not None and pix_fmt == "yuv420p" and rotation == 0 and width % 2 == 0 and height % 2 == 0
        if sparse_ok:
            pairs = np.unique(_rows_read(height, self.size[1]) // 2)
            rows = np.stack([2 * pairs, 2 * pairs + 1], 1).ravel()
            # Above about half the rows (720p and less), gathering them costs more than it saves.
            if len(rows) <= 0.5 * height and _only_rows_read(tuple(int(r) for r in rows), height, width, self.size):
                self.pairs, self.rows = pairs, rows
                self.buffer = np.zeros((height, width, 3), np.uint8)
                self.width, self.height = width, height
                # One YUV frame of just those rows, refilled for every frame.
                self.part = av.VideoFrame(width, len(rows), "yuv420p")
                self.part_planes = [
                    _plane(self.part.planes[0], len(rows), width),
                    _plane(self.part.planes[1], len(pairs), width // 2),
                    _plane(self.part.planes[2], len(pairs), width // 2),
                ]
        self.checked = False

    def __call__(self, frame) -> np.ndarray:
        if self.rows is not None and not self.checked:
            self.checked = True
            if not self._rows_convert_alone(frame):
                self.rows = None  # this swscale does not convert rows independently: convert all
        return self._whole(frame) if self.rows is None else self._sparse(frame)

    def _rows_convert_alone(self, frame) -> bool:
        """Whether converting only the gathered rows gives the rows of a whole conversion, tried
        on a frame of noise with ``frame``'s colour properties (a first frame that is flat, such
        as black before a fade-in, would hide a conversion that mixes neighbouring rows)."""
        rng = np.random.default_rng(0)
        noise = av.VideoFrame(self.width, self.height, "yuv420p")
        for plane in noise.planes:
            view = np.frombuffer(plane, np.uint8)
            view[:] = np.frombuffer(rng.bytes(view.size), np.uint8)
        noise.color_range, noise.colorspace = frame.color_range, frame.colorspace
        self._sparse(noise)
        whole = _bgr(self.reformatter.reformat(noise, format="bgr24", interpolation=_INTERPOLATION))
        return np.array_equal(self.buffer[self.rows], whole[self.rows])

    def _whole(self, frame) -> np.ndarray:
        import cv2

        image = _bgr(self.reformatter.reformat(frame, format="bgr24", interpolation=_INTERPOLATION))
        image = rotate_image(image, self.rotation)
        if self.size is not None:
            image = cv2.resize(image, self.size, interpolation=cv2.INTER_LINEAR)
        return image

    def _sparse(self, frame) -> np.ndarray:
        import cv2

        w, h = self.width, self.height
        y, u, v = self.part_planes
        np.take(_plane(frame.planes[0], h, w), self.rows, axis=0, out=y, mode="clip")
        np.take(_plane(frame.planes[1], h // 2, w // 2), self.pairs, axis=0, out=u, mode="clip")
        np.take(_plane(frame.planes[2], h // 2, w // 2), self.pairs, axis=0, out=v, mode="clip")
        self.part.color_range = frame.color_range
        self.part.colorspace = frame.colorspace
        self.buffer[self.rows] = _bgr(self.reformatter.reformat(self.part, format="bgr24", interpolation=_INTERPOLATION))
        return cv2.resize(self.buffer, self.size, interpolation=cv2.INTER_LINEAR)


def _bgr(frame) -> np.ndarray:
    """A bgr24 frame as an HxWx3 view of its own buffer (no copy; the view keeps the frame alive)."""
    plane = frame.planes[0]
    return _plane(plane, frame.height, frame.width * 3).reshape(frame.height, frame.width, 3)


def _plane(plane, rows: int, width: int) -> np.ndarray:
    return np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)[:rows, :width]


def _rows_read(src: int, dst: int) -> np.ndarray:
    """Source rows that cv2.resize(INTER_LINEAR) reads for ``dst`` output rows: the two
    around (d + 0.5) * src / dst - 0.5, clamped to the frame."""
    scale = src / dst
    rows = set()
    for d in range(dst):
        s0 = math.floor((d + 0.5) * scale - 0.5)
        rows.update(min(max(k, 0), src - 1) for k in (s0, s0 + 1))
    return np.array(sorted(rows))


@functools.lru_cache(maxsize=16)
def _only_rows_read(rows: tuple[int, ...], height: int, width: int, size: tuple[int, int]) -> bool:
    """True if cv2.resize to ``size`` reads no row outside ``rows``: other noise there changes
    nothing. Once per size and process (two full-size resizes)."""
    import cv2

    rng = np.random.default_rng(0)
    noise = lambda n: np.frombuffer(rng.bytes(n * width * 3), np.uint8).reshape(n, width, 3)  # noqa: E731
    image = noise(height).copy()
    expected = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)
    others = np.setdiff1d(np.arange(height), np.array(rows))
    image[others] = noise(len(others))
    return np.array_equal(cv2.resize(image, size, interpolation=cv2.INTER_LINEAR), expected)
