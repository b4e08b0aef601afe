"""`make demo`: build a short clip with known content and run every available operation on it.

The clip: four 2.5 s shots (the astronaut photo, the cat, the coffee cup, a title card), hard
cuts between them, and a spoken sentence (espeak-ng) or, without espeak-ng, a 440 Hz tone.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from video_extract.testing import media
from video_extract.testing.speech import espeak_available, silence, speak

SENTENCE = "Welcome to video extract. This clip has four shots, a cat, a cup of coffee, and some text."


def make_demo_clip(path: Path) -> media.ClipFacts:
    from skimage import data

    images = [data.astronaut(), data.chelsea(), data.coffee(), media.text_image(["video-extract", "demo clip"], 640, 360, size=48)]
    seconds = 2.5 * len(images)
    if espeak_available():
        voice = speak(SENTENCE)
        audio = np.concatenate([silence(0.5), voice])[: int(seconds * 16000)]
        audio = np.pad(audio, (0, int(seconds * 16000) - len(audio)))
    else:
        t = np.arange(int(seconds * 16000)) / 16000
        audio = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    return media.slideshow_clip(path, images, seconds_each=2.5, fps=25, width=640, height=360, audio=audio)


#: Operation -> the model it needs that no PyPI package ships (downloaded on first use).
DOWNLOADED_MODELS = {"objects": "yolox-nano", "faces": "yunet", "vision_embeddings": "clip-vit-base-patch32", "audio_embeddings": "clap-htsat-fused"}


def runnable_operations(models_dir: Path | None) -> tuple[list[str], list[str]]:
    """Every installed operation whose model is here or can be fetched now; and notes on the rest."""
    from video_extract.errors import ModelError
    from video_extract.models import ModelStore
    from video_extract.registry import default_registry

    store = ModelStore(models_dir)
    ops, notes = [], []
    for op in default_registry().operations():
        model = DOWNLOADED_MODELS.get(op)
        if model and store.locate(model) is None:
            try:
                store.fetch(model)
            except ModelError as exc:
                notes.append(f"skipping {op}: {exc.message}")
                continue
        ops.append(op)
    return ops, notes


def main(argv: list[str] | None = None) -> int:
    from video_extract.cli import main as cli_main

    argv = sys.argv[1:] if argv is None else argv
    out = Path(argv[0] if argv else "demo-output")
    out.mkdir(parents=True, exist_ok=True)
    shared = Path(__file__).resolve().parents[3].parent / "shared" / "models"  # offline model copies beside a checkout
    models_dir = shared if shared.is_dir() else None
    clip = make_demo_clip(out / "demo.mp4")
    print(f"demo clip: {clip.path} ({clip.duration:.1f} s, cuts at frames {clip.cuts})")
    ops, notes = runnable_operations(models_dir)
    for note in notes:
        print(note)
    args = ["debug", str(clip.path), "--ops", ",".join(ops), "-o", str(out), "--cache-dir", str(out / ".cache")]
    status = cli_main(args + (["--models-dir", str(models_dir)] if models_dir else []))
    folder = out / "demo"
    if folder.exists():
        print(f"\noutputs in {folder}/:")
        for path in sorted(folder.iterdir()):
            if path.name.startswith("."):
                continue
            extra = f" ({len(list(path.iterdir()))} files)" if path.is_dir() else f" ({path.stat().st_size:,} bytes)"
            print(f"  {path.name}{'/' if path.is_dir() else ''}{extra}")
    return status


if __name__ == "__main__":
    sys.exit(main())
