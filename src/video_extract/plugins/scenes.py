"""scenes: shot boundaries with PySceneDetect's detectors, the same cuts as ``scenedetect.detect()``.

PySceneDetect's detectors see what its SceneManager gives them: OpenCV's full-size BGR frame
shrunk by cv2.resize(INTER_LINEAR) by max(width, height) / 256, and a FrameTimecode built from
OpenCV's CAP_PROP_POS_MSEC. We give them the same pixels (``media.shrunk``: PyAV's decoder and
swscale, converting only the rows the resize reads) and the same timecodes, so the cut list is
theirs, while decoding runs in a thread of its own ahead of the detector.

Cuts are reported at our frame index (display order) and pts time on the source timeline: on
constant-frame-rate input these are PySceneDetect's frame numbers and times (its times count
from the stream's first pts); on VFR input PySceneDetect's frame number is round(time x mean
fps), an approximation, and ours is the frame's true index.

Beside ``scenes.json`` the plugin writes ``scenes.csv``: the scene list as ``scenedetect
list-scenes`` writes it by default (its ``write_scene_list``: a first ``Timecode List:`` row of
the cuts, then one row per scene with 1-based start frame, timecodes ``HH:MM:SS.mmm``, seconds
and lengths). Times there count from the first frame, as PySceneDetect's do.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from fractions import Fraction

from video_extract.errors import InputError
from video_extract.media import iter_frames
from video_extract.media.prefetch import prefetch
from video_extract.media.shrunk import CaptureInfo, iter_shrunk_frames
from video_extract.plugins.base import Inputs, Plugin, StageContext
from video_extract.results import Cut, Scene, ScenesResult
from video_extract.spec import Scenes


def make_detector(params: Scenes, fast: bool = False):
    """PySceneDetect's detector for ``params``; ``fast`` swaps in ``fast_scores``'s frame score
    for the two that compare HSV frames (content, adaptive): the same numbers, sooner."""
    from scenedetect.detectors import AdaptiveDetector, ContentDetector, HashDetector, HistogramDetector, ThresholdDetector

    kwargs: dict = {"min_scene_len": params.min_scene_len}
    if params.detector == "adaptive":
        if params.threshold is not None:
            kwargs["adaptive_threshold"] = params.threshold
        return (fast_scores(AdaptiveDetector) if fast else AdaptiveDetector)(**kwargs)
    if params.threshold is not None:
        kwargs["threshold"] = params.threshold
    cls = {"content": ContentDetector, "threshold": ThresholdDetector, "histogram": HistogramDetector, "hash": HashDetector}[params.detector]
    return (fast_scores(cls) if fast and cls is ContentDetector else cls)(**kwargs)


@functools.cache
def fast_scores(cls: type) -> type:
    """``cls`` (ContentDetector or a subclass) scoring a frame in one pass over its HSV pixels.

    ContentDetector splits the HSV frame into three planes and sums each plane's absolute
    difference to the last frame's with numpy (int32 copies, three reductions): about half of
    its time. ``cv2.absdiff`` and ``cv2.sumElems`` give the same three sums (integers, exact in
    a double), which go through the same division and weighted mean as its own, so each score
    is the same float. Edges (a weight on them) and a stats manager take its own path."""
    import cv2
    from scenedetect.detectors import ContentDetector

    class FastScores(cls):
        _last_hsv = None

        def _calculate_frame_score(self, timecode, frame_img):
            if self._weights.delta_edges > 0.0 or self.stats_manager is not None:
                return super()._calculate_frame_score(timecode, frame_img)
            hsv = cv2.cvtColor(frame_img, cv2.COLOR_BGR2HSV)
            last, self._last_hsv = self._last_hsv, hsv
            if last is None:
                return 0.0
            pixels = float(hsv.shape[0] * hsv.shape[1])
            hue, sat, lum, _ = cv2.sumElems(cv2.absdiff(hsv, last))
            components = ContentDetector.Components(delta_hue=hue / pixels, delta_sat=sat / pixels, delta_lum=lum / pixels, delta_edges=0.0)
            return sum(c * w for c, w in zip(components, self._weights, strict=True)) / sum(abs(w) for w in self._weights)

    FastScores.__name__ = FastScores.__qualname__ = f"Fast{cls.__name__}"
    return FastScores


def downscale_factor(params: Scenes, info: CaptureInfo) -> float:
    """SceneManager's factor: auto (the longer side over 256) unless a fixed integer is asked for."""
    from scenedetect.scene_manager import compute_downscale_factor

    if params.downscale is not None:
        return float(params.downscale)
    return float(compute_downscale_factor(max(info.width, info.height)))


