"""The model store: resolution order, downloads against a local HTTP server, checksums, CLI."""

from __future__ import annotations

import hashlib
import http.server
import threading

import pytest

from video_extract.errors import ModelError
from video_extract.models import ModelStore
from video_extract.models.catalog import CATALOG, ModelFile, ModelSpec

from .conftest import SHARED_MODELS, run_cli

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB of known bytes
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


class _RangeHandler(http.server.BaseHTTPRequestHandler):
    """Serves PAYLOAD at /model.onnx, honouring Range, and counts what it was asked."""

    requests: list[dict] = []
    fail_after: int | None = None  # bytes after which a full response is cut short

    def do_GET(self):  # noqa: N802 - http.server's naming
        type(self).requests.append({"path": self.path, "range": self.headers.get("Range")})
        if self.path not in ("/model.onnx", "/corrupt.onnx"):
            self.send_error(404, "no such model")
            return
        body = PAYLOAD if self.path == "/model.onnx" else PAYLOAD[:-1] + b"X"
        start = 0
        if self.headers.get("Range"):
            start = int(self.headers["Range"].split("=")[1].split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        chunk = body[start:]
        self.send_header("Content-Length", str(len(chunk)))
        self.end_headers()
        if type(self).fail_after is not None and not self.headers.get("Range"):
            self.wfile.write(chunk[: type(self).fail_after])
            self.wfile.flush()
            self.connection.shutdown(2)
            return
        self.wfile.write(chunk)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    _RangeHandler.requests = []
    _RangeHandler.fail_after = None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _RangeHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", _RangeHandler
    httpd.shutdown()


def _catalog(url: str, sha: str | None = PAYLOAD_SHA, name: str = "model.onnx") -> dict[str, ModelSpec]:
    return {"tiny-test": ModelSpec(name="tiny-test", kind="onnx", description="test", license="MIT", files=(ModelFile(name, f"{url}/{name}", sha),))}


def test_download_verifies_and_lands_atomically(server, tmp_path):
    url, handler = server
    store = ModelStore(cache_dir=tmp_path, catalog=_catalog(url))
    path = store.path("tiny-test")
    assert path == tmp_path / "tiny-test" / "model.onnx" and path.read_bytes() == PAYLOAD
    assert not list(path.parent.glob("*.part"))
    assert store.locate("tiny-test").source == "cache"
    store.path("tiny-test")
    assert len(handler.requests) == 1  # found in the cache the second time


def test_interrupted_download_resumes_with_range(server, tmp_path):
    url, handler = server
    handler.fail_after = 300_000
    store = ModelStore(cache_dir=tmp_path, catalog=_catalog(url))
    with pytest.raises(ModelError):
        store.path("tiny-test")
    part = tmp_path / "tiny-test" / "model.onnx.part"
    assert 0 < part.stat().st_size < len(PAYLOAD)
    assert not (tmp_path / "tiny-test" / "model.onnx").exists()
    kept = part.stat().st_size
    handler.fail_after = None
    path = store.path("tiny-test")
    assert path.read_bytes() == PAYLOAD
    assert handler.requests[-1]["range"] == f"bytes={kept}-"  # only the missing tail was asked for


def test_checksum_mismatch_leaves_no_file(server, tmp_path):
    url, _ = server
    store = ModelStore(cache_dir=tmp_path, catalog=_catalog(url, name="corrupt.onnx"))
    with pytest.raises(ModelError, match="checksum mismatch"):
        store.path("tiny-test")
    assert not list((tmp_path / "tiny-test").glob("corrupt.onnx*[!k]"))  # neither the file nor its .part


def test_missing_url_and_offline_are_clear(server, tmp_path):
    url, _ = server
    store = ModelStore(cache_dir=tmp_path, catalog=_catalog(url, name="nothere.onnx"))
    with pytest.raises(ModelError, match="HTTP 404"):
        store.path("tiny-test")
    offline = ModelStore(cache_dir=tmp_path, catalog=_catalog(url), allow_download=False)
    with pytest.raises(ModelError, match="not available offline; put model.onnx in a models directory"):
        offline.path("tiny-test")


def test_unpinned_files_need_explicit_permission(server, tmp_path):
    url, _ = server
    with pytest.raises(ModelError, match="no pinned checksum"):
        ModelStore(cache_dir=tmp_path, catalog=_catalog(url, sha=None)).path("tiny-test")
    assert ModelStore(cache_dir=tmp_path, catalog=_catalog(url, sha=None), allow_unpinned=True).path("tiny-test").exists()


def test_models_dir_wins_over_package_and_cache(tmp_path):
    (tmp_path / "silero_vad_v6.onnx").write_bytes(b"local copy")
    store = ModelStore(models_dir=tmp_path)
    assert store.locate("silero-vad-v6").source == "models-dir"
    assert ModelStore().locate("silero-vad-v6").source == "package"
    assert ModelStore().locate("whisper-tiny.en").path.joinpath("model.bin").exists()


def test_unknown_model_lists_known_names():
    with pytest.raises(ModelError) as err:
        ModelStore().spec("yolox-huge")
    assert "did you mean" in str(err.value) and "yolox-nano" in str(err.value) and "whisper-tiny.en" in str(err.value)


def test_loaded_models_are_kept_per_process():
    calls = []
    store_a, store_b = ModelStore(), ModelStore()
    first = store_a.load(("unit-test-model", 1), lambda: calls.append(1) or object())
    second = store_b.load(("unit-test-model", 1), lambda: calls.append(1) or object())
    assert first is second and calls == [1]


@pytest.mark.skipif(not SHARED_MODELS.exists(), reason="../shared/models (offline copies of YOLOX-Nano and YuNet) is not on this machine")
def test_shared_model_files_match_their_pinned_checksums():
    store = ModelStore(models_dir=SHARED_MODELS)
    for name in ("yolox-nano", "yunet"):
        ok, detail = store.verify(name)
        assert ok and "sha256 ok" in detail, detail
    assert CATALOG["yolox-nano"].files[0].sha256 == "e8af074932d4ed7e232278e3055cefcdea3edf178874a3694ae292649fb464dd"


def test_models_cli_lists_and_explains_failures(tmp_path):
    listing = run_cli("models", "list")
    assert listing.returncode == 0 and "whisper-tiny.en" in listing.stdout and "package:" in listing.stdout
    bad = run_cli("models", "fetch", "yolox-huge")
    assert bad.returncode == 1 and "unknown model 'yolox-huge'" in bad.stderr and "Traceback" not in bad.stderr
    offline = run_cli("models", "fetch", "yolox-tiny", env={"VIDEO_EXTRACT_OFFLINE": "1", "VIDEO_EXTRACT_MODEL_CACHE": str(tmp_path)})
    assert offline.returncode == 1 and "put yolox_tiny.onnx in a models directory" in offline.stderr


@pytest.mark.skipif(not SHARED_MODELS.exists(), reason="../shared/models (offline copies of YOLOX-Nano and YuNet) is not on this machine")
def test_models_fetch_leaves_the_first_run_nothing_to_prepare(tmp_path):
    """After ``models fetch``, the optimized ONNX Runtime graphs a first run would make are in
    the model cache, and Whisper's weights in int8."""
    env = {"VIDEO_EXTRACT_MODEL_CACHE": str(tmp_path / "cache")}
    fetched = run_cli("models", "fetch", "yolox-nano", "yunet", "ppocr-v4", "whisper-tiny.en", "--models-dir", str(SHARED_MODELS), env=env)
    assert fetched.returncode == 0, fetched.stderr
    lines = dict(line.split(": ", 1) for line in fetched.stdout.splitlines())
    assert lines["yolox-nano"].endswith("(ready: ONNX Runtime graph optimized for this CPU)")
    assert lines["yunet"].endswith("(ready: ONNX Runtime graph optimized for this CPU)")
    assert lines["ppocr-v4"].endswith("(ready: ONNX Runtime graphs optimized for this CPU)")
    assert lines["whisper-tiny.en"].endswith("(ready: weights quantized to int8 once)")
    assert len(list((tmp_path / "cache" / "ct2").glob("*.ct2"))) == 1
    kept = sorted(p.name.rsplit("-", 1)[0] for p in (tmp_path / "cache" / "ort").glob("*.onnx"))
    assert kept == ["ch_PP-OCRv4_det_infer", "ch_PP-OCRv4_rec_infer", "ch_ppocr_mobile_v2.0_cls_infer", "face_detection_yunet_2026may", "yolox_nano"]
    before = sorted((tmp_path / "cache" / "ort").iterdir())
    picture = tmp_path / "card.png"
    from PIL import Image

    Image.new("RGB", (320, 240), (200, 120, 40)).save(picture)
    run = run_cli("debug", str(picture), "--ops", "objects,faces,ocr", "-o", str(tmp_path / "out"), "--models-dir", str(SHARED_MODELS), env=env)
    assert run.returncode == 0, run.stderr
    assert sorted((tmp_path / "cache" / "ort").iterdir()) == before  # the run used what fetch made


@pytest.mark.skipif(not SHARED_MODELS.exists(), reason="../shared/models (offline copies of YOLOX-Nano and YuNet) is not on this machine")
def test_a_damaged_model_file_is_named_with_what_is_wrong(tmp_path, scene_clip):
    """A model file cut short (a copy that stopped) failed with ONNX Runtime's own line,
    "InvalidProtobuf: [ONNXRuntimeError] : 7 : INVALID_PROTOBUF : …"."""
    models = tmp_path / "models"
    models.mkdir()
    (models / "yolox_nano.onnx").write_bytes((SHARED_MODELS / "yolox_nano.onnx").read_bytes()[:100_000])
    env = {"VIDEO_EXTRACT_OFFLINE": "1", "VIDEO_EXTRACT_MODEL_CACHE": str(tmp_path / "m")}
    proc = run_cli("debug", str(scene_clip.path), "--ops", "objects", "-o", str(tmp_path / "o"), "--models-dir", str(models), "--no-cache", "-q", env=env)
    damaged = models / "yolox_nano.onnx"
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.strip() == (
        f"error: {scene_clip.path}: objects: cannot load the model file {damaged} (Protobuf parsing failed): is it whole, and an ONNX model?"
    )
