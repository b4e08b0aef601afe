"""One typed path: output types declared once, one door (CLI, Client and server say the same
things in the same words), layers that point one way, not-applicable is not failure."""

from __future__ import annotations

import ast
import json
import os
import sys
from pathlib import Path

import pytest

from video_extract import Client
from video_extract.errors import UsageError
from video_extract.events import parse_event
from video_extract.registry import Registry
from video_extract.results import OUTPUT_TYPES, Output, Record
from video_extract.testing import media

from .conftest import SHARED_MODELS, install_loudness_plugin, needs_shared_models, run_cli
from .test_server import running

SRC = Path(__file__).resolve().parents[1] / "src" / "video_extract"


def _site_env(site: Path) -> dict:
    return {"PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}


# -- output types, declared once ----------------------------------------------------------------


def test_every_manifest_output_is_a_declared_strict_record():
    registry = Registry.discover(entry_points=False)
    for manifest in registry.manifests.values():
        declared = OUTPUT_TYPES[manifest.output]
        assert declared.files and manifest.files == declared.files, manifest.name
    strict: list[type] = []
    pending = [Record]
    while pending:  # every record class of the contract, nested ones included
        cls = pending.pop()
        strict.append(cls)
        pending += cls.__subclasses__()
    assert all(cls.model_config.get("extra") == "forbid" for cls in strict)
    design = {
        "Metadata",
        "Audio",
        "Frames",
        "Keyframes",
        "SceneFrames",
        "Scenes",
        "Transcription",
        "VoiceActivity",
        "Diarization",
        "Objects",
        "Faces",
        "OCR",
        "TextEmbeddings",
        "VisionEmbeddings",
        "AudioEmbeddings",
        "Fusion",
    }
    assert design <= set(OUTPUT_TYPES)


def test_no_module_names_another_plugins_file():
    """Consumers receive records; only a producer names its own files (through ctx.path)."""
    registry = Registry.discover(entry_points=False)
    owner: dict[str, set[str]] = {}  # a file name as code would spell it -> modules allowed to
    for manifest in registry.manifests.values():
        module = manifest.plugin.split(":")[0].rsplit(".", 1)[-1]
        declared = OUTPUT_TYPES[manifest.output]
        names = set(declared.files) | {declared.record_file or ""}
        names |= {part for name in list(names) for part in name.split("/")[-1:] if "." in part}  # "scenes.json", "index.json"
        for name in names - {""}:
            owner.setdefault(name, set()).add(module)
    found = []
    for path in sorted(SRC.rglob("*.py")):
        if path.name == "results.py" or "testing" in path.parts:
            continue  # results.py is where the files are declared
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in owner:
                if path.stem not in owner[node.value]:
                    found.append(f"{path.relative_to(SRC)}:{node.lineno}: {node.value}")
    assert found == []
    assert "scenes.json" in owner and "index.json" in owner and "audio.wav" in owner  # what it looks for


def test_a_new_output_type_works_through_every_door(scene_clip, tmp_path, monkeypatch):
    """A third party's record + plugin + manifest, and no other file: CLI, Client and server use it."""
    site = install_loudness_plugin(tmp_path / "site")
    env = _site_env(site)
    proc = run_cli(
        "debug", str(scene_clip.path), "--ops", "loudness:floor_db=-60", "-o", str(tmp_path / "cli"), "--cache-dir", str(tmp_path / "c"), "-q", env=env
    )
    assert proc.returncode == 0, proc.stderr
    on_disk = json.loads((tmp_path / "cli" / "scenes" / "loudness.json").read_text())
    assert -12 < on_disk["dbfs"] < -6  # a 0.5-amplitude sine: 20*log10(0.5/sqrt(2)) = -9.0 dBFS
    listed = json.loads(run_cli("ops", "--json", env=env).stdout)
    assert any(row["name"] == "loudness" and row["available"] for row in listed)

    monkeypatch.syspath_prepend(str(site))
    registry = Registry.discover()
    result = Client(cache_dir=tmp_path / "c", output_dir=tmp_path / "lib", registry=registry).run(scene_clip.path, "loudness:floor_db=-60")
    assert result.ok and result.result.ops["loudness"].cached  # the CLI's run filled the cache
    assert type(result["loudness"]).__name__ == "LoudnessResult" and result["loudness"].dbfs == on_disk["dbfs"]
    assert result.loudness.dbfs == on_disk["dbfs"] and "loudness" in dir(result)

    served_client = Client(cache_dir=tmp_path / "c", output_dir=tmp_path / "srv", registry=registry, executor="perf")
    with running(tmp_path, client=served_client, allow_roots=(scene_clip.path.parent,)) as srv, srv.http() as http:
        job = http.post("/v1/jobs", json={"source": {"path": str(scene_clip.path)}, "ops": "loudness:floor_db=-60"}).json()
        events = [parse_event(line) for line in http.get(job["links"]["events"]).text.splitlines()]
        complete = next(e for e in events if e.type == "complete" and e.op == "loudness")
        assert http.get(complete.path).json() == on_disk
        assert http.get(job["links"]["results"]).json()["result"]["ops"]["loudness"]["type"] == "Loudness"
    sys.modules.pop("loudness_plugin", None)


@pytest.mark.parametrize("how, starts", [("dict", "Loudness: the record"), ("record", "LoudnessResult: the record")])
def test_a_plugin_that_writes_an_unknown_field_fails_and_publishes_nothing(how, starts, scene_clip, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(install_loudness_plugin(tmp_path / "site")))
    client = Client(cache_dir=tmp_path / "c", output_dir=tmp_path / "o", registry=Registry.discover())
    result = client.run(scene_clip.path, f"loudness:sloppy={how}")
    assert not result.ok and result.errors["loudness"].startswith(f"{starts} does not match its declaration")
    assert "peak: Extra inputs are not permitted" in result.errors["loudness"] and "\n" not in result.errors["loudness"]
    assert not (result.output_dir / "loudness.json").exists() and client.cache.stats()["plugins"].get("loudness") is None
    sys.modules.pop("loudness_plugin", None)


def test_records_read_back_equal_the_files_written(scene_clip, tmp_path):
    result = Client(cache_dir=tmp_path / "c", output_dir=tmp_path / "o").run(scene_clip.path, "scenes,keyframes,audio,fusion")
    assert json.loads((result.output_dir / "scenes.json").read_text()) == result.scenes.model_dump(mode="json")
    assert json.loads((result.output_dir / "keyframes" / "index.json").read_text()) == [f.model_dump() for f in result.keyframes.frames]
    assert result.audio.path == result.output_dir / "audio.wav" and result.audio.sample_rate == 16000
    assert isinstance(result.fusion, Output) and [e.type for e in result.fusion.timeline][:1] == ["scene"]


def test_the_readme_operations_table_is_derived_from_the_declarations():
    readme = (SRC.parents[1] / "README.md").read_text()
    table = readme.split("<!-- operations:begin -->\n")[1].split("\n<!-- operations:end -->")[0]
    assert table == run_cli("ops", "--markdown").stdout.strip()


def test_tabular_results_are_data_frames(scene_clip, tmp_path):
    pytest.importorskip("pandas")
    result = Client(cache_dir=tmp_path / "c", output_dir=tmp_path / "o").run(scene_clip.path, "scenes,keyframes")
    scenes = result.scenes.to_pandas()
    assert list(scenes.columns) == ["start", "end", "start_frame", "end_frame"] and scenes["start_frame"].tolist() == [0, 30, 60]
    assert scenes["end"].tolist() == pytest.approx([1.0, 2.0, 3.0], abs=0.01)
    assert result.keyframes.to_pandas()["frame"].tolist() == [f.frame for f in result.keyframes.frames]
    assert result.metadata.to_pandas()["type"].tolist() == ["video", "audio"]


def test_a_missing_optional_package_is_one_line_naming_what_to_install(scene_clip, tmp_path):
    registry = Registry.discover(entry_points=False)
    registry.manifests["objects"] = registry.manifests["objects"].model_copy(update={"imports": ["onnxruntime_not_here"]})
    result = Client(use_cache=False, output_dir=tmp_path / "o", registry=registry).run(scene_clip.path, "scenes,objects")
    assert result.errors == {
        "objects": "objects needs the optional package 'onnxruntime_not_here', which is not installed: pip install 'video-extract[vision]'"
    }
    assert result.scenes.cuts  # the rest of the request ran
    from video_extract.errors import missing_package

    assert missing_package("scenedetect.detectors", "scenes", None).endswith("pip install --no-deps scenedetect==0.7.2")


# -- one door ----------------------------------------------------------------------------------

REQUESTS = [
    ["metadata,scenes:threshold=20,min_scene_len=10"],
    ["keyframes:max_frames=5,min_interval_sec=1.0,frames:fps=2"],
    ["scene_detection:detector=adaptive", "audio"],
    ["objects:classes=person+car,confidence_threshold=0.5,source=keyframes"],
    ["ocr:source=scenes,languages=en+ch,fusion"],
    ["transcription:language=none,diarization:num_speakers=2"],
    ["all"],
]


@pytest.mark.parametrize("request_strings", REQUESTS, ids=lambda r: " ".join(r))
def test_cli_and_client_accept_the_same_request_strings(request_strings, scene_clip, tmp_path):
    args = [arg for text in request_strings for arg in ("--ops", text)]
    proc = run_cli("plan", str(scene_clip.path), *args, "--no-cache", "-o", str(tmp_path / "o"))
    assert proc.returncode == 0, proc.stderr
    cli_lines = [line.strip() for line in proc.stdout.splitlines()[1:]]
    plan = Client(use_cache=False, output_dir=tmp_path / "o").plan(scene_clip.path, request_strings)
    assert cli_lines == plan.describe()


def test_a_malformed_request_is_the_same_error_at_both_doors(scene_clip, tmp_path):
    with pytest.raises(UsageError) as err:
        Client(use_cache=False).plan(scene_clip.path, "metadata,keyframez")
    proc = run_cli("plan", str(scene_clip.path), "--ops", "metadata,keyframez", "--no-cache")
    # (the list of valid names after ";" also holds operations that other tests defined in this process)
    assert proc.returncode == 2 and proc.stderr.split(";")[0] == f"error: {err.value}".split(";")[0]
    assert "unknown operation 'keyframez' (did you mean 'keyframes'?)" in str(err.value)


# -- not applicable is not failed ----------------------------------------------------------------


@pytest.fixture(scope="module")
def mixed_folder(tmp_path_factory):
    """A video (with audio), an audio-only file, a still image and a video without audio."""
    folder = tmp_path_factory.mktemp("mixed")
    media.scene_clip(folder / "video.mp4", cuts=(15,), frames=30, width=160, height=120, tone_hz=440.0)
    media.tone_file(folder / "song.mp3", seconds=1.5)
    media.still_image(folder / "photo.png", width=96, height=64)
    media.scene_clip(folder / "silent.mp4", cuts=(10,), frames=20, width=96, height=64, seed=3)
    return folder


@needs_shared_models
def test_bulk_all_on_mixed_media_is_ok_with_reasons_and_resumes(mixed_folder, tiny_clip_dir, tiny_clap_dir, tmp_path):
    out = tmp_path / "o"
    args = [
        "bulk",
        str(mixed_folder),
        "--ops",
        "all",
        "--op",
        f"vision_embeddings:model={tiny_clip_dir}",
        "--op",
        f"audio_embeddings:model={tiny_clap_dir}",
        "-o",
        str(out),
        "--cache-dir",
        str(tmp_path / "c"),
        "--models-dir",
        str(SHARED_MODELS),
        "--workers",
        "2",
    ]
    proc = run_cli(*args, timeout=900)
    assert proc.returncode == 0, proc.stderr
    rows = {Path(r["input"]).name: r for r in json.loads((out / "batch_summary.json").read_text())["files"]}
    assert {name: r["status"] for name, r in rows.items()} == dict.fromkeys(["photo.png", "silent.mp4", "song.mp3", "video.mp4"], "ok")
    assert rows["video.mp4"]["skipped"] == {}
    assert set(rows["song.mp3"]["skipped"]) == {"frames", "keyframes", "scenes", "scene_frames", "objects", "faces", "ocr", "vision_embeddings"}
    assert set(rows["song.mp3"]["skipped"].values()) == {"song.mp3 has no video stream"}
    assert set(rows["silent.mp4"]["skipped"]) == {"audio", "vad", "transcription", "diarization", "text_embeddings", "audio_embeddings"}
    assert set(rows["photo.png"]["skipped"]) == set(rows["silent.mp4"]["skipped"])
    for name, row in rows.items():
        assert all(status in ("ok", "skipped") for status in row["ops"].values()), (name, row["ops"])
        assert (Path(row["output_dir"]) / "metadata.json").exists() and (Path(row["output_dir"]) / "fusion.json").exists()

    (mixed_folder / "notes.txt").write_text("not media\n")
    try:
        again = run_cli(*args, timeout=300)
    finally:
        (mixed_folder / "notes.txt").unlink()
    assert again.returncode == 0, again.stderr
    summary = json.loads((out / "batch_summary.json").read_text())
    rows = {Path(r["input"]).name: r for r in summary["files"]}
    assert {name: r["status"] for name, r in rows.items()} == dict.fromkeys(["photo.png", "silent.mp4", "song.mp3", "video.mp4"], "skipped")
    assert set(rows["song.mp3"]["skipped"]) >= {"keyframes", "scenes"}  # resumed rows keep their reasons
    assert summary["not_media"] == [str(mixed_folder / "notes.txt")] and summary["totals"]["not_media"] == 1
    assert "1 file(s) in the folders are not media" in again.stderr and "notes.txt" in again.stderr


def test_a_file_that_is_not_media_is_still_an_error(tmp_path):
    text = tmp_path / "notes.mp4"
    text.write_text("meeting notes\n" * 20)
    batch = Client(use_cache=False, output_dir=tmp_path / "o").execute_bulk([text], "all", workers=1)
    assert batch.failed == 1 and "is a text file" in batch.rows[0].error
