"""Video frames, streamed: sampled at a rate, keyframes only, or every frame.

Frames come out one at a time as RGB (or BGR) arrays in display orientation, with their time
from pts and their 0-based index in display order, so a long file never sits in memory and
variable-frame-rate input gets true times. Conversion and scaling happen in FFmpeg's swscale
(one pass, in C); only frames that are kept are converted.
"""

from __future__ import annotations

import bisect
import math
import os
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Literal, NamedTuple

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from video_extract.errors import InputError
from video_extract.media.container import decode_stream, open_input
from video_extract.media.geometry import fit_within, rotate_image, scaled_size
from video_extract.media.limits import check_size
from video_extract.media.prefetch import prefetch, stage_cores

if TYPE_CHECKING:
    from video_extract.media.image import Still

PixelFormat = Literal["rgb24", "bgr24", "gray"]

#: Decoder activity in this process; tests use it to prove that a frame source is decoded once.
decode_counters: Counter[str] = Counter()
_counter_lock = threading.Lock()


def count(key: str, n: int = 1) -> None:
    with _counter_lock:
        decode_counters[key] += n


@dataclass(frozen=True)
class DecodedFrame:
    index: int  # 0-based position in display order among all frames of the stream
    time: float  # seconds, from pts, on the source timeline
    image: np.ndarray  # HxWx3 uint8 (HxW for gray), display orientation
    pts: int | None = None
    key_frame: bool = False


class DecodedFrameInfo(NamedTuple):
    index: int
    time: float
    pts: int | None


#: Frames smaller than this (pixels) decode faster than FFmpeg's frame threads hand them over,
#: measured on 2 cores: 320x240 H.264 took 1.4x the time and 1.9x the CPU with two threads;
#: 640x360 and larger real footage took 0.70-0.86x the time with two (at 1.05-1.3x the CPU).
SMALL_FRAME = 200_000


def decode_threads(busy: int = 0, pixels: int = 0) -> int:
    """Decoder threads: a bulk worker's share of the cores (``VIDEO_EXTRACT_DECODE_THREADS``,
    the workers are the parallelism there), else the running stage's (``stage_cores``: stages
    side by side split the cores, as their models do), else 0: FFmpeg's own count, every core.
    One for frames under ``SMALL_FRAME`` pixels.

    ``busy``: threads of the reader's own that keep a core busy beside the decoder (the scene
    detector converts, shrinks and scores every frame). The decoder gets the other cores of the
    share: frame threads beyond them only take turns with the reader (60 s of 720p on 2 cores:
    1.10 s with one frame thread, 1.28 s with FFmpeg's own count, 1.23 s with two)."""
    if 0 < pixels < SMALL_FRAME:
        return 1
    env = os.environ.get("VIDEO_EXTRACT_DECODE_THREADS")
    stage = stage_cores.get()
    if env:
        share = int(env)
    elif stage is not None:
        share = stage
    elif not busy:
        return 0
    else:
        try:
            share = len(os.sched_getaffinity(0)) or 1
        except AttributeError:  # not Linux
            share = os.cpu_count() or 1
    return max(1, share - busy) if busy else share


def first_video_stream(container):
    """The stream frame operations read: the first video stream that is not cover art."""
    for stream in container.streams.video:
        if not stream.disposition & av.stream.Disposition.attached_pic:
            return stream
    return None


def coded_size(stream, path: str | Path) -> tuple[int, int]:
    """A video stream's coded (width, height) without decoding it.

    Containers store it; an image piped into FFmpeg (a PNG named .mp4) has it only in a frame,
    which ``open_input`` keeps FFmpeg from decoding when it is over the pixel budget: then the
    image's own header says it, as Pillow reads it. (0, 0) when nothing says.
    """
    ctx = stream.codec_context
    if ctx is not None and ctx.width and ctx.height:
        return ctx.width, ctx.height
    from video_extract.media.image import image_size

    return image_size(path) or (0, 0)


def open_video_stream(container, path: str | Path, busy: int = 0):
    """The first video stream, set up for threaded decoding (``decode_threads(busy)``);
    InputError when there is none, or when its frames are over the pixel budget (nothing decoded)."""
    stream = first_video_stream(container)
    if stream is None:
        raise InputError("has no video stream", path)
    width, height = coded_size(stream, path)
    check_size(width, height, path, still=False)
    count("video_opens")
    stream.thread_type = "AUTO"
    stream.codec_context.thread_count = decode_threads(busy, width * height)
    return stream


