"""A cold process pays only for what it uses: no heavy import on a path that does not need it,
models loading in the background while decoding runs, MiniLM without sentence-transformers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from video_extract import Client
from video_extract.executors import base
from video_extract.executors.base import Runtime, prepare, work_order
from video_extract.models import ModelStore, load_counts

HEAVY = ("torch", "transformers", "sentence_transformers", "sklearn", "librosa", "numba", "onnxruntime", "faster_whisper", "aiohttp")
SHARED_MODELS = Path(__file__).resolve().parents[2] / "shared" / "models"


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


def test_minilm_runs_without_sentence_transformers_or_transformers():
    loaded = _imported_after(
        "from video_extract.models import ModelStore; from video_extract.plugins.text_embeddings import load_sentence_model;"
        "load_sentence_model(ModelStore(), 'all-MiniLM-L6-v2').encode(['a cat'])"
    )
    assert loaded == "['torch']"


def test_minilm_on_torch_alone_gives_sentence_transformers_vectors():
    """The swap is for speed only: the same vectors within 1e-5 (float32 rounding), for short,
    empty, truncated (over 256 tokens) and non-ASCII texts, in batches of any size."""
    from sentence_transformers import SentenceTransformer

    from video_extract.models.bert_sentences import BertSentenceEncoder, supported

    folder = ModelStore().checkpoint("all-MiniLM-L6-v2")
    assert supported(folder)
    texts = ["Welcome to video extract.", "", "a cup of coffee and a cat " * 60, "Ünïcödé café, 東京 and ½", "Hello", "THE SAME IN CAPITALS"]
    reference = SentenceTransformer(str(folder), device="cpu", local_files_only=True).encode(texts, normalize_embeddings=True, convert_to_numpy=True)
    ours = BertSentenceEncoder(folder)
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


def test_model_stages_run_after_the_decoding_ones_and_after_their_inputs(scene_clip, tmp_path):
    runtime = Runtime(use_cache=False)
    job = prepare(runtime, scene_clip.path, ["objects", "scenes", "keyframes", "faces", "metadata"], tmp_path)
    try:
        order = work_order(runtime, job.plan)
        stages = job.plan.stages
        assert sorted(order) == sorted(stages)
        for n, sid in enumerate(order):
            assert all(u in order[:n] for u in stages[sid].upstream)
        plugins = [stages[sid].plugin for sid in order]
        assert set(plugins[-2:]) == {"objects", "faces"}  # the two that load a model come last
    finally:
        job.release()


@pytest.mark.skipif(not (SHARED_MODELS / "yolox_nano.onnx").exists(), reason="yolox-nano is not in the shared models folder")
def test_models_load_in_the_background_once_and_the_stage_uses_that_load(scene_clip, tmp_path, monkeypatch):
    started = []
    real = base.prefetch_models
    monkeypatch.setattr(base, "prefetch_models", lambda runtime, job: started.append(real(runtime, job)) or started[-1])
    client = Client(cache_dir=tmp_path / "c", output_dir=tmp_path / "o", models_dir=SHARED_MODELS)
    before = {k: v for k, v in load_counts.items() if k[0] == "yolox"}
    result = client.run(scene_clip.path, ["objects", "scenes"])
    assert result.ok, result.errors
    assert started and started[0] is not None  # a preload thread was started for objects
    started[0].join(30)
    loaded = {k: v for k, v in load_counts.items() if k[0] == "yolox"}
    assert sum(loaded.values()) - sum(before.values()) <= 1  # the stage found the preloaded model: one load, one key
    assert len(loaded) == 1
    # Everything cached: nothing to preload, no thread.
    again = client.run(scene_clip.path, ["objects", "scenes"])
    assert all(s.cached for s in again.result.stages)
    assert started[-1] is None


def test_outputs_are_byte_identical_with_or_without_preloading_and_reordering(scene_clip, tmp_path, monkeypatch):
    ops = ["metadata", "scenes", "keyframes", "frames", "audio"] + (["objects", "faces"] if (SHARED_MODELS / "yolox_nano.onnx").exists() else [])
    models = SHARED_MODELS if SHARED_MODELS.exists() else None
    new = Client(use_cache=False, output_dir=tmp_path / "new", models_dir=models).run(scene_clip.path, ops)
    monkeypatch.setattr(base, "prefetch_models", lambda runtime, job: None)
    monkeypatch.setattr("video_extract.executors.debug.work_order", lambda runtime, plan: list(plan.stages))
    old = Client(use_cache=False, output_dir=tmp_path / "old", models_dir=models).run(scene_clip.path, ops)
    assert new.ok and old.ok, (new.errors, old.errors)
    files = sorted(p.relative_to(new.output_dir) for p in new.output_dir.rglob("*") if p.is_file() and p.name != "summary.json")
    assert files == sorted(p.relative_to(old.output_dir) for p in old.output_dir.rglob("*") if p.is_file() and p.name != "summary.json")
    assert len(files) > len(ops)
    for rel in files:
        assert (new.output_dir / rel).read_bytes() == (old.output_dir / rel).read_bytes(), rel
