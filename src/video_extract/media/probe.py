"""Probe: what a file holds, cheaply, before any plugin runs.

The planner needs the stream kinds to reject an impossible request before work starts, and
metadata.json needs display geometry and frame-rate facts that containers store unreliably.
So besides the header we read packet timestamps (no decoding) to tell variable frame rate,
and decode one frame to read the display matrix, which FFmpeg attaches to frames.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import av.error

from video_extract.errors import InputError
from video_extract.media.container import IMAGE_EXTENSIONS, open_input, readable
from video_extract.media.geometry import display_size, normalise_rotation
from video_extract.media.limits import over_budget
from video_extract.media.video import coded_size
from video_extract.results import AudioStreamInfo, MediaInfo, StreamInfo, VideoStreamInfo

#: Packets whose timestamps are read to decide VFR. Enough for minutes of video, cheap on hours.
VFR_SCAN_PACKETS = 3000


def is_still_image(path: str | Path) -> bool:
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def probe(path: str | Path, count_frames: bool = False, scan: bool = True) -> MediaInfo:
    """Describe ``path``; raises InputError for anything that is not readable media.

    ``scan=False`` reads the header alone (stream kinds, codecs, sizes, container frame
    count): enough to plan, and free even on a huge file. Rotation and VFR need the scan.
    """
    path, st = readable(path)
    if is_still_image(path):
        from video_extract.media.image import describe_image

        return describe_image(path, st)
    with open_input(path) as container:
        streams: list[StreamInfo] = []
        for stream in container.streams:
            if stream.type == "video":
                streams.append(_video_stream(path, container, stream, count_frames, scan))
            elif stream.type == "audio":
                streams.append(_audio_stream(stream))
            else:
                kind = stream.type if stream.type in ("subtitle", "data", "attachment") else "unknown"
                streams.append(StreamInfo(index=stream.index, type=kind, codec=_codec_name(stream)))
        if not any(isinstance(s, (VideoStreamInfo, AudioStreamInfo)) for s in streams):
            raise InputError("contains no audio or video stream", path)
        duration = container.duration / av.time_base if container.duration else None
        start = container.start_time / av.time_base if container.start_time else 0.0
        return MediaInfo(
            path=str(path),
            size_bytes=path.stat().st_size,
            container=container.format.name,
            duration=round(duration, 6) if duration else None,
            bit_rate=container.bit_rate or None,
            start_time=round(start, 6),
            streams=streams,
        )


def _codec_name(stream) -> str | None:
    try:
        return stream.codec_context.name
    except Exception:  # noqa: BLE001 - some data streams have no codec context
        return None


def _audio_stream(stream) -> AudioStreamInfo:
    ctx = stream.codec_context
    language = stream.language or stream.metadata.get("language")
    return AudioStreamInfo(
        index=stream.index,
        codec=ctx.name,
        sample_rate=ctx.sample_rate,
        channels=ctx.channels,
        language=None if language in (None, "", "und") else language,
    )


def _video_stream(path: Path, container, stream, count_frames: bool, scan: bool) -> VideoStreamInfo:
    ctx = stream.codec_context
    attached = bool(stream.disposition & av.stream.Disposition.attached_pic)
    sar = stream.sample_aspect_ratio or ctx.sample_aspect_ratio
    sar = Fraction(sar) if sar else Fraction(1)
    width, height = coded_size(stream, path)
    if scan:
        # A frame over the pixel budget is not decoded for its rotation: it stays 0.
        decode = over_budget(width, height, still=False) is None
        pts, rotation, scanned_all = _scan_packets(container, stream, limit=None if count_frames else VFR_SCAN_PACKETS, decode=decode)
    else:
        pts, rotation, scanned_all = [], 0, False
    display_w, display_h = display_size(width, height, sar, rotation)
    frame_count = stream.frames or (len(pts) if scanned_all and pts else None)
    fps = float(stream.average_rate) if stream.average_rate else None
    if fps is None and len(pts) > 1 and stream.time_base:
        fps = (len(pts) - 1) / float((pts[-1] - pts[0]) * stream.time_base) if pts[-1] > pts[0] else None
    return VideoStreamInfo(
        index=stream.index,
        codec=ctx.name,
        width=width,
        height=height,
        display_width=display_w,
        display_height=display_h,
        rotation=rotation,
        fps=round(fps, 6) if fps else None,
        frame_count=frame_count,
        vfr=_is_vfr(pts),
        pixel_aspect_ratio=round(float(sar), 6),
        attached_pic=attached,
    )


def _scan_packets(container, stream, limit: int | None, decode: bool = True) -> tuple[list[int], int, bool]:
    """Sorted packet pts (up to ``limit``), the display rotation, and whether the scan reached the end.

    The rotation comes from the first decoded frame's display matrix: FFmpeg 7+ no longer
    exposes it as stream metadata, and PyAV exposes it on frames.
    """
    pts: list[int] = []
    rotation: int | None = None if decode else 0
    scanned_all = True
    try:
        for packet in container.demux(stream):
            if packet.pts is not None and packet.size:
                pts.append(packet.pts)
            if rotation is None and packet.size:
                try:
                    for frame in packet.decode():
                        rotation = normalise_rotation(frame.rotation or 0)
                        break
                except av.error.FFmpegError:
                    pass
            if limit is not None and len(pts) >= limit and rotation is not None:
                scanned_all = False
                break
    except av.error.FFmpegError:
        scanned_all = False  # a damaged tail: what we read still describes the stream
    pts.sort()
    return pts, (rotation or 0), scanned_all


def _is_vfr(pts: list[int]) -> bool:
    """Variable frame rate: frame durations differ by more than rounding (one tick, or 2 %)."""
    if len(pts) < 3:
        return False
    deltas = [b - a for a, b in zip(pts, pts[1:]) if b > a]
    if not deltas:
        return False
    low, high = min(deltas), max(deltas)
    return high - low > max(1, 0.02 * high)
