"""Downloading a model file: resumable, checked against its pinned sha256, atomic.

The bytes go to ``NAME.part`` beside the destination; an interrupted download resumes with
an HTTP Range request; the file is renamed into place only after its sha256 matches, and a
mismatch deletes the partial file. A lock file keeps two processes from fetching the same
file at once (the second waits, then finds it done).

Before any download the server is reached with a short TCP connect (``unreachable``): an offline
machine, a closed port or a firewall that drops packets fails in about a second with one
line, instead of after the libraries' own retries (transformers took 75 s).
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import http.client
import os
import socket
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

from video_extract.errors import ModelError

CHUNK = 1 << 20
USER_AGENT = "video-extract model store"

Progress = Callable[[int, int | None], None]  # (bytes so far, total or None)

#: Seconds to wait for a model server to accept a connection (``$VIDEO_EXTRACT_CONNECT_TIMEOUT``).
CONNECT_TIMEOUT = 1.5


def mirrored(url: str) -> str:
    """``url``, or the same file name under ``$VIDEO_EXTRACT_MODEL_MIRROR`` (a base URL that
    serves model files by name, for machines that cannot reach GitHub)."""
    base = os.environ.get("VIDEO_EXTRACT_MODEL_MIRROR")
    return f"{base.rstrip('/')}/{url.rsplit('/', 1)[-1]}" if base else url


def unreachable(url: str, timeout: float | None = None) -> str | None:
    """Why ``url``'s server (or the proxy that would carry it) does not accept a connection, in
    a few words, or None when it does; the libraries that download after this use their own timeouts."""
    timeout = float(os.environ.get("VIDEO_EXTRACT_CONNECT_TIMEOUT") or CONNECT_TIMEOUT) if timeout is None else timeout
    parts = urllib.parse.urlsplit(url)
    proxy = urllib.request.getproxies().get(parts.scheme)
    if proxy and not urllib.request.proxy_bypass(parts.hostname or ""):
        parts = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((parts.hostname or "", port), timeout=timeout).close()
    except OSError as exc:
        return _cause(exc, timeout)
    return None


def _cause(exc: OSError, timeout: float) -> str:
    if isinstance(exc, socket.gaierror):
        return "host name not found"
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout:g} s"
    if exc.errno == errno.ECONNREFUSED:
        return "connection refused"
    return exc.strerror or type(exc).__name__


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
        cause = unreachable(url)
        if cause:
            raise ModelError(f"cannot reach {url} ({cause})")
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
