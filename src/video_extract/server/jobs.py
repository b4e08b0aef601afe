"""Jobs, batches and uploads: what the server keeps between requests, and the pool that runs them.

A job is one source through ``Client.execute_streaming`` on a bounded pool of threads that
share one long-lived ``Client`` (its plugins keep their models loaded). Every event is recorded,
server paths replaced by links, so a listener that comes late replays the job from its start
and then follows it live. A batch is ``Client.execute_bulk`` over many sources, on the same
pool. Finished jobs, batches and unused uploads are removed after their TTL, files included.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import math
import os
import secrets
import shutil
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from video_extract.errors import VideoExtractError
from video_extract.events import CompleteEvent, DoneEvent, ErrorEvent, Event, ProgressEvent, input_failed
from video_extract.results import FileResult
from video_extract.sources import is_url

from .api import TERMINAL, BatchProgress
from .settings import ServerSettings

log = logging.getLogger("video_extract")

URL_SCHEMES = ("http", "https", "s3")


class ApiError(Exception):
    """A request the server refuses: its status code and a one-line reason."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def new_id() -> str:
    return secrets.token_hex(12)


# -- events -----------------------------------------------------------------------------------


class EventLog:
    """A task's events as JSON lines, kept for replay; listeners on the event loop are woken as lines arrive."""

    def __init__(self) -> None:
        self._lines: list[tuple[str, str]] = []  # (event type, JSON line)
        self._closed = False
        self._lock = threading.Lock()
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []

    def append(self, kind: str, line: str) -> None:
        with self._lock:
            self._lines.append((kind, line))
            self._wake()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._wake()

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for loop, event in waiters:
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:  # that listener's loop is gone (the server is stopping)
                pass

    def __len__(self) -> int:
        return len(self._lines)

    async def follow(self, start: int = 0, heartbeat: float | None = None) -> AsyncIterator[tuple[int, str, str] | None]:
        """(index, type, line) for every event from ``start``, then live ones until the task ends;
        None every ``heartbeat`` seconds of silence (for a keep-alive comment)."""
        loop = asyncio.get_running_loop()
        index = start
        while True:
            wake = asyncio.Event()
            with self._lock:
                new = self._lines[index:]
                closed = self._closed
                if not new and not closed:
                    self._waiters.append((loop, wake))
            for kind, line in new:
                yield index, kind, line
                index += 1
            if new:
                continue
            if closed:
                return
            try:
                await asyncio.wait_for(wake.wait(), heartbeat)
            except TimeoutError:
                yield None


# -- tasks ------------------------------------------------------------------------------------


@dataclass
class Source:
    """A source resolved for the Client: what to pass (``arg``) and how the client named it (``public``)."""

    arg: str
    public: str
    upload: Upload | None = None

    @property
    def name(self) -> str | None:
        """What its outputs call it: an upload or a path as the client gave it; a URL by the
        Client's own naming, which drops the credentials and query secrets it may hold."""
        return None if is_url(self.arg) else self.public


@dataclass
class Task:
    id: str
    kind: str  # "job" or "batch"
    dir: Path
    ops: list[str]
    specs: list
    links_root: str  # URL prefix of this task's files
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    state: str = "queued"
    error: str | None = None
    cancel: threading.Event = field(default_factory=threading.Event)
    log: EventLog = field(default_factory=EventLog)
    finished_at: float | None = None  # monotonic, for the TTL

    @property
    def seconds(self) -> float | None:
        if self.started is None:
            return None
        return round((self.finished or time.time()) - self.started, 3)

    def link(self, path: str | Path) -> str:
        """The URL of a file this task wrote (given by its server path)."""
        rel = Path(path).relative_to(self.dir).as_posix()
        return self.links_root + quote(rel if rel != "." else "")

    def scrub(self, text: str) -> str:
        """Server paths in a message replaced by what the client knows (its source name, file links)."""
        return text.replace(str(self.dir) + os.sep, "").replace(str(self.dir), "")


