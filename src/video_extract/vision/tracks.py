"""Detections linked across sampled frames into tracks (one face, one car), with norfair.

Detectors see frames at sampling times (``fps``, keyframes, one frame per scene), not every
frame. The tracker runs on those analysed frames in time order, one tracker per class and per
scene: a track never crosses a cut, since after a cut the same place on screen shows something
else. Two detections are linked by the distance between their box centres in units of the new
box's diagonal (a Kalman filter predicts where a track's box is next), so a box may move up to
about one of its own diagonals between two analysed frames; at ``fps=1`` that covers people and
faces, not a car crossing the frame.

How sampled-frame detections become spans: a track seen in an analysed frame covers the time
from that frame (or its scene's start, for one frame per scene) until the next analysed frame,
or its scene's end, or the video's end for the last one; the coverage of the frames it is seen
in, merged, are its spans. A frame where it is missed (it is kept alive for ``MISSES`` frames)
splits a span.

Why norfair: on generated clips of two boxes crossing paths with 10 % of detections dropped
(20 clips each, steps of 10 to 30 px per analysed frame for 60 px boxes), norfair with this
distance made no ID switch, where ByteTrack (the ``trackers`` package) made 5 to 15 at the
crossing: at sampled frames boxes overlap little from one frame to the next, and IoU-matched
trackers lose them.
"""

from __future__ import annotations

import bisect
import importlib
import sys
import threading
import types
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from video_extract.results import Detection, FrameDetections
from video_extract.vision.runs import coverage_ends

#: Analysed frames a track survives without a detection before it ends.
MISSES = 2
#: Largest centre distance, in box diagonals, for a detection to continue a track.
REACH = 1.0


@dataclass
class Sighting:
    """A track's detection in one analysed frame."""

    frame: int
    time: float
    detection: Detection


@dataclass
class Track:
    """One thing followed over analysed frames of one scene."""

    label: str
    scene: int | None
    sightings: list[Sighting] = field(default_factory=list)
    spans: list[tuple[float, float]] = field(default_factory=list)

    @property
    def best(self) -> Sighting:
        """The representative sighting: the most confident detection, the larger box on a tie."""
        return max(self.sightings, key=lambda s: (s.detection.confidence, _area(s.detection.box)))

    @property
    def start(self) -> float:
        return self.spans[0][0]


def _area(box: list[float]) -> float:
    return max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1])


def centre_distances(new: np.ndarray, old: np.ndarray) -> np.ndarray:
    """Distances between the centres of boxes ``new`` (n x 4, x1 y1 x2 y2) and ``old`` (m x 4),
    in diagonals of the new box (scale-free: a face and a bus move alike)."""
    centres_new = (new[:, :2] + new[:, 2:]) / 2
    centres_old = (old[:, :2] + old[:, 2:]) / 2
    diagonals = np.hypot(new[:, 2] - new[:, 0], new[:, 3] - new[:, 1])
    return np.linalg.norm(centres_new[:, None, :] - centres_old[None, :, :], axis=2) / np.maximum(diagonals, 1.0)[:, None]


_IMPORTING = threading.RLock()

#: Modules norfair imports as it loads, with the names it takes from them, that our tracker never
#: calls: ``filterpy.kalman`` imports ``filterpy.stats``, which imports ``scipy.stats`` (0.4 s
#: cold), and ``scipy.linalg`` (0.15 s); ``scipy.spatial.distance`` imports the rest of
#: ``scipy.spatial`` (0.1 s more). Our tracker's Kalman filter is norfair's own and its distance
#: is ours (``centre_distances``): tracking needs none of scipy.
_DEFERRED = {"filterpy.kalman": ("KalmanFilter",), "scipy.spatial.distance": ("cdist",)}


def import_norfair() -> types.ModuleType:
    """norfair, without importing the modules of ``_DEFERRED``.

    While norfair is imported, each of them is a stand-in whose names load the real module on
    their first call (or first look, for any other name), so whatever does call them gets the
    library's own answer; once norfair is in, the stand-ins leave ``sys.modules``."""
    with _IMPORTING:
        if "norfair" in sys.modules:
            return importlib.import_module("norfair")
        stand_ins = {name: _stand_in(name, names) for name, names in _DEFERRED.items() if name not in sys.modules}
        sys.modules.update(stand_ins)
        try:
            return importlib.import_module("norfair")
        finally:
            for name, stand_in in stand_ins.items():
                if sys.modules.get(name) is stand_in:
                    del sys.modules[name]


