"""What a user asks for: operations with typed parameters, and the nestable OutputSpec.

An ``Operation`` is a frozen pydantic model per output kind. Its field names, defaults and
descriptions are the public parameter surface: the CLI, spec files, ``video-extract ops`` and
the cache key all read them from here, so a parameter is documented once, where it is defined.
"""

from __future__ import annotations

import difflib
import itertools
import json
import re
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from video_extract.errors import UsageError, abbreviate

#: Canonical operation name -> Operation class. Filled by ``Operation.__init_subclass__``, so a
#: third-party plugin that defines an Operation subclass is parseable like a built-in one.
OPERATIONS: dict[str, type[Operation]] = {}
#: Accepted alternative name -> canonical name (the seed design's long names among them).
ALIASES: dict[str, str] = {}


class Operation(BaseModel):
    """One requested output kind and its parameters."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    name: ClassVar[str] = ""
    aliases: ClassVar[tuple[str, ...]] = ()
    summary: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not cls.name:
            return
        OPERATIONS[cls.name] = cls
        for alias in cls.aliases:
            ALIASES[alias] = cls.name

    def params(self) -> dict[str, Any]:
        """Parameters as plain JSON values, every field present (defaults included)."""
        return self.model_dump(mode="json")

    def canonical(self) -> str:
        """Stable text of name + parameters: the identity used for merging stages and cache keys."""
        return json.dumps({"op": self.name, "params": self.params()}, sort_keys=True, separators=(",", ":"))

    def __str__(self) -> str:
        changed = {k: v for k, v in self.params().items() if v != type(self).model_fields[k].default}
        if not changed:
            return self.name
        return self.name + ":" + ",".join(f"{k}={_format_value(v)}" for k, v in changed.items())


def _format_value(value: Any) -> str:
    if isinstance(value, list):
        return "+".join(str(v) for v in value)
    return "none" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


# ---------------------------------------------------------------------------------------------
# Built-in operations. Every operation of the design is declared here, including those whose
# plugin lands later, so specs written today stay valid.
# ---------------------------------------------------------------------------------------------

Positive = Field(gt=0)


class Metadata(Operation):
    name: ClassVar[str] = "metadata"
    aliases: ClassVar[tuple[str, ...]] = ("metadata_extraction", "probe")
    summary: ClassVar[str] = "Container and stream facts: duration, codecs, sizes, rotation, fps, VFR."

    count_frames: bool = Field(False, description="Count video frames by reading every packet when the container does not store the count.")


class Audio(Operation):
    name: ClassVar[str] = "audio"
    aliases: ClassVar[tuple[str, ...]] = ("audio_extraction", "extract_audio")
    summary: ClassVar[str] = "The audio track as 16-bit PCM WAV, resampled."

    sample_rate: int = Field(16000, ge=8000, le=192000, description="Output sample rate in Hz.")
    channels: int = Field(1, ge=1, le=8, description="Output channel count (1 = mono downmix).")
    stream: int | None = Field(None, ge=0, description="Which audio stream (0-based among audio streams); none = the default one.")


class Frames(Operation):
    name: ClassVar[str] = "frames"
    aliases: ClassVar[tuple[str, ...]] = ("frame_extraction", "frame_sampling", "sample_frames")
    summary: ClassVar[str] = "Frames sampled at a fixed rate, as JPEG files with their times."

    fps: float = Field(1.0, gt=0, le=240, description="Frames per second to sample (by presentation time).")
    max_frames: int | None = Field(None, gt=0, description="Stop after this many frames.")
    max_size: int | None = Field(None, ge=16, description="Downscale so the longer side is at most this many pixels.")
    start: float | None = Field(None, ge=0, description="Start time in seconds.")
    end: float | None = Field(None, gt=0, description="End time in seconds.")
    quality: int = Field(90, ge=1, le=100, description="JPEG quality.")


class Keyframes(Operation):
    name: ClassVar[str] = "keyframes"
    aliases: ClassVar[tuple[str, ...]] = ("keyframe_extraction", "extract_keyframes")
    summary: ClassVar[str] = "The encoder's keyframes (I-frames), decoded without the frames between them."

    max_frames: int | None = Field(None, gt=0, description="Keep at most this many keyframes.")
    min_interval_sec: float = Field(0.0, ge=0, description="Skip a keyframe closer than this to the last one kept.")
    max_size: int | None = Field(None, ge=16, description="Downscale so the longer side is at most this many pixels.")
    quality: int = Field(90, ge=1, le=100, description="JPEG quality.")


class Scenes(Operation):
    name: ClassVar[str] = "scenes"
    aliases: ClassVar[tuple[str, ...]] = ("scene_detection", "detect_scenes", "shots")
    summary: ClassVar[str] = "Shot boundaries (cuts) and the scenes between them: PySceneDetect's detectors, the same cuts as its detect()."

    detector: Literal["content", "adaptive", "threshold", "histogram", "hash"] = Field(
        "content", description="PySceneDetect detector: content (hard cuts), adaptive, threshold (fades), histogram, hash."
    )
    threshold: float | None = Field(None, gt=0, description="Detector threshold; none = the detector's own default (content: 27).")
    min_scene_len: int = Field(15, ge=1, description="Minimum scene length in frames.")
    keyframes_only: bool = Field(False, description="Fast path: compare keyframes only; cuts land on keyframes, so the answer differs from PySceneDetect's.")
    downscale: int | None = Field(
        None, ge=1, description="Shrink frames by this integer factor before detection; none = PySceneDetect's auto (longer side to 256 px)."
    )


class SceneFrames(Operation):
    name: ClassVar[str] = "scene_frames"
    aliases: ClassVar[tuple[str, ...]] = ("scene_thumbnails", "representative_frames")
    summary: ClassVar[str] = "One representative frame per scene (its middle), as JPEG with times."

    max_size: int | None = Field(None, ge=16, description="Downscale so the longer side is at most this many pixels.")
    quality: int = Field(90, ge=1, le=100, description="JPEG quality.")


class Transcription(Operation):
    name: ClassVar[str] = "transcription"
    aliases: ClassVar[tuple[str, ...]] = ("transcribe", "speech_to_text", "asr")
    summary: ClassVar[str] = "Speech to text with faster-whisper: segments, word times, subtitles (SRT, WebVTT), text and TSV."

    model: str = Field(
        "tiny.en",
        description="Whisper model, any case: tiny.en (offline default), base, small, medium, large-v3 (or large), turbo, their .en variants, a CTranslate2 conversion's Hugging Face id, or a local CTranslate2 directory.",
    )
    language: str | None = Field(None, description="Language code; none = detect (multilingual models).")
    beam_size: int = Field(5, ge=1, le=20, description="Beam search width.")
    vad_filter: bool = Field(True, description="Skip non-speech with Silero VAD before decoding.")
    word_timestamps: bool = Field(True, description="Time every word.")
    initial_prompt: str | None = Field(None, description="Text that primes vocabulary and style.")
    compute_type: str = Field("int8", description="CTranslate2 compute type (int8, int8_float16, float16, float32).")
    device: Literal["cpu", "cuda", "auto"] = Field("cpu", description="Where to run the model.")
    no_speech_threshold: float = Field(0.6, ge=0, le=1, description="Drop a segment whose no-speech probability is above this.")
    formats: list[Literal["srt", "vtt", "txt", "tsv"]] = Field(
        ["srt", "vtt", "txt", "tsv"], description="Which renderings to write beside transcription.json: srt, vtt, txt, tsv."
    )
    max_line_width: int = Field(42, ge=10, le=200, description="Subtitle lines (SRT/VTT, speaker label included) are at most this many characters.")
    max_line_count: int = Field(2, ge=1, le=10, description="Lines per subtitle cue.")


class VoiceActivity(Operation):
    name: ClassVar[str] = "vad"
    aliases: ClassVar[tuple[str, ...]] = ("voice_activity", "voice_activity_detection")
    summary: ClassVar[str] = "Where speech is, with Silero VAD."

    threshold: float = Field(0.5, gt=0, lt=1, description="Speech probability above which a frame is speech.")
    # Short silences split speech so that a pause between two speakers is a segment boundary
    # (diarization reads these segments); transcription joins them back into longer pieces.
    min_speech_duration_ms: int = Field(100, ge=0, description="Drop speech shorter than this.")
    min_silence_duration_ms: int = Field(200, ge=0, description="Silence must last this long to split speech.")
    speech_pad_ms: int = Field(30, ge=0, description="Padding added to each side of a speech segment.")


class Diarization(Operation):
    name: ClassVar[str] = "diarization"
    aliases: ClassVar[tuple[str, ...]] = ("speaker_diarization", "speakers")
    summary: ClassVar[str] = "Who spoke when, overlapped speech included: pyannote segmentation-3.0 + CAM++ embeddings, clustered."

    num_speakers: int | None = Field(None, ge=1, description="Exact number of speakers; none = estimate.")
    min_speakers: int = Field(1, ge=1, description="Lower bound when estimating.")
    max_speakers: int = Field(8, ge=1, description="Upper bound when estimating.")
    method: Literal["segmentation", "resemblyzer"] = Field(
        "segmentation",
        description="segmentation (default): overlap-aware, segmentation-3.0 + CAM++; resemblyzer: the previous VAD + d-vector method (kept as a baseline).",
    )
    threshold: float | None = Field(
        None, gt=0, lt=2, description="Cosine distance at which speaker clusters stop merging; none = the method's calibrated value (0.6 / 0.34)."
    )
    window_sec: float = Field(1.5, gt=0, description="Embedding window length (resemblyzer method).")
    step_sec: float = Field(0.75, gt=0, description="Embedding window hop (resemblyzer method).")


class ObjectDetection(Operation):
    name: ClassVar[str] = "objects"
    aliases: ClassVar[tuple[str, ...]] = ("object_detection", "detect_objects")
    summary: ClassVar[str] = "COCO objects with YOLOX (onnxruntime)."

    model: str = Field("yolox-nano", description="yolox-nano (default), yolox-tiny, yolox-s, yolox-m (any case), or a YOLOX .onnx file.")
    confidence_threshold: float = Field(0.35, ge=0, le=1, description="Minimum objectness x class score.")
    nms_threshold: float = Field(0.45, gt=0, le=1, description="IoU above which overlapping boxes of a class are merged.")
    classes: list[str] | None = Field(None, description="Keep only these COCO class names (person+car).")
    source: Literal["frames", "keyframes", "scenes"] = Field("frames", description="Which frames to analyse: sampled at fps, keyframes, or one per scene.")
    fps: float = Field(1.0, gt=0, le=240, description="Frames per second when source=frames.")


class FaceDetection(Operation):
    name: ClassVar[str] = "faces"
    aliases: ClassVar[tuple[str, ...]] = ("face_detection", "detect_faces")
    summary: ClassVar[str] = "Faces with YuNet, with 5 landmarks."

    model: str = Field("yunet", description="Face detector model: yunet (any case) or a YuNet .onnx file.")
    confidence_threshold: float = Field(0.6, ge=0, le=1, description="Minimum face score.")
    nms_threshold: float = Field(0.3, gt=0, le=1, description="IoU above which overlapping faces are merged.")
    min_size: int = Field(20, ge=1, description="Ignore faces smaller than this (pixels of the displayed frame).")
    include_landmarks: bool = Field(True, description="Return eyes, nose tip and mouth corners.")
    max_side: int = Field(640, ge=64, description="Detect on frames downscaled to this longer side (faces down to ~10 px there); boxes are mapped back.")
    source: Literal["frames", "keyframes", "scenes"] = Field("frames", description="Which frames to analyse: sampled at fps, keyframes, or one per scene.")
    fps: float = Field(1.0, gt=0, le=240, description="Frames per second when source=frames.")


class OCR(Operation):
    name: ClassVar[str] = "ocr"
    aliases: ClassVar[tuple[str, ...]] = ("text_recognition", "optical_character_recognition", "on_screen_text")
    summary: ClassVar[str] = "On-screen text with RapidOCR (PP-OCRv4)."

    languages: list[str] = Field(["en"], description="Languages to read (what the shipped models cover): en, zh (also ch, chinese).")
    source: Literal["keyframes", "scenes", "frames"] = Field("keyframes", description="Which frames to read.")
    fps: float = Field(1.0, gt=0, le=240, description="Frames per second when source=frames.")
    min_confidence: float = Field(0.5, ge=0, le=1, description="Drop lines recognised with less confidence.")
    # Calibrated with benchmarks/ocr_lone_glyphs.py: lone glyphs read into scikit-image photos
    # scored 0.06-0.85 (a round cup's "O" 0.51-0.75, a clock's "®" 0.78-0.85; none in the
    # footage keyframes); rendered single digits and letters read at a median 0.999 on plain
    # and 0.995 on photo backgrounds, and 0.9 keeps 95.6% and 88% of them.
    min_single_char_confidence: float = Field(
        0.9,
        ge=0,
        le=1,
        description="Drop a lone character read with less confidence: photos make lone-glyph noise (a round cup read as 'O' at 0.75, a clock's '®' at 0.85) while real single characters read at about 0.99.",
    )
    det_limit_side_len: int = Field(960, ge=32, description="Longer side the text detector works at.")


class VisionEmbeddings(Operation):
    name: ClassVar[str] = "vision_embeddings"
    aliases: ClassVar[tuple[str, ...]] = ("clip_embeddings", "image_embeddings", "visual_embeddings")
    summary: ClassVar[str] = "CLIP image embeddings per sampled frame or scene, searchable by text."

    model: str = Field(
        "openai/clip-vit-base-patch32", description="CLIP checkpoint: clip-vit-base-patch32 (any case), another Hugging Face id, or a local directory."
    )
    source: Literal["frames", "keyframes", "scenes"] = Field("frames", description="Which frames to embed.")
    fps: float = Field(1.0, gt=0, le=240, description="Frames per second when source=frames.")
    batch_size: int = Field(16, ge=1, description="Images per inference batch.")


class TextEmbeddings(Operation):
    name: ClassVar[str] = "text_embeddings"
    aliases: ClassVar[tuple[str, ...]] = ("sentence_embeddings", "transcript_embeddings")
    summary: ClassVar[str] = "Sentence embeddings of transcript segments (and on-screen text)."

    model: str = Field(
        "all-MiniLM-L6-v2",
        description="sentence-transformers model: all-MiniLM-L6-v2 (any case; shipped), a Hugging Face id (owner/name), or a local directory.",
    )
    source: Literal["transcription", "ocr"] = Field("transcription", description="Which text to embed.")
    batch_size: int = Field(64, ge=1, description="Sentences per batch.")


class AudioEmbeddings(Operation):
    name: ClassVar[str] = "audio_embeddings"
    aliases: ClassVar[tuple[str, ...]] = ("clap_embeddings", "sound_embeddings")
    summary: ClassVar[str] = "CLAP audio embeddings over fixed windows."

    model: str = Field("laion/clap-htsat-fused", description="CLAP checkpoint: clap-htsat-fused (any case), another Hugging Face id, or a local directory.")
    window_sec: float = Field(10.0, gt=0, description="Window length.")
    hop_sec: float = Field(10.0, gt=0, description="Window hop.")


class Fusion(Operation):
    name: ClassVar[str] = "fusion"
    aliases: ClassVar[tuple[str, ...]] = ("timeline", "fused_timeline")
    summary: ClassVar[str] = (
        "One time-ordered timeline of everything else that was extracted, the entities in it (speakers, face and object tracks, texts, keywords) and how they relate."
    )

    include: list[str] | None = Field(None, description="Operations to fuse; none = every other requested operation.")
    align_modalities: bool = Field(True, description="Put every event on the source timeline (timeline and scene digests).")
    extract_entities: bool = Field(True, description="Speakers, face and object tracks, on-screen texts and keywords, each with its spans.")
    build_relationships: bool = Field(True, description="Links between entities (co-occurrence, speaker-face, keyword-text, scene membership); needs entities.")


class Report(Operation):
    name: ClassVar[str] = "report"
    aliases: ClassVar[tuple[str, ...]] = ("html_report",)
    summary: ClassVar[str] = (
        "report.html: one self-contained page with the media player, the fused lanes on one time axis, the transcript, entities and relationships."
    )

    thumbnails: bool = Field(True, description="Show a small picture of each scene in the scenes lane (embedded in the page).")
    max_thumbnails: int = Field(400, ge=1, le=5000, description="At most this many scene pictures (spread evenly over the scenes); keeps the page small.")
    thumbnail_size: int = Field(160, ge=32, le=640, description="Longer side of a scene picture, in pixels.")


# ---------------------------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------------------------


def canonical_name(name: str) -> str:
    """Resolve an operation name or alias, or raise a UsageError that lists what is valid.

    Third-party operations are known once their plugin module is imported (the registry's
    discovery does that; ``Client`` discovers before it parses a request).
    """
    if not isinstance(name, str):
        raise UsageError(f"an operation is named by a string, got {abbreviate(repr(name))}; valid operations: {', '.join(sorted(OPERATIONS))}")
    key = name.strip().lower().replace("-", "_")
    if key in OPERATIONS:
        return key
    if key in ALIASES:
        return ALIASES[key]
    valid = sorted(OPERATIONS)
    close = difflib.get_close_matches(key, valid + sorted(ALIASES), n=1) if len(key) <= 64 else []
    hint = f" (did you mean '{ALIASES.get(close[0], close[0])}'?)" if close else ""
    raise UsageError(f"unknown operation '{abbreviate(name)}'{hint}; valid operations: {', '.join(valid)}")


def make_operation(name: str, params: dict[str, Any] | None = None) -> Operation:
    """Build an operation from a name and raw (possibly string) parameter values."""
    cls = OPERATIONS[canonical_name(name)]
    params = dict(params or {})
    unknown = [k for k in params if k not in cls.model_fields]
    if unknown:
        valid = ", ".join(cls.model_fields) or "(none)"
        raise UsageError(f"unknown parameter '{abbreviate(unknown[0])}' for {cls.name}; valid parameters: {valid}")
    params = {k: _coerce_cli_value(cls, k, v) for k, v in params.items()}
    try:
        return cls(**params)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "parameters"
        raise UsageError(f"{cls.name}: {field}: {err['msg']} (got {abbreviate(repr(err.get('input')))})") from None


def _coerce_cli_value(cls: type[Operation], key: str, value: Any) -> Any:
    """CLI values are strings: 'none' means None and 'a+b' is a list where the field is a list."""
    if not isinstance(value, str):
        return value
    if value.strip().lower() in ("none", "null"):
        return None
    annotation = str(cls.model_fields[key].annotation)
    if "list" in annotation:
        return [part.strip() for part in value.split("+") if part.strip()]
    return value


def parse_op(text: str) -> Operation:
    """Parse ``name`` or ``name:key=value,key=value`` (the CLI's --op syntax)."""
    name, _, rest = text.partition(":")
    params: dict[str, str] = {}
    for item in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, value = item.partition("=")
        if not eq:
            raise UsageError(f"--op '{abbreviate(text)}': expected key=value, got '{abbreviate(item)}'")
        params[key.strip()] = value.strip()
    return make_operation(name, params)


class OutputSpec(BaseModel):
    """An operation and, optionally, the specs of the inputs it should be fed from.

    ``sources`` pins how an upstream input is made (for example a transcription fed from audio
    at 16 kHz); without it, the registry picks the upstream by type with default parameters.
    """

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    operation: Operation
    sources: tuple[OutputSpec, ...] = ()

    @field_validator("operation", mode="before")
    @classmethod
    def _operation(cls, value: Any) -> Operation:
        if isinstance(value, Operation):
            return value
        if isinstance(value, str):
            return parse_op(value)
        if isinstance(value, dict):
            return make_operation(value.get("name", ""), value.get("params"))
        raise UsageError(f"cannot read an operation from {abbreviate(repr(value))}")

    @classmethod
    def of(cls, item: OutputSpec | Operation | str | dict) -> OutputSpec:
        """Accept the shapes a user writes: 'keyframes', 'keyframes:max_frames=5', an Operation, a dict."""
        if isinstance(item, str):
            return cls(operation=parse_op(item))
        if isinstance(item, OutputSpec):
            return item
        if isinstance(item, (Operation, str)):
            return cls(operation=item)
        if isinstance(item, dict):
            return _spec_from_dict(item)
        raise UsageError(f"cannot read an output spec from {abbreviate(repr(item))}")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"operation": self.operation.name, "params": self.operation.params()}
        if self.sources:
            out["sources"] = [s.to_dict() for s in self.sources]
        return out


