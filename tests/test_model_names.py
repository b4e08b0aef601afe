"""Model and language names as users type them, and models that cannot be had failing fast.

Network-free: the Hugging Face Hub (``HF_ENDPOINT``) and the model mirror
(``VIDEO_EXTRACT_MODEL_MIRROR``) point at a closed local port, or at a local server that
counts the connections it gets.
"""

from __future__ import annotations

import json
import socket
import threading
import time

import numpy as np
import pytest

from video_extract.errors import ModelError, UsageError
from video_extract.models import ModelStore
from video_extract.models.catalog import check_name, resolve
from video_extract.models.download import unreachable
from video_extract.spec import parse_op

from .conftest import SHARED_MODELS, needs_shared_models, run_cli


def _closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def nowhere(tmp_path):
    """Environment in which no model is on disk and every download server refuses connections."""
    url = f"http://127.0.0.1:{_closed_port()}"
    return {
        "HF_ENDPOINT": url,
        "VIDEO_EXTRACT_MODEL_MIRROR": url,
        "VIDEO_EXTRACT_MODEL_CACHE": str(tmp_path / "model-cache"),
        "HF_HOME": str(tmp_path / "hf-home"),
        "VIDEO_EXTRACT_MODELS": "",
        "VIDEO_EXTRACT_OFFLINE": "",
    }


# -- names ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "canonical"),
    [
        ("all-minilm-l6-v2", "all-MiniLM-L6-v2"),
        ("sentence-transformers/all-minilm-l6-v2", "all-MiniLM-L6-v2"),
        ("large", "whisper-large-v3"),
        ("Large", "whisper-large-v3"),
        ("turbo", "whisper-large-v3-turbo"),
        ("TINY.EN", "whisper-tiny.en"),
        ("YOLOX-Nano", "yolox-nano"),
        ("YuNet", "yunet"),
        ("OpenAI/CLIP-ViT-Base-Patch32", "clip-vit-base-patch32"),
        ("laion/CLAP-htsat-fused", "clap-htsat-fused"),
        ("PP-OCRv4", "ppocr-v4"),
    ],
)
def test_design_spellings_name_catalog_models(typed, canonical):
    assert resolve(typed).name == canonical
    assert ModelStore().spec(typed).name == canonical


def test_a_name_of_another_family_or_unknown_is_refused_with_the_known_names():
    with pytest.raises(UsageError, match=r"unknown model 'larg'.*did you mean 'large'.*large \(= large-v3\)"):
        check_name("transcription", "larg", "whisper", other="a local directory")
    with pytest.raises(UsageError, match="'yolox-nano' is a yolox model.*known models: all-MiniLM-L6-v2"):
        check_name("text_embeddings", "yolox-nano", "sentence-transformers", hub_ids=True, other="a Hub id")
    check_name("text_embeddings", "sentence-transformers/all-mpnet-base-v2", "sentence-transformers", hub_ids=True, other="a Hub id")


@pytest.mark.parametrize(
    ("op", "message"),
    [
        ("transcription:model=huge", "known models: tiny.en, tiny,"),
        ("text_embeddings:model=minilm", "known models: all-MiniLM-L6-v2"),
        ("vision_embeddings:model=clip", "known models: clip-vit-base-patch32"),
        ("audio_embeddings:model=clap", "known models: clap-htsat-fused"),
        ("objects:model=yolo", "known models: yolox-nano, yolox-tiny"),
        ("faces:model=retinaface", "known models: yunet"),
        ("ocr:languages=fr", "supported: en (english, eng); zh (ch, chinese"),
    ],
)
def test_a_bad_name_is_refused_when_planned_before_any_decoding(op, message, scene_clip, tmp_path):
    proc = run_cli("debug", str(scene_clip.path), "--op", op, "-o", str(tmp_path / "o"), "--no-cache")
    assert proc.returncode == 2, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], proc.stderr
    assert not (tmp_path / "o" / "scenes" / "metadata.json").exists()  # refused before any stage ran


def test_ocr_takes_zh_for_chinese_in_any_spelling(still_png, tmp_path):
    from video_extract import Client

    client = Client(cache_dir=tmp_path / "c", output_dir=tmp_path / "o")
    for spelling in ("zh", "ch", "Chinese", "ZH-CN"):
        assert client.run(still_png, [f"ocr:languages={spelling}+EN"]).ocr.languages == ["en", "zh"]
    assert parse_op("ocr:languages=zh").languages == ["zh"]


def test_design_spelling_of_the_shipped_text_model_runs_without_the_network(still_png, tmp_path, counting_server):
    url, seen = counting_server
    proc = run_cli(
        "debug",
        str(still_png),
        "--op",
        "text_embeddings:model=all-minilm-l6-v2,source=ocr",
        "-o",
        str(tmp_path / "o"),
        "--no-cache",
        env={"HF_ENDPOINT": url, "VIDEO_EXTRACT_MODEL_MIRROR": url, "HF_HOME": str(tmp_path / "hf")},
    )
    assert proc.returncode == 0, proc.stderr
    assert np.load(tmp_path / "o" / "still" / "embeddings" / "text.npy").shape[1] == 384  # MiniLM's width
    assert seen == []  # on disk: the Hub was never asked


