"""Where results land: ``{out}/{stem}/``, deterministic and collision-free, written atomically.

A reader never sees half a file: every file is written to a temporary name and renamed, and a
directory output (``keyframes/``) is built beside its final name and swapped in. The per-input
``summary.json`` is written last; a directory without it is an unfinished run.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import blake3

from video_extract.fsutil import writer_is_dead, writer_tag

SUMMARY_FILE = "summary.json"
OWNER_FILE = ".input"  # which input a directory belongs to, written when it is created


def path_tag(path: Path) -> str:
    return blake3.blake3(str(path.resolve()).encode()).hexdigest()[:8]


def output_dir_for(root: Path, input_path: Path, batch: Iterable[Path] = ()) -> Path:
    """``{root}/{stem}``, or ``{root}/{stem}-{hash}`` when another input shares the stem.

    Deterministic: inputs sharing a stem within a batch all get the hash suffix (whatever the
    order), and a directory already owned by a different input is never reused.
    """
    input_path = input_path.resolve()
    stem = folder_stem(input_path)
    clashes = {p.resolve() for p in batch if folder_stem(p) == stem} - {input_path}
    if not clashes:
        candidate = root / stem
        owner = _owner(candidate)
        if owner is None or owner == str(input_path):
            return candidate
    return root / f"{stem}-{path_tag(input_path)}"


def ensure_output_root(root: Path) -> Path:
    """Check up front that the output directory can be made and written (creating nothing yet,
    so a request that fails before any work leaves no empty folder behind)."""
    from video_extract.errors import UsageError

    existing = root
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"cannot write to the output directory: {existing} is not a directory", root)
    try:  # really try: permission bits say nothing for root, or on read-only and special filesystems
        os.rmdir(tempfile.mkdtemp(prefix=".video-extract-probe-", dir=existing))
    except OSError as exc:
        raise UsageError(f"cannot write to the output directory: {exc.strerror or exc} in {existing}", root) from None
    return root


def claim_output_dir(directory: Path, input_path: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    owner = directory / OWNER_FILE
    if not owner.exists():
        atomic_write_text(owner, str(input_path.resolve()) + "\n")


def _owner(directory: Path) -> str | None:
    try:
        return (directory / OWNER_FILE).read_text().strip()
    except OSError:
        return None


def folder_stem(path: Path) -> str:
    """The folder name an input gets before any collision suffix (spaces and odd characters become _)."""
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in path.stem).strip("._") or "input"


def _temporary(path: Path, suffix: str = ".tmp") -> Path:
    return path.with_name(f".{path.name}.{writer_tag()}{suffix}")


def atomic_write_text(path: Path, text: str) -> None:
    tmp = _temporary(path)
    tmp.write_text(text)
    os.replace(tmp, path)


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def publish_path(src: Path, dst: Path) -> Path:
    """Copy a file or directory to ``dst`` so that ``dst`` is always either old or complete."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary(dst)
    if src.is_dir():
        shutil.copytree(src, tmp)
        old = None
        if dst.exists():
            old = _temporary(dst, ".old")
            os.rename(dst, old)
        os.rename(tmp, dst)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    else:
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    return dst


def read_summary(directory: Path) -> dict[str, Any] | None:
    try:
        return json.loads((directory / SUMMARY_FILE).read_text())
    except (OSError, ValueError):
        return None


def remove_stale_temporaries(directory: Path) -> None:
    """Leftovers of a killed run (``.name.….tmp`` / ``.old``) are garbage, never outputs.

    Only those whose writer is gone: another run may be writing into the same folder now.
    """
    if not directory.is_dir():
        return
    for entry in list(directory.rglob(".*")):
        if entry.name.endswith((".tmp", ".old")) and writer_is_dead(entry):
            shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)