def _spec_from_dict(data: dict[str, Any]) -> OutputSpec:
    if "operation" not in data:
        if len(data) == 1:  # {keyframes: {max_frames: 5}}
            ((name, params),) = data.items()
            if not isinstance(params, (dict, type(None))):
                raise UsageError(f"parameters of {abbreviate(name)} must be a mapping of name: value, got {abbreviate(repr(params))}")
            return OutputSpec(operation=make_operation(str(name), params or {}))
        raise UsageError(f"an output spec needs an 'operation' key, got keys {abbreviate(sorted(map(str, data)))}")
    unknown = set(data) - {"operation", "params", "sources"}
    if unknown:
        raise UsageError(f"unknown key(s) {abbreviate(sorted(map(str, unknown)))} in output spec; valid: operation, params, sources")
    op, params, sources = data["operation"], data.get("params") or {}, data.get("sources") or []
    if not isinstance(op, (str, Operation)):
        raise UsageError(f"'operation' must be an operation name, got {abbreviate(repr(op))}")
    if not isinstance(params, dict):
        raise UsageError(f"'params' of {abbreviate(op)} must be a mapping of name: value, got {abbreviate(repr(params))}")
    if not isinstance(sources, list):
        raise UsageError(f"'sources' of {abbreviate(op)} must be a list of output specs, got {abbreviate(repr(sources))}")
    operation = op if isinstance(op, Operation) else make_operation(op, params)
    sources = tuple(OutputSpec.of(s) for s in sources)
    return OutputSpec(operation=operation, sources=sources)


