"""scenes gives PySceneDetect's answer: the same cuts as ``scenedetect.detect()``, from the same pixels."""

from __future__ import annotations

import numpy as np
import pytest

from video_extract import Client
from video_extract.media.shrunk import iter_shrunk_frames
from video_extract.testing import media

from .conftest import run_cli

DETECTORS = ["content", "adaptive", "threshold", "histogram", "hash"]


@pytest.fixture(scope="module")
def parity_clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("parity")
    return {
        # A dark fade to black and back with grain: hue is noise on the near-black frames.
        "dark_fade_grain": media.fade_clip(folder / "fade.mp4", frames=75, cuts=(20,), fades=((40, 26),), grain=6.0),
        # Hard cuts, a fade to black at the end, at a size whose downscale is not round (318x174).
        "cuts_fade_out_odd_size": media.fade_clip(folder / "odd.mp4", frames=60, width=318, height=174, cuts=(15,), fades=((35, 50),), grain=3.0),
        # 1280x720, shrunk 5x.
        "hd_fade": media.fade_clip(folder / "hd.mp4", frames=40, width=1280, height=720, cuts=(12,), fades=((20, 16),), grain=2.0),
    }


def their_cuts(path, detector: str) -> list[tuple[int, float]]:
    from scenedetect import detect

    from video_extract.plugins.scenes import make_detector
    from video_extract.spec import Scenes

    scenes = detect(str(path), make_detector(Scenes(detector=detector)))
    return [(start.frame_num, round(start.seconds, 6)) for start, _ in scenes[1:]]


@pytest.mark.parametrize("clip", ["dark_fade_grain", "cuts_fade_out_odd_size", "hd_fade"])
def test_every_detector_cuts_where_scenedetect_detect_cuts(parity_clips, clip, tmp_path):
    path = parity_clips[clip].path
    client = Client(output_dir=tmp_path, use_cache=False)
    found_some = False
    for detector in DETECTORS:
        result = client.run(path, [f"scenes:detector={detector}"])
        assert result.ok, result.errors
        ours = [(c.frame, c.time) for c in result.scenes.cuts]
        assert ours == their_cuts(path, detector), detector  # frame numbers and times (CFR, starting at 0)
        found_some |= bool(ours)
    assert found_some  # the clips do have cuts to agree on


@pytest.mark.parametrize("detector", ["content", "adaptive"])
def test_the_one_pass_frame_score_is_pyscenedetects_own_float(parity_clips, detector):
    """Our content/adaptive detectors score a frame with one OpenCV pass; every frame's score must
    be the float ContentDetector computes (not merely close), and the cuts the same."""
    from video_extract.plugins.scenes import _Timecodes, downscale_factor, make_detector
    from video_extract.spec import Scenes

    params = Scenes(detector=detector)
    compared = 0
    for clip in parity_clips.values():
        theirs, ours = make_detector(params), make_detector(params, fast=True)
        assert type(ours) is not type(theirs) and isinstance(ours, type(theirs))
        timecodes = None
        cuts_theirs, cuts_ours = [], []
        for info, frame in iter_shrunk_frames(clip.path, lambda info: downscale_factor(params, info)):
            timecodes = timecodes or _Timecodes(info.fps)
            position = timecodes.at(frame.msec, frame.index + 1)
            cuts_theirs += theirs.process_frame(position, frame.image)
            cuts_ours += ours.process_frame(position, frame.image)
            assert ours._frame_score == theirs._frame_score, (clip.path.name, frame.index)
            compared += ours._frame_score > 0
        cuts_theirs += theirs.post_process(position)
        cuts_ours += ours.post_process(position)
        assert [c.frame_num for c in cuts_ours] == [c.frame_num for c in cuts_theirs]
    assert compared > 100  # real differences were scored, not only first frames


