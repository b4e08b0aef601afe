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
"""

from __future__ import annotations

import ctypes
import os
import sys
from functools import cache


@cache
def _trim():
    if not sys.platform.startswith("linux") or os.environ.get("VIDEO_EXTRACT_MALLOC") == "default":
        return None
    try:
        # the C library Python runs on (``find_library`` would start a subprocess, ~6 ms, in
        # the first long stage of a cold run); glibc's malloc_trim, which musl does not have
        return ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None


def release() -> bool:
    """Give the heap's free pages back to the system; whether any were."""
    trim = _trim()
    return bool(trim(0)) if trim is not None else False
