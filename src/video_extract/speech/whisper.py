"""Whisper through faster-whisper (CTranslate2), fed only the speech the VAD stage found.

Decoding only speech is what faster-whisper's own ``vad_filter`` does (concatenate the speech
chunks, transcribe, map times back); we do the same with the speech regions the shared VAD
stage computed, so VAD runs once per input however many operations need it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np

from video_extract.models.catalog import check_name
from video_extract.results import TranscriptSegment, Word
from video_extract.speech.vad import SpeechSegment


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
    from faster_whisper import WhisperModel

    path = store.checkpoint(name)
    key = ("faster-whisper", str(path), device, compute_type)
    # WhisperModel wants the path as str: a Path raises TypeError inside CTranslate2.
    threads = int(os.environ.get("VIDEO_EXTRACT_MODEL_THREADS") or os.cpu_count() or 1)
    return store.load(key, lambda: WhisperModel(str(path), device=device, compute_type=compute_type, cpu_threads=threads))


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
        audio = np.concatenate([np.asarray(samples[c["start"] : c["end"]], dtype=np.float32) for c in chunks])
    # On hard audio Whisper falls back to sampling at a higher temperature; seed it so that the
    # same input gives the same transcript on every run (outputs are deterministic).
    import ctranslate2

    ctranslate2.set_random_seed(0)
    segments, whisper_info = model.transcribe(
        audio,
        language=language,
        beam_size=beam_size,
        word_timestamps=word_timestamps,
        initial_prompt=initial_prompt,
        no_speech_threshold=no_speech_threshold,
        vad_filter=False,
    )
    info["language"] = whisper_info.language
    info["language_probability"] = round(float(whisper_info.language_probability), 4)
    if chunks is not None:
        segments = restore_speech_timestamps(segments, chunks, sample_rate)

    def records() -> Iterator[TranscriptSegment]:
        for seg in segments:
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