#: The word that asks for every operation that applies to the input.
ALL = "all"

RequestLike = str | Operation | OutputSpec | dict | Sequence[str | Operation | OutputSpec | dict] | None


class Request(BaseModel):
    """A parsed request: the outputs asked for, and whether ``all`` was among them (the caller,
    who knows which plugins are installed, adds the rest)."""

    model_config = ConfigDict(frozen=True)

    specs: tuple[OutputSpec, ...] = ()
    everything: bool = False


def split_ops(text: str) -> list[str]:
    """'metadata,scenes:threshold=20,min_scene_len=10,keyframes' -> one string per operation.

    A comma starts a new operation unless what follows is a ``key=value`` of the one before.
    """
    return list(_iter_ops(text))


def _iter_ops(text: str) -> Iterator[str]:
    """``split_ops`` one operation at a time, in time linear in the text (a counter can stop early)."""
    current: list[str] = []  # the pieces of the operation being read, joined once it ends
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        if current and "=" in part and ":" not in part.split("=", 1)[0] and ":" in current[0]:
            current.append(part)
            continue
        if current:
            yield ",".join(current)
        current = [part]
    if current:
        yield ",".join(current)


#: Operations one request may hold by default (its nested ``sources`` and ``--op`` overrides
#: included): every built-in operation four times over, far below what costs time to refuse.
DEFAULT_MAX_OPS = 64


