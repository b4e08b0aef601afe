"""The FastAPI application: routes, authentication, errors as JSON.

Every route under ``/v1`` and ``/metrics`` needs ``Authorization: Bearer <key>`` when the
server has keys; ``/health``, ``/ready``, ``/docs`` and ``/openapi.json`` do not (they say
nothing about anyone's media). Every error is ``{"error": "...", "status": N}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import hmac
import logging
import mimetypes
import os
import threading
from pathlib import Path, PurePosixPath
from typing import Annotated, Any
from urllib.parse import quote

import blake3
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException

from video_extract.errors import VideoExtractError

from .api import (
    TERMINAL,
    BatchInfo,
    BatchRequest,
    Error,
    FileLink,
    Health,
    JobInfo,
    JobLinks,
    JobRequest,
    JobResults,
    Ops,
    Ready,
    UploadInfo,
)
from .http import UPLOAD_PATH, LimitsMiddleware
from .jobs import ApiError, Batch, Export, Job, Manager, QueueFull, Upload, safe_filename
from .metrics import Metrics
from .settings import ServerSettings

log = logging.getLogger("video_extract")

WRITE_CHUNK = 1024 * 1024  # upload bytes gathered before one write to disk (off the event loop)
SSE_HEARTBEAT = 15.0
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": Error, "description": text}
    for code, text in {
        400: "malformed request",
        401: "missing or wrong API key",
        404: "unknown job, batch or file",
        413: "body or upload too large",
        422: "invalid request (unknown operation, bad parameter, bad source)",
        429: "queue full: retry after Retry-After seconds",
        507: "no room left on the server's disk for the upload",
    }.items()
}


def create_app(settings: ServerSettings, client) -> FastAPI:
    """The service over one long-lived ``Client`` (its models stay loaded across jobs)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        manager.start()
        try:
            yield
        finally:
            await asyncio.to_thread(manager.stop)

    app = FastAPI(
        title="video-extract",
        summary="Turn video and audio into structured data: jobs over uploads, URLs and server paths.",
        version=_version(),
        lifespan=lifespan,
        root_path=settings.root_path,
    )
    metrics = Metrics(counts=lambda: manager.counts(), queue_length=lambda: manager.pool.queued if manager.pool else 0)
    manager = Manager(settings, client, metrics)
    app.state.manager = manager
    app.add_middleware(LimitsMiddleware, settings=settings, on_reject=lambda status: metrics.rejected_total.labels(str(status)).inc())
    _add_error_handlers(app, metrics)

    bearer = HTTPBearer(auto_error=False, description="an API key of this server (--api-keys-file / $VIDEO_EXTRACT_API_KEYS)")
    digests = [hashlib.sha256(k.encode()).digest() for k in settings.api_keys]

    def require_key(credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:  # a default: `bearer` is local
        if not digests:
            return
        if credentials is None:
            raise ApiError(401, "missing API key: send the header 'Authorization: Bearer <key>'", {"WWW-Authenticate": "Bearer"})
        offered = hashlib.sha256(credentials.credentials.encode()).digest()
        matched = False
        for digest in digests:  # every key compared, in constant time: no timing says which was close
            matched |= hmac.compare_digest(offered, digest)
        if not matched:
            raise ApiError(401, "invalid API key", {"WWW-Authenticate": 'Bearer error="invalid_token"'})

    api = APIRouter(dependencies=[Depends(require_key)], responses={401: ERRORS[401]})

    # -- uploads ----------------------------------------------------------------------------

    @api.post(
        UPLOAD_PATH,
        status_code=201,
        response_model=UploadInfo,
        responses={400: ERRORS[400], 413: ERRORS[413], 507: ERRORS[507]},
        openapi_extra={
            "requestBody": {
                "description": "the file itself (curl --data-binary @clip.mp4), or multipart/form-data with a part named 'file' (curl -F file=@clip.mp4)",
                "content": {
                    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
                    "multipart/form-data": {"schema": {"type": "object", "properties": {"file": {"type": "string", "format": "binary"}}}},
                },
            }
        },
    )
    async def upload(
        request: Request, filename: Annotated[str | None, Query(max_length=255, description="the file's name (its extension helps)")] = None
    ) -> UploadInfo:
        """Store a file on the server, streamed to disk as it arrives; refer to it in jobs by its id."""
        content_type = request.headers.get("content-type", "")
        if content_type.startswith("multipart/form-data"):
            up = await _receive_multipart(manager, request, content_type, settings.max_upload_size)
        else:
            name = filename or _disposition_filename(request.headers.get("content-disposition"))
            up = await _receive_raw(manager, request.stream(), safe_filename(name), settings.max_upload_size)
        manager.add_upload(up)
        return UploadInfo(id=up.id, filename=up.filename, size=up.size, blake3=up.digest, expires_in=settings.upload_ttl)

    # -- jobs -------------------------------------------------------------------------------

    @api.post("/v1/jobs", status_code=202, response_model=JobInfo, responses={400: ERRORS[400], 413: ERRORS[413], 422: ERRORS[422], 429: ERRORS[429]})
    def create_job(body: JobRequest, response: Response) -> JobInfo:
        """Queue one source through a request; follow it at the links returned."""
        specs = _request(client, body.ops)
        source = manager.resolve(body.source)
        job = _submit(lambda: manager.submit_job(source, specs, body.format_hint), lambda: manager.release([source]))
        response.headers["Location"] = _links(settings, job).status
        return _job_info(settings, manager, job)

    @api.get("/v1/jobs/{job_id}", response_model=JobInfo, responses={404: ERRORS[404]})
    def job_status(job_id: str) -> JobInfo:
        """A job's state and timings."""
        return _job_info(settings, manager, manager.get(job_id, "job"))

    @api.delete("/v1/jobs/{job_id}", response_model=JobInfo, responses={404: ERRORS[404]})
    def cancel_job(job_id: str) -> JobInfo:
        """Cancel a job: a queued one never runs, a running one stops at its next stage boundary."""
        job = manager.get(job_id, "job")
        manager.cancel(job)
        return _job_info(settings, manager, job)

    @api.get(
        "/v1/jobs/{job_id}/events",
        responses={
            200: {"description": "the job's events from its start, then live until it ends", "content": {"application/x-ndjson": {}, "text/event-stream": {}}},
            404: ERRORS[404],
        },
        response_class=StreamingResponse,
    )
    async def job_events(job_id: str, request: Request) -> StreamingResponse:
        """The job's typed events (video_extract.events) as JSON Lines, or server-sent events with
        ``Accept: text/event-stream``. Replayed from the start, then followed live; leaving does not cancel the job."""
        task = manager.get(job_id, "job")
        return _event_stream(task, request)

    @api.get(
        "/v1/jobs/{job_id}/results", response_model=JobResults, responses={404: ERRORS[404], 409: {"model": Error, "description": "the job has not finished"}}
    )
    def job_results(job_id: str) -> JobResults:
        """The output contract of a finished job (its summary.json), with a link to every file."""
        job = manager.get(job_id, "job")
        assert isinstance(job, Job)
        if job.state not in TERMINAL:
            raise ApiError(409, f"job {job_id} is {job.state}; follow {_links(settings, job).events} until it is done")
        result = job.public_result()
        files: dict[str, list[FileLink]] = {}
        if job.result is not None and job.result.output_dir:
            root = Path(job.result.output_dir)
            for op, status in job.result.ops.items():
                files[op] = [_file_link(job, p) for rel in status.files for p in _walk(root / rel)]
        return JobResults(id=job.id, state=job.state, error=job.error, result=result, files=files)

    @api.get("/v1/jobs/{job_id}/files/{path:path}", response_class=FileResponse, responses={400: ERRORS[400], 404: ERRORS[404]})
    def job_file(job_id: str, path: str) -> Response:
        """One output file of a job (paths as in its results' links)."""
        return _serve_file(manager.get(job_id, "job"), path)

    # -- batches ----------------------------------------------------------------------------

    @api.post("/v1/batches", status_code=202, response_model=BatchInfo, responses={400: ERRORS[400], 413: ERRORS[413], 422: ERRORS[422], 429: ERRORS[429]})
    def create_batch(body: BatchRequest, response: Response) -> BatchInfo:
        """Queue many sources through one request, run by the bulk engine (worker processes)."""
        if len(body.sources) > settings.max_sources:
            raise ApiError(422, f"sources: {len(body.sources)} sources; this server takes at most {settings.max_sources} in one batch")
        specs = _request(client, body.ops)
        sources = []
        try:
            for n, item in enumerate(body.sources):
                try:
                    sources.append(manager.resolve(item))
                except ApiError as exc:
                    raise ApiError(exc.status, f"sources[{n}]: {exc.message.removeprefix('source: ')}") from None
        except ApiError:
            manager.release(sources)
            raise
        export = Export(tuple(dict.fromkeys(body.export)), body.shard_size, body.export_audio) if body.export else None
        batch = _submit(lambda: manager.submit_batch(sources, specs, body.workers, export), lambda: manager.release(sources))
        response.headers["Location"] = f"{settings.root_path}/v1/batches/{batch.id}"
        return _batch_info(settings, manager, batch)

    @api.get("/v1/batches/{batch_id}", response_model=BatchInfo, responses={404: ERRORS[404]})
    def batch_status(batch_id: str) -> BatchInfo:
        """A batch's progress and, once finished, its summary (batch_summary.json)."""
        return _batch_info(settings, manager, manager.get(batch_id, "batch"))

    @api.delete("/v1/batches/{batch_id}", response_model=BatchInfo, responses={404: ERRORS[404]})
    def cancel_batch(batch_id: str) -> BatchInfo:
        """Cancel a batch: a queued one never runs, a running one stops when its next file finishes."""
        batch = manager.get(batch_id, "batch")
        manager.cancel(batch)
        return _batch_info(settings, manager, batch)

    @api.get("/v1/batches/{batch_id}/files/{path:path}", response_class=FileResponse, responses={400: ERRORS[400], 404: ERRORS[404]})
    def batch_file(batch_id: str, path: str) -> Response:
        """One output file of a batch (paths as in its summary's links)."""
        return _serve_file(manager.get(batch_id, "batch"), path)

    # -- the rest ---------------------------------------------------------------------------

    @api.get("/v1/ops")
    def operations() -> list[dict[str, Any]]:
        """Every operation this server runs, with its parameters."""
        return client.operations()

    @api.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
    def prometheus() -> Response:
        """Prometheus metrics: tasks by state, queue length, stage seconds, cache hits, upload bytes."""
        return Response(metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    app.include_router(api)

    @app.get("/health", response_model=Health)
    def health() -> Health:
        """Liveness: the process answers."""
        return Health(ok=True)

    @app.get("/ready", response_model=Ready, responses={503: {"model": Ready, "description": "not ready"}})
    def ready() -> JSONResponse:
        """Readiness: output and cache folders writable, workers alive, queue not full."""
        checks = _readiness(settings, manager, client)
        body = Ready(
            ready=all(v == "ok" for v in checks.values()),
            checks=checks,
            queued=manager.pool.queued if manager.pool else 0,
            running=manager.pool.running if manager.pool else 0,
        )
        return JSONResponse(body.model_dump(), status_code=200 if body.ready else 503)

    return app


# -- helpers ----------------------------------------------------------------------------------


def _version() -> str:
    from video_extract import __version__

    return __version__


def _request(client, ops: Ops) -> list:
    """The request parsed as every front-end parses it; its operations are counted first, in
    linear time (the Client's ``max_ops``, from ``client_options``), so a body of a million of
    them costs nothing, and a model outside the server's policy is refused before any work."""
    try:
        return client.request(ops)
    except VideoExtractError as exc:
        raise ApiError(422, f"ops: {exc.message}") from None
    except (TypeError, ValueError) as exc:  # a shape the grammar does not read (pydantic errors are ValueErrors)
        raise ApiError(422, f"ops: cannot read {str(exc).splitlines()[0]}") from None


def _submit(submit, release):
    try:
        return submit()
    except QueueFull as exc:
        raise ApiError(429, f"the queue is full; retry in {exc.retry_after} s", {"Retry-After": str(exc.retry_after)}) from None
    except BaseException:
        release()
        raise


def _links(settings: ServerSettings, job: Job) -> JobLinks:
    base = f"{settings.root_path}/v1/jobs/{job.id}"
    return JobLinks(status=base, events=f"{base}/events", results=f"{base}/results", files=f"{base}/files/")


def _job_info(settings: ServerSettings, manager: Manager, job) -> JobInfo:
    assert isinstance(job, Job) and job.source is not None
    return JobInfo(
        id=job.id,
        state=job.state,
        source=job.source.public,
        ops=job.ops,
        created=job.created,
        started=job.started,
        finished=job.finished,
        seconds=job.seconds,
        queue_position=manager.pool.position(job) if manager.pool and job.state == "queued" else None,
        error=job.error,
        links=_links(settings, job),
    )


def _batch_info(settings: ServerSettings, manager: Manager, batch) -> BatchInfo:
    assert isinstance(batch, Batch)
    base = f"{settings.root_path}/v1/batches/{batch.id}"
    return BatchInfo(
        id=batch.id,
        state=batch.state,
        sources=len(batch.sources),
        ops=batch.ops,
        created=batch.created,
        started=batch.started,
        finished=batch.finished,
        seconds=batch.seconds,
        queue_position=manager.pool.position(batch) if manager.pool and batch.state == "queued" else None,
        error=batch.error,
        progress=batch.progress,
        summary=batch.summary,
        exports=batch.exports,
        links={"status": base, "files": f"{base}/files/"},
    )


def _event_stream(task, request: Request) -> StreamingResponse:
    sse = "text/event-stream" in request.headers.get("accept", "")
    start = 0
    if sse and request.headers.get("last-event-id", "").isdigit():  # an EventSource reconnecting
        start = int(request.headers["last-event-id"]) + 1

    async def lines():
        async for item in task.log.follow(start, heartbeat=SSE_HEARTBEAT if sse else None):
            if item is None:
                yield ": keep-alive\n\n"
                continue
            index, kind, line = item
            yield f"id: {index}\nevent: {kind}\ndata: {line}\n\n" if sse else line + "\n"

    media_type = "text/event-stream" if sse else "application/x-ndjson"
    return StreamingResponse(lines(), media_type=media_type, headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def _walk(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
    return [path] if path.is_file() else []


def _file_link(task, path: Path) -> FileLink:
    return FileLink(path=path.relative_to(task.dir).as_posix(), url=task.link(path), size=path.stat().st_size)


#: Outputs written as text, which may hold the server's own paths: the output folder in
#: ``summary.json`` and the batch summary's rows (inputs are named as the client named them
#: where they are written: ``Source.name``; the scrub is the guard for what is not).
_TEXT_OUTPUTS = frozenset({".json", ".html", ".txt", ".csv", ".tsv", ".srt", ".vtt", ".rttm", ".jsonl"})

#: Larger text outputs are sent as they are, not read into memory to be scrubbed (a fusion.json
#: of hours of media is a few MB).
SCRUB_MAX_BYTES = 16 << 20

#: Files scrubbed at once: each is in memory three times over while it is (~50 MB at the most),
#: so that many downloads together cannot take more than a few hundred MB.
_SCRUBBING = threading.BoundedSemaphore(4)


def _serve_file(task, rel: str) -> Response:
    """A file of ``task``'s folder and nowhere else: no '..', no absolute path, no hidden file,
    no link out. A text output comes with the server's paths in it replaced as the API's
    responses replace them (``task.scrub``: an upload by its client's file name, the task's
    folder by nothing), so that a client learns no server folder from what it downloads."""
    root = task.dir
    parts = PurePosixPath(rel).parts
    if not rel or rel.startswith("/") or "\\" in rel or "\x00" in rel or any(p in ("..", ".") for p in parts):
        raise ApiError(400, f"file path must be relative to the job's files, without '..': {rel!r}")
    if any(p.startswith(".") for p in parts):
        raise ApiError(404, f"no file {rel!r}")
    base = Path(os.path.realpath(root))
    real = Path(os.path.realpath(base / rel))
    if not real.is_relative_to(base) or not real.is_file():
        raise ApiError(404, f"no file {rel!r}")
    # Outputs carry text from the media (transcripts, on-screen text; report.html is a page):
    # served from the API's origin, a page runs sandboxed in an origin of its own (its script
    # still draws; it reaches nothing of the API's), and no browser guesses another type.
    headers = {"Content-Security-Policy": "sandbox allow-scripts", "X-Content-Type-Options": "nosniff"}
    if real.suffix.lower() in _TEXT_OUTPUTS and real.stat().st_size <= SCRUB_MAX_BYTES:
        with _SCRUBBING:
            text = real.read_bytes().decode("utf-8", "surrogateescape")  # any bytes back as they were
            scrubbed = task.scrub(text)
            body = scrubbed.encode("utf-8", "surrogateescape") if scrubbed != text else None
        if body is not None:
            kind = mimetypes.guess_type(real.name)[0] or "text/plain"
            headers["Content-Disposition"] = _inline(real.name)
            return Response(body, media_type=kind, headers=headers)
    return FileResponse(real, filename=real.name, content_disposition_type="inline", headers=headers)


def _inline(name: str) -> str:
    """The Content-Disposition FileResponse gives a file (RFC 6266: a name that is not plain ASCII, encoded)."""
    quoted = quote(name)
    return f"inline; filename*=utf-8''{quoted}" if quoted != name else f'inline; filename="{name}"'


def _readiness(settings: ServerSettings, manager: Manager, client) -> dict[str, str]:
    checks = {"output_dir": "ok" if os.access(settings.output_dir, os.W_OK) else f"not writable: {settings.output_dir}"}
    cache = client.cache
    if cache is not None:
        checks["cache"] = "ok" if os.access(cache.root, os.W_OK) else f"not writable: {cache.root}"
    models_dir = client.runtime.models_dir
    if models_dir is not None:
        checks["models"] = "ok" if os.access(models_dir, os.R_OK) else f"not readable: {models_dir}"
    pool = manager.pool
    if pool is None:
        checks["queue"] = "not started"
    else:
        checks["queue"] = f"full ({pool.queued} queued, {pool.running} running)" if pool.full() else "ok"
    return checks


# -- uploads ----------------------------------------------------------------------------------


def _disposition_filename(header: str | None) -> str | None:
    if not header:
        return None
    from python_multipart.multipart import parse_options_header

    _, options = parse_options_header(header)
    name = options.get(b"filename")
    return name.decode("utf-8", "replace") if name else None


class _UploadFile:
    """An upload being written: bytes gathered, then written and hashed off the event loop."""

    def __init__(self, manager: Manager, filename: str, limit: int):
        self.manager, self.filename, self.limit = manager, filename, limit
        self.id, self.path = manager.new_upload_path(filename)
        self.file = open(self.path, "wb")  # noqa: SIM115 - closed in finish/abort
        self.hasher = blake3.blake3()
        self.size = 0
        self.buffer = bytearray()

    async def write(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self.limit:
            raise ApiError(413, f"upload is over this server's limit of {self.limit} bytes")
        self.buffer += data
        if len(self.buffer) >= WRITE_CHUNK:
            await self.flush()

    async def flush(self) -> None:
        chunk, self.buffer = bytes(self.buffer), bytearray()
        if chunk:
            await asyncio.to_thread(self._write, chunk)

    def _write(self, chunk: bytes) -> None:
        with self._room():
            self.file.write(chunk)
        self.hasher.update(chunk)

    def _close(self) -> None:
        with self._room():
            self.file.close()

    @contextlib.contextmanager
    def _room(self):
        """A full disk (or quota) as 507 and one line in the log, not a 500 and two tracebacks."""
        try:
            yield
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            log.warning("an upload was refused: no room left in %s (%s)", self.path.parent.parent, os.strerror(exc.errno))
            raise ApiError(507, "the server has no room for this upload now; try again later") from None

    async def finish(self) -> Upload:
        await self.flush()
        await asyncio.to_thread(self._close)
        if self.size == 0:
            self.abort()
            raise ApiError(
                400, "the upload is empty: send the file as the request body (curl --data-binary @clip.mp4) or as a part named 'file' (curl -F file=@clip.mp4)"
            )
        return Upload(id=self.id, filename=self.filename, path=self.path, size=self.size, digest=self.hasher.hexdigest())

    def abort(self) -> None:
        with contextlib.suppress(OSError):  # what it still buffered may not fit either
            self.file.close()
        import shutil

        shutil.rmtree(self.path.parent, ignore_errors=True)


async def _receive_raw(manager: Manager, chunks, filename: str, limit: int) -> Upload:
    target = _UploadFile(manager, filename, limit)
    try:
        async for chunk in chunks:
            await target.write(chunk)
        return await target.finish()
    except BaseException:
        target.abort()
        raise


async def _receive_multipart(manager: Manager, request: Request, content_type: str, limit: int) -> Upload:
    """The part named 'file' of a multipart body, streamed to disk by python-multipart's push parser."""
    from python_multipart.exceptions import MultipartParseError
    from python_multipart.multipart import MultipartParser, parse_options_header

    _, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if not boundary:
        raise ApiError(400, "multipart body without a boundary in its Content-Type")
    state: dict[str, Any] = {"field": b"", "value": b"", "headers": {}, "in_file": False, "pending": []}
    target: _UploadFile | None = None

    def on_part_begin() -> None:
        state["headers"], state["in_file"] = {}, False

    def on_header_field(data: bytes, start: int, end: int) -> None:
        state["field"] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        state["value"] += data[start:end]

    def on_header_end() -> None:
        state["headers"][state["field"].lower()] = state["value"]
        state["field"], state["value"] = b"", b""

    def on_headers_finished() -> None:
        _, disposition = parse_options_header(state["headers"].get(b"content-disposition", b""))
        if disposition.get(b"name") == b"file" and state.get("taken") is None:
            state["in_file"] = True
            state["taken"] = (disposition.get(b"filename") or b"").decode("utf-8", "replace")

    def on_part_data(data: bytes, start: int, end: int) -> None:
        if state["in_file"]:
            state["pending"].append(data[start:end])

    def on_part_end() -> None:
        state["in_file"] = False

    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": on_part_begin,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_headers_finished": on_headers_finished,
            "on_part_data": on_part_data,
            "on_part_end": on_part_end,
        },
    )
    try:
        async for chunk in request.stream():
            try:
                parser.write(chunk)
            except MultipartParseError as exc:
                raise ApiError(400, f"malformed multipart body: {exc}") from None
            if state["pending"]:
                if target is None:
                    target = _UploadFile(manager, safe_filename(state.get("taken")), limit)
                for piece in state["pending"]:
                    await target.write(piece)
                state["pending"] = []
        if state.get("taken") is None:
            raise ApiError(400, "multipart upload without a part named 'file' (curl -F file=@clip.mp4)")
        if target is None:  # the file part was empty
            target = _UploadFile(manager, safe_filename(state.get("taken")), limit)
        return await target.finish()
    except BaseException:
        if target is not None:
            target.abort()
        raise


# -- errors -----------------------------------------------------------------------------------


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message, "status": status}, status_code=status, headers=headers)


def _add_error_handlers(app: FastAPI, metrics: Metrics) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        if exc.status in (401, 413, 429):
            metrics.rejected_total.labels(str(exc.status)).inc()
        return _error(exc.status, exc.message, exc.headers)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        message = exc.detail
        if exc.status_code == 404 and message == "Not Found":
            message = f"no such endpoint: {request.method} {request.url.path} (see /docs)"
        elif exc.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path} (see /docs)"
        return _error(exc.status_code, str(message), dict(exc.headers or {}))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            error = next(e for e in errors if e.get("type") == "json_invalid")
            return _error(400, f"malformed JSON: {error.get('ctx', {}).get('error', 'cannot parse')} at character {error['loc'][-1]}")
        return _error(422, _describe(errors, request.headers.get("content-type", "")))

    @app.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception) -> JSONResponse:
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return _error(500, f"internal error: {type(exc).__name__} (details in the server log)")


def _describe(errors, content_type: str) -> str:
    """Pydantic's errors as one line a person can act on."""
    if any(e.get("loc") == ("body",) and e.get("type") in ("model_attributes_type", "dict_type") for e in errors) and "json" not in content_type:
        return "send the request as JSON with 'Content-Type: application/json' (curl --json '{...}')"
    parts: list[str] = []
    for e in errors:
        loc = [str(x) for x in e.get("loc", ()) if x != "body"]
        if len(loc) >= 2 and loc[0] in ("source", "sources") and loc[-2] in ("UploadSource", "UrlSource", "PathSource") or "Source" in ".".join(loc):
            head = loc[0] if loc[0] == "source" else f"{loc[0]}[{loc[1]}]"
            text = f'{head}: give one of {{"upload": id}}, {{"url": "https://…"}}, {{"path": "/…"}}'
        else:
            text = f"{'.'.join(loc) or 'body'}: {e.get('msg', 'invalid')}"
        if text not in parts:
            parts.append(text)
    return "; ".join(parts[:4])
