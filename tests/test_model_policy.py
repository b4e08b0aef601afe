"""Which model names a request may use: anything on a user's machine, the catalog (and an
operator's allowlist) on a server; and offline meaning no network for every model family.

Network-free: the Hugging Face Hub points at a local server that counts the connections it
gets, so "no connection was attempted" is checked, not assumed.
"""

from __future__ import annotations

import time

import pytest

from video_extract import Client
from video_extract.errors import UsageError
from video_extract.executors import Runtime
from video_extract.executors.base import prepare
from video_extract.executors.bulk import FileWorker, Settings
from video_extract.models import ModelStore
from video_extract.spec import parse_op


@pytest.fixture
def hub(monkeypatch, tmp_path, counting_server):
    """The Hub and the model mirror are a local server that counts connections; no model cache."""
    from huggingface_hub import constants

    url, seen = counting_server
    monkeypatch.setenv("HF_ENDPOINT", url)
    monkeypatch.setenv("VIDEO_EXTRACT_MODEL_MIRROR", url)
    monkeypatch.setenv("VIDEO_EXTRACT_MODEL_CACHE", str(tmp_path / "model-cache"))
    monkeypatch.setattr(constants, "ENDPOINT", url)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    yield seen


# (operation, a Hugging Face id, a path, media fixture)
FAMILIES = [
    ("transcription", "Systran/faster-distil-whisper-large-v3", "whisper-dir", "tone_mp3"),
    ("text_embeddings", "sentence-transformers/all-mpnet-base-v2", "sbert-dir", "tone_mp3"),
    ("vision_embeddings", "openai/clip-vit-large-patch14", "clip-dir", "still_png"),
    ("audio_embeddings", "laion/larger_clap_general", "clap-dir", "tone_mp3"),
    ("objects", "Megvii/yolox-x", "detector.onnx", "still_png"),
    ("faces", "opencv/yunet-big", "faces.onnx", "still_png"),
]


def _media(request, fixture: str):
    value = request.getfixturevalue(fixture)
    return getattr(value, "path", value)


@pytest.mark.parametrize(("op", "hub_id", "local", "media_fixture"), FAMILIES, ids=[f[0] for f in FAMILIES])
def test_a_strict_client_refuses_a_hub_id_and_a_path_in_under_a_second_without_the_network(op, hub_id, local, media_fixture, hub, tmp_path, request):
    media = _media(request, media_fixture)
    path = tmp_path / local
    if path.suffix:
        path.write_bytes(b"not a model")
    else:
        path.mkdir()
    client = Client(cache_dir=tmp_path / "c", output_dir=tmp_path / "o", allow_any_model=False)
    for name in (hub_id, str(path), str(tmp_path / "missing-dir")):
        started = time.perf_counter()
        with pytest.raises(UsageError) as err:
            client.run(media, f"{op}:model={name}")
        assert time.perf_counter() - started < 1.0
        message = str(err.value)
        assert "\n" not in message and message.startswith(f"{op}: model '{name}' is not allowed on this server: choose one of "), message
    assert hub == []  # no connection attempted
    assert not (tmp_path / "o").exists()  # refused before the input was read


def test_the_refusal_names_the_catalog_models_of_the_operation_and_the_allowlist(tmp_path):
    client = Client(cache_dir=tmp_path / "c", output_dir=tmp_path / "o", allow_any_model=False, allowed_models=["Systran/faster-whisper-small"])
    with pytest.raises(UsageError) as err:
        client.request("transcription:model=org/name")
    message = str(err.value)
    assert "choose one of tiny.en, tiny, base.en, base," in message and "large (= large-v3)" in message
    assert message.endswith(", Systran/faster-whisper-small")
    with pytest.raises(
        UsageError, match=r"objects: model 'yolox-x\.onnx' is not allowed on this server: choose one of yolox-nano, yolox-tiny, yolox-s, yolox-m"
    ):
        client.request("objects:model=yolox-x.onnx")


SPELLINGS = [
    "transcription",  # the default
    "transcription:model=Large",
    "transcription:model=TINY.EN",
    "text_embeddings:model=all-minilm-l6-v2",
    "text_embeddings:model=sentence-transformers/all-MiniLM-L6-v2",
    "vision_embeddings:model=openai/clip-vit-base-patch32",
    "vision_embeddings:model=clip-vit-base-patch32",
    "audio_embeddings:model=laion/CLAP-htsat-fused",
    "objects:model=YOLOX-Nano",
    "faces:model=yunet",
]


@pytest.mark.parametrize("op", SPELLINGS)
def test_a_strict_client_accepts_catalog_names_and_aliases_in_any_case(op, tmp_path):
    client = Client(cache_dir=tmp_path / "c", output_dir=tmp_path / "o", allow_any_model=False)
    assert client.request(op)[0].operation == parse_op(op)


