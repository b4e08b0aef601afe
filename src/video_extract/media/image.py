"""Still images as one-frame inputs (time 0, frame 0).

Pillow reads them so that EXIF orientation is honoured, which FFmpeg's image demuxers ignore.
Probing reads the header alone; the pixels are decoded after their size has passed the pixel
budget (``media.limits``), once per request however many stages want them (``Still``).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np

from video_extract.errors import InputError
from video_extract.media.container import check_readable, readable
from video_extract.media.limits import check_size
from video_extract.media.video import count
from video_extract.results import MediaInfo, VideoStreamInfo

#: Pillow's bomb check (``Image.MAX_IMAGE_PIXELS``) is off while a header is read, under this lock.
_pillow_limit = threading.Lock()


def _open(path: Path):
    """The image with its header read and nothing decoded; InputError when it is not an image.

    Pillow's own bomb check would print a two-line warning above its limit, and refuse twice
    that without saying the size: it is off while the header is read (under a lock, back in
    place before anything is decoded), and the pixel budget, checked from the same header by
    whoever decodes, replaces it.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with _pillow_limit:
            saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
            try:
                return Image.open(path)
            finally:
                Image.MAX_IMAGE_PIXELS = saved
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise InputError(f"not a readable image ({exc.__class__.__name__}: {exc})", path) from None


def image_size(path: str | Path) -> tuple[int, int] | None:
    """(width, height) from the header of a file Pillow recognises (whatever its name); None otherwise."""
    try:
        with _open(Path(path)) as image:
            return image.size
    except InputError:
        return None


def _orientation(image) -> int:
    """The EXIF orientation tag (1: as stored).

    Read from the header only: Pillow's PNG ``getexif`` decodes the whole picture to look for an
    eXIf chunk after the pixels, so a PNG without one before them counts as not rotated.
    """
    if image.format == "PNG" and "exif" not in image.info:
        return 1
    return image.getexif().get(0x0112, 1)


def _exif_rotation(image) -> int:
    """EXIF orientation as a counter-clockwise rotation (mirrored orientations count as their rotation)."""
    return {3: 180, 4: 180, 5: 270, 6: 270, 7: 90, 8: 90}.get(_orientation(image), 0)


def probe_image(path: str | Path) -> MediaInfo:
    """What metadata.json says of a still, from its header: nothing is decoded, and a picture
    over the pixel budget is described (the operations that need its pixels refuse it)."""
    return describe_image(*readable(path))


