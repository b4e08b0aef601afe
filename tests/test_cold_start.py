"""A cold process pays only for what it uses: no heavy import on a path that does not need it,
MiniLM without sentence-transformers, and no torch at all for the default speech and text
models (ONNX Runtime runs their exports)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from video_extract.models import ModelStore

HEAVY = ("torch", "transformers", "sentence_transformers", "sklearn", "librosa", "numba", "onnxruntime", "faster_whisper", "aiohttp")


def _imported_after(code: str) -> list[str]:
    probe = f"import sys; {code}; print(sorted(m for m in {HEAVY!r} if m in sys.modules), file=sys.__stdout__)"
    return subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120).stdout.strip()


@pytest.mark.parametrize(
    "command",
    [
        ["ops"],
        ["ops", "--json"],
        ["debug", "{clip}", "--ops", "metadata", "-o", "{out}", "--no-cache", "-q"],
        ["plan", "{clip}", "--ops", "all", "-o", "{out}"],
    ],
)
def test_commands_that_load_no_model_import_no_heavy_library(command, scene_clip, tmp_path):
    argv = [a.format(clip=scene_clip.path, out=tmp_path / "o") for a in command]
    assert (
        _imported_after(f"from video_extract.cli import main; import contextlib, io; contextlib.redirect_stdout(io.StringIO()).__enter__(); main({argv!r})")
        == "[]"
    )


def test_a_command_that_logs_nothing_does_not_import_rich_and_one_that_logs_shows_it(scene_clip, tmp_path):
    """rich (~15 ms of a cold start) is imported for the first log record, not before."""
    run = "from video_extract.cli import main; import contextlib, io, sys; contextlib.redirect_stdout(io.StringIO()).__enter__(); main({argv!r}); print('rich' in sys.modules, file=sys.__stdout__)"
    quiet = ["perf", str(scene_clip.path), "--ops", "metadata", "-o", str(tmp_path / "o"), "--no-cache", "-q"]
    done = subprocess.run([sys.executable, "-c", run.format(argv=quiet)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "False", (done.stdout, done.stderr)
    chatty = ["debug", str(scene_clip.path), "--ops", "metadata", "-o", str(tmp_path / "o2"), "--no-cache"]  # logs each stage at INFO
    done = subprocess.run([sys.executable, "-c", run.format(argv=chatty)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "True", (done.stdout, done.stderr)
    assert "metadata" in done.stderr and "INFO" in done.stderr  # rich's level column, on stderr


def _exports_made() -> ModelStore:
    """The ONNX copies of MiniLM and the diarization networks in the model cache, as the first
    process to use them makes them (that one run imports torch to export)."""
    from video_extract.models.bert_sentences import BertSentenceEncoder
    from video_extract.speech import diarize

    store = ModelStore()
    assert BertSentenceEncoder(store.checkpoint("all-MiniLM-L6-v2"), store.cache_dir).runtime == "onnx"
    assert type(diarize.load_segmenter(str(store.path("pyannote-segmentation-3.0")), store.cache_dir).model).__name__ == "OnnxSegmentation"
    assert type(diarize.load_embedder(str(store.path("campplus-sv-zh-en")), store.cache_dir)).__name__ == "OnnxEmbedder"
    return store


def test_minilm_runs_without_torch_sentence_transformers_or_transformers():
    _exports_made()
    loaded = _imported_after(
        "from video_extract.models import ModelStore; from video_extract.plugins.text_embeddings import load_sentence_model;"
        "load_sentence_model(ModelStore(), 'all-MiniLM-L6-v2').encode(['a cat'])"
    )
    assert loaded == "['onnxruntime']"


def test_a_cold_run_with_speakers_and_text_embeddings_imports_no_torch(speech_clip, tmp_path):
    # torch's import alone was ~0.8 s of a cold run on 2 cores, and it held the GIL the stages
    # starting beside it needed; its networks now run on ONNX Runtime, exported once
    _exports_made()
    argv = ["perf", str(speech_clip[0]), "--ops", "vad,transcription,diarization,text_embeddings", "-o", str(tmp_path / "o"), "--no-cache", "-q"]
    loaded = _imported_after(
        f"from video_extract.cli import main; import contextlib, io; contextlib.redirect_stdout(io.StringIO()).__enter__(); main({argv!r})"
    )
    assert "torch" not in loaded and "faster_whisper" in loaded and "onnxruntime" in loaded, loaded
    assert (tmp_path / "o" / "speech" / "diarization.json").is_file() and (tmp_path / "o" / "speech" / "embeddings" / "text.npy").is_file()


def test_tracking_imports_no_scipy_and_what_norfair_took_from_it_still_answers():
    """A fresh process, as a cold CLI run is: norfair comes without scipy (its stats, linalg and
    spatial modules: ~0.65 s cold) or filterpy's Kalman filters; the names norfair took from
    them load the real modules when called, and filterpy's filters get their own logpdf."""
    code = """
import sys
import numpy as np
from video_extract.vision.tracks import import_norfair, track_detections
from video_extract.results import Detection, FrameDetections
box = Detection(label="cat", confidence=0.9, box=[10.0, 10.0, 50.0, 50.0])
tracks = track_detections([FrameDetections(frame=n, time=n / 2, detections=[box]) for n in range(3)], video_end=1.5)
assert len(tracks) == 1 and len(tracks[0].sightings) == 3, tracks
assert "norfair" in sys.modules and not [m for m in sys.modules if m.split(".")[0] == "scipy" or m.startswith("filterpy.kalman")]
import norfair.distances, norfair.filter
a, b = np.array([[0.0, 0.0], [3.0, 4.0]]), np.array([[0.0, 0.0]])
assert norfair.distances.cdist(a, b).tolist() == [[0.0], [5.0]] and "scipy.spatial.distance" in sys.modules
assert type(norfair.filter.KalmanFilter(dim_x=2, dim_z=1)).__module__ == "filterpy.kalman.kalman_filter"
from filterpy.kalman import kalman_filter
x, mean, cov = np.array([1.0, 2.0]), np.array([0.5, 1.0]), np.array([[2.0, 0.3], [0.3, 1.0]])
ours = kalman_filter.logpdf(x, mean, cov)
from scipy.stats import multivariate_normal
assert abs(ours - multivariate_normal.logpdf(x, mean, cov)) < 1e-12, ours
import filterpy.stats
assert filterpy.stats.logpdf(x, mean, cov) == ours and hasattr(filterpy.stats, "norm_cdf")
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_a_late_stages_model_loads_ahead_in_the_background_and_a_cached_run_loads_nothing(speech_clip, tmp_path):
    """MiniLM (text embeddings come after the transcript) is loaded by the preload thread while
    transcription runs, in a fresh process as a cold CLI run is; the same request again, all of
    it from the cache, starts no preload."""
    _exports_made()
    code = f"""
