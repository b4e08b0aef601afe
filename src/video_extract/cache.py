"""Content-addressed cache of stage outputs.

Key = BLAKE3 over (BLAKE3 of the input bytes, plugin name, plugin version, canonical
parameters, keys of the upstream stages), so a renamed or copied file still hits and any
change to code version, parameters or inputs misses.

An entry is a directory of the files a plugin wrote plus ``.entry.json``, written last. It is
built under ``tmp/`` and renamed into ``entries/`` in one step, so a reader (another process,
another node on a shared filesystem) sees a complete entry or none: a write killed half-way
leaves only garbage in ``tmp/``, which is swept later. When two processes race on one key, the
first rename wins and the other discards its copy.

The size cap is enforced by evicting least-recently-used entries (an entry's ``.entry.json``
mtime is its last use). Only the filesystem holds state, so several processes or machines can
share one cache directory without a lock server.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import blake3

from video_extract.errors import CacheError
from video_extract.fsutil import writer_is_dead, writer_tag

ENTRY_FILE = ".entry.json"
LAYOUT = "v1"
DEFAULT_MAX_BYTES = 20 * 1024**3


def default_cache_dir() -> Path:
    env = os.environ.get("VIDEO_EXTRACT_CACHE")
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_cache_dir("video-extract"))


_digests: dict[tuple, str] = {}
_digests_lock = threading.Lock()


def file_digest(path: Path) -> str:
    """BLAKE3 of a file's bytes (memory-mapped, multithreaded), memoised per (inode, size, mtime)."""
    st = path.stat()
    memo_key = (str(path.resolve()), st.st_ino, st.st_size, st.st_mtime_ns)
    with _digests_lock:
        if memo_key in _digests:
            return _digests[memo_key]
    hasher = blake3.blake3(max_threads=blake3.blake3.AUTO)
    hasher.update_mmap(path)
    digest = hasher.hexdigest()
    with _digests_lock:
        _digests[memo_key] = digest
    return digest


def stage_key(input_digest: str, plugin: str, version: str, params: dict[str, Any], upstream: list[str]) -> str:
    text = json.dumps(
        {"input": input_digest, "plugin": plugin, "version": version, "params": params, "upstream": upstream},
        sort_keys=True,
        separators=(",", ":"),
    )
    return blake3.blake3(text.encode()).hexdigest()[:40]


@dataclass
class Entry:
    key: str
    path: Path
    data: dict[str, Any]
    created: datetime
    size: int


