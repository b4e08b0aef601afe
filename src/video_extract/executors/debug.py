"""The debug executor: one stage after another, each logged with its timing and cache status.

Slowest of the executors and the easiest to follow: the order of the log is the order of
work, nothing overlaps, and ``--save-intermediates`` keeps what internal stages produced.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path

from video_extract.errors import show_path
from video_extract.executors.base import Executor, finish, run_stage, start
from video_extract.outputs import InputLike
from video_extract.results import FileResult
from video_extract.spec import OutputSpec

log = logging.getLogger("video_extract")


class DebugExecutor(Executor):
    name = "debug"

    def run_file(
        self,
        input_path: object,
        specs: Sequence[OutputSpec | str],
        output_root: str | Path,
        batch: Iterable[InputLike] = (),
        format_hint: str | None = None,
        name: str | None = None,
    ) -> FileResult:
        job = start(self.runtime, input_path, specs, output_root, batch, save_intermediates=self.save_intermediates, format_hint=format_hint, name=name)
        if log.isEnabledFor(logging.INFO):  # the plan is described only for a log that shows it
            log.info("%s: plan of %d stage(s)", show_path(job.source.name), len(job.plan.stages))
            for line in job.plan.describe():
                log.info("  %s", line)
        # Failures are logged in line with the plan and stages; the caller reports them once more at the end.
        total = len(job.plan.stages)
        try:
            for n, stage in enumerate(job.plan.stages.values(), 1):
                with _StageProgress(stage.label(), job.source.info.duration) as progress:
                    record = run_stage(self.runtime, job, stage, on_partial=progress.update)
                status = "hit" if record.cached else record.status if record.status != "ok" else "miss"
                where = f" -> {', '.join(job.published.get(stage.id, []))}" if job.published.get(stage.id) else ""
                log.info("[%d/%d] %-28s %-7s %7.3f s%s", n, total, stage.label(), status, record.seconds, where)
                if record.error:
                    log.info("      %s", record.error)
            return finish(job)
        finally:
            job.release()  # an interrupted run gives its cache leases back too


class _StageProgress:
    """On a terminal, a live line for a long stage: results so far and how far into the media.

    Fed by the partial results streaming plugins yield (a transcript segment, a frame, a cut),
    so a two-hour transcription shows where it is; nothing is shown when stderr is not a TTY.
    """

    def __init__(self, label: str, duration: float | None):
        import sys

        self.label, self.duration, self.count = label, duration, 0
        self.live = None
        if log.isEnabledFor(logging.INFO) and sys.stderr.isatty():  # the level first: no ioctl per stage for a quiet log
            from rich.console import Console

            self.live = Console(stderr=True).status(f"{label} …")

    def __enter__(self) -> _StageProgress:
        if self.live is not None:
            self.live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self.live is not None:
            self.live.__exit__(*exc)

    def update(self, stage, data: dict) -> None:
        if self.live is None:
            return
        self.count += 1
        at = data.get("end", data.get("time"))
        where = f", at {at:.0f} s" + (f" of {self.duration:.0f} s" if self.duration else "") if isinstance(at, (int, float)) else ""
        self.live.update(f"{self.label}: {self.count} results{where}")
