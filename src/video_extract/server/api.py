"""The request and response bodies of the HTTP API: what ``/openapi.json`` documents."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from video_extract.results import FileResult

JobState = Literal["queued", "running", "done", "failed", "cancelled"]
TERMINAL: frozenset[str] = frozenset({"done", "failed", "cancelled"})


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class UploadSource(_Body):
    upload: str = Field(description="an id returned by POST /v1/uploads")


class UrlSource(_Body):
    url: str = Field(description="http(s):// or s3:// URL the server downloads", max_length=8192)


class PathSource(_Body):
    path: str = Field(description="absolute path on the server, under one of its --allow-root directories", max_length=4096)


Source = UploadSource | UrlSource | PathSource
Ops = str | list[str | dict[str, Any]]


class JobRequest(_Body):
    source: Source
    ops: Ops = Field(description='the CLI grammar: "metadata,scenes:threshold=20", or a list of such strings or {"name", "params"} objects')
    format_hint: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9]{1,16}$", description="container format or extension for a source without a useful name"
    )


class BatchRequest(_Body):
    sources: list[Source] = Field(min_length=1)
    ops: Ops
    workers: int | None = Field(default=None, ge=1, description="worker processes (at most the server's --workers)")
    export: list[Literal["parquet", "webdataset"]] = Field(
        default_factory=list,
        description="once the files are done, their outputs as datasets (as `bulk --export`): parquet (a table per kind), webdataset (tar shards)",
    )
    shard_size: int = Field(default=1000, ge=1, le=100_000, description="samples per WebDataset shard")
    export_audio: bool = Field(default=False, description="WebDataset samples also carry the audio track (KEY.wav; needs the audio operation)")


class Error(BaseModel):
    error: str
    status: int


class UploadInfo(BaseModel):
    id: str
    filename: str
    size: int
    blake3: str
    expires_in: float = Field(description="seconds until an unused upload is removed")


class JobLinks(BaseModel):
    status: str
    events: str
    results: str
    files: str


class JobInfo(BaseModel):
    id: str
    state: JobState
    source: str = Field(description="the source as the request named it")
    ops: list[str]
    created: float = Field(description="Unix time")
    started: float | None = None
    finished: float | None = None
    seconds: float | None = Field(default=None, description="running time (so far, while running)")
    queue_position: int | None = None
    error: str | None = None
    links: JobLinks


class FileLink(BaseModel):
    path: str = Field(description="relative to the job's files")
    url: str
    size: int


class JobResults(BaseModel):
    id: str
    state: JobState
    error: str | None = None
    result: FileResult | None = Field(description="the per-input summary (summary.json), server paths replaced by links")
    files: dict[str, list[FileLink]] = Field(description="each operation's output files")


class BatchProgress(BaseModel):
    done: int = 0
    failed: int = 0
    total: int = 0
    files_per_second: float = 0.0
    eta_seconds: float | None = None


class LeftOutFile(BaseModel):
    input: str
    reason: str


class BatchExport(BaseModel):
    format: Literal["parquet", "webdataset"]
    files: int = Field(description="inputs in the dataset")
    counts: dict[str, int] = Field(description="parquet: rows per table; webdataset: shards and samples")
    left_out: list[LeftOutFile] = Field(description="finished inputs the dataset leaves out, and why")
    links: list[str] = Field(description="every file of the dataset")


class BatchInfo(BaseModel):
    id: str
    state: JobState
    sources: int
    ops: list[str]
    created: float
    started: float | None = None
    finished: float | None = None
    seconds: float | None = None
    queue_position: int | None = None
    error: str | None = None
    progress: BatchProgress
    summary: dict[str, Any] | None = Field(default=None, description="batch_summary.json once finished, server paths replaced by links")
    exports: list[BatchExport] = Field(default_factory=list, description="the datasets asked for (``export``), once written")
    links: dict[str, str]


class Health(BaseModel):
    ok: bool


class Ready(BaseModel):
    ready: bool
    checks: dict[str, str]
    queued: int
    running: int
