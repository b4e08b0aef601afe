"""fusion: one timeline of scenes, speech, objects, faces and on-screen text, and a digest per scene."""

from __future__ import annotations

import json

import pytest

from video_extract import Client

from .conftest import SHARED_MODELS, VISION_TEXT, needs_shared_models


@needs_shared_models
def test_timeline_puts_each_thing_in_its_scene(vision_clip, tmp_path):
    result = Client(cache_dir=tmp_path / "c", output_dir=tmp_path / "o", models_dir=SHARED_MODELS).run(
        vision_clip.path, ["scenes", "objects", "faces", "ocr", "fusion"]
    )
    assert result.ok, result.errors
    fusion = json.loads((result.output_dir / "fusion.json").read_text())
    assert fusion == result.fusion.model_dump(mode="json")  # the file is the typed record
    assert fusion["duration"] == pytest.approx(8.0, abs=0.05)
    assert [(s["start"], s["end"]) for s in fusion["scenes"]] == [(0.0, 2.0), (2.0, 4.0), (4.0, 6.0), (6.0, 8.0)]
    digest = fusion["scenes"]
    assert "person" in digest[0]["objects"] and digest[0]["faces"] == 1
    assert "cat" in digest[1]["objects"] and digest[1]["faces"] == 0
    assert "cup" in digest[2]["objects"] and "cat" not in digest[2]["objects"]
    assert {t.lower() for t in digest[3]["texts"]} >= {t.lower() for t in VISION_TEXT}
    cat = next(e for e in fusion["timeline"] if e["type"] == "object" and e["label"] == "cat")
    assert cat["start"] == pytest.approx(2.0) and cat["end"] == pytest.approx(4.0)  # ends with its scene
    starts = [e["start"] for e in fusion["timeline"]]
    assert starts == sorted(starts)


def test_fusion_keeps_what_succeeded_when_an_input_fails(vision_clip, tmp_path, monkeypatch):
    monkeypatch.setenv("VIDEO_EXTRACT_OFFLINE", "1")
    monkeypatch.setenv("VIDEO_EXTRACT_MODEL_CACHE", str(tmp_path / "m"))
    (tmp_path / "none").mkdir()  # a models folder without the detector's weights
    result = Client(cache_dir=tmp_path / "c", output_dir=tmp_path / "o", models_dir=tmp_path / "none").run(
        vision_clip.path, ["scenes", "objects", "ocr", "fusion"]
    )
    assert set(result.errors) == {"objects"}
    fusion = result.fusion
    assert fusion.sources == ["Metadata", "OCR", "Scenes"]
    assert len(fusion.scenes) == 4 and any(e.type == "text" for e in fusion.timeline)


def test_fusion_alone_has_nothing_to_fuse(vision_clip, tmp_path):
    result = Client(cache_dir=tmp_path / "c", output_dir=tmp_path / "o").run(vision_clip.path, ["fusion"])
    assert "nothing to fuse" in result.errors["fusion"]
