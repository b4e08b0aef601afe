"""The shape every per-frame detector plugin shares (objects, faces, ocr).

Read the frames a sampling stage left (one decode for every vision operation), run the model
on each, stream each frame's detections as a partial result, and write
``{"frames": [{frame, time, detections}]}`` once all are done.
"""

from __future__ import annotations

from typing import Any, Iterator

from video_extract.plugins.base import Artifact, InputSpec, Plugin, StageContext, write_json
from video_extract.spec import Operation
from video_extract.vision.frames import FrameItem, frame_source, frames_input, iter_frames


class FrameDetectionPlugin(Plugin):
    output_file = ""  # e.g. "objects.json"

    def requires(self, params: Operation) -> list[InputSpec]:
        return [frame_source(params.source, params.fps)]

    def load(self, ctx: StageContext, params: Operation) -> Any:
        """The model (once per process, through ``ctx.models``)."""
        raise NotImplementedError

    def analyse(self, model: Any, item: FrameItem, params: Operation) -> list[dict]:
        raise NotImplementedError

    def summarise(self, frames: list[dict], params: Operation, ctx: StageContext) -> dict:
        """Extra top-level fields of the output file (besides ``frames``)."""
        return {}

    def stream(self, ctx: StageContext, inputs: dict[str, Artifact], params: Operation) -> Iterator[dict]:
        model = self.load(ctx, params)
        frames = []
        for item in iter_frames(frames_input(inputs)):
            record = {"frame": item.frame, "time": item.time, **item.extra, "detections": self.analyse(model, item, params)}
            frames.append(record)
            yield record
        write_json(ctx.work_dir / self.output_file, {**self.summarise(frames, params, ctx), "frames": frames})
        return {"frames": len(frames), "detections": sum(len(f["detections"]) for f in frames)}
