"""The output contract: one declaration per output type, and the records that travel with it.

An output type is a subclass of ``Output`` that names the type (``type_name``, what manifests
say a plugin produces and consumes), the files it owns (``files``, published under
``{out}/{stem}/``) and, through its fields, its record. Everything else is derived from these
declarations: the files a plugin publishes, how a consumer receives its inputs, how the Client
reads results back, and the output table of the README. A third-party plugin declares its own
output type the same way, in its own module.

Records are strict (``extra="forbid"``): a plugin that writes a field the contract does not
name fails, so the contract cannot drift without a test noticing. Field names are public:
change them only with a plugin version bump.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from video_extract.jsontext import json_text

#: Output type name -> its declaration. Filled as ``Output`` subclasses are defined.
OUTPUT_TYPES: dict[str, type[Output]] = {}


def _is_none(value: Any) -> bool:
    return value is None


def optional(default: Any = None) -> Any:
    """A field left out of the JSON while it is None (a transcript segment has a ``speaker``
    only when diarized)."""
    return Field(default, exclude_if=_is_none)


class Record(BaseModel):
    """A typed record of the contract."""

    model_config = ConfigDict(extra="forbid")

    def to_pandas(self):
        """The record's main table as a pandas DataFrame (needs the ``pandas`` extra)."""
        raise TypeError(f"{type(self).__name__} is not tabular")


def _data_frame(rows: list[dict], columns: list[str]):
    try:
        import pandas as pd
    except ImportError:
        raise ImportError("to_pandas() needs pandas: pip install 'video-extract[pandas]'") from None
    return pd.DataFrame(rows, columns=columns)


class Output(Record):
    """The declaration of one output type: its name, its files, its record (the fields).

    ``record_file`` is the JSON file that holds the record; with ``record_field`` it holds that
    one field (a list: ``frames/index.json``) and the other fields are kept with the stage.
    Without a ``record_file`` (a small record beside a bulky file, like ``audio.wav``) the whole
    record is kept with the stage: in the cache entry and in ``summary.json``.

    A record read back from a folder is also a handle on that folder's files (``file()``).
    """

    type_name: ClassVar[str] = ""
    files: ClassVar[tuple[str, ...]] = ()
    optional_files: ClassVar[tuple[str, ...]] = ()  # those of ``files`` a parameter may leave out
    record_file: ClassVar[str | None] = None
    record_field: ClassVar[str | None] = None

    _folder: Path | None = PrivateAttr(default=None)

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        if cls.__dict__.get("type_name"):
            OUTPUT_TYPES[cls.type_name] = cls

    # -- storage ---------------------------------------------------------------------------

    def save(self, folder: Path | None) -> dict[str, Any]:
        """Write the record file into ``folder`` (None: not written, the record travels in
        memory and ``record_text`` is published); returns what is kept with the stage."""
        data = self.model_dump(mode="json")
        if self.record_file is None:
            return data
        body = data.pop(self.record_field) if self.record_field else data
        if folder is not None:
            path = folder / self.record_file
            if "/" in self.record_file:
                path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(_record_text(body))
        return data if self.record_field else _stats(data)

    def record_text(self) -> str:
        """The record file's content, as ``save`` writes it."""
        data = self.model_dump(mode="json")
        return _record_text(data[self.record_field] if self.record_field else data)

    @classmethod
    def load(cls, folder: Path, kept: dict[str, Any] | None = None) -> Output:
        """The record of the files in ``folder`` (a stage's directory or a published one)."""
        kept = kept or {}
        if cls.record_file is None:
            record = cls.model_validate(kept)
        else:
            body = json.loads((folder / cls.record_file).read_text())
            record = cls.model_validate({**kept, cls.record_field: body} if cls.record_field else body)
        record._folder = Path(folder)
        return record

    def stats(self) -> dict[str, Any]:
        """A few facts for logs and summaries: list lengths and short scalar fields."""
        return _stats(self.model_dump(mode="json"))

    # -- handles ---------------------------------------------------------------------------

    @property
    def folder(self) -> Path:
        if self._folder is None:
            raise ValueError(f"this {type(self).__name__} was not read from a folder")
        return self._folder

    def file(self, name: str) -> Path:
        """One of this output's files (``audio.wav``, ``embeddings/text.npy``)."""
        return self.folder / name


def _record_text(body: Any) -> str:
    return json_text(body)