@dataclass
class Job(Task):
    source: Source | None = None
    format_hint: str | None = None
    result: FileResult | None = None

    def scrub(self, text: str) -> str:
        assert self.source is not None
        return super().scrub(text.replace(self.source.arg, self.source.public))

    def public_event(self, event: Event) -> Event:
        assert self.source is not None
        if isinstance(event, CompleteEvent):
            return event.model_copy(update={"path": self.link(event.path)})
        if isinstance(event, DoneEvent):
            return event.model_copy(update={"input": self.source.public, "output_dir": self.link(event.output_dir) if event.output_dir else None})
        if isinstance(event, ErrorEvent):
            return event.model_copy(update={"error": self.scrub(event.error), "input": self.source.public if event.input else None})
        return event

    def public_result(self) -> FileResult | None:
        if self.result is None:
            return None
        data = json.loads(self.scrub(self.result.model_dump_json()))
        data["input"] = self.source.public if self.source else data["input"]
        data["output_dir"] = self.link(self.result.output_dir) if self.result.output_dir else None
        return FileResult.model_validate(data)


@dataclass(frozen=True)
class Export:
    """The datasets a batch asks for (``bulk --export``), written once its files are done."""

    formats: tuple[str, ...]
    shard_size: int = 1000
    audio: bool = False


@dataclass
class Batch(Task):
    sources: list[Source] = field(default_factory=list)
    workers: int | None = None
    progress: BatchProgress = field(default_factory=BatchProgress)
    summary: dict | None = None
    export: Export | None = None
    exports: list[dict] = field(default_factory=list)  # api.BatchExport's fields, once written

    def scrub(self, text: str) -> str:
        for source in self.sources:
            text = text.replace(source.arg, source.public)
        return super().scrub(text)

    def public_exports(self, results: list) -> list[dict]:
        """``exports.ExportResult``s as the client sees them: file links, its own source names."""
        return [
            {
                "format": r.format,
                "files": r.files,
                "counts": r.counts,
                "left_out": [{"input": self.scrub(o.input), "reason": self.scrub(o.reason)} for o in r.left_out],
                "links": [self.link(p) for p in sorted(r.path.rglob("*")) if p.is_file()],
            }
            for r in results
        ]

    def public_summary(self, summary: dict) -> dict:
        rows = summary.get("files", [])
        for row in rows:
            if row.get("output_dir"):
                row["output_dir"] = self.link(row["output_dir"])
        return json.loads(self.scrub(json.dumps(summary)))


# -- uploads ----------------------------------------------------------------------------------


@dataclass
class Upload:
    id: str
    filename: str
    path: Path
    size: int
    digest: str
    created: float = field(default_factory=time.monotonic)
    last_used: float = field(default_factory=time.monotonic)
    users: int = 0  # queued or running tasks reading it: never removed under them


def safe_filename(name: str | None) -> str:
    """A client's file name reduced to one harmless path component (letters, digits, ``._-``)."""
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1].strip()
    cleaned = "".join(c if c.isascii() and (c.isalnum() or c in "._-") else "_" for c in base)[-120:].lstrip(".")
    return cleaned or "upload"


# -- the pool ---------------------------------------------------------------------------------


class QueueFull(Exception):
    def __init__(self, retry_after: int):
        super().__init__(f"the server is busy: {retry_after} s")
        self.retry_after = retry_after


class Pool:
    """``size`` threads run tasks; at most ``max_queue`` wait; a task beyond that is refused."""

    def __init__(self, size: int, max_queue: int, run: Callable[[Task], None]):
        self.size, self.max_queue, self._run = size, max_queue, run
        self._queue: deque[Task] = deque()
        self._cond = threading.Condition()
        self.running = 0
        self._stopping = False
        self._mean_seconds = 5.0  # a moving average of task durations, for Retry-After
        self._threads = [threading.Thread(target=self._loop, name=f"video-extract-job-{n}", daemon=True) for n in range(size)]
        for thread in self._threads:
            thread.start()

    @property
    def queued(self) -> int:
        return len(self._queue)

    def full(self) -> bool:
        return len(self._queue) + self.running >= self.size + self.max_queue

    def submit(self, task: Task) -> None:
        with self._cond:
            if self._stopping or self.full():
                raise QueueFull(self.retry_after())
            self._queue.append(task)
            self._cond.notify()

    def retry_after(self) -> int:
        """Seconds until a slot is likely free: the queue ahead, worked off at the average pace."""
        waves = (len(self._queue) + 1) / self.size
        return max(1, min(300, math.ceil(self._mean_seconds * waves)))

    def remove(self, task: Task) -> bool:
        with self._cond:
            try:
                self._queue.remove(task)
                return True
            except ValueError:
                return False

    def position(self, task: Task) -> int | None:
        with self._cond:
            try:
                return self._queue.index(task)
            except ValueError:
                return None

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
                task = self._queue.popleft()
                self.running += 1
            began = time.monotonic()
            try:
                self._run(task)
            finally:
                with self._cond:
                    self.running -= 1
                    self._mean_seconds = 0.8 * self._mean_seconds + 0.2 * (time.monotonic() - began)

    def stop(self, timeout: float = 10.0) -> None:
        with self._cond:
            self._stopping = True
            waiting, self._queue = list(self._queue), deque()
            self._cond.notify_all()
        for task in waiting:
            task.cancel.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))


