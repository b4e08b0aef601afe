"""The pixel budget: no picture over it is decoded, on any path, and a still is decoded once.

The bombs are made here (a one-colour 13000x13000 PNG is 0.5 MB) and run through the real
command in a fresh process whose peak memory a small wrapper reports.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

from video_extract.client import Client
from video_extract.errors import InputError
from video_extract.executors.base import Runtime, finish, prepare, run_stage
from video_extract.media import decode_counters, iter_frames
from video_extract.media.limits import ENV
from video_extract.vision.frames import imread

from .conftest import SHARED_MODELS, needs_shared_models, run_cli

GB = 1 << 30
BUDGET_HINT = f"(set {ENV} or --max-pixels to allow it)"

# Runs the command given in its arguments and reports what it did and its peak memory (the
# largest resident size among its children: the command alone).
_MEASURE = """
import json, resource, subprocess, sys
p = subprocess.run(sys.argv[1:], capture_output=True, text=True)
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * (1 if sys.platform == "darwin" else 1024)
print(json.dumps({"rc": p.returncode, "stdout": p.stdout, "stderr": p.stderr, "peak": peak}))
"""


def run_measured(*args: str, env: dict | None = None, timeout: float = 300) -> dict:
    clean = {k: v for k, v in os.environ.items() if k != ENV}
    command = [sys.executable, "-c", _MEASURE, sys.executable, "-m", "video_extract.cli", *args]
    proc = subprocess.run(command, capture_output=True, text=True, env={**clean, **(env or {})}, timeout=timeout, check=True)
    return json.loads(proc.stdout)


def flat_png(path: Path, width: int, height: int, rgb=(40, 90, 160)) -> Path:
    """A one-colour RGB PNG written a row at a time: the test never holds the picture."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\0" + bytes(rgb) * width
    deflate = zlib.compressobj(6)
    pixels = b"".join(deflate.compress(row) for _ in range(height)) + deflate.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b""))
    return path


@pytest.fixture(scope="module")
def bomb(tmp_path_factory) -> Path:
    path = flat_png(tmp_path_factory.mktemp("bomb") / "photo.png", 13000, 13000)
    assert path.stat().st_size < 1_000_000
    return path


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def test_a_png_bomb_is_refused_from_its_header_in_one_line(bomb, tmp_path):
    run = run_measured("debug", str(bomb), "--ops", "metadata,frames", "-o", str(tmp_path / "o"), "--no-cache")
    assert run["rc"] == 1
    assert run["peak"] < GB / 4, f"peak {run['peak'] / 2**20:.0f} MB: the picture was decoded"
    assert error_lines(run["stderr"]) == [f"error: {bomb}: frames: image of 13000×13000 (169.0 Mpx) exceeds the pixel budget of 89.5 Mpx {BUDGET_HINT}"]
    assert "DecompressionBomb" not in run["stderr"] and "Traceback" not in run["stderr"]
    # What the header says is still described: metadata needs no pixels.
    video = json.loads((tmp_path / "o" / "photo" / "metadata.json").read_text())["streams"][0]
    assert (video["width"], video["height"]) == (13000, 13000)


def test_every_vision_operation_of_a_bomb_fails_in_one_line_naming_it(bomb, tmp_path):
    run = run_measured("debug", str(bomb), "--ops", "all", "-o", str(tmp_path / "o"), "--no-cache")
    assert run["rc"] == 1 and run["peak"] < GB / 4
    refused = [line for line in error_lines(run["stderr"]) if "pixel budget" in line]
    assert {line.split(": ")[2] for line in refused} >= {"frames", "keyframes", "scenes", "scene_frames", "objects", "faces", "ocr"}
    assert all(line.startswith(f"error: {bomb}: ") for line in refused)
    assert "DecompressionBomb" not in run["stderr"] and "Traceback" not in run["stderr"]


