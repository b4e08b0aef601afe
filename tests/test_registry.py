"""Discovery and planning: resolution by type, merged stages, impossible requests, third-party plugins."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from video_extract import Client
from video_extract.errors import UsageError
from video_extract.executors import DebugExecutor, Runtime
from video_extract.media import probe
from video_extract.plugins.base import Manifest
from video_extract.registry import Registry
from video_extract.spec import Audio, OutputSpec

from .conftest import install_loudness_plugin


@pytest.fixture
def third_party(tmp_path, monkeypatch):
    """An installed distribution that declares an entry point in ``video_extract.plugins``."""
    monkeypatch.syspath_prepend(str(install_loudness_plugin(tmp_path / "site")))
    yield Registry.discover()
    sys.modules.pop("loudness_plugin", None)


def test_builtins_are_discovered_from_manifests_alone():
    registry = Registry.discover(entry_points=False)
    assert {"metadata", "audio", "frames", "keyframes", "scenes"} <= set(registry.operations())
    assert registry.manifests["keyframes"].inputs[0].type == "VideoStream"


def test_discovery_imports_no_plugin_module_and_no_heavy_library():
    code = (
        "import sys; from video_extract.registry import Registry; Registry.discover();"
        "print(sorted(m for m in sys.modules if m.startswith('video_extract.plugins.') and m != 'video_extract.plugins.base'"
        " or m in ('av', 'scenedetect', 'cv2', 'torch', 'onnxruntime')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_third_party_plugin_is_found_through_its_entry_point(third_party):
    assert "loudness" in third_party.operations()
    assert third_party.manifests["loudness"].source == "loudness-plugin"


def test_shared_upstream_is_planned_once(third_party, scene_clip):
    info = probe(scene_clip.path)
    plan = third_party.plan(["audio", "loudness", "metadata"], info)
    audio_stages = [s for s in plan.stages.values() if s.plugin == "audio"]
    assert len(audio_stages) == 1
    assert plan.outputs["audio"] == audio_stages[0].id
    loud = plan.stages[plan.outputs["loudness"]]
    assert loud.upstream == [audio_stages[0].id]
    order = list(plan.stages)
    assert order.index(audio_stages[0].id) < order.index(loud.id)


def test_different_parameters_make_different_stages(third_party, scene_clip):
    plan = third_party.plan(["audio:sample_rate=8000", "loudness"], probe(scene_clip.path))
    rates = sorted(s.operation.sample_rate for s in plan.stages.values() if s.plugin == "audio")
    assert rates == [8000, 16000]


def test_sources_pin_how_an_input_is_made(third_party, scene_clip):
    spec = OutputSpec(operation="loudness", sources=[OutputSpec(operation=Audio(sample_rate=8000))])
    plan = third_party.plan([spec], probe(scene_clip.path))
    (audio,) = [s for s in plan.stages.values() if s.plugin == "audio"]
    assert audio.operation.sample_rate == 8000 and not plan.requested(audio.id)


def test_third_party_plugin_runs_end_to_end(third_party, scene_clip, tmp_path):
    client = Client(executor=DebugExecutor(Runtime(cache_dir=tmp_path / "c", registry=third_party)), output_dir=tmp_path / "o")
    result = client.run(scene_clip.path, ["loudness"])
    assert result.ok, result.errors
    dbfs = json.loads((result.output_dir / "loudness.json").read_text())["dbfs"]
    assert -12 < dbfs < -6  # a 0.5-amplitude sine: 20*log10(0.5/sqrt(2)) = -9.0 dBFS


def test_keyframes_from_mp3_are_skipped_before_any_work_naming_the_gap(tone_mp3):
    registry = Registry.discover(entry_points=False)
    plan = registry.plan(["keyframes", "metadata"], probe(tone_mp3.path))
    assert plan.skipped["keyframes"] == "tone.mp3 has no video stream" and not plan.errors
    assert [s.plugin for s in plan.stages.values()] == ["metadata"]


def test_operation_without_an_installed_plugin_is_named(scene_clip):
    registry = Registry([Manifest.load(Path(__file__).parents[1] / "src/video_extract/plugins/metadata.yaml")])
    plan = registry.plan(["scenes"], probe(scene_clip.path))
    assert "no plugin implements the 'scenes' operation" in plan.errors["scenes"]


def test_same_operation_twice_is_a_usage_error(scene_clip):
    with pytest.raises(UsageError, match="requested twice"):
        Registry.discover(entry_points=False).plan(["frames", "frames:fps=2"], probe(scene_clip.path))


def test_save_intermediates_keeps_what_internal_stages_made(third_party, scene_clip, tmp_path):
    executor = DebugExecutor(Runtime(cache_dir=tmp_path / "c", registry=third_party), save_intermediates=True)
    result = Client(executor=executor, output_dir=tmp_path / "o").run(scene_clip.path, ["loudness"])
    assert result.ok, result.errors
    (kept,) = (result.output_dir / "intermediates").iterdir()
    assert kept.name.startswith("01-audio-") and (kept / "audio.wav").stat().st_size > 90_000
    assert not (result.output_dir / "audio.wav").exists()  # not requested, so not a top-level output


# -- plans reused --------------------------------------------------------------------------------


def test_a_plan_is_reused_for_the_same_request_and_file_facts_as_a_copy(still_png, scene_clip):
    registry = Registry.discover(entry_points=False)
    still, clip = probe(still_png), probe(scene_clip.path, scan=False)
    first = registry.plan(["frames:fps=2", "metadata"], still)
    again = registry.plan(["frames:fps=2", "metadata"], still)
    assert again is not first and again == first and all(again.stages[sid] is first.stages[sid] for sid in first.stages)
    again.outputs.clear()  # a caller's copy: what it does to it is not what the next request gets
    assert registry.plan(["frames:fps=2", "metadata"], still) == first
    assert registry.plan(["frames:fps=3", "metadata"], still) != first  # other parameters: planned for them
    assert registry.plan(["audio", "metadata"], still).skipped == {"audio": "still.png has no audio stream"}
    assert registry.plan(["audio", "metadata"], clip).outputs.keys() == {"audio", "metadata"}  # the same request, a file with audio


def test_a_reused_plan_is_checked_again_and_replanned_when_something_changed(still_png, tmp_path):
    registry = Registry.discover(entry_points=False)
    info = probe(still_png)
    weights = tmp_path / "detector.onnx"
    weights.write_bytes(b"not really a model")
    request = [f"objects:model={weights}"]
    first = registry.plan(request, info)
    assert registry.plan(request, info) == first
    weights.unlink()  # the model file named by the request is gone: planning says so, as the first time would
    with pytest.raises(UsageError, match="model file not found"):
        registry.plan(request, info)
    before = registry.plan(["frames:fps=2"], info)
    registry.manifests["frames"] = registry.manifests["frames"].model_copy(update={"version": "999"})  # another plugin version
    bumped = registry.plan(["frames:fps=2"], info)
    assert [s.version for s in before.stages.values()] != ["999"] and [s.version for s in bumped.stages.values()] == ["999"]
