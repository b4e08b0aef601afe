"""What a running request reports, as it happens: one union of typed events.

Performance mode yields them (``Client.execute_streaming``), ``perf --stream`` and the server
write them as JSON Lines, bulk mode reports a ``progress`` event per finished file:

    {"type": "partial",  "op", "data"}                  a piece a plugin yielded (segment, cut, frame)
    {"type": "complete", "op", "path", "elapsed", "cached"}  an operation's outputs are on disk
    {"type": "skipped",  "op", "reason"}                the operation does not apply to this input
    {"type": "error",    "op", "error"}                 an operation (or, op "*", the input) failed
    {"type": "progress", "input", "status", "done", "total", …}  bulk: one more file finished
    {"type": "done",     "input", "status", "ok", "failed", "skipped", "elapsed"}  the file is finished

``Event.line()`` is the JSON Lines form; ``parse_event`` reads one back.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from video_extract.results import FileResult


class Event(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def line(self) -> str:
        """One JSON Lines record. A file name that is not UTF-8 (lone surrogates) keeps its odd
        bytes as ``\\udcXX`` escapes, which ``json.loads`` turns back into the name: the line
        prints on a strict UTF-8 stream and reads as JSON anywhere."""
        data = {k: v for k, v in self.model_dump(mode="json").items() if v is not None}
        return json.dumps(data, ensure_ascii=False).encode("utf-8", "backslashreplace").decode("utf-8")


class PartialEvent(Event):
    type: Literal["partial"] = "partial"
    op: str
    data: dict[str, Any]


class CompleteEvent(Event):
    type: Literal["complete"] = "complete"
    op: str
    path: str  # the operation's first output file (or the output folder)
    elapsed: float  # seconds since the request started
    cached: bool = False


class SkippedEvent(Event):
    type: Literal["skipped"] = "skipped"
    op: str
    reason: str


class ErrorEvent(Event):
    type: Literal["error"] = "error"
    op: str  # "*": the input itself (unreadable, not media)
    error: str
    input: str | None = None


class ProgressEvent(Event):
    type: Literal["progress"] = "progress"
    input: str
    status: Literal["ok", "failed", "skipped"]
    error: str | None = None
    done: int
    failed: int
    total: int
    files_per_second: float
    eta_seconds: float | None = None


class DoneEvent(Event):
    type: Literal["done"] = "done"
    input: str
    status: Literal["ok", "failed"]
    output_dir: str | None = None
    ok: list[str] = []
    failed: list[str] = []
    skipped: list[str] = []
    elapsed: float = 0.0
    result: FileResult | None = Field(default=None, exclude=True)  # in memory only: the whole FileResult

    @classmethod
    def of(cls, result: FileResult, elapsed: float) -> DoneEvent:
        by_status = {s: sorted(op for op, r in result.ops.items() if r.status == s) for s in ("ok", "failed", "skipped")}
        return cls(input=result.input, status=result.status, output_dir=result.output_dir, elapsed=round(elapsed, 4), result=result, **by_status)


AnyEvent = Annotated[
    PartialEvent | CompleteEvent | SkippedEvent | ErrorEvent | ProgressEvent | DoneEvent,
    Field(discriminator="type"),
]
_adapter: TypeAdapter = TypeAdapter(AnyEvent)


def parse_event(line: str | bytes | dict) -> Event:
    """An event from its JSON Lines form (or the parsed dict)."""
    return _adapter.validate_python(line) if isinstance(line, dict) else _adapter.validate_json(line)


def input_failed(input: str, error: str) -> list[Event]:
    """The events of an input that could not be read at all: its error, then its end."""
    return [ErrorEvent(op="*", input=input, error=error), DoneEvent(input=input, status="failed")]