def test_a_png_bomb_named_mp4_is_refused_by_ffmpeg_without_decoding(bomb, tmp_path):
    disguised = shutil.copyfile(bomb, tmp_path / "clip.mp4")
    run = run_measured("debug", str(disguised), "--ops", "metadata,frames,scenes", "-o", str(tmp_path / "o"), "--no-cache")
    assert run["rc"] == 1
    # av.open alone used to take 0.5 GB (FFmpeg decodes a first frame to learn the stream), and
    # every stage as much again.
    assert run["peak"] < GB / 4, f"peak {run['peak'] / 2**20:.0f} MB: the picture was decoded"
    message = f"video frames of 13000×13000 (169.0 Mpx) exceed the pixel budget of 89.5 Mpx {BUDGET_HINT}"
    assert sorted(error_lines(run["stderr"])) == [f"error: {disguised}: frames: {message}", f"error: {disguised}: scenes: {message}"]
    video = json.loads((tmp_path / "o" / "clip" / "metadata.json").read_text())["streams"][0]
    assert (video["width"], video["height"]) == (13000, 13000)  # from the PNG header: FFmpeg was not let decode it


def test_over_budget_video_keeps_its_audio_and_decodes_no_frame(scene_clip, tmp_path, monkeypatch):
    monkeypatch.setenv(ENV, "10000")  # the clip is 320x240
    before = dict(decode_counters)
    result = Client(cache_dir=tmp_path / "c", output_dir=tmp_path / "o").run(scene_clip.path, ["audio", "frames", "scenes"])
    assert result.result.ops["audio"].status == "ok" and (result.output_dir / "audio.wav").stat().st_size > 0
    message = f"video frames of 320×240 (76,800 px) exceed the pixel budget of 10,000 px {BUDGET_HINT}"
    assert result.errors == {"frames": message, "scenes": message}
    assert decode_counters["frames_decoded"] == before.get("frames_decoded", 0)
    assert decode_counters["video_opens"] == before.get("video_opens", 0)


def test_the_media_layer_refuses_an_over_budget_stream_before_decoding(scene_clip, still_png, monkeypatch):
    monkeypatch.setenv(ENV, "10000")
    before = decode_counters["frames_decoded"]
    with pytest.raises(InputError, match=r"video frames of 320×240 .* exceed the pixel budget of 10,000 px"):
        next(iter_frames(scene_clip.path))
    assert decode_counters["frames_decoded"] == before
    monkeypatch.setenv(ENV, "1000")
    with pytest.raises(InputError, match=r"still\.png: image of 64×48 \(3,072 px\) exceeds the pixel budget of 1,000 px"):
        next(iter_frames(still_png))
    monkeypatch.setenv(ENV, "0")  # no limit
    assert next(iter_frames(still_png)).image.shape == (48, 64, 3)


def test_the_budget_is_set_by_flag_or_environment(still_png, bomb, tmp_path):
    proc = run_cli("debug", str(still_png), "--ops", "frames", "-o", str(tmp_path / "a"), "--no-cache", "--max-pixels", "1000")
    assert proc.returncode == 1
    assert error_lines(proc.stderr) == [f"error: {still_png}: frames: image of 64×48 (3,072 px) exceeds the pixel budget of 1,000 px {BUDGET_HINT}"]
    proc = run_cli("debug", str(still_png), "--ops", "frames", "-o", str(tmp_path / "b"), "--no-cache", env={ENV: "1000"})
    assert proc.returncode == 1 and "exceeds the pixel budget of 1,000 px" in proc.stderr
    # A budget that allows the bomb plans its frames (nothing is decoded to plan).
    proc = run_cli("plan", str(bomb), "--ops", "frames", "--max-pixels", "200000000")
    assert proc.returncode == 0 and "frames" in proc.stdout and "pixel budget" not in proc.stderr
    proc = run_cli("debug", str(still_png), "--ops", "frames", "-o", str(tmp_path / "c"), env={ENV: "lots"})
    assert proc.returncode == 2 and f"{ENV}='lots': give a whole number of pixels per frame" in proc.stderr


