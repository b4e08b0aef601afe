"""Content-addressed cache of stage outputs.

Key = BLAKE3 over (BLAKE3 of the input bytes, plugin name, plugin version, canonical
parameters, keys of the upstream stages), so a renamed or copied file still hits and any
change to code version, parameters or inputs misses.

An entry is a directory of the files a plugin wrote plus ``.entry.json``, written last. It is
built under ``tmp/`` and renamed into ``entries/`` in one step, so a reader (another process,
another node on a shared filesystem) sees a complete entry or none: a write killed half-way
leaves only garbage in ``tmp/``, which is swept later. When two processes race on one key, the
first rename wins and the other discards its copy.

Trust: ``.entry.json`` records each file's size and BLAKE3 digest. A hit checks the sizes
always and the digests when ``verify="full"``; an entry that fails (a truncated, deleted or
altered file, a disk error) is logged once, removed and reported as a miss, so the stage is
recomputed and the run still succeeds.

Leases: a plan holds a shared ``flock`` on ``locks/…/{key}.lock`` for every entry it reads or
writes, from before the lookup until the file is finished. Eviction takes the lock exclusively
without waiting and skips entries it cannot get, so nothing is removed from under a running
stage, in this process or another. The kernel drops the locks of a process that dies, so a
crash leaves no lease behind.

The size cap is enforced by evicting least-recently-used entries (an entry's ``.entry.json``
mtime is its last use). Only the filesystem holds state, so several processes or machines can
share one cache directory without a lock server.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import shutil
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import blake3

from video_extract.errors import CacheError
from video_extract.fsutil import human_size, parse_size, writer_is_dead, writer_tag

log = logging.getLogger("video_extract")

ENTRY_FILE = ".entry.json"
LAYOUT = "v1"
DEFAULT_MAX_BYTES = 20 * 1024**3
#: What a hit checks: ``size`` (a stat per file) or ``full`` (sizes and BLAKE3 digests). The
#: default is ``size``: on the warm-cache benchmark it costs about 2 % of the run, ``full`` about
#: 30 % (hashing 7.5 MB of entries at ~2 GB/s on 2 cores).
VERIFY_POLICIES = ("size", "full")
DEFAULT_VERIFY = "size"


def default_max_bytes() -> int | None:
    """The size cap: ``$VIDEO_EXTRACT_CACHE_MAX_SIZE`` (e.g. ``50G``, ``none``), else 20 GiB."""
    env = os.environ.get("VIDEO_EXTRACT_CACHE_MAX_SIZE")
    if not env:
        return DEFAULT_MAX_BYTES
    try:
        return parse_size(env)
    except ValueError as exc:
        raise CacheError(f"VIDEO_EXTRACT_CACHE_MAX_SIZE: {exc}") from None


def default_verify() -> str:
    """What a hit checks: ``$VIDEO_EXTRACT_CACHE_VERIFY`` (``size`` or ``full``), else ``size``."""
    return os.environ.get("VIDEO_EXTRACT_CACHE_VERIFY") or DEFAULT_VERIFY


def default_cache_dir() -> Path:
    env = os.environ.get("VIDEO_EXTRACT_CACHE")
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_cache_dir("video-extract"))


_digests: dict[tuple, str] = {}
_digests_lock = threading.Lock()


def file_digest(path: Path) -> str:
    """BLAKE3 of a file's bytes (memory-mapped, multithreaded), memoised per (device, inode, size,
    mtime): the file itself, by whatever path it is named (no path to resolve on every request)."""
    st = path.stat()
    memo_key = _memo_key(st)
    with _digests_lock:
        if memo_key in _digests:
            return _digests[memo_key]
    digest = _blake3_of(path, st.st_size)
    with _digests_lock:
        _digests[memo_key] = digest
    return digest


def remember_digest(path: Path, digest: str) -> None:
    """Record a digest computed elsewhere (while a download was spooled), so ``file_digest``
    does not read the file a second time."""
    st = path.stat()
    with _digests_lock:
        _digests[_memo_key(st)] = digest


def _memo_key(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _blake3_of(path: Path | str, size: int) -> str:
    hasher = blake3.blake3(max_threads=blake3.blake3.AUTO) if size >= 1 << 20 else blake3.blake3()
    if size:
        hasher.update_mmap(path)
    return hasher.hexdigest()


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


class Lease:
    """A shared lock on one key: while it is held, eviction leaves that entry alone."""

    def __init__(self, fd: int | None):
        self._fd: int | None = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    def try_exclusive(self) -> bool:
        """Upgrade to exclusive if no one else holds the key (to remove a damaged entry safely)."""
        assert self._fd is not None
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False

    def share(self) -> None:
        assert self._fd is not None
        fcntl.flock(self._fd, fcntl.LOCK_SH)


#: A cache's disk with less free space than this is full, for a write that failed without naming its file.
FULL_BELOW = 16 << 20


#: What a write in a cache this process may not change fails with (a full disk is another matter: ``refuses``).
_NOT_OURS = (errno.EROFS, errno.EACCES, errno.EPERM)


def _writable(folder: Path) -> bool:
    """Whether this process can make a file in ``folder`` (tried: permission bits say nothing
    for root, nor for a read-only mount)."""
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".probe-", dir=folder))
    except OSError as exc:
        return exc.errno not in _NOT_OURS  # full, say: writes say so themselves
    return True


class Cache:
    def __init__(self, root: str | Path | None = None, max_bytes: int | None | str = "default", verify: str | None = None):
        """``max_bytes``: the cap (None: no cap; default from the environment, else 20 GiB);
        ``verify``: ``size`` or ``full`` (default from the environment, else ``size``)."""
        max_bytes = default_max_bytes() if max_bytes == "default" else parse_size(max_bytes)
        verify = verify or default_verify()
        if verify not in VERIFY_POLICIES:
            raise CacheError(f"unknown cache verification {verify!r}: use one of {', '.join(VERIFY_POLICIES)}")
        self.root = Path(root).expanduser() if root is not None else default_cache_dir()
        self.max_bytes = max_bytes
        self.verify = verify
        self._entries = self.root / LAYOUT / "entries"
        self._tmp = self.root / LAYOUT / "tmp"
        self._locks = self.root / LAYOUT / "locks"
        try:
            for folder in (self._entries, self._tmp, self._locks):
                folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CacheError(f"cannot create cache directory: {exc.strerror or exc}", self.root) from None
        self._bytes_since_check = 0
        self._last_check = 0.0
        self._lock = threading.Lock()
        self._said_full = False
        #: A cache this process may not write (a read-only mount, another user's folder): its
        #: entries are served, no lock taken, nothing stored or removed. Found by the first lease
        #: (the first write of any run), not tried at start-up.
        self.read_only = False

    def _entry_dir(self, key: str) -> Path:
        return self._entries / key[:2] / key

    def _lock_file(self, key: str) -> Path:
        return self._locks / key[:2] / f"{key}.lock"

    # -- leases -------------------------------------------------------------------------------

    def lease(self, key: str) -> Lease:
        """Hold ``key`` against eviction until ``release()``; take it before ``get``. (Nothing to
        hold in a read-only cache: this process evicts nothing there, and cannot make a lock file.)"""
        if self.read_only:
            return Lease(None)
        path = self._lock_file(key)
        while True:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                if exc.errno not in _NOT_OURS:
                    raise
                self._turn_read_only()
                return Lease(None)
            fcntl.flock(fd, fcntl.LOCK_SH)
            # An evictor unlinks the lock file while holding it exclusively: if ours was
            # unlinked meanwhile, it guards nothing, so take the current one instead.
            try:
                if os.fstat(fd).st_ino == os.stat(path).st_ino:
                    return Lease(fd)
            except FileNotFoundError:
                pass
            os.close(fd)

    def _try_claim(self, key: str) -> int | None:
        """An exclusive lock on ``key`` if no plan holds it (the evictor's side), else None."""
        path = self._lock_file(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        return fd

    def _release_claim(self, key: str, fd: int) -> None:
        try:
            self._lock_file(key).unlink()
        except OSError:
            pass
        os.close(fd)

    # -- reading ------------------------------------------------------------------------------

    def get(self, key: str, invalidate_before: datetime | None = None, lease: Lease | None = None) -> Entry | None:
        """The complete, verified entry for ``key``, or None. A hit refreshes the entry's LRU time.

        A damaged entry is removed when no other plan is using it (``lease`` is the caller's
        hold on the key; without one the entry is removed at once).
        """
        path = self._entry_dir(key)
        meta_file = path / ENTRY_FILE
        try:
            meta = json.loads(meta_file.read_text())
        except FileNotFoundError:
            if path.exists():  # a directory without its marker was never committed: discard
                self._discard_damaged(path, lease)
            return None
        except (OSError, ValueError):
            self._discard_damaged(path, lease)
            return None
        try:
            created = datetime.fromisoformat(meta["created"]) if meta.get("check") == _meta_check(meta) else None
        except (AttributeError, KeyError, TypeError, ValueError):
            created = None
        if created is None:
            plugin = meta.get("plugin", "?") if isinstance(meta, dict) else "?"
            self.reject(path, str(plugin), f"its {ENTRY_FILE} does not match its own checksum (damaged, or written by an older version)", lease)
            return None
        if invalidate_before is not None and created < _aware(invalidate_before):
            self._discard_damaged(path, lease)  # retired: make room for the entry that replaces it
            return None
        problem = self._damage(path, meta)
        if problem:
            self.reject(path, str(meta.get("plugin", "?")), problem, lease)
            return None
        try:
            os.utime(meta_file)
        except OSError:
            pass  # read-only cache: still a hit
        return Entry(key=key, path=path, data=meta.get("data") or {}, created=created, size=meta.get("size", 0))

    def reject(self, path: Path, plugin: str, why: str, lease: Lease | None = None) -> None:
        """Log once and remove an entry found damaged (when no other plan is reading it)."""
        log.warning("cached %s output %s is damaged: %s; removed, recomputing", plugin, path.name[:12], why)
        self._discard_damaged(path, lease)

    def _damage(self, path: Path, meta: dict) -> str | None:
        """What is wrong with an entry's files, or None when they are as recorded."""
        files = meta.get("files")
        if not isinstance(files, dict):
            return "it records no file sizes or digests (written by an older version)"
        for name, (size, digest) in files.items():
            target = path / name
            try:
                actual = os.stat(target).st_size
            except OSError:
                return f"{name} is missing"
            if actual != size:
                return f"{name} is {actual} bytes, {size} were stored"
            if self.verify == "full":
                try:
                    found = _blake3_of(target, size)
                except OSError as exc:
                    return f"{name} cannot be read ({exc.strerror or exc})"
                if found != digest:
                    return f"{name} does not match its stored BLAKE3 digest"
        return None

    # -- writing ------------------------------------------------------------------------------

    def new_work_dir(self, key: str) -> Path:
        """An empty directory for a plugin to write into; commit it with ``commit``."""
        work = self._tmp / f"{key}.{writer_tag()}"
        work.mkdir(parents=True)
        return work

    def commit(
        self,
        key: str,
        work_dir: Path,
        data: dict[str, Any],
        describe: dict[str, Any],
        invalidate_before: datetime | None = None,
        lease: Lease | None = None,
    ) -> Entry | None:
        """Atomically turn ``work_dir`` into the entry for ``key`` (or adopt a concurrent winner's).

        None when the entry is not kept: it is larger than the whole cap, or a damaged entry
        under the same key is still in another plan's hands. ``work_dir`` is then left for the
        caller, who uses it for this run only.
        """
        files = _file_digests(work_dir)
        size = sum(size for size, _ in files.values())
        if self.max_bytes is not None and size > self.max_bytes:
            log.warning(
                "%s output of %s is larger than the whole cache (%s): used for this run, not kept",
                describe.get("plugin", "a stage's"),
                human_size(size),
                human_size(self.max_bytes),
            )
            return None
        created = datetime.now(UTC)
        meta = json.loads(json.dumps({"key": key, "created": created.isoformat(), "size": size, "data": data, **describe, "files": files}, default=str))
        meta["check"] = _meta_check(meta)
        (work_dir / ENTRY_FILE).write_text(json.dumps(meta, indent=1))
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
            existing = self.get(key, invalidate_before, lease)
            if existing is not None:
                shutil.rmtree(work_dir, ignore_errors=True)
                return existing
            if final.exists():  # damaged, but another plan holds it: do not pull it away
                (work_dir / ENTRY_FILE).unlink(missing_ok=True)
                return None
        else:
            raise CacheError(f"cannot commit cache entry {key}: the entry keeps reappearing", self.root)
        self._note_write(size)
        return Entry(key=key, path=final, data=data, created=created, size=size)

    def abandon(self, work_dir: Path) -> None:
        shutil.rmtree(work_dir, ignore_errors=True)

    def _turn_read_only(self) -> None:
        with self._lock:
            said, self.read_only = self.read_only, True
        if not said:
            log.warning("the cache at %s is read-only here: its entries are used, new results are not kept", self.root)

    def refuses(self, exc: BaseException) -> bool:
        """Whether ``exc``, raised by a stage writing into this cache, says the cache's disk has
        no room for it (full, over quota): the stage then runs without the cache, and the run
        goes on (said once per cache, in the log), where it failed every file."""
        if not isinstance(exc, OSError) or exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            return False
        if exc.filename is not None:
            if not os.path.realpath(exc.filename).startswith(os.path.realpath(self.root) + os.sep):
                return False  # another disk: not the cache's to answer for
        elif exc.errno == errno.ENOSPC and shutil.disk_usage(self.root).free >= FULL_BELOW:
            return False  # a write without a name (to an open file) on a disk that has room: not the cache's
        with self._lock:
            said, self._said_full = self._said_full, True
        if not said:
            log.warning("the cache at %s has no room (%s): stages that do not fit run without it", self.root, os.strerror(exc.errno))
        return True

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
                    rows.append((st.st_mtime, int(meta.get("size", 0)), path, meta))
                except (OSError, ValueError, TypeError, AttributeError):
                    continue  # damaged: found and removed by the next lookup of its key
        return rows

    def evict(self, max_bytes: int | None = None) -> tuple[int, int]:
        """Remove least-recently-used entries no plan is using until the cache fits; returns (entries, bytes) removed."""
        if self.read_only:
            return 0, 0
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
            if not self._remove_unleased(path):
                continue
            total -= size
            removed += 1
            freed += size
        return removed, freed

    def _remove_unleased(self, path: Path) -> bool:
        fd = self._try_claim(path.name)
        if fd is None:
            return False  # in use by a running plan
        try:
            return self._discard(path)
        finally:
            self._release_claim(path.name, fd)

    def _discard_damaged(self, path: Path, lease: Lease | None) -> None:
        if self.read_only:
            return  # not ours to remove: the stage is recomputed for this run
        if lease is None:
            self._remove_unleased(path)
            return
        if not lease.try_exclusive():
            return  # another plan is reading it: it goes when they are done
        try:
            self._discard(path)
        finally:
            lease.share()

    def _discard(self, path: Path) -> bool:
        """Remove an entry so that no reader sees it half-deleted: rename away first."""
        trash = self._tmp / f"trash-{uuid.uuid4().hex}"
        try:
            os.rename(path, trash)
        except OSError:
            return False
        shutil.rmtree(trash, ignore_errors=True)
        return True

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
            "verify": self.verify,
            "plugins": dict(sorted(by_plugin.items())),
        }

    def clear(self, plugin: str | None = None) -> tuple[int, int]:
        """Remove every entry (or one plugin's) that no running plan holds; returns (entries, bytes) removed."""
        if self.read_only or not _writable(self._tmp):
            raise CacheError("the cache is read-only here: nothing can be removed", self.root)
        removed = freed = 0
        for _, size, path, meta in self._scan():
            if (plugin is None or meta.get("plugin") == plugin) and self._remove_unleased(path):
                removed += 1
                freed += size
        self._sweep_tmp()
        return removed, freed


def _meta_check(meta: dict) -> str:
    """BLAKE3 of an entry's own record (its ``check`` left out): a flipped bit in the record that
    still parses as JSON — a changed size, a renamed field, a different value kept with the
    stage — is caught whatever the verification policy."""
    body = {k: v for k, v in meta.items() if k != "check"}
    return blake3.blake3(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _file_digests(folder: Path) -> dict[str, list]:
    """Each file's [size, BLAKE3] under ``folder``, keyed by its relative POSIX path.

    Run on a work directory a plugin has just written, so the bytes are read back from the page
    cache, not the disk.
    """
    files: dict[str, list] = {}
    for root, _, names in os.walk(folder):
        for name in names:
            full = os.path.join(root, name)
            rel = os.path.relpath(full, folder).replace(os.sep, "/")
            if rel == ENTRY_FILE:
                continue
            size = os.stat(full).st_size
            files[rel] = [size, _blake3_of(full, size)]
    return dict(sorted(files.items()))


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