import threading
from video_extract import Client
from video_extract.models import bert_sentences
loaded, started = [], []
real_init, real_start = bert_sentences.BertSentenceEncoder.__init__, threading.Thread.start
def init(self, *args, **kwargs):
    loaded.append(threading.current_thread().name)
    real_init(self, *args, **kwargs)
def start(self):
    started.append(self.name)
    real_start(self)
bert_sentences.BertSentenceEncoder.__init__, threading.Thread.start = init, start
client = Client(cache_dir={str(tmp_path / "c")!r}, output_dir={str(tmp_path / "o")!r})
result = client.run({str(speech_clip[0])!r}, ["transcription", "text_embeddings"])
assert result.ok and result.text_embeddings.rows, result
first, started[:] = list(started), []
assert client.run({str(speech_clip[0])!r}, ["transcription", "text_embeddings"]).ok
print(loaded, "video-extract-preload" in first, "video-extract-preload" in started)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["['video-extract-preload']", "True", "False"], done.stdout


@pytest.mark.parametrize("runtime", ["onnx", "torch"])
def test_minilm_without_sentence_transformers_gives_its_vectors(runtime):
    """The swap is for speed only: the same vectors within 1e-5 (float32 rounding), for short,
    empty, truncated (over 256 tokens) and non-ASCII texts, in batches of any size, on ONNX
    Runtime (the default) and on the torch code it is exported from."""
    from sentence_transformers import SentenceTransformer

    from video_extract.models.bert_sentences import BertSentenceEncoder, supported

    store = _exports_made() if runtime == "onnx" else ModelStore()
    folder = store.checkpoint("all-MiniLM-L6-v2")
    assert supported(folder)
    texts = ["Welcome to video extract.", "", "a cup of coffee and a cat " * 60, "Ünïcödé café, 東京 and ½", "Hello", "THE SAME IN CAPITALS"]
    reference = SentenceTransformer(str(folder), device="cpu", local_files_only=True).encode(texts, normalize_embeddings=True, convert_to_numpy=True)
    ours = BertSentenceEncoder(folder, store.cache_dir if runtime == "onnx" else None)
    assert ours.runtime == runtime
    for batch_size in (1, 4, 32):
        vectors = ours.encode(texts, batch_size=batch_size)
        assert vectors.dtype == np.float32 and vectors.shape == (len(texts), 384)
        assert np.abs(vectors - reference).max() < 1e-5
    assert ours.encode([]).shape == (0, 384)