class _Timecodes:
    """FrameTimecodes as PySceneDetect's OpenCV backend makes them (``VideoStreamCv2.position``)."""

    def __init__(self, fps: float):
        from scenedetect.common import framerate_to_fraction

        self.rate = framerate_to_fraction(fps if fps > 0 else 25.0)

    def at(self, msec: float, frame_number: int):
        from scenedetect.common import FrameTimecode, Timecode

        timecode = Timecode(pts=round(msec * 1000), time_base=Fraction(1, 1000000))
        if timecode.pts <= 0 and frame_number > 0:
            timecode = Timecode(pts=(frame_number - 1) * self.rate.denominator, time_base=Fraction(1, self.rate.numerator))
        return FrameTimecode(timecode=timecode, fps=self.rate)


class ScenesPlugin(Plugin):
    def stream(self, ctx: StageContext, inputs: Inputs, params: Scenes) -> Iterator[Cut]:
        if params.keyframes_only or ctx.source.info.is_image:
            # A still is its own one keyframe: its pixels are the request's shared decode.
            yield from self._keyframes_only(ctx, params)
            return
        detector = make_detector(params, fast=True)
        by_pts: dict[tuple, tuple[int, float]] = {}  # a detector returns the timecodes we gave it...
        by_number: dict[int, tuple[int, float]] = {}  # ...or (ThresholdDetector) a frame number
        cuts: dict[int, Cut] = {}
        timecodes = None
        size = None
        origin = 0.0
        first = last = None
        count = 0

        def record(found) -> Iterator[Cut]:
            for tc in found:
                index, time = by_pts.get((tc.pts, tc.time_base)) or by_number.get(tc.frame_num) or (tc.frame_num, origin + tc.seconds)
                if index not in cuts:
                    cuts[index] = Cut(frame=index, time=round(time, 6))
                    yield cuts[index]

        # Frames are decoded in a thread of their own while this one shrinks and scores the last:
        # two busy threads (a third, shrinking apart from scoring, only made them take turns).
        for info, frame in iter_shrunk_frames(ctx.source.path, lambda info: downscale_factor(params, info)):
            if timecodes is None:
                timecodes = _Timecodes(info.fps)
                origin = frame.time - frame.msec / 1000
            position = timecodes.at(frame.msec, frame.index + 1)
            last = position
            # SceneManager drops frames whose decoded size differs from the first one's (corrupt input).
            if size is None:
                size = frame.decoded_size
            elif frame.decoded_size != size:
                continue
            count += 1
            by_pts.setdefault((position.pts, position.time_base), (frame.index, frame.time))
            by_number.setdefault(position.frame_num, (frame.index, frame.time))
            if first is None:
                first = (frame.index, frame.time)
            end = (frame.index + 1, frame.time)
            yield from record(detector.process_frame(position, frame.image))
        if count == 0:
            raise InputError("no video frame could be decoded (the video stream is damaged or in a codec FFmpeg cannot decode)", ctx.source.path)
        yield from record(detector.post_process(last))

        fps = float(timecodes.rate)
        end_frame, end_time = end[0], round(end[1] + 1.0 / fps, 6)
        ordered = sorted(cuts.values(), key=lambda c: c.frame)
        _write(ctx, _result(ordered, first, (end_frame, end_time), params, fps, count))

    def _keyframes_only(self, ctx: StageContext, params: Scenes) -> Iterator[Cut]:
        """The fast path: keyframes alone, so cuts land on keyframes (not PySceneDetect's answer)."""
        from scenedetect.common import FrameTimecode

        video = ctx.source.info.video
        fps = video.fps if video and video.fps else 25.0
        detector = make_detector(params, fast=True)
        info = CaptureInfo(fps=fps, width=video.width if video else 0, height=video.height if video else 0)
        factor = downscale_factor(params, info) if info.width else 1.0
        width = max(2, round(max(info.width, 1) / factor)) if factor > 1 else None
        by_time: dict[float, tuple[int, float]] = {}
        cuts: list[Cut] = []
        first = last = None
        count = 0

        def record(found) -> Iterator[Cut]:
            for tc in found:
                index, time = by_time.get(round(tc.seconds, 6), (tc.frame_num, tc.seconds))
                if cuts and index <= cuts[-1].frame or (first is not None and index <= first[0]):
                    continue
                cuts.append(Cut(frame=index, time=round(time, 6)))
                yield cuts[-1]

        frames = prefetch(iter_frames(ctx.source.pixels, width=width, pix_fmt="bgr24", keyframes_only=True, fast=True), depth=16)
        for frame in frames:
            count += 1
            seconds = max(frame.time, 0.0)
            by_time[round(seconds, 6)] = (frame.index, frame.time)
            timecode = FrameTimecode(seconds, fps=fps)
            if first is None:
                first = (frame.index, frame.time)
            last = (frame.index, frame.time, timecode)
            yield from record(detector.process_frame(timecode, frame.image))
        if last is None:
            raise InputError("no video frame could be decoded (the video stream is damaged or in a codec FFmpeg cannot decode)", ctx.source.path)
        yield from record(detector.post_process(last[2]))
        # The last keyframe is rarely the last frame: the end is what the container says.
        end_frame, end_time = last[0] + 1, last[1] + 1.0 / fps
        if video and video.frame_count:
            end_frame = max(end_frame, video.frame_count)
        if ctx.source.info.duration:
            end_time = max(end_time, ctx.source.info.start_time + ctx.source.info.duration)
        _write(ctx, _result(cuts, first, (end_frame, round(end_time, 6)), params, fps, count))


