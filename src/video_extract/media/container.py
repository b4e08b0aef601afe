"""Opening inputs with PyAV, and turning FFmpeg's failures into errors a user can act on.

FFmpeg reports a text file, random bytes and an MP4 cut short the same way ("Invalid data
found when processing input"); we look at the file ourselves to say which it is.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import av
import av.error

from video_extract.errors import InputError
from video_extract.media.limits import ffmpeg_options

#: Leading bytes of containers we recognise, to tell "damaged media" from "not media at all".
_MAGIC = {
    b"\x1a\x45\xdf\xa3": "Matroska/WebM",
    b"RIFF": "RIFF (WAV/AVI)",
    b"ID3": "MP3",
    b"OggS": "Ogg",
    b"fLaC": "FLAC",
    b"\x00\x00\x01\xba": "MPEG-PS",
    b"\x00\x00\x01\xb3": "MPEG video",
    b"FLV": "FLV",
    b"\x89PNG": "PNG",
    b"\xff\xd8\xff": "JPEG",
}

#: Formats FFmpeg opens that no user means as media: its ANSI-art demuxer takes any .txt file.
_NOT_MEDIA_FORMATS = {"tty": "is a text file, not audio, video or an image"}

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".bmp"})


def check_readable(path: str | Path) -> Path:
    """Fail early, with a plain reason, on what FFmpeg would report cryptically."""
    return readable(path)[0]


def readable(path: str | Path) -> tuple[Path, os.stat_result]:
    """``check_readable``, with the file's stat (for callers that need it: not taken twice)."""
    path = Path(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise InputError("file not found", path) from None
    except PermissionError:
        raise InputError("permission denied", path) from None
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror or exc}", path) from None
    if stat.S_ISDIR(st.st_mode):
        raise InputError("is a directory, not a media file", path)
    if not stat.S_ISREG(st.st_mode):  # never opened: reading a FIFO waits for a writer forever
        raise InputError(f"not a regular file ({_special_kind(st.st_mode)})", path)
    if st.st_size == 0:
        raise InputError("file is empty (0 bytes)", path)
    if not os.access(path, os.R_OK):
        raise InputError("permission denied", path)
    return path, st


def _special_kind(mode: int) -> str:
    for test, kind in ((stat.S_ISFIFO, "FIFO"), (stat.S_ISSOCK, "socket"), (stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device")):
        if test(mode):
            return kind
    return "special file"


def describe_unreadable(path: Path, exc: Exception) -> str:
    """Why FFmpeg could not open ``path``, in words: truncated, text, or not media."""
    with open(path, "rb") as f:
        head = f.read(4096)
    if head[4:8] == b"ftyp":
        return "damaged or truncated MP4/MOV (its index cannot be read; was the copy or download cut short?)"
    for magic, kind in _MAGIC.items():
        if head.startswith(magic):
            return f"damaged or truncated {kind} file ({_ffmpeg_reason(exc)})"
    if _looks_like_text(head):
        return "is a text file, not audio, video or an image"
    return f"not a media file FFmpeg can read ({_ffmpeg_reason(exc)})"


def _looks_like_text(head: bytes) -> bool:
    if not head or b"\x00" in head:
        return False
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    printable = sum(ch.isprintable() or ch in "\r\n\t" for ch in text)
    return printable / len(text) > 0.95


def _ffmpeg_reason(exc: Exception) -> str:
    strerror = getattr(exc, "strerror", None)
    return (strerror or str(exc) or type(exc).__name__).rstrip(".")


@contextlib.contextmanager
def open_input(path: str | Path) -> Iterator[av.container.InputContainer]:
    """``av.open`` for reading, with every failure mapped to an InputError naming the file.

    Every decoder FFmpeg opens for this file, those ``av.open`` itself runs to find stream
    facts (it decodes a first frame: 0.5 GB for a 13000x13000 PNG) and those that decode
    frames later, refuses a frame over the pixel budget before allocating it.
    """
    path = check_readable(path)
    limit = ffmpeg_options()
    try:
        container = av.open(str(path), mode="r", metadata_errors="ignore", options=limit)
    except av.error.FFmpegError as exc:
        raise InputError(describe_unreadable(path, exc), path) from None
    except OSError as exc:
        raise InputError(f"cannot open: {exc.strerror or exc}", path) from None
    if container.format.name in _NOT_MEDIA_FORMATS:
        container.close()
        raise InputError(_NOT_MEDIA_FORMATS[container.format.name], path)
    for stream in container.streams.video:
        if stream.codec_context is not None:
            stream.codec_context.options = {**stream.codec_context.options, **limit}
    try:
        yield container
    finally:
        container.close()


def decode_error(path: str | Path, exc: Exception, time: float | None) -> InputError:
    """A decode failure part-way through a file: name the file and where it broke."""
    where = f" at {time:.2f} s" if time is not None else ""
    return InputError(f"decoding failed{where}: {_ffmpeg_reason(exc)} (the file may be damaged or truncated)", path)


#: Consecutive undecodable packets tolerated before a file is declared damaged.
MAX_BAD_PACKETS = 32


def decode_stream(path: str | Path, container, stream, on_packet=None) -> Iterator:
    """Frames of ``stream``, demuxed and decoded, skipping damaged packets as FFmpeg's tools do.

    More than MAX_BAD_PACKETS undecodable packets in a row is a damaged file: InputError,
    naming where decoding broke. ``on_packet`` sees every packet first (its pts, its flags).
    """
    bad = 0
    last_time = None
    for packet in container.demux(stream):
        if on_packet is not None:
            on_packet(packet)
        try:
            frames = packet.decode()
        except av.error.EOFError:
            return
        except av.error.FFmpegError as exc:
            bad += 1
            if bad > MAX_BAD_PACKETS:
                raise decode_error(path, exc, last_time) from None
            continue
        bad = 0
        for frame in frames:
            if frame.time is not None:
                last_time = frame.time
            yield frame
