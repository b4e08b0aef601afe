"""Bulk mode: many files, maximum throughput, resumable.

One scheduler (``Scheduler``) owns the batch: the queue (longest file first), retries, timeouts
and resume. Where a file runs is an engine's business, behind a small protocol (``Engine``:
start, submit, poll, cancel, close): ``LocalEngine`` keeps N worker processes of its own,
``RayEngine`` (``ray_engine.py``) a pool of Ray actors across machines. Either way a worker
builds its Runtime once (plugins and their models stay loaded for every file it gets) and runs
the same per-file work (``FileWorker.process``); a worker that crashes or hangs past the
timeout is replaced and its file retried; one bad file is a failed row, never a stopped batch.

Resume: a file whose output folder holds a complete ``summary.json`` for the same request (and
whose size and mtime have not changed) is skipped; anything else runs again, and the stage cache
makes its finished stages instant. A batch killed with ``kill -9`` redoes only unfinished files.

Inputs may be URLs (``https://…``, ``s3://bucket/key``) and prefixes (``s3://bucket/videos/``,
listed like a folder). Workers get the URL and fetch it themselves (each Ray node downloads into
its own spool); a remote input is resumed when its fingerprint (ETag / Last-Modified / size) is
the one its summary recorded.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from multiprocessing.connection import wait as wait_any
from pathlib import Path, PurePosixPath
from typing import Literal, Protocol

from video_extract.errors import UsageError, VideoExtractError, show_path
from video_extract.exiting import exit_now
from video_extract.fsutil import real_path
from video_extract.outputs import (
    BATCH_SUMMARY_FILE,
    BATCH_SUMMARY_PARQUET,
    EXPORT_DIR,
    OWNER_FILE,
    RESERVED_NAMES,
    InputLike,
    atomic_write_json,
    atomic_write_with,
    ensure_output_root,
    folder_stem,
    output_dir_for,
    read_summary,
    utf8_text,
)
from video_extract.results import Record
from video_extract.sources import SourcePolicy, Sources, describe, display_name
from video_extract.spec import OutputSpec

log = logging.getLogger("video_extract")

MEDIA_EXTENSIONS = frozenset(
    ".mp4 .m4v .mov .mkv .webm .avi .wmv .flv .mpg .mpeg .ts .m2ts .mts .3gp .ogv .mxf .vob .dv "
    ".mp3 .m4a .aac .wav .flac .ogg .opus .wma .aiff .aif "
    ".jpg .jpeg .png .tif .tiff .webp .bmp .gif".split()
)


@dataclass
class Settings:
    """Everything a worker needs to build its Runtime (picklable, sent once per worker)."""

    cache_dir: str | None = None
    use_cache: bool = True
    models_dir: str | None = None
    cache_max_bytes: int | str | None = "default"  # None: no cap
    cache_verify: str | None = None
    threads: int | None = None  # decoder and model threads per worker (its share of the cores)
    max_pixels: int | None = None  # the pixel budget (0: none); None leaves the worker's environment's
    source_policy: SourcePolicy | None = None  # what workers may fetch (they download their own inputs)
    allow_any_model: bool = True  # False: catalog models and allowed_models only (a server's batches)
    allowed_models: tuple[str, ...] = ()
    model_memory_budget: int | str | None = None  # what the worker's warm models may take (None: its default)


class WorkerInfo(Record):
    pid: int
    host: str
    files: int  # files this worker has processed so far, this one included
    model_loads: dict[str, int] = {}
    node: str | None = None  # the Ray node


class BatchRow(Record):
    """One input of a batch, as ``batch_summary.json`` and ``.parquet`` list it."""

    input: str
    status: Literal["ok", "failed", "skipped"]  # skipped: finished before, for the same request (resume)
    ops: dict[str, str] = {}  # operation -> ok | failed | skipped
    skipped: dict[str, str] = {}  # operation -> why it does not apply to this file
    seconds: float = 0.0
    error: str | None = None
    output_dir: str | None = None
    attempts: int = 0
    worker: WorkerInfo | None = None
    started_at: float | None = None
    finished_at: float | None = None


@dataclass
class BatchInput:
    """One input of a batch (a local path or a URL) and what to make of it."""

    path: Path | str
    specs: list[OutputSpec]
    fingerprint: str | None = None  # a listed remote object's, when the listing gave one
    name: str | None = None  # what rows and outputs call it instead of its path (a server's upload)


@dataclass
class Found:
    """What a scan found: media to process, and files in the folders that are not media."""

    media: list[Path | str]
    not_media: list[Path | str] = field(default_factory=list)
    fingerprints: dict[str, str | None] = field(default_factory=dict)  # listed URL -> fingerprint


@dataclass
class Task:
    index: int
    input: str  # a path or a URL, as given (a URL may hold credentials: only workers see it)
    batch: list[str]  # other inputs sharing this one's stem (for collision-free folder names)
    specs: list[dict] = field(default_factory=list)  # what to make of this file
    size: int = 0
    attempts: int = 0
    display: str = ""  # how rows and messages show it (a URL without its secrets, or its ``name``)
    fingerprint: str | None = None
    name: str | None = None  # BatchInput.name: what the worker's outputs call it


# -- inputs ----------------------------------------------------------------------------------


def collect_inputs(
    paths: Sequence[str | Path] = (),
    input_list: str | Path | None = None,
    exclude: Sequence[Path] = (),
    sources: Sources | None = None,
    output_root: Path | None = None,
) -> Found:
    """Files or URLs named directly, listed in a text file (one per line, # comments; ``-``: stdin), or found in
    folders and URL prefixes (``s3://bucket/videos/``: every object under it, listed by ``sources``).

    In a folder or prefix, hidden files, ``exclude`` (the cache's folder) and what runs wrote in
    ``output_root`` (its inputs' folders, the export: not the user's own files there, as in
    ``bulk . -o .``) are left out, and a file without a media extension, or that is not a regular file (a FIFO, a socket),
    is not processed but reported (``Found.not_media``); a file named directly is always tried.
    A file found more than once (its path and a link to it) is one input.
    """
    found: list[tuple[Path | str, bool]] = []
    fingerprints: dict[str, str | None] = {}
    if input_list is not None:
        try:
            raw = sys.stdin.buffer.read() if str(input_list) == "-" else Path(input_list).read_bytes()  # `find … | bulk --input-list -`
        except OSError as exc:
            raise UsageError(f"cannot read input list: {exc.strerror or exc}", input_list) from None
        # Names as the file system gives them (a Latin-1 name stays that file's name, not an
        # internal error), after the byte-order mark a Windows editor puts first.
        lines = [os.fsdecode(line) for line in raw.removeprefix(b"\xef\xbb\xbf").splitlines()]
        found += [(_as_input(line.strip()), True) for line in lines if line.strip() and not line.lstrip().startswith("#")]
    excluded = [str(real_path(p)) for p in exclude]
    real = _RealPaths()
    written = _Written(output_root) if output_root is not None else None
    for given in paths:
        item = _as_input(given)
        if isinstance(item, str):
            sources = sources or Sources()
            if not sources.is_prefix(item):
                found.append((item, True))
                continue
            base = item.rstrip("/")
            for url, fingerprint in sources.listing(item):
                relative = url[len(base) :].strip("/").split("/") if url.startswith(base + "/") else [PurePosixPath(url).name]
                if any(part.startswith(".") for part in relative):
                    continue
                fingerprints[url] = fingerprint
                found.append((url, PurePosixPath(relative[-1]).suffix.lower() in MEDIA_EXTENSIONS))
            continue
        if not item.is_dir():
            found.append((item, True))
            continue
        for path in sorted(item.rglob("*")):
            relative = path.relative_to(item).parts
            if path.is_dir() or any(part.startswith(".") for part in relative):
                continue
            where = real(path)
            if any(where == e or where.startswith(e + os.sep) for e in excluded) or (written is not None and written.holds(where)):
                continue
            # A FIFO, socket or device (or a dangling link) is reported with what is not media,
            # never opened: reading a FIFO would wait for a writer forever.
            found.append((path, path.is_file() and path.suffix.lower() in MEDIA_EXTENSIONS))
    # One file named twice (``in/a.mp4`` and its absolute path, a link to it) runs once, under
    # the name it was first given: two workers would otherwise write its one folder at once.
    # Named directly as well as found in a folder, it is tried (as a file named directly is).
    unique: dict[Path | str, bool] = {}
    first: dict[str, Path | str] = {}
    for item, is_media in found:
        name = first.setdefault(real(item) if isinstance(item, Path) else item, item)
        unique[name] = unique.get(name, False) or is_media
    media = [path for path, is_media in unique.items() if is_media]
    if not media:
        raise UsageError("no input files: give files, a folder of media, a URL prefix, or --input-list")
    return Found(
        media=media,
        not_media=[path for path, is_media in unique.items() if not is_media],
        fingerprints={url: fp for url, fp in fingerprints.items() if url in unique},
    )


class _Written:
    """What runs wrote under an output folder: its inputs' folders (they hold an owner file) and
    the export. Its other files are the user's: ``bulk . -o .`` found no input at all, the whole
    folder being left out."""

    def __init__(self, root: Path):
        self.root = str(real_path(root))
        self._ours: dict[str, bool] = {}

    def holds(self, where: str) -> bool:
        if not where.startswith(self.root + os.sep):
            return False
        top, _, rest = where[len(self.root) + 1 :].partition(os.sep)
        if not rest:
            return top.casefold() in RESERVED_NAMES  # the batch summary; any other file at the top is a user's
        ours = self._ours.get(top)
        if ours is None:
            ours = self._ours[top] = top.casefold() == EXPORT_DIR or os.path.isfile(os.path.join(self.root, top, OWNER_FILE))
        return ours


class _RealPaths:
    """``real_path`` of many files, each folder resolved once: a scan of 20 000 files five folders
    deep made 480 000 lstat calls (2.5 s) for what a file's folder and one lstat of it say."""

    def __init__(self) -> None:
        self._folders: dict[Path, str] = {}
        self._files: dict[Path, str] = {}

    def __call__(self, path: Path) -> str:
        known = self._files.get(path)
        if known is not None:
            return known
        if path.name in ("", ".", "..") or path.is_symlink():
            found = str(real_path(path))
        else:
            folder = self._folders.get(path.parent)
            if folder is None:
                folder = self._folders[path.parent] = str(real_path(path.parent))
            found = os.path.join(folder, path.name)
        self._files[path] = found
        return found


def _as_input(given: str | Path) -> Path | str:
    """A local path as a Path; a URL kept as the string it is (a Path would collapse its ``//``)."""
    described = describe(given)
    return described.path if described.path is not None else str(given)


def _name(source: str | Path) -> InputLike:
    from video_extract.executors.base import input_name

    return input_name(source) or Path(source)


def make_tasks(inputs: Sequence[BatchInput]) -> list[Task]:
    """Tasks, longest first (by size) so a big file does not start last and stretch the batch."""
    by_stem: dict[str, list[str]] = defaultdict(list)
    for item in inputs:
        by_stem[folder_stem(_name(item.path))].append(str(item.path))
    tasks = []
    for index, item in enumerate(inputs):
        try:
            size = item.path.stat().st_size if isinstance(item.path, Path) else 0
        except OSError:
            size = 0
        siblings = by_stem[folder_stem(_name(item.path))]
        tasks.append(
            Task(
                index=index,
                input=str(item.path),
                batch=siblings if len(siblings) > 1 else [],
                specs=[s.to_dict() for s in item.specs],
                size=size,
                display=item.name or display_name(item.path),
                fingerprint=item.fingerprint,
                name=item.name,
            )
        )
    return sorted(tasks, key=lambda t: (-t.size, t.index))


def already_done(task: Task, output_root: Path, sources: Sources | None = None) -> BatchRow | None:
    """The row of a finished, settled run of the same request on this input, if there is one:
    a local file of the same size and mtime, a remote object with the same fingerprint."""
    from video_extract.executors.base import request_key

    name = _name(task.input)
    shown = task.name or display_name(task.input)
    summary = read_summary(output_dir_for(output_root, name, [_name(p) for p in task.batch]))
    if not summary or summary.get("status") != "ok" or summary.get("request") != request_key(task.specs) or summary.get("input") != shown:
        return None
    if isinstance(name, Path):
        try:
            st = name.stat()
        except OSError:
            return None
        if (summary.get("input_size"), summary.get("input_mtime_ns")) != (st.st_size, st.st_mtime_ns):
            return None  # the file changed since: do it again
    else:
        recorded = summary.get("input_fingerprint")
        if not recorded:
            return None  # its server gave no ETag or Last-Modified: nothing says it is unchanged
        if task.fingerprint is None:
            try:
                task.fingerprint = (sources or Sources()).fingerprint(task.input)
            except VideoExtractError:
                return None  # gone or unreachable now: the worker will say so
        if task.fingerprint != recorded:
            return None  # the object changed since: do it again
    ops = summary.get("ops", {})
    return BatchRow(
        input=shown,
        status="skipped",
        ops={op: r["status"] for op, r in ops.items()},
        skipped={op: r.get("reason") or "" for op, r in ops.items() if r["status"] == "skipped"},
        output_dir=summary.get("output_dir"),
    )


# -- the per-file work (runs inside a worker process or a Ray actor) --------------------------


class FileWorker:
    """Holds one Runtime for its whole life: plugins and models load once, for every file."""

    def __init__(self, settings: Settings):
        from video_extract.executors.base import Runtime
        from video_extract.executors.debug import DebugExecutor

        logging.getLogger("video_extract").setLevel(logging.WARNING)
        if settings.threads:
            # Workers are the parallelism: each decodes and infers with its share of the cores.
            os.environ["VIDEO_EXTRACT_DECODE_THREADS"] = str(settings.threads)
            os.environ["VIDEO_EXTRACT_MODEL_THREADS"] = str(settings.threads)
        self.runtime = Runtime(
            cache_dir=settings.cache_dir,
            use_cache=settings.use_cache,
            models_dir=settings.models_dir,
            cache_max_bytes=settings.cache_max_bytes,
            cache_verify=settings.cache_verify,
            max_pixels=settings.max_pixels,
            source_policy=settings.source_policy,
            allow_any_model=settings.allow_any_model,
            allowed_models=settings.allowed_models,
            model_memory_budget=settings.model_memory_budget,
        )
        self.executor = DebugExecutor(self.runtime)
        self.files_done = 0

    def process(self, input_path: str, specs: list[dict], output_root: str, batch: list[str], name: str | None = None) -> BatchRow:
        from video_extract.models import load_counts

        started = time.perf_counter()
        began_at = time.time()
        shown = name or display_name(input_path)
        try:
            try:
                outputs = [OutputSpec.of(s) for s in specs]
            except VideoExtractError as exc:
                # the driver read this request: a worker that cannot lacks what the driver has
                # (a plugin installed on one node of a Ray cluster and not on this one)
                raise VideoExtractError(f"this worker cannot read the request ({exc.message}); is its installation the same as the driver's?") from None
            result = self.executor.run_file(input_path, outputs, output_root, batch=[_name(p) for p in batch], name=name)
            row = BatchRow(
                input=result.input,
                status=result.status,
                ops={op: r.status for op, r in result.ops.items()},
                skipped=result.skipped(),
                error="; ".join(f"{op}: {r.error}" for op, r in result.ops.items() if r.error) or None,
                output_dir=result.output_dir,
            )
        except VideoExtractError as exc:
            row = BatchRow(input=shown, status="failed", error=exc.message)
        except Exception as exc:  # noqa: BLE001 - a bug on one file must not kill the worker
            log.debug("unexpected failure on %s", shown, exc_info=True)
            row = BatchRow(input=shown, status="failed", error=f"internal error: {type(exc).__name__}: {exc}")
        self.files_done += 1
        row.seconds = round(time.perf_counter() - started, 4)
        row.started_at = round(began_at, 4)
        row.finished_at = round(time.time(), 4)
        row.worker = WorkerInfo(pid=os.getpid(), host=os.uname().nodename, files=self.files_done, model_loads={repr(k): v for k, v in load_counts.items()})
        return row


# -- the scheduler, and the engines it drives -----------------------------------------------------

Report = Callable[[BatchRow], None]


class Requeued(str):
    """Why a task was handed back without using a retry: its worker was lost while holding it
    queued behind another file, or without telling which of its files was running. It goes
    first in line again, its attempt not counted."""


#: What ``Engine.poll`` returns for a finished task: its row, or why its worker was lost.
Outcome = tuple[Task, "BatchRow | str"]


class Engine(Protocol):
    """Where files run. The scheduler decides what runs when; an engine only runs it."""

    name: str

    def start(self, tasks: Sequence[Task], timed: bool = False) -> None:
        """Start workers for a batch of these tasks (at most one per task). ``timed``: files have
        a timeout, counted from their hand-over, so none may wait queued behind another."""

    def idle(self) -> int:
        """Files the workers can take now."""

    def submit(self, task: Task, output_root: Path) -> None:
        """Hand a file to an idle worker."""

    def poll(self, timeout: float) -> list[Outcome]:
        """Wait up to ``timeout`` s; the tasks that finished (a row) or lost their worker (why).
        A lost worker is replaced by the engine."""

    def cancel(self, task: Task) -> None:
        """Stop the worker running ``task`` (it hangs) and start another in its place."""

    def close(self) -> None:
        """Stop every worker."""


class Scheduler:
    """Keeps every worker fed, longest file first; retries a file whose worker crashed or timed
    out (first in line), then records it as failed."""

    def __init__(self, engine: Engine, retries: int = 1, timeout: float | None = None):
        self.engine = engine
        self.retries = retries
        self.timeout = timeout

    def run(self, tasks: list[Task], output_root: Path, report: Report) -> None:
        pending = list(tasks)
        running: dict[int, tuple[Task, float]] = {}
        self.engine.start(tasks, timed=self.timeout is not None)
        try:
            while pending or running:
                while pending and self.engine.idle():
                    task = pending.pop(0)
                    task.attempts += 1
                    self.engine.submit(task, output_root)
                    running[task.index] = (task, time.monotonic())
                for task, outcome in self.engine.poll(self._interval()):
                    running.pop(task.index, None)
                    if isinstance(outcome, Requeued):
                        log.debug("%s: %s; queued again", show_path(task.display or task.input), outcome)
                        task.attempts -= 1
                        pending.insert(0, task)
                    elif isinstance(outcome, BatchRow):
                        outcome.attempts = task.attempts
                        report(outcome)
                    else:
                        self._retry_or_fail(task, outcome, pending, report)
                if self.timeout is not None:
                    now = time.monotonic()
                    for index, (task, began) in list(running.items()):
                        if now - began > self.timeout:
                            del running[index]
                            self.engine.cancel(task)
                            self._retry_or_fail(task, f"timed out after {self.timeout:g} s (worker killed)", pending, report)
        finally:
            self.engine.close()

    def _interval(self) -> float:
        return 0.5 if self.timeout is None else min(0.5, max(0.05, self.timeout / 10))

    def _retry_or_fail(self, task: Task, why: str, pending: list[Task], report: Report) -> None:
        if task.attempts <= self.retries:
            log.warning("%s: %s; retrying (attempt %d of %d)", show_path(task.display or task.input), why, task.attempts + 1, self.retries + 1)
            pending.insert(0, task)
        else:
            report(BatchRow(input=task.display or task.input, status="failed", error=why, attempts=task.attempts))


def _worker_main(conn, settings: Settings) -> None:
    """A local worker process: build the FileWorker once, then take one file at a time. Told to
    stop, it ends at once (``exit_now``): its files are all written, and the interpreter's
    teardown of the model runtimes took ~0.15 s a worker at the end of every bulk command."""
    try:
        worker = FileWorker(settings)
        conn.send(("ready", os.getpid()))
        while True:
            message = conn.recv()
            if message is None:
                exit_now(0)
            conn.send(("result", worker.process(*message)))  # input, specs, output root, batch, name
    except (EOFError, KeyboardInterrupt, BrokenPipeError):
        return


class LocalEngine:
    """N worker processes on this machine, replaced when they crash or are cancelled."""

    name = "local"

    def __init__(self, workers: int, settings: Settings):
        self.workers = max(1, workers)
        self.settings = settings if settings.threads else replace(settings, threads=max(1, (os.cpu_count() or 1) // self.workers))
        # spawn: forking a process that holds onnxruntime/torch thread pools is unsafe.
        self.context = multiprocessing.get_context("spawn")
        self.pool: list[_LocalWorker] = []
        self.early_deaths = 0

    def _spawn(self) -> _LocalWorker:
        parent, child = self.context.Pipe()
        process = self.context.Process(target=_worker_main, args=(child, self.settings), daemon=True, name="video-extract-worker")
        process.start()
        child.close()
        return _LocalWorker(process, parent)

    def start(self, tasks: Sequence[Task], timed: bool = False) -> None:
        self.pool = [self._spawn() for _ in range(min(self.workers, len(tasks)))]

    def idle(self) -> int:
        return sum(1 for w in self.pool if w.ready and w.task is None)

    def submit(self, task: Task, output_root: Path) -> None:
        worker = next(w for w in self.pool if w.ready and w.task is None)
        worker.assign(task, output_root)

    def poll(self, timeout: float) -> list[Outcome]:
        wait_any([w.conn for w in self.pool] + [w.process.sentinel for w in self.pool], timeout=timeout)
        outcomes: list[Outcome] = []
        for n, worker in enumerate(self.pool):
            kind = worker.poll()
            if kind == "result":
                task, row = worker.take_result()
                outcomes.append((task, row))
            elif kind == "crashed":
                why = worker.exit_reason()
                if not worker.ready:
                    self.early_deaths += 1
                    if self.early_deaths > 3 * self.workers:
                        raise VideoExtractError(
                            f"bulk workers keep dying before taking any file ({why}); run one file with `video-extract debug -v` to see why"
                        )
                worker.kill()
                self.pool[n] = self._spawn()
                if worker.task is not None:
                    outcomes.append((worker.task, why))
        return outcomes

    def cancel(self, task: Task) -> None:
        for n, worker in enumerate(self.pool):
            if worker.task is task:
                worker.kill()
                self.pool[n] = self._spawn()

    def close(self) -> None:
        for worker in self.pool:  # all told first: they end side by side
            worker.ask_to_stop()
        for worker in self.pool:
            worker.stop()


class _LocalWorker:
    def __init__(self, process, conn):
        self.process = process
        self.conn = conn
        self.ready = False
        self.task: Task | None = None
        self._row: BatchRow | None = None

    def assign(self, task: Task, output_root: Path) -> None:
        self.task = task
        self.conn.send((task.input, task.specs, str(output_root), task.batch, task.name))

    def poll(self) -> str | None:
        """What happened since the last look: None, 'result' or 'crashed'."""
        try:
            while self.conn.poll():
                kind, payload = self.conn.recv()
                if kind == "ready":
                    self.ready = True
                elif kind == "result":
                    self._row = payload
                    return "result"
        except (EOFError, OSError):
            return "crashed"
        if not self.process.is_alive():
            return "crashed"
        return None

    def take_result(self) -> tuple[Task, BatchRow]:
        assert self.task is not None and self._row is not None
        done = (self.task, self._row)
        self._row, self.task = None, None
        return done

    def exit_reason(self) -> str:
        self.process.join(timeout=2)  # its pipe closes before the OS has reaped it: wait for the exit code
        code = self.process.exitcode
        return f"worker crashed (exit code {code})" if code is not None else "worker crashed"

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(timeout=5)
        self.conn.close()

    def ask_to_stop(self) -> None:
        try:
            self.conn.send(None)
        except (OSError, BrokenPipeError):
            pass

    def stop(self) -> None:
        """Wait for the worker to end once asked (``ask_to_stop``); killed after 5 s."""
        self.process.join(timeout=5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(timeout=5)


# -- the batch ---------------------------------------------------------------------------------


@dataclass
class BatchResult:
    rows: list[BatchRow]
    seconds: float
    summary_path: Path
    not_media: list[str] = field(default_factory=list)  # files in the folders that are not media
    exports: list = field(default_factory=list)  # video_extract.exports.ExportResult, one per --export format

    @property
    def failed(self) -> int:
        return sum(1 for r in self.rows if r.status == "failed")


def run_batch(
    inputs: Sequence[BatchInput],
    output_root: Path,
    engine: Engine,
    retries: int = 1,
    timeout: float | None = None,
    progress=None,
    not_media: Sequence[Path | str] = (),
    sources: Sources | None = None,
) -> BatchResult:
    """Run every input through ``engine``; write batch_summary.json (+ .parquet); skip finished files.

    ``not_media``: files a folder scan found that are not media, listed in the summary.
    ``sources``: how a remote input's fingerprint is asked, to resume it (the client's policy).
    """
    started = time.perf_counter()
    ensure_output_root(output_root)
    output_root.mkdir(parents=True, exist_ok=True)
    if not_media:
        shown = ", ".join(show_path(_last_name(p)) for p in not_media[:3]) + (", …" if len(not_media) > 3 else "")
        log.warning(
            "%d file(s) in the folders are not media (by extension), or not regular files (a FIFO, a broken link), and are not processed: %s (all in batch_summary.json)",
            len(not_media),
            shown,
        )
    rows: dict[str, BatchRow] = {}
    tasks = []
    for task in make_tasks(inputs):
        done = already_done(task, output_root, sources)
        if done is not None:
            rows[task.display] = done
        else:
            tasks.append(task)
    if progress is not None:
        progress.start(total=len(inputs), skipped=len(rows))

    def report(row: BatchRow) -> None:
        rows[row.input] = row
        if row.status == "failed":
            log.error("%s: %s", show_path(row.input), row.error)
        if progress is not None:
            progress.advance(row)

    try:
        if tasks:
            Scheduler(engine, retries=retries, timeout=timeout).run(tasks, output_root, report)
    finally:
        # Also when interrupted (Ctrl-C): the summary then lists what finished so far.
        if progress is not None:
            progress.stop()
        shown = [i.name or display_name(i.path) for i in inputs]
        ordered = [rows[s] for s in dict.fromkeys(shown) if s in rows]
        seconds = time.perf_counter() - started
        summary_path = write_batch_summary(output_root, ordered, seconds, engine.name, not_media)
    return BatchResult(ordered, seconds, summary_path, [display_name(p) for p in not_media])


def _last_name(source: Path | str) -> str:
    return source.name if isinstance(source, Path) else PurePosixPath(display_name(source).split("?", 1)[0]).name


def write_batch_summary(output_root: Path, rows: list[BatchRow], seconds: float, engine: str, not_media: Sequence[Path | str] = ()) -> Path:
    processed = [r for r in rows if r.status != "skipped"]
    totals = {
        "files": len(rows),
        "ok": sum(r.status == "ok" for r in rows),
        "failed": sum(r.status == "failed" for r in rows),
        "skipped": sum(r.status == "skipped" for r in rows),
        "seconds": round(seconds, 3),
        "files_per_second": round(len(processed) / seconds, 3) if seconds > 0 else None,
        "engine": engine,
        "not_media": len(not_media),
    }
    path = output_root / BATCH_SUMMARY_FILE
    atomic_write_json(path, {"files": [r.model_dump(mode="json") for r in rows], "not_media": [display_name(p) for p in not_media], "totals": totals})
    _write_parquet(output_root / BATCH_SUMMARY_PARQUET, rows)
    return path


def _write_parquet(path: Path, rows: list[BatchRow]) -> None:
    """batch_summary.json's rows as a table, its columns built by Arrow's JSON reader from one
    JSON line per row: built from Python lists (``pa.table``), pyarrow imports pandas to look for
    pandas types, 0.18 s at the end of every bulk command. The schema is fixed, so a column
    with no value in a batch (no errors) has its type all the same."""
    import json

    import pyarrow as pa
    import pyarrow.json as pa_json
    import pyarrow.parquet as pq

    texts, names = pa.string(), pa.list_(pa.string())
    schema = pa.schema(
        [
            ("input", texts),
            ("status", texts),
            ("ops", names),
            ("failed_ops", names),
            ("skipped_ops", names),
            ("seconds", pa.float64()),
            ("error", texts),
            ("output_dir", texts),
            ("attempts", pa.int64()),
            ("worker_pid", pa.int64()),
            ("worker_host", texts),
        ]
    )
    lines = "\n".join(
        json.dumps(
            {
                "input": utf8_text(r.input),
                "status": r.status,
                "ops": sorted(r.ops),
                "failed_ops": sorted(op for op, s in r.ops.items() if s == "failed"),
                "skipped_ops": sorted(r.skipped),
                "seconds": float(r.seconds),
                "error": _maybe(r.error),
                "output_dir": _maybe(r.output_dir),
                "attempts": int(r.attempts),
                "worker_pid": r.worker.pid if r.worker else None,
                "worker_host": utf8_text(r.worker.host) if r.worker else None,
            }
        )
        for r in rows
    ).encode()
    if lines:
        block = pa_json.ReadOptions(use_threads=False, block_size=max(1 << 20, len(lines) + 1))  # one block: no row straddles two
        table = pa_json.read_json(pa.BufferReader(lines), read_options=block, parse_options=pa_json.ParseOptions(explicit_schema=schema))
    else:
        table = schema.empty_table()
    atomic_write_with(path, lambda tmp: pq.write_table(table, tmp))


def _maybe(text: str | None) -> str | None:
    return None if text is None else utf8_text(text)


def default_workers() -> int:
    return max(1, os.cpu_count() or 1)
