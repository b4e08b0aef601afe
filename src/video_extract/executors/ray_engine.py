"""The Ray engine: the same per-file work as the local engine, on a Ray cluster.

A pool of ``--workers`` actors, each holding a FileWorker (a Runtime with its plugins and
models loaded once), receives files: the one it runs and the next, queued in Ray (``AHEAD``),
so that an actor starts its next file as it finishes one rather than after a round trip
through this process. Each actor declares the CPUs and GPUs the requested plugins' manifests
ask for, so Ray places it where those exist. Ray places the actors; the bulk scheduler
(``bulk.Scheduler``) decides which file goes next, retries and times out, exactly as it does
for local worker processes.

Inputs, outputs and the cache must be on a path every node sees (NFS, a shared volume): the
actors read inputs and write outputs and cache entries themselves.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from video_extract.errors import UsageError, VideoExtractError
from video_extract.executors.bulk import FileWorker, Outcome, Requeued, Settings, Task

log = logging.getLogger("video_extract")

#: Files queued on an actor behind the one it runs. Without it an actor idles for a round trip
#: between files (its result to this process, the next file back: ~3 ms of every ~80 ms file on
#: 2 cores). None are queued when files have a timeout (a file's clock starts when it is handed
#: over, and a queued one would spend its time waiting), nor after an actor died holding two
#: (``RayEngine._lost``).
AHEAD = 1


#: Ray namespace of the worker pools kept between commands (``--ray-keep-workers``).
NAMESPACE = "video-extract"


class RayFileWorker(FileWorker):
    """A FileWorker as a Ray actor. Kept between commands (``keep_seconds``), it ends itself
    once it has been idle that long, so a pool nobody uses gives its memory back."""

    def __init__(self, settings: Settings, keep_seconds: float | None = None):
        super().__init__(settings)
        self._busy = 0
        self._idle_since = time.monotonic()
        if keep_seconds:
            threading.Thread(target=self._retire_when_idle, args=(keep_seconds,), daemon=True, name="video-extract-idle").start()

    def ready(self) -> dict:
        """Where the actor runs (a kept pool's actors are found by name and asked again)."""
        import ray

        return {"node": ray.get_runtime_context().get_node_id(), "pid": os.getpid(), "niceness": full_priority()}

    def process(self, input_path, specs, output_root, batch, name=None):
        import ray

        self._busy += 1
        try:
            row = super().process(input_path, specs, output_root, batch, name)
        finally:
            self._busy -= 1
            self._idle_since = time.monotonic()
        assert row.worker is not None
        row.worker.node = ray.get_runtime_context().get_node_id()
        return row

    def _idle_for(self) -> float:
        return 0.0 if self._busy else time.monotonic() - self._idle_since

    def _retire_when_idle(self, keep_seconds: float) -> None:
        import ray

        me = ray.get_runtime_context().current_actor
        while True:
            time.sleep(max(0.05, min(keep_seconds - self._idle_for(), 10.0)))
            if self._idle_for() >= keep_seconds:
                # in the actor's own line, after any file handed over before it; it answers
                # (instead of ending) when a file came in the meantime
                try:
                    ray.get(me.retire.remote(keep_seconds))
                except Exception:  # noqa: BLE001 - it ended: this process is going
                    return

    def retire(self, keep_seconds: float) -> None:
        from ray.actor import exit_actor

        if self._idle_for() >= keep_seconds:
            exit_actor()


def absolute(location: str) -> str:
    """A path relative to this process's folder, made absolute: actors run in a folder of Ray's
    (on this node or another). URLs as they are."""
    return location if "://" in location or os.path.isabs(location) else os.path.abspath(location)


def full_priority() -> int:
    """Take this worker from the niceness Ray starts it at (15) to 0, every thread of it (Linux
    nice is per thread), where the process may (root, CAP_SYS_NICE); the niceness it ends at."""
    try:
        threads = [int(t) for t in os.listdir("/proc/self/task")]
    except OSError:
        threads = [0]
    for tid in threads:
        try:
            os.setpriority(os.PRIO_PROCESS, tid, 0)
        except OSError:
            pass
    return os.getpriority(os.PRIO_PROCESS, 0)


def pool_name(settings: Settings, cpus: float, gpus: float) -> str:
    """The name of the kept pool for these settings: commands with the same settings, resources
    and code share it; any difference (another cache, a new version) gets a pool of its own."""
    import blake3

    package = Path(__file__).resolve().parents[1]  # video_extract/: its newest source stands for the code
    newest = max(p.stat().st_mtime_ns for p in package.rglob("*.py"))
    key = f"{package}|{newest}|{settings!r}|{cpus}|{gpus}"
    return f"video-extract-{blake3.blake3(key.encode('utf-8', 'surrogateescape')).hexdigest()[:12]}"


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
    """The ``Engine`` of bulk mode on Ray: a pool of actors, each a FileWorker."""

    name = "ray"

    def __init__(self, workers: int, settings: Settings, address: str | None = None, keep_minutes: float | None = None):
        if keep_minutes is not None and (not address or keep_minutes <= 0):
            why = "a positive number of minutes" if address else "--ray-address: a Ray started by the command stops with it"
            raise UsageError(f"--ray-keep-workers needs {why}")
        self.workers = max(1, workers)
        self.settings = settings
        self.address = address
        self.keep_seconds = keep_minutes * 60 if keep_minutes else None
        self.pool = ""  # the kept pool's actor name prefix (``start``)
        self.kept: set[int] = set()  # slots whose actor is the kept pool's (not killed at the end)
        self.actors: list = []
        self.ready: set[int] = set()  # slots of actors that took (or can take) files
        self.load: dict[int, int] = {}  # slot -> its files in flight (running and queued)
        self.depth = 1 + AHEAD  # files in flight per actor
        self.booting: dict = {}  # ready() ref -> slot
        self.handed_back: list[Outcome] = []  # files queued on an actor that was cancelled, for the next poll
        self.inflight: dict = {}  # process() ref -> (slot, task), in the order they were handed over
        self.failed_boots = 0
        self.initialised_here = False
        self.reniced: set[int] = set()  # slots whose actor Ray started at niceness 0

    def _connect(self) -> bool:
        """Join ``address`` or start a local Ray; returns whether this call initialised Ray."""
        # With this driver reporting its task events (the dashboard's task history, from the
        # submitting side), disconnecting took 0.25 s at the end of every bulk command on Ray,
        # measured; without, 5 ms. The actors still report the files they run. Read once, as
        # Ray's library loads: set before the first ``import ray``; an operator's value stands.
        os.environ.setdefault("RAY_task_events_report_interval_ms", "0")
        try:
            import ray
        except ImportError:
            raise UsageError("--engine ray needs the ray package: pip install 'video-extract[ray]'") from None
        if ray.is_initialized():
            return False
        main = threading.current_thread() is threading.main_thread()
        on_sigterm = signal.getsignal(signal.SIGTERM) if main else None
        try:
            if self.address:
                ray.init(address=self.address, log_to_driver=False, logging_level=logging.WARNING)
            else:
                ray.init(include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
            return True
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = f"the Ray cluster at {self.address}" if self.address else "a local Ray instance"
            raise VideoExtractError(f"cannot start or join {where}: {exc}") from None
        finally:
            if main and callable(on_sigterm):  # ray.init puts its own in (an exit): the command's stays
                signal.signal(signal.SIGTERM, on_sigterm)

    def start(self, tasks: Sequence[Task], timed: bool = False) -> None:
        self.depth = 1 if timed else 1 + AHEAD
        self.initialised_here = self._connect()  # first: it names the extra when ray is missing
        import ray

        every_spec = {json.dumps(s, sort_keys=True): s for task in tasks for s in task.specs}
        cpus, gpus = request_resources(list(every_spec.values()))
        # Ray starts workers at nice 15 (to keep its raylet responsive), so on a node with any
        # other load the actors, which are the work, get a sliver of the CPU: measured 3.5x
        # slower per file than local workers beside one busy process. An actor raises its own
        # priority where it may; where it may not, actors are started again with niceness 0
        # asked of Ray the way its job supervisor does (a runtime_env: new worker processes
        # instead of Ray's prestarted ones, ~0.8 s more per actor, so not the first choice).
        options = {"num_cpus": cpus, "num_gpus": gpus, "max_restarts": 0}
        self.actor_class = ray.remote(**options)(RayFileWorker)
        self.reniced_class = ray.remote(**options, runtime_env={"env_vars": {"RAY_worker_niceness": "0"}})(RayFileWorker)
        if not self.settings.threads:
            self.settings = replace(self.settings, threads=max(1, int(cpus)))
        folders = {"cache_dir": self.settings.cache_dir, "models_dir": self.settings.models_dir}
        self.settings = replace(self.settings, **{k: absolute(v) for k, v in folders.items() if v})
        if self.keep_seconds:
            self.pool = pool_name(self.settings, cpus, gpus)
        for _ in range(min(self.workers, len(tasks))):
            self._spawn()

    def _spawn(self, slot: int | None = None) -> None:
        keep = bool(self.keep_seconds) and slot is None  # a replacement lives as long as this command
        new_slot = len(self.actors) if slot is None else slot
        actor_class = self.actor_class
        if keep:
            # the actor of that name if a command left it running, else a new one that outlives this command
            actor_class = actor_class.options(name=f"{self.pool}-{new_slot}", namespace=NAMESPACE, lifetime="detached", get_if_exists=True)
        actor = actor_class.remote(self.settings, self.keep_seconds if keep else None)
        if slot is None:
            self.actors.append(actor)
            slot = new_slot
        else:
            self.actors[slot] = actor
        (self.kept.add if keep else self.kept.discard)(slot)
        self.ready.discard(slot)
        self.load[slot] = 0
        if self.actor_class is self.reniced_class:
            self.reniced.add(slot)
        else:
            self.reniced.discard(slot)
        self.booting[actor.ready.remote()] = slot

    def _replace(self, slot: int) -> list[Outcome]:
        """A new actor in ``slot``; the files the old one still held, handed back uncharged
        (``Requeued``): the caller charges the one that was running, where it can tell."""
        import ray

        ray.kill(self.actors[slot], no_restart=True)
        queued = [ref for ref, (s, _) in self.inflight.items() if s == slot]
        self._spawn(slot)
        return [(self.inflight.pop(ref)[1], Requeued("its Ray worker was replaced")) for ref in queued]

    def idle(self) -> int:
        return sum(max(0, self.depth - self.load[slot]) for slot in self.ready)

    def submit(self, task: Task, output_root: Path) -> None:
        slot = min((s for s in self.ready if self.load[s] < self.depth), key=lambda s: self.load[s])
        ref = self.actors[slot].process.remote(absolute(task.input), task.specs, str(output_root.absolute()), task.batch, task.name)
        self.inflight[ref] = (slot, task)
        self.load[slot] += 1

    def poll(self, timeout: float) -> list[Outcome]:
        import ray
        from ray.exceptions import GetTimeoutError, RayActorError, RayTaskError

        outcomes, self.handed_back = self.handed_back, []
        if outcomes:  # files of a cancelled file's actor, to go back in line first
            return outcomes
        refs = list(self.booting) + list(self.inflight)
        if not refs:
            raise VideoExtractError("no Ray actor is alive to take files")
        done, _ = ray.wait(refs, num_returns=1, timeout=timeout)
        for ref in done:
            if ref in self.booting:
                slot = self.booting.pop(ref)
                try:
                    booted = ray.get(ref)
                    if booted["niceness"] > 0 and slot not in self.reniced:
                        if self.actor_class is not self.reniced_class:
                            log.info("Ray actors may not raise their own priority here; starting them with niceness 0 asked of Ray")
                            self.actor_class = self.reniced_class
                        self._replace(slot)
                        continue
                    self.ready.add(slot)
                except (RayActorError, RayTaskError) as exc:
                    self.failed_boots += 1
                    if self.failed_boots > 3 * self.workers:
                        raise VideoExtractError(f"Ray actors keep failing to start: {exc}") from None
                    log.warning("a Ray actor failed to start (%s); starting another", type(exc).__name__)
                    self._replace(slot)
                continue
            if ref not in self.inflight:  # handed back already: its actor was replaced
                continue
            slot, task = self.inflight[ref]
            try:
                row = ray.get(ref)
            except (RayActorError, RayTaskError, GetTimeoutError) as exc:
                outcomes += self._lost(slot, f"Ray worker died ({type(exc).__name__})")
                continue
            outcomes.append(self._done(ref, row))
        return outcomes

    def _done(self, ref, row) -> Outcome:
        slot, task = self.inflight.pop(ref)
        self.load[slot] -= 1
        if row.input == absolute(task.input):
            row.input = task.input  # as the user gave it, as local workers report it
        return task, row

    def _lost(self, slot: int, why: str) -> list[Outcome]:
        """The actor in ``slot`` failed, and every file it held with it. Files whose rows came
        back keep them. One file left: it was running, and gets ``why`` (a retry used). Two: which
        one was running cannot be told (a finished file's row can die with the actor before it
        reaches this process, measured), so neither is charged, both go back in line, and from
        then on each actor holds one file at a time, so that the next death names its file."""
        import ray

        mine = [ref for ref, (s, _) in self.inflight.items() if s == slot]
        ready, _ = ray.wait(mine, num_returns=len(mine), timeout=0)
        outcomes: list[Outcome] = []
        for ref in mine:
            if ref in ready:
                try:
                    outcomes.append(self._done(ref, ray.get(ref)))
                except Exception:  # noqa: BLE001 - a failed file of the dead actor: dealt with below
                    pass
        handed_back = self._replace(slot)
        if len(handed_back) == 1:
            return outcomes + [(handed_back[0][0], why)]
        if handed_back and self.depth > 1:
            log.info("a Ray actor died holding %d files; each actor now takes one file at a time", len(handed_back))
            self.depth = 1
        return outcomes + handed_back

    def cancel(self, task: Task) -> None:
        for ref, (slot, running) in list(self.inflight.items()):
            if running is task:
                del self.inflight[ref]
                self.handed_back += self._replace(slot)

    def close(self) -> None:
        import ray

        for slot, actor in enumerate(self.actors):
            if slot not in self.kept:  # a kept pool's actors wait for the next command (or their idle time)
                ray.kill(actor, no_restart=True)
        if self.initialised_here:
            ray.shutdown()  # a joined cluster keeps running; a local one started here stops
