"""text_embeddings: one L2-normalised row per transcript segment (or on-screen text entry)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from video_extract.plugins.base import Artifact, InputSpec, Plugin, StageContext, write_json
from video_extract.spec import TextEmbeddings

_SOURCES = {"transcription": ("Transcription", "transcription.json"), "ocr": ("OCR", "ocr.json")}


def load_sentence_model(store, name: str):
    """A SentenceTransformer, once per process: the shipped MiniLM offline, any other by name online."""
    from video_extract.models.catalog import ALIASES, CATALOG

    if Path(name).is_dir():
        location = Path(name)
    elif name in CATALOG or name in ALIASES:
        location = store.path(name)
    else:
        location = name  # a Hub id: sentence-transformers downloads it

    def load():
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # its per-load bars would interleave with our logs
        return SentenceTransformer(str(location), device="cpu")

    return store.load(("sentence-transformers", str(location)), load)


def texts_of(source: str, artifact: Artifact) -> list[dict]:
    """Rows to embed, each with its time span and text."""
    data = json.loads(artifact.file(_SOURCES[source][1]).read_text())
    if source == "transcription":
        return [{"start": s["start"], "end": s["end"], "text": s["text"], **({"speaker": s["speaker"]} if s.get("speaker") else {})} for s in data["segments"]]
    rows = []
    for entry in data.get("texts", []):
        rows.append({"start": entry["start"], "end": entry["end"], "text": entry["text"]})
    return rows


class TextEmbeddingsPlugin(Plugin):
    def requires(self, params: TextEmbeddings) -> list[InputSpec]:
        return [InputSpec(type=_SOURCES[params.source][0])]

    def run(self, ctx: StageContext, inputs: dict[str, Artifact], params: TextEmbeddings) -> dict:
        rows = texts_of(params.source, inputs[_SOURCES[params.source][0]])
        model = load_sentence_model(ctx.models, params.model)
        if rows:
            vectors = model.encode([r["text"] for r in rows], batch_size=params.batch_size, normalize_embeddings=True, convert_to_numpy=True)
        else:
            vectors = np.zeros((0, model.get_sentence_embedding_dimension()), np.float32)
        folder = ctx.work_dir / "embeddings"
        folder.mkdir()
        np.save(folder / "text.npy", vectors.astype(np.float32))
        write_json(folder / "text.json", rows)  # one entry per row of text.npy
        return {"rows": len(rows), "dim": int(vectors.shape[1]), "model": params.model, "source": params.source}
