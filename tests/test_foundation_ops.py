"""metadata, audio, frames, keyframes and scenes end to end through the Python API."""

from __future__ import annotations

import json
import shutil
import wave

import numpy as np
import pytest
from PIL import Image

from video_extract import Client
from video_extract.media import read_wav
from video_extract.testing import media


@pytest.fixture
def client(cache_dir, out_dir) -> Client:
    return Client(cache_dir=cache_dir, output_dir=out_dir)


def test_scenes_finds_the_cuts_at_their_frames_and_times(client, scene_clip):
    result = client.run(scene_clip.path, ["scenes"])
    scenes = result.scenes
    assert [c.frame for c in scenes.cuts] == pytest.approx([30, 60], abs=1)
    assert [c.time for c in scenes.cuts] == pytest.approx([1.0, 2.0], abs=1 / 30 + 1e-6)
    assert [(s.start_frame, s.end_frame) for s in scenes.scenes] == [(0, 30), (30, 60), (60, 90)]
    assert scenes.scenes[-1].end == pytest.approx(3.0, abs=1e-6)
    on_disk = json.loads((result.output_dir / "scenes.json").read_text())
    assert set(on_disk) >= {"cuts", "scenes"} and set(on_disk["scenes"][0]) >= {"start", "end", "start_frame", "end_frame"}


def test_scenes_keyframes_only_fast_path(client, tmp_path):
    clip = media.scene_clip(tmp_path / "gop30.mp4", cuts=(30, 60), frames=90, gop=30)
    scenes = client.run(clip.path, ["scenes:keyframes_only=true,min_scene_len=1"]).scenes
    assert [c.frame for c in scenes.cuts] == [30, 60]
    assert scenes.frames_analysed == 3


def test_a_clip_without_cuts_is_one_scene(client, gop_clip):
    scenes = client.run(gop_clip.path, ["scenes"]).scenes
    assert scenes.cuts == [] and len(scenes.scenes) == 1
    assert (scenes.scenes[0].start_frame, scenes.scenes[0].end_frame) == (0, 100)


def test_keyframes_are_the_encoders_gop_positions(client, gop_clip):
    result = client.run(gop_clip.path, ["keyframes"])
    entries = result.keyframes.frames
    assert [e.frame for e in entries] == [0, 25, 50, 75]
    assert [e.time for e in entries] == pytest.approx([0, 25 / 30, 50 / 30, 75 / 30], abs=1e-6)
    for path in result.keyframes.paths():
        assert Image.open(path).size == (320, 240)


def test_keyframes_max_frames_spreads_and_min_interval_spaces(client, gop_clip):
    spread = client.run(gop_clip.path, ["keyframes:max_frames=2"]).keyframes.frames
    assert [e.frame for e in spread] == [0, 50]
    spaced = Client(cache_dir=client.runtime.cache.root, output_dir=client.output_dir / "b").run(gop_clip.path, ["keyframes:min_interval_sec=1.0"])
    assert [e.frame for e in spaced.keyframes.frames] == [0, 50]


def test_audio_wav_has_rate_channels_length_and_pitch(client, scene_clip):
    result = client.run(scene_clip.path, ["audio"])
    path = result.output_dir / "audio.wav"
    with wave.open(str(path)) as f:
        assert (f.getframerate(), f.getnchannels(), f.getsampwidth()) == (16000, 1, 2)
        assert f.getnframes() / 16000 == pytest.approx(3.0, abs=1024 / 44100 + 1e-3)
    audio = read_wav(path)
    assert media.dominant_frequency(audio.samples[8000:40000], 16000) == pytest.approx(440.0, abs=1.0)
    assert result.audio.sample_rate == 16000 and result.audio.channels == 1


def test_audio_parameters_are_honoured(client, scene_clip):
    result = client.run(scene_clip.path, ["audio:sample_rate=44100,channels=2"])
    with wave.open(str(result.output_dir / "audio.wav")) as f:
        assert (f.getframerate(), f.getnchannels()) == (44100, 2)
        assert f.getnframes() == pytest.approx(3 * 44100, abs=1100)


