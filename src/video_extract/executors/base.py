"""What every executor shares: preparing a file's job, running one stage, finishing the file.

Executors differ only in scheduling (one stage after another, stages side by side, many files
across processes or machines). The per-stage work below is the same for all of them: look the
stage up in the cache, or run its plugin into a fresh directory and commit that; publish what
the user asked for; record timing. A stage failure is recorded, never raised: its dependents
are skipped with the reason, and unrelated stages go on.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from video_extract.allocator import TRIM_AFTER_SEC, release
from video_extract.cache import LAYOUT, Cache, Entry, Lease, file_digest, remember_digest, stage_key
from video_extract.errors import InputError, OperationError, UsageError, VideoExtractError, missing_package, show_path
from video_extract.media.image import LARGE_PIXELS, STILL_DECODER, Still
from video_extract.media.limits import set_max_pixels
from video_extract.media.prefetch import stage_cores
from video_extract.media.probe import probe
from video_extract.models.runtime import model_threads
from video_extract.outputs import (
    InputLike,
    InputName,
    claim_output_dir,
    output_dir_for,
    owned_by,
    prune_outputs,
    publish_path,
    remove_stale_temporaries,
    write_summary,
)
from video_extract.plan import Plan, Stage
from video_extract.plugins.base import Artifact, Inputs, Manifest, Plugin, Source, StageContext, drain, record_mismatch
from video_extract.registry import Registry, default_registry
from video_extract.results import FileResult, FramesResult, OpResult, Record, StageRecord, output_type
from video_extract.sources import Opened, SourceError, SourcePolicy, Sources, describe, display_name
from video_extract.spec import Metadata, OutputSpec

log = logging.getLogger("video_extract")

#: Called with (stage, partial result as JSON-able dict) as a streaming plugin yields.
PartialCallback = Callable[[Stage, dict], None]
#: Called with (stage, record) when a stage finishes, fails or is skipped.
StageCallback = Callable[[Stage, StageRecord], None]


class Runtime:
    """Process-wide state every executor uses: plugins (with their warm models), cache, model store.

    ``max_pixels``: the pixel budget per decoded frame (``media.limits``; 0 turns it off). It is
    process-wide (``VIDEO_EXTRACT_MAX_PIXELS``, which this sets), as decoding is done deep in
    the media layer, by threads and by the worker processes a bulk run starts.
    ``allow_any_model`` / ``allowed_models``: which model names requests may use (any, on a
    user's machine; catalog names plus this allowlist on a shared server). ``model_memory_budget``:
    bytes (or ``"4G"``, ``"none"``) the process's warm models may take; None keeps the process's
    budget (``$VIDEO_EXTRACT_MODEL_MEMORY``, else half the RAM, at most 4 GiB). ``keep_models``:
    False in a process that makes one request (``_let_go_of_models``).
    """

    def __init__(
        self,
        cache_dir: str | Path | None = None,
        use_cache: bool = True,
        cache_max_bytes: int | str | None = "default",
        models_dir: str | Path | None = None,
        registry: Registry | None = None,
        cache_verify: str | None = None,
        max_pixels: int | None = None,
        source_policy: SourcePolicy | None = None,
        allow_any_model: bool = True,
        allowed_models: Iterable[str] = (),
        model_memory_budget: int | str | None = None,
        keep_models: bool = True,
    ):
        from video_extract.models.warm import warm_models

        if max_pixels is not None:
            set_max_pixels(max_pixels)
        self.registry = registry or default_registry()
        self.cache = Cache(cache_dir, max_bytes=cache_max_bytes, verify=cache_verify) if use_cache else None
        self.models_dir = Path(models_dir).expanduser() if models_dir else None
        if self.models_dir is not None and not self.models_dir.is_dir():
            # a mistyped folder otherwise sent every model to a download, and its error named the model
            raise UsageError("the models directory is not a folder" + ("" if self.models_dir.exists() else " (it does not exist)"), self.models_dir)
        self.allow_any_model = allow_any_model
        self.allowed_models = tuple(sorted({allowed_models} if isinstance(allowed_models, str) else set(allowed_models)))
        self.model_memory_budget = model_memory_budget
        self.keep_models = keep_models
        if model_memory_budget is not None:
            warm_models().set_budget(model_memory_budget)
        else:
            warm_models().budget  # noqa: B018 - read now: a malformed $VIDEO_EXTRACT_MODEL_MEMORY fails here, in one line
        self._models = None
        # Downloads are spooled beside the cache (a quarter of its cap, least recently used
        # first), or for one request at a time when there is no cache.
        cache = self.cache
        self.sources = Sources(
            source_policy,
            spool_dir=cache.root / LAYOUT / "spool" if cache else None,
            spool_max_bytes=cache.max_bytes // 4 if cache and cache.max_bytes else None,
        )

    @property
    def models(self) -> Any:
        """The model store plugins resolve weights through (created on first use)."""
        if self._models is None:
            from video_extract.models import ModelStore

            self._models = ModelStore(self.models_dir, allow_any_model=self.allow_any_model, allowed_models=self.allowed_models)
        return self._models

    @property
    def model_policy(self) -> Any:
        """Which model names requests may use (``models.catalog.ModelPolicy``)."""
        return self.models.policy


@dataclass
class Job:
    """One input file going through its plan."""

    source: Source
    plan: Plan
    out_dir: Path
    name: InputLike = field(default_factory=Path)  # who owns out_dir: the local file, or the source's name
    opened: Opened | None = None  # the spool file this job reads (released with the job)
    save_intermediates: bool = False
    request: list[str] = field(default_factory=list)  # canonical form of the requested outputs
    artifacts: dict[str, Artifact] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)  # stage id -> error
    records: dict[str, StageRecord] = field(default_factory=dict)
    published: dict[str, list[str]] = field(default_factory=dict)  # stage id -> files
    started: float = field(default_factory=time.perf_counter)
    scratch: Path | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    leases: list[Lease] = field(default_factory=list)  # cache entries this job reads: not evicted
    concurrent: bool = False  # stages may run side by side (the perf executor): they share the cores
    preloading: bool = False  # the later stages' models are being loaded ahead (``_preload``)

    def hold(self, lease: Lease) -> Lease:
        with self.lock:
            self.leases.append(lease)
        return lease

    def release(self) -> None:
        """Give back the leases and the scratch folder; safe to call more than once."""
        with self.lock:
            leases, self.leases = self.leases, []
            scratch, self.scratch = self.scratch, None
            opened, self.opened = self.opened, None
        for lease in leases:
            lease.release()
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
        if opened is not None:
            opened.release()

    def scratch_dir(self) -> Path:
        with self.lock:
            if self.scratch is None:
                self.scratch = Path(tempfile.mkdtemp(prefix="video-extract-"))
            return self.scratch


def _scratch_stage_dir(job: Job, stage: Stage) -> Path:
    """A stage's own folder in the job's scratch folder (a stage no cache keeps)."""
    folder = job.scratch_dir() / stage.id
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def prepare(
    runtime: Runtime,
    input_path: object,
    specs: Sequence[OutputSpec | str],
    output_root: str | Path,
    batch: Iterable[InputLike] = (),
    save_intermediates: bool = False,
    format_hint: str | None = None,
    name: str | None = None,
) -> Job:
    """Fetch (a URL, bytes, a stream: spooled), probe, hash and plan one input; raises InputError
    (SourceError for a source that cannot be fetched) before creating anything in the output folder.
    ``name``: what results and outputs call the input instead of its path or URL (a server's
    upload, by the file name its client gave).

    Every input gets ``metadata.json``, whatever else was asked.
    """
    opened = runtime.sources.open(input_path, format_hint)
    try:
        path = opened.path
        try:
            info = probe(path, scan=False)  # header facts: enough to plan, and a clear error for non-media
        except InputError as exc:
            if exc.path != (name or opened.display):  # a spool file, or a resolved path: name the source as given
                raise type(exc)(exc.message, name or opened.display) from None
            raise
        if opened.digest is not None:
            remember_digest(path, opened.digest)  # hashed while it was spooled: not read twice
        digest = file_digest(path)
        outputs = [OutputSpec.of(s) for s in specs]
        always = [OutputSpec(operation=Metadata())] if not any(s.operation.name == Metadata.name for s in outputs) else []
        plan = runtime.registry.plan(outputs + always, info, policy=runtime.model_policy)
        owner = job_name(opened)
        out_dir = output_dir_for(Path(output_root), owner, batch)
        st = path.stat()
        origin = name if name is not None else None if opened.local and opened.display == str(path) else opened.display
        source = Source(
            path=path,
            info=info,
            digest=digest,
            stat=(st.st_size, st.st_mtime_ns),
            origin=origin,
            still=Still(path) if info.is_image else None,
        )
    except BaseException:
        opened.release()
        raise
    return Job(
        source=source,
        plan=plan,
        out_dir=out_dir,
        name=owner,
        opened=opened,
        save_intermediates=save_intermediates,
        request=request_key(outputs),
    )


def job_name(opened: Opened) -> InputLike:
    """Who owns an input's output folder: a local file by its path, anything else by its name."""
    return Path(opened.display) if opened.local else InputName(opened.identity, opened.stem)


def input_name(source: object, format_hint: str | None = None) -> InputLike | None:
    """An input's owner name without fetching it (for collision-free folder names in a batch);
    None for bytes and streams, which are named by their content once read."""
    try:
        described = describe(source, format_hint)
    except SourceError:
        return None
    if described.kind == "path":
        return described.path
    if described.kind == "url":
        return InputName(described.display, described.stem)
    return None


def start(
    runtime: Runtime,
    input_path: object,
    specs: Sequence[OutputSpec | str],
    output_root: str | Path,
    batch: Iterable[InputLike] = (),
    save_intermediates: bool = False,
    format_hint: str | None = None,
    name: str | None = None,
) -> Job:
    """``prepare`` for a run: an input that is there but no longer opens as media (replaced by a
    truncated copy), and has a folder from an earlier run, leaves that folder saying so (a failed
    ``summary.json``, the old outputs removed) rather than holding results of another file. A
    missing or unreadable input leaves its folder alone: the results may be all that is left."""
    try:
        return prepare(runtime, input_path, specs, output_root, batch, save_intermediates, format_hint, name)
    except InputError as exc:
        name = input_name(input_path)
        if isinstance(name, Path) and not isinstance(exc, SourceError):  # not one the policy refused
            _settle_unreadable(name, exc, Path(output_root), batch, specs)
        raise


def _settle_unreadable(path: Path, error: InputError, output_root: Path, batch: Iterable[InputLike], specs: Sequence[OutputSpec | str]) -> None:
    try:
        st = path.stat()
    except OSError:
        return  # gone or out of reach: the earlier results may be all that is left of it; keep them
    if not os.access(path, os.R_OK):
        return
    directory = output_dir_for(output_root, path, batch)
    if not owned_by(directory, path):
        return  # no earlier run, or not ours: nothing is written for an unreadable input
    result = FileResult(
        input=str(path),
        output_dir=str(directory),
        status="failed",
        error=error.message,
        request=request_key(specs),
        input_size=st.st_size,
        input_mtime_ns=st.st_mtime_ns,
    )
    remove_stale_temporaries(directory)
    prune_outputs(directory, [])
    write_summary(directory, result.model_dump(mode="json"))


def request_key(specs: Sequence[OutputSpec | str]) -> list[str]:
    """The requested outputs in canonical form: equal for equal requests however they were written."""
    import json

    return sorted(json.dumps(OutputSpec.of(s).to_dict(), sort_keys=True, separators=(",", ":")) for s in specs)


def run_stage(
    runtime: Runtime,
    job: Job,
    stage: Stage,
    on_partial: PartialCallback | None = None,
) -> StageRecord:
    """Run (or fetch from cache) one stage whose upstream stages have finished."""
    record = _run_stage(runtime, job, stage, on_partial)
    _let_go_of_still(job)
    _let_go_of_models(runtime, job)
    return record


def _let_go_of_models(runtime: Runtime, job: Job) -> None:
    """In a process that makes one request (``Runtime(keep_models=False)``: the CLI on one input)
    on an input over a minute, a model goes, and its memory back to the system, once no stage
    left of the plan is of a plugin that used it: an hour's diarization then runs without
    Whisper beside it (the CLI's peak on an hour: 394-403 MiB instead of 456-470). On a short input
    the drops (a garbage collection and a trim each) cost more than the memory is worth: the
    full pipeline on the 10 s demo took 1.94-2.03 s instead of 1.79-1.82."""
    if runtime.keep_models or (job.source.info.duration or 0) <= TRIM_AFTER_SEC:
        return
    from video_extract.models.warm import warm_models

    with job.lock:
        left = {stage.plugin for sid, stage in job.plan.stages.items() if sid not in job.records}
    if warm_models().drop_unused_by(runtime.registry.plugin(name) for name in left):
        release()


def _let_go_of_still(job: Job) -> None:
    """A still image's pixels go once no stage left reads them: from the video stream, or from a
    frame record that hands them on in memory (``FramesResult._pixels``). After each stage of a
    large still, what its copies freed goes back to the system (``allocator.release``: glibc
    keeps what a thread freed in that thread's heap, where the next stages, in other threads,
    cannot use it; measured 1.4 GB instead of 1.0 GB for an 88 Mpx still in perf mode)."""
    still = job.source.still
    if still is None:
        return

    def reads_pixels(kind: str, sid: str) -> bool:
        if kind == "VideoStream":
            return True
        artifact = job.artifacts.get(sid)
        record = artifact._record if artifact is not None else None
        return isinstance(record, FramesResult) and record._pixels is not None

    with job.lock:
        waiting = any(sid not in job.records and any(reads_pixels(kind, up) for kind, up in s.inputs) for sid, s in job.plan.stages.items())
    if not waiting:
        still.release()
    video = job.source.info.video
    if video is not None and video.width * video.height > LARGE_PIXELS:
        release()


#: Seconds after which a stage has likely left freed memory worth handing back (a few ms).
LONG_STAGE = 1.0


def _run_stage(runtime: Runtime, job: Job, stage: Stage, on_partial: PartialCallback | None) -> StageRecord:
    requested = job.plan.requested(stage.id)
    manifest = runtime.registry.manifests[stage.plugin]
    failed_upstream = [sid for sid in stage.upstream if sid in job.failures]
    # A gatherer works with what succeeded, but not without an input its manifest declares.
    declared = {need.type for need in manifest.inputs}
    needed = [sid for sid in failed_upstream if not manifest.gathers_requested or job.plan.stages[sid].output_type in declared]
    if needed:
        upstream = job.plan.stages[needed[0]]
        reason = f"needs {upstream.output_type} from {upstream.label()}, which failed: {job.failures[needed[0]]}"
        return _record(job, stage, "skipped", requested, error=reason)

    plugin = runtime.registry.plugin(stage.plugin)
    # Keys are for the cache alone (this stage's entry, or a later stage's, keyed by its
    # upstream's): without a cache, neither they nor the weights' fingerprints are worked out.
    params, key = _cache_key(runtime, job, stage, plugin, manifest) if runtime.cache is not None else ({}, "")
    cache = runtime.cache if manifest.cache.enabled and plugin.cacheable(job.source, stage.operation) else None
    started = time.perf_counter()
    try:
        # Held from before the lookup until the file is finished: what this plan reads or
        # writes is not evicted under it.
        lease = job.hold(cache.lease(key)) if cache else None
        entry = cache.get(key, manifest.cache.invalidate_before, lease) if cache else None
        artifact = _hit(cache, entry, stage, lease) if cache and entry else None
        if artifact is None:
            _preload(runtime, job)
            try:
                artifact = _execute(runtime, job, stage, key, None if cache is not None and cache.read_only else cache, params, on_partial, lease)
            except OSError as exc:
                if cache is None or not cache.refuses(exc):
                    raise
                # again, kept nowhere (its partial results were given already)
                artifact = _execute(runtime, job, stage, key, None, params, None, lease)
            if time.perf_counter() - started > LONG_STAGE:
                release()  # a long stage's freed temporaries, back to the system (allocator.py)
        job.artifacts[stage.id] = artifact
        files = _publish(runtime, job, stage, artifact, requested)
    except Exception as exc:  # noqa: BLE001 - a stage's failure is data, not a crash of the run
        if isinstance(exc, ModuleNotFoundError) and exc.name:
            message = missing_package(exc.name, stage.plugin, manifest.extra)
        elif isinstance(exc, VideoExtractError):
            message = exc.message
        elif isinstance(exc, ValidationError):  # a record built with a field its declaration lacks
            message = f"{exc.title}: {record_mismatch(exc)}"
        else:
            message = " ".join(f"{type(exc).__name__}: {exc}".split())  # one line, whatever the library said
            log.debug("stage %s raised", stage.label(), exc_info=True)
        return _record(job, stage, "failed", requested, error=message, seconds=time.perf_counter() - started)
    return _record(job, stage, "ok", requested, cached=artifact.cached, seconds=time.perf_counter() - started, files=files)


def _cache_key(runtime: Runtime, job: Job, stage: Stage, plugin: Plugin, manifest: Manifest) -> tuple[dict, str]:
    """The stage's parameters as its cache entry records them, and its key (kept in ``job.keys``
    for the stages that read it)."""
    params = {k: v for k, v in stage.operation.params().items() if k not in manifest.cache.ignore_params}
    fingerprint = plugin.model_fingerprint(stage.operation, runtime.models)
    if fingerprint:
        params["model_files"] = fingerprint  # other weights under the same name are another result
    if job.source.still is not None:
        params["still_decoder"] = STILL_DECODER  # a still decoded otherwise now is another result; videos keep theirs
    # A failed input (only a gatherer runs past one) is part of the key: what was fused without
    # it must not be served once it succeeds.
    upstream_keys = ["failed" if s in job.failures else job.keys[s] for s in stage.upstream]
    key = stage_key(job.source.digest, stage.plugin, stage.version, params, upstream_keys)
    job.keys[stage.id] = key
    return params, key


def _hit(cache: Cache, entry: Entry, stage: Stage, lease: Lease | None) -> Artifact | None:
    """A cache hit whose record reads back, else None (the entry is rejected and the stage recomputed).

    Reading the record catches damage a size check cannot see in the JSON that most stages are
    made of (a flipped byte, garbage of the same length), for the price of parsing it once.
    """
    artifact = Artifact(stage.output_type, entry.path, entry.data, cached=True)
    try:
        artifact.record()
    except OperationError as exc:
        cache.reject(entry.path, stage.plugin, exc.message.removeprefix(f"{stage.output_type}: "), lease)
        return None
    return artifact


def _execute(runtime: Runtime, job: Job, stage: Stage, key: str, cache: Cache | None, params: dict, on_partial, lease: Lease | None = None) -> Artifact:
    plugin = runtime.registry.plugin(stage.plugin)
    manifest = plugin.manifest
    # The stage holds its plugin's set-up models and every model it loads until it ends: the
    # memory budget drops only idle ones (another stage's load never tears this one down).
    with runtime.models.stage(plugin) as models:
        with models.setting_up():
            plugin.ensure_setup(models)
        work_dir = cache.new_work_dir(key) if cache else None
        inputs = Inputs({t: job.artifacts[sid] for t, sid in stage.inputs if sid in job.artifacts})
        ctx = StageContext(
            source=job.source,
            make_dir=(lambda: work_dir) if work_dir is not None else (lambda: _scratch_stage_dir(job, stage)),
            log=log,
            output=output_type(stage.output_type),
            models=models,
            publishes=bool(job.plan.requested(stage.id)) or job.save_intermediates,
            threads=model_threads(side_by_side(runtime, job, stage)),
            # Nothing keeps this stage: its record goes to consumers and to publishing in memory
            # (folders of its own only for files besides the record; none for a still's frame).
            in_memory=cache is None and not job.save_intermediates and plugin.publishes_in_memory(),
        )
        if not ctx.in_memory:
            _ = ctx.work_dir  # made up front, whatever the plugin writes
        cores = stage_cores.set(ctx.threads)  # its decoders' share too
        try:
            if on_partial is not None and plugin.manifest.streams:
                drain(plugin.stream(ctx, inputs, stage.operation), lambda part: on_partial(stage, _jsonable(part)))
            else:
                plugin.run(ctx, inputs, stage.operation)
            _check_written(ctx, stage)
        except BaseException:
            if cache and work_dir is not None:
                cache.abandon(work_dir)
            raise
        finally:
            stage_cores.reset(cores)
    data = ctx.kept or {}
    if cache is None:
        if ctx.written is not None:
            ctx.written._folder = ctx.made_dir  # made after the record was written, perhaps
        return Artifact(stage.output_type, ctx.made_dir, data, _record=ctx.written, scratch=True)
    describe = {"plugin": stage.plugin, "version": stage.version, "params": params, "input": job.source.digest}
    assert work_dir is not None
    try:
        entry = cache.commit(key, work_dir, data, describe, manifest.cache.invalidate_before, lease)
    except BaseException:
        cache.abandon(work_dir)  # its entry file did not fit, say: nothing half-made stays in the cache
        raise
    record = ctx.written
    assert record is not None
    if entry is None:  # not kept (larger than the cache, or a damaged entry still in use): this run only
        kept = job.scratch_dir() / stage.id
        shutil.move(work_dir, kept)
        record._folder = kept
        return Artifact(stage.output_type, kept, data, _record=record, scratch=True)
    # Consumers get the record in hand, not re-read from the entry it was just written to.
    record._folder = entry.path
    return Artifact(stage.output_type, entry.path, entry.data, _record=record)


def _preload(runtime: Runtime, job: Job) -> None:
    """On the job's first stage that computes (a cache miss), load the models of the stages
    not started yet in a background thread, in plan order (``Plugin.preload``). Measured on the
    10 s demo in a cold process: MiniLM's load and fusion's imports (~0.3 s) had run on the
    critical path at the end; ahead, they overlap the long stages. A run served from the cache
    loads nothing."""
    with job.lock:
        if job.preloading:
            return
        job.preloading = True
    plugins = {sid: runtime.registry.plugin(stage.plugin) for sid, stage in job.plan.stages.items()}
    ahead = [(sid, stage) for sid, stage in job.plan.stages.items() if type(plugins[sid]).preload is not Plugin.preload]
    if not ahead:  # no thread for a request with nothing to load ahead (a still's objects)
        return

    def load_ahead() -> None:
        for sid, stage in ahead:
            if sid in job.records or sid in job.artifacts:
                continue
            try:
                plugins[sid].preload(runtime.models, stage.operation)
            except Exception:  # noqa: BLE001 - the stage itself reports what went wrong
                log.debug("preloading %s failed", stage.label(), exc_info=True)

    threading.Thread(target=load_ahead, name="video-extract-preload", daemon=True).start()


def side_by_side(runtime: Runtime, job: Job, stage: Stage) -> int:
    """How many busy stages (this one included) may run at the same time as ``stage``: those not
    finished yet that neither feed it nor wait for it, a chain of them (vad, then transcription)
    counted once. Busy: a plugin that brings a library of its own (``imports``: a model
    runtime, a detector). 1 when stages run one at a time."""
    if not job.concurrent:
        return 1
    stages = job.plan.stages

    def closure(start: str, step) -> set[str]:
        seen: set[str] = set()
        todo = [start]
        while todo:
            for nxt in step(todo.pop()):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    related = closure(stage.id, lambda sid: stages[sid].upstream) | closure(stage.id, job.plan.dependents_of)
    with job.lock:
        finished = set(job.records)
    others = {sid for sid, s in stages.items() if sid != stage.id and sid not in related | finished and runtime.registry.manifests[s.plugin].imports}
    return 1 + sum(1 for sid in others if not closure(sid, job.plan.dependents_of) & others)


def _check_written(ctx: StageContext, stage: Stage) -> None:
    """A plugin's output is its record and the files its output type declares: all of them."""
    if ctx.written is None:
        raise OperationError(stage.plugin, f"plugin finished without writing its {stage.output_type} record (ctx.write)")
    required = [name for name in ctx.output.files if name not in ctx.output.optional_files]
    if ctx.in_memory:
        if not ctx.publishes:
            return  # nothing of it is published: its consumers read the record, and what they open is theirs to find
        required = [name for name in required if name != ctx.output.record_file]  # published from memory
        if required and ctx.made_dir is None:
            raise OperationError(stage.plugin, f"plugin did not write {', '.join(required)}, which {stage.output_type} declares")
    missing = [name for name in required if not (ctx.work_dir / name.rstrip("/")).exists()]
    if missing:
        raise OperationError(stage.plugin, f"plugin did not write {', '.join(missing)}, which {stage.output_type} declares")


def _jsonable(part: Any) -> dict:
    return part.model_dump(mode="json") if isinstance(part, Record) else part


def _publish(runtime: Runtime, job: Job, stage: Stage, artifact: Artifact, requested: list[str]) -> list[str]:
    files: list[str] = []
    if requested:
        claim_output_dir(job.out_dir, job.name)
        plugin = runtime.registry.plugin(stage.plugin)
        for path in plugin.publish(artifact, job.out_dir, job.source):
            rel = path.relative_to(job.out_dir).as_posix()
            files.append(rel + "/" if path.is_dir() else rel)
    elif job.save_intermediates:
        claim_output_dir(job.out_dir, job.name)
        index = list(job.plan.stages).index(stage.id) + 1
        dest = job.out_dir / "intermediates" / f"{index:02d}-{stage.plugin}-{stage.id[:6]}"
        publish_path(artifact.path, dest, link=artifact.scratch)
        files.append(dest.relative_to(job.out_dir).as_posix() + "/")
    job.published[stage.id] = files
    return files


def _record(
    job: Job, stage: Stage, status: str, requested: list[str], *, error: str | None = None, cached: bool = False, seconds: float = 0.0, files=()
) -> StageRecord:
    record = StageRecord(
        stage=stage.id,
        label=stage.label(),
        plugin=stage.plugin,
        status=status,
        cached=cached,
        seconds=round(seconds, 4),
        requested=requested,
        error=error,
    )
    with job.lock:
        if status != "ok":
            job.failures[stage.id] = error or status
        job.records[stage.id] = record
    return record


def finish(job: Job) -> FileResult:
    """Collect per-operation results and write ``summary.json`` last (it marks the directory complete)."""
    ops: dict[str, OpResult] = {}
    for op, why in job.plan.errors.items():
        ops[op] = OpResult(status="failed", error=why)
    for op, why in job.plan.skipped.items():
        ops[op] = OpResult(status="skipped", reason=why)
    for op, sid in job.plan.outputs.items():
        record = job.records.get(sid)
        kind = job.plan.stages[sid].output_type
        if record is None or record.status != "ok":
            ops[op] = OpResult(status="failed", type=kind, error=record.error if record else "did not run")
            continue
        artifact = job.artifacts[sid]
        ops[op] = OpResult(status="ok", type=kind, files=job.published.get(sid, []), seconds=record.seconds, cached=record.cached, data=artifact.data)
    ordered = {name: ops[name] for name in list(job.plan.outputs) + list(job.plan.skipped) + list(job.plan.errors) if name in ops}
    status = "failed" if any(op.status == "failed" for op in ordered.values()) else "ok"
    opened = job.opened
    remote = opened is not None and not opened.local
    result = FileResult(
        input=job.source.name,
        output_dir=str(job.out_dir),
        status=status,
        ops=ordered,
        stages=[job.records[sid] for sid in job.plan.stages if sid in job.records],
        seconds=round(time.perf_counter() - job.started, 4),
        digest=job.source.digest,
        request=job.request,
        input_size=job.source.stat[0],
        input_mtime_ns=None if remote else job.source.stat[1],  # a spool file's time says nothing of the source
        input_fingerprint=opened.fingerprint if remote and opened is not None else None,
    )
    writes = any(op.files for op in ordered.values()) or job.out_dir.exists()
    if writes:
        claim_output_dir(job.out_dir, job.name)
        remove_stale_temporaries(job.out_dir)
        # The folder holds what the summary lists, no more: what an earlier run published for an
        # operation that failed or was not asked for this time goes (the cache can bring it back).
        current = [f for op in ordered.values() if op.status == "ok" for f in op.files]
        current += [f for sid, files in job.published.items() if not job.plan.requested(sid) for f in files]  # intermediates
        removed = prune_outputs(job.out_dir, current)
        if removed:
            log.debug("%s: removed %s (not among this run's outputs)", show_path(job.out_dir), ", ".join(map(show_path, removed)))
    # Scratch and leases go first: the summary, written last, is the end of the file's work
    # (a CLI process exits right after it).
    job.release()
    if writes:
        write_summary(job.out_dir, result.model_dump(mode="json"))
    return result


def input_failure(input_path: object, error: VideoExtractError) -> FileResult:
    """The result for an input that could not even be opened: nothing is written for it."""
    return FileResult(input=display_name(input_path), output_dir=None, status="failed", error=error.message)


class Executor(ABC):
    """How stages are scheduled. Implementations: debug (sequential), perf (concurrent), bulk (many files)."""

    name = "abstract"

    def __init__(self, runtime: Runtime | None = None, save_intermediates: bool = False):
        self.runtime = runtime or Runtime()
        self.save_intermediates = save_intermediates

    @abstractmethod
    def run_file(
        self,
        input_path: object,
        specs: Sequence[OutputSpec | str],
        output_root: str | Path,
        batch: Iterable[InputLike] = (),
        format_hint: str | None = None,
        name: str | None = None,
    ) -> FileResult:
        """Process one input (a path, URL, bytes or binary stream: ``sources``), called ``name``
        in its results if given; raises InputError/UsageError only for what stops the whole file."""

    def run_files(
        self, inputs: Sequence[object], specs: Sequence[OutputSpec | str], output_root: str | Path, format_hint: str | None = None
    ) -> Iterator[FileResult]:
        """Process many inputs; one bad file is a failed result, never a stopped batch."""
        named = [input_name(p, format_hint) for p in inputs]
        batch = [n for n in named if n is not None]
        for path in inputs:
            try:
                yield self.run_file(path, specs, output_root, batch=batch, format_hint=format_hint)
            except VideoExtractError as exc:
                if exc.exit_code == 2:
                    raise
                yield input_failure(path, exc)
            except Exception as exc:  # noqa: BLE001 - one file's surprise must not end the others
                log.debug("unexpected failure on %s", display_name(path), exc_info=True)
                yield input_failure(path, VideoExtractError(f"internal error: {type(exc).__name__}: {exc}"))
