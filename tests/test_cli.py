"""The command line as a user meets it: exit status, one-line errors, nothing half-written."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import pytest

from video_extract.testing import media

from .conftest import run_cli


def _bad_inputs(tmp_path, scene_clip, tone_mp3):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    noise = tmp_path / "noise.mp4"
    noise.write_bytes(np.random.default_rng(7).bytes(100_000))
    truncated = media.truncate(scene_clip.path, tmp_path / "truncated.mp4", 0.6)
    text = tmp_path / "notes.txt"
    text.write_text("meeting notes\n" * 50)
    return {
        "empty": (empty, ["metadata"], "file is empty (0 bytes)"),
        "random": (noise, ["metadata"], "not a media file"),
        "truncated": (truncated, ["metadata"], "damaged or truncated MP4"),
        "text": (text, ["metadata"], "is a text file"),
        "missing": (tmp_path / "missing.mp4", ["metadata"], "file not found"),
    }


@pytest.mark.parametrize("case", ["empty", "random", "truncated", "text", "missing"])
def test_bad_input_is_one_clear_line_exit_1_and_no_output(case, tmp_path, scene_clip, tone_mp3):
    path, ops, cause = _bad_inputs(tmp_path, scene_clip, tone_mp3)[case]
    out = tmp_path / "out"
    proc = run_cli("debug", str(path), "--ops", ",".join(ops), "-o", str(out), "--cache-dir", str(tmp_path / "c"), "-q")
    assert proc.returncode == 1, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ") and path.name in lines[0] and cause in lines[0]
    assert "Traceback" not in proc.stderr
    assert not out.exists() or not any(out.iterdir())  # no output directory pretending to be complete


def test_one_bad_file_does_not_stop_the_others(tmp_path, scene_clip):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    proc = run_cli("debug", str(empty), str(scene_clip.path), "--ops", "metadata", "-o", str(tmp_path / "o"), "--cache-dir", str(tmp_path / "c"), "-q")
    assert proc.returncode == 1
    assert "empty.mp4: file is empty" in proc.stderr
    assert (tmp_path / "o" / "scenes" / "metadata.json").exists()


def test_an_operation_that_does_not_apply_is_skipped_not_failed(tmp_path, tone_mp3):
    proc = run_cli("debug", str(tone_mp3.path), "--ops", "metadata,keyframes,audio", "-o", str(tmp_path / "o"), "--cache-dir", str(tmp_path / "c"), "-q")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""  # nothing failed
    summary = json.loads((tmp_path / "o" / "tone" / "summary.json").read_text())
    assert summary["status"] == "ok"
    assert summary["ops"]["metadata"]["status"] == "ok" and summary["ops"]["audio"]["status"] == "ok"
    assert summary["ops"]["keyframes"] == {**summary["ops"]["keyframes"], "status": "skipped", "reason": "tone.mp3 has no video stream", "error": None}
    assert not (tmp_path / "o" / "tone" / "keyframes").exists()
    assert "skipped keyframes: tone.mp3 has no video stream" in proc.stdout


def test_a_models_directory_that_is_not_there_is_a_usage_error(tmp_path, scene_clip):
    """A mistyped --models-dir sent every model to a download, whose error named the model."""
    missing = tmp_path / "modles"
    proc = run_cli("debug", str(scene_clip.path), "--ops", "objects", "-o", str(tmp_path / "o"), "--models-dir", str(missing), "-q")
    assert proc.returncode == 2 and proc.stderr.strip() == f"error: {missing}: the models directory is not a folder (it does not exist)"
    assert not (tmp_path / "o").exists()


def test_partial_failure_keeps_what_succeeded(tmp_path, scene_clip):
    env = {"VIDEO_EXTRACT_OFFLINE": "1", "VIDEO_EXTRACT_MODEL_CACHE": str(tmp_path / "m")}
    (tmp_path / "none").mkdir()  # a models folder without the detector's weights
    proc = run_cli(
        "debug",
        str(scene_clip.path),
        "--ops",
        "scenes,objects",
        "-o",
        str(tmp_path / "o"),
        "--cache-dir",
        str(tmp_path / "c"),
        "--models-dir",
        str(tmp_path / "none"),
        "-q",
        env=env,
    )
    assert proc.returncode == 1
    summary = json.loads((tmp_path / "o" / "scenes" / "summary.json").read_text())
    assert summary["status"] == "failed"
    assert summary["ops"]["metadata"]["status"] == "ok" and summary["ops"]["scenes"]["status"] == "ok"
    assert "not available offline" in summary["ops"]["objects"]["error"]
    assert [line for line in proc.stderr.splitlines() if line] == [f"error: {scene_clip.path}: objects: {summary['ops']['objects']['error']}"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["debug", "x.mp4", "--ops", "keyframez"], "unknown operation 'keyframez'"),
        (["debug", "x.mp4", "--op", "keyframes:max_frame=2"], "unknown parameter 'max_frame' for keyframes"),
        (["debug", "x.mp4"], "no operations requested"),
        (["debug", "--ops", "metadata"], "the following arguments are required"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_usage_errors_exit_2(args, message, tmp_path):
    proc = run_cli(*args, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr


def test_debug_logs_stages_and_prints_a_timing_table(tmp_path, scene_clip):
    args = ["debug", str(scene_clip.path), "--ops", "metadata,scenes", "-o", str(tmp_path / "o"), "--cache-dir", str(tmp_path / "c")]
    cold = run_cli(*args)
    assert cold.returncode == 0, cold.stderr
    assert "[1/2] metadata" in cold.stderr and "miss" in cold.stderr
    assert "┃ stage" in cold.stderr or "stage" in cold.stderr.splitlines()[-8]
    assert f"-> {tmp_path / 'o' / 'scenes'}/" in cold.stdout
    warm = run_cli(*args)
    assert warm.returncode == 0 and warm.stderr.count(" hit ") >= 2


def test_spec_file_on_the_command_line(tmp_path, scene_clip):
    spec = tmp_path / "spec.yaml"
    spec.write_text("outputs:\n  - operation: scenes\n    params: {min_scene_len: 5}\n  - keyframes\n")
    proc = run_cli("debug", str(scene_clip.path), "--spec", str(spec), "-o", str(tmp_path / "o"), "--no-cache", "-q")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "o" / "scenes" / "scenes.json").exists() and (tmp_path / "o" / "scenes" / "keyframes" / "index.json").exists()


def test_two_inputs_with_the_same_stem_get_separate_folders(tmp_path, scene_clip):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = tmp_path / "a" / "clip.mp4"
    second = tmp_path / "b" / "clip.mp4"
    first.write_bytes(scene_clip.path.read_bytes())
    media.scene_clip(second, cuts=(45,), frames=60)
    proc = run_cli("debug", str(first), str(second), "--ops", "scenes", "-o", str(tmp_path / "o"), "--cache-dir", str(tmp_path / "c"), "-q")
    assert proc.returncode == 0, proc.stderr
    folders = sorted(p.name for p in (tmp_path / "o").iterdir())
    assert len(folders) == 2 and all(f.startswith("clip-") for f in folders)
    cuts = sorted(len(json.loads((tmp_path / "o" / f / "scenes.json").read_text())["cuts"]) for f in folders)
    assert cuts == [1, 2]
    again = run_cli("debug", str(first), str(second), "--ops", "scenes", "-o", str(tmp_path / "o"), "--cache-dir", str(tmp_path / "c"), "-q")
    assert again.returncode == 0
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == folders  # same names every time


def test_a_later_run_never_overwrites_another_inputs_folder(tmp_path, scene_clip, gop_clip):
    (tmp_path / "x").mkdir()
    other = tmp_path / "x" / "scenes.mp4"  # same stem as scene_clip, different file
    other.write_bytes(gop_clip.path.read_bytes())
    run_cli("debug", str(scene_clip.path), "--ops", "metadata", "-o", str(tmp_path / "o"), "--no-cache", "-q")
    run_cli("debug", str(other), "--ops", "metadata", "-o", str(tmp_path / "o"), "--no-cache", "-q")
    folders = sorted(p.name for p in (tmp_path / "o").iterdir())
    assert folders[0] == "scenes" and folders[1].startswith("scenes-") and len(folders) == 2


def test_ops_lists_operations_and_parameters_quickly():
    started = time.perf_counter()
    proc = run_cli("ops")
    elapsed = time.perf_counter() - started
    assert proc.returncode == 0
    assert "keyframes" in proc.stdout and "min_interval_sec" in proc.stdout and "scene_detection" in proc.stdout
    rows = json.loads(run_cli("ops", "--json").stdout)
    assert {r["name"] for r in rows if r["available"]} >= {"metadata", "audio", "frames", "keyframes", "scenes"}
    assert elapsed < 5  # the interpreter start dominates; no model library is imported


def test_cache_stats_and_clear(tmp_path, scene_clip):
    run_cli("debug", str(scene_clip.path), "--ops", "metadata,keyframes", "-o", str(tmp_path / "o"), "--cache-dir", str(tmp_path / "c"), "-q")
    stats = json.loads(run_cli("cache", "stats", "--json", "--cache-dir", str(tmp_path / "c")).stdout)
    assert stats["entries"] == 2 and set(stats["plugins"]) == {"metadata", "keyframes"}
    cleared = run_cli("cache", "clear", "--cache-dir", str(tmp_path / "c"))
    assert cleared.returncode == 0 and "removed 2 entries" in cleared.stdout
    assert json.loads(run_cli("cache", "stats", "--json", "--cache-dir", str(tmp_path / "c")).stdout)["entries"] == 0


def test_plan_shows_merged_stages_without_running(tmp_path, scene_clip):
    proc = run_cli("plan", str(scene_clip.path), "--ops", "frames,metadata", "--cache-dir", str(tmp_path / "c"), "-o", str(tmp_path / "o"))
    assert proc.returncode == 0
    assert "#1 frames" in proc.stdout and "#2 metadata" in proc.stdout
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "yaml_text, message",
    [
        ("outputs:\n  - operation: keyframes\n    params: [1]\n", "'params' of keyframes must be a mapping"),
        ("outputs:\n  - operation: keyframes\n    sources: 5\n", "'sources' of keyframes must be a list"),
        ("outputs:\n  - operation: 5\n", "'operation' must be an operation name"),
    ],
)
def test_malformed_spec_shapes_are_usage_errors(yaml_text, message, tmp_path, scene_clip):
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml_text)
    proc = run_cli("debug", str(scene_clip.path), "--spec", str(spec), "-o", str(tmp_path / "o"))
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr


def test_unwritable_output_directory_is_one_clear_error(tmp_path, scene_clip):
    proc = run_cli("debug", str(scene_clip.path), "--ops", "metadata", "-o", "/proc/video-extract-out")
    assert proc.returncode == 2 and "cannot write to the output directory" in proc.stderr and "Traceback" not in proc.stderr
    events = tmp_path / "missing" / "dir" / "events.jsonl"
    proc = run_cli("perf", str(scene_clip.path), "--ops", "metadata", "-o", str(tmp_path / "o"), "--stream", "--output", str(events))
    assert proc.returncode == 2 and "cannot write the events file" in proc.stderr


def test_a_huge_image_is_described_but_not_decoded(tmp_path):
    from PIL import Image

    # Past twice Pillow's limit, where Pillow itself would refuse it without saying its size;
    # the pixel budget (tests/test_pixel_budget.py) says it in one line.
    big = tmp_path / "big.png"
    Image.new("L", (20000, 9000)).save(big)
    proc = run_cli("debug", str(big), "--ops", "metadata,frames", "-o", str(tmp_path / "o"))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr and "DecompressionBomb" not in proc.stderr
    assert f"{big}: frames: image of 20000×9000 (180.0 Mpx) exceeds the pixel budget of 89.5 Mpx" in proc.stderr
    assert '"width": 20000' in (tmp_path / "o" / "big" / "metadata.json").read_text()


def test_quick_exit_keeps_the_status_the_buffered_output_and_the_exit_handlers(tmp_path):
    """``exit_now`` skips the interpreter's teardown, not what must happen at exit: temporary
    folders removed, atexit handlers run, buffered output written, the status kept."""
    code = (
        "import atexit, sys, tempfile; from video_extract.cli import exit_now;"
        f"t = tempfile.TemporaryDirectory(dir={str(tmp_path)!r}); open(t.name + '/f', 'w').write('x');"
        f"atexit.register(lambda: open({str(tmp_path / 'handler')!r}, 'w').write('ran'));"
        "sys.stdout.write('buffered, no newline'); exit_now(3)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 3, proc.stderr
    assert proc.stdout == "buffered, no newline"
    assert (tmp_path / "handler").read_text() == "ran"
    assert [p.name for p in tmp_path.iterdir()] == ["handler"]  # the temporary folder went


def test_a_media_command_exits_at_once_with_every_output_complete(tmp_path, scene_clip):
    out = tmp_path / "o"
    proc = run_cli("debug", str(scene_clip.path), "--ops", "metadata,scenes,keyframes", "-o", str(out), "--no-cache", "-q")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"{scene_clip.path} -> ")  # the report line reached the pipe
    summary = json.loads((out / "scenes" / "summary.json").read_text())
    assert summary["status"] == "ok"
    files = [f for op in summary["ops"].values() for f in op["files"]]
    assert files and all((out / "scenes" / f).exists() for f in files)


def test_library_use_of_main_returns_instead_of_exiting(tmp_path, scene_clip):
    import signal

    from video_extract.cli import main

    own = signal.getsignal(signal.SIGTERM)
    assert main(["debug", str(scene_clip.path), "--ops", "metadata", "-o", str(tmp_path / "o"), "--no-cache", "-q"]) == 0
    assert (tmp_path / "o" / "scenes" / "summary.json").exists()
    assert signal.getsignal(signal.SIGTERM) is own  # the program's SIGTERM handler, back
