"""The performance executor: one file, minimum latency, results streamed as they exist.

Stages whose inputs are ready run at once on a thread pool (PyAV, onnxruntime and
CTranslate2 release the GIL, so threads overlap on separate cores); a stage starts the moment
its last input finishes. Every step becomes a typed event (``events.py``) on an iterator, in
the order it happens: partials, then complete / skipped / error per operation, then done.

The files on disk are exactly those the debug executor writes, from the same shared cache.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path

from video_extract.events import CompleteEvent, DoneEvent, ErrorEvent, Event, PartialEvent, SkippedEvent
from video_extract.executors.base import Executor, Job, Runtime, finish, run_stage, start
from video_extract.media.image import LARGE_PIXELS
from video_extract.outputs import InputLike
from video_extract.plan import Plan, Stage
from video_extract.results import FileResult, StageRecord
from video_extract.spec import OutputSpec

_END = object()


def default_threads() -> int:
    return max(2, min(8, (os.cpu_count() or 2) + 1))


class PerfExecutor(Executor):
    name = "perf"

    def __init__(self, runtime: Runtime | None = None, save_intermediates: bool = False, threads: int | None = None):
        super().__init__(runtime, save_intermediates)
        self.threads = threads or default_threads()

    def run_file(
        self,
        input_path: object,
        specs: Sequence[OutputSpec | str],
        output_root: str | Path,
        batch: Iterable[InputLike] = (),
        format_hint: str | None = None,
        name: str | None = None,
    ) -> FileResult:
        result = None
        for event in self.stream_file(input_path, specs, output_root, batch, format_hint=format_hint, name=name):
            if isinstance(event, DoneEvent):
                result = event.result
        assert result is not None
        return result

    def stream_file(
        self,
        input_path: object,
        specs: Sequence[OutputSpec | str],
        output_root: str | Path,
        batch: Iterable[InputLike] = (),
        format_hint: str | None = None,
        name: str | None = None,
    ) -> Iterator[Event]:
        """Events for one input (a path, URL, bytes or stream), as they happen. The final
        ``DoneEvent`` carries the FileResult."""
        started = time.perf_counter()
        job = start(self.runtime, input_path, specs, output_root, batch, save_intermediates=self.save_intermediates, format_hint=format_hint, name=name)
        events: queue.Queue = queue.Queue()
        for op, why in job.plan.skipped.items():
            events.put(SkippedEvent(op=op, reason=why))
        for op, why in job.plan.errors.items():
            events.put(ErrorEvent(op=op, error=why))
        cancel = threading.Event()
        worker = threading.Thread(target=self._schedule, args=(job, events, started, cancel), name="video-extract-perf", daemon=True)
        worker.start()
        listened = False
        try:
            while True:
                event = events.get()
                if event is _END:
                    break
                yield event
            listened = True
        finally:
            # A consumer that stops listening (a closed generator, a dropped HTTP client) ends
            # the request: no new stage starts, running ones finish, and the file is finished
            # (summary written, scratch removed) rather than left half done in the background.
            cancel.set()
            worker.join()
            if not listened:
                finish(job)
        result = finish(job)
        yield DoneEvent.of(result, time.perf_counter() - started)

    def _schedule(self, job: Job, events: queue.Queue, started: float, cancel: threading.Event) -> None:
        """Run every stage as soon as its upstream stages are finished; report each as it ends."""
        try:
            pending = dict(job.plan.stages)
            finished: set[str] = set()
            running: dict[Future, Stage] = {}
            # A still of tens of megapixels is run one stage at a time: each stage's copies of it
            # (a JPEG encode, a detector's resize) side by side would pass 1 GB, and parallelism
            # buys little on a single frame.
            still = job.source.still
            threads = 1 if still is not None and _pixels(job) > LARGE_PIXELS else self.threads
            job.concurrent = threads > 1
            rank = critical_path(job.plan, lambda stage: self.runtime.registry.manifests[stage.plugin].resources.seconds)
            with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="video-extract-stage") as pool:
                while pending or running:
                    if cancel.is_set():
                        pending.clear()
                        if not running:
                            break
                    # Only as many stages as threads are handed to the pool, the longest remaining
                    # chain first: a queued stage could not be overtaken by a more urgent one.
                    ready = sorted((sid for sid, stage in pending.items() if all(up in finished for up in stage.upstream)), key=lambda sid: -rank[sid])
                    for sid in ready[: threads - len(running)]:
                        stage = pending.pop(sid)
                        running[pool.submit(run_stage, self.runtime, job, stage, self._partial_sink(job, events))] = stage
                    done, _ = wait(running, return_when=FIRST_COMPLETED)
                    for future in done:
                        stage = running.pop(future)
                        record = future.result()
                        finished.add(stage.id)
                        self._report(job, stage, record, events, started)
        except Exception as exc:  # noqa: BLE001 - a bug here must end the stream, not hang it
            events.put(ErrorEvent(op="*", error=f"internal error: {type(exc).__name__}: {exc}"))
        finally:
            events.put(_END)

    @staticmethod
    def _partial_sink(job: Job, events: queue.Queue):
        def emit(stage: Stage, data: dict) -> None:
            for op in job.plan.streams_for(stage.id):
                events.put(PartialEvent(op=op, data=data))

        return emit

    @staticmethod
    def _report(job: Job, stage: Stage, record: StageRecord, events: queue.Queue, started: float) -> None:
        for op in job.plan.requested(stage.id):
            if record.status == "ok":
                files = job.published.get(stage.id, [])
                path = str(job.out_dir / files[0]) if files else str(job.out_dir)
                events.put(CompleteEvent(op=op, path=path, elapsed=round(time.perf_counter() - started, 4), cached=record.cached))
            else:
                events.put(ErrorEvent(op=op, error=record.error or record.status))


def critical_path(plan: Plan, seconds: Callable[[Stage], float]) -> dict[str, float]:
    """Each stage's own estimated seconds plus the longest chain of stages that wait for it: on
    a 10 s clip, vad (0.02 s) ranks above scenes (0.17 s) because transcription waits for it."""
    rank: dict[str, float] = {}
    for sid in reversed(list(plan.stages)):  # stages are in topological order
        after = [rank[d] for d in plan.dependents_of(sid)]
        rank[sid] = seconds(plan.stages[sid]) + max(after, default=0.0)
    return rank


def _pixels(job: Job) -> int:
    video = job.source.info.video
    return video.width * video.height if video is not None else 0
