"""Still images as one-frame inputs (time 0, frame 0).

Pillow reads them so that EXIF orientation is honoured, which FFmpeg's image demuxers ignore.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from video_extract.errors import InputError
from video_extract.media.container import check_readable
from video_extract.results import MediaInfo, VideoStreamInfo


def _open(path: Path):
    from PIL import Image, UnidentifiedImageError  # noqa: F401 - Image.DecompressionBombError below

    try:
        image = Image.open(path)
        image.load()
    except Image.DecompressionBombError as exc:
        raise InputError(f"image too large to decode safely ({exc})", path) from None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise InputError(f"not a readable image ({exc.__class__.__name__}: {exc})", path) from None
    return image


def _exif_rotation(image) -> int:
    """EXIF orientation as a counter-clockwise rotation (mirrored orientations count as their rotation)."""
    orientation = image.getexif().get(0x0112, 1)
    return {3: 180, 4: 180, 5: 270, 6: 270, 7: 90, 8: 90}.get(orientation, 0)


def probe_image(path: str | Path) -> MediaInfo:
    path = check_readable(path)
    image = _open(path)
    rotation = _exif_rotation(image)
    width, height = image.size
    display = (height, width) if rotation in (90, 270) else (width, height)
    return MediaInfo(
        path=str(path),
        size_bytes=path.stat().st_size,
        container=(image.format or path.suffix.lstrip(".")).lower(),
        duration=None,
        bit_rate=None,
        is_image=True,
        streams=[
            VideoStreamInfo(
                index=0,
                codec=(image.format or "").lower() or None,
                width=width,
                height=height,
                display_width=display[0],
                display_height=display[1],
                rotation=rotation,
                fps=None,
                frame_count=1,
                vfr=False,
            )
        ],
    )


def read_image(path: str | Path) -> np.ndarray:
    """RGB uint8 array in display orientation."""
    from PIL import ImageOps

    path = check_readable(path)
    image = ImageOps.exif_transpose(_open(path))
    return np.asarray(image.convert("RGB"))


def save_jpeg(path: str | Path, rgb: np.ndarray, quality: int = 90) -> None:
    """Write an RGB array as JPEG (Pillow's libjpeg-turbo, as most tools produce them)."""
    from PIL import Image

    Image.fromarray(rgb).save(path, format="JPEG", quality=quality)
