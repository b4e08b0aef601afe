"""Loaded models kept warm across requests, within a memory budget.

A long-lived process (the server's Client, a bulk worker, a Ray actor) keeps every model it
has loaded, so a second request pays no load. The budget bounds what they hold together: when
a load would pass it, the least recently used *idle* models are dropped first (references
released; the memory goes back to the allocator once nothing else holds them).

Idle means no running stage holds the model: a stage holds every model it loads through
``ctx.models`` until it ends, and a plugin that loads models in ``setup`` holds those while any
of its stages runs. Dropping a model a plugin's ``setup`` loaded tears that plugin down
(``Plugin.teardown``), so its next stage sets it up again; a stage is never torn down under.
A model that no idle one can make room for is loaded anyway: a running stage needs it, and the
budget is met again as soon as something is idle.

Footprint: the size of the model's files (every existing path in its key: a file, or the files
of a folder), known before loading so that room is made first. A model loaded from no path is
measured by the growth of the process's resident memory across its load (Linux), which also
counts what its first import allocated.

A process that makes one request and ends (the CLI on one input) keeps nothing for later:
``drop_unused_by`` lets each model go once no stage left of the request uses it.

The budget is the process's: ``$VIDEO_EXTRACT_MODEL_MEMORY`` (``4G``, ``none``), else half the
machine's memory, at most 4 GiB; ``Runtime(model_memory_budget=...)`` sets it.
"""

from __future__ import annotations

import gc
import itertools
import logging
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from video_extract.errors import ModelError, UsageError
from video_extract.fsutil import human_size, parse_size

log = logging.getLogger("video_extract")

DEFAULT_BUDGET = 4 * 1024**3