def count_ops(ops: RequestLike = None, overrides: Iterable[str] = (), spec_items: Sequence[Any] = (), stop_after: int | None = None) -> int:
    """How many operations a request names, counted before any is parsed: each name in a
    comma-separated string, each item of a list, each nested ``sources`` entry, each override.

    Counting stops once it passes ``stop_after``, so a million-operation body costs no more
    than splitting it once.
    """
    total = 0
    stack: list[Any] = list(spec_items)
    stack.extend(_items(ops))
    stack.extend(overrides)
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            total += sum(1 for _ in itertools.islice(_iter_ops(item), None if stop_after is None else stop_after - total + 1))
        else:
            total += 1
            nested = item.sources if isinstance(item, OutputSpec) else item.get("sources") if isinstance(item, dict) else None
            if isinstance(nested, (list, tuple)):
                stack.extend(nested)
        if stop_after is not None and total > stop_after:
            break
    return total


def _items(ops: RequestLike) -> list[Any]:
    """The top-level items of a request: one, or those of a list."""
    if isinstance(ops, (str, Operation, OutputSpec, dict)):
        return [ops]
    if ops is None:
        return []
    if isinstance(ops, Iterable):
        return list(ops)
    raise UsageError(f"operations are a string, a list, an Operation, an OutputSpec or a dict, got {abbreviate(repr(ops))}")


