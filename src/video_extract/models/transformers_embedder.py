"""What the CLIP and CLAP embedders share: a transformers model + processor, loaded once.

The model name resolves like every other model (a local folder, a catalog name in any case,
else a Hugging Face id, downloaded by the model store); transformers then only reads local
files, so a model on disk never waits for the Hub. Vectors come back as L2-normalised
float32 rows.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np


class TransformersEmbedder:
    model_class = ""  # a transformers class name, e.g. "CLIPModel"

    def __init__(self, location: str, threads: int | None = None):
        import torch
        import transformers
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        if threads:
            torch.set_num_threads(threads)
        self.torch = torch
        self.model = getattr(transformers, self.model_class).from_pretrained(location, local_files_only=True).eval()
        self.processor = transformers.AutoProcessor.from_pretrained(location, local_files_only=True)

    @staticmethod
    def normalised(output: Any) -> np.ndarray:
        # transformers 5 returns a model output whose pooler_output is the projection.
        tensor = output if hasattr(output, "detach") else output.pooler_output
        vectors = tensor.detach().float().cpu().numpy()
        return (vectors / np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-12)).astype(np.float32)

    @property
    def dim(self) -> int:
        return int(self.model.config.projection_dim)


def load_embedder(store, name: str, kind: str, factory: Callable[[str, int], TransformersEmbedder]) -> TransformersEmbedder:
    """The embedder for ``name`` (local folder, catalog name or Hub id), once per process."""
    from video_extract.models.runtime import model_threads

    location = str(store.checkpoint(name))
    return store.load((kind, location), lambda: factory(location, model_threads()))