def _stats(data: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in data.items():
        if isinstance(value, list):
            out[name] = len(value)
        elif isinstance(value, (int, float, bool)) or value is None or (isinstance(value, str) and len(value) <= 80):
            out[name] = value
    return out


def output_type(name: str) -> type[Output]:
    try:
        return OUTPUT_TYPES[name]
    except KeyError:
        raise LookupError(f"no record declares the output type '{name}' (declared: {', '.join(sorted(OUTPUT_TYPES))})") from None


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


class MediaInfo(Output):
    """What the file holds: container, duration and every stream."""

    type_name: ClassVar[str] = "Metadata"
    files: ClassVar[tuple[str, ...]] = ("metadata.json",)
    record_file: ClassVar[str | None] = "metadata.json"

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

    def to_pandas(self):
        """One row per stream."""
        rows = [s.model_dump() for s in self.streams]
        return _data_frame(rows, sorted({k for r in rows for k in r}, key=lambda k: (k not in ("index", "type", "codec"), k)))


# --- audio.wav ------------------------------------------------------------------------------


class AudioResult(Output):
    """The decoded audio track; the samples are in ``audio.wav`` (``path``)."""

    type_name: ClassVar[str] = "Audio"
    files: ClassVar[tuple[str, ...]] = ("audio.wav",)

    sample_rate: int
    channels: int
    samples: int
    duration: float
    start_time: float = 0.0  # time of the first sample on the source timeline

    @property
    def path(self) -> Path:
        return self.file("audio.wav")


# --- frames/, keyframes/, scene_frames/ ---------------------------------------------------------


class FrameEntry(Record):
    file: str
    frame: int
    time: float


class SceneFrameEntry(FrameEntry):
    scene: int
    start: float
    end: float


class FramesResult(Output):
    """Frames saved as JPEG, with their index and time; ``paths()`` lists the files."""

    type_name: ClassVar[str] = "Frames"
    files: ClassVar[tuple[str, ...]] = ("frames/",)
    record_file: ClassVar[str | None] = "frames/index.json"
    record_field: ClassVar[str | None] = "frames"

    frames: list[FrameEntry]

    #: In the process that made the record, what gives its frames' pixels in order, each as
    #: (array, channel order) (a still image's one frame, from the picture the request decoded
    #: once): consumers use it
    #: rather than reading a JPEG back, and the JPEG is written only when it is published.
    _pixels: Any = PrivateAttr(default=None)

    @property
    def directory(self) -> Path:
        return self.file(Path(self.record_file).parent.name)

    def paths(self) -> list[str]:
        return [str(self.directory / f.file) for f in self.frames]

    def to_pandas(self):
        return _data_frame([f.model_dump() for f in self.frames], list(type(self.frames[0]).model_fields) if self.frames else ["file", "frame", "time"])


class KeyframesResult(FramesResult):
    type_name: ClassVar[str] = "Keyframes"
    files: ClassVar[tuple[str, ...]] = ("keyframes/",)
    record_file: ClassVar[str | None] = "keyframes/index.json"


class SceneFramesResult(FramesResult):
    """The middle frame of each scene, with the scene it stands for."""

    type_name: ClassVar[str] = "SceneFrames"
    files: ClassVar[tuple[str, ...]] = ("scene_frames/",)
    record_file: ClassVar[str | None] = "scene_frames/index.json"

    frames: list[SceneFrameEntry]


# --- scenes.json ----------------------------------------------------------------------------


class Cut(Record):
    frame: int
    time: float


class Scene(Record):
    start: float
    end: float
    start_frame: int
    end_frame: int  # exclusive


class ScenesResult(Output):
    """Cuts and scenes; ``scenes.csv`` beside it is the same list in ``scenedetect list-scenes``'s CSV."""

    type_name: ClassVar[str] = "Scenes"
    files: ClassVar[tuple[str, ...]] = ("scenes.json", "scenes.csv")
    record_file: ClassVar[str | None] = "scenes.json"

    cuts: list[Cut]
    scenes: list[Scene]
    detector: str | None = None
    threshold: float | None = None
    fps: float | None = None
    frames_analysed: int | None = None

    def to_pandas(self):
        """One row per scene."""
        return _data_frame([s.model_dump() for s in self.scenes], list(Scene.model_fields))


# --- transcription.json, vad.json, diarization.json ------------------------------------------


class Word(Record):
    start: float
    end: float
    word: str
    probability: float | None = None
    speaker: str | None = optional()


class TranscriptSegment(Record):
    start: float
    end: float
    text: str
    speaker: str | None = optional()
    words: list[Word] = []
    avg_logprob: float | None = optional()
    no_speech_prob: float | None = optional()


class TranscriptionResult(Output):
    """Segments with word times; SRT and WebVTT beside it. Segments and words carry a
    ``speaker`` when diarization was requested too."""

    type_name: ClassVar[str] = "Transcription"
    files: ClassVar[tuple[str, ...]] = ("transcription.json", "transcription.srt", "transcription.vtt", "transcription.txt", "transcription.tsv")
    optional_files: ClassVar[tuple[str, ...]] = ("transcription.srt", "transcription.vtt", "transcription.txt", "transcription.tsv")  # ``formats``
    record_file: ClassVar[str | None] = "transcription.json"

    language: str | None
    language_probability: float | None = None
    duration: float | None = None  # seconds of audio the model was given
    model: str | None = None
    text: str
    segments: list[TranscriptSegment]

    def to_pandas(self, level: Literal["segments", "words"] = "segments"):
        """One row per segment, or per word (``level="words"``, with its segment's index)."""
        if level == "words":
            rows = [{"segment": n, **w.model_dump(exclude_none=False)} for n, s in enumerate(self.segments) for w in s.words]
            return _data_frame(rows, ["segment", "start", "end", "word", "probability", "speaker"])
        rows = [s.model_dump(exclude={"words"}) for s in self.segments]
        return _data_frame(rows, ["start", "end", "text", "speaker", "avg_logprob", "no_speech_prob"])


class TimeSpan(Record):
    start: float
    end: float


class VadResult(Output):
    type_name: ClassVar[str] = "VoiceActivity"
    files: ClassVar[tuple[str, ...]] = ("vad.json",)
    record_file: ClassVar[str | None] = "vad.json"

    duration: float | None = None
    speech_duration: float | None = None
    segments: list[TimeSpan]

    def to_pandas(self):
        return _data_frame([s.model_dump() for s in self.segments], ["start", "end"])


class SpeakerTurn(Record):
    start: float
    end: float
    speaker: str


class DiarizationResult(Output):
    type_name: ClassVar[str] = "Diarization"
    files: ClassVar[tuple[str, ...]] = ("diarization.json", "diarization.rttm")
    record_file: ClassVar[str | None] = "diarization.json"

    num_speakers: int
    speakers: list[str] = []
    segments: list[SpeakerTurn]

    def to_pandas(self):
        return _data_frame([s.model_dump() for s in self.segments], ["start", "end", "speaker"])


# --- objects.json, faces.json, ocr.json -------------------------------------------------------


class Detection(Record):
    label: str
    confidence: float
    box: list[float]  # [x1, y1, x2, y2] in pixels of the displayed frame
    landmarks: dict[str, list[float]] | None = optional()  # faces
    text: str | None = optional()  # ocr


class FrameDetections(Record):
    frame: int
    time: float
    scene: int | None = optional()  # when the frames are one per scene: which, and its span
    start: float | None = optional()
    end: float | None = optional()
    detections: list[Detection]


class DetectionsResult(Output):
    """Detections per analysed frame (the base of objects, faces and OCR)."""

    frames: list[FrameDetections]

    def labels(self) -> set[str]:
        return {d.label for f in self.frames for d in f.detections}

    def to_pandas(self):
        """One row per detection, with its frame, time and box corners."""
        rows = [
            {
                "frame": f.frame,
                "time": f.time,
                "label": d.label,
                "confidence": d.confidence,
                "x1": d.box[0],
                "y1": d.box[1],
                "x2": d.box[2],
                "y2": d.box[3],
                **({"text": d.text} if d.text is not None else {}),
            }
            for f in self.frames
            for d in f.detections
        ]
        columns = ["frame", "time", "label", "confidence", "x1", "y1", "x2", "y2"] + (["text"] if any("text" in r for r in rows) else [])
        return _data_frame(rows, columns)


class ObjectsResult(DetectionsResult):
    type_name: ClassVar[str] = "Objects"
    files: ClassVar[tuple[str, ...]] = ("objects.json",)
    record_file: ClassVar[str | None] = "objects.json"

    model: str | None = None


class FacesResult(DetectionsResult):
    type_name: ClassVar[str] = "Faces"
    files: ClassVar[tuple[str, ...]] = ("faces.json",)
    record_file: ClassVar[str | None] = "faces.json"


class TimedText(Record):
    """The same text over consecutive analysed frames, as one entry."""

    text: str
    start: float
    end: float | None
    first_frame: int
    last_frame: int
    frames: int
    box: list[float]
    confidence: float


class OcrResult(DetectionsResult):
    type_name: ClassVar[str] = "OCR"
    files: ClassVar[tuple[str, ...]] = ("ocr.json",)
    record_file: ClassVar[str | None] = "ocr.json"

    languages: list[str] = []
    texts: list[TimedText] = []

    def to_pandas(self, level: Literal["lines", "texts"] = "lines"):
        """One row per recognised line per frame, or per merged timed text (``level="texts"``)."""
        if level == "texts":
            return _data_frame([t.model_dump() for t in self.texts], list(TimedText.model_fields))
        return super().to_pandas()


# --- embeddings/*.npy + *.json ----------------------------------------------------------------


class EmbeddingsResult(Output):
    """Rows of an embeddings matrix (float32, L2-normalised) and what each row is.

    The JSON sidecar holds the rows (one entry per matrix row); ``model``, ``dim`` and
    ``source`` are kept with the stage. ``vectors`` reads the ``.npy`` file on first use.
    """

    model: str
    dim: int
    source: str | None = None

    _vectors: Any = PrivateAttr(default=None)

    @property
    def vectors(self):
        if self._vectors is None:
            import numpy as np

            self._vectors = np.load(self.file(self.files[0]))
        return self._vectors

    def __len__(self) -> int:
        return len(self.rows)  # type: ignore[attr-defined]

    def to_pandas(self):
        rows = [r.model_dump() for r in self.rows]  # type: ignore[attr-defined]
        return _data_frame(rows, sorted({k for r in rows for k in r}) if rows else [])


class TextRow(Record):
    start: float
    end: float | None
    text: str
    speaker: str | None = optional()


class FrameRow(Record):
    frame: int
    time: float
    scene: int | None = optional()
    start: float | None = optional()
    end: float | None = optional()


class TextEmbeddingsResult(EmbeddingsResult):
    type_name: ClassVar[str] = "TextEmbeddings"
    files: ClassVar[tuple[str, ...]] = ("embeddings/text.npy", "embeddings/text.json")
    record_file: ClassVar[str | None] = "embeddings/text.json"
    record_field: ClassVar[str | None] = "rows"

    rows: list[TextRow]


class VisionEmbeddingsResult(EmbeddingsResult):
    type_name: ClassVar[str] = "VisionEmbeddings"
    files: ClassVar[tuple[str, ...]] = ("embeddings/vision.npy", "embeddings/vision.json")
    record_file: ClassVar[str | None] = "embeddings/vision.json"
    record_field: ClassVar[str | None] = "rows"

    rows: list[FrameRow]


class AudioEmbeddingsResult(EmbeddingsResult):
    type_name: ClassVar[str] = "AudioEmbeddings"
    files: ClassVar[tuple[str, ...]] = ("embeddings/audio.npy", "embeddings/audio.json")
    record_file: ClassVar[str | None] = "embeddings/audio.json"
    record_field: ClassVar[str | None] = "rows"

    rows: list[TimeSpan]


# --- fusion.json ------------------------------------------------------------------------------


class TimelineEvent(Record):
    """One thing that happens on the source timeline: a scene, a speech segment, a speaker turn,
    voice activity, an object or face span, an on-screen text."""

    type: Literal["scene", "speech", "speaker", "voice", "object", "face", "text"]
    start: float
    end: float | None
    scene: int | None = optional()
    text: str | None = optional()
    speaker: str | None = optional()
    label: str | None = optional()
    frames: int | None = optional()  # analysed frames the span is made of
    max_count: int | None = optional()  # most instances in one analysed frame
    confidence: float | None = optional()


class SceneDigest(Record):
    """What is said, seen and read during one scene."""

    scene: int
    start: float
    end: float
    speech: str
    speakers: list[str]
    objects: list[str]
    faces: int
    texts: list[str]


class Span(Record):
    """A stretch of the source timeline, in seconds."""

    start: float
    end: float


class Entity(Record):
    """Something that persists over time: a speaker, a face or object track, an on-screen text, a
    keyword of what is said and shown. ``evidence`` names the outputs it was built from."""

    id: str  # "<kind>:<n>" (speaker:SPEAKER_00, face:0, object:3, text:1, keyword:2); unique in one fusion.json
    kind: Literal["speaker", "face", "object", "text", "keyword"]
    label: str  # the speaker label, the object class, "face", the text read, the keyword
    spans: list[Span]
    evidence: list[str]  # operations it comes from: ["diarization"], ["objects"], ["transcription", "ocr"]
    seconds: float  # time covered by the spans
    turns: int | None = optional()  # speakers: speaker turns
    frames: int | None = optional()  # tracks: analysed frames the track was detected in
    confidence: float | None = optional()  # tracks and texts: highest detection confidence
    score: float | None = optional()  # keywords: relevance in [0, 1], higher = more relevant
    time: float | None = optional()  # tracks: time of the representative frame
    box: list[float] | None = optional()  # tracks: the box there, [x1, y1, x2, y2] in pixels
    crop: str | None = optional()  # tracks: that crop as a JPEG, relative to the output directory


class Relationship(Record):
    """Two entities that go together, how strongly (``score`` in [0, 1]) and when.

    ``in_scene`` links an entity to a scene; its ``target`` is ``scene:<n>`` (the index in
    ``scenes``)."""

    type: Literal["co_occurs", "speaker_face", "keyword_text", "in_scene"]
    source: str  # entity id
    target: str  # entity id, or scene:<n>
    score: float
    spans: list[Span]


class FusionResult(Output):
    """The timeline, scene digests, entities and relationships; ``entities/`` holds the JPEG
    crop of each face and object track (``Entity.crop``)."""

    type_name: ClassVar[str] = "Fusion"
    files: ClassVar[tuple[str, ...]] = ("fusion.json", "entities/")
    optional_files: ClassVar[tuple[str, ...]] = ("entities/",)  # only with face or object tracks
    record_file: ClassVar[str | None] = "fusion.json"

    duration: float | None
    sources: list[str]  # the output types that were fused
    timeline: list[TimelineEvent]
    scenes: list[SceneDigest]
    entities: list[Entity] | None = optional()  # left out with extract_entities=false
    relationships: list[Relationship] | None = optional()  # left out with build_relationships=false

    def to_pandas(self, table: Literal["timeline", "entities", "relationships"] = "timeline"):
        """One row per timeline event, per entity or per relationship (``table``). Entities and
        relationships get ``start`` and ``end`` (their first span's start, last span's end) beside
        ``spans``, a list of (start, end)."""
        if table == "timeline":
            return _data_frame([e.model_dump() for e in self.timeline], list(TimelineEvent.model_fields))
        if table not in ("entities", "relationships"):
            raise ValueError(f"to_pandas: table is 'timeline', 'entities' or 'relationships', not {table!r}")
        rows = []
        for item in (self.entities if table == "entities" else self.relationships) or []:
            spans = [(s.start, s.end) for s in item.spans]
            row = item.model_dump(exclude={"spans"})
            rows.append({**row, "start": spans[0][0] if spans else None, "end": spans[-1][1] if spans else None, "spans": spans})
        record = Entity if table == "entities" else Relationship
        names = [n for n in record.model_fields if n != "spans"]
        return _data_frame(rows, names[:3] + ["start", "end"] + names[3:] + ["spans"])


# --- report.html ------------------------------------------------------------------------------


class ReportResult(Output):
    """``report.html``: the fused output as one page a person opens in a browser. The record says
    what the page shows (kept with the stage; the page is the product)."""

    type_name: ClassVar[str] = "Report"
    files: ClassVar[tuple[str, ...]] = ("report.html",)

    events: int  # events drawn on the lanes
    lanes: dict[str, int]  # lane -> events in it
    segments: int  # transcript segments
    entities: int
    relationships: int
    thumbnails: int  # scene pictures embedded
    media: bool  # whether the page links the source in its player

    @property
    def path(self) -> Path:
        return self.file("report.html")


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
    """One requested operation: ``ok``, ``failed`` (``error``) or ``skipped`` (``reason``: it does
    not apply to this input, like keyframes of an audio file)."""

    status: Literal["ok", "failed", "skipped"]
    type: str | None = None  # the output type (how ``data`` and the files are read back)
    files: list[str] = []  # relative to the input's output directory
    seconds: float = 0.0
    cached: bool = False
    error: str | None = None
    reason: str | None = None
    data: dict = {}  # what the output type keeps with the stage


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
    input_fingerprint: str | None = None  # a remote input's ETag / Last-Modified / size: a resumed batch redoes a changed object
    error: str | None = None  # the input itself could not be read

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def errors(self) -> dict[str, str]:
        out = {name: op.error or "failed" for name, op in self.ops.items() if op.status == "failed"}
        if self.error:
            out["input"] = self.error
        return out

    def skipped(self) -> dict[str, str]:
        return {name: op.reason or "" for name, op in self.ops.items() if op.status == "skipped"}
