"""The Ray engine: the same per-file work as the local engine, on a Ray cluster.

A pool of ``--workers`` actors, each holding a FileWorker (a Runtime with its plugins and
models loaded once), receives files one at a time. Each actor declares the CPUs and GPUs the
requested plugins' manifests ask for, so Ray places it where those exist. Ray schedules and
places; the loop here only keeps every actor fed, and replaces an actor that dies or hangs
past the timeout (its file is retried, then recorded as failed).

Inputs, outputs and the cache must be on a path every node sees (NFS, a shared volume): the
actors read inputs and write outputs and cache entries themselves.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from video_extract.errors import UsageError, VideoExtractError
from video_extract.executors.bulk import FileWorker, Report, Settings, Task, retry_or_fail

log = logging.getLogger("video_extract")


class RayFileWorker(FileWorker):
    def ready(self) -> dict:
        import ray

        return {"node": ray.get_runtime_context().get_node_id()}

    def process(self, input_path, specs, output_root, batch):
        import ray

        row = super().process(input_path, specs, output_root, batch)
        row["worker"]["node"] = ray.get_runtime_context().get_node_id()
        return row


def request_resources(specs: list[dict]) -> tuple[float, float]:
    """CPUs and GPUs one actor needs: the most any plugin of the request (or its inputs) declares."""
    from video_extract.registry import default_registry
    from video_extract.spec import OutputSpec

    registry = default_registry()
    seen: set[str] = set()
    stack = []
    for spec in specs:
        try:
            operation = OutputSpec.of(spec).operation
            stack.append((registry.for_operation(operation.name).name, operation))
        except VideoExtractError:
            continue
    while stack:
        name, operation = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            needs = registry.plugin(name).requires(operation)  # what these parameters need (OCR on scenes: scene frames)
        except VideoExtractError:
            continue
        for need in needs:
            producer = registry.producer_of(need.type)
            if producer is not None:
                from video_extract.spec import make_operation

                stack.append((producer.name, make_operation(producer.operation, need.params)))
    manifests = [registry.manifests[n] for n in seen]
    cpus = max((m.resources.cpus for m in manifests), default=1.0)
    gpus = max((m.resources.gpus for m in manifests), default=0.0)
    return cpus, gpus


class RayEngine:
    name = "ray"

    def __init__(self, workers: int, settings: Settings, retries: int = 1, timeout: float | None = None, address: str | None = None):
        self.workers = max(1, workers)
        self.settings = settings
        self.retries = retries
        self.timeout = timeout
        self.address = address

    def _connect(self) -> bool:
        """Join ``address`` or start a local Ray; returns whether this call initialised Ray."""
        try:
            import ray
        except ImportError:
            raise UsageError("--engine ray needs the ray package (pip install ray)") from None
        if ray.is_initialized():
            return False
        try:
            if self.address:
                ray.init(address=self.address, log_to_driver=False, logging_level=logging.WARNING)
            else:
                ray.init(include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
            return True
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = f"the Ray cluster at {self.address}" if self.address else "a local Ray instance"
            raise VideoExtractError(f"cannot start or join {where}: {exc}") from None

    def run(self, tasks: list[Task], output_root: Path, report: Report) -> None:
        import ray
        from ray.exceptions import GetTimeoutError, RayActorError, RayTaskError

        initialised_here = self._connect()
        every_spec = {json.dumps(s, sort_keys=True): s for task in tasks for s in task.specs}
        cpus, gpus = request_resources(list(every_spec.values()))
        actor_class = ray.remote(num_cpus=cpus, num_gpus=gpus, max_restarts=0)(RayFileWorker)
        if not self.settings.threads:
            from dataclasses import replace

            self.settings = replace(self.settings, threads=max(1, int(cpus)))
        pending = list(tasks)
        actors: list = []
        idle: list[int] = []
        booting: dict = {}  # ready ref -> actor slot
        inflight: dict = {}  # result ref -> (actor slot, task, started)

        def spawn(slot: int | None = None) -> None:
            actor = actor_class.remote(self.settings)
            if slot is None:
                actors.append(actor)
                slot = len(actors) - 1
            else:
                actors[slot] = actor
            booting[actor.ready.remote()] = slot

        for _ in range(min(self.workers, len(tasks))):
            spawn()
        failed_boots = 0
        try:
            while pending or inflight:
                while idle and pending:
                    slot, task = idle.pop(), pending.pop(0)
                    task.attempts += 1
                    ref = actors[slot].process.remote(task.input, task.specs, str(output_root), task.batch)
                    inflight[ref] = (slot, task, time.monotonic())
                refs = list(booting) + list(inflight)
                if not refs:
                    raise VideoExtractError("no Ray actor is alive to take files")
                done, _ = ray.wait(refs, num_returns=1, timeout=0.5)
                for ref in done:
                    if ref in booting:
                        slot = booting.pop(ref)
                        try:
                            ray.get(ref)
                            idle.append(slot)
                        except (RayActorError, RayTaskError) as exc:
                            failed_boots += 1
                            if failed_boots > 3 * self.workers:
                                raise VideoExtractError(f"Ray actors keep failing to start: {exc}") from None
                            log.warning("a Ray actor failed to start (%s); starting another", type(exc).__name__)
                            ray.kill(actors[slot], no_restart=True)
                            spawn(slot)
                        continue
                    slot, task, _ = inflight.pop(ref)
                    try:
                        row = ray.get(ref)
                        row["attempts"] = task.attempts
                        report(row)
                        idle.append(slot)
                    except (RayActorError, RayTaskError, GetTimeoutError) as exc:
                        ray.kill(actors[slot], no_restart=True)
                        spawn(slot)
                        retry_or_fail(task, f"Ray worker died ({type(exc).__name__})", self.retries, pending, report)
                if self.timeout is not None:
                    now = time.monotonic()
                    for ref, (slot, task, began) in list(inflight.items()):
                        if now - began > self.timeout:
                            inflight.pop(ref)
                            ray.kill(actors[slot], no_restart=True)
                            spawn(slot)
                            retry_or_fail(task, f"timed out after {self.timeout:g} s (Ray actor killed)", self.retries, pending, report)
        finally:
            for actor in actors:
                ray.kill(actor, no_restart=True)
            if initialised_here:
                ray.shutdown()  # a joined cluster keeps running; a local one started here stops