# -- the manager ------------------------------------------------------------------------------


class Manager:
    """Everything stateful: uploads, jobs and batches, the pool, the janitor."""

    def __init__(self, settings: ServerSettings, client, metrics=None):
        self.settings = settings
        self.client = client
        self.metrics = metrics
        root = settings.output_dir
        self.jobs_dir, self.batches_dir, self.uploads_dir = root / "jobs", root / "batches", root / "uploads"
        self.uploads: dict[str, Upload] = {}
        self.tasks: dict[str, Task] = {}
        self._lock = threading.Lock()
        self.pool: Pool | None = None
        self._stop = threading.Event()
        self._janitor: threading.Thread | None = None

    def start(self) -> None:
        for folder in (self.jobs_dir, self.batches_dir, self.uploads_dir):
            folder.mkdir(parents=True, exist_ok=True)
        self.pool = Pool(self.settings.max_concurrent_jobs, self.settings.max_queue, self._run)
        self._janitor = threading.Thread(target=self._sweep_forever, name="video-extract-janitor", daemon=True)
        self._janitor.start()

    def stop(self) -> None:
        self._stop.set()
        for task in list(self.tasks.values()):
            if task.state == "running":
                task.cancel.set()
        if self.pool is not None:
            self.pool.stop()
        for task in list(self.tasks.values()):
            if task.state == "queued":
                self._end_unrun(task, "the server stopped before it ran")

    # -- uploads --

    def new_upload_path(self, filename: str) -> tuple[str, Path]:
        upload_id = new_id()
        folder = self.uploads_dir / upload_id
        folder.mkdir(parents=True)
        return upload_id, folder / filename

    def add_upload(self, upload: Upload) -> None:
        with self._lock:
            self.uploads[upload.id] = upload
        if self.metrics is not None:
            self.metrics.upload_bytes.inc(upload.size)

    def _take_upload(self, upload_id: str) -> Upload:
        with self._lock:
            upload = self.uploads.get(upload_id)
            if upload is None:
                raise ApiError(422, f"source: no upload {upload_id!r} (unknown, or removed after {self.settings.upload_ttl:g} s unused)")
            upload.users += 1
            upload.last_used = time.monotonic()
            return upload

    def release(self, sources: list[Source]) -> None:
        """The uploads among ``sources`` are no longer needed by the task that resolved them."""
        with self._lock:
            for source in sources:
                if source.upload is not None:
                    source.upload.users -= 1
                    source.upload.last_used = time.monotonic()

    # -- sources --

    def resolve(self, source) -> Source:
        """A request's source as the Client takes it, or ApiError: unknown upload, path outside the roots, bad URL."""
        if getattr(source, "upload", None) is not None:
            upload = self._take_upload(source.upload)
            return Source(arg=str(upload.path), public=upload.filename, upload=upload)
        if getattr(source, "path", None) is not None:
            return Source(arg=self._allowed_path(source.path), public=source.path)
        url = source.url
        scheme = url.split("://", 1)[0].lower() if "://" in url else ""
        if scheme not in URL_SCHEMES:
            raise ApiError(422, f"source: {url!r} is not an http(s):// or s3:// URL")
        return Source(arg=url, public=url)

    def _allowed_path(self, text: str) -> str:
        roots = self.settings.allow_roots
        if not roots:
            raise ApiError(403, "source: path sources are disabled on this server (it has no --allow-root); upload the file or give a URL")
        if "\x00" in text or not os.path.isabs(text):
            raise ApiError(422, f"source: path must be absolute, got {text!r}")
        real = Path(os.path.realpath(text))  # '..' and symbolic links resolved before the check
        if not any(real.is_relative_to(root) for root in roots):
            raise ApiError(403, f"source: {text!r} is outside the directories this server reads (--allow-root)")
        if not real.exists():
            raise ApiError(422, f"source: {text}: file not found")
        if not real.is_file():
            raise ApiError(422, f"source: {text}: not a regular file")
        return str(real)

    # -- jobs and batches --

    def submit_job(self, source: Source, specs: list, format_hint: str | None) -> Job:
        job_id = new_id()
        job = Job(
            id=job_id,
            kind="job",
            dir=self.jobs_dir / job_id,
            ops=[str(s.operation) for s in specs],
            specs=specs,
            links_root=f"{self.settings.root_path}/v1/jobs/{job_id}/files/",
            source=source,
            format_hint=format_hint,
        )
        self._submit(job, [source])
        return job

    def submit_batch(self, sources: list[Source], specs: list, workers: int | None, export: Export | None = None) -> Batch:
        batch_id = new_id()
        batch = Batch(
            id=batch_id,
            kind="batch",
            dir=self.batches_dir / batch_id,
            ops=[str(s.operation) for s in specs],
            specs=specs,
            links_root=f"{self.settings.root_path}/v1/batches/{batch_id}/files/",
            sources=sources,
            workers=workers,
            export=export,
        )
        batch.progress.total = len(sources)
        self._submit(batch, sources)
        return batch

    def _submit(self, task: Task, sources: list[Source]) -> None:
        assert self.pool is not None
        with self._lock:
            self.tasks[task.id] = task
        try:
            self.pool.submit(task)
        except QueueFull:
            with self._lock:
                del self.tasks[task.id]
            self.release(sources)
            raise

    def get(self, task_id: str, kind: str) -> Task:
        task = self.tasks.get(task_id)
        if task is None or task.kind != kind:
            raise ApiError(404, f"no {kind} {task_id!r} (unknown, or removed {self.settings.job_ttl:g} s after it finished)")
        return task

    def cancel(self, task: Task) -> None:
        assert self.pool is not None
        if task.state in TERMINAL:
            return
        task.cancel.set()
        if self.pool.remove(task):
            self._end_unrun(task, "cancelled before it started")

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(("queued", "running", "done", "failed", "cancelled"), 0)
        for task in list(self.tasks.values()):
            counts[task.state] += 1
        return counts

    def _run(self, task: Task) -> None:
        if task.cancel.is_set():
            self._end_unrun(task, "cancelled before it started")
            return
        task.state, task.started = "running", time.time()
        try:
            if isinstance(task, Job):
                self._run_job(task)
            else:
                assert isinstance(task, Batch)
                self._run_batch(task)
        except Exception as exc:  # noqa: BLE001 - a bug of ours: logged in full, the client gets one line
            log.exception("%s %s failed", task.kind, task.id)
            self._finish(task, "failed", f"internal error: {type(exc).__name__} (details in the server log)")

    def _client_for(self, folder: Path):
        """The shared Client writing under ``folder``: a shallow copy shares its executor, runtime,
        plugins and warm models, and every option the operator set."""
        client = copy.copy(self.client)
        client.output_dir = folder
        return client

    def _run_job(self, job: Job) -> None:
        assert job.source is not None
        client = self._client_for(job.dir)
        limit = self.settings.job_timeout
        deadline = time.monotonic() + limit
        stopped: str | None = None
        kwargs = {"format_hint": job.format_hint} if job.format_hint else {}
        try:
            # outputs name the source as its client did (an upload by its file name), not by our path
            stream = client.execute_streaming(job.source.arg, job.specs, name=job.source.name, **kwargs)
            try:
                for event in stream:
                    if isinstance(event, DoneEvent):
                        job.result = event.result
                    self._emit(job, event)
                    if job.cancel.is_set():
                        stopped = "cancelled"
                    elif time.monotonic() > deadline:
                        stopped = f"stopped after {limit:g} s, this server's limit for one job"
                    if stopped:
                        break
            finally:
                stream.close()  # a running job stops here: no new stage starts, the file is finished
        except VideoExtractError as exc:
            message = job.scrub(str(exc))
            for event in input_failed(job.source.public, message):
                self._emit(job, event)
            self._finish(job, "failed", message)
            return
        if stopped:
            self._emit(job, ErrorEvent(op="*", input=job.source.public, error=stopped))
            self._emit(job, DoneEvent(input=job.source.public, status="failed"))
            self._finish(job, "cancelled" if job.cancel.is_set() else "failed", stopped)
            return
        if job.result is None:  # the stream ended without its done event: a bug, already reported in it
            self._finish(job, "failed", "the run ended without a result (details in the server log)")
            return
        if self.metrics is not None:
            self.metrics.observe_result(job.result)
        errors = "; ".join(f"{op}: {job.scrub(why)}" for op, why in job.result.errors().items())
        self._finish(job, "done" if job.result.ok else "failed", errors or None)

    def _run_batch(self, batch: Batch) -> None:
        client = self._client_for(batch.dir)
        workers = min(batch.workers or self.settings.workers or os.cpu_count() or 1, self.settings.workers or os.cpu_count() or 1)

        def progress(event: ProgressEvent) -> None:
            batch.progress = BatchProgress(
                done=event.done, failed=event.failed, total=event.total, files_per_second=event.files_per_second, eta_seconds=event.eta_seconds
            )
            self._emit(batch, event.model_copy(update={"input": batch.scrub(event.input), "error": batch.scrub(event.error) if event.error else None}))
            if batch.cancel.is_set():
                raise _Cancelled

        export = batch.export or Export(formats=())
        try:
            result = client.execute_bulk(
                [s.arg for s in batch.sources],
                batch.specs,
                workers=workers,
                progress=progress,
                timeout=self.settings.job_timeout,
                export=list(export.formats) or None,
                shard_size=export.shard_size,
                export_audio=export.audio,
                names={s.arg: s.name for s in batch.sources if s.name is not None},
            )
        except _Cancelled:
            self._read_summary(batch)
            self._finish(batch, "cancelled", "cancelled")
            return
        except VideoExtractError as exc:
            self._finish(batch, "failed", batch.scrub(str(exc)))
            return
        self._read_summary(batch, result.summary_path)
        batch.exports = batch.public_exports(result.exports)
        self._finish(batch, "done", None)

    def _read_summary(self, batch: Batch, path: Path | None = None) -> None:
        path = path or batch.dir / "batch_summary.json"
        try:
            batch.summary = batch.public_summary(json.loads(path.read_text()))
        except (OSError, ValueError):
            batch.summary = None

    def _end_unrun(self, task: Task, why: str) -> None:
        """A task cancelled before it ran: listeners of a job still get its error and done events."""
        if isinstance(task, Job) and task.source is not None:
            for event in input_failed(task.source.public, why):
                self._emit(task, event)
        self._finish(task, "cancelled", why)

    def _emit(self, task: Task, event: Event) -> None:
        if isinstance(task, Job):
            event = task.public_event(event)
        task.log.append(event.type, event.line())

    def _finish(self, task: Task, state: str, error: str | None) -> None:
        with self._lock:
            if task.state in TERMINAL:
                return
            task.state, task.error = state, error
            task.finished, task.finished_at = time.time(), time.monotonic()
        task.log.close()
        self.release([task.source] if isinstance(task, Job) and task.source else task.sources if isinstance(task, Batch) else [])
        if self.metrics is not None:
            self.metrics.finished(task.kind, state)

    # -- garbage collection --

    def _sweep_forever(self) -> None:
        interval = max(0.2, min(30.0, self.settings.job_ttl / 4, self.settings.upload_ttl / 4))
        while not self._stop.wait(interval):
            try:
                self.sweep()
            except Exception:  # noqa: BLE001 - the janitor must survive a bad folder
                log.exception("cleaning up finished jobs failed")

    def sweep(self) -> None:
        """Forget finished tasks past their TTL and unused uploads past theirs, and remove their files."""
        now = time.monotonic()
        with self._lock:
            old_tasks = [t for t in self.tasks.values() if t.finished_at is not None and now - t.finished_at > self.settings.job_ttl]
            for task in old_tasks:
                del self.tasks[task.id]
            old_uploads = [u for u in self.uploads.values() if u.users == 0 and now - u.last_used > self.settings.upload_ttl]
            for upload in old_uploads:
                del self.uploads[upload.id]
            known = set(self.tasks) | set(self.uploads)
        for task in old_tasks:
            shutil.rmtree(task.dir, ignore_errors=True)
        for upload in old_uploads:
            shutil.rmtree(upload.path.parent, ignore_errors=True)
        # Folders of an earlier server process (nothing refers to them any more).
        wall = time.time()
        for folder, ttl in ((self.jobs_dir, self.settings.job_ttl), (self.batches_dir, self.settings.job_ttl), (self.uploads_dir, self.settings.upload_ttl)):
            for entry in os.scandir(folder):
                if entry.name not in known and wall - entry.stat(follow_symlinks=False).st_mtime > ttl:
                    shutil.rmtree(entry.path, ignore_errors=True)


class _Cancelled(Exception):
    """Raised from a batch's progress callback to stop the batch at the next finished file."""