class Cache:
    def __init__(self, root: str | Path | None = None, max_bytes: int | None = DEFAULT_MAX_BYTES):
        self.root = Path(root).expanduser() if root is not None else default_cache_dir()
        self.max_bytes = max_bytes
        self._entries = self.root / LAYOUT / "entries"
        self._tmp = self.root / LAYOUT / "tmp"
        try:
            self._entries.mkdir(parents=True, exist_ok=True)
            self._tmp.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CacheError(f"cannot create cache directory: {exc.strerror or exc}", self.root) from None
        self._bytes_since_check = 0
        self._last_check = 0.0
        self._lock = threading.Lock()

    def _entry_dir(self, key: str) -> Path:
        return self._entries / key[:2] / key

    # -- reading ------------------------------------------------------------------------------

    def get(self, key: str, invalidate_before: datetime | None = None) -> Entry | None:
        """The complete entry for ``key``, or None. A hit refreshes the entry's LRU time."""
        path = self._entry_dir(key)
        meta_file = path / ENTRY_FILE
        try:
            meta = json.loads(meta_file.read_text())
        except FileNotFoundError:
            if path.exists():  # a directory without its marker was never committed: discard
                self._discard(path)
            return None
        except (OSError, ValueError):
            self._discard(path)
            return None
        created = datetime.fromisoformat(meta["created"])
        if invalidate_before is not None and created < _aware(invalidate_before):
            self._discard(path)  # retired: make room for the entry that replaces it
            return None
        try:
            os.utime(meta_file)
        except OSError:
            pass  # read-only cache: still a hit
        return Entry(key=key, path=path, data=meta.get("data") or {}, created=created, size=meta.get("size", 0))

    # -- writing ------------------------------------------------------------------------------

    def new_work_dir(self, key: str) -> Path:
        """An empty directory for a plugin to write into; commit it with ``commit``."""
        work = self._tmp / f"{key}.{writer_tag()}"
        work.mkdir(parents=True)
        return work

    def commit(self, key: str, work_dir: Path, data: dict[str, Any], describe: dict[str, Any], invalidate_before: datetime | None = None) -> Entry:
        """Atomically turn ``work_dir`` into the entry for ``key`` (or adopt a concurrent winner's)."""
        size = _tree_size(work_dir)
        created = datetime.now(UTC)
        meta = {"key": key, "created": created.isoformat(), "size": size, "data": data, **describe}
        (work_dir / ENTRY_FILE).write_text(json.dumps(meta, indent=1, default=str))
        final = self._entry_dir(key)
        final.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(3):
            try:
                os.rename(work_dir, final)
                break
            except OSError as exc:
                if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                    raise
            # Another writer got there first: adopt its entry if it is sound and current,
            # else remove it (only a complete, current entry is ever kept) and try again.
            existing = self.get(key, invalidate_before)
            if existing is not None:
                shutil.rmtree(work_dir, ignore_errors=True)
                return existing
            self._discard(final)
        else:
            raise CacheError(f"cannot commit cache entry {key}: the entry keeps reappearing", self.root)
        self._note_write(size)
        return Entry(key=key, path=final, data=data, created=created, size=size)

    def abandon(self, work_dir: Path) -> None:
        shutil.rmtree(work_dir, ignore_errors=True)

    # -- housekeeping -------------------------------------------------------------------------

    def _note_write(self, size: int) -> None:
        if self.max_bytes is None:
            return
        with self._lock:
            self._bytes_since_check += size
            due = self._last_check == 0.0 or self._bytes_since_check > self.max_bytes * 0.02 or time.monotonic() - self._last_check > 30
            if not due:
                return
            self._bytes_since_check = 0
            self._last_check = time.monotonic()
        self.evict()

    def _scan(self) -> list[tuple[float, int, Path, dict]]:
        rows = []
        for shard in self._entries.iterdir() if self._entries.exists() else ():
            for path in shard.iterdir():
                meta_file = path / ENTRY_FILE
                try:
                    st = meta_file.stat()
                    meta = json.loads(meta_file.read_text())
                except (OSError, ValueError):
                    continue
                rows.append((st.st_mtime, int(meta.get("size", 0)), path, meta))
        return rows

    def evict(self, max_bytes: int | None = None) -> tuple[int, int]:
        """Remove least-recently-used entries until the cache fits; returns (entries, bytes) removed."""
        limit = self.max_bytes if max_bytes is None else max_bytes
        self._sweep_tmp()
        if limit is None:
            return 0, 0
        rows = sorted(self._scan(), key=lambda r: r[0])
        total = sum(r[1] for r in rows)
        removed = freed = 0
        target = limit * 0.9 if total > limit else total
        for _, size, path, _ in rows:
            if total <= target:
                break
            self._discard(path)
            total -= size
            removed += 1
            freed += size
        return removed, freed

    def _discard(self, path: Path) -> None:
        """Remove an entry so that no reader sees it half-deleted: rename away first."""
        trash = self._tmp / f"trash-{uuid.uuid4().hex}"
        try:
            os.rename(path, trash)
        except OSError:
            return
        shutil.rmtree(trash, ignore_errors=True)

    def _sweep_tmp(self) -> None:
        for path in self._tmp.iterdir() if self._tmp.exists() else ():
            if path.name.startswith("trash-") or writer_is_dead(path):
                shutil.rmtree(path, ignore_errors=True)

    def stats(self) -> dict[str, Any]:
        self._sweep_tmp()
        rows = self._scan()
        by_plugin: dict[str, dict[str, int]] = {}
        for _, size, _, meta in rows:
            slot = by_plugin.setdefault(str(meta.get("plugin", "?")), {"entries": 0, "bytes": 0})
            slot["entries"] += 1
            slot["bytes"] += size
        return {
            "root": str(self.root),
            "entries": len(rows),
            "bytes": sum(r[1] for r in rows),
            "max_bytes": self.max_bytes,
            "plugins": dict(sorted(by_plugin.items())),
        }

    def clear(self, plugin: str | None = None) -> tuple[int, int]:
        """Remove every entry (or one plugin's); returns (entries, bytes) removed."""
        removed = freed = 0
        for _, size, path, meta in self._scan():
            if plugin is None or meta.get("plugin") == plugin:
                self._discard(path)
                removed += 1
                freed += size
        self._sweep_tmp()
        return removed, freed


def _tree_size(path: Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.stat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
