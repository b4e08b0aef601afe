"""Bulk mode: many files, maximum throughput, resumable.

The per-file work (``FileWorker.process``) is the same whichever engine runs it; the engines only
decide where: ``LocalEngine`` keeps N worker processes of its own, ``RayEngine``
(``ray_engine.py``) a pool of Ray actors across machines. Either way a worker builds its
Runtime once (plugins and their models stay loaded for every file it gets), files are handed
out one at a time (longest first), a worker that crashes or hangs past the timeout is replaced
and its file retried, and one bad file is a failed row, never a stopped batch.

Resume: a file whose output folder holds a complete ``summary.json`` for the same request is
skipped; anything else runs again, and the stage cache makes its finished stages instant. A
batch killed with ``kill -9`` and started again therefore redoes only unfinished files.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import time
from collections import defaultdict
from dataclasses import dataclass, field
from multiprocessing.connection import wait as wait_any
from pathlib import Path
from typing import Any, Callable, Sequence

from video_extract.errors import UsageError, VideoExtractError
from video_extract.outputs import atomic_write_json, ensure_output_root, folder_stem, output_dir_for, read_summary
from video_extract.spec import OutputSpec

log = logging.getLogger("video_extract")

MEDIA_EXTENSIONS = frozenset(
    ".mp4 .m4v .mov .mkv .webm .avi .wmv .flv .mpg .mpeg .ts .m2ts .mts .3gp .ogv "
    ".mp3 .m4a .aac .wav .flac .ogg .opus .wma .aiff .aif "
    ".jpg .jpeg .png .tif .tiff .webp .bmp .gif".split()
)


@dataclass
class Settings:
    """Everything a worker needs to build its Runtime (picklable, sent once per worker)."""

    cache_dir: str | None = None
    use_cache: bool = True
    models_dir: str | None = None
    threads: int | None = None  # decoder and model threads per worker (its share of the cores)


@dataclass
class Task:
    index: int
    input: str
    batch: list[str]  # other inputs sharing this one's stem (for collision-free folder names)
    specs: list[dict] = field(default_factory=list)  # what to make of this file
    size: int = 0
    attempts: int = 0
    errors: list[str] = field(default_factory=list)


# -- inputs ----------------------------------------------------------------------------------


def collect_inputs(paths: Sequence[str | Path] = (), input_list: str | Path | None = None) -> list[Path]:
    """Files named directly, listed in a text file (one per line, # comments), or found in folders."""
    found: list[Path] = []
    if input_list is not None:
        try:
            lines = Path(input_list).read_text().splitlines()
        except OSError as exc:
            raise UsageError(f"cannot read input list: {exc.strerror or exc}", input_list) from None
        found += [Path(line.strip()) for line in lines if line.strip() and not line.lstrip().startswith("#")]
    for item in map(Path, paths):
        if item.is_dir():
            found += sorted(p for p in item.rglob("*") if p.is_file() and p.suffix.lower() in MEDIA_EXTENSIONS)
        else:
            found.append(item)
    unique = list(dict.fromkeys(found))
    if not unique:
        raise UsageError("no input files: give files, a folder of media, or --input-list")
    return unique


def make_tasks(inputs: Sequence[Path], specs: Sequence[Sequence[OutputSpec]]) -> list[Task]:
    """Tasks, longest first (by size) so a big file does not start last and stretch the batch."""
    by_stem: dict[str, list[str]] = defaultdict(list)
    for path in inputs:
        by_stem[folder_stem(path)].append(str(path))
    tasks = []
    for index, path in enumerate(inputs):
        try:
            size = path.stat().st_size
        except OSError:
            size = 0
        siblings = by_stem[folder_stem(path)]
        tasks.append(Task(index=index, input=str(path), batch=siblings if len(siblings) > 1 else [], specs=[s.to_dict() for s in specs[index]], size=size))
    return sorted(tasks, key=lambda t: (-t.size, t.index))


def already_done(task: Task, output_root: Path) -> dict | None:
    """The summary of a finished, successful run of the same request on this file, if there is one."""
    from video_extract.executors.base import request_key

    path = Path(task.input)
    summary = read_summary(output_dir_for(output_root, path, [Path(p) for p in task.batch]))
    if not summary or summary.get("status") != "ok" or summary.get("request") != request_key(task.specs) or summary.get("input") != str(path):
        return None
    try:
        st = path.stat()
    except OSError:
        return None
    if (summary.get("input_size"), summary.get("input_mtime_ns")) != (st.st_size, st.st_mtime_ns):
        return None  # the file changed since: do it again
    return summary


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
        self.runtime = Runtime(cache_dir=settings.cache_dir, use_cache=settings.use_cache, models_dir=settings.models_dir)
        self.executor = DebugExecutor(self.runtime)
        self.files_done = 0

    def process(self, input_path: str, specs: list[dict], output_root: str, batch: list[str]) -> dict[str, Any]:
        from video_extract.models import load_counts

        started = time.perf_counter()
        began_at = time.time()
        outputs = [OutputSpec.of(s) for s in specs]
        try:
            result = self.executor.run_file(input_path, outputs, output_root, batch=[Path(p) for p in batch])
            row = {
                "status": result.status,
                "ops": {op: r.status for op, r in result.ops.items()},
                "error": "; ".join(f"{op}: {r.error}" for op, r in result.ops.items() if r.error) or None,
                "output_dir": result.output_dir,
            }
        except VideoExtractError as exc:
            row = {"status": "failed", "ops": {}, "error": exc.message, "output_dir": None}
        except Exception as exc:  # noqa: BLE001 - a bug on one file must not kill the worker
            log.debug("unexpected failure on %s", input_path, exc_info=True)
            row = {"status": "failed", "ops": {}, "error": f"{type(exc).__name__}: {exc}", "output_dir": None}
        self.files_done += 1
        row.update(
            input=input_path,
            seconds=round(time.perf_counter() - started, 4),
            started_at=round(began_at, 4),
            finished_at=round(time.time(), 4),
            worker={"pid": os.getpid(), "host": os.uname().nodename, "files": self.files_done, "model_loads": {repr(k): v for k, v in load_counts.items()}},
        )
        return row


def _worker_main(conn, settings: Settings) -> None:
    """A local worker process: build the FileWorker once, then take one file at a time."""
    try:
        worker = FileWorker(settings)
        conn.send(("ready", os.getpid()))
        while True:
            message = conn.recv()
            if message is None:
                return
            task_index, input_path, specs, output_root, batch = message
            conn.send(("result", task_index, worker.process(input_path, specs, output_root, batch)))
    except (EOFError, KeyboardInterrupt, BrokenPipeError):
        return


# -- engines -----------------------------------------------------------------------------------

Report = Callable[[dict[str, Any]], None]


def retry_or_fail(task: Task, why: str, retries: int, pending: list[Task], report: Report) -> None:
    """After a crash or timeout: run the file again (first in line), or record it as failed."""
    task.errors.append(why)
    if task.attempts <= retries:
        log.warning("%s: %s; retrying (attempt %d of %d)", task.input, why, task.attempts + 1, retries + 1)
        pending.insert(0, task)
    else:
        report({"input": task.input, "status": "failed", "ops": {}, "error": why, "output_dir": None, "seconds": 0.0, "attempts": task.attempts})


class LocalEngine:
    """N worker processes on this machine, replaced when they crash or hang."""

    name = "local"

    def __init__(self, workers: int, settings: Settings, retries: int = 1, timeout: float | None = None):
        from dataclasses import replace

        self.workers = max(1, workers)
        self.settings = settings if settings.threads else replace(settings, threads=max(1, (os.cpu_count() or 1) // self.workers))
        self.retries = retries
        self.timeout = timeout
        # spawn: forking a process that holds onnxruntime/torch thread pools is unsafe.
        self.context = multiprocessing.get_context("spawn")

    def _start(self) -> "_LocalWorker":
        parent, child = self.context.Pipe()
        process = self.context.Process(target=_worker_main, args=(child, self.settings), daemon=True, name="video-extract-worker")
        process.start()
        child.close()
        return _LocalWorker(process, parent)

    def run(self, tasks: list[Task], output_root: Path, report: Report) -> None:
        pending = list(tasks)
        pool = [self._start() for _ in range(min(self.workers, len(tasks)))]
        early_deaths = 0
        try:
            while pending or any(w.task for w in pool):
                for worker in pool:
                    if worker.ready and worker.task is None and pending:
                        worker.assign(pending.pop(0), output_root)
                waitables = [w.conn for w in pool] + [w.process.sentinel for w in pool]
                wait_any(waitables, timeout=self._poll_interval(pool))
                for n, worker in enumerate(pool):
                    outcome = worker.poll()
                    if outcome == "result":
                        report(worker.take_result())
                    elif outcome in ("crashed", "timeout") or (outcome is None and worker.overdue(self.timeout)):
                        why = worker.failure(outcome or "timeout", self.timeout)
                        if not worker.ready:
                            early_deaths += 1
                            if early_deaths > 3 * self.workers:
                                raise VideoExtractError(f"bulk workers keep dying before taking any file ({why}); run one file with `video-extract debug -v` to see why")
                        worker.kill()
                        task = worker.task
                        pool[n] = self._start()
                        if task is not None:
                            retry_or_fail(task, why, self.retries, pending, report)
        finally:
            for worker in pool:
                worker.stop()

    def _poll_interval(self, pool) -> float:
        return 0.5 if self.timeout is None else min(0.5, max(0.05, self.timeout / 10))


class _LocalWorker:
    def __init__(self, process, conn):
        self.process = process
        self.conn = conn
        self.ready = False
        self.task: Task | None = None
        self.started = 0.0
        self._result: dict | None = None

    def assign(self, task: Task, output_root: Path) -> None:
        task.attempts += 1
        self.task = task
        self.started = time.monotonic()
        self.conn.send((task.index, task.input, task.specs, str(output_root), task.batch))

    def poll(self) -> str | None:
        """What happened since the last look: None, 'result' or 'crashed'."""
        try:
            while self.conn.poll():
                kind, *rest = self.conn.recv()
                if kind == "ready":
                    self.ready = True
                elif kind == "result":
                    self._result = {**rest[1], "attempts": self.task.attempts if self.task else 1}
                    return "result"
        except (EOFError, OSError):
            return "crashed"
        if not self.process.is_alive():
            return "crashed"
        return None

    def take_result(self) -> dict:
        result, self._result, self.task = self._result, None, None
        return result

    def overdue(self, timeout: float | None) -> bool:
        return timeout is not None and self.task is not None and time.monotonic() - self.started > timeout

    def failure(self, outcome: str, timeout: float | None) -> str:
        if outcome == "timeout":
            return f"timed out after {timeout:g} s (worker killed)"
        self.process.join(timeout=2)  # its pipe closes before the OS has reaped it: wait for the exit code
        code = self.process.exitcode
        return f"worker crashed (exit code {code})" if code is not None else "worker crashed"

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(timeout=5)
        self.conn.close()

    def stop(self) -> None:
        try:
            self.conn.send(None)
        except (OSError, BrokenPipeError):
            pass
        self.process.join(timeout=5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(timeout=5)


# -- the batch ---------------------------------------------------------------------------------


@dataclass
class BatchResult:
    rows: list[dict]
    seconds: float
    summary_path: Path

    @property
    def failed(self) -> int:
        return sum(1 for r in self.rows if r["status"] == "failed")


def run_batch(
    inputs: Sequence[Path],
    specs: Sequence[OutputSpec] | Sequence[Sequence[OutputSpec]],
    output_root: Path,
    engine,
    progress=None,
) -> BatchResult:
    """Run every input through ``engine``; write batch_summary.json (+ .parquet); skip finished files.

    ``specs``: one request for every input, or one request per input (same order).
    """
    started = time.perf_counter()
    ensure_output_root(output_root)
    output_root.mkdir(parents=True, exist_ok=True)
    per_input = list(specs) if specs and not isinstance(specs[0], OutputSpec) else [list(specs)] * len(inputs)
    rows: dict[str, dict] = {}
    tasks = []
    for task in make_tasks(inputs, per_input):
        done = already_done(task, output_root)
        if done is not None:
            rows[task.input] = {"input": task.input, "status": "skipped", "ops": {op: r["status"] for op, r in done["ops"].items()}, "error": None, "output_dir": done.get("output_dir"), "seconds": 0.0, "attempts": 0}
        else:
            tasks.append(task)
    if progress is not None:
        progress.start(total=len(inputs), skipped=len(rows))

    def report(row: dict) -> None:
        rows[row["input"]] = row
        if row["status"] == "failed":
            log.error("%s: %s", row["input"], row.get("error"))
        if progress is not None:
            progress.advance(row)

    try:
        if tasks:
            engine.run(tasks, output_root, report)
    finally:
        # Also when interrupted (Ctrl-C): the summary then lists what finished so far.
        if progress is not None:
            progress.stop()
        ordered = [rows[str(p)] for p in inputs if str(p) in rows]
        seconds = time.perf_counter() - started
        summary_path = write_batch_summary(output_root, ordered, seconds, engine.name)
    return BatchResult(ordered, seconds, summary_path)


def write_batch_summary(output_root: Path, rows: list[dict], seconds: float, engine: str) -> Path:
    processed = [r for r in rows if r["status"] != "skipped"]
    totals = {
        "files": len(rows),
        "ok": sum(r["status"] == "ok" for r in rows),
        "failed": sum(r["status"] == "failed" for r in rows),
        "skipped": sum(r["status"] == "skipped" for r in rows),
        "seconds": round(seconds, 3),
        "files_per_second": round(len(processed) / seconds, 3) if seconds > 0 else None,
        "engine": engine,
    }
    files = [{k: r.get(k) for k in ("input", "status", "ops", "seconds", "error", "output_dir", "attempts", "worker", "started_at", "finished_at")} for r in rows]
    path = output_root / "batch_summary.json"
    atomic_write_json(path, {"files": files, "totals": totals})
    _write_parquet(output_root / "batch_summary.parquet", files)
    return path


def _write_parquet(path: Path, files: list[dict]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table(
        {
            "input": [f["input"] for f in files],
            "status": [f["status"] for f in files],
            "ops": [sorted(f["ops"] or {}) for f in files],
            "failed_ops": [sorted(op for op, s in (f["ops"] or {}).items() if s != "ok") for f in files],
            "seconds": [float(f["seconds"] or 0.0) for f in files],
            "error": [f["error"] for f in files],
            "output_dir": [f["output_dir"] for f in files],
            "attempts": [int(f["attempts"] or 0) for f in files],
            "worker_pid": [(f.get("worker") or {}).get("pid") for f in files],
            "worker_host": [(f.get("worker") or {}).get("host") for f in files],
        }
    )
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def default_workers() -> int:
    return max(1, os.cpu_count() or 1)
