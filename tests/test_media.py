"""The media layer on real encoded files: probe facts, frame times, orientation, audio."""

from __future__ import annotations

import numpy as np
import pytest

from video_extract.errors import InputError
from video_extract.media import decode_audio, iter_frames, probe
from video_extract.testing import media

from .conftest import SHARED_MODELS, needs_shared_models


def test_probe_reports_streams_of_a_clip(scene_clip):
    info = probe(scene_clip.path)
    video, audio = info.video, info.audio[0]
    assert (video.width, video.height) == (320, 240)
    assert video.fps == pytest.approx(30.0)
    assert video.frame_count == 90 and video.vfr is False and video.codec == "h264"
    assert audio.sample_rate == 44100 and audio.channels == 2 and audio.codec == "aac"
    assert info.duration == pytest.approx(3.0, abs=0.05)
    assert info.size_bytes == scene_clip.path.stat().st_size


def test_rotated_clip_reports_display_size_swapped(rotated_clip):
    video = probe(rotated_clip.path).video
    assert (video.width, video.height) == (320, 240)
    assert video.rotation == 90
    assert (video.display_width, video.display_height) == (240, 320)


def test_rotated_frames_come_out_in_display_orientation(rotated_clip):
    frame = next(iter_frames(rotated_clip.path))
    assert frame.image.shape == (320, 240, 3)
    # Stored: white top-left quadrant. Rotated 90 degrees counter-clockwise for display, as
    # ffmpeg's autorotate does, that quadrant lands bottom-left.
    assert frame.image[300, 20].mean() > 200
    assert frame.image[20, 20].mean() < 50 and frame.image[300, 220].mean() < 50


