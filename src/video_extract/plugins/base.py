"""The plugin interface: one small class per operation, plus a YAML manifest beside it.

A plugin turns typed inputs into one typed output. It knows nothing about executors, the CLI,
or how the cache stores things: the executor hands it a ``StageContext`` (the source, an empty
directory, the model store) and its ``Inputs`` as typed records; the plugin writes its record
through ``ctx.write`` (bulky files beside it, at ``ctx.path(name)``), and the executor stores
and publishes what the output type declares (``results.py``).
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar, overload

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from video_extract.errors import OperationError
from video_extract.fsutil import fingerprint
from video_extract.results import OUTPUT_TYPES, MediaInfo, Output, output_type
from video_extract.spec import Operation

if TYPE_CHECKING:
    from video_extract.media.image import Still

T = TypeVar("T", bound=Output)

#: Types the input file itself provides; everything else is produced by a plugin.
SOURCE_TYPES = ("File", "VideoStream", "AudioStream")


class InputSpec(BaseModel):
    """One input a plugin needs: a type, and the parameters its producer must use.

    Parameter values may name the consumer's own parameters as ``${name}``, so that, for
    example, object detection at ``fps=2`` asks for frames sampled at 2 fps.
    """

    model_config = ConfigDict(extra="forbid")

    type: str
    params: dict[str, Any] = Field(default_factory=dict)


class CacheSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    #: Entries created before this instant are ignored (a bug fix that needs no version bump).
    invalidate_before: datetime | None = None
    #: Parameters that do not change the output (devices, batch sizes): left out of the key.
    ignore_params: list[str] = Field(default_factory=list)


class Resources(BaseModel):
    """What one running stage needs; the Ray engine declares these per actor."""

    model_config = ConfigDict(extra="forbid")

    cpus: float = 1.0
    gpus: float = 0.0
    memory_mb: int | None = None
    #: Rough seconds one stage takes on a 10 s clip with its models warm (measured on 2 cores):
    #: the perf executor starts the stages on the longest remaining chain first.
    seconds: float = 0.05


class Enrichment(BaseModel):
    """A plugin that rewrites another operation's output when certain operations are requested together.

    Speaker attribution is one: when transcription and diarization are both asked for, the
    published transcript is the one whose segments and words carry speakers.
    """

    model_config = ConfigDict(extra="forbid")

    operation: str  # whose published output this plugin replaces
    when_requested: list[str]  # ... when all of these are requested too


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    version: str
    operation: str | None = None  # None for plugins that only enrich another operation
    enriches: Enrichment | None = None
    description: str = ""
    plugin: str  # "module:Class"
    inputs: list[InputSpec]
    output: str  # the output type this plugin produces (declared in results.py, or by a third party)
    extra: str | None = None  # the pip extra that installs what it imports (a missing one is named)
    imports: list[str] = Field(default_factory=list)  # optional top-level modules it needs, checked when planned
    streams: bool = False  # yields partial results while it runs
    gathers_requested: bool = False  # its inputs are the other requested operations' outputs (fusion)
    cache: CacheSettings = Field(default_factory=CacheSettings)
    resources: Resources = Field(default_factory=Resources)
    source: str = "built-in"  # where the manifest came from (built-in or a distribution name)

    @classmethod
    def load(cls, path: Path, source: str = "built-in") -> Manifest:
        # libyaml's safe loader where PyYAML has it: a cold process reads every manifest (5x faster)
        data = yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        data["version"] = str(data.get("version", ""))
        data.setdefault("source", source)
        return cls(**data)

    @property
    def files(self) -> tuple[str, ...]:
        """What it publishes under ``{out}/{stem}/``: its output type's files."""
        declared = OUTPUT_TYPES.get(self.output)
        return declared.files if declared else ()


@dataclass(frozen=True)
class Source:
    """The input file of a request: where it is, what it holds and its content hash.

    ``info`` comes from a header-only probe: stream kinds, codecs, coded sizes, average fps and
    the container's frame count. Display geometry and VFR need ``media.probe`` (the metadata
    plugin) or come with each decoded frame.
    """

    path: Path  # a local file: the input itself, or the spool file of a URL, bytes or a stream
    info: MediaInfo
    digest: str
    stat: tuple[int, int] = (0, 0)  # size and mtime (ns) when the request started
    origin: str | None = None  # how the request named it (a URL without its secrets, <bytes …>); None: ``path``
    #: A still image's pixels, decoded on first use and shared by this request's stages.
    still: Still | None = field(default=None, compare=False, repr=False)

    @property
    def pixels(self) -> Path | Still:
        """What frame-sampling stages hand to ``media.iter_frames``: the path, or for a still
        image its pixels, decoded once for the whole request (and let go with it)."""
        return self.still if self.still is not None else self.path

    @property
    def name(self) -> str:
        """The input as the user named it: what results and messages show."""
        return self.origin or str(self.path)


