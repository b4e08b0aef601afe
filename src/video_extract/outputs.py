"""Where results land: ``{out}/{stem}/``, deterministic and collision-free, written atomically.

A reader never sees half a file: every file is written to a temporary name and renamed, and a
directory output (``keyframes/``) is built beside its final name and swapped in. The per-input
``summary.json`` is written last; a directory without it is an unfinished run.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import json
import os
import re
import shutil
import stat
import sys
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import blake3

from video_extract.errors import InputError, OutputError, show_path
from video_extract.fsutil import real_path, writer_is_dead, writer_tag
from video_extract.jsontext import json_text

SUMMARY_FILE = "summary.json"
BATCH_SUMMARY_FILE = "batch_summary.json"
BATCH_SUMMARY_PARQUET = "batch_summary.parquet"
EXPORT_DIR = "export"  # a bulk batch's datasets (``exports``)
OWNER_FILE = ".input"  # which input a directory belongs to, written when it is created

#: What a bulk batch writes at the top of the output folder: an input whose folder would take
#: one of these names (``export.mp4``, ``batch_summary.json.mp4``) gets the hashed name instead.
#: Compared without case: a case-insensitive file system (macOS, Windows) holds one of each.
RESERVED_NAMES = frozenset(name.casefold() for name in (BATCH_SUMMARY_FILE, BATCH_SUMMARY_PARQUET, EXPORT_DIR))


@dataclass(frozen=True)
class InputName:
    """An input that is not a local file (a URL, bytes): who owns its output folder
    (``identity``, written to the folder's owner file) and what the folder is called (``stem``)."""

    identity: str
    stem: str


#: A local file (its path) or any other source (its name).
InputLike = Path | InputName


def _identity(item: InputLike) -> str:
    return item.identity if isinstance(item, InputName) else str(real_path(item))


def path_tag(path: InputLike) -> str:
    return blake3.blake3(_identity(path).encode("utf-8", "surrogateescape")).hexdigest()[:8]


def output_dir_for(root: Path, input_path: InputLike, batch: Iterable[InputLike] = ()) -> Path:
    """``{root}/{stem}``, or ``{root}/{stem}-{hash}`` when another input shares the stem or the
    stem is one of the batch's own names (``RESERVED_NAMES``).

    Deterministic: inputs sharing a stem within a batch all get the hash suffix (whatever the
    order), and a directory already owned by a different input is never reused.
    """
    resolved = input_path if isinstance(input_path, InputName) else real_path(input_path)  # once: what _identity gives
    identity = resolved.identity if isinstance(resolved, InputName) else str(resolved)
    stem = folder_stem(resolved)
    clashes = {_identity(p) for p in batch if folder_stem(p) == stem} - {identity}
    if not clashes and stem.casefold() not in RESERVED_NAMES:
        candidate = root / stem
        owner = _owner(candidate)
        if owner is None or owner == identity:
            return candidate
    return root / f"{stem}-{path_tag(input_path)}"


def ensure_output_root(root: Path) -> Path:
    """Check up front that the output directory can be made and written (creating nothing yet,
    so a request that fails before any work leaves no empty folder behind).

    The check really writes (a folder made and removed), once per state of the folder: a folder
    that passed and has not changed since (``_folder_state``) is not tried again on every request.
    """
    from video_extract.errors import UsageError, show_path

    existing = root
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"cannot write to the output directory: {show_path(existing)} is not a directory", root)
    key = str(existing)
    state = _folder_state(key)
    if state is not None and _writable.get(key) == state:
        return root
    try:  # really try: permission bits say nothing for root, or on read-only and special filesystems
        os.rmdir(tempfile.mkdtemp(prefix=".video-extract-probe-", dir=existing))
    except OSError as exc:
        raise UsageError(f"cannot write to the output directory: {exc.strerror or exc} in {show_path(existing)}", root) from None
    state = _folder_state(key)
    if state is not None:
        _writable[key] = state
    return root


#: Folder -> its ``_folder_state`` right after a write in it succeeded.
_writable: dict[str, tuple] = {}


def _folder_state(folder: str) -> tuple | None:
    """What would change if a folder stopped taking writes: its identity, owner and mode (a
    chmod, chown or ACL change moves its ctime), the filesystem's read-only flag, and whether
    it has space and inodes left. None (the folder is tried) when it cannot be read or is full."""
    try:
        st, fs = os.stat(folder), os.statvfs(folder)
    except OSError:
        return None
    if fs.f_bavail == 0 or (fs.f_files and fs.f_favail == 0):
        return None  # full: only a real write says whether a few bytes still fit
    return (st.st_dev, st.st_ino, st.st_mode, st.st_uid, st.st_gid, st.st_ctime_ns, fs.f_flag & os.ST_RDONLY)