@pytest.mark.parametrize("rotation", [90, 180, 270, -90, 450])
@pytest.mark.parametrize("shape", [(36, 64, 3), (7, 5), (9, 6, 4)])
def test_display_rotation_turns_pixels_as_numpy_rot90_does(rotation, shape):
    from video_extract.media.geometry import rotate_image

    image = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    turned = rotate_image(image, rotation)
    assert np.array_equal(turned, np.rot90(image, k=(rotation % 360) // 90))  # counter-clockwise
    assert turned.flags.c_contiguous


def test_non_square_pixels_are_stretched(tmp_path):
    clip = media.anamorphic_clip(tmp_path / "ana.mp4")
    video = probe(clip.path).video
    assert video.pixel_aspect_ratio == pytest.approx(4 / 3, abs=1e-3)
    assert (video.display_width, video.display_height) == (426, 240)
    assert next(iter_frames(clip.path)).image.shape == (240, 426, 3)


def test_vfr_clip_is_flagged_and_frame_times_match_pts(vfr_clip):
    info = probe(vfr_clip.path)
    assert info.video.vfr is True
    times = [f.time for f in iter_frames(vfr_clip.path)]
    expected = [0.0, 0.033, 0.066, 0.15, 0.2, 0.4, 0.433, 0.9, 1.0, 1.5]
    assert times == pytest.approx(expected, abs=1e-3)


def test_sampling_at_fps_on_vfr_takes_the_first_frame_at_or_after_each_grid_point(vfr_clip):
    frames = list(iter_frames(vfr_clip.path, fps=4))  # grid 0, .25, .5, .75, 1.0, 1.25, 1.5
    assert [f.index for f in frames] == [0, 5, 7, 8, 9]
    assert [f.time for f in frames] == pytest.approx([0.0, 0.4, 0.9, 1.0, 1.5], abs=1e-3)


def test_fps_sampling_on_constant_rate_clip(scene_clip):
    frames = list(iter_frames(scene_clip.path, fps=2))
    assert [f.index for f in frames] == [0, 15, 30, 45, 60, 75]
    assert [f.time for f in frames] == pytest.approx([0, 0.5, 1.0, 1.5, 2.0, 2.5], abs=1e-6)


def test_frames_are_streamed_not_collected(scene_clip):
    frames = iter_frames(scene_clip.path)
    first = next(frames)
    assert first.index == 0 and first.image.dtype == np.uint8
    frames.close()


def test_keyframes_only_decodes_the_forced_keyframes(gop_clip):
    frames = list(iter_frames(gop_clip.path, keyframes_only=True))
    assert [f.index for f in frames] == gop_clip.keyframes == [0, 25, 50, 75]
    assert [f.time for f in frames] == pytest.approx([i / 30 for i in gop_clip.keyframes], abs=1e-6)


def test_max_size_and_width_downscale(scene_clip):
    assert next(iter_frames(scene_clip.path, max_size=160)).image.shape == (120, 160, 3)
    assert next(iter_frames(scene_clip.path, width=64, pix_fmt="bgr24")).image.shape == (48, 64, 3)


def test_still_image_is_a_one_frame_input(still_png):
    info = probe(still_png)
    assert info.is_image and info.video.frame_count == 1 and info.duration is None
    frames = list(iter_frames(still_png, fps=5))
    assert len(frames) == 1 and frames[0].time == 0.0 and frames[0].image.shape == (48, 64, 3)


@pytest.mark.parametrize("name", ["grey16.png", "grey16.tif"])
def test_a_16_bit_grey_still_keeps_its_tones(tmp_path, name):
    """Pillow's own conversion of 16-bit grey clips at 255: the astronaut came out nearly white
    (mean 227 of 255) and no detector found anything in it."""
    from PIL import Image
    from skimage import data

    from video_extract.media.image import decode_image

    red = data.astronaut()[..., 0]
    path = tmp_path / name
    Image.fromarray(red.astype(np.uint16) * 257).save(path)  # the same tones, 16 bits deep
    pixels, order = decode_image(path)
    assert pixels.shape == (512, 512, 3) and np.array_equal(pixels[..., 0], red) and np.array_equal(pixels[..., 2], red)
    frame = next(iter_frames(path, pix_fmt="rgb24")).image
    assert np.array_equal(frame[..., 1], red)


@needs_shared_models
def test_the_face_in_a_16_bit_grey_still_is_found(tmp_path):
    from PIL import Image
    from skimage import data

    from video_extract import Client

    path = tmp_path / "grey16.png"
    Image.fromarray(data.astronaut()[..., 0].astype(np.uint16) * 257).save(path)
    result = Client(cache_dir=tmp_path / "c", output_dir=tmp_path / "o", models_dir=SHARED_MODELS).run(path, ["faces"])
    (face,) = result.faces.frames[0].detections  # none was found in the clipped, nearly white picture
    x1, y1, x2, y2 = face.box
    assert 160 < x1 < 200 and 50 < y1 < 80 and 250 < x2 < 285 and 160 < y2 < 190  # the astronaut's face


def test_audio_is_resampled_and_a_tone_keeps_its_pitch(scene_clip):
    audio = decode_audio(scene_clip.path, sample_rate=16000, channels=1)
    assert audio.samples.ndim == 1 and audio.sample_rate == 16000
    # AAC works in 1024-sample frames: the decoded length is the clip rounded up to a frame.
    assert audio.duration == pytest.approx(3.0, abs=1024 / 44100 + 1e-3)
    mid = audio.samples[8000:40000]
    assert media.dominant_frequency(mid, 16000) == pytest.approx(440.0, abs=1.0)


def test_audio_keeps_channels_when_asked(tone_mp3):
    audio = decode_audio(tone_mp3.path, sample_rate=22050, channels=2)
    assert audio.samples.shape[1] == 2 and audio.sample_rate == 22050
    assert media.dominant_frequency(audio.samples[5000:30000, 1], 22050) == pytest.approx(440.0, abs=1.0)


@pytest.mark.parametrize(
    "make, expected",
    [
        (lambda p: p.write_bytes(b""), "file is empty (0 bytes)"),
        (lambda p: p.write_bytes(np.random.default_rng(1).bytes(50_000)), "not a media file"),
        (lambda p: p.write_text("just some notes\nnot a video\n" * 20), "is a text file"),
    ],
    ids=["empty", "random-bytes", "text"],
)
def test_unreadable_inputs_get_a_plain_reason(tmp_path, make, expected):
    path = tmp_path / "input.mp4"
    make(path)
    with pytest.raises(InputError) as err:
        probe(path)
    assert expected in str(err.value) and str(path) in str(err.value)


def test_truncated_mp4_is_called_truncated(scene_clip, tmp_path):
    cut = media.truncate(scene_clip.path, tmp_path / "cut.mp4", 0.5)
    with pytest.raises(InputError, match="truncated"):
        probe(cut)


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="file not found"):
        probe(tmp_path / "nope.mp4")


@pytest.mark.parametrize("picks, gap", [((0, 3, 30, 31, 99), 5.0), ((10, 60, 99), 0.1), ((26,), 0.0), (tuple(range(100)), 0.01)])
def test_frames_at_chosen_times_are_the_frames_a_full_decode_gives(gop_clip, picks, gap):
    from video_extract.media.video import decode_counters, frames_at

    every = {f.time: f.image for f in iter_frames(gop_clip.path)}
    times = sorted(every)
    before = decode_counters["frames_decoded"]
    got = list(frames_at(gop_clip.path, [times[n] for n in picks], gap=gap))
    assert [t for t, _ in got] == [times[n] for n in picks]
    assert all(np.array_equal(image, every[t]) for t, image in got)
    decoded = decode_counters["frames_decoded"] - before
    if picks == (26,):  # a seek to the keyframe at 25: frames 25 to 27 decoded, not 0 to 27
        assert decoded == 3
    if picks == (10, 60, 99):  # a seek for each (keyframes at 0, 50 and 75): 12 + 12 + 25, not 100
        assert decoded < 60


def test_frames_at_come_in_display_orientation(rotated_clip):
    from video_extract.media.video import frames_at

    every = {f.time: f.image for f in iter_frames(rotated_clip.path)}
    time = sorted(every)[5]
    [(_, image)] = list(frames_at(rotated_clip.path, [time]))
    assert image.shape == every[time].shape == (320, 240, 3) and np.array_equal(image, every[time])


def test_a_reader_that_keeps_a_core_busy_leaves_it_to_itself(monkeypatch):
    """The scene reader converts and shrinks every frame in its own thread: the decoder gets the
    other cores (of a bulk worker's share, when one is set), never fewer than one thread."""
    import os

    from video_extract.media.video import decode_threads

    monkeypatch.delenv("VIDEO_EXTRACT_DECODE_THREADS", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    assert decode_threads() == 0  # FFmpeg's own count
    assert decode_threads(busy=1) == 3
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})
    assert decode_threads(busy=1) == 1
    monkeypatch.setenv("VIDEO_EXTRACT_DECODE_THREADS", "2")  # a bulk worker's share
    assert (decode_threads(), decode_threads(busy=1)) == (2, 1)


