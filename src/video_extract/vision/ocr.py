"""Text reading with RapidOCR (PP-OCRv4 detection + recognition, ONNX, shipped in the wheel).

Detector size: RapidOCR's default scales a frame's *short* side up to 736 px (a 1280x720 frame
is detected at 1312x736). We bound the *long* side instead (``max_side_len`` with
``det_limit_type="max"``): at 960 the same text is read several times faster. The shipped
recogniser's dictionary covers Chinese and printable ASCII, so English and Chinese only.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from video_extract.models.runtime import optimized_once
from video_extract.results import Detection, FrameDetections, TimedText
from video_extract.vision.runs import timed_runs

#: What the shipped recogniser reads, by ISO 639-1 code, with the other spellings people use
#: (``ch`` is RapidOCR's own code for Chinese).
LANGUAGES = {"en": ("english", "eng"), "zh": ("ch", "chinese", "zh-cn", "zh-hans", "zho", "chi")}
SUPPORTED_LANGUAGES = tuple(LANGUAGES)


def language_code(name: str) -> str | None:
    """The code for a language as a user spells it (any case: ``zh``, ``ch``, ``Chinese``), or None."""
    wanted = name.strip().casefold().replace("_", "-")
    return next((code for code, other in LANGUAGES.items() if wanted == code or wanted in other), None)


def lone_glyph(text: str) -> bool:
    """One character on its own: what the recogniser reads into round or striped shapes in
    photos (an "O" on a cup, an "I" on a pole), so it must be read more surely than a line."""
    return len("".join(text.split())) == 1


def _is_cjk(ch: str) -> bool:
    return "\u3000" <= ch <= "\u9fff" or "\uf900" <= ch <= "\ufaff" or "\uff00" <= ch <= "\uffef"


def keep_line(text: str, languages: list[str]) -> bool:
    """The shipped recogniser reads Chinese and Latin script at once; ``languages`` says which to keep.

    en only: lines without Chinese characters. zh only: lines with some. Both: everything.
    """
    has_cjk = any(_is_cjk(ch) for ch in text)
    if "en" in languages and "zh" in languages:
        return True
    return has_cjk if "zh" in languages else not has_cjk


def make_engine(det_limit_side_len: int | None, threads: int, cache_dir: Path | None = None):
    """A RapidOCR engine; ``det_limit_side_len=None`` keeps the package's own detector sizing.

    Its three sessions (detection, angle, recognition) start from graphs optimized once and kept
    in the model cache (``models.runtime.optimized_once``): 75 -> 21 ms of every process's
    first OCR, with RapidOCR's own session settings, except that idle threads sleep and the
    tensors come from ONNX Runtime's arena, which RapidOCR turns off.

    Without the arena every tensor is an aligned block from malloc, which glibc before 2.38
    does not reuse unless a freed block has room to spare (``diarize_models.OnnxSegmentation``
    found the heap growing without bound that way). Measured over 2000 frames of real footage and
    text cards, cropped to ever new sizes: 576-624 MiB, up and down, without it; 531-558 with it
    (growing by what is asked: RapidOCR's ``kSameAsRequested``), and 4-12 % faster, the same
    text read. A server running two requests at once holds ~45 MB more between requests with it,
    at the same peak (``benchmarks/load_test.py --varied``)."""
    from rapidocr_onnxruntime import RapidOCR
    from rapidocr_onnxruntime.utils import infer_engine

    kwargs = {"intra_op_num_threads": threads, "inter_op_num_threads": 1}
    if det_limit_side_len:
        kwargs.update(max_side_len=int(det_limit_side_len), det_limit_type="max", det_limit_side_len=int(det_limit_side_len))
    plain = getattr(infer_engine, "InferenceSession", None)
    if plain is None:  # another RapidOCR layout: its own sessions
        return RapidOCR(**kwargs)

    def session(model_path, sess_options=None, providers=None):
        names = [p[0] if isinstance(p, tuple) else p for p in providers or ()]
        if sess_options is None or names != ["CPUExecutionProvider"]:
            return plain(model_path, sess_options=sess_options, providers=providers)
        if threads > 1:
            # as ``onnx_session`` does: threads that spin after each run burned 0.15 s of CPU
            # over 4 frames alone (0.55 -> 0.40 s, and 0.30 -> 0.27 s of wall time), and take
            # the cores of the stages beside this one
            sess_options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        sess_options.enable_cpu_mem_arena = True
        return optimized_once(Path(model_path), sess_options, providers, cache_dir)

    with _patching:  # RapidOCR reads the module's name at each session: one engine built at a time
        infer_engine.InferenceSession = session
        try:
            return RapidOCR(**kwargs)
        finally:
            infer_engine.InferenceSession = plain


_patching = threading.Lock()


def read_text(engine, bgr: np.ndarray, min_confidence: float) -> list[Detection]:
    """Lines in reading order, boxes in frame pixels."""
    result, _ = engine(np.ascontiguousarray(bgr), text_score=min_confidence)
    lines = []
    for quad, text, score in result or []:
        q = np.asarray(quad, dtype=np.float32)
        box = [float(q[:, 0].min()), float(q[:, 1].min()), float(q[:, 0].max()), float(q[:, 1].max())]
        if text.strip():
            lines.append(Detection(label="text", text=text.strip(), confidence=round(float(score), 4), box=box))
    return lines


def merge_timed_texts(frames: Sequence[FrameDetections], ends: Sequence[float | None]) -> list[TimedText]:
    """Identical text (case-insensitive) in consecutive analysed frames is one timed entry."""
    texts = [
        TimedText(
            text=run.first.text or "",
            start=run.start,
            end=run.end,
            first_frame=run.first_frame,
            last_frame=run.last_frame,
            frames=run.frames,
            box=run.first.box,
            confidence=max(d.confidence for d in run.detections),
        )
        for run in timed_runs(frames, ends, key=lambda d: (d.text or "").lower())
    ]
    texts.sort(key=lambda e: (e.start, e.box[1], e.box[0]))
    return texts
