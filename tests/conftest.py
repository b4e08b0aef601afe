"""Shared fixtures: media generated once per session with PyAV (see video_extract.testing.media)."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from video_extract.testing import media

SHARED_MODELS = Path(__file__).resolve().parents[1].parent / "shared" / "models"


@pytest.fixture(scope="session", autouse=True)
def own_caches(tmp_path_factory):
    """The result cache and the model cache (ONNX exports, optimized graphs) of this session's
    own, for the CLI processes the tests start too: not the user's. Tests that put models at
    paths of their own left an export and graphs per path there, every run (4.5 GB found in a
    developer's cache), and a copy made by an earlier run could pass a test that a fresh
    machine fails. A test that sets either variable itself still has its way."""
    folder = tmp_path_factory.mktemp("caches")
    saved = {key: os.environ.get(key) for key in ("VIDEO_EXTRACT_CACHE", "VIDEO_EXTRACT_MODEL_CACHE")}
    os.environ["VIDEO_EXTRACT_CACHE"] = str(folder / "results")
    os.environ["VIDEO_EXTRACT_MODEL_CACHE"] = str(folder / "models")
    yield folder
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def scene_clip(media_dir) -> media.ClipFacts:
    """90 frames at 30 fps, hard cuts at frames 30 and 60, a 440 Hz stereo AAC track."""
    return media.scene_clip(media_dir / "scenes.mp4", cuts=(30, 60), frames=90, tone_hz=440.0)


@pytest.fixture(scope="session")
def gop_clip(media_dir) -> media.ClipFacts:
    """100 frames with a keyframe forced every 25 frames (and no others)."""
    return media.scene_clip(media_dir / "gop.mp4", cuts=(), frames=100, gop=25)


@pytest.fixture(scope="session")
def tone_mp3(media_dir) -> media.ClipFacts:
    return media.tone_file(media_dir / "tone.mp3", freq=440.0, seconds=2.0)


@pytest.fixture(scope="session")
def rotated_clip(media_dir) -> media.ClipFacts:
    return media.rotated_clip(media_dir / "rotated.mp4", rotation=90)


@pytest.fixture(scope="session")
def vfr_clip(media_dir) -> media.ClipFacts:
    return media.vfr_clip(media_dir / "vfr.mp4", [0.0, 0.033, 0.066, 0.15, 0.2, 0.4, 0.433, 0.9, 1.0, 1.5])


@pytest.fixture(scope="session")
def still_png(media_dir) -> Path:
    return media.still_image(media_dir / "still.png", width=64, height=48)


@pytest.fixture
def cache_dir(tmp_path) -> Path:
    return tmp_path / "cache"


@pytest.fixture
def out_dir(tmp_path) -> Path:
    return tmp_path / "out"


@pytest.fixture
def made_temp_dirs(tmp_path, monkeypatch) -> list[str]:
    """Every folder ``tempfile.mkdtemp`` makes during the test (in a temp dir of the test's own)."""
    import tempfile

    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    made: list[str] = []
    real = tempfile.mkdtemp

    def mkdtemp(*args, **kwargs):
        made.append(real(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(tempfile, "mkdtemp", mkdtemp)
    return made


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """The real command, as a user runs it (a fresh process: exit status, stdout, stderr)."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "video_extract.cli", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


needs_espeak = pytest.mark.skipif(not __import__("shutil").which("espeak-ng"), reason="espeak-ng is not installed (make install puts it there)")

SENTENCES = ["Please open the window and turn on the light.", "My favourite colour is green and I like music."]


@pytest.fixture(scope="session")
def speech_clip(media_dir):
    """A video whose audio track speaks SENTENCES (espeak-ng), 0.6 s of silence around and between them."""
    import numpy as np

    from video_extract.testing.speech import silence, speak

    if not __import__("shutil").which("espeak-ng"):
        pytest.skip("espeak-ng is not installed (make install puts it there)")
    parts, truth = [silence(0.6)], []
    t = 0.6
    for sentence in SENTENCES:
        voice = speak(sentence, speed=140, trim=True)
        truth.append((t, t + len(voice) / 16000))
        parts += [voice, silence(0.8)]
        t += len(voice) / 16000 + 0.8
    audio = np.concatenate(parts)
    path = media_dir / "speech.mp4"
    media.slideshow_clip(path, [media.text_image(["speech"], 320, 240)], seconds_each=len(audio) / 16000, fps=10, width=320, height=240, audio=audio)
    return path, truth, len(audio) / 16000


from video_extract.testing.speech import DIALOGUE  # noqa: E402


@pytest.fixture(scope="session")
def dialogue_clip(media_dir):
    """Two espeak-ng voices (a male and a female variant) taking turns, with pauses of 0.4-0.9 s."""
    from video_extract.testing.speech import conversation

    if not __import__("shutil").which("espeak-ng"):
        pytest.skip("espeak-ng is not installed (make install puts it there)")
    audio, truth = conversation(DIALOGUE, pauses=[0.6, 0.4, 0.9, 0.5, 0.7])
    path = media_dir / "dialogue.mp4"
    media.slideshow_clip(path, [media.text_image(["two voices"], 320, 240)], seconds_each=len(audio) / 16000, fps=10, width=320, height=240, audio=audio)
    return path, truth


needs_shared_models = pytest.mark.skipif(
    not (SHARED_MODELS / "yolox_nano.onnx").exists() or not (SHARED_MODELS / "face_detection_yunet_2026may.onnx").exists(),
    reason="../shared/models (YOLOX-Nano and YuNet ONNX files) is not on this machine; users get them with `video-extract models fetch`",
)

VISION_TEXT = ["The quick brown fox jumps", "OCR reads this line"]


@pytest.fixture(scope="session")
def vision_clip(media_dir):
    """2 s each at 10 fps, 640x360, no motion: astronaut (person + face), chelsea (cat), coffee (cup), a text card."""
    from skimage import data

    images = [data.astronaut(), data.chelsea(), data.coffee(), media.text_image(VISION_TEXT, 640, 360, size=36)]
    return media.slideshow_clip(media_dir / "vision.mp4", images, seconds_each=2.0, fps=10, width=640, height=360, motion=False)


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory):
    from video_extract.testing.tiny_clip import build_tiny_clip

    return build_tiny_clip(tmp_path_factory.mktemp("tiny-clip"))


NAP_MODULE = '''
"""Test plugin: waits, or (by input file name) hangs or kills its own process."""
import logging
import os
import socket
import time
from pathlib import Path
from typing import ClassVar

from video_extract.plugins.base import Plugin
from video_extract.results import Output
from video_extract.spec import Operation


class NapResult(Output):
    type_name: ClassVar[str] = "Nap"
    files: ClassVar[tuple[str, ...]] = ("nap.txt",)

    pid: int


class Nap2Result(Output):
    type_name: ClassVar[str] = "Nap2"
    files: ClassVar[tuple[str, ...]] = ("nap2.txt",)


class Nap(Operation):
    name: ClassVar[str] = "nap"
    seconds: float = 0.5
    tag: str = "a"


class Nap2(Operation):
    name: ClassVar[str] = "nap2"
    seconds: float = 0.5


class NapPlugin(Plugin):
    manifest_path = Path(__file__).with_name("nap.yaml")

    def run(self, ctx, inputs, params):
        name = Path(ctx.source.path).name
        if "hang" in name:
            time.sleep(3600)
        if "crash" in name:
            os._exit(3)
        time.sleep(params.seconds)
        ctx.path("nap.txt").write_text(f"{os.getpid()}")
        ctx.write(NapResult(pid=os.getpid()))


class Nap2Plugin(NapPlugin):
    manifest_path = Path(__file__).with_name("nap2.yaml")

    def run(self, ctx, inputs, params):
        time.sleep(params.seconds)
        ctx.path("nap2.txt").write_text("done")
        ctx.write(Nap2Result())
'''


def install_nap_plugin(site: Path) -> Path:
    """A distribution on ``site`` whose entry points register the ``nap`` and ``nap2`` test plugins."""
    site.mkdir(parents=True, exist_ok=True)
    (site / "nap_plugin.py").write_text(NAP_MODULE)
    for name, cls, out in (("nap", "NapPlugin", "Nap"), ("nap2", "Nap2Plugin", "Nap2")):
        (site / f"{name}.yaml").write_text(f'name: {name}\nversion: "1"\noperation: {name}\nplugin: nap_plugin:{cls}\ninputs:\n  - type: File\noutput: {out}\n')
    dist = site / "nap_plugin-0.1.dist-info"
    dist.mkdir(exist_ok=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: nap-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[video_extract.plugins]\nnap = nap_plugin:NapPlugin\nnap2 = nap_plugin:Nap2Plugin\n")
    return site


LOUDNESS_MODULE = '''
"""A plugin living outside video-extract: mean loudness of the 16 kHz mono audio.

Everything a new output needs, in one module and its manifest: the operation (parameters),
the output type (its record and files), and the plugin.
"""
from pathlib import Path
from typing import ClassVar

import numpy as np

from video_extract.media import read_wav
from video_extract.plugins.base import Plugin
from video_extract.results import AudioResult, Output
from video_extract.spec import Operation


class Loudness(Operation):
    name: ClassVar[str] = "loudness"
    summary: ClassVar[str] = "RMS level in dBFS."
    floor_db: float = -90.0
    sloppy: str = "no"  # "dict" or "record": write a field the record does not declare (the contract test)


class LoudnessResult(Output):
    type_name: ClassVar[str] = "Loudness"
    files: ClassVar[tuple[str, ...]] = ("loudness.json",)
    record_file: ClassVar[str] = "loudness.json"

    dbfs: float


class LoudnessPlugin(Plugin):
    manifest_path = Path(__file__).with_name("loudness.yaml")

    def run(self, ctx, inputs, params):
        audio = read_wav(inputs[AudioResult].path)
        rms = float(np.sqrt(np.mean(audio.samples ** 2)))
        db = max(params.floor_db, 20 * np.log10(max(rms, 1e-12)))
        if params.sloppy == "record":
            ctx.write(LoudnessResult(dbfs=round(db, 2), peak=1.0))
        ctx.write({"dbfs": round(db, 2), **({"peak": 1.0} if params.sloppy == "dict" else {})})
'''

LOUDNESS_MANIFEST = """
name: loudness
version: "1"
operation: loudness
plugin: loudness_plugin:LoudnessPlugin
inputs:
  - type: Audio
    params: {sample_rate: 16000, channels: 1}
output: Loudness
"""


def install_loudness_plugin(site: Path) -> Path:
    """A distribution on ``site`` whose entry point registers the third-party ``loudness`` operation."""
    site.mkdir(parents=True, exist_ok=True)
    (site / "loudness_plugin.py").write_text(LOUDNESS_MODULE)
    (site / "loudness.yaml").write_text(LOUDNESS_MANIFEST)
    dist = site / "loudness_plugin-0.1.dist-info"
    dist.mkdir(exist_ok=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: loudness-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[video_extract.plugins]\nloudness = loudness_plugin:LoudnessPlugin\n")
    return site


@pytest.fixture(scope="session")
def tiny_clap_dir(tmp_path_factory):
    from video_extract.testing.tiny_clap import build_tiny_clap

    return build_tiny_clap(tmp_path_factory.mktemp("tiny-clap"))


# -- a local S3 server (moto) for the s3:// source tests -------------------------------------


@pytest.fixture(scope="module")
def moto_server():
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3(moto_server, monkeypatch, tmp_path):
    """A fresh bucket on the local S3 server; the endpoint comes from the environment, as an operator sets it."""
    import boto3

    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": moto_server,
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    client = boto3.client("s3", endpoint_url=moto_server)
    bucket = f"media-{os.getpid()}-{time.monotonic_ns()}"
    client.create_bucket(Bucket=bucket)
    return client, bucket, env


@pytest.fixture
def counting_server():
    """A local TCP server that counts connections (and answers nothing)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    seen = []

    def serve():
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            seen.append(1)
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}", seen
    server.close()


@pytest.fixture
def small_disk(tmp_path):
    """A folder on a filesystem of its own that holds ``size`` bytes (tmpfs): a real full disk.
    Skipped where this process may not mount one (not root, a container without the right)."""
    mounted: list[Path] = []

    def make(size: int) -> Path:
        folder = tmp_path / f"disk{len(mounted)}"
        folder.mkdir()
        if os.geteuid() != 0:
            pytest.skip("mounting a small tmpfs (a disk that fills up) needs root")
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.strip()}")
        mounted.append(folder)
        return folder

    yield make
    for folder in mounted:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)