def _check_count(ops: RequestLike, overrides: Iterable[str], spec_items: Sequence[Any], max_ops: int | None) -> None:
    if max_ops is None:
        return
    count = count_ops(ops, overrides, spec_items, stop_after=max_ops)
    if count > max_ops:
        raise UsageError(f"too many operations in one request: more than {max_ops} (the limit; each operation once, with the parameters you want)")


def parse_request(
    ops: RequestLike = None, overrides: Iterable[str] = (), spec_file: str | Path | None = None, max_ops: int | None = DEFAULT_MAX_OPS
) -> Request:
    """The one request grammar, for the CLI, the Python API, spec files and the server.

    ``ops``: ``"metadata,scenes:threshold=20,min_scene_len=10"``, a list of such strings,
    ``Operation`` objects, ``OutputSpec`` objects or dicts, or ``"all"``. ``overrides``
    (the CLI's ``--op``) replace an operation of the same name; a spec file comes first.
    ``max_ops``: the most operations the request may name (None: no limit), checked before
    any of them is parsed, so a huge request is refused in time linear in its size.

    A request of strings alone parsed before (a service sees the same few) is the same
    Request again (it is frozen), while the operations it names are still the same classes.
    """
    overrides = list(overrides) if not isinstance(overrides, str) else [overrides]
    items = _items(ops)  # once: a generator is read once
    texts = [*items, *overrides]
    key = None
    if spec_file is None and all(isinstance(t, str) for t in texts) and sum(map(len, texts)) <= _PARSED_MAX_CHARS:
        key = (tuple(items), tuple(overrides), max_ops)
        with _parsed_lock:
            known = _parsed.get(key)
        if known is not None and all(OPERATIONS.get(s.operation.name) is type(s.operation) for s in known.specs):
            return known
    request = _parse_request(items, overrides, spec_file, max_ops)
    if key is not None:
        with _parsed_lock:
            if len(_parsed) >= _PARSED_KEPT:
                del _parsed[next(iter(_parsed))]  # the oldest
            _parsed[key] = request
    return request


