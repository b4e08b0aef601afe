"""How many files per hour a machine, or N of them, will do for a request: a cost model fitted
on a calibration batch run on the hardware and with the request the operator will use.

Each stage of a file costs ``fixed + per_second * duration`` seconds (fitted per stage, with
non-negative least squares over the calibration files); what is not a stage (fetching, the
plan, summaries, the parent handing out files and copying results) is one overhead per file,
measured as each worker's busy span minus the time its stages took. A worker handles one file
after another, so a machine with W workers does ``W * 3600 / mean cost`` files an hour, and a
Ray cluster of N such nodes N times that. The costs are measured with W workers running side by
side, so they already include what W workers cost each other on that machine: calibrate with
the worker count you will run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from video_extract.errors import InputError, UsageError
from video_extract.outputs import batch_output_dir, read_batch_rows, read_summary
from video_extract.results import FileResult, output_type


@dataclass(frozen=True)
class StageCost:
    label: str  # the stage's operation with its non-default parameters
    fixed: float  # seconds per file
    per_second: float  # seconds per second of media
    files: int  # calibration files it was fitted on

    def seconds(self, duration: float) -> float:
        return self.fixed + self.per_second * duration


@dataclass(frozen=True)
class CostModel:
    workers: int  # workers per machine in the calibration run
    overhead: float  # seconds per file outside the stages
    stages: tuple[StageCost, ...]
    files: int
    durations: tuple[float, ...] = field(default=(), repr=False)  # of the calibration files

    def seconds(self, duration: float) -> float:
        """One file's cost on one worker."""
        return self.overhead + sum(s.seconds(duration) for s in self.stages)

    def files_per_hour(self, durations: Sequence[float] | float, nodes: int = 1, workers: int | None = None) -> float:
        """Files an hour for inputs of these durations (seconds; one value or a sample of the batch)."""
        durations = [durations] if isinstance(durations, int | float) else list(durations)
        if not durations:
            raise UsageError("sizing needs at least one media duration")
        mean_cost = float(np.mean([self.seconds(d) for d in durations]))
        return nodes * (workers or self.workers) * 3600.0 / mean_cost

    def table(self) -> list[tuple[str, float, float]]:
        """(what, seconds per file, seconds per media second), stages by cost at the mean duration."""
        mean = float(np.mean(self.durations)) if self.durations else 0.0
        rows = [(s.label, s.fixed, s.per_second) for s in sorted(self.stages, key=lambda s: -s.seconds(mean))]
        return [*rows, ("per-file overhead", self.overhead, 0.0)]


@dataclass(frozen=True)
class Calibration:
    """One calibration file: its duration, its stages' seconds, and its worker."""

    duration: float
    stages: dict[str, float]
    worker: int
    started_at: float
    finished_at: float


def fit(files: Sequence[Calibration]) -> CostModel:
    from scipy.optimize import nnls

    if not files:
        raise UsageError("sizing: the calibration batch has no finished file with timings")
    labels = sorted({label for f in files for label in f.stages})
    stages = []
    for label in labels:
        rows = [(f.duration, f.stages[label]) for f in files if label in f.stages]
        x = np.array([[1.0, d] for d, _ in rows])
        if len({d for d, _ in rows}) < 2:
            x = x[:, :1]  # one duration: a cost per file only
        coef, _ = nnls(x, np.array([s for _, s in rows]))
        stages.append(StageCost(label, float(coef[0]), float(coef[1]) if len(coef) > 1 else 0.0, len(rows)))
    by_worker: dict[int, list[Calibration]] = {}
    for f in files:
        by_worker.setdefault(f.worker, []).append(f)
    busy = sum(max(f.finished_at for f in fs) - min(f.started_at for f in fs) for fs in by_worker.values())
    in_stages = sum(sum(f.stages.values()) for f in files)
    overhead = max(0.0, (busy - in_stages) / len(files))
    return CostModel(len(by_worker), overhead, tuple(stages), len(files), tuple(f.duration for f in files))


def calibration_files(out_dir: str | Path) -> list[Calibration]:
    """The finished files of a bulk run's output folder, with each one's duration (from its
    metadata output, else probed) and the seconds of the stages it computed (cache hits left out)."""
    from video_extract.media import probe

    out_dir = Path(out_dir)
    try:
        rows = read_batch_rows(out_dir)
    except InputError:
        raise UsageError(f"{out_dir}: no batch_summary.json here; calibrate with `video-extract bulk ... -o {out_dir}` first") from None
    files = []
    for row in rows:
        if row.get("status") != "ok" or not row.get("output_dir") or not row.get("worker"):
            continue
        folder = batch_output_dir(out_dir, row)
        record = read_summary(folder)
        if record is None:
            continue
        result = FileResult.model_validate(record)
        stages = {s.label: s.seconds for s in result.stages if s.status == "ok" and not s.cached}
        duration = _duration(result, folder, row["input"], probe)
        if duration is None or not stages:
            continue
        files.append(Calibration(duration, stages, row["worker"]["pid"], row["started_at"], row["finished_at"]))
    return files


def _duration(result: FileResult, folder: Path, source: str, probe) -> float | None:
    """The media's duration: from the file's metadata output when it has one, else probed."""
    for op in result.ops.values():
        if op.status == "ok" and op.type == "Metadata":
            try:
                duration = output_type("Metadata").load(folder, op.data).duration
            except (OSError, ValueError):
                break
            if duration is not None:
                return float(duration)
    try:
        return probe(source, scan=False).duration
    except Exception:  # noqa: BLE001 - a moved or remote input: the file is left out of the fit
        return None