#: What an OSError says when a folder cannot take a write: full, over quota, read-only, not ours.
_CANNOT_WRITE = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG})


@contextlib.contextmanager
def _writing(path: Path):
    """Such an OSError, while writing ``path``, as one line naming it (``OutputError``): a full
    disk failed each file with "internal error", then the whole batch at its summary."""
    try:
        yield
    except OSError as exc:
        number = _errno_of(exc)
        if number not in _CANNOT_WRITE:
            raise
        raise OutputError(f"cannot write {show_path(path)}: {os.strerror(number)}") from None


def _errno_of(exc: OSError) -> int | None:
    """The error number, also of a folder copy (``shutil.Error`` lists each file's as text)."""
    if exc.errno is not None:
        return exc.errno
    found = re.search(r"\[Errno (\d+)\]", str(exc))
    return int(found.group(1)) if found else None


def claim_output_dir(directory: Path, input_path: InputLike) -> None:
    """Make ``directory`` and record its owner, unless that is done (one stat: every stage calls this)."""
    owner = directory / OWNER_FILE
    if owner.exists():
        return
    with _writing(directory):
        directory.mkdir(parents=True, exist_ok=True)
    if not owner.exists():
        atomic_write_text(owner, _identity(input_path) + "\n", errors="surrogateescape")  # the name's own bytes


def owned_by(directory: Path, input_path: InputLike) -> bool:
    """Whether ``directory`` is the output folder an earlier run made for ``input_path``."""
    return _owner(directory) == _identity(input_path)


def recorded_input(directory: Path) -> str | None:
    """The input an output folder was made for, as recorded when the folder was claimed (a local
    file by its resolved path, so it holds whatever the working directory is now)."""
    return _owner(directory)


def _owner(directory: Path) -> str | None:
    """Read without a text file object (a third of the time; asked on every request)."""
    try:
        fd = os.open(os.path.join(directory, OWNER_FILE), os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    except OSError:
        return None
    finally:
        os.close(fd)
    return b"".join(chunks).decode("utf-8", "surrogateescape").strip()


#: The longest folder stem, in UTF-8 bytes: a file name may have 255 (Linux, macOS), and the
#: hashed name adds ``-`` and 8 hex digits. A longer stem (a 251-byte file name, an upload's or a
#: URL's name, any length) is cut, and shares its folder with no other input (``output_dir_for``).
STEM_BYTES = 255 - 1 - 8


def folder_stem(path: InputLike) -> str:
    """The folder name an input gets before any collision suffix (spaces and odd characters become
    _, then cut to ``STEM_BYTES``)."""
    stem = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in path.stem)
    encoded = stem.encode("utf-8")
    if len(encoded) > STEM_BYTES:
        stem = encoded[:STEM_BYTES].decode("utf-8", "ignore")  # never half a character
    return stem.strip("._") or "input"


def _temporary(path: Path, suffix: str = ".tmp") -> Path:
    return path.with_name(f".{path.name}.{writer_tag()}{suffix}")


