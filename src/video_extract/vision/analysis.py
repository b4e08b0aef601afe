"""The shape every per-frame detector plugin shares (objects, faces, ocr).

Read the frames a sampling stage left (one decode for every vision operation), run the model
on each, stream each frame's detections as a partial result, and write
``{"frames": [{frame, time, detections}]}`` once all are done.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from video_extract.plugins.base import Artifact, InputSpec, Plugin, StageContext, write_json
from video_extract.spec import Operation
from video_extract.vision.frames import FrameItem, frame_source, frames_input, read_frames


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
        for item in read_frames(frames_input(inputs)):
            record = {"frame": item.frame, "time": item.time, **item.extra, "detections": self.analyse(model, item, params)}
            frames.append(record)
            yield record
        write_json(ctx.work_dir / self.output_file, {**self.summarise(frames, params, ctx), "frames": frames})
        return {"frames": len(frames), "detections": sum(len(f["detections"]) for f in frames)}


@dataclass
class Run:
    """Something (a label, a text) seen in consecutive analysed frames."""

    key: Any
    start: float
    end: float
    first_frame: int
    last_frame: int
    frames: int = 0
    detections: list[dict] = field(default_factory=list)

    @property
    def first(self) -> dict:
        return self.detections[0]


def timed_runs(frames: list[dict], ends: list[float | None], key: Callable[[dict], Any]) -> list[Run]:
    """Runs of ``key`` over consecutive analysed frames.

    ``frames``: [{frame, time, detections}] in time order (an optional ``start`` overrides where a
    frame's coverage begins, as a scene's start does); ``ends[i]``: where frame i's coverage ends
    (the next analysed frame, or the end of the video). A run ends where its key stops being seen.
    """
    open_runs: dict[Any, Run] = {}
    done: list[Run] = []
    for item, end in zip(frames, ends):
        seen: dict[Any, list[dict]] = {}
        for det in item["detections"]:
            seen.setdefault(key(det), []).append(det)
        for k in [k for k in open_runs if k not in seen]:
            done.append(open_runs.pop(k))
        for k, dets in seen.items():
            run = open_runs.get(k)
            if run is None:
                run = open_runs[k] = Run(k, item.get("start", item["time"]), item["time"], item["frame"], item["frame"])
            run.end = end if end is not None else item["time"]
            run.last_frame = item["frame"]
            run.frames += 1
            run.detections.extend(dets)
    done.extend(open_runs.values())
    return done


def coverage_ends(frames: list[dict], video_end: float | None) -> list[float | None]:
    """Where each analysed frame's coverage ends: its own ``end`` (scene frames), else the next frame, else the video's end."""
    ends = [f.get("end", following["time"]) for f, following in zip(frames, frames[1:])]
    if frames:
        ends.append(frames[-1].get("end", video_end))
    return ends
