"""Transcription, voice activity and text embeddings on speech made by espeak-ng at test time."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from video_extract import Client
from video_extract.executors.base import Runtime, prepare
from video_extract.models import load_counts
from video_extract.testing import media
from video_extract.testing.speech import silence

from .conftest import needs_espeak, run_cli

pytestmark = needs_espeak


@pytest.fixture(scope="module")
def transcribed(speech_clip, tmp_path_factory):
    path, truth, duration = speech_clip
    out = tmp_path_factory.mktemp("speech-out")
    result = Client(cache_dir=out / "cache", output_dir=out).run(path, ["transcription", "vad", "text_embeddings"])
    assert result.ok, result.errors
    return result, truth, duration


def test_transcript_as_tables_of_segments_and_words(transcribed):
    pytest.importorskip("pandas")
    transcription = transcribed[0].transcription
    segments, words = transcription.to_pandas(), transcription.to_pandas(level="words")
    assert len(segments) == len(transcription.segments) and segments["text"].tolist() == [s.text for s in transcription.segments]
    assert words["word"].tolist() == [w.word for s in transcription.segments for w in s.words]
    assert (words["start"].diff().dropna() >= 0).all() and words["segment"].max() == len(segments) - 1


def test_transcript_contains_the_spoken_words(transcribed):
    result, _, _ = transcribed
    transcript = json.loads((result.output_dir / "transcription.json").read_text())
    text = transcript["text"].lower()
    for word in ("window", "light", "green", "music"):
        assert word in text, transcript["text"]
    assert transcript["language"] == "en" and transcript["model"] == "tiny.en"


def test_word_times_are_monotonic_inside_the_audio_and_near_the_speech(transcribed):
    result, truth, duration = transcribed
    segments = json.loads((result.output_dir / "transcription.json").read_text())["segments"]
    words = [w for s in segments for w in s["words"]]
    assert len(words) >= 15
    starts = [w["start"] for w in words]
    assert starts == sorted(starts)
    assert all(0 <= w["start"] <= w["end"] <= duration + 0.01 for w in words)
    window = next(w for w in words if "window" in w["word"].lower())
    assert truth[0][0] - 0.5 <= window["start"] <= truth[0][1]
    music = next(w for w in words if "music" in w["word"].lower())
    assert truth[1][0] <= music["start"] <= truth[1][1] + 0.5


def test_srt_and_vtt_parse(transcribed):
    result, _, _ = transcribed
    srt = (result.output_dir / "transcription.srt").read_text()
    blocks = [b for b in srt.strip().split("\n\n") if b]
    stamp = r"\d\d:\d\d:\d\d,\d\d\d --> \d\d:\d\d:\d\d,\d\d\d"
    for n, block in enumerate(blocks, 1):
        lines = block.splitlines()
        assert lines[0] == str(n) and re.fullmatch(stamp, lines[1]) and lines[2].strip()
    vtt = (result.output_dir / "transcription.vtt").read_text()
    assert vtt.startswith("WEBVTT\n")
    assert len(re.findall(r"\d\d:\d\d:\d\d\.\d\d\d --> \d\d:\d\d:\d\d\.\d\d\d", vtt)) == len(blocks)


def test_vad_finds_the_two_sentences(transcribed):
    result, truth, _ = transcribed
    segments = json.loads((result.output_dir / "vad.json").read_text())["segments"]
    assert len(segments) == 2
    for found, (start, end) in zip(segments, truth):
        assert abs(found["start"] - start) < 0.15 and abs(found["end"] - end) < 0.15


def test_text_embeddings_rows_match_segments(transcribed):
    result, _, _ = transcribed
    vectors = np.load(result.output_dir / "embeddings" / "text.npy")
    rows = json.loads((result.output_dir / "embeddings" / "text.json").read_text())
    segments = json.loads((result.output_dir / "transcription.json").read_text())["segments"]
    assert vectors.dtype == np.float32 and vectors.shape == (len(segments), 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert [r["text"] for r in rows] == [s["text"] for s in segments]
    assert [r["start"] for r in rows] == [s["start"] for s in segments]


def test_silence_and_a_pure_tone_give_an_empty_transcript(tmp_path):
    quiet = media.slideshow_clip(
        tmp_path / "quiet.mp4", [media.text_image(["..."], 160, 120)], seconds_each=4, fps=5, width=160, height=120, audio=silence(4.0)
    )
    tone = media.tone_file(tmp_path / "tone.wav", freq=440.0, seconds=4.0)
    client = Client(cache_dir=tmp_path / "c", output_dir=tmp_path / "o")
    for path in (quiet.path, tone.path):
        result = client.run(path, ["transcription"])
        transcript = json.loads((result.output_dir / "transcription.json").read_text())
        assert transcript["segments"] == [] and transcript["text"] == "", transcript


def test_transcription_and_diarization_share_one_audio_and_one_vad_stage(speech_clip, tmp_path):
    job = prepare(Runtime(cache_dir=tmp_path), speech_clip[0], ["transcription", "diarization", "audio", "vad"], tmp_path / "o")
    plugins = [s.plugin for s in job.plan.stages.values()]
    assert plugins.count("audio") == 1 and plugins.count("vad") == 1
    audio_id = next(s.id for s in job.plan.stages.values() if s.plugin == "audio")
    assert job.plan.outputs["audio"] == audio_id  # the user's audio.wav is that same stage


def test_no_audio_stream_skips_the_speech_operations(scene_clip, tmp_path):
    silent_video = media.scene_clip(tmp_path / "silent.mp4", cuts=(10,), frames=20)
    result = Client(cache_dir=tmp_path / "c", output_dir=tmp_path / "o").run(silent_video.path, ["metadata", "transcription", "scenes"])
    assert result.result.ops["metadata"].status == "ok" and result.result.ops["scenes"].status == "ok"
    assert result.ok and result.errors == {}
    assert result.skipped == {"transcription": "silent.mp4 has no audio stream"}  # does not apply: not a failure


def test_unknown_whisper_model_is_a_usage_error_listing_names(speech_clip, tmp_path):
    proc = run_cli("debug", str(speech_clip[0]), "--op", "transcription:model=tiny.xx", "-o", str(tmp_path / "o"), "--cache-dir", str(tmp_path / "c"))
    assert proc.returncode == 2
    assert "unknown model 'tiny.xx'" in proc.stderr and "tiny.en" in proc.stderr and "large-v3" in proc.stderr
    assert not (tmp_path / "o").exists()


def test_whisper_loads_once_per_process_across_files(speech_clip, tmp_path):
    path = speech_clip[0]
    client = Client(cache_dir=tmp_path / "c", output_dir=tmp_path / "o")
    client.run(path, ["transcription:beam_size=2"])  # two runs that both transcribe (different
    client.run(path, ["transcription:beam_size=3"])  # parameters, so no cache hit) load one model
    whisper_keys = [k for k in load_counts if k[0] == "faster-whisper"]
    assert whisper_keys and all(load_counts[k] == 1 for k in whisper_keys)
