"""The Python API, and the one door every front-end goes through.

    from video_extract import Client
    result = Client(output_dir="out").run("talk.mp4", "metadata,scenes,keyframes:max_frames=8")
    result.metadata.duration, result.scenes.cuts, result.keyframes.paths()

The command line and the HTTP server are thin adapters over ``Client``: one request grammar
(``spec.parse_request``), one place that picks the executor or bulk engine, one set of events.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Generic, TypeVar, overload

from video_extract.errors import UsageError, VideoExtractError
from video_extract.events import Event, ProgressEvent
from video_extract.executors.base import Executor, Runtime, prepare
from video_extract.outputs import ensure_output_root
from video_extract.plan import Plan
from video_extract.registry import Registry, check_models
from video_extract.results import (
    AudioEmbeddingsResult,
    AudioResult,
    DiarizationResult,
    FacesResult,
    FileResult,
    FramesResult,
    FusionResult,
    KeyframesResult,
    MediaInfo,
    ObjectsResult,
    OcrResult,
    Output,
    ReportResult,
    SceneFramesResult,
    ScenesResult,
    TextEmbeddingsResult,
    TranscriptionResult,
    VadResult,
    VisionEmbeddingsResult,
    output_type,
)
from video_extract.sources import SourceLike, SourcePolicy, is_url
from video_extract.spec import DEFAULT_MAX_OPS, OutputSpec, RequestLike, make_operation, parse_request

if TYPE_CHECKING:
    from video_extract.executors.bulk import BatchResult
    from video_extract.executors.sizing import CostModel

T = TypeVar("T")


class _Op(Generic[T]):
    """A typed attribute of ``Results`` for one built-in operation."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.op = name

    @overload
    def __get__(self, obj: None, owner: type) -> _Op[T]: ...
    @overload
    def __get__(self, obj: Results, owner: type) -> T: ...
    def __get__(self, obj, owner=None):
        if obj is None:
            return self
        return obj._load(self.op, AttributeError)


class Results:
    """One input's results: the status of each operation, and each output as its typed record.

    Built-in operations are attributes (``result.scenes``, ``result.transcription``); any
    operation, a third party's included, is ``result["loudness"]``. An operation that was not
    requested, failed or was skipped raises (AttributeError / KeyError) saying which.
    """

    metadata = _Op[MediaInfo]()
    audio = _Op[AudioResult]()
    frames = _Op[FramesResult]()
    keyframes = _Op[KeyframesResult]()
    scenes = _Op[ScenesResult]()
    scene_frames = _Op[SceneFramesResult]()
    transcription = _Op[TranscriptionResult]()
    vad = _Op[VadResult]()
    diarization = _Op[DiarizationResult]()
    objects = _Op[ObjectsResult]()
    faces = _Op[FacesResult]()
    ocr = _Op[OcrResult]()
    text_embeddings = _Op[TextEmbeddingsResult]()
    vision_embeddings = _Op[VisionEmbeddingsResult]()
    audio_embeddings = _Op[AudioEmbeddingsResult]()
    fusion = _Op[FusionResult]()
    report = _Op[ReportResult]()

    def __init__(self, result: FileResult):
        self.result = result
        self.output_dir = Path(result.output_dir) if result.output_dir else None
        self._loaded: dict[str, Output] = {}

    @property
    def ok(self) -> bool:
        """True when no operation failed (skipped ones do not count)."""
        return self.result.ok

    @property
    def errors(self) -> dict[str, str]:
        """Failed operations and why (``input`` when the file itself could not be read)."""
        return self.result.errors()

    @property
    def skipped(self) -> dict[str, str]:
        """Operations that do not apply to this input, and why (``keyframes``: no video stream)."""
        return self.result.skipped()

    def __contains__(self, op: str) -> bool:
        return op in self.result.ops and self.result.ops[op].status == "ok"

    def __getitem__(self, op: str) -> Output:
        return self._load(op, KeyError)

    def _load(self, op: str, error: type[Exception]) -> Output:
        status = self.result.ops.get(op)
        if status is None:
            raise error(f"{op} was not requested (requested: {', '.join(self.result.ops) or 'nothing'})")
        if status.status != "ok":
            raise error(f"{op} {status.status}: {status.error or status.reason}")
        if op not in self._loaded:
            assert self.output_dir is not None and status.type is not None
            self._loaded[op] = output_type(status.type).load(self.output_dir, status.data)
        return self._loaded[op]

    def __getattr__(self, op: str) -> Output:
        if op.startswith("_") or op not in self.result.ops:
            raise AttributeError(f"{op}: no such operation in these results (requested: {', '.join(self.result.ops)})")
        return self._load(op, AttributeError)

    def __dir__(self) -> Iterable[str]:
        return sorted(set(super().__dir__()) | set(self.result.ops))

    def __repr__(self) -> str:
        ops = ", ".join(f"{k}={v.status}" for k, v in self.result.ops.items())
        return f"Results({self.result.input!r}, {ops})"