def test_client_max_pixels_reaches_bulk_workers(still_png, tmp_path, monkeypatch):
    monkeypatch.setenv(ENV, "")  # unset again after the test: the budget is process-wide
    client = Client(cache_dir=tmp_path / "c", output_dir=tmp_path / "o", max_pixels=1000)
    assert os.environ[ENV] == "1000"
    batch = client.execute_bulk([still_png], "frames", workers=1)
    (row,) = batch.rows
    assert row.status == "failed" and "exceeds the pixel budget of 1,000 px" in json.dumps(row.model_dump(mode="json"))


def test_a_still_is_decoded_once_per_request_and_let_go_after(still_png, tmp_path):
    runtime = Runtime(cache_dir=tmp_path / "c")
    job = prepare(runtime, still_png, ["frames", "keyframes", "scenes", "scene_frames"], tmp_path / "o")
    assert len(job.plan.stages) == 5  # with metadata
    before = decode_counters["still_decodes"]
    for stage in job.plan.stages.values():
        assert run_stage(runtime, job, stage).status == "ok"
    assert decode_counters["still_decodes"] - before == 1
    assert job.source.still is not None and not job.source.still.decoded  # nothing left needs it: its pixels went
    assert finish(job).status == "ok"
    # The next request decodes for itself (nothing kept between requests).
    again = Client(cache_dir=tmp_path / "c2", output_dir=tmp_path / "o2").run(still_png, ["frames", "scene_frames"])
    assert again.ok and decode_counters["still_decodes"] - before == 2


def test_large_frame_files_are_read_at_the_scale_a_plugin_works_at(tmp_path):
    from PIL import Image

    path = tmp_path / "frame.jpg"
    Image.new("RGB", (4000, 3000), (200, 30, 30)).save(path)
    full, scale = imread(path)
    assert full.shape == (3000, 4000, 3) and scale == 1
    half, scale = imread(path, side=640)  # 4000 / 2 = 2000 keeps at least twice 640; / 4 would not
    assert half.shape == (1500, 2000, 3) and scale == 2
    assert imread(path, side=1000)[1] == 2 and imread(path, side=1001)[1] == 1


@needs_shared_models
@pytest.mark.parametrize("mode", ["debug", "perf"])
def test_a_still_just_under_the_budget_runs_every_vision_operation_under_1_gb(tmp_path, mode):
    """A 9400x9400 photo (88.4 Mpx): the astronaut, enlarged, with grain."""
    path = tmp_path / "astronaut.jpg"
    make = (
        "import cv2, numpy as np, sys; from PIL import Image; from skimage import data;"
        "big = cv2.resize(data.astronaut(), (9400, 9400), interpolation=cv2.INTER_CUBIC);"
        "big += np.random.default_rng(0).integers(0, 8, big.shape, dtype=np.uint8);"
        "Image.fromarray(big).save(sys.argv[1], quality=90)"
    )
    subprocess.run([sys.executable, "-c", make, str(path)], check=True, timeout=120)
    ops = "metadata,frames,keyframes,scenes,scene_frames,objects,faces,ocr"
    run = run_measured(mode, str(path), "--ops", ops, "-o", str(tmp_path / "o"), "--no-cache", "--models-dir", str(SHARED_MODELS))
    assert run["rc"] == 0, run["stderr"][-2000:]
    assert run["peak"] < GB, f"peak {run['peak'] / 2**20:.0f} MB"
    out = tmp_path / "o" / "astronaut"
    scale = 9400 / 512  # where the detectors find the astronaut in the 512x512 original
    (face,) = json.loads((out / "faces.json").read_text())["frames"][0]["detections"]
    assert np.allclose(face["box"], np.array([178.3, 62.8, 268.2, 176.5]) * scale, atol=3 * scale)
    people = [d for d in json.loads((out / "objects.json").read_text())["frames"][0]["detections"] if d["label"] == "person"]
    assert people and np.allclose(people[0]["box"], np.array([11.6, 19.0, 368.7, 507.3]) * scale, atol=5 * scale)