#: Requests of (short) strings parsed before, by their strings.
_parsed: dict[tuple, Request] = {}
_parsed_lock = threading.Lock()
_PARSED_KEPT = 256
_PARSED_MAX_CHARS = 4096


def _parse_request(items: list[Any], overrides: list[str], spec_file: str | Path | None, max_ops: int | None) -> Request:
    file_items = _read_spec_file(spec_file) if spec_file is not None else []
    _check_count(items, overrides, file_items, max_ops)
    specs: dict[str, OutputSpec] = {}
    everything = False

    def add(spec: OutputSpec, replace: bool) -> None:
        name = spec.operation.name
        if name in specs and not replace:
            raise UsageError(f"operation '{name}' is requested twice; give it once with the parameters you want")
        specs[name] = spec

    if spec_file is not None:
        for spec in _specs_of(file_items, spec_file):
            add(spec, replace=False)
    for item in items:
        if isinstance(item, str):
            for text in _iter_ops(item):
                if text.strip().lower() == ALL:
                    everything = True
                else:
                    add(OutputSpec.of(text), replace=False)
        else:
            add(OutputSpec.of(item), replace=False)
    for text in overrides:
        for part in _iter_ops(text):
            spec = OutputSpec.of(part)
            specs[spec.operation.name] = spec
    if not specs and not everything:
        raise UsageError(f"no operations requested; give operations (for example metadata,scenes) or 'all' (valid: {', '.join(sorted(OPERATIONS))})")
    return Request(specs=tuple(specs.values()), everything=everything)


