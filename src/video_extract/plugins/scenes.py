"""scenes: shot boundaries with PySceneDetect's detectors, fed by our decoder.

PySceneDetect's own pipeline decodes full-size BGR frames with OpenCV and then shrinks them.
We hand its detectors frames that FFmpeg's swscale has already shrunk to ~256 px wide during
colour conversion, decoded with frame threads and without the deblocking filter (which only
smooths block edges and does not move a cut), and timed from pts so VFR input is right.
"""

from __future__ import annotations

from collections.abc import Iterator

from video_extract.media import iter_frames
from video_extract.media.prefetch import prefetch
from video_extract.plugins.base import Inputs, Plugin, StageContext
from video_extract.results import Cut, Scene, ScenesResult
from video_extract.spec import Scenes


def make_detector(params: Scenes):
    from scenedetect.detectors import AdaptiveDetector, ContentDetector, HashDetector, HistogramDetector, ThresholdDetector

    kwargs: dict = {"min_scene_len": params.min_scene_len}
    if params.detector == "adaptive":
        if params.threshold is not None:
            kwargs["adaptive_threshold"] = params.threshold
        return AdaptiveDetector(**kwargs)
    if params.threshold is not None:
        kwargs["threshold"] = params.threshold
    cls = {"content": ContentDetector, "threshold": ThresholdDetector, "histogram": HistogramDetector, "hash": HashDetector}[params.detector]
    return cls(**kwargs)


class ScenesPlugin(Plugin):
    def stream(self, ctx: StageContext, inputs: Inputs, params: Scenes) -> Iterator[Cut]:
        from scenedetect.common import FrameTimecode

        video = ctx.source.info.video
        fps = video.fps if video and video.fps else 25.0
        detector = make_detector(params)
        by_time: dict[float, tuple[int, float]] = {}  # detectors report cuts as the timecodes we gave them
        cuts: list[Cut] = []
        first = last = None
        count = 0

        def record(found) -> Iterator[Cut]:
            for tc in found:
                index, time = by_time.get(round(tc.seconds, 6), (tc.frame_num, tc.seconds))
                if cuts and index <= cuts[-1].frame or (first is not None and index <= first[0]):
                    continue
                cut = Cut(frame=index, time=round(time, 6))
                cuts.append(cut)
                yield cut

        # Decoding runs a frame ahead in its own thread while the detector scores the last one.
        frames = prefetch(
            iter_frames(ctx.source.path, width=params.downscale_width, pix_fmt="bgr24", keyframes_only=params.keyframes_only, fast=True),
            depth=16,
        )
        for frame in frames:
            count += 1
            seconds = max(frame.time, 0.0)
            by_time[round(seconds, 6)] = (frame.index, frame.time)
            timecode = FrameTimecode(seconds, fps=fps)
            if first is None:
                first = (frame.index, frame.time)
            last = (frame.index, frame.time, timecode)
            yield from record(detector.process_frame(timecode, frame.image))
        if last is not None:
            yield from record(detector.post_process(last[2]))

        end_frame, end_time = _end_of_video(ctx, last, fps, params.keyframes_only)
        start_frame, start_time = first if first else (0, 0.0)
        bounds = [(start_frame, start_time)] + [(c.frame, c.time) for c in cuts] + [(end_frame, end_time)]
        scenes = [
            Scene(start=round(a[1], 6), end=round(b[1], 6), start_frame=a[0], end_frame=b[0])
            for a, b in zip(bounds, bounds[1:])
            if b[0] > a[0] or len(bounds) == 2
        ]
        result = ScenesResult(
            cuts=cuts,
            scenes=scenes,
            detector=params.detector,
            threshold=params.threshold,
            fps=fps,
            frames_analysed=count,
        )
        ctx.write(result)


def _end_of_video(ctx: StageContext, last, fps: float, keyframes_only: bool) -> tuple[int, float]:
    """End of the last scene: one frame past the last frame (exclusive, as PySceneDetect reports)."""
    video = ctx.source.info.video
    if last is None:
        return 1, 0.0
    end_frame, end_time = last[0] + 1, last[1] + 1.0 / fps
    if keyframes_only:
        # The last keyframe is rarely the last frame: use what the container says.
        if video and video.frame_count:
            end_frame = max(end_frame, video.frame_count)
        if ctx.source.info.duration:
            end_time = max(end_time, ctx.source.info.start_time + ctx.source.info.duration)
    return end_frame, round(end_time, 6)
