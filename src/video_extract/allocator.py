"""Freed memory back to the system between the phases of a long run, so that resident memory
stays flat in input length.

glibc's malloc keeps what a phase freed (segmentation scores, speech windows, model
activations) in its heap for reuse, and serves a block of 128 KB or more with its own mmap
only until such a block is freed, after which it raises that threshold (up to 32 MB). On an
hour of audio, diarization's later phases then stacked their arrays on top of the earlier
phases' free but resident memory: a peak of ~870 MB instead of ~710 MB. And what a thread
frees stays in that thread's heap, where stages in other threads cannot use it. ``release``
hands the free pages back (``malloc_trim``) where a phase's arrays are gone: between
diarization's phases, after any stage that ran over a second, after each stage of a large
still. It costs milliseconds, where a fixed low mmap threshold (every large block mapped and
unmapped) made the same run ~25% slower. ``VIDEO_EXTRACT_MALLOC=default`` leaves malloc alone.

The other way round, ``reuse_large_blocks``: a block above glibc's 32 MB ceiling is always
mapped fresh, zeroed page by page by the kernel, and unmapped when freed. Whisper tiny's encoder
asks for one such block (its attention scores, 6 heads x 1500 x 1500 floats: 54 MB) in each
layer of each 30 s window: 52 000 page faults and a quarter of transcription's CPU time in the
kernel, measured.

And for a run that allocates many large tensors one by one, ``mapped_large_blocks``: ONNX
Runtime runs an input shape it has not seen before tensor by tensor (it makes its memory plan
on that run), and in the heap those tensors fragment it: CAM++ on 30 s of fbank peaked 92 MB
above its start instead of 62 MB, on its 20 s tail 97 instead of 41, at the end of an hour's
diarization, its peak.
"""

from __future__ import annotations

import ctypes
import os
import sys
import threading
from contextlib import contextmanager
from functools import cache


def _glibc(name: str):
    """glibc's malloc function ``name``, or None: not Linux, ``VIDEO_EXTRACT_MALLOC=default``,
    or a C library without it (musl has no ``malloc_trim``)."""
    if not sys.platform.startswith("linux") or os.environ.get("VIDEO_EXTRACT_MALLOC") == "default":
        return None
    try:
        # the C library Python runs on (``find_library`` would start a subprocess, ~6 ms, in
        # the first long stage of a cold run)
        return getattr(ctypes.CDLL(None), name)
    except (OSError, AttributeError):
        return None


@cache
def _trim():
    return _glibc("malloc_trim")


@cache
def _mallopt():
    return _glibc("mallopt")


#: Recordings longer than this give their phases' freed memory back between phases (shorter ones
#: free too little for peak memory to notice, and a trim costs the next phase its page faults).
TRIM_AFTER_SEC = 60.0

#: Blocks smaller than this come from malloc's heaps (reused once freed) instead of mmap. Under
#: the 64 MB a thread's heap can hold: larger ones are mapped whatever the threshold says.
HEAP_BLOCKS_BELOW = 60 << 20

#: A heap gives back its free top only once it is this large (``release`` gives back the rest).
TRIM_ABOVE = 64 << 20

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's malloc.h


_lock = threading.Lock()
_heap_thresholds: tuple[int, int] | None = None  # (mmap, trim) that reuse_large_blocks set
_mapped_users = 0


def _set(mmap: int, trim: int) -> bool:
    mallopt = _mallopt()
    # the trim threshold first: setting either one turns off glibc's own adjusting of both
    return mallopt is not None and bool(mallopt(_M_TRIM_THRESHOLD, trim)) and bool(mallopt(_M_MMAP_THRESHOLD, mmap))


@cache
def reuse_large_blocks() -> bool:
    """Serve blocks up to ``HEAP_BLOCKS_BELOW`` from malloc's heaps for the rest of the process,
    so that a model which frees and asks again for the same large buffer on every call gets the
    same pages back: a warm transcription of 10 s went from 0.55 to 0.49 s, its kernel time from
    0.19 to 0.08 s. The cost: such a block freed stays resident for that thread's next use, until
    a ``release``; and where the thread's heap (64 MB at most) has no room left for it beside
    what else it holds, malloc starts a new heap and the old copy stays resident too, until a
    ``release`` (Whisper's caller releases after each 30 s window of a long input). Called by
    what needs it (the Whisper loader), once; whether malloc took the settings."""
    global _heap_thresholds
    if _mallopt() is None:
        return False
    with _lock:
        _heap_thresholds = (HEAP_BLOCKS_BELOW, TRIM_ABOVE)
        return True if _mapped_users else _set(*_heap_thresholds)  # else set when the last mapped run ends


#: Blocks from this size up are mapped (and unmapped when freed) inside ``mapped_large_blocks``.
MAPPED_FROM = 1 << 20

#: What ``mapped_large_blocks`` restores where ``reuse_large_blocks`` has not set its thresholds:
#: where glibc's own adjusting ends after its first 32 MB block is freed (setting a threshold
#: turns that adjusting off, and there is no way back to it).
_GLIBC_ADJUSTED = (32 << 20, 64 << 20)


@contextmanager
def mapped_large_blocks():
    """Inside, every block of ``MAPPED_FROM`` or more is its own mapping, given back the moment
    it is freed, so what a run frees cannot stay resident as heap fragments. Process-wide while
    any thread is inside (stages running beside it map theirs too); page faults on each such
    block are the cost, which a ``release`` after the run pays anyway."""
    global _mapped_users
    mallopt = _mallopt()
    if mallopt is None:
        yield
        return
    with _lock:
        _mapped_users += 1
        if _mapped_users == 1:
            mallopt(_M_MMAP_THRESHOLD, MAPPED_FROM)
    try:
        yield
    finally:
        with _lock:
            _mapped_users -= 1
            if _mapped_users == 0:
                _set(*(_heap_thresholds or _GLIBC_ADJUSTED))


def release() -> bool:
    """Give the heap's free pages back to the system; whether any were."""
    trim = _trim()
    return bool(trim(0)) if trim is not None else False