@needs_shared_models
def test_design_spelling_of_a_detector_runs(still_png, tmp_path):
    proc = run_cli(
        "debug", str(still_png), "--op", "objects:model=YOLOX-Nano", "--op", "faces:model=YuNet", "-o", str(tmp_path / "o"), "--models-dir", str(SHARED_MODELS)
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "o" / "still" / "objects.json").read_text())["model"] == "YOLOX-Nano"


# -- missing models fail fast, in one line --------------------------------------------------------

FAMILIES = [
    # (op, media fixture, the model named in the error)
    ("vision_embeddings", "still_png", "clip-vit-base-patch32"),
    ("audio_embeddings", "tone_mp3", "clap-htsat-fused"),
    ("text_embeddings:model=sentence-transformers/all-mpnet-base-v2,source=ocr", "still_png", "sentence-transformers/all-mpnet-base-v2"),
    ("transcription:model=base", "tone_mp3", "whisper-base"),
    ("objects:model=yolox-tiny", "still_png", "yolox-tiny"),
    ("faces", "still_png", "yunet"),
]


@pytest.mark.parametrize(("op", "media_fixture", "model"), FAMILIES, ids=[f[2] for f in FAMILIES])
def test_a_model_not_on_disk_that_cannot_be_fetched_fails_fast_in_one_line(op, media_fixture, model, nowhere, tmp_path, request):
    media = request.getfixturevalue(media_fixture)
    path = getattr(media, "path", media)
    proc = run_cli("debug", str(path), "--op", op, "-o", str(tmp_path / "o"), "--no-cache", env=nowhere, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    assert f"model '{model}' is not on disk and could not be downloaded" in errors[0] and "(connection refused)" in errors[0], errors[0]
    summary = json.loads((tmp_path / "o" / path.stem / "summary.json").read_text())
    failed = [s for s in summary["stages"] if s["status"] == "failed"]
    assert len(failed) == 1 and failed[0]["seconds"] < 2.0, failed


def test_a_hub_id_offline_fails_in_one_line(still_png, nowhere, tmp_path):
    env = {**nowhere, "VIDEO_EXTRACT_OFFLINE": "1"}
    proc = run_cli("debug", str(still_png), "--op", "vision_embeddings:model=openai/clip-vit-large-patch14", "-o", str(tmp_path / "o"), env=env)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 1 and len(errors) == 1 and "'openai/clip-vit-large-patch14' is not in the Hugging Face cache and downloads are off" in errors[0]


def test_a_hub_id_the_hub_does_not_know_fails_in_one_line(tmp_path, monkeypatch):
    import http.server

    from huggingface_hub import constants

    class NotFound(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's naming
            self.send_error(404, "Repository not found")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NotFound)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{server.server_address[1]}")
        monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
        with pytest.raises(ModelError) as err:
            ModelStore(cache_dir=tmp_path / "m").checkpoint("nobody/nothing")
    finally:
        server.shutdown()
    message = str(err.value)
    assert "\n" not in message and message.startswith("model 'nobody/nothing' is not on disk and could not be downloaded from http://127.0.0.1:")
    assert "HTTP 404, no such public repository" in message


def test_unreachable_names_the_cause_quickly():
    assert unreachable(f"http://127.0.0.1:{_closed_port()}") == "connection refused"
    assert unreachable("https://no-such-host.invalid/model.onnx") == "host name not found"
    # A server whose accept queue is full drops new connections, like a firewall: the probe gives up.
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    fillers = []
    try:
        for _ in range(4):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(server.getsockname())
            fillers.append(s)
        time.sleep(0.2)
        start = time.monotonic()
        cause = unreachable(f"http://127.0.0.1:{server.getsockname()[1]}", timeout=0.5)
        assert cause == "no answer within 0.5 s" and time.monotonic() - start < 1.5
    finally:
        for s in fillers:
            s.close()
        server.close()


def test_names_resolve_as_the_catalog_says_when_entries_are_added_or_replaced(monkeypatch):
    """``resolve`` looks names up in an index of the catalog: an entry added later (a plugin's)
    or replaced under the same key is what it returns, never a stale one."""
    from dataclasses import replace

    from video_extract.models import catalog

    assert resolve("  YOLOX-Nano ").name == "yolox-nano"
    assert resolve("no-such-model") is None
    added = catalog.ModelSpec(name="tiny-added", kind="onnx", description="", license="MIT", aliases=("Tiny/Alias",))
    monkeypatch.setitem(catalog.CATALOG, "tiny-added", added)
    assert resolve("tiny/alias") is added
    original = catalog.CATALOG["yolox-nano"]
    renamed = replace(original, aliases=("nano-renamed",))
    monkeypatch.setitem(catalog.CATALOG, "yolox-nano", renamed)
    assert resolve("nano-renamed") is renamed and resolve("yolox-nano") is renamed
    monkeypatch.setitem(catalog.CATALOG, "yolox-nano", original)  # the same size: the index is not rebuilt
    assert resolve("nano-renamed") is None and resolve("yolox-nano") is original
