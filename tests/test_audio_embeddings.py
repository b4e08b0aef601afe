"""audio_embeddings: CLAP over fixed windows, run through the real transformers path on a tiny model."""

from __future__ import annotations

import wave

import numpy as np
import pytest

from video_extract import Client


def test_windows_cover_the_audio_and_rows_are_normalised(scene_clip, tiny_clap_dir, tmp_path):
    op = f"audio_embeddings:model={tiny_clap_dir},window_sec=1.0,hop_sec=0.5"
    result = Client(cache_dir=tmp_path / "c", output_dir=tmp_path / "o").run(scene_clip.path, [op, "audio:sample_rate=48000"])
    emb = result.audio_embeddings
    with wave.open(str(result.output_dir / "audio.wav")) as f:
        duration = f.getnframes() / f.getframerate()
    assert [r.start for r in emb.rows] == pytest.approx([0.0, 0.5, 1.0, 1.5, 2.0, 2.5], abs=1e-6)  # the last reaches the end
    assert emb.rows[-1].end == pytest.approx(duration, abs=1e-3)
    assert emb.vectors.shape == (6, 16) and np.allclose(np.linalg.norm(emb.vectors, axis=1), 1.0, atol=1e-5)
    plugins = [s.plugin for s in result.result.stages]
    assert plugins.count("audio") == 1  # the 48 kHz audio.wav asked for is the stage CLAP reads

    again = Client(cache_dir=tmp_path / "c2", output_dir=tmp_path / "o2").run(scene_clip.path, [op])
    assert np.array_equal(emb.vectors, again.audio_embeddings.vectors)


def test_search_audio_ranks_windows_by_cosine(scene_clip, tiny_clap_dir, tmp_path):
    client = Client(cache_dir=tmp_path / "c", output_dir=tmp_path / "o")
    result = client.run(scene_clip.path, [f"audio_embeddings:model={tiny_clap_dir},window_sec=1.0,hop_sec=1.0"])
    hits = client.search_audio(result, "a steady tone", top_k=2)
    from video_extract.sound.clap import load_clap

    query = load_clap(client.runtime.models, str(tiny_clap_dir)).embed_texts(["a steady tone"])[0]
    scores = result.audio_embeddings.vectors @ query
    assert [h["start"] for h in hits] == [result.audio_embeddings.rows[i].start for i in np.argsort(-scores)[:2]]


def test_a_window_embeds_the_same_alone_or_in_a_batch(tiny_clap_dir):
    from video_extract.models import ModelStore
    from video_extract.sound.clap import load_clap

    model = load_clap(ModelStore(), str(tiny_clap_dir))
    rng = np.random.default_rng(0)
    windows = [rng.normal(0, 0.1, 48000).astype(np.float32) for _ in range(3)]
    together = model.embed_audio(windows)
    alone = np.concatenate([model.embed_audio([w]) for w in windows])
    assert np.allclose(together, alone, atol=1e-5)


def test_windows_longer_than_clap_input_are_refused(scene_clip, tmp_path):
    from video_extract.errors import UsageError

    with pytest.raises(UsageError, match="at most 10"):
        Client(cache_dir=tmp_path / "c", output_dir=tmp_path / "o").run(scene_clip.path, ["audio_embeddings:window_sec=30"])
