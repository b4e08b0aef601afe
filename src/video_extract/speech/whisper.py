"""Whisper through faster-whisper (CTranslate2), fed only the speech the VAD stage found.

Decoding only speech is what faster-whisper's own ``vad_filter`` does (concatenate the speech
chunks, transcribe, map times back); we do the same with the speech regions the shared VAD
stage computed, so VAD runs once per input however many operations need it.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from video_extract.allocator import TRIM_AFTER_SEC, release, reuse_large_blocks
from video_extract.models import derived
from video_extract.models.catalog import check_name
from video_extract.models.ct2_int8 import int8_copy
from video_extract.models.runtime import blas_on_calling_thread
from video_extract.results import TranscriptSegment, Word
from video_extract.speech.vad import SpeechSegment

log = logging.getLogger("video_extract")


def check_model_name(name: str) -> None:
    """Whisper sizes in any case ("large" is large-v3), a CTranslate2 conversion on the Hub, or a local one."""
    check_name(
        "transcription",
        name,
        "whisper",
        hub_ids=True,
        other="a Hugging Face id of a CTranslate2 conversion such as Systran/faster-distil-whisper-large-v3, or a local CTranslate2 directory",
    )


def load_whisper(store, name: str, device: str = "cpu", compute_type: str = "int8"):
    """The WhisperModel for ``name``, loaded once per process."""
    path = store.checkpoint(name)
    key = ("faster-whisper", str(path), device, compute_type)
    threads = int(os.environ.get("VIDEO_EXTRACT_MODEL_THREADS") or os.cpu_count() or 1)
    reuse_large_blocks()  # the encoder's 54 MB attention block, reused, not mapped fresh each layer
    return store.load(key, lambda: windowed(open_whisper(path, store.cache_dir, device, compute_type, threads)))


def open_whisper(path: Path, cache_dir: Path, device: str, compute_type: str, threads: int):
    """faster-whisper's model for the CTranslate2 folder ``path``; at int8 on the CPU from its
    copy with the weights quantized once (``ct2_int8``), else, or where that copy does not
    load (removed: made again next time), from ``path`` itself."""
    from faster_whisper import WhisperModel

    # WhisperModel wants the path as str: a Path raises TypeError inside CTranslate2.
    if device == "cpu" and compute_type == "int8":
        copy = int8_copy(path, cache_dir)
        if copy != path:
            try:
                return WhisperModel(str(copy), device=device, compute_type=compute_type, cpu_threads=threads)
            except Exception as exc:  # noqa: BLE001 - a damaged copy: the model itself
                log.warning("%s: the int8 copy does not load (%s); loading the model itself", copy, exc)
                derived.remove(copy)
    return WhisperModel(str(path), device=device, compute_type=compute_type, cpu_threads=threads)


#: One transcription at a time hands its speech to a (shared, warm) model's feature extractor.
_HANDOVER = threading.Lock()

#: Log-mel columns (10 ms each) computed per block in the pass that finds the global maximum.
MEL_BLOCK = 3000


def windowed(model):
    """``model`` with a feature extractor that computes the log-mel 30 s at a time, when the
    decoder asks for it, instead of the whole input's spectrogram up front (an hour of speech:
    ~1.5 GB of STFT and mel arrays); the columns are the same, bit for bit."""
    from faster_whisper.feature_extractor import FeatureExtractor

    class WindowedFeatureExtractor(FeatureExtractor):
        #: what to read instead of the waveform handed in (see ``transcribe``)
        samples: SpeechOnly | None = None

        def __call__(self, waveform: np.ndarray, padding: int = 160, chunk_length: int | None = None) -> MelColumns:
            if chunk_length is not None:
                self.n_samples = chunk_length * self.sampling_rate
                self.nb_max_frames = self.n_samples // self.hop_length
            if self.samples is not None and len(self.samples) == len(waveform):
                waveform = self.samples
            return MelColumns(self, waveform, padding)

    extractor = WindowedFeatureExtractor.__new__(WindowedFeatureExtractor)
    extractor.__dict__.update(model.feature_extractor.__dict__)
    model.feature_extractor = extractor
    return model


class MelColumns:
    """faster-whisper's log-mel spectrogram of ``waveform`` ([mels, frames]), computed a slice of
    columns at a time: each STFT frame needs only its 400 samples (reflect-padded at the ends as
    the whole-signal STFT pads them), and the one global statistic, the maximum that floors the
    log (max - 8), is found in a first pass over 30 s blocks."""

    def __init__(self, extractor, waveform: np.ndarray, padding: int):
        self.fx, self.audio, self.n = extractor, waveform, len(waveform) + padding
        self.shape = (extractor.mel_filters.shape[0], self.n // extractor.hop_length)
        self.ndim = 2
        self.top = max((self._log(a, min(a + MEL_BLOCK, self.shape[1])).max() for a in range(0, self.shape[1], MEL_BLOCK)), default=0.0)

    def _log(self, a: int, b: int) -> np.ndarray:
        """Columns [a, b) before the floor: log10 of the clipped mel power.

        Computed over at least ``MEL_BLOCK`` columns (all of them when fewer) and cut: the mel
        matrix product of a handful of columns takes another BLAS path (a single column is a
        matrix-vector product) whose sums can differ in the last bit."""
        width = min(self.shape[1], MEL_BLOCK)
        if b - a < width:
            start = max(0, min(a, self.shape[1] - width))
            return self._log(start, start + width)[:, a - start : b - start]
        hop, n_fft = self.fx.hop_length, self.fx.n_fft
        # positions in the reflect-padded signal, mapped back into the waveform (+ zero padding)
        idx = np.arange(a * hop, (b - 1) * hop + n_fft) - n_fft // 2
        idx = np.where(idx < 0, -idx, idx)
        idx = np.where(idx > self.n - 1, 2 * (self.n - 1) - idx, idx)
        lo, hi = int(idx.min()), int(idx.max()) + 1
        part = np.zeros(hi - lo, np.float32)
        real = np.asarray(self.audio[lo : min(hi, len(self.audio))], dtype=np.float32)
        part[: len(real)] = real
        window = np.hanning(n_fft + 1)[:-1].astype("float32")
        stft = self.fx.stft(part[idx - lo], n_fft, hop, window=window, center=False, return_complex=True).astype("complex64")
        power = np.abs(stft) ** 2
        with blas_on_calling_thread():
            mel = self.fx.mel_filters @ power
        return np.log10(np.clip(mel, a_min=1e-10, a_max=None))

    def __getitem__(self, key) -> np.ndarray | MelColumns:
        rows, cols = key if isinstance(key, tuple) else (slice(None), key)
        if rows not in (Ellipsis, slice(None)) or not isinstance(cols, slice) or cols.step not in (None, 1):
            raise TypeError("MelColumns takes [:, a:b] or [..., a:b]")
        a, b, _ = cols.indices(self.shape[1])
        b = max(a, b)
        if b - a > 4 * MEL_BLOCK:  # an open-ended slice (language detection): stay lazy
            return _Shifted(self, a, b)
        if a == b:
            return np.zeros((self.shape[0], 0), np.float32)
        log_spec = np.maximum(self._log(a, b), self.top - 8.0)
        return (log_spec + 4.0) / 4.0


class SpeechOnly:
    """The speech regions of ``samples`` one after another, read a slice at a time: what
    faster-whisper's ``collect_chunks`` joins into one array (an hour of speech: 230 MB)."""

    def __init__(self, samples, chunks: list[dict]):
        self.samples, self.chunks = samples, chunks
        self.starts = np.cumsum([0] + [c["end"] - c["start"] for c in chunks])

    def __len__(self) -> int:
        return int(self.starts[-1])

    def __getitem__(self, key: slice) -> np.ndarray:
        start, stop, _ = key.indices(len(self))
        pieces = []
        first = max(0, int(np.searchsorted(self.starts, start, side="right")) - 1)
        for i in range(first, len(self.chunks)):
            lo, hi = max(start, self.starts[i]), min(stop, self.starts[i + 1])
            if lo >= stop:
                break
            if hi > lo:
                base = self.chunks[i]["start"] - self.starts[i]
                pieces.append(np.asarray(self.samples[base + lo : base + hi], dtype=np.float32))
        return np.concatenate(pieces) if pieces else np.zeros(0, np.float32)