def load_spec_file(path: str | Path, max_ops: int | None = None) -> list[OutputSpec]:
    """Read a YAML or JSON spec: ``{outputs: [...]}``, a list, or ``{ops: [...]}`` (beside
    ``outputs``/``ops``, an ``inputs:`` list names the sources: ``load_spec_inputs``)."""
    items = _read_spec_file(path)
    _check_count(None, (), items, max_ops)
    return _specs_of(items, path)


def _read_spec_file(path: str | Path) -> list[Any]:
    """A spec file's entries, not parsed yet (they are counted first)."""
    path = Path(path)
    data = _read_spec(path)
    if isinstance(data, dict):
        data = {k: v for k, v in data.items() if k != "inputs"}
        if "outputs" in data:
            data = data["outputs"]
        elif "ops" in data:
            data = data["ops"]
        else:
            data = [{k: v} for k, v in data.items()]
    if not isinstance(data, list):
        raise UsageError("a spec file holds a list of outputs (or {outputs: [...]})", path)
    return data


def _specs_of(items: list[Any], path: str | Path) -> list[OutputSpec]:
    try:
        return [OutputSpec.of(item) for item in items]
    except UsageError as exc:
        raise UsageError(exc.message, path) from None


def load_spec_inputs(path: str | Path) -> list[str]:
    """The ``inputs:`` a spec names (paths, URLs, ``s3://`` prefixes), or []. A relative path is
    relative to the spec file's folder, so a spec and its media travel together."""
    path = Path(path)
    data = _read_spec(path)
    inputs = data.get("inputs", []) if isinstance(data, dict) else []
    if not isinstance(inputs, list) or not all(isinstance(item, str) and item.strip() for item in inputs):
        raise UsageError("'inputs' must be a list of paths or URLs", path)
    return [item if re.match(r"^[A-Za-z][A-Za-z0-9+.-]+://", item) else str(path.parent / Path(item).expanduser()) for item in inputs]


def _read_spec(path: Path) -> Any:
    try:
        text = path.read_bytes().decode("utf-8-sig")  # a Windows editor's byte-order mark is no part of it
    except OSError as exc:
        raise UsageError(f"cannot read spec file: {exc.strerror or exc}", path) from None
    except UnicodeDecodeError as exc:
        raise UsageError(f"spec file is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start}): save it as UTF-8", path) from None
    try:
        if path.suffix.lower() == ".json":
            return json.loads(text)
        import yaml

        return yaml.safe_load(text)
    except Exception as exc:  # noqa: BLE001 - yaml and json raise several types; all mean "malformed"
        raise UsageError(f"malformed spec file: {str(exc).splitlines()[0]}", path) from None