def iter_frames(
    path: str | Path | Still,
    *,
    fps: float | None = None,
    start: float | None = None,
    end: float | None = None,
    max_size: int | None = None,
    width: int | None = None,
    pix_fmt: PixelFormat = "rgb24",
    keyframes_only: bool = False,
    select: Callable[[DecodedFrameInfo], bool] | None = None,
    fast: bool = False,
    skip: Literal["NONKEY", "NONREF"] | None = None,
    last_index: int | None = None,
    key_packets: set[int] | None = None,
) -> Iterator[DecodedFrame]:
    """Yield frames of ``path``.

    fps: sample on a grid of 1/fps seconds from the first frame (or ``start``), taking the first
        frame at or after each grid point; None yields every frame.
    max_size / width: downscale so the longer side is at most max_size, or to exactly ``width``
        pixels wide (display orientation), keeping the aspect ratio.
    keyframes_only: decode keyframes alone (``skip_frame="NONKEY"``): the fast path.
    select: a last say on each frame, by index/time/pts, before it is converted (conversion
        is the expensive part of a frame we do not keep).
    fast: cheaper pixels for analyses that compare whole frames (cut detection): skip the
        H.264/HEVC deblocking filter (~15 % faster decoding) and scale with fast bilinear.
    skip: frames the decoder may skip ("NONKEY" is what keyframes_only sets; "NONREF" skips
        only frames nothing else refers to). Indices then come from packet timestamps.
    last_index: stop decoding after this frame (a caller that knows which frames it wants).
    key_packets: filled with the pts of every packet the container flags as a keyframe.

    A still image (a path, or a ``Still`` that a request decodes once for all its stages) is one
    frame at time 0; unscaled RGB, it is the shared read-only array itself.
    """
    from video_extract.media.image import Still
    from video_extract.media.probe import is_still_image

    if isinstance(path, Still) or is_still_image(path):
        yield from _iter_image(path if isinstance(path, Still) else Still(path), max_size=max_size, width=width, pix_fmt=pix_fmt)
        return
    with open_input(path) as container:
        stream = open_video_stream(container, path)
        skip = "NONKEY" if keyframes_only else skip
        if skip:
            stream.codec_context.skip_frame = skip
        if fast:
            stream.codec_context.options = {**stream.codec_context.options, "skip_loop_filter": "all"}
        # One reformatter for the whole stream: it keeps its swscale context between frames,
        # which a per-frame ``to_ndarray(width=...)`` would rebuild every time (~1/3 of the cost).
        reformatter = VideoReformatter()
        sampler = _GridSampler(fps, start) if fps else None
        sizer = _Sizer(stream, max_size=max_size, width=width, interpolation="FAST_BILINEAR" if fast else "AREA")
        seen_pts: list[int] = []  # sorted pts of every packet: a keyframe's display index
        # Decoding (FFmpeg's own threads) runs ahead in a thread of its own, so that converting
        # and whatever the caller does with a frame overlap with decoding the next ones.
        frames = prefetch(_decode(path, container, stream, seen_pts if skip else None, key_packets), depth=8)
        index = -1
        converted = 0
        try:
            for frame in frames:
                index += 1
                time = _frame_time(frame, index, stream)
                if skip and frame.pts is not None:
                    index = bisect.bisect_left(seen_pts, frame.pts)
                if (end is not None and time >= end) or (last_index is not None and index > last_index):
                    break
                if start is not None and time < start - 1e-6:
                    continue
                if sampler is not None and not sampler.take(time):
                    continue
                if select is not None and not select(DecodedFrameInfo(index, time, frame.pts)):
                    continue
                image = reformatter.reformat(frame, format=pix_fmt, **sizer.size_for(frame)).to_ndarray()
                image = rotate_image(image, frame.rotation or 0)
                converted += 1
                yield DecodedFrame(index=index, time=time, image=image, pts=frame.pts, key_frame=frame.key_frame)
        finally:
            frames.close()
            count("frames_converted", converted)  # once, not under a lock per frame


def keyframe_times(path: str | Path) -> list[tuple[int, float]]:
    """(pts, time) of every keyframe, from packet flags alone: no decoding, one read of the file."""
    out = []
    with open_input(path) as container:
        stream = first_video_stream(container)
        if stream is None:
            raise InputError("has no video stream", path)
        tb = stream.time_base
        for packet in container.demux(stream):
            if packet.is_keyframe and packet.pts is not None and packet.size:
                out.append((packet.pts, float(packet.pts * tb)))
    out.sort()
    return out