class _Shifted:
    """Columns [a, b) of a ``MelColumns``, itself sliceable."""

    def __init__(self, mel: MelColumns, a: int, b: int):
        self.mel, self.a, self.shape, self.ndim = mel, a, (mel.shape[0], b - a), 2

    def __getitem__(self, key):
        rows, cols = key if isinstance(key, tuple) else (slice(None), key)
        a, b, _ = cols.indices(self.shape[1])
        return self.mel[rows, slice(self.a + a, self.a + max(a, b))]


def transcribe(
    model,
    samples: np.ndarray,
    speech: list[SpeechSegment] | None,
    *,
    language: str | None = None,
    beam_size: int = 5,
    word_timestamps: bool = True,
    initial_prompt: str | None = None,
    no_speech_threshold: float = 0.6,
    sample_rate: int = 16000,
) -> tuple[Iterator[TranscriptSegment], dict]:
    """Segments as they are decoded (a generator), and info (language, probability, duration).

    ``speech=None`` transcribes everything; an empty list means there is no speech at all,
    and nothing is decoded (Whisper invents words for silence and music when asked to).
    """
    from faster_whisper.transcribe import restore_speech_timestamps

    duration = len(samples) / sample_rate
    info = {"language": language, "language_probability": None, "duration": round(duration, 3)}
    if speech is not None and not speech:
        return iter(()), info
    chunks = None
    if speech is None:
        audio = np.ascontiguousarray(samples, dtype=np.float32)
    else:
        # only the speech is read (``samples`` may be a ``WavSamples``): what faster-whisper's
        # ``collect_chunks`` joins, without holding the whole track beside it
        chunks = [{"start": int(s.start * sample_rate), "end": min(len(samples), int(s.end * sample_rate))} for s in speech]
        audio = SpeechOnly(samples, chunks)
    # On hard audio Whisper falls back to sampling at a higher temperature; seed it so that the
    # same input gives the same transcript on every run (outputs are deterministic).
    import ctranslate2

    ctranslate2.set_random_seed(0)
    extractor = getattr(model, "feature_extractor", None)
    with _HANDOVER:
        if isinstance(audio, SpeechOnly) and hasattr(extractor, "samples"):
            # faster-whisper wants an ndarray but reads it only through the feature extractor
            # (and its length): hand it a zero-byte stand-in of the right length, and the
            # extractor the speech to read from
            extractor.samples, audio = audio, np.broadcast_to(np.float32(0), (len(audio),))
        elif isinstance(audio, SpeechOnly):
            audio = audio[:]
        try:
            segments, whisper_info = model.transcribe(
                audio,
                language=language,
                beam_size=beam_size,
                word_timestamps=word_timestamps,
                initial_prompt=initial_prompt,
                no_speech_threshold=no_speech_threshold,
                vad_filter=False,
            )
        finally:
            if hasattr(extractor, "samples"):
                extractor.samples = None
    info["language"] = whisper_info.language
    info["language_probability"] = round(float(whisper_info.language_probability), 4)
    if chunks is not None:
        segments = restore_speech_timestamps(segments, chunks, sample_rate)

    # What each 30 s window frees stays resident in malloc's heaps until a ``release``: the
    # encoder's 54 MB attention block among it, which CTranslate2's thread asks for again in a
    # new heap once its own has no room left (``reuse_large_blocks``), the old copy left behind.
    # Window after window that rose (CLI, transcription alone): 10 min of speech peaked at 419
    # MiB, and at 371 with a release after each window; an hour stays at 300-386 with.
    between_windows = release if duration > TRIM_AFTER_SEC else lambda: None

    def records() -> Iterator[TranscriptSegment]:
        window = None
        for seg in segments:
            if seg.seek != window:  # the first segment of the next window: the previous one is done
                if window is not None:
                    between_windows()
                window = seg.seek
            text = seg.text.strip()
            if not text:
                continue
            words = [
                Word(start=round(w.start, 3), end=round(w.end, 3), word=w.word.strip(), probability=round(float(w.probability), 4)) for w in seg.words or ()
            ]
            yield TranscriptSegment(
                start=round(seg.start, 3),
                end=round(seg.end, 3),
                text=text,
                words=words,
                avg_logprob=round(float(seg.avg_logprob), 4),
                no_speech_prob=round(float(seg.no_speech_prob), 4),
            )

    return records(), info
