"""Typed records of the output contract (DESIGN.md, "Output contract").

Plugins build these and write them as JSON; the Python API reads the same files back into
them. Field names here are the public contract: change them only with a version bump.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict


class Record(BaseModel):
    model_config = ConfigDict(extra="allow")


# --- metadata.json --------------------------------------------------------------------------


class StreamInfo(Record):
    index: int
    type: Literal["video", "audio", "subtitle", "data", "attachment", "unknown"]
    codec: str | None = None


class VideoStreamInfo(StreamInfo):
    type: Literal["video"] = "video"
    width: int
    height: int
    display_width: int
    display_height: int
    rotation: int = 0
    fps: float | None = None
    frame_count: int | None = None
    vfr: bool = False
    pixel_aspect_ratio: float = 1.0
    attached_pic: bool = False


class AudioStreamInfo(StreamInfo):
    type: Literal["audio"] = "audio"
    sample_rate: int
    channels: int
    language: str | None = None


class MediaInfo(Record):
    path: str
    size_bytes: int
    container: str
    duration: float | None
    bit_rate: int | None
    start_time: float = 0.0
    is_image: bool = False
    streams: list[VideoStreamInfo | AudioStreamInfo | StreamInfo]

    @property
    def video(self) -> VideoStreamInfo | None:
        """The stream frame operations read: the first real video stream (not cover art)."""
        for stream in self.streams:
            if isinstance(stream, VideoStreamInfo) and not stream.attached_pic:
                return stream
        return None

    @property
    def audio(self) -> list[AudioStreamInfo]:
        return [s for s in self.streams if isinstance(s, AudioStreamInfo)]


# --- audio.wav ------------------------------------------------------------------------------


class AudioResult(Record):
    file: str = "audio.wav"
    sample_rate: int
    channels: int
    samples: int
    duration: float
    start_time: float = 0.0


# --- frames/ and keyframes/ -----------------------------------------------------------------


class FrameEntry(Record):
    file: str
    frame: int
    time: float


class FramesResult(Record):
    frames: list[FrameEntry]
    dir: str | None = None  # where the JPEG files are, when read back from an output directory

    def paths(self) -> list[str]:
        from pathlib import Path

        return [str(Path(self.dir or ".") / f.file) for f in self.frames]


# --- scenes.json ----------------------------------------------------------------------------


class Cut(Record):
    frame: int
    time: float


class Scene(Record):
    start: float
    end: float
    start_frame: int
    end_frame: int


class ScenesResult(Record):
    cuts: list[Cut]
    scenes: list[Scene]
    detector: str | None = None
    threshold: float | None = None
    fps: float | None = None
    frames_analysed: int | None = None


# --- what a run reports (summary.json, the Python API) ---------------------------------------


class StageRecord(Record):
    """One executed stage: what ran, how long, whether the cache answered."""

    stage: str  # stage id
    label: str  # operation with its non-default parameters
    plugin: str
    status: Literal["ok", "failed", "skipped"]
    cached: bool = False
    seconds: float = 0.0
    requested: list[str] = []
    error: str | None = None


class OpResult(Record):
    status: Literal["ok", "failed"]
    files: list[str] = []  # relative to the input's output directory
    seconds: float = 0.0
    cached: bool = False
    error: str | None = None
    data: dict = {}


class FileResult(Record):
    input: str
    output_dir: str | None
    status: Literal["ok", "failed"]
    ops: dict[str, OpResult] = {}
    stages: list[StageRecord] = []
    seconds: float = 0.0
    digest: str | None = None
    request: list[str] = []  # canonical requested outputs (what a resumed batch compares)
    input_size: int | None = None  # with input_mtime_ns: a resumed batch redoes a changed file
    input_mtime_ns: int | None = None
    error: str | None = None  # the input itself could not be read

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def errors(self) -> dict[str, str]:
        out = {name: op.error or "failed" for name, op in self.ops.items() if op.status != "ok"}
        if self.error:
            out["input"] = self.error
        return out


# --- transcription.json, vad.json, diarization.json ------------------------------------------


class Word(Record):
    start: float
    end: float
    word: str
    probability: float | None = None
    speaker: str | None = None


class TranscriptSegment(Record):
    start: float
    end: float
    text: str
    speaker: str | None = None
    words: list[Word] = []


class TranscriptionResult(Record):
    language: str | None
    text: str
    segments: list[TranscriptSegment]


class TimeSpan(Record):
    start: float
    end: float


class VadResult(Record):
    segments: list[TimeSpan]
    speech_duration: float | None = None


class SpeakerTurn(Record):
    start: float
    end: float
    speaker: str


class DiarizationResult(Record):
    num_speakers: int
    segments: list[SpeakerTurn]


# --- objects.json, faces.json, ocr.json -------------------------------------------------------


class Detection(Record):
    label: str
    confidence: float
    box: list[float]  # [x1, y1, x2, y2] in pixels of the displayed frame
    landmarks: dict[str, list[float]] | None = None  # faces
    text: str | None = None  # ocr


class FrameDetections(Record):
    frame: int
    time: float
    detections: list[Detection]


class DetectionsResult(Record):
    frames: list[FrameDetections]
    texts: list[dict] | None = None  # ocr: the same text across frames, merged with start/end

    def labels(self) -> set[str]:
        return {d.label for f in self.frames for d in f.detections}


# --- embeddings/*.npy + *.json ----------------------------------------------------------------


class EmbeddingsResult:
    """Rows of an embeddings matrix (float32, L2-normalised) and what each row is."""

    def __init__(self, vectors, rows: list[dict], path: str):
        self.vectors = vectors
        self.rows = rows
        self.path = path

    def __len__(self) -> int:
        return len(self.rows)

    def __repr__(self) -> str:
        return f"EmbeddingsResult({self.vectors.shape}, {self.path})"