def iter_keyframes(
    path: str | Path | Still,
    *,
    max_size: int | None = None,
    pix_fmt: PixelFormat = "rgb24",
    select: Callable[[DecodedFrameInfo], bool] | None = None,
    keyframes: list[tuple[int, float]] | None = None,
) -> Iterator[DecodedFrame]:
    """Every keyframe the container marks, decoded without the frames between them.

    ``keyframes``: the (pts, time) list of ``keyframe_times`` when the caller has it already;
    otherwise the packets' flags are read during the decoding pass itself (one read of the file).

    ``skip_frame="NONKEY"`` alone misses open-GOP H.264 keyframes (recovery-point I-frames that
    are not IDR: the decoder will not start there). The packets' keyframe flags say which
    frames are keyframes; those the fast pass did not produce are decoded in a second pass
    that skips only non-reference frames. Frames may then come out of time order.
    """
    from video_extract.media.image import Still
    from video_extract.media.probe import is_still_image

    if isinstance(path, Still) or is_still_image(path):
        yield from iter_frames(path, max_size=max_size, pix_fmt=pix_fmt)
        return
    flagged: set[int] = set()  # filled during the fast pass when the caller did not scan first
    decoded: set[int] = set()

    def seen(info: DecodedFrameInfo) -> bool:
        if info.pts is not None:
            decoded.add(info.pts)
        return select is None or select(info)

    yield from iter_frames(path, keyframes_only=True, max_size=max_size, pix_fmt=pix_fmt, select=seen, key_packets=flagged if keyframes is None else None)
    expected = {pts for pts, _ in keyframes} if keyframes is not None else flagged
    missing = expected - decoded
    if missing:
        wanted = lambda info: info.pts in missing and (select is None or select(info))  # noqa: E731
        yield from iter_frames(path, max_size=max_size, pix_fmt=pix_fmt, select=wanted, skip="NONREF")


def frames_at(path: str | Path | Still, times: Sequence[float], *, gap: float = 5.0, pix_fmt: PixelFormat = "rgb24") -> Iterator[tuple[float, np.ndarray]]:
    """(time, image) of the frame shown at each of ``times`` (seconds on the source timeline, as
    ``DecodedFrame.time`` gives them), in time order, full size in display orientation.

    A few chosen frames of a long file: the decoder seeks (to the keyframe before) when the next
    time is more than ``gap`` seconds ahead and decodes on otherwise, so times close together
    cost one pass and far-apart ones about a GOP each, never a decode of the whole file.
    """
    from video_extract.media.image import Still
    from video_extract.media.probe import is_still_image

    wanted = sorted(set(times))
    if not wanted:
        return
    if isinstance(path, Still) or is_still_image(path):
        image = next(iter_frames(path, pix_fmt=pix_fmt)).image
        yield from ((t, image) for t in wanted)
        return
    with open_input(path) as container:
        stream = open_video_stream(container, path)
        reformatter = VideoReformatter()
        sizer = _Sizer(stream, max_size=None, width=None, interpolation="AREA")
        i = 0
        while i < len(wanted):
            container.seek(max(0, int(wanted[i] / stream.time_base)), stream=stream, backward=True, any_frame=False)
            sought = i  # decode on at least to this one (a GOP may be longer than ``gap``)
            previous = None  # the last frame before the next wanted time: the one shown then
            for frame in decode_stream(path, container, stream):
                count("frames_decoded")
                time = float(frame.time) if frame.time is not None else None
                if time is None:
                    continue
                while i < len(wanted) and time > wanted[i] + 1e-6:
                    if previous is not None:  # shown from before the wanted time until now
                        yield wanted[i], _convert(reformatter, previous, sizer, pix_fmt)
                    i += 1
                if i == len(wanted) or (i > sought and wanted[i] - time > gap):
                    break
                previous = frame
            else:  # the end of the file: its last frame is shown until the end
                while i < len(wanted):
                    if previous is not None:
                        yield wanted[i], _convert(reformatter, previous, sizer, pix_fmt)
                    i += 1


