"""Speech benchmarks: transcription vs bare faster-whisper, diarization real-time factor, peak memory."""

from __future__ import annotations

import sys
from pathlib import Path

from common import Row, best_of, clean, fresh_dir, peak_rss_mb, speech_clip_60s

SECTION = "speech"


def run() -> list[Row]:
    from faster_whisper import decode_audio

    from video_extract import Client
    from video_extract.models import ModelStore
    from video_extract.speech.whisper import load_whisper

    clip, truth = speech_clip_60s()
    duration = truth[-1][1] + 0.7
    rows: list[Row] = []
    dirs: list[Path] = []
    store = ModelStore()

    # Both sides use one already-loaded tiny.en int8 model with the same decoding settings.
    model = load_whisper(store, "tiny.en", "cpu", "int8")

    def bare():
        audio = decode_audio(str(clip), sampling_rate=16000)
        segments, _ = model.transcribe(audio, beam_size=5, word_timestamps=True, vad_filter=True)
        return [s.text for s in segments]

    def ours():
        cache, out = fresh_dir("c"), fresh_dir("o")
        dirs.extend([cache, out])
        result = Client(cache_dir=cache, output_dir=out).run(clip, ["transcription"])
        assert result.ok, result.errors

    bare()  # warm-up (first inference allocates)
    t_bare = best_of(bare, 3)
    t_ours = best_of(ours, 3)
    rows.append(
        Row(
            SECTION,
            f"transcription tiny.en int8 beam 5, {duration:.0f} s speech clip, vs bare faster-whisper (vad_filter)",
            t_ours,
            t_bare,
            target="<= 1.05x",
            passed=t_ours <= 1.05 * t_bare,
        )
    )

    rows.extend(_diarization_rows(clip, duration, dirs))
    clean(*dirs)
    return rows


def _diarization_rows(clip: Path, duration: float, dirs: list[Path]) -> list[Row]:
    from video_extract import Client
    from video_extract.registry import default_registry

    if "diarization" not in default_registry().operations():
        return []
    cache = fresh_dir("c")
    dirs.append(cache)
    Client(cache_dir=fresh_dir("warm"), output_dir=fresh_dir("warm")).run(clip, ["diarization"])  # loads encoder, JIT

    def diarize():
        out = fresh_dir("o")
        dirs.append(out)
        result = Client(cache_dir=cache, output_dir=out).run(clip, ["audio", "vad"])  # shared inputs cached
        result = Client(cache_dir=cache, output_dir=out, use_cache=True).run(clip, ["diarization"])
        stage = next(s for s in result.result.stages if s.plugin == "diarization")
        if stage.cached:
            raise RuntimeError("diarization came from the cache")
        return stage.seconds

    seconds = []
    for _ in range(3):
        from video_extract.cache import Cache

        Cache(cache).clear(plugin="diarization")
        seconds.append(diarize())
    rtf = min(seconds) / duration
    rows = [
        Row(
            SECTION,
            f"diarization real-time factor ({duration:.0f} s, 2 voices), stage time / audio time",
            rtf,
            None,
            unit="x",
            target="< 1 (faster than real time)",
            passed=rtf < 1,
        )
    ]
    peak = peak_rss_mb(
        [sys.executable, "-m", "video_extract.cli", "debug", str(clip), "--ops", "transcription,diarization", "-o", str(fresh_dir("o")), "--no-cache", "-q"]
    )
    rows.append(Row(SECTION, "peak memory, one process running transcription + diarization", peak, None, unit="MiB", target="report"))
    return rows
