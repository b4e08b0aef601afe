"""Temporary names that say who is writing them, so leftovers of dead writers can be swept.

A temporary file or folder is named ``…{host}.{pid}.{nonce}`` (cache work dirs) or
``.{name}.{host}.{pid}.{nonce}.tmp`` (outputs being published). A reader that finds one can
tell whether its writer is still running (same host: is the pid alive and not a zombie?) or,
from another host sharing the filesystem, whether it is old enough to be abandoned.
"""

from __future__ import annotations

import os
import re
import socket
import time
import uuid
from pathlib import Path

HOST = socket.gethostname().replace(".", "-")


def real_path(path: str | os.PathLike) -> Path:
    """``Path.resolve()`` for paths a user gives, which may be a link to itself (``a.mp4 ->
    a.mp4``): resolve() raises RuntimeError on such a loop (Python 3.11), where this leaves the
    looping part as it is, and opening the path then says what is wrong with it."""
    return Path(os.path.realpath(path))


#: A temporary of another host older than this belongs to a dead writer.
FOREIGN_STALE_SECONDS = 24 * 3600


def writer_tag() -> str:
    return f"{HOST}.{os.getpid()}.{uuid.uuid4().hex[:8]}"


def writer_is_dead(path: Path) -> bool:
    name = path.name
    for suffix in (".tmp", ".old"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    parts = name.rsplit(".", 3)
    if len(parts) < 4 or not parts[2].isdigit():
        return _older_than(path, FOREIGN_STALE_SECONDS)  # not ours to judge: only when very old
    host, pid = parts[1], int(parts[2])
    if host != HOST:
        return _older_than(path, FOREIGN_STALE_SECONDS)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    try:  # a killed process not yet reaped still answers kill(0): a zombie writes nothing more
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def _older_than(path: Path, seconds: float) -> bool:
    try:
        return time.time() - path.stat().st_mtime > seconds
    except OSError:
        return False


def fingerprint(path: Path) -> str:
    """Cheap identity of a file or folder's contents: file count, total size, newest mtime."""
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    stats = [p.stat() for p in files]
    return f"{len(files)}:{sum(s.st_size for s in stats)}:{max((s.st_mtime_ns for s in stats), default=0)}"


def parse_size(text: str | int | None) -> int | None:
    """Bytes from ``"500M"``, ``"2G"``, ``"1.5GiB"`` or ``"10000"`` (K/M/G/T are binary, B/iB optional);
    ``"none"`` means no cap (None)."""
    if text is None or isinstance(text, int):
        return text
    value = text.strip().lower()
    if value in ("none", "unlimited"):
        return None
    match = re.fullmatch(r"(\d+(?:\.\d*)?)\s*([kmgt]?)(?:i?b)?", value)
    if not match:
        raise ValueError(f"not a size: {text!r} (use bytes or a suffix: 500M, 2G, 1.5GiB, or none)")
    return int(float(match.group(1)) * 1024 ** " kmgt".index(match.group(2) or " "))


def human_size(n: float | None) -> str:
    """Bytes as people read them: ``512 B``, ``3.4 MiB``; None is ``none`` (no limit)."""
    if n is None:
        return "none"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"