def _convert(reformatter, frame, sizer: _Sizer, pix_fmt: PixelFormat) -> np.ndarray:
    count("frames_converted")
    image = reformatter.reformat(frame, format=pix_fmt, **sizer.size_for(frame)).to_ndarray()
    return rotate_image(image, frame.rotation or 0)


def _decode(path, container, stream, seen_pts: list[int] | None, key_packets: set[int] | None = None):
    """Decoded frames, counted; with ``seen_pts``, every packet's pts is kept in order; with
    ``key_packets``, the pts of packets flagged as keyframes."""

    def note(packet) -> None:
        if packet.pts is None or not packet.size:
            return
        if seen_pts is not None:
            bisect.insort(seen_pts, packet.pts)
        if key_packets is not None and packet.is_keyframe:
            key_packets.add(packet.pts)

    decoded = 0
    try:
        for frame in decode_stream(path, container, stream, note if seen_pts is not None or key_packets is not None else None):
            decoded += 1
            yield frame
    finally:
        count("frames_decoded", decoded)


def _frame_time(frame, index: int, stream) -> float:
    if frame.pts is not None and frame.time is not None:
        return float(frame.time)
    rate = stream.average_rate or stream.guessed_rate or 25
    return index / float(rate)


class _GridSampler:
    """Take the first frame at or after each point of a 1/fps grid (as ffmpeg's fps filter rounds down)."""

    def __init__(self, fps: float, start: float | None):
        self.step = 1.0 / fps
        self.origin = start
        self.next = None

    def take(self, time: float) -> bool:
        if self.origin is None:
            self.origin = time
        if self.next is None:
            self.next = self.origin
        if time < self.next - 1e-6:
            return False
        # Jump past every grid point this frame covers (a sparse or VFR source skips slots).
        slots = math.floor((time - self.origin) / self.step + 1e-6) + 1
        self.next = self.origin + slots * self.step
        return True


class _Sizer:
    """Output size per frame: square pixels, then bounded; computed in pre-rotation axes."""

    def __init__(self, stream, max_size: int | None, width: int | None, interpolation: str):
        self.stream = stream
        self.interpolation = interpolation
        self.max_size = max_size
        self.width = width
        self._cache: dict[tuple, dict] = {}

    def size_for(self, frame) -> dict:
        rotation = int(frame.rotation or 0)
        key = (frame.width, frame.height, rotation)
        if key not in self._cache:
            sar = self.stream.sample_aspect_ratio or self.stream.codec_context.sample_aspect_ratio
            w, h = scaled_size(frame.width, frame.height, Fraction(sar) if sar else None)
            if self.width:
                # ``width`` is meant in display orientation: for a quarter-turn that is our height.
                sideways = rotation % 180 != 0
                target = self.width
                if sideways:
                    w, h = max(2, int(round(w * target / h / 2)) * 2), target
                else:
                    w, h = target, max(2, int(round(h * target / w / 2)) * 2)
            else:
                w, h = fit_within(w, h, self.max_size)
            same = (w, h) == (frame.width, frame.height)
            self._cache[key] = {} if same else {"width": w, "height": h, "interpolation": self.interpolation}
        return self._cache[key]


def still_picture(still: Still, *, max_size: int | None = None, width: int | None = None) -> tuple[np.ndarray, str]:
    """A still's picture sized as ``iter_frames`` sizes it, in the channel order it was decoded
    in (``media.image.RGB`` or ``BGR``), with that order: the picture itself when not resized."""
    import cv2

    image, order = still.pixels()
    h, w = image.shape[:2]
    if width:
        target = (width, max(2, int(round(h * width / w))))
    else:
        target = fit_within(w, h, max_size)
    if target != (w, h):
        image = cv2.resize(image, target, interpolation=cv2.INTER_AREA)
    return image, order


def _iter_image(still: Still, *, max_size, width, pix_fmt) -> Iterator[DecodedFrame]:
    """The still's one frame: sized in the order it was decoded in, then put in ``pix_fmt``
    (resizing works on each channel alone: the same pixels either way round)."""
    import cv2

    from video_extract.media.image import BGR, RGB, in_order

    image, order = still_picture(still, max_size=max_size, width=width)
    if pix_fmt == "gray":
        image = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY if order == RGB else cv2.COLOR_BGR2GRAY)
    else:
        image = in_order(image, order, BGR if pix_fmt == "bgr24" else RGB)
    count("frames_converted")
    yield DecodedFrame(index=0, time=0.0, image=image, pts=None, key_frame=True)