def test_a_checkpoint_of_another_shape_goes_to_sentence_transformers(tmp_path):
    from video_extract.models.bert_sentences import supported

    folder = ModelStore().checkpoint("all-MiniLM-L6-v2")
    assert not supported(tmp_path)  # nothing there
    copy = tmp_path / "cls-pooling"
    copy.mkdir()
    for name in ("modules.json", "config.json", "sentence_bert_config.json", "tokenizer.json", "model.safetensors"):
        (copy / name).symlink_to(folder / name)
    (copy / "1_Pooling").mkdir()
    (copy / "1_Pooling" / "config.json").write_text('{"pooling_mode_cls_token": true, "pooling_mode_mean_tokens": false}')
    assert not supported(copy)


@pytest.mark.parametrize(("preset", "expected"), [(None, "PASSIVE"), ("ACTIVE", "ACTIVE")])
def test_openmp_threads_sleep_at_barriers_unless_the_user_chose(preset, expected):
    # Set before CTranslate2 or torch load OpenMP, which reads it once: spinning threads of one
    # stage would burn the cores of the stages beside it.
    import os

    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"} | ({"OMP_WAIT_POLICY": preset} if preset else {})
    probe = "import video_extract, os; import ctranslate2; print(os.environ['OMP_WAIT_POLICY'])"
    assert subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True, timeout=120).stdout.strip() == expected


def test_openblas_threads_sleep_instead_of_spinning_after_numpy_loads():
    """Imported before numpy, video_extract keeps OpenBLAS's threads from spinning for work (0.04-0.1 s
    of a core after numpy's import and after each shared product, measured); a user's value wins."""
    import os

    probe = (
        "import video_extract, os, time, threading; import numpy as np;"
        "a = np.ones((80, 201), np.float32); b = np.ones((201, 3000), np.float32); a @ b;"
        "t0 = time.process_time(); time.sleep(0.4); print(os.environ['OPENBLAS_THREAD_TIMEOUT'], round(time.process_time() - t0, 3))"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_THREAD_TIMEOUT", "OPENBLAS_NUM_THREADS")}
    timeout, idle_cpu = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True, timeout=120).stdout.split()
    assert timeout == "4" and float(idle_cpu) < 0.02
    env["OPENBLAS_THREAD_TIMEOUT"] = "20"
    assert subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True, timeout=120).stdout.split()[0] == "20"