def _result(cuts: list[Cut], first: tuple[int, float], end: tuple[int, float], params: Scenes, fps: float, count: int) -> ScenesResult:
    """Scenes between consecutive cuts, from the first frame to one past the last (exclusive)."""
    bounds = [first] + [(c.frame, c.time) for c in cuts] + [end]
    scenes = [
        Scene(start=round(a[1], 6), end=round(b[1], 6), start_frame=a[0], end_frame=b[0]) for a, b in zip(bounds, bounds[1:]) if b[0] > a[0] or len(bounds) == 2
    ]
    return ScenesResult(cuts=cuts, scenes=scenes, detector=params.detector, threshold=params.threshold, fps=fps, frames_analysed=count)


def _write(ctx: StageContext, result: ScenesResult) -> None:
    ctx.path("scenes.csv").write_text(scene_csv(result), encoding="utf-8", newline="")
    ctx.write(result)


def scene_csv(result: ScenesResult) -> str:
    """The scene list in ``scenedetect list-scenes``'s CSV, by its own writer, from timecodes
    built as its OpenCV backend builds them (pts-backed, at the stream's frame rate), so
    frame numbers, timecodes and lengths are the ones it computes."""
    import io

    from scenedetect.common import FrameTimecode, Timecode, framerate_to_fraction
    from scenedetect.output import write_scene_list

    rate = framerate_to_fraction(result.fps if result.fps and result.fps > 0 else 25.0)
    origin = result.scenes[0].start if result.scenes else 0.0

    def timecode(seconds: float) -> FrameTimecode:
        micros = max(0, round((seconds - origin) * 1_000_000))
        return FrameTimecode(timecode=Timecode(pts=micros, time_base=Fraction(1, 1_000_000)), fps=rate)

    scenes = [(timecode(s.start), timecode(s.end)) for s in result.scenes]
    sink = io.StringIO(newline="")  # rendered in memory: the stage's file name stays out of its log line
    write_scene_list(sink, scenes, include_cut_list=True, cut_list=[timecode(c.time) for c in result.cuts])
    return sink.getvalue()
