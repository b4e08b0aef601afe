"""Synthetic media with known ground truth, encoded with PyAV at test (or demo, or benchmark) time.

Each generator writes a real file through FFmpeg's encoders and returns what is true about it
(where the cuts are, which frames are keyframes), so tests check our outputs against facts,
not against our own earlier outputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

#: Distinct colours (RGB) for consecutive scenes: far apart in hue and brightness.
PALETTE = [(220, 40, 40), (40, 200, 60), (40, 60, 220), (230, 210, 40), (200, 40, 200), (40, 210, 210), (240, 240, 240), (30, 30, 30)]


@dataclass
class ClipFacts:
    path: Path
    frames: int
    fps: float
    width: int
    height: int
    cuts: list[int] = field(default_factory=list)  # first frame of each new scene
    keyframes: list[int] = field(default_factory=list)  # frames the encoder made keyframes (forced)
    tone_hz: float | None = None
    duration: float = 0.0


def scene_image(scene: int, frame_in_scene: int, width: int, height: int, seed: int = 0) -> np.ndarray:
    """A frame of scene ``scene``: a flat colour, a textured stripe and a block drifting slowly.

    Within a scene consecutive frames differ a little (motion); across a cut they differ a lot.
    """
    base = np.array(PALETTE[scene % len(PALETTE)], dtype=np.uint8)
    image = np.empty((height, width, 3), np.uint8)
    image[:] = base
    rng = np.random.default_rng(seed * 1000 + scene)
    stripe = rng.integers(0, 255, (max(2, height // 8), max(2, width // 8), 3), dtype=np.uint8)
    stripe = np.repeat(np.repeat(stripe, 8, 0), 8, 1)[: height // 4, :width]
    image[height // 2 : height // 2 + stripe.shape[0], : stripe.shape[1]] = stripe
    size = max(4, min(width, height) // 6)
    x = (frame_in_scene * 2) % max(1, width - size)
    y = height // 8
    image[y : y + size, x : x + size] = 255 - base
    return image


def _video_stream(container, width: int, height: int, fps: float, gop: int | None, codec: str = "libx264"):
    options = {"preset": "veryfast", "crf": "23"}
    if gop:
        # Fixed GOP with scene-cut keyframes off: keyframes exactly every ``gop`` frames.
        options["x264-params"] = f"keyint={gop}:min-keyint={gop}:scenecut=0"
    stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001), options=options if codec == "libx264" else {})
    stream.width, stream.height = width, height
    stream.pix_fmt = "yuv420p"
    return stream


def _add_tone_stream(container, rate: int, channels: int, codec: str):
    stream = container.add_stream(codec, rate=rate)
    stream.layout = "mono" if channels == 1 else "stereo"
    return stream


def _encode_tone(container, stream, seconds: float, freq: float, rate: int, channels: int, amplitude: float = 0.5) -> None:
    t = np.arange(int(round(seconds * rate))) / rate
    wave = (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    _encode_samples(container, stream, np.tile(wave, (channels, 1)), rate)


def _encode_samples(container, stream, samples: np.ndarray, rate: int) -> None:
    """Encode float32 samples of shape (channels, n) in whatever sample format the encoder takes."""
    fmt = stream.codec_context.format.name if stream.codec_context.format else "fltp"
    frame_size = stream.codec_context.frame_size or 1024
    for start in range(0, samples.shape[1], frame_size):
        planar = samples[:, start : start + frame_size]
        if fmt == "s16":
            frame = av.AudioFrame.from_ndarray((planar.T.reshape(1, -1) * 32767).astype(np.int16), format="s16", layout=stream.layout.name)
        elif fmt == "s16p":
            frame = av.AudioFrame.from_ndarray((planar * 32767).astype(np.int16), format="s16p", layout=stream.layout.name)
        elif fmt == "flt":
            frame = av.AudioFrame.from_ndarray(planar.T.reshape(1, -1), format="flt", layout=stream.layout.name)
        else:
            frame = av.AudioFrame.from_ndarray(planar, format="fltp", layout=stream.layout.name)
        frame.sample_rate = rate
        frame.pts = start
        frame.time_base = Fraction(1, rate)
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)


def scene_clip(
    path: str | Path,
    cuts: Sequence[int] = (30, 60),
    frames: int = 90,
    width: int = 320,
    height: int = 240,
    fps: float = 30.0,
    gop: int | None = None,
    tone_hz: float | None = None,
    seed: int = 0,
) -> ClipFacts:
    """A clip whose scene changes at the given frame numbers (hard cuts), optionally with a sine track."""
    path = Path(path)
    boundaries = [0, *cuts, frames]
    with av.open(str(path), "w") as container:
        video = _video_stream(container, width, height, fps, gop)
        audio = _add_tone_stream(container, 44100, 2, "aac") if tone_hz else None
        for scene, (a, b) in enumerate(zip(boundaries, boundaries[1:])):
            for i in range(a, b):
                frame = av.VideoFrame.from_ndarray(scene_image(scene, i - a, width, height, seed), format="rgb24")
                for packet in video.encode(frame):
                    container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        if audio is not None:
            _encode_tone(container, audio, frames / fps, tone_hz, 44100, 2)
    keyframes = list(range(0, frames, gop)) if gop else []
    return ClipFacts(path, frames, fps, width, height, list(cuts), keyframes, tone_hz, frames / fps)


def tone_file(path: str | Path, freq: float = 440.0, seconds: float = 2.0, rate: int = 44100, channels: int = 2) -> ClipFacts:
    """An audio-only file (codec from the extension: .wav PCM, .mp3, .m4a/.aac AAC, .flac, .ogg Vorbis)."""
    path = Path(path)
    codec = {".wav": "pcm_s16le", ".mp3": "libmp3lame", ".m4a": "aac", ".aac": "aac", ".flac": "flac", ".ogg": "libvorbis"}[path.suffix.lower()]
    with av.open(str(path), "w") as container:
        stream = _add_tone_stream(container, rate, channels, codec)
        _encode_tone(container, stream, seconds, freq, rate, channels)
    return ClipFacts(path, 0, 0.0, 0, 0, tone_hz=freq, duration=seconds)


def vfr_clip(path: str | Path, times: Sequence[float], width: int = 160, height: int = 120) -> ClipFacts:
    """A clip whose frames sit at the given times (seconds): variable frame rate by construction."""
    path = Path(path)
    with av.open(str(path), "w") as container:
        stream = _video_stream(container, width, height, 30, None)
        stream.codec_context.time_base = Fraction(1, 1000)
        for i, t in enumerate(times):
            frame = av.VideoFrame.from_ndarray(scene_image(i % 2, i, width, height), format="rgb24")
            frame.pts = int(round(t * 1000))
            frame.time_base = Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return ClipFacts(path, len(times), 0.0, width, height, duration=float(times[-1]))


def rotated_clip(path: str | Path, rotation: int = 90, width: int = 320, height: int = 240, frames: int = 15) -> ClipFacts:
    """A clip with a display-matrix rotation (as phones write): the top-left quadrant is white."""
    path = Path(path)
    with av.open(str(path), "w") as container:
        stream = _video_stream(container, width, height, 30, None)
        stream.set_display_rotation(rotation)
        for _ in range(frames):
            image = np.zeros((height, width, 3), np.uint8)
            image[: height // 2, : width // 2] = 255
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return ClipFacts(path, frames, 30.0, width, height, duration=frames / 30)


def anamorphic_clip(path: str | Path, width: int = 320, height: int = 240, sar: Fraction = Fraction(4, 3), frames: int = 10) -> ClipFacts:
    """Non-square pixels: stored 320x240, displayed 426x240 with a 4:3 pixel aspect ratio."""
    path = Path(path)
    with av.open(str(path), "w") as container:
        stream = _video_stream(container, width, height, 30, None)
        stream.codec_context.sample_aspect_ratio = sar
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(scene_image(0, i, width, height), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return ClipFacts(path, frames, 30.0, width, height, duration=frames / 30)


def still_image(path: str | Path, width: int = 64, height: int = 48) -> Path:
    from PIL import Image

    path = Path(path)
    Image.fromarray(scene_image(2, 0, width, height)).save(path)
    return path


def truncate(src: str | Path, dst: str | Path, fraction: float = 0.5) -> Path:
    """A copy cut short, as an interrupted download leaves it."""
    data = Path(src).read_bytes()
    Path(dst).write_bytes(data[: int(len(data) * fraction)])
    return Path(dst)


def dominant_frequency(samples: np.ndarray, rate: int) -> float:
    """The strongest frequency of a signal (Hann-windowed FFT peak, interpolated)."""
    window = np.hanning(len(samples))
    spectrum = np.abs(np.fft.rfft(samples * window))
    k = int(np.argmax(spectrum[1:]) + 1)
    if 1 <= k < len(spectrum) - 1:  # parabolic interpolation around the peak bin
        a, b, c = np.log(spectrum[k - 1 : k + 2] + 1e-12)
        k = k + 0.5 * (a - c) / (a - 2 * b + c)
    return float(k * rate / len(samples))


def fit_image(image: np.ndarray, width: int, height: int, zoom: float = 1.0, shift: float = 0.0) -> np.ndarray:
    """Letterbox ``image`` into width x height, optionally zoomed and panned (to give stills motion)."""
    import cv2

    h, w = image.shape[:2]
    scale = min(width / w, height / h) * zoom
    resized = cv2.resize(image, (max(1, int(w * scale)), max(1, int(h * scale))), interpolation=cv2.INTER_AREA)
    canvas = np.zeros((height, width, 3), np.uint8)
    rh, rw = resized.shape[:2]
    x0 = (width - rw) // 2 + int(shift)
    y0 = (height - rh) // 2
    xs, ys = max(0, x0), max(0, y0)
    xe, ye = min(width, x0 + rw), min(height, y0 + rh)
    canvas[ys:ye, xs:xe] = resized[ys - y0 : ye - y0, xs - x0 : xe - x0]
    return canvas


def text_image(lines: Sequence[str], width: int = 640, height: int = 360, size: int = 36, background=(250, 250, 250), color=(10, 10, 10)) -> np.ndarray:
    """Known text rendered with Pillow's bundled font, centred line by line (ground truth for OCR)."""
    from PIL import Image, ImageDraw, ImageFont

    image = Image.new("RGB", (width, height), background)
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=size)
    heights = [draw.textbbox((0, 0), line, font=font)[3] for line in lines]
    y = (height - sum(heights) - (len(lines) - 1) * size // 2) // 2
    for line, h in zip(lines, heights):
        w = draw.textlength(line, font=font)
        draw.text(((width - w) / 2, y), line, font=font, fill=color)
        y += h + size // 2
    return np.asarray(image)


def slideshow_clip(
    path: str | Path,
    images: Sequence[np.ndarray],
    seconds_each: float | Sequence[float] = 2.0,
    fps: float = 25.0,
    width: int = 640,
    height: int = 360,
    audio: np.ndarray | None = None,
    audio_rate: int = 16000,
    motion: bool = True,
    rotation: int = 0,
) -> ClipFacts:
    """A clip showing each image in turn (a hard cut between them), with an optional mono track.

    ``seconds_each``: how long each image is shown, one value for all or one per image.
    ``motion`` pans each still slowly so consecutive frames differ as in real footage;
    ``rotation`` stores a display-matrix rotation (as a phone held sideways does).
    """
    path = Path(path)
    durations = [seconds_each] * len(images) if isinstance(seconds_each, (int, float)) else list(seconds_each)
    counts = [int(round(d * fps)) for d in durations]
    total = sum(counts)
    with av.open(str(path), "w") as container:
        video = _video_stream(container, width, height, fps, None)
        if rotation:
            video.set_display_rotation(rotation)
        stream = None
        if audio is not None:
            stream = container.add_stream("aac", rate=audio_rate)
            stream.layout = "mono"
        for image, per in zip(images, counts, strict=True):
            for i in range(per):
                shift = (i - per / 2) * 0.6 if motion else 0.0
                frame = av.VideoFrame.from_ndarray(fit_image(image, width, height, shift=shift), format="rgb24")
                for packet in video.encode(frame):
                    container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        if stream is not None:
            _encode_samples(container, stream, np.asarray(audio, dtype=np.float32)[None, :], audio_rate)
    cuts = [sum(counts[:n]) for n in range(1, len(images))]
    return ClipFacts(path, total, fps, width, height, cuts=cuts, duration=total / fps)


def garbled_video(src: str | Path, dst: str | Path, seed: int = 0) -> Path:
    """A copy whose video packets hold random bytes (same sizes, times and flags): the container
    opens and probes fine, the stream cannot be decoded. Other streams are copied unchanged."""
    rng = np.random.default_rng(seed)
    dst = Path(dst)
    with av.open(str(src)) as source, av.open(str(dst), "w") as target:
        streams = {s.index: target.add_stream_from_template(s) for s in source.streams if s.type in ("video", "audio")}
        for packet in source.demux(list(source.streams)):
            index = packet.stream.index
            if packet.size == 0 or index not in streams:
                continue
            if packet.stream.type == "video":
                garbled = av.Packet(rng.integers(0, 256, packet.size, dtype=np.uint8).tobytes())
                garbled.pts, garbled.dts, garbled.time_base = packet.pts, packet.dts, packet.time_base
                garbled.is_keyframe = packet.is_keyframe
                packet = garbled
            packet.stream = streams[index]
            target.mux(packet)
    return dst


def fade_clip(
    path: str | Path,
    frames: int = 90,
    width: int = 320,
    height: int = 240,
    fps: float = 30.0,
    cuts: Sequence[int] = (),
    fades: Sequence[tuple[int, int]] = (),
    flashes: Sequence[int] = (),
    grain: float = 0.0,
    crf: int | None = 23,
    bit_rate: int | None = None,
    rotation: int = 0,
    times: Sequence[float] | None = None,
    seed: int = 0,
) -> ClipFacts:
    """Scenes joined by hard ``cuts`` and by dark ``fades`` ((first frame, length): down to black,
    the next scene up from black), with single white ``flashes``, film ``grain`` (noise sigma),
    a fade to black at the end when a fade runs past the last frame; encoded at ``crf`` or a
    low ``bit_rate``, with a display ``rotation``, or at explicit frame ``times`` (VFR)."""
    path = Path(path)
    rng = np.random.default_rng(seed)
    changes = sorted([*cuts, *(start + length // 2 for start, length in fades)])
    with av.open(str(path), "w") as container:
        stream = container.add_stream(
            "libx264", rate=Fraction(fps).limit_denominator(1001), options={"preset": "veryfast", **({"crf": str(crf)} if crf is not None else {})}
        )
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if bit_rate:
            stream.bit_rate = bit_rate
        if rotation:
            stream.set_display_rotation(rotation)
        if times is not None:
            stream.codec_context.time_base = Fraction(1, 1000)
        for i in range(frames):
            scene = sum(i >= c for c in changes)
            start = changes[scene - 1] if scene else 0
            image = scene_image(scene, i - start, width, height, seed).astype(np.float32)
            for first, length in fades:
                if first <= i < first + length:
                    half = length / 2
                    image *= abs(i - first - half + 0.5) / half  # 1 -> ~0 -> 1 across the fade
            if i in flashes:
                image[:] = 255
            if grain:
                image += rng.normal(0, grain, image.shape)
            frame = av.VideoFrame.from_ndarray(np.clip(image, 0, 255).astype(np.uint8), format="rgb24")
            if times is not None:
                frame.pts, frame.time_base = int(round(times[i] * 1000)), Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return ClipFacts(path, frames, fps if times is None else 0.0, width, height, cuts=list(cuts), duration=frames / fps if times is None else float(times[-1]))


def crossing_clip(
    path: str | Path, picture: np.ndarray, seconds: float = 4.0, fps: float = 10.0, width: int = 640, height: int = 360, size: int = 240
) -> ClipFacts:
    """Two copies of ``picture`` (``size`` px wide) crossing paths on a grey background: one along
    the top from left to right, the other (mirrored) along the bottom from right to left; they
    pass each other half-way. Ground truth for tracking: a box in the top half is the first."""
    import cv2

    item = cv2.resize(picture, (size, int(round(size * picture.shape[0] / picture.shape[1]))), interpolation=cv2.INTER_AREA)
    h, w = item.shape[:2]
    frames = int(round(seconds * fps))
    path = Path(path)
    with av.open(str(path), "w") as container:
        video = _video_stream(container, width, height, fps, None)
        for i in range(frames):
            canvas = np.full((height, width, 3), 235, np.uint8)
            x = int(round(i / max(1, frames - 1) * (width - w)))
            canvas[10 : 10 + h, x : x + w] = item
            canvas[height - 10 - h : height - 10, width - w - x : width - x] = item[:, ::-1]
            for packet in video.encode(av.VideoFrame.from_ndarray(canvas, format="rgb24")):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
    return ClipFacts(path, frames, fps, width, height, duration=frames / fps)
