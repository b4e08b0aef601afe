"""The debug executor: one stage after another, each logged with its timing and cache status.

Slowest of the executors and the easiest to follow: the order of the log is the order of
work, nothing overlaps, and ``--save-intermediates`` keeps what internal stages produced.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterable, Sequence

from video_extract.executors.base import Executor, finish, prepare, run_stage
from video_extract.results import FileResult
from video_extract.spec import OutputSpec

log = logging.getLogger("video_extract")


class DebugExecutor(Executor):
    name = "debug"

    def run_file(self, input_path: str | Path, specs: Sequence[OutputSpec | str], output_root: str | Path, batch: Iterable[Path] = ()) -> FileResult:
        job = prepare(self.runtime, input_path, specs, output_root, batch, save_intermediates=self.save_intermediates)
        log.info("%s: plan of %d stage(s)", job.source.path, len(job.plan.stages))
        for line in job.plan.describe():
            log.info("  %s", line)
        # Failures are logged in line with the plan and stages; the caller reports them once more at the end.
        total = len(job.plan.stages)
        for n, stage in enumerate(job.plan.stages.values(), 1):
            record = run_stage(self.runtime, job, stage)
            status = "hit" if record.cached else record.status if record.status != "ok" else "miss"
            where = f" -> {', '.join(job.published.get(stage.id, []))}" if job.published.get(stage.id) else ""
            log.info("[%d/%d] %-28s %-7s %7.3f s%s", n, total, stage.label(), status, record.seconds, where)
            if record.error:
                log.info("      %s", record.error)
        return finish(job)
