"""The pixel budget: the largest picture (width x height) any decoder here may produce.

A 0.5 MB PNG can hold a 13000x13000 picture, 0.5 GB once decoded (twice that while Pillow or
swscale copies it). Every path checks the size from headers before decoding: Pillow's header
for still images, the stream's coded size for FFmpeg (with FFmpeg's own ``max_pixels`` set on
every video decoder, so that a size no header told is refused when the first frame is
allocated). The default is Pillow's ``Image.MAX_IMAGE_PIXELS``, above which it warns.

The budget is process-wide: ``VIDEO_EXTRACT_MAX_PIXELS`` (``0`` turns the check off), which
``Runtime(max_pixels=...)`` and ``--max-pixels`` set, so that bulk worker processes inherit it.
"""

from __future__ import annotations

import os
from pathlib import Path

from video_extract.errors import InputError, UsageError

ENV = "VIDEO_EXTRACT_MAX_PIXELS"
#: Pillow's ``Image.MAX_IMAGE_PIXELS`` (its warning threshold): about 89.5 Mpx, 9459x9459.
DEFAULT_MAX_PIXELS = 89_478_485


def max_pixels() -> int | None:
    """The budget in pixels per frame; None when the check is off."""
    raw = (os.environ.get(ENV) or "").strip()
    if not raw:
        return DEFAULT_MAX_PIXELS
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value < 0:
        raise UsageError(f"{ENV}={raw!r}: give a whole number of pixels per frame (0 turns the check off)")
    return value or None


def set_max_pixels(value: int | None) -> None:
    """Set the budget for this process and the processes it starts (0 or None: no limit)."""
    if value is not None and value < 0:
        raise UsageError(f"max_pixels={value}: give a whole number of pixels per frame (0 turns the check off)")
    os.environ[ENV] = str(value or 0)


def over_budget(width: int, height: int, still: bool) -> str | None:
    """Why a picture of this size may not be decoded, in one line; None when it fits."""
    budget = max_pixels()
    pixels = width * height
    if budget is None or pixels <= budget:
        return None
    what = f"image of {width}×{height} ({_amount(pixels)}) exceeds" if still else f"video frames of {width}×{height} ({_amount(pixels)}) exceed"
    return f"{what} the pixel budget of {_amount(budget)} (set {ENV} or --max-pixels to allow it)"


def check_size(width: int, height: int, path: str | Path, still: bool) -> None:
    """InputError naming ``path`` when a ``width`` x ``height`` picture is over the budget."""
    why = over_budget(width, height, still)
    if why is not None:
        raise InputError(why, path)


def ffmpeg_options() -> dict[str, str]:
    """Decoder options that make FFmpeg itself refuse a frame over the budget (``max_pixels``,
    checked by av_image_check_size2 before a frame is allocated)."""
    budget = max_pixels()
    return {} if budget is None else {"max_pixels": str(min(budget, 2**31 - 1))}  # an int option


def _amount(pixels: int) -> str:
    return f"{pixels / 1e6:.1f} Mpx" if pixels >= 100_000 else f"{pixels:,} px"
