"""Sampled-frame detections as spans of time: what is seen, from when, until when.

A detector sees frames at sampling times; a label (or a text) seen in consecutive analysed
frames is one run, from the first of those frames to where the last one's coverage ends (the
next analysed frame, the end of its scene for one frame per scene, or the end of the video).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from video_extract.results import Detection, FrameDetections


@dataclass
class Run:
    """Something (a label, a text) seen in consecutive analysed frames."""

    key: Any
    start: float
    end: float
    first_frame: int
    last_frame: int
    frames: int = 0
    detections: list[Detection] = field(default_factory=list)
    max_count: int = 0  # most detections of this key in one frame

    @property
    def first(self) -> Detection:
        return self.detections[0]


def timed_runs(frames: Sequence[FrameDetections], ends: Sequence[float | None], key: Callable[[Detection], Any]) -> list[Run]:
    """Runs of ``key`` over consecutive analysed frames.

    ``frames`` in time order (a frame's ``start``, when set, is where its coverage begins, as a
    scene's start does); ``ends[i]``: where frame i's coverage ends. A run ends where its key
    stops being seen.
    """
    open_runs: dict[Any, Run] = {}
    done: list[Run] = []
    for item, end in zip(frames, ends):
        seen: dict[Any, list[Detection]] = {}
        for det in item.detections:
            seen.setdefault(key(det), []).append(det)
        for k in [k for k in open_runs if k not in seen]:
            done.append(open_runs.pop(k))
        for k, dets in seen.items():
            run = open_runs.get(k)
            if run is None:
                start = item.start if item.start is not None else item.time
                run = open_runs[k] = Run(k, start, item.time, item.frame, item.frame)
            run.end = end if end is not None else item.time
            run.last_frame = item.frame
            run.frames += 1
            run.detections.extend(dets)
            run.max_count = max(run.max_count, len(dets))
    done.extend(open_runs.values())
    return done


def coverage_ends(frames: Sequence[FrameDetections], video_end: float | None) -> list[float | None]:
    """Where each analysed frame's coverage ends: its own ``end`` (scene frames), else the next
    frame, else the video's end."""
    ends: list[float | None] = [f.end if f.end is not None else following.time for f, following in zip(frames, frames[1:])]
    if frames:
        ends.append(frames[-1].end if frames[-1].end is not None else video_end)
    return ends