def test_an_allowlisted_path_runs_and_a_permissive_client_takes_any(still_png, tiny_clip_dir, tmp_path):
    op = f"vision_embeddings:model={tiny_clip_dir}"
    strict = Client(cache_dir=tmp_path / "c", output_dir=tmp_path / "o", allow_any_model=False, allowed_models=[str(tiny_clip_dir)])
    assert strict.run(still_png, op).vision_embeddings.dim == 16  # the tiny test CLIP's width
    assert Client(cache_dir=tmp_path / "c", output_dir=tmp_path / "o2").run(still_png, op).ok


def test_a_strict_store_reads_a_catalog_name_from_the_catalog_never_as_a_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "all-MiniLM-L6-v2").mkdir()  # a folder that happens to bear the name
    assert ModelStore(allow_any_model=True).checkpoint("all-MiniLM-L6-v2") == tmp_path / "all-MiniLM-L6-v2"
    shipped = ModelStore(allow_any_model=False).checkpoint("all-MiniLM-L6-v2")
    assert shipped != tmp_path / "all-MiniLM-L6-v2" and (shipped / "config.json").exists()
    with pytest.raises(UsageError, match="is not allowed on this server"):
        ModelStore(allow_any_model=False).checkpoint(str(tmp_path / "all-MiniLM-L6-v2"))


def test_planning_checks_the_policy_too_pinned_sources_included(scene_clip, tmp_path):
    """What reaches the planner without ``Client.request`` (a bulk worker's request) is checked there."""
    runtime = Runtime(cache_dir=tmp_path / "c", allow_any_model=False)
    nested = {"operation": "text_embeddings", "sources": [{"operation": "transcription", "params": {"model": "someone/whisper"}}]}
    for spec in (nested, "vision_embeddings:model=/etc"):
        from video_extract.spec import OutputSpec

        with pytest.raises(UsageError, match="is not allowed on this server"):
            prepare(runtime, scene_clip.path, [OutputSpec.of(spec)], tmp_path / "o")


def test_bulk_workers_get_the_clients_policy(still_png, tmp_path):
    client = Client(cache_dir=tmp_path / "c", output_dir=tmp_path / "o", allow_any_model=False, allowed_models=["org/mine"], model_memory_budget="3G")
    settings = client._bulk_engine("local", 1, None).settings
    assert (settings.allow_any_model, settings.allowed_models, settings.model_memory_budget) == (False, ("org/mine",), "3G")
    with pytest.raises(UsageError, match="is not allowed on this server"):
        client.execute_bulk([still_png], "vision_embeddings:model=org/theirs")
    # The worker itself refuses too, from its settings alone.
    worker = FileWorker(Settings(use_cache=False, allow_any_model=False))
    row = worker.process(str(still_png), [{"operation": "vision_embeddings", "params": {"model": "org/theirs"}}], str(tmp_path / "w"), [])
    assert row.status == "failed" and "model 'org/theirs' is not allowed on this server" in row.error


# -- offline means no network, for every family ----------------------------------------------------

OFFLINE = [
    ("transcription:model=Systran/faster-distil-whisper-large-v3", "tone_mp3"),
    ("text_embeddings:model=sentence-transformers/all-mpnet-base-v2,source=ocr", "still_png"),
    ("vision_embeddings:model=openai/clip-vit-large-patch14", "still_png"),
    ("audio_embeddings:model=laion/larger_clap_general", "tone_mp3"),
    ("transcription:model=base", "tone_mp3"),  # a catalog model fetched by faster-whisper
    ("vision_embeddings", "still_png"),  # a catalog model fetched from the Hub
]


@pytest.mark.parametrize(("op", "media_fixture"), OFFLINE, ids=[o[0].split(":")[0] + ":" + o[0].split("=")[-1] for o in OFFLINE])
def test_offline_a_model_not_on_disk_fails_fast_without_a_connection(op, media_fixture, hub, monkeypatch, tmp_path, request):
    monkeypatch.setenv("VIDEO_EXTRACT_OFFLINE", "1")
    media = _media(request, media_fixture)
    client = Client(cache_dir=tmp_path / "c", output_dir=tmp_path / "o", use_cache=False)  # permissive
    name = op.split(":")[0]
    started = time.perf_counter()
    result = client.run(media, op)
    assert time.perf_counter() - started < 10.0
    assert "offline" in result.errors[name] or "downloads are off" in result.errors[name], result.errors
    assert hub == []


def test_a_model_name_too_long_for_a_path_is_an_unknown_model_not_a_crash(still_png, tmp_path):
    client = Client(cache_dir=tmp_path / "c", output_dir=tmp_path / "o")  # permissive: the name is looked up on disk
    for name in ("a" * 300, "~nobody-here/model"):
        with pytest.raises(UsageError) as err:
            client.run(still_png, f"text_embeddings:model={name}")
        assert str(err.value).startswith("text_embeddings: unknown model '") and len(str(err.value)) < 400