@dataclass
class Artifact:
    """What a finished stage left: its directory, what its output type keeps with it, and its record.

    ``path`` is None for a stage no cache keeps that wrote nothing but its record: the record
    travels in memory (``StageContext.in_memory``). ``scratch``: ``path`` is in the job's scratch
    folder, deleted with the job, so publishing may hand its files over by hard link instead of
    copying them (a cache entry's files are always copied: an output edited in place must not
    change the entry)."""

    type: str
    path: Path | None
    data: dict[str, Any] = field(default_factory=dict)
    cached: bool = False
    _record: Output | None = field(default=None, repr=False)
    scratch: bool = False

    def record(self) -> Output:
        """The typed record, read once (a damaged or outdated entry is an OperationError)."""
        if self._record is None:
            assert self.path is not None, "a record held in memory is never read back"
            try:
                self._record = output_type(self.type).load(self.path, self.data)
            except (OSError, ValueError, LookupError) as exc:
                raise OperationError(self.type, f"cannot read its stored output ({type(exc).__name__}: {str(exc).splitlines()[0]})") from None
        return self._record


class Inputs(Mapping[str, Output]):
    """A stage's inputs as typed records, by output type: ``inputs[ScenesResult]`` (typed) or
    ``inputs["Scenes"]``. Records are read on first access."""

    def __init__(self, artifacts: Mapping[str, Artifact]):
        self._artifacts = dict(artifacts)

    @overload
    def __getitem__(self, key: type[T]) -> T: ...
    @overload
    def __getitem__(self, key: str) -> Output: ...
    def __getitem__(self, key):
        name = key.type_name if isinstance(key, type) else key
        return self._artifacts[name].record()

    def __contains__(self, key: object) -> bool:
        name = key.type_name if isinstance(key, type) and issubclass(key, Output) else key
        return name in self._artifacts

    def __iter__(self):
        return iter(self._artifacts)

    def __len__(self) -> int:
        return len(self._artifacts)


@dataclass
class StageContext:
    """What a running stage may use: the source, its own empty directory, the model store, and
    ``write`` for its record (the only way its output reaches consumers and users).

    The directory is made when first used (``work_dir``, ``path``): a stage whose record
    travels in memory and that writes no other file makes none.
    """

    source: Source
    make_dir: Callable[[], Path]  # makes (or hands over) the stage's empty directory
    log: logging.Logger
    output: type[Output]
    models: Any = None  # the model store (video_extract.models), for plugins that load weights
    #: Whether this stage's files reach the user (requested, or kept as intermediates): files
    #: that only publishing needs (a still's frame as JPEG) may be left unwritten otherwise.
    publishes: bool = True
    #: Threads a model of this stage may use: all the cores for a stage that runs alone, a
    #: share for stages that run side by side (``models.runtime.model_threads``).
    threads: int = 1
    #: No cache keeps this stage: consumers get its record in memory, and publishing writes the
    #: record file from it, so the file is written to the directory only where it lives inside
    #: a published folder (``frames/index.json``), and not at all for a stage that publishes nothing.
    in_memory: bool = False
    written: Output | None = None
    kept: dict[str, Any] | None = None
    _dir: Path | None = field(default=None, init=False, repr=False)

    @property
    def work_dir(self) -> Path:
        """The stage's own directory, made on first use."""
        if self._dir is None:
            self._dir = self.make_dir()
        return self._dir

    @property
    def made_dir(self) -> Path | None:
        """The directory if it was made, else None."""
        return self._dir

    def path(self, name: str) -> Path:
        """Where to write one of the output type's other files (``audio.wav``, ``frames/…``)."""
        path = self.work_dir / name.rstrip("/")
        if "/" in name.rstrip("/"):
            path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def write(self, record: Output | dict[str, Any]) -> Output:
        """Validate and store this stage's record (once, when the stage's work is done)."""
        if not isinstance(record, (dict, self.output)):
            raise TypeError(f"this stage produces {self.output.type_name} ({self.output.__name__}), not {type(record).__name__}")
        try:
            if isinstance(record, dict):
                record = self.output.model_validate(record)
        except ValidationError as exc:
            raise OperationError(self.output.type_name, record_mismatch(exc)) from None
        self.kept = record.save(self.work_dir if self.writes_record_file else None)
        record._folder = self._dir
        self.written = record
        return record

    @property
    def writes_record_file(self) -> bool:
        """Whether ``write`` puts the record file in the directory (see ``in_memory``)."""
        name = self.output.record_file
        if not self.in_memory or name is None:
            return True
        return self.publishes and name not in self.output.files


def record_mismatch(exc: ValidationError) -> str:
    """One line for a record that does not match its declaration (pydantic's message spans lines)."""
    problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'record'}: {e['msg']}" for e in exc.errors()[:3])
    return f"the record does not match its declaration ({problems})"


