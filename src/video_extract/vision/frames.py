"""Frames handed from a frame-sampling stage to the vision plugins that share it.

The sampling stage decodes the video once and leaves JPEG files with an index (frame number,
time); each vision plugin reads them back in batches, with JPEG decoding running ahead in a
background thread. One decode of the video serves every vision operation of a request.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Iterator

import cv2
import numpy as np

from video_extract.media.prefetch import prefetch
from video_extract.plugins.base import Artifact, InputSpec

#: Frame-sampling output type -> its folder in the stage's directory.
FOLDERS = {"Frames": "frames", "Keyframes": "keyframes", "SceneFrames": "scene_frames"}


@dataclass
class FrameItem:
    frame: int
    time: float
    bgr: np.ndarray
    extra: dict

    @property
    def rgb(self) -> np.ndarray:
        return cv2.cvtColor(self.bgr, cv2.COLOR_BGR2RGB)


def frame_source(source: str, fps: float) -> InputSpec:
    """The input a vision plugin needs for its ``source`` parameter."""
    if source == "frames":
        return InputSpec(type="Frames", params={"fps": fps})
    if source == "keyframes":
        return InputSpec(type="Keyframes")
    return InputSpec(type="SceneFrames")


def frames_input(inputs: dict[str, Artifact]) -> Artifact:
    for type_name in FOLDERS:
        if type_name in inputs:
            return inputs[type_name]
    raise KeyError("no frame input")


def frame_index(artifact: Artifact) -> list[dict]:
    return json.loads((artifact.path / FOLDERS[artifact.type] / "index.json").read_text())


def read_frames(artifact: Artifact) -> Iterator[FrameItem]:
    """Frames of a sampling stage in order, decoded from JPEG one step ahead of the caller."""
    folder = artifact.path / FOLDERS[artifact.type]
    entries = frame_index(artifact)

    def load() -> Iterator[FrameItem]:
        for entry in entries:
            bgr = cv2.imread(str(folder / entry["file"]), cv2.IMREAD_COLOR)
            if bgr is None:
                raise OSError(f"cannot read frame file {folder / entry['file']}")
            extra = {k: v for k, v in entry.items() if k not in ("file", "frame", "time")}
            yield FrameItem(entry["frame"], entry["time"], bgr, extra)

    return prefetch(load(), depth=4)


def iter_batches(artifact: Artifact, size: int) -> Iterator[list[FrameItem]]:
    batch: list[FrameItem] = []
    for item in read_frames(artifact):
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
