"""Files the model cache makes from model files (ONNX exports of torch weights, graphs ONNX
Runtime optimized), and their removal once the file they were made from is gone.

Each is named by where its model file is (a hash of the path) and by that file's version. A new
version at the same path replaces the old copy as it is made; a new path never does. A service
deployed into a new folder each release (``/srv/app/releases/2026-11-27/models``) would leave
an export (90 MB for MiniLM) and its graphs behind per release, kept forever. So beside each
file a sidecar names its source; whenever the cache makes a new file, those whose source is
gone are removed, once a day old: a cache shared by machines where a model's folder is not
at the same path then re-makes a copy at most once a day, rather than at every start.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from video_extract.fsutil import writer_is_dead, writer_tag

#: Suffix of the sidecar that names a cached file's source: ``<file>.source``.
SIDECAR = ".source"

#: Seconds a copy whose source is gone (or which names none: made before sidecars) is kept.
ORPHAN_AFTER = 24 * 3600


class Place(NamedTuple):
    """Where one copy of a model file goes: ``<folder>/<prefix><version><suffix>``; ``prefix``
    (the file's stem and place) is shared by every version of it."""

    folder: Path
    prefix: str
    copy: Path
    suffix: str

    def settle(self) -> None:
        """After a new copy is made: the same file's earlier versions go, and the copies of
        model files no longer there (``remove_orphans``)."""
        remove_others(self.folder, self.prefix, keep=self.copy, suffix=self.suffix)
        remove_orphans(self.folder, f"*{self.suffix}")


def place_of(folder: Path, stem: str, where: str, source: os.stat_result, *version: object, suffix: str) -> Place:
    """A copy's place, named by where its model file is (``where``: its path and whatever else
    the copy depends on) and by that file's version (size, time, and ``version``: a runtime's,
    a layout's): a new version at the same place replaces the copy, a new place never does."""
    place = hashlib.sha256(where.encode()).hexdigest()[:8]
    stamp = hashlib.sha256(":".join(map(str, (source.st_size, source.st_mtime_ns, *version))).encode()).hexdigest()[:8]
    prefix = f"{stem}-{place}"
    return Place(folder, prefix, folder / f"{prefix}{stamp}{suffix}", suffix)


def write_with_source(target: Path, source: Path, make: Callable[[Path], object]) -> None:
    """``make(temporary)`` (a file, or a folder it creates), then the sidecar naming ``source``,
    then the temporary renamed to ``target``: a copy is never in place without its sidecar. Two
    processes making the same file at once both end whole, the last rename wins; for a folder
    the first wins, and the other's rename fails (OSError) with its temporary removed. The
    temporary goes on any failure."""
    tmp = target.with_name(f".{target.name}.{writer_tag()}.tmp")  # fsutil's: a dead writer's can be told
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        make(tmp)
        _write_sidecar(target, source)
        os.replace(tmp, target)
    finally:
        remove(tmp, sidecar=False)  # gone (renamed in), or never made


def _write_sidecar(target: Path, source: Path) -> None:
    sidecar = sidecar_of(target)
    tmp = sidecar.with_name(f".{sidecar.name}.{writer_tag()}.tmp")
    try:
        tmp.write_bytes(os.fsencode(os.path.abspath(source)))
        os.replace(tmp, sidecar)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def sidecar_of(path: Path) -> Path:
    return path.with_name(path.name + SIDECAR)


def remove(path: Path, sidecar: bool = True) -> None:
    """A cached copy (a file or a folder) and its sidecar (either may be gone already)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            path.unlink()
    if sidecar:
        with contextlib.suppress(OSError):
            sidecar_of(path).unlink()


def remove_others(folder: Path, prefix: str, keep: Path | None = None, then: Callable[[Path], None] | None = None, suffix: str = ".onnx") -> None:
    """Remove the copies in ``folder`` named ``prefix…suffix`` (one model file's place: its
    earlier versions) but ``keep``; ``then(copy)`` after each (an export's optimized graphs go
    with it)."""
    for older in folder.glob(f"{glob.escape(prefix)}*{suffix}"):
        if older != keep:
            remove(older)
            if then is not None:
                then(older)


def remove_orphans(folder: Path, pattern: str = "*.onnx", then: Callable[[Path], None] | None = None) -> list[Path]:
    """Remove the copies in ``folder`` whose source is gone, or that name none, once they are
    ``ORPHAN_AFTER`` old (by the sidecar's age, else the copy's), and sidecars left that long
    without a copy (not one whose copy another process is about to rename in), and the
    temporaries of writers that died; ``then(copy)``
    after each removal (an export's optimized graphs go with it). A process still running a
    removed copy has it loaded already. Returns the copies removed."""
    now = time.time()
    removed = []
    for tmp in folder.glob(".*.tmp"):  # a copy or sidecar a crashed process was making (fsutil.writer_is_dead)
        if writer_is_dead(tmp):
            remove(tmp, sidecar=False)
    for sidecar in folder.glob(f"*{SIDECAR}"):
        with contextlib.suppress(OSError):
            if not sidecar.with_name(sidecar.name[: -len(SIDECAR)]).exists() and now - sidecar.stat().st_mtime >= ORPHAN_AFTER:
                sidecar.unlink()
    for copy in folder.glob(pattern):
        sidecar = sidecar_of(copy)
        try:
            if sidecar.exists():
                if os.path.exists(os.fsdecode(sidecar.read_bytes())):
                    continue
                age = now - sidecar.stat().st_mtime
            else:
                age = now - copy.stat().st_mtime
        except OSError:
            continue  # removed meanwhile, or unreadable: left as it is
        if age < ORPHAN_AFTER:
            continue
        remove(copy)
        removed.append(copy)
        if then is not None:
            then(copy)
    return removed