class Client:
    """Everything video-extract does, from Python; the CLI and the server call nothing else.

    Example::

        client = Client(cache_dir="~/.cache/video-extract", output_dir="out")
        result = client.run("talk.mp4", ["metadata", "scenes", "transcription"])
        print(result.scenes.to_pandas())
        for segment in result.transcription.segments:
            print(segment.start, segment.text)

    ``executor``: ``"debug"`` (stage by stage, logged) or ``"perf"`` (stages side by side);
    both write the same files from the same cache. ``registry``: the plugins to use (default:
    every installed one, discovered once per process). ``max_pixels``: the largest frame
    (width x height) decoded, for this process and its bulk workers (default
    ``$VIDEO_EXTRACT_MAX_PIXELS`` or 89,478,485, Pillow's limit; 0: no limit). ``source_policy``: what may be named as
    a source (``SourcePolicy``; default: any path, URL scheme and network, no size limit).

    A source is a local path, an ``http(s)://`` or ``s3://`` URL (or any installed fsspec
    protocol), ``bytes`` or a binary file object; ``format_hint`` (``"mp4"``, ``"clip.mp4"``)
    names the ones that carry no name.

    For a service: ``max_ops`` caps the operations one request may name (None: no cap);
    ``allow_any_model=False`` accepts only catalog model names and ``allowed_models`` (no
    client-chosen Hugging Face id or path); ``model_memory_budget`` bounds the models kept
    loaded across requests (bytes or ``"4G"``; least recently used idle ones are dropped).
    ``keep_models=False`` is for a process that makes one request and ends (the CLI on one
    input): each model is dropped as soon as no stage left of the request uses it.
    """

    def __init__(
        self,
        cache_dir: str | Path | None = None,
        output_dir: str | Path = "video_extract_output",
        use_cache: bool = True,
        models_dir: str | Path | None = None,
        executor: str | Executor = "debug",
        save_intermediates: bool = False,
        threads: int | None = None,
        registry: Registry | None = None,
        cache_max_size: int | str | None = "default",
        cache_verify: str | None = None,
        max_pixels: int | None = None,
        source_policy: SourcePolicy | None = None,
        max_ops: int | None = DEFAULT_MAX_OPS,
        allow_any_model: bool = True,
        allowed_models: Iterable[str] = (),
        model_memory_budget: int | str | None = None,
        keep_models: bool = True,
    ):
        self.output_dir = Path(output_dir).expanduser()
        self.threads = threads  # stages side by side in perf mode (default: cores + 1, at most 8)
        self.max_ops = max_ops
        if isinstance(executor, Executor):
            self.executor = executor
        else:
            runtime = Runtime(
                cache_dir=cache_dir,
                use_cache=use_cache,
                models_dir=models_dir,
                registry=registry,
                cache_max_bytes=cache_max_size,
                cache_verify=cache_verify,
                max_pixels=max_pixels,
                source_policy=source_policy,
                allow_any_model=allow_any_model,
                allowed_models=allowed_models,
                model_memory_budget=model_memory_budget,
                keep_models=keep_models,
            )
            self.executor = _make_executor(executor, runtime, save_intermediates=save_intermediates, threads=threads)

    @property
    def runtime(self) -> Runtime:
        return self.executor.runtime

    @property
    def cache(self):
        """The stage cache (``stats()``, ``clear()``), or None when caching is off."""
        return self.runtime.cache

    @property
    def models(self):
        """The model store (``locate``, ``path``, ``fetch``, ``verify``)."""
        return self.runtime.models

    def prepare_model(self, name: str) -> str | None:
        """Make once what a run makes the first time it loads model ``name`` (fetched), so that
        the first run after ``models fetch`` starts as fast as the next: the ONNX exports of the
        torch networks, ONNX Runtime's graphs optimized for this CPU and Whisper's weights in
        int8, all kept in the model cache. Returns what was made ready, or None for a model with nothing to prepare."""
        store = self.models
        cache = store.cache_dir
        spec = store.spec(name)
        exported, on_torch = "ONNX export, optimized for this CPU", "torch (no ONNX export could be made)"
        if spec.name == "pyannote-segmentation-3.0":
            from video_extract.speech import diarize_models
            from video_extract.speech.diarize import load_segmenter

            model = load_segmenter(str(store.path(spec.name)), cache).model
            return exported if isinstance(model, diarize_models.OnnxSegmentation) else on_torch
        if spec.name == "campplus-sv-zh-en":
            from video_extract.speech import diarize_models
            from video_extract.speech.diarize import load_embedder

            return exported if isinstance(load_embedder(str(store.path(spec.name)), cache), diarize_models.OnnxEmbedder) else on_torch
        if spec.name == "all-MiniLM-L6-v2":
            from video_extract.models.bert_sentences import BertSentenceEncoder

            return exported if BertSentenceEncoder(store.checkpoint(spec.name), cache).runtime == "onnx" else on_torch
        if spec.name.startswith("yolox-") or spec.name == "yunet":
            from video_extract.models.runtime import onnx_session

            onnx_session(str(store.path(spec.name)), cache_dir=cache)  # what YoloxDetector and FaceDetector open
            return "ONNX Runtime graph optimized for this CPU"
        if spec.name == "ppocr-v4":
            from video_extract.vision.ocr import make_engine

            make_engine(None, 1, cache)
            return "ONNX Runtime graphs optimized for this CPU"
        if spec.family == "whisper":
            from video_extract.models.ct2_int8 import int8_copy

            folder = store.checkpoint(spec.name)
            return "weights quantized to int8 once" if int8_copy(folder, cache) != folder else None  # what an int8 load on the CPU reads
        return None

    # -- requests ----------------------------------------------------------------------------

    def request(self, ops: RequestLike = None, overrides: Iterable[str] = (), spec_file: str | Path | None = None) -> list[OutputSpec]:
        """Parse a request the way every front-end does, ``all`` expanded to every installed operation.

        ``ops``: ``"metadata,scenes:threshold=20,min_scene_len=10"``, a list of such strings,
        Operations, OutputSpecs or dicts, or ``"all"``; ``overrides`` (the CLI's ``--op``)
        replace an operation of the same name; ``spec_file``: a YAML or JSON spec. Refuses
        (UsageError) more than ``max_ops`` operations, and a model the model policy does not
        allow, before any input is read.
        """
        registry = self.runtime.registry  # discovered first: third-party operations parse too
        request = parse_request(ops, overrides, spec_file, max_ops=self.max_ops)
        specs = list(request.specs)
        check_models(specs, self.runtime.model_policy)
        if request.everything:
            named = {s.operation.name for s in specs}
            specs += [OutputSpec(operation=make_operation(op)) for op in registry.operations() if op not in named]
        return specs

    @staticmethod
    def cost_model(batch_dir: str | Path) -> CostModel:
        """Per-stage costs fitted on a finished bulk run of a request, for sizing (files/hour on
        N machines); see ``executors/sizing.py``."""
        from video_extract.executors.sizing import calibration_files, fit

        return fit(calibration_files(batch_dir))

    def operations(self) -> list[dict]:
        """Every operation: aliases, summary, whether a plugin runs it, its parameters."""
        return self.runtime.registry.describe_operations()

    def plan(self, source: SourceLike, ops: RequestLike, format_hint: str | None = None) -> Plan:
        """The stages a request needs for one input, without running them (probes the file; a
        URL is fetched into the spool)."""
        job = prepare(self.runtime, source, self.request(ops), self.output_dir, format_hint=format_hint)
        job.release()
        return job.plan

    # -- one file ----------------------------------------------------------------------------

    def run(self, source: SourceLike, ops: RequestLike, format_hint: str | None = None, name: str | None = None) -> Results:
        """Process one input; returns its typed results.

        Example::

            result = Client(output_dir="out").run("talk.mp4", "transcription,diarization")
            result.transcription.to_pandas(level="words")
            Client().run("https://example.org/clip.mp4", "metadata")
            Client().run(data, "scenes", format_hint="mp4")  # bytes, or an open binary file

        ``name``: what the results and output files call the input instead of its path or URL
        (``summary.json``'s ``input``, ``metadata.json``'s ``path``): a temporary copy, or a
        server's upload, by the name its owner knows it by.

        Raises InputError for a file that cannot be read (SourceError for a source that cannot be
        fetched or that the policy refuses), UsageError for a malformed request; an operation
        that fails is in ``result.errors``, one that does not apply in ``result.skipped``.
        """
        specs = self.request(ops)
        ensure_output_root(self.output_dir)
        return Results(self.executor.run_file(source, specs, self.output_dir, format_hint=format_hint, name=name))

    def run_many(self, sources: Sequence[SourceLike], ops: RequestLike, format_hint: str | None = None) -> Iterator[Results]:
        """Process several inputs in turn; an unreadable one yields a failed result instead of raising."""
        specs = self.request(ops)
        ensure_output_root(self.output_dir)
        for result in self.executor.run_files(sources, specs, self.output_dir, format_hint=format_hint):
            yield Results(result)

    def execute_streaming(
        self, source: SourceLike, ops: RequestLike, threads: int | None = None, format_hint: str | None = None, name: str | None = None
    ) -> Iterator[Event]:
        """Performance mode: typed events as they happen (partials, then complete / skipped /
        error per operation, then done); stages without a dependency between them run at once.

        Example::

            for event in client.execute_streaming("talk.mp4", "metadata,transcription"):
                if event.type == "partial":
                    print(event.data["text"])
                elif event.type == "done":
                    print(event.status, event.result.ops)

        The files written are those ``run`` writes (``name`` as there). Raises InputError before
        the first event for an unreadable input.
        """
        from video_extract.executors.perf import PerfExecutor

        specs = self.request(ops)
        ensure_output_root(self.output_dir)
        executor = PerfExecutor(self.runtime, threads=threads or self.threads)
        yield from executor.stream_file(source, specs, self.output_dir, format_hint=format_hint, name=name)

    async def aexecute_streaming(
        self, source: SourceLike, ops: RequestLike, threads: int | None = None, format_hint: str | None = None, name: str | None = None
    ):
        """``execute_streaming`` for asyncio: the work runs in a thread, events arrive on the loop."""
        import asyncio

        loop = asyncio.get_running_loop()
        events: asyncio.Queue = asyncio.Queue()
        end = object()

        def produce() -> None:
            try:
                for event in self.execute_streaming(source, ops, threads, format_hint=format_hint, name=name):
                    loop.call_soon_threadsafe(events.put_nowait, event)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the consumer
                loop.call_soon_threadsafe(events.put_nowait, exc)
            finally:
                loop.call_soon_threadsafe(events.put_nowait, end)

        worker = loop.run_in_executor(None, produce)
        while True:
            event = await events.get()
            if event is end:
                break
            if isinstance(event, BaseException):
                raise event
            yield event
        await worker

    # -- many files --------------------------------------------------------------------------

    def execute_bulk(
        self,
        requests: Sequence[str | Path | tuple[str | Path, RequestLike] | dict],
        ops: RequestLike = None,
        workers: int | None = None,
        engine: str = "local",
        ray_address: str | None = None,
        ray_keep_workers: float | None = None,
        retries: int = 1,
        timeout: float | None = None,
        progress: str | Callable[[ProgressEvent], None] = "none",
        input_list: str | Path | None = None,
        export: str | Sequence[str] | None = None,
        shard_size: int = 1000,
        export_audio: bool = False,
        names: Mapping[str, str] | None = None,
    ) -> BatchResult:
        """Bulk mode: many files through a warm worker pool (or Ray); returns the BatchResult.

        Example::

            batch = client.execute_bulk(["videos/"], "metadata,scenes,transcription", workers=4)
            print(batch.failed, [row.input for row in batch.rows if row.status == "failed"])

        ``requests``: files, folders, URLs or URL prefixes (``s3://bucket/videos/``) with one
        ``ops`` for all, or ``(path, ops)`` pairs / ``{"path": …, "ops": …}`` for a request per
        file. Writes ``batch_summary.json`` and
        ``batch_summary.parquet`` in the output directory; files already finished for the same
        request are skipped; files in the folders that are not media are listed (``not_media``).
        ``progress``: ``rich``, ``jsonl`` (stdout), ``none``, or a function given each ``progress`` event.
        ``ray_keep_workers``: minutes the Ray actors (and their loaded models) stay on the cluster
        at ``ray_address`` once idle, for the next command with the same settings to take them.

        ``export``: ``"parquet"``, ``"webdataset"`` or both: after the batch, the finished files'
        outputs as datasets under ``{output_dir}/export/`` (``batch.exports``; failed files are
        left out and listed). ``shard_size``: samples per WebDataset shard; ``export_audio``: put
        each file's ``audio.wav`` in its sample (needs the ``audio`` operation).
        ``names``: what rows, output files and exports call some inputs, by the input as given
        (``run``'s ``name``).
        """
        from video_extract.executors.bulk import BatchInput, collect_inputs, run_batch
        from video_extract.executors.progress import make_progress
        from video_extract.exports import check_shard_size, export_batch, parse_formats

        formats = parse_formats(export)  # a bad format or shard size is a usage error before any file runs
        check_shard_size(shard_size)

        not_media: list[Path | str] = []
        sources = self.runtime.sources
        if ops is not None or input_list is not None:
            specs = self.request(ops)
            found = collect_inputs(requests, input_list, exclude=self._cache_dirs(), sources=sources, output_root=self.output_dir)
            inputs = [BatchInput(path=p, specs=specs, fingerprint=found.fingerprints.get(str(p)), name=(names or {}).get(str(p))) for p in found.media]
            not_media = found.not_media
        else:
            pairs = [(r["path"], r["ops"]) if isinstance(r, dict) else r for r in requests]
            if not all(isinstance(p, tuple) and len(p) == 2 and isinstance(p[0], (str, PathLike)) for p in pairs):
                raise UsageError("execute_bulk: give ops for all paths or URLs, or (path, ops) pairs / {'path', 'ops'} dicts")
            inputs = [BatchInput(path=p if is_url(p) else Path(p), specs=self.request(o), name=(names or {}).get(str(p))) for p, o in pairs]
        engine_ = self._bulk_engine(engine, workers, ray_address, ray_keep_workers)
        batch = run_batch(
            inputs, self.output_dir, engine_, retries=retries, timeout=timeout, progress=make_progress(progress), not_media=not_media, sources=sources
        )
        if formats:
            batch.exports = export_batch(self.output_dir, formats, shard_size=shard_size, include_audio=export_audio)
        return batch

    def _cache_dirs(self) -> list[Path]:
        """The folder a bulk scan takes no input from at all: the cache's. (From the output folder
        it leaves out what runs wrote there: ``collect_inputs``.)"""
        return [self.runtime.cache.root] if self.runtime.cache is not None else []

    def _bulk_engine(self, engine: str, workers: int | None, ray_address: str | None, ray_keep_workers: float | None = None):
        """The one place a bulk engine is picked."""
        from video_extract.executors.bulk import LocalEngine, Settings, default_workers
        from video_extract.media.limits import max_pixels

        runtime = self.runtime
        settings = Settings(
            cache_dir=str(runtime.cache.root) if runtime.cache else None,
            use_cache=runtime.cache is not None,
            models_dir=str(runtime.models_dir) if runtime.models_dir else None,
            cache_max_bytes=runtime.cache.max_bytes if runtime.cache else None,
            cache_verify=runtime.cache.verify if runtime.cache else None,
            max_pixels=max_pixels() or 0,  # what this process allows: Ray workers elsewhere do not share its environment
            source_policy=runtime.sources.policy,
            allow_any_model=runtime.allow_any_model,
            allowed_models=runtime.allowed_models,
            model_memory_budget=runtime.model_memory_budget,
        )
        count = workers or default_workers()
        if engine == "ray" or ray_address:
            from video_extract.executors.ray_engine import RayEngine

            return RayEngine(count, settings, address=ray_address, keep_minutes=ray_keep_workers)
        if ray_keep_workers is not None:
            raise UsageError("--ray-keep-workers is for the Ray engine (with --ray-address)")
        if engine == "local":
            return LocalEngine(count, settings)
        raise UsageError(f"unknown engine '{engine}'; valid: local, ray")

    # -- report ------------------------------------------------------------------------------

    def report(self, output_dir: str | Path, ops: RequestLike = None) -> Path:
        """Rebuild ``report.html`` in one input's output folder (``OUT/STEM``) from the outputs
        there (``fusion.json`` at least); returns its path. ``ops``: the report's parameters
        (``"report:max_thumbnails=100"``)."""
        from video_extract.report import rebuild_report
        from video_extract.spec import Report

        specs = parse_request(ops).specs if ops else []
        other = next((s.operation.name for s in specs if not isinstance(s.operation, Report)), None)
        if other is not None:
            raise UsageError(f"a report is rebuilt from the outputs already there: give report's parameters (report:max_thumbnails=100), not {other}")
        return rebuild_report(output_dir, specs[0].operation if specs else None)

    # -- search ------------------------------------------------------------------------------

    def search_frames(self, results: Results, text: str, top_k: int = 5) -> list[dict]:
        """Frames of ``results`` ranked by how well they match ``text`` (CLIP cosine similarity).

        Needs ``vision_embeddings`` in the results; the text is embedded with the same model.
        """
        from video_extract.vision.clip import load_clip

        return self._search(results.vision_embeddings, text, top_k, load_clip)

    def search_audio(self, results: Results, text: str, top_k: int = 5) -> list[dict]:
        """Audio windows of ``results`` ranked by how well they match ``text`` (CLAP), e.g. "applause"."""
        from video_extract.sound.clap import load_clap

        return self._search(results.audio_embeddings, text, top_k, load_clap)

    def _search(self, embeddings, text: str, top_k: int, loader) -> list[dict]:
        query = loader(self.runtime.models, embeddings.model).embed_texts([text])[0]
        scores = embeddings.vectors @ query
        order = scores.argsort()[::-1][:top_k]
        return [{**embeddings.rows[i].model_dump(), "score": round(float(scores[i]), 6)} for i in order]


def _make_executor(name: str, runtime: Runtime, save_intermediates: bool, threads: int | None) -> Executor:
    """The one place a single-file executor is picked."""
    if name == "debug":
        from video_extract.executors.debug import DebugExecutor

        return DebugExecutor(runtime, save_intermediates=save_intermediates)
    if name == "perf":
        from video_extract.executors.perf import PerfExecutor

        return PerfExecutor(runtime, save_intermediates=save_intermediates, threads=threads)
    raise UsageError(f"unknown executor '{name}'; valid: debug, perf")


__all__ = ["Client", "Results", "VideoExtractError"]