@pytest.mark.parametrize(("width", "height", "rotation"), [(1920, 1080, 0), (318, 174, 0), (640, 360, 90)])
def test_detectors_see_opencvs_pixels(tmp_path, width, height, rotation):
    """Each frame equals cv2.VideoCapture's (turned by the display matrix), shrunk as SceneManager
    shrinks it; at 1080p only the rows the 7.5x bilinear shrink reads are converted."""
    import cv2
    from scenedetect.scene_manager import compute_downscale_factor

    clip = media.fade_clip(tmp_path / "c.mp4", frames=12, width=width, height=height, cuts=(6,), grain=8.0, rotation=rotation)
    capture = cv2.VideoCapture(str(clip.path))
    capture.set(cv2.CAP_PROP_ORIENTATION_AUTO, 1.0)
    factor = compute_downscale_factor(max(width, height))
    count = 0
    for _, frame in iter_shrunk_frames(clip.path, lambda info: compute_downscale_factor(max(info.width, info.height))):
        ok, theirs = capture.read()
        assert ok
        size = (max(1, round(theirs.shape[1] / factor)), max(1, round(theirs.shape[0] / factor)))
        expected = cv2.resize(theirs, size, interpolation=cv2.INTER_LINEAR) if factor > 1 else theirs
        assert np.array_equal(frame.image, expected), frame.index
        assert frame.msec == pytest.approx(capture.get(cv2.CAP_PROP_POS_MSEC), abs=1e-9)
        count += 1
    assert count == 12 and not capture.read()[0]


@pytest.fixture(scope="module")
def garbled(tmp_path_factory):
    folder = tmp_path_factory.mktemp("garbled")
    clip = media.scene_clip(folder / "clean.mp4", cuts=(10,), frames=20)
    return media.garbled_video(clip.path, folder / "garbled.mp4")


@pytest.mark.parametrize("spec", ["scenes", "scenes:keyframes_only=true"])
def test_scenes_of_an_undecodable_video_fail_like_keyframes(garbled, tmp_path, spec):
    client = Client(output_dir=tmp_path, use_cache=False)
    result = client.run(garbled, [spec, "keyframes"])
    assert set(result.errors) == {"scenes", "keyframes"}  # no invented 0-0 scene
    assert "no video frame could be decoded" in result.errors["scenes"]


def test_scenes_of_an_undecodable_video_is_one_line_on_the_command_line(garbled, tmp_path):
    proc = run_cli("debug", str(garbled), "--ops", "scenes", "-o", str(tmp_path / "o"), "--cache-dir", str(tmp_path / "c"), "-q")
    assert proc.returncode == 1
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and garbled.name in lines[0] and "no video frame could be decoded" in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(("cuts", "fps"), [((30, 60), 30.0), ((20, 45), 24000 / 1001), ((), 25.0)])
def test_scenes_csv_is_what_scenedetect_list_scenes_writes(tmp_path, cuts, fps):
    """Column by column, value by value: ``scenedetect -i clip list-scenes`` (its default output,
    the ``Timecode List:`` row included) against our ``scenes.csv`` for the same clip."""
    import csv
    import subprocess
    import sys
    from pathlib import Path

    clip = media.scene_clip(tmp_path / "clip.mp4", cuts=cuts, frames=75, width=96, height=64, fps=fps)
    scenedetect = Path(sys.executable).parent / "scenedetect"
    subprocess.run([str(scenedetect), "-i", str(clip.path), "list-scenes", "-o", str(tmp_path), "-q"], check=True, capture_output=True, timeout=120)
    theirs = list(csv.reader((tmp_path / "clip-Scenes.csv").open(newline="")))

    result = Client(output_dir=tmp_path / "out", use_cache=False).run(clip.path, "scenes")
    assert result.ok, result.errors
    ours = list(csv.reader((result.output_dir / "scenes.csv").open(newline="")))

    assert [c.frame for c in result.scenes.cuts] == list(cuts)  # the clip's known cuts
    assert ours[0] == theirs[0]  # the "Timecode List:" row of cuts
    header, *rows = ours[1:]
    assert header == theirs[1] and header[:3] == ["Scene Number", "Start Frame", "Start Timecode"]
    assert len(rows) == len(cuts) + 1 == len(theirs) - 2
    for column, name in enumerate(header):
        assert [r[column] for r in rows] == [r[column] for r in theirs[2:]], name
    # Our own scenes, in its units: 1-based first frame, exclusive end frame, HH:MM:SS.mmm.
    first = result.scenes.scenes[0]
    assert rows[0][1] == str(first.start_frame + 1) and rows[0][4] == str(first.end_frame)
    assert rows[-1][6] == f"{result.scenes.scenes[-1].end:.3f}"