def atomic_write_text(path: Path, text: str, errors: str = "backslashreplace") -> os.stat_result:
    """Write ``text`` to a temporary beside ``path`` and rename it over ``path``; returns the
    written file's stat (taken before the rename: another writer may replace it right after).
    A file that already holds exactly these bytes is left as it is (``_holding``).

    A file name that is not UTF-8 (Linux takes any bytes) comes as lone surrogates (Python's
    ``surrogateescape``): by default each is written as ``\\udcXX``, in JSON the escape that
    ``json.loads`` and ``os.fsencode`` turn back into the very name, instead of failing the file
    and its batch."""
    data = text.encode("utf-8", errors)
    same = _holding(path, data)
    if same is not None:
        return same
    tmp = _temporary(path)
    try:
        with _writing(path):
            written = _write_bytes(tmp, data)
            swap_in(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return written


def swap_in(tmp: Path, path: Path) -> None:
    """``os.replace(tmp, path)``, without the wait ext4 adds when ``path`` exists.

    Renaming over an existing file makes ext4 write the new file's data out before the rename
    returns (``auto_da_alloc``, its guard for programs that do not fsync): 0.1-0.3 ms a file
    here, on every repeated request (``summary.json`` changes each time). Exchanging the two
    names (``renameat2(RENAME_EXCHANGE)``) and removing the old file, now under the temporary's
    name, takes ~5 us. Readers see the old file or the new one whole, as with a rename; two
    writers at once both end whole, the last one in place. Given up: after a crash of the machine
    (not of the process) in the next seconds, the new file may be empty, as any file written
    without fsync may be. Where there is no exchange (not Linux, a filesystem without it), or
    ``path`` is missing or a folder, this is ``os.replace``."""
    exchange = _renameat2()
    if exchange is not None:
        try:
            swappable = not stat.S_ISDIR(os.lstat(path).st_mode)
        except OSError:
            swappable = False
        if swappable and exchange(_AT_FDCWD, os.fsencode(tmp), _AT_FDCWD, os.fsencode(path), _RENAME_EXCHANGE) == 0:
            tmp.unlink(missing_ok=True)
            return
    os.replace(tmp, path)


_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


@functools.cache
def _renameat2():
    """glibc's ``renameat2`` (2.28+), or None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = ctypes.CDLL(None, use_errno=True).renameat2  # the C library Python runs on
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


#: Files up to this size are compared with what would replace them.
_COMPARED_BYTES = 1 << 20


def _holding(path: Path, data: bytes) -> os.stat_result | None:
    """The stat of ``path`` when it is a regular file (not a link) holding exactly ``data``.

    Renaming a new copy over an existing file makes ext4 write the copy's data out at once
    (``auto_da_alloc``, its guard against empty files after a crash): 0.25 ms a file here, most
    of the writing a request asked again pays (a still's record, metadata.json). Reading ~1 KB
    to compare costs ~10 us; a missing file, or one of another size, one open or one stat."""
    if len(data) > _COMPARED_BYTES:
        return None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size != len(data):
            return None
        return st if os.read(fd, len(data) + 1) == data else None
    except OSError:
        return None
    finally:
        os.close(fd)


def _write_bytes(path: Path, data: bytes) -> os.stat_result:
    """``path.write_bytes`` without a buffered file object (half the time, 4 syscalls fewer:
    every published record and summary goes through here); the file's stat once written."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        return os.fstat(fd)
    finally:
        os.close(fd)


def utf8_text(text: str) -> str:
    """``text`` as valid UTF-8, for stores that take nothing else (Parquet strings): a file
    name's undecodable bytes (lone surrogates) become the six characters ``\\udcXX``."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def atomic_write_json(path: Path, data: Any) -> os.stat_result:
    return atomic_write_text(path, json_text(data))


def atomic_write_with(path: Path, write: Callable[[Path], object]) -> None:
    """``write(temporary)`` then rename over ``path``: for writers that want a file name
    (``pyarrow.parquet.write_table``). Each writer has its own temporary, so two writing at
    once both succeed (the last rename wins) and a reader sees one whole file or the other."""
    tmp = _temporary(path)
    try:
        with _writing(path):
            write(tmp)
            swap_in(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_dir(path: Path, write: Callable[[Path], object]) -> None:
    """``write(folder)`` into a new hidden folder beside ``path``, then swap it in: a reader sees
    the old folder or the whole new one (an export's dataset), never one half-written."""
    tmp = _temporary(path)
    try:
        with _writing(path):
            tmp.mkdir(parents=True)
            write(tmp)
            _swap_in(tmp, path)
    except BaseException:
        _delete(tmp)
        raise


def publish_path(src: Path, dst: Path, link: bool = False) -> Path:
    """Copy a file or directory to ``dst`` so that ``dst`` is always either old or complete.

    ``link``: hard-link each file instead where the file system allows (``src`` is in a scratch
    folder about to be deleted): no data copied and no new inode. A warm run of the full demo
    request without a cache made 74 files, now 40; on ext4 without a journal (the test machines
    here) each new inode costs a scan past the inodes freed in the last minutes, and a run that
    replaces its outputs frees as many as it makes."""
    tmp = _temporary(dst)
    try:
        with _writing(dst):
            for attempt in range(3):  # a concurrent run may remove an emptied parent (``embeddings/``) meanwhile
                dst.parent.mkdir(parents=True, exist_ok=True)
                try:
                    if src.is_dir():
                        shutil.copytree(src, tmp, copy_function=_linking(shutil.copy2) if link else shutil.copy2)
                    else:
                        (_linking(shutil.copyfile) if link else shutil.copyfile)(src, tmp)
                    break
                except FileNotFoundError:
                    if attempt == 2 or dst.parent.exists():
                        raise
            _swap_in(tmp, dst)
    except BaseException:
        _delete(tmp)
        raise
    return dst


def _linking(copy: Callable[[Any, Any], object]) -> Callable[[Any, Any], None]:
    """``copy`` as a hard link where there can be one (not across file systems, nor on one
    without links)."""

    def link_or_copy(src, dst) -> None:
        try:
            os.link(src, dst)
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.EEXIST):
                raise
            copy(src, dst)

    return link_or_copy


def publish_text(text: str, dst: Path) -> Path:
    """``publish_path`` for a file held in memory: ``dst`` is always either old or complete.

    Written first, its folder made only when it is missing (most records go straight into the
    output folder, which is there)."""
    for attempt in range(4):  # a concurrent run may remove an emptied parent (``embeddings/``) meanwhile
        try:
            atomic_write_text(dst, text)
            break
        except FileNotFoundError:
            if attempt == 3 or dst.parent.exists():
                raise
        dst.parent.mkdir(parents=True, exist_ok=True)
    return dst


def _swap_in(tmp: Path, dst: Path) -> None:
    """Rename ``tmp`` to ``dst``, first moving aside whatever is there that a rename cannot
    replace (a folder, or a file where a folder goes); what was moved aside is deleted once the
    new one is in. Another writer may be swapping the same name: the last rename wins."""
    aside: list[Path] = []
    try:
        for _ in range(100):
            try:
                os.replace(tmp, dst)
                return
            except OSError as exc:
                if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.EISDIR, errno.ENOTDIR):
                    raise
            old = _temporary(dst, ".old")
            with contextlib.suppress(FileNotFoundError):  # another writer moved it first
                os.rename(dst, old)
                aside.append(old)
        raise OSError(errno.EBUSY, "other writers keep replacing it", str(dst))
    finally:
        for old in aside:
            _delete(old)


def _discard(path: Path) -> bool:
    """Remove ``path`` (file, folder or link; a link is never followed): renamed aside first, so
    a reader sees it whole or gone, never half-deleted. False when it was not there."""
    old = _temporary(path, ".old")
    try:
        os.rename(path, old)
    except (FileNotFoundError, NotADirectoryError):
        return False
    _delete(old)
    return True


def _delete(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


#: ``intermediates/{index:02d}-{plugin}-{stage id[:6]}`` (``--save-intermediates``)
INTERMEDIATES = "intermediates"
_INTERMEDIATE_NAME = re.compile(r"^\d{2,}-[\w.-]+-[0-9a-f]{6}$")


def project_names(directory: Path) -> set[str]:
    """Every name video-extract may have written into an output folder (besides ``summary.json``
    and the owner file): each declared output type's files, what the folder's last
    ``summary.json`` listed (outputs of a plugin not loaded now included) and saved
    intermediates. Nothing else there is ours."""
    from video_extract.results import OUTPUT_TYPES

    names = set(_ours(tuple((output, output.files) for output in OUTPUT_TYPES.values())))
    names.update(n for n in _listed_before(directory) if _is_ours(n))
    with contextlib.suppress(OSError):
        names.update(f"{INTERMEDIATES}/{name}" for name in os.listdir(directory / INTERMEDIATES) if _INTERMEDIATE_NAME.match(name))
    return names


@functools.lru_cache(maxsize=8)  # the declared output types: the same every run
def _ours(declared: tuple[tuple[type, tuple[str, ...]], ...]) -> frozenset[str]:
    return frozenset(n for n in (name.rstrip("/") for _, files in declared for name in files) if _is_ours(n))


def _is_ours(name: str) -> bool:
    return _is_inside(name) and name not in (SUMMARY_FILE, OWNER_FILE)


@functools.lru_cache(maxsize=4096)  # the same few dozen names, every run
def _is_inside(name: str) -> bool:
    parts = PurePosixPath(name).parts
    return bool(parts) and not PurePosixPath(name).is_absolute() and all(p not in ("", ".", "..") for p in parts)


@functools.lru_cache(maxsize=4096)
def _top(name: str) -> str:
    return PurePosixPath(name).parts[0]


def prune_outputs(directory: Path, current: Iterable[str]) -> list[str]:
    """Remove from ``directory`` what video-extract wrote there before and ``current`` (the files
    this run's summary lists) does not: the frames of an operation that failed this time, or was
    not asked for. Only names ``project_names`` knows are touched (a user's file stays), and
    only whole names (a concurrent writer's hidden temporaries are not). Emptied folders of
    ours (``embeddings/``, ``intermediates/``) go too. Returns what was removed."""
    keep = {name.rstrip("/") for name in current}
    try:
        present = set(os.listdir(directory))  # one listing, not a rename tried for every name we might have written
    except OSError:
        return []
    removed = []
    for name in sorted(project_names(directory) - keep):
        if _top(name) in present and _discard(directory / name):
            removed.append(name)
    for name in removed:
        parent = PurePosixPath(name).parent
        while parent != PurePosixPath(".") and not any(k == str(parent) or k.startswith(f"{parent}/") for k in keep):
            try:
                (directory / parent).rmdir()  # only when empty: a file of the user's or a writer's keeps it
            except OSError:
                break
            parent = parent.parent
    return removed


def write_summary(directory: Path, summary: dict[str, Any]) -> None:
    """Write a folder's ``summary.json`` (last: it marks the folder complete) and remember the
    files it lists, which the next run into the folder prunes by (``project_names``)."""
    written = atomic_write_json(directory / SUMMARY_FILE, summary)
    with _summaries_lock:
        _summaries[str(directory)] = (_file_identity(written), _listed(summary))
        _summaries.move_to_end(str(directory))
        while len(_summaries) > _SUMMARIES_KEPT:
            _summaries.popitem(last=False)


#: Output folder -> (identity of the summary.json this process wrote there, the files it lists).
_summaries: OrderedDict[str, tuple[tuple[int, ...], frozenset[str]]] = OrderedDict()
_summaries_lock = threading.Lock()
_SUMMARIES_KEPT = 4096


def _file_identity(st: os.stat_result) -> tuple[int, ...]:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)  # no ctime: a rename moves it


def _listed(summary: dict[str, Any]) -> frozenset[str]:
    names = set()
    for op in (summary.get("ops") or {}).values():
        if isinstance(op, dict) and isinstance(op.get("files"), list):
            names.update(str(name).rstrip("/") for name in op["files"])
    return frozenset(names)


def _listed_before(directory: Path) -> frozenset[str]:
    """What the folder's ``summary.json`` lists: remembered, while it is the very file this
    process wrote (a stat, not a parse on every request); else read."""
    with _summaries_lock:
        known = _summaries.get(str(directory))
    if known is not None:
        try:
            if _file_identity(os.stat(directory / SUMMARY_FILE)) == known[0]:
                return known[1]
        except OSError:
            pass
    return _listed(read_summary(directory) or {})


def read_summary(directory: Path) -> dict[str, Any] | None:
    try:
        return json.loads((directory / SUMMARY_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def read_batch_rows(output_root: Path) -> list[dict]:
    """The rows of a bulk batch's ``batch_summary.json``, in input order (what exports and the
    sizing model are built from); an InputError when there is none to read."""
    try:
        return json.loads((output_root / BATCH_SUMMARY_FILE).read_text(encoding="utf-8"))["files"]
    except (OSError, ValueError, KeyError, TypeError):
        raise InputError(f"no readable {BATCH_SUMMARY_FILE}: run a bulk batch into this folder first", output_root) from None


def batch_output_dir(output_root: Path, row: dict) -> Path:
    """A batch row's output folder: always ``{out}/{stem}``, wherever the batch ran from (the
    row may hold a path relative to that run's working directory, or the folder was moved)."""
    return output_root / Path(row["output_dir"]).name


def remove_stale_temporaries(directory: Path) -> None:
    """Leftovers of a killed run (``.name.….tmp`` / ``.old``) are garbage, never outputs.

    Only those whose writer is gone: another run may be writing into the same folder now.
    Every folder below is searched (not through links), all found before any is deleted.
    """
    found: list[str] = []
    _hidden_temporaries(str(directory), found)
    for entry in found:
        path = Path(entry)
        if writer_is_dead(path):
            _delete(path)


def _hidden_temporaries(folder: str, found: list[str]) -> None:
    """``.*.tmp`` and ``.*.old`` entries in ``folder`` and below, parents before what they hold
    (``Path.rglob(".*")`` filtered, at a fraction of its cost: os.scandir, no Path per entry)."""
    try:
        with os.scandir(folder) as it:
            entries = list(it)
    except OSError:
        return
    for entry in entries:
        name = entry.name
        if name.startswith(".") and name.endswith((".tmp", ".old")):
            found.append(entry.path)
    for entry in entries:
        try:
            descend = entry.is_dir() and not entry.is_symlink()
        except OSError:
            continue
        if descend:
            _hidden_temporaries(entry.path, found)