def _stand_in(name: str, names: Sequence[str]) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__dict__["_video_extract_stand_in"] = True

    def load():
        with _IMPORTING:  # a thread that imported the stand-in while norfair loaded waits for the real one
            if getattr(sys.modules.get(name), "_video_extract_stand_in", False):
                del sys.modules[name]
            return importlib.import_module(name)

    def deferred(attr: str):
        def call(*args, **kwargs):
            return getattr(load(), attr)(*args, **kwargs)

        call.__name__ = attr
        return call

    def other(attr: str):
        if attr.startswith("__"):  # what the import system looks for (``__path__``): not a reason to load
            raise AttributeError(attr)
        return getattr(load(), attr)

    for attr in names:
        setattr(module, attr, deferred(attr))
    module.__getattr__ = other
    return module


def track_detections(frames: Sequence[FrameDetections], scenes: Sequence[tuple[float, float]] = (), video_end: float | None = None) -> list[Track]:
    """Tracks of every class in ``frames`` (analysed frames, in time order), in order of first
    sight. ``scenes``: (start, end) of each scene; none means one scene."""
    norfair = import_norfair()
    Point, Tracker, VectorizedDistance = norfair.Detection, norfair.Tracker, norfair.distances.VectorizedDistance

    frames = sorted(frames, key=lambda f: f.time)
    ends = coverage_ends(frames, video_end)
    groups: dict[int | None, list[int]] = {}
    scene_ends = [end for _, end in scenes]
    for i, f in enumerate(frames):
        groups.setdefault(_scene_of(f.time, scenes, scene_ends), []).append(i)
    tracks: list[Track] = []
    for scene, indices in groups.items():
        limit = scenes[scene][1] if scene is not None else float("inf")
        for label in sorted({d.label for i in indices for d in frames[i].detections}):
            # norfair counts a track's life in hits: +2 * period per detection, -1 per frame, up to
            # hit_counter_max; a new track starts at ``period``. With both at MISSES + 1, any
            # track, even one seen once, survives MISSES analysed frames without a detection.
            tracker = Tracker(
                distance_function="euclidean",
                distance_threshold=REACH,
                hit_counter_max=MISSES + 1,
                initialization_delay=0,
                pointwise_hit_counter_max=MISSES + 1,
            )
            # norfair 2.3 takes a custom distance only as a per-pair Python function (and warns
            # about it); its vectorised form is set in place of the named one.
            tracker.distance_function = VectorizedDistance(centre_distances)
            mine: dict[int, tuple[object, Track]] = {}  # holds the object, so its id() stays its own
            for i in indices:
                f = frames[i]
                points = [Point(points=np.array([d.box[:2], d.box[2:]], float), data=d) for d in f.detections if d.label == label]
                tracker.update(points, period=MISSES + 1)
                start = f.start if f.start is not None else f.time
                end = min(ends[i] if ends[i] is not None else f.time, limit)
                for obj in tracker.tracked_objects:
                    if not any(obj.last_detection is p for p in points):
                        continue
                    if id(obj) not in mine:
                        mine[id(obj)] = (obj, Track(label=label, scene=scene))
                        tracks.append(mine[id(obj)][1])
                    track = mine[id(obj)][1]
                    track.sightings.append(Sighting(frame=f.frame, time=f.time, detection=obj.last_detection.data))
                    if track.spans and track.spans[-1][1] >= start - 1e-9:
                        track.spans[-1] = (track.spans[-1][0], max(track.spans[-1][1], end))
                    else:
                        track.spans.append((start, max(end, start)))
    tracks.sort(key=lambda t: (t.start, t.label))
    return tracks


def _scene_of(time: float, scenes: Sequence[tuple[float, float]], ends: Sequence[float]) -> int | None:
    """The scene ``time`` is in (the last one past the end, none before the first or in a gap)."""
    if not scenes:
        return None
    n = bisect.bisect_right(ends, time)
    if n == len(scenes):
        return n - 1
    return n if scenes[n][0] <= time else None