def default_budget() -> int | None:
    """``$VIDEO_EXTRACT_MODEL_MEMORY`` (bytes or ``4G``; ``none``: no limit), else half the RAM, at most 4 GiB."""
    env = os.environ.get("VIDEO_EXTRACT_MODEL_MEMORY")
    if env:
        try:
            return parse_size(env)
        except ValueError as exc:
            raise ModelError(f"VIDEO_EXTRACT_MODEL_MEMORY: {exc}") from None
    try:
        ram = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return DEFAULT_BUDGET
    return min(DEFAULT_BUDGET, ram // 2)


def files_size(key: tuple) -> int | None:
    """Bytes of the model files a load key names (its existing paths); None when it names none."""
    total = None
    for part in key:
        if not (isinstance(part, str) and os.sep in part):
            continue
        path = Path(part)
        try:
            if path.is_file():
                total = (total or 0) + path.stat().st_size
            elif path.is_dir():
                total = (total or 0) + sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
        except OSError:
            continue
    return total


def resident_bytes() -> int:
    """The process's resident memory (Linux ``/proc``); 0 where it cannot be read."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


@dataclass
class _Entry:
    value: Any
    size: int
    used: int  # when last used (a tick of the pool's clock): the LRU order
    pins: int = 0  # running stages holding it
    owners: set = field(default_factory=set)  # plugins whose setup keeps a reference to it
    users: set = field(default_factory=set)  # plugins whose stages loaded or used it


class StageScope:
    """What one running stage holds: the models it loads, and (through its plugin) what that
    plugin's ``setup`` loaded. Closed when the stage ends."""

    def __init__(self, pool: WarmModels, plugin: Any = None):
        self.pool = pool
        self.plugin = plugin
        self.keys: set[tuple] = set()
        self.in_setup = False


class WarmModels:
    """The process's loaded models: loaded once per key, kept across requests, dropped least
    recently used first (idle ones only) when a load would pass the budget."""

    def __init__(self, budget: int | None | str = "default"):
        self._budget = budget
        self._entries: dict[tuple, _Entry] = {}
        self._lock = threading.Lock()
        self._key_locks: dict[tuple, threading.Lock] = {}
        self._running: dict[Any, int] = {}  # plugin -> stages of it running now
        self._clock = itertools.count()
        #: Loads per key in this process (a reload after eviction counts again).
        self.loads: dict[tuple, int] = {}
        #: Evictions per key in this process.
        self.evictions: dict[tuple, int] = {}

    @property
    def budget(self) -> int | None:
        """Bytes the warm models may take together (None: no limit)."""
        if self._budget == "default":
            self._budget = default_budget()  # read when first needed: a bad value is an error then, not at import
        return self._budget  # type: ignore[return-value]

    # -- what the store and the executors call ---------------------------------------------------

    def load(self, key: tuple, loader: Callable[[], Any], scope: StageScope | None = None) -> Any:
        """The model for ``key``: the warm one, or ``loader()``'s (one load however many callers
        wait for it), after room was made for it."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._hold(key, entry, scope)
                return entry.value
            lock = self._key_locks.setdefault(key, threading.Lock())
        with lock:
            with self._lock:
                entry = self._entries.get(key)
                if entry is not None:
                    self._hold(key, entry, scope)
                    return entry.value
            estimate = files_size(key)
            with self._lock:
                dropped = self._make_room(estimate or 0, keep=key)
            _let_go(dropped)
            before = resident_bytes() if estimate is None else 0
            value = loader()
            size = max(0, resident_bytes() - before) if estimate is None else estimate
            with self._lock:
                entry = self._entries[key] = _Entry(value, size, next(self._clock))
                self.loads[key] = self.loads.get(key, 0) + 1
                self._hold(key, entry, scope)
                dropped = self._make_room(0, keep=key) if estimate is None else []  # measured only now
                held = self._used()
            _let_go(dropped)
            log.debug("model %s loaded (%s); %s of %s held", key[0], human_size(size), human_size(held), human_size(self.budget))
            return value

    def enter(self, plugin: Any = None) -> StageScope:
        """A stage of ``plugin`` starts: its models (and its plugin's setup) are not dropped until ``leave``."""
        with self._lock:
            if plugin is not None:
                self._running[plugin] = self._running.get(plugin, 0) + 1
        return StageScope(self, plugin)

    def leave(self, scope: StageScope) -> None:
        with self._lock:
            tick = next(self._clock)
            for key in scope.keys:
                entry = self._entries.get(key)
                if entry is not None:
                    entry.pins -= 1
                    entry.used = tick
            scope.keys.clear()
            if scope.plugin is not None:
                left = self._running.get(scope.plugin, 1) - 1
                if left:
                    self._running[scope.plugin] = left
                else:
                    self._running.pop(scope.plugin, None)

    def drop_unused_by(self, plugins: Iterable[Any]) -> bool:
        """Drop the idle models that no plugin in ``plugins`` has used (a model loaded outside any
        stage stays): what a process that makes one request calls as its stages end, so that the
        later stages of a long input run without the earlier ones' models beside them. A plugin
        is known to use a model only once it has loaded it: a model two plugins share is loaded
        again by the second. Whether any was dropped."""
        plugins = set(plugins)
        with self._lock:
            keys = [k for k, e in self._entries.items() if e.users and self._idle(e) and not e.users & plugins]  # owners are users too
            dropped = [self._drop(key, "no stage left needs it") for key in keys]
        _let_go(dropped)
        return bool(dropped)

    def set_budget(self, budget: int | str | None) -> None:
        """Change the budget (None: no limit); idle models over it are dropped now."""
        try:
            parsed = parse_size(budget)
        except ValueError as exc:
            raise UsageError(f"model memory budget: {exc}") from None
        with self._lock:
            self._budget = parsed
            dropped = self._make_room(0)
        _let_go(dropped)

    # -- looking in ---------------------------------------------------------------------------------

    def used(self) -> int:
        """Bytes the warm models take (by their footprint)."""
        with self._lock:
            return self._used()

    def held(self) -> dict[tuple, int]:
        """Warm models and their footprints, least recently used first."""
        with self._lock:
            return {k: e.size for k, e in sorted(self._entries.items(), key=lambda item: item[1].used)}

    def __contains__(self, key: tuple) -> bool:
        return key in self._entries

    # -- inside the lock ----------------------------------------------------------------------------

    def _used(self) -> int:
        return sum(e.size for e in self._entries.values())

    def _hold(self, key: tuple, entry: _Entry, scope: StageScope | None) -> None:
        entry.used = next(self._clock)
        if scope is None:
            return
        if scope.plugin is not None:
            entry.users.add(scope.plugin)
        if key not in scope.keys:
            scope.keys.add(key)
            entry.pins += 1
        if scope.in_setup and scope.plugin is not None:
            entry.owners.add(scope.plugin)

    def _idle(self, entry: _Entry) -> bool:
        return entry.pins == 0 and not any(self._running.get(owner) for owner in entry.owners)

    def _make_room(self, extra: int, keep: tuple | None = None) -> list[Any]:
        """Drop idle models, least recently used first, until ``extra`` more bytes fit."""
        if self.budget is None:
            return []
        dropped = []
        total = self._used()
        while total + extra > self.budget:
            idle = [(e.used, k) for k, e in self._entries.items() if k != keep and self._idle(e)]
            if not idle:
                log.debug("model budget %s passed: every warm model is in use", human_size(self.budget))
                break
            _, key = min(idle)
            total -= self._entries[key].size
            dropped.append(self._drop(key, f"to stay within {human_size(self.budget)}"))
        return dropped

    def _drop(self, key: tuple, why: str) -> Any:
        """Forget the model of ``key``; its value, to let go of outside the lock."""
        entry = self._entries.pop(key)
        self.evictions[key] = self.evictions.get(key, 0) + 1
        for owner in entry.owners:  # it keeps a reference from setup: set it up again next time
            owner.teardown()
            for other in self._entries.values():
                other.owners.discard(owner)
        log.debug("model %s dropped (%s) %s", key[0], human_size(entry.size), why)
        return entry.value


def _let_go(values: list[Any]) -> None:
    """Release dropped models outside the lock (a model's destructor may take a while)."""
    if values:
        values.clear()
        gc.collect()


_pool = WarmModels()


def warm_models() -> WarmModels:
    """The process's warm models."""
    return _pool


@contextmanager
def stage_scope(plugin: Any = None) -> Iterator[StageScope]:
    """Hold what a stage of ``plugin`` loads until the stage ends."""
    scope = _pool.enter(plugin)
    try:
        yield scope
    finally:
        _pool.leave(scope)
