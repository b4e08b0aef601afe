"""Downloading a model file: resumable, checked against its pinned sha256, atomic.

The bytes go to ``NAME.part`` beside the destination; an interrupted download resumes with
an HTTP Range request; the file is renamed into place only after its sha256 matches, and a
mismatch deletes the partial file. A lock file keeps two processes from fetching the same
file at once (the second waits, then finds it done).
"""

from __future__ import annotations

import fcntl
import hashlib
import http.client
import os
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from video_extract.errors import ModelError

CHUNK = 1 << 20
USER_AGENT = "video-extract model store"

Progress = Callable[[int, int | None], None]  # (bytes so far, total or None)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def download(url: str, dest: Path, sha256: str | None, progress: Progress | None = None, timeout: float = 60) -> Path:
    """Fetch ``url`` into ``dest`` (resuming a ``.part`` left by an earlier try); returns ``dest``."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(dest.with_name(dest.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if dest.exists() and (sha256 is None or sha256_of(dest) == sha256):
            return dest
        part = dest.with_name(dest.name + ".part")
        _fetch(url, part, progress, timeout)
        if sha256 is not None:
            got = sha256_of(part)
            if got != sha256:
                part.unlink(missing_ok=True)
                raise ModelError(f"checksum mismatch for {url}: expected sha256 {sha256}, got {got}; the partial file was deleted", dest)
        os.replace(part, dest)
        return dest


def _fetch(url: str, part: Path, progress: Progress | None, timeout: float) -> None:
    offset = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout) as response:
            if offset and response.status != 206:  # the server ignored Range: start over
                offset = 0
            length = response.headers.get("Content-Length")
            total = offset + int(length) if length is not None else None
            with open(part, "ab" if offset else "wb") as out:
                done = offset
                while chunk := response.read(CHUNK):
                    out.write(chunk)
                    done += len(chunk)
                    if progress is not None:
                        progress(done, total)
            if total is not None and done < total:
                raise ModelError(
                    f"download interrupted: {url} closed the connection at {done} of {total} bytes; the partial file is kept and the next try resumes"
                )
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:  # Range past the end: the .part is complete already
            return
        raise ModelError(f"download failed: {url} answered HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, http.client.HTTPException, OSError, TimeoutError) as exc:
        reason = getattr(exc, "reason", exc)
        kept = "; the partial file is kept and the next try resumes" if part.exists() and part.stat().st_size else ""
        raise ModelError(f"download failed: cannot reach {url} ({reason}){kept}") from None