def test_frames_at_fps_with_index(client, scene_clip):
    result = client.run(scene_clip.path, ["frames:fps=2,max_size=160"])
    frames = result.frames.frames
    assert [f.frame for f in frames] == [0, 15, 30, 45, 60, 75]
    assert [f.time for f in frames] == pytest.approx([0, 0.5, 1, 1.5, 2, 2.5], abs=1e-6)
    assert [f.file for f in frames][:2] == ["frame_00000.jpg", "frame_00001.jpg"]
    image = np.asarray(Image.open(result.output_dir / "frames" / frames[2].file))
    assert image.shape == (120, 160, 3)
    assert np.abs(image[5, 5].astype(int) - media.PALETTE[1]).max() < 30  # frame 30 is scene 2's colour


def test_rotated_clip_frames_are_saved_upright(client, rotated_clip):
    result = client.run(rotated_clip.path, ["frames", "metadata"])
    image = Image.open(result.frames.paths()[0])
    assert image.size == (240, 320)
    assert result.metadata.video.display_width == 240


def test_still_png_works_for_every_frame_operation(client, still_png):
    result = client.run(still_png, ["metadata", "frames", "keyframes", "scenes"])
    assert result.ok, result.errors
    assert result.metadata.is_image and result.metadata.video.display_width == 64
    assert [(f.frame, f.time) for f in result.frames.frames] == [(0, 0.0)]
    assert [(f.frame, f.time) for f in result.keyframes.frames] == [(0, 0.0)]
    assert result.scenes.cuts == [] and len(result.scenes.scenes) == 1


def test_metadata_path_is_this_requests_even_from_a_copys_cache_entry(client, scene_clip, tmp_path):
    copy = tmp_path / "renamed.mp4"
    shutil.copyfile(scene_clip.path, copy)
    client.run(scene_clip.path, ["metadata"])
    result = client.run(copy, ["metadata"])
    assert result.result.ops["metadata"].cached is True
    assert result.metadata.path == str(copy)


def test_outputs_are_deterministic(scene_clip, tmp_path):
    ops = ["metadata", "audio", "frames", "keyframes", "scenes"]
    a = Client(cache_dir=tmp_path / "c1", output_dir=tmp_path / "o1").run(scene_clip.path, ops)
    b = Client(cache_dir=tmp_path / "c2", output_dir=tmp_path / "o2").run(scene_clip.path, ops)
    files_a = sorted(p.relative_to(a.output_dir) for p in a.output_dir.rglob("*") if p.is_file() and p.name != "summary.json")
    files_b = sorted(p.relative_to(b.output_dir) for p in b.output_dir.rglob("*") if p.is_file() and p.name != "summary.json")
    assert files_a == files_b and len(files_a) > 8
    for rel in files_a:
        assert (a.output_dir / rel).read_bytes() == (b.output_dir / rel).read_bytes(), rel


def test_open_gop_keyframes_are_all_found_in_time_order(client, tmp_path):
    """x264 with open-gop: recovery-point I-frames that skip_frame=NONKEY alone does not decode."""
    import av

    path = tmp_path / "opengop.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream(
            "libx264", rate=30, options={"preset": "veryfast", "x264-params": "keyint=15:min-keyint=15:scenecut=0:open-gop=1:bframes=3:b-pyramid=none"}
        )
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
        for i in range(90):
            for packet in stream.encode(av.VideoFrame.from_ndarray(media.scene_image(i // 30, i % 30, 160, 120), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    entries = client.run(path, ["keyframes"]).keyframes.frames
    assert [e.frame for e in entries] == [0, 15, 30, 45, 60, 75]
    assert [e.time for e in entries] == pytest.approx([0, 0.5, 1.0, 1.5, 2.0, 2.5], abs=1e-6)
    assert [e.file for e in entries] == [f"frame_{n:05d}.jpg" for n in range(6)]
