"""Calibrates OCR's ``min_single_char_confidence``: lone glyphs read into photos vs real single characters.

False positives: every lone character RapidOCR reads (at any confidence) in scikit-image's
photos, at their own size and at 640 px wide, and in the keyframes of ../shared/media/footage.
Real glyphs: digits and letters rendered with Pillow (DejaVu and Pillow's own font, 48-160 px)
on plain and photo backgrounds. Prints the confidence of each false positive and, for a few
thresholds, how many of each side survive. Takes a few minutes: ``python benchmarks/ocr_lone_glyphs.py``.
"""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont
from skimage import data

from video_extract.vision.ocr import lone_glyph, make_engine, read_text

FOOTAGE = Path(__file__).resolve().parents[2] / "shared" / "media" / "footage"
PHOTOS = [
    "coffee",
    "astronaut",
    "chelsea",
    "rocket",
    "camera",
    "cat",
    "immunohistochemistry",
    "hubble_deep_field",
    "retina",
    "page",
    "text",
    "moon",
    "horse",
    "grass",
    "gravel",
    "brick",
    "colorwheel",
    "logo",
    "clock",
    "coins",
]
FONTS = [*(f"/usr/share/fonts/truetype/dejavu/DejaVu{n}.ttf" for n in ("Sans", "Sans-Bold", "Serif", "SansMono")), None]
CHARS = "0123456789AEHKMRXZabkx7"
THRESHOLDS = (0.5, 0.8, 0.85, 0.9, 0.95)


def width_640(rgb: np.ndarray) -> np.ndarray:
    return cv2.resize(rgb, (640, round(rgb.shape[0] * 640 / rgb.shape[1])), interpolation=cv2.INTER_AREA)


def rgb_of(image: np.ndarray) -> np.ndarray:
    image = np.stack([image] * 3, -1) if image.ndim == 2 else image[..., :3]
    if image.dtype == bool:
        return image.astype(np.uint8) * 255
    return image if image.dtype == np.uint8 else (image / image.max() * 255).astype(np.uint8)


def lone(engine, rgb: np.ndarray) -> list[tuple[str, float]]:
    return [(d.text, d.confidence) for d in read_text(engine, np.ascontiguousarray(rgb[..., ::-1]), 0.0) if lone_glyph(d.text or "")]


def false_positives(engine) -> list[tuple[str, str, float]]:
    found = []
    for name in PHOTOS:
        photo = rgb_of(getattr(data, name)())
        for label, rgb in (("own size", photo), ("640 wide", width_640(photo))):
            found += [(f"skimage {name} ({label})", text, conf) for text, conf in lone(engine, rgb)]
    for path in sorted(FOOTAGE.glob("*")):
        with av.open(str(path)) as container:
            if not container.streams.video:
                continue
            stream = container.streams.video[0]
            stream.codec_context.skip_frame = "NONKEY"
            for n, frame in enumerate(container.decode(stream)):
                found += [(f"{path.name} @ {float(frame.time):.2f} s", text, conf) for text, conf in lone(engine, frame.to_ndarray(format="rgb24"))]
                if n >= 24:
                    break
    return found


def real_glyphs(engine) -> dict[str, list[float | None]]:
    backgrounds = {"plain": [np.full((360, 640, 3), 250, np.uint8), np.full((360, 640, 3), 15, np.uint8)]}
    backgrounds["photo"] = [width_640(p) for p in (data.coffee(), data.astronaut(), data.chelsea())]
    scores: dict[str, list[float | None]] = {"plain": [], "photo": []}
    for kind, images in backgrounds.items():
        for back in images:
            light = back.mean() > 128 and kind == "plain"
            for size in (48, 96, 160):
                for font_path in FONTS:
                    font = ImageFont.truetype(font_path, size) if font_path else ImageFont.load_default(size=size)
                    for char in CHARS:
                        image = Image.fromarray(back.copy())
                        stroke = 0 if kind == "plain" else max(2, size // 24)
                        ImageDraw.Draw(image).text(
                            (320, 180),
                            char,
                            font=font,
                            fill=(10, 10, 10) if light else (255, 255, 255),
                            anchor="mm",
                            stroke_width=stroke,
                            stroke_fill=(0, 0, 0),
                        )
                        hits = [conf for text, conf in lone(engine, np.asarray(image)) if text == char]
                        scores[kind].append(max(hits) if hits else None)
    return scores


def main() -> None:
    engine = make_engine(960, 1)
    noise = false_positives(engine)
    print("lone glyphs read into photos and footage:")
    for where, text, conf in sorted(noise, key=lambda x: -x[2]):
        print(f"  {conf:.4f}  {text!r:6} {where}")
    real = real_glyphs(engine)
    for kind, scores in real.items():
        read = [s for s in scores if s is not None]
        print(
            f"rendered single characters on {kind} backgrounds: read {len(read)}/{len(scores)}, median confidence {np.median(read):.4f}, 10th percentile {np.percentile(read, 10):.4f}"
        )
    for t in THRESHOLDS:
        kept = {kind: sum(s is not None and s >= t for s in scores) / sum(s is not None for s in scores) for kind, scores in real.items()}
        print(
            f"threshold {t:.2f}: false positives kept {sum(c >= t for _, _, c in noise)}/{len(noise)}; real kept {kept['plain']:.1%} (plain), {kept['photo']:.1%} (photo) of those read"
        )


if __name__ == "__main__":
    main()
