"""text_embeddings: one L2-normalised row per transcript segment (or on-screen text entry)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from video_extract.models import bert_sentences
from video_extract.models.catalog import check_name
from video_extract.plugins.base import Inputs, InputSpec, Plugin, StageContext
from video_extract.results import OcrResult, TextEmbeddingsResult, TextRow, TranscriptionResult
from video_extract.spec import TextEmbeddings

#: What each ``source`` embeds.
_SOURCES = {"transcription": TranscriptionResult, "ocr": OcrResult}


def load_sentence_model(store, name: str):
    """The sentence encoder, once per process: the shipped MiniLM offline, any other Hub id
    downloaded by the model store first (then read from local files only). A plain BERT
    checkpoint runs on ONNX Runtime, exported once into the model cache (``models.bert_sentences``:
    the same vectors, without the seconds ``import sentence_transformers`` or torch cost); any
    other goes to sentence-transformers."""
    location = store.checkpoint(name)
    if bert_sentences.supported(location):
        exports = Path(store.cache_dir)
        return store.load(("bert-sentences", str(location)), lambda: bert_sentences.BertSentenceEncoder(location, exports))

    def load():
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # its per-load bars would interleave with our logs
        return SentenceTransformer(str(location), device="cpu", local_files_only=True)

    return store.load(("sentence-transformers", str(location)), load)


def texts_of(record: TranscriptionResult | OcrResult) -> list[TextRow]:
    """Rows to embed, each with its time span and text (and speaker, for a diarized transcript)."""
    if isinstance(record, TranscriptionResult):
        return [TextRow(start=s.start, end=s.end, text=s.text, speaker=s.speaker) for s in record.segments]
    return [TextRow(start=t.start, end=t.end, text=t.text) for t in record.texts]


class TextEmbeddingsPlugin(Plugin):
    def validate(self, params: TextEmbeddings) -> None:
        check_name(
            "text_embeddings",
            params.model,
            "sentence-transformers",
            hub_ids=True,
            other="a Hugging Face id such as sentence-transformers/all-mpnet-base-v2, or a local directory",
        )

    def requires(self, params: TextEmbeddings) -> list[InputSpec]:
        return [InputSpec(type=_SOURCES[params.source].type_name)]

    def preload(self, models, params: TextEmbeddings) -> None:
        load_sentence_model(models, params.model)  # 0.19 s cold (tokenizer, session), after the transcript

    def run(self, ctx: StageContext, inputs: Inputs, params: TextEmbeddings) -> None:
        rows = texts_of(inputs[_SOURCES[params.source]])
        model = load_sentence_model(ctx.models, params.model)
        if isinstance(model, bert_sentences.BertSentenceEncoder):
            vectors = model.encode([r.text for r in rows], batch_size=params.batch_size)
        elif rows:
            vectors = model.encode([r.text for r in rows], batch_size=params.batch_size, normalize_embeddings=True, convert_to_numpy=True)
        else:
            dimension = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension  # renamed in 5.x
            vectors = np.zeros((0, dimension()), np.float32)
        np.save(ctx.path("embeddings/text.npy"), vectors.astype(np.float32))
        ctx.write(TextEmbeddingsResult(rows=rows, model=params.model, dim=int(vectors.shape[1]), source=params.source))
