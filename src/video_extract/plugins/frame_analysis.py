"""The shape every per-frame detector plugin shares (objects, faces, ocr).

Read the frames a sampling stage left (one decode for every vision operation), run the model
on each, stream each frame's detections as a partial result, and write the output record
(``frames``, plus what ``summarise`` adds) once all are done.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from video_extract.plugins.base import Inputs, InputSpec, Plugin, StageContext
from video_extract.results import Detection, FrameDetections, FramesResult
from video_extract.spec import Operation
from video_extract.vision.frames import FrameItem, read_frames

#: Frame-sampling output types a vision plugin can read, by its ``source`` parameter.
FRAME_SOURCES = {"frames": "Frames", "keyframes": "Keyframes", "scenes": "SceneFrames"}


def frame_source(source: str, fps: float) -> InputSpec:
    """The input a vision plugin needs for its ``source`` parameter."""
    return InputSpec(type=FRAME_SOURCES[source], params={"fps": fps} if source == "frames" else {})


def frames_input(inputs: Inputs) -> FramesResult:
    """The frame-sampling record among a stage's inputs."""
    for type_name in FRAME_SOURCES.values():
        if type_name in inputs:
            record = inputs[type_name]
            assert isinstance(record, FramesResult)
            return record
    raise KeyError("no frame input")


class FrameDetectionPlugin(Plugin):
    def requires(self, params: Operation) -> list[InputSpec]:
        return [frame_source(params.source, params.fps)]

    def load(self, ctx: StageContext, params: Operation) -> Any:
        """The model (once per process, through ``ctx.models``)."""
        raise NotImplementedError

    def analyse(self, model: Any, item: FrameItem, params: Operation) -> list[Detection]:
        """Detections in pixels of ``item.bgr`` (mapped to the frame's pixels by the caller)."""
        raise NotImplementedError

    def working_side(self, params: Operation) -> int | None:
        """The longer side this plugin shrinks frames to itself, if it does: frame files much
        larger than that are then read at a fraction of their size (a 90 Mpx still in 17 MB,
        not 270). None: frames are analysed at full size."""
        return None

    def summarise(self, frames: list[FrameDetections], params: Operation, ctx: StageContext) -> dict:
        """Fields of the output record besides ``frames``."""
        return {}

    def stream(self, ctx: StageContext, inputs: Inputs, params: Operation) -> Iterator[FrameDetections]:
        model = self.load(ctx, params)
        frames: list[FrameDetections] = []
        for item in read_frames(frames_input(inputs), side=self.working_side(params)):
            found = [to_frame_pixels(d, item.scale) for d in self.analyse(model, item, params)]
            record = FrameDetections(frame=item.frame, time=item.time, **item.extra, detections=found)
            frames.append(record)
            yield record
        ctx.write({**self.summarise(frames, params, ctx), "frames": frames})


def to_frame_pixels(detection: Detection, scale: int) -> Detection:
    """A detection made on a frame read at 1/``scale`` of its size, in the frame's own pixels."""
    if scale == 1:
        return detection
    update: dict[str, Any] = {"box": [round(v * scale, 1) for v in detection.box]}
    if detection.landmarks:
        update["landmarks"] = {name: [round(v * scale, 2) for v in point] for name, point in detection.landmarks.items()}
    return detection.model_copy(update=update)