def test_a_stage_decodes_on_its_share_of_the_cores_and_small_frames_on_one_thread(monkeypatch):
    import os

    from video_extract.media.video import decode_threads, stage_cores

    monkeypatch.delenv("VIDEO_EXTRACT_DECODE_THREADS", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    token = stage_cores.set(2)  # a stage beside another busy one on 4 cores
    try:
        assert (decode_threads(pixels=1280 * 720), decode_threads(busy=1, pixels=1280 * 720)) == (2, 1)
        assert decode_threads(pixels=320 * 240) == decode_threads(busy=1, pixels=320 * 240) == 1
        monkeypatch.setenv("VIDEO_EXTRACT_DECODE_THREADS", "3")  # a bulk worker's share comes first
        assert decode_threads(pixels=1280 * 720) == 3
    finally:
        stage_cores.reset(token)


def test_the_frames_stage_decodes_in_its_prefetch_thread_on_the_stage_share(tmp_path, monkeypatch):
    """The executor says how many cores a stage has; the decoder thread it starts hears it, and
    a stage with one core decodes in its own thread."""
    import os
    import threading

    import video_extract.media.video as video
    from video_extract import Client

    opened: list[tuple[str, int]] = []
    real = video.open_video_stream

    def spy(container, path, busy=0):
        stream = real(container, path, busy)
        opened.append((threading.current_thread().name, stream.codec_context.thread_count))
        return stream

    monkeypatch.setattr(video, "open_video_stream", spy)
    monkeypatch.delenv("VIDEO_EXTRACT_DECODE_THREADS", raising=False)
    monkeypatch.delenv("VIDEO_EXTRACT_MODEL_THREADS", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2})
    big, small = tmp_path / "big.mp4", tmp_path / "small.mp4"
    media.scene_clip(big, cuts=(5,), frames=10, width=640, height=400)
    media.scene_clip(small, cuts=(5,), frames=10, width=320, height=240)
    client = Client(use_cache=False, output_dir=tmp_path / "o")  # debug: one stage at a time
    client.run(big, ["frames"])
    assert opened == [("video-extract-prefetch", 3)]  # alone: every core
    monkeypatch.setenv("VIDEO_EXTRACT_MODEL_THREADS", "1")  # what stages side by side get on few cores
    opened.clear()
    client.run(big, ["frames"])
    assert opened == [(threading.current_thread().name, 1)]  # one core: no prefetch thread either
    monkeypatch.delenv("VIDEO_EXTRACT_MODEL_THREADS")
    opened.clear()
    client.run(small, ["frames"])
    assert opened == [("video-extract-prefetch", 1)]  # small frames: one thread


def test_prefetch_reads_in_the_consumers_thread_when_the_stage_has_one_core():
    import threading

    from video_extract.media.prefetch import prefetch, stage_cores

    def produce(log: list, closed: list):
        try:
            for i in range(5):
                log.append((i, threading.current_thread().name))
                if i == 3:
                    raise ValueError("bad frame")
                yield i
        finally:
            closed.append(True)

    for cores, inline in ((1, True), (2, False)):
        token = stage_cores.set(cores)
        try:
            log: list = []
            closed: list = []
            with pytest.raises(ValueError, match="bad frame"):
                assert list(prefetch(produce(log, closed))) == [0, 1, 2]
            assert closed == [True]
            assert all((name == threading.current_thread().name) == inline for _, name in log)
            log, closed = [], []
            reader = prefetch(produce(log, closed), depth=1)
            assert next(reader) == 0
            reader.close()  # a consumer that stops: the producer is closed too
            assert closed == [True]
        finally:
            stage_cores.reset(token)
