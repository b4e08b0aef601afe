"""Progress of a batch: a rich bar for people, JSON Lines for machines, nothing when piped."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

from video_extract.events import ProgressEvent


class Progress:
    def start(self, total: int, skipped: int) -> None:
        self.total, self.done, self.failed, self.skipped = total, skipped, 0, skipped
        self.started = time.perf_counter()

    def advance(self, row) -> None:
        self.done += 1
        self.failed += row.status == "failed"

    def stop(self) -> None:
        pass

    def rate(self) -> float:
        elapsed = time.perf_counter() - self.started
        processed = self.done - self.skipped
        return processed / elapsed if elapsed > 0 else 0.0

    def eta(self) -> float | None:
        rate = self.rate()
        return (self.total - self.done) / rate if rate > 0 else None


class JsonlProgress(Progress):
    """One ``progress`` event (events.py) per finished file on stdout, flushed at once."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stdout

    def advance(self, row) -> None:
        super().advance(row)
        self.emit(self.event(row))

    def event(self, row) -> ProgressEvent:
        eta = self.eta()
        return ProgressEvent(
            input=row.input,
            status=row.status,
            error=row.error,
            done=self.done,
            failed=self.failed,
            total=self.total,
            files_per_second=round(self.rate(), 3),
            eta_seconds=round(eta, 1) if eta is not None else None,
        )

    def emit(self, event: ProgressEvent) -> None:
        self.stream.write(event.line() + "\n")
        self.stream.flush()


class CallbackProgress(JsonlProgress):
    """Each ``progress`` event handed to a function (the server records them per batch)."""

    def __init__(self, callback: Callable[[ProgressEvent], None]):
        self.callback = callback

    def emit(self, event: ProgressEvent) -> None:
        self.callback(event)


class RichProgress(Progress):
    """A bar with files done/failed, files/s and ETA (stderr, redrawn in place)."""

    def start(self, total: int, skipped: int) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
        from rich.progress import Progress as Bar

        super().start(total, skipped)
        self.bar = Bar(
            TextColumn("[bold]bulk"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[failed]} failed"),
            TextColumn("{task.fields[rate]:.2f} files/s"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        self.bar.start()
        self.task = self.bar.add_task("files", total=total, completed=skipped, failed=0, rate=0.0)

    def advance(self, row) -> None:
        super().advance(row)
        self.bar.update(self.task, completed=self.done, failed=self.failed, rate=self.rate())

    def stop(self) -> None:
        self.bar.stop()


def make_progress(kind: str | Callable[[ProgressEvent], None] | None):
    """``auto``: a bar on a terminal, silence otherwise; ``rich``, ``jsonl`` or ``none`` as asked;
    a function: called with each ``progress`` event."""
    if callable(kind):
        return CallbackProgress(kind)
    if kind in (None, "auto"):
        kind = "rich" if sys.stderr.isatty() else "none"
    return {"rich": RichProgress, "jsonl": JsonlProgress, "none": Progress}[kind]()
