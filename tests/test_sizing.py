"""Sizing: per-stage costs fitted on a calibration bulk run, and files/hour for a request."""

from __future__ import annotations

import json

import pytest

from video_extract.executors.sizing import Calibration, fit
from video_extract.testing import media

from .conftest import run_cli


def _files(costs: dict[str, tuple[float, float]], durations: list[float], workers: int = 2, gap: float = 0.05) -> list[Calibration]:
    """Files handed to ``workers`` in turn, each stage taking exactly its cost, ``gap`` s between files."""
    files, clocks = [], [0.0] * workers
    for i, d in enumerate(durations):
        w = i % workers
        stages = {label: fixed + per_second * d for label, (fixed, per_second) in costs.items()}
        start = clocks[w]
        end = start + sum(stages.values())
        files.append(Calibration(d, stages, worker=1000 + w, started_at=start, finished_at=end))
        clocks[w] = end + gap
    return files


def test_fit_recovers_each_stages_fixed_and_per_second_cost_and_the_overhead():
    costs = {"scenes": (0.10, 0.02), "keyframes": (0.05, 0.01), "metadata": (0.01, 0.0)}
    model = fit(_files(costs, [2, 5, 10, 2, 5, 10, 20, 20], gap=0.05))
    got = {s.label: (s.fixed, s.per_second) for s in model.stages}
    for label, (fixed, per_second) in costs.items():
        assert got[label] == pytest.approx((fixed, per_second), abs=1e-9)
    assert model.workers == 2
    # each worker has 4 files and 3 gaps of 0.05 s between them: 6 gaps over 8 files
    assert model.overhead == pytest.approx(6 * 0.05 / 8)
    per_file = model.overhead + 0.16 + 0.03 * 30
    assert model.files_per_hour([30.0]) == pytest.approx(2 * 3600 / per_file)
    assert model.files_per_hour([30.0], nodes=4) == pytest.approx(4 * model.files_per_hour([30.0]))


def test_one_duration_gives_a_cost_per_file_only():
    model = fit(_files({"scenes": (0.1, 0.02)}, [5.0] * 6))
    (stage,) = model.stages
    assert stage.per_second == 0 and stage.fixed == pytest.approx(0.2)


def test_sizing_command_on_a_calibration_bulk_run(tmp_path):
    clips = tmp_path / "clips"
    clips.mkdir()
    for i, frames in enumerate([30, 30, 90, 90]):
        media.scene_clip(clips / f"c{i}.mp4", cuts=(15,), frames=frames, width=96, height=64, seed=i)
    out = tmp_path / "out"
    ran = run_cli(
        "bulk", str(clips), "--ops", "metadata,scenes", "-o", str(out), "--cache-dir", str(tmp_path / "cache"), "--workers", "1", "--progress", "none"
    )
    assert ran.returncode == 0, ran.stderr
    sized = run_cli("sizing", str(out), "--duration", "60", "--nodes", "3", "--json")
    assert sized.returncode == 0, sized.stderr
    report = json.loads(sized.stdout)
    assert report["calibration_files"] == 4 and report["workers"] == 1 and report["nodes"] == 3
    assert {c["stage"] for c in report["costs"]} >= {"metadata", "scenes", "per-file overhead"}
    one = json.loads(run_cli("sizing", str(out), "--duration", "60", "--json").stdout)["files_per_hour"]
    assert report["files_per_hour"] == pytest.approx(3 * one) and one > 0
    text = run_cli("sizing", str(out)).stdout
    assert "files/hour" in text and "scenes" in text


def test_sizing_without_a_batch_summary_is_a_usage_error(tmp_path):
    ran = run_cli("sizing", str(tmp_path))
    assert ran.returncode == 2
    assert "no batch_summary.json" in ran.stderr and "Traceback" not in ran.stderr