class Plugin:
    """Base class. Subclasses implement ``run`` or, to stream partial results, ``stream``."""

    def __init__(self, manifest: Manifest):
        self.manifest = manifest
        self._ready = False
        self._setup_lock = threading.Lock()

    # -- life cycle ---------------------------------------------------------------------------

    def setup(self, models: Any) -> None:
        """Once per worker process, before the first run: load what every run reuses, through
        ``models.load`` (the warm-model budget counts it, and ``teardown`` undoes it)."""

    def preload(self, models: Any, params: Operation) -> None:
        """Load (or import) ahead what a run with ``params`` will load, so that the run finds it
        warm: called from a background thread once the request is known to compute something,
        while earlier stages run (a cold process's late stages otherwise load on its critical
        path). Through ``models.load``, which makes a run asking at the same time wait for this
        one load. Failures are ignored here: the run reports them."""

    def ensure_setup(self, models: Any) -> None:
        with self._setup_lock:  # two stages of one plugin starting at once set it up once
            if not self._ready:
                self.setup(models)
                self._ready = True

    def teardown(self) -> None:
        """Drop what ``setup`` kept: the warm-model budget dropped a model it loaded. ``setup``
        runs again before the next stage. Called only while none of this plugin's stages runs,
        and under the model store's lock: drop references, load nothing. Override to clear
        the attributes ``setup`` set, then call this."""
        self._ready = False

    # -- planning -----------------------------------------------------------------------------

    def validate(self, params: Operation) -> None:
        """Reject parameters that cannot work (unknown model or class name) before any work: raise UsageError."""

    def model_fingerprint(self, params: Operation, models: Any) -> str | None:
        """What identifies the weights this stage would use, for the cache key.

        A model given as a local path, or found in a models directory, can be replaced by
        other weights under the same name: its size and mtime go into the key. Catalog models
        from a package or a checksummed download are identified by name already.
        """
        name = getattr(params, "model", None)
        if not isinstance(name, str):
            return None
        path = Path(name)
        if not os.path.exists(path) and models is not None:
            try:
                location = models.locate(name)
            except Exception:  # noqa: BLE001 - unknown names are the plugin's to report
                return None
            if location is None or location.source != "models-dir":
                return None
            path = location.path
        return fingerprint(path) if os.path.exists(path) else None

    def cacheable(self, source: Source, params: Operation) -> bool:
        """Whether this stage's output is kept in the cache for this source (the manifest may
        turn the cache off for every source). A stage that does no work of its own for some
        sources (a still's frame, handed on in memory) is cheaper to run again than to store."""
        return True

    def requires(self, params: Operation) -> list[InputSpec]:
        """Inputs for these parameters: the manifest's, with ``${param}`` references filled in."""
        values = params.params()
        return [InputSpec(type=_fill(i.type, values), params={k: _fill(v, values) for k, v in i.params.items()}) for i in self.manifest.inputs]

    # -- work ---------------------------------------------------------------------------------

    def run(self, ctx: StageContext, inputs: Inputs, params: Operation) -> None:
        """Do the work and ``ctx.write`` the record."""
        drain(self.stream(ctx, inputs, params))

    def stream(self, ctx: StageContext, inputs: Inputs, params: Operation) -> Iterator[Any]:
        """Yield partial results (records or dicts) as they exist, then ``ctx.write`` the record."""
        raise NotImplementedError(f"plugin {self.manifest.name} implements neither run() nor stream()")

    #: ``publish`` works from the record when its file is not in the stage's directory (a record
    #: held in memory, ``StageContext.in_memory``). The base ``publish`` does; a plugin that
    #: overrides it says so here when its own does too.
    publishes_from_record: ClassVar[bool] = False

    def publish(self, artifact: Artifact, dest: Path, source: Source) -> list[Path]:
        """Place the output type's files under ``dest``; returns what was written."""
        from video_extract.outputs import publish_path, publish_text

        record_file = output_type(artifact.type).record_file
        written = []
        for name in self.manifest.files:
            src = artifact.path / name.rstrip("/") if artifact.path is not None else None
            if src is not None and src.exists():
                written.append(publish_path(src, dest / name.rstrip("/"), link=artifact.scratch))
            elif name == record_file and artifact._record is not None:  # held in memory: written from it
                written.append(publish_text(artifact._record.record_text(), dest / name))
        return written

    def publishes_in_memory(self) -> bool:
        """Whether this plugin's stages may keep their record in memory (see ``publishes_from_record``)."""
        return type(self).publish is Plugin.publish or self.publishes_from_record


def drain(generator: Iterator[dict], emit: Callable[[dict], None] | None = None) -> Any:
    """Run a ``stream`` generator to its end, handing each partial to ``emit``; its return value."""
    while True:
        try:
            part = next(generator)
        except StopIteration as stop:
            return stop.value
        if emit is not None:
            emit(part)


_REF = re.compile(r"^\$\{(\w+)\}$")


def _fill(value: Any, params: dict[str, Any]) -> Any:
    if isinstance(value, str) and (m := _REF.match(value)):
        return params[m.group(1)]
    return value