def describe_image(path: Path, st: os.stat_result) -> MediaInfo:
    """``probe_image`` of a file ``readable`` has checked (``st``: its stat then)."""
    width, height, rotation, fmt = _header(path, st)
    display = (height, width) if rotation in (90, 270) else (width, height)
    return MediaInfo(
        path=str(path),
        size_bytes=st.st_size,
        container=fmt or path.suffix.lstrip(".").lower(),
        duration=None,
        bit_rate=None,
        is_image=True,
        streams=[
            VideoStreamInfo(
                index=0,
                codec=fmt or None,
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


#: Header facts (width, height, EXIF rotation, format) of the stills probed last, by file
#: identity (device, inode, size, mtime, ctime): a service asked about the same unchanged
#: file again and again (a still per request) does not parse its header every time.
_headers: OrderedDict[tuple, tuple[int, int, int, str]] = OrderedDict()
_headers_lock = threading.Lock()
_HEADERS_KEPT = 1024


def _header(path: Path, st: os.stat_result) -> tuple[int, int, int, str]:
    identity = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    with _headers_lock:
        known = _headers.get(identity)
        if known is not None:
            _headers.move_to_end(identity)
            return known
    with _open(path) as image:
        facts = (*image.size, _exif_rotation(image), (image.format or "").lower())
    with _headers_lock:
        _headers[identity] = facts
        while len(_headers) > _HEADERS_KEPT:
            _headers.popitem(last=False)
    return facts


#: Channel orders a still is held in: Pillow decodes RGB, OpenCV BGR (what its detectors take).
RGB, BGR = "rgb", "bgr"


def read_image(path: str | Path) -> np.ndarray:
    """RGB uint8 array in display orientation, read-only; InputError over the pixel budget
    (checked from the header, before decoding) or for what is not a readable image."""
    pixels, order = decode_image(path)
    return pixels if order == RGB else _read_only(in_order(pixels, BGR, RGB))


def decode_image(path: str | Path) -> tuple[np.ndarray, str]:
    """``read_image``'s pixels in the channel order their decoder gives (``RGB`` or ``BGR``),
    read-only: a plain JPEG or PNG comes from OpenCV in BGR, ready for the detectors (in RGB
    above ``LARGE_PIXELS``, where a swapped copy of the whole picture would cost the most)."""
    from PIL import Image, ImageOps

    path = check_readable(path)
    image = _open(path)
    try:
        check_size(*image.size, path, still=True)
        order = RGB if image.size[0] * image.size[1] > LARGE_PIXELS else BGR
        alike = _read_alike(path, image, order)
        if alike is not None:
            count("still_decodes")
            return _read_only(alike), order
        image.load()
        count("still_decodes")
        ImageOps.exif_transpose(image, in_place=True)  # a turned copy only when EXIF says so
        if image.mode in _WIDE_GREY:
            return _read_only(_wide_grey_rgb(image)), RGB
        if image.mode != "RGB":
            image, original = image.convert("RGB"), image
            original.close()
        rgb = _to_array(image)
    except Image.DecompressionBombError as exc:  # a frame or tile past Pillow's limit, found while decoding
        raise InputError(f"image too large to decode safely ({exc})", path) from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise InputError(f"not a readable image ({exc.__class__.__name__}: {exc})", path) from None
    finally:
        image.close()  # Pillow's copy goes now, not when the collector gets to it
    return _read_only(rgb), RGB


#: How stills are decoded, in the cache keys of a still's stages: raised when a still's pixels
#: change (2: 16-bit grey reduced to its top 8 bits, where Pillow had clipped it nearly white).
STILL_DECODER = 2

#: Pillow's modes of grey in 16 (or 32) bits a pixel: 16-bit PNG and TIFF scans, depth maps.
_WIDE_GREY = {"I;16", "I;16L", "I;16B", "I;16N", "I"}


def _wide_grey_rgb(image) -> np.ndarray:
    """A 16-bit grey picture as 8-bit RGB, its top 8 bits (as OpenCV and ImageMagick reduce it).
    Pillow's own conversion clips at 255 instead: nearly every pixel white, and nothing found."""
    wide = np.asarray(image)
    grey = (np.clip(wide, 0, 65535) >> 8).astype(np.uint8)
    return np.repeat(grey[:, :, None], 3, axis=2)


def in_order(pixels: np.ndarray, order: str, wanted: str) -> np.ndarray:
    """``pixels`` (channels in ``order``) in the ``wanted`` order: themselves, or a swapped copy."""
    import cv2

    return pixels if order == wanted else cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB)  # the same swap either way


def _read_only(pixels: np.ndarray) -> np.ndarray:
    pixels.flags.writeable = False
    return pixels


#: (format, mode) of the pictures OpenCV decodes to the very pixels Pillow gives, by the same
#: libraries (libjpeg-turbo's default IDCT and upsampling, libpng): 8-bit colour or grey, alpha dropped.
_ALIKE = {("JPEG", "RGB"), ("JPEG", "L"), ("PNG", "RGB"), ("PNG", "L"), ("PNG", "RGBA")}


def _read_alike(path: Path, image, order: str = RGB) -> np.ndarray | None:
    """The pixels of a plain JPEG or PNG, decoded by OpenCV in ``order``: what Pillow's decode
    and RGB conversion give, in a third of the time for a 1080p photo (Pillow decodes into 4
    bytes a pixel, then copies out 3). None where Pillow must decode: another format
    or mode, a 16-bit or low-bit PNG, a transparency key, an animation, an EXIF orientation to
    apply, a JPEG that does not end with its end marker (libjpeg fills a truncated picture in
    grey where Pillow says it is truncated), or anything OpenCV fails to read (Pillow then says why).
    """
    import cv2

    if (image.format, image.mode) not in _ALIKE or getattr(image, "n_frames", 1) != 1 or _orientation(image) != 1:
        return None
    if image.format == "PNG" and ("transparency" in image.info or [tile.args for tile in image.tile] != [image.mode]):
        return None
    if image.format == "JPEG":
        with open(path, "rb") as f:
            f.seek(-2, os.SEEK_END)
            if f.read(2) != b"\xff\xd9":
                return None
    width, height = image.size
    into_rgb = getattr(cv2, "IMREAD_COLOR_RGB", None) if order == RGB else None  # OpenCV 4.11+
    flags = (into_rgb if into_rgb is not None else cv2.IMREAD_COLOR) | cv2.IMREAD_IGNORE_ORIENTATION
    try:
        # Into an array of the header's size: without one, the binding returns a copy of what it decoded.
        pixels = cv2.imread(str(path), np.empty((height, width, 3), np.uint8), flags)
    except cv2.error:
        return None
    if pixels is None or pixels.shape != (height, width, 3):
        return None
    if order == RGB and into_rgb is None:
        cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB, dst=pixels)
    return pixels


#: Rows of a picture converted at a time (about 8 MB of Pillow's pixels).
_BAND_BYTES = 8 << 20


def _to_array(image) -> np.ndarray:
    """A Pillow RGB image as an HxWx3 array, copied a band of rows at a time.

    ``np.asarray(image)`` goes through ``tobytes``, which holds the picture twice more beside
    Pillow's own 4 bytes a pixel (its 64 KB pieces, then their join): 0.9 GB for 88 Mpx. Band
    by band, the peak is Pillow's copy and the array, 7 bytes a pixel: 0.6 GB. Up to
    ``LARGE_PIXELS`` the extra copy is at most 75 MB and one copy is much quicker (a 1080p
    photo: 1.3 ms, not 10-17, with Pillow 13), the same pixels.
    """
    width, height = image.size
    if width * height <= LARGE_PIXELS:
        return np.asarray(image)
    out = np.empty((height, width, 3), np.uint8)
    rows = max(1, _BAND_BYTES // (4 * width))
    for top in range(0, height, rows):
        band = image.crop((0, top, width, min(height, top + rows)))
        out[top : top + band.height] = np.frombuffer(band.tobytes(), np.uint8).reshape(band.height, width, 3)
    return out


class Still:
    """A still image's pixels, decoded at most once, for every stage of one request that reads
    them (frames, keyframes, scenes and scene_frames all want the same picture).

    The request's ``Source`` holds it, so the pixels live as long as the request, not the
    process. The array is read-only: stages share it.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._pixels: tuple[np.ndarray, str] | None = None
        self._error: InputError | None = None

    def pixels(self) -> tuple[np.ndarray, str]:
        """The picture and its channel order (``RGB`` or ``BGR``, as decoded: ``decode_image``)."""
        with self._lock:
            if self._error is not None:
                raise self._error
            if self._pixels is None:
                try:
                    self._pixels = decode_image(self.path)
                except InputError as exc:
                    self._error = exc  # a damaged file is read once too
                    raise
            return self._pixels

    def rgb(self) -> np.ndarray:
        """The picture in RGB (a swapped copy when it was decoded in BGR)."""
        pixels, order = self.pixels()
        return pixels if order == RGB else _read_only(in_order(pixels, order, RGB))

    @property
    def decoded(self) -> bool:
        """Whether the pixels are held now."""
        return self._pixels is not None

    def release(self) -> None:
        """Let go of the pixels (the next ``pixels`` decodes again)."""
        with self._lock:
            self._pixels = None

    def __repr__(self) -> str:
        return f"Still({str(self.path)!r}, decoded={self.decoded})"


#: Pictures above this many pixels are encoded one at a time (stages run side by side in perf mode).
LARGE_PIXELS = 25_000_000
_large_encodes = threading.Lock()


def save_jpeg(path: str | Path, rgb: np.ndarray, quality: int = 90) -> None:
    """Write an RGB array as JPEG (Pillow's libjpeg-turbo, as most tools produce them).

    Pillow copies the picture first, at 4 bytes a pixel (0.36 GB at the pixel budget): large
    ones take turns, so that the frame stages of one still running side by side do not hold
    three copies at once.
    """
    from PIL import Image

    large = rgb.shape[0] * rgb.shape[1] > LARGE_PIXELS
    with _large_encodes if large else contextlib.nullcontext():
        Image.fromarray(rgb).save(path, format="JPEG", quality=quality)
    count("jpeg_writes")
