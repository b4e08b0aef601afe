"""What the CLIP and CLAP embedders share: a transformers model + processor, loaded once.

The model name resolves like every other model (a local folder, a catalog name through the
model store, else a Hugging Face id that transformers downloads); vectors come back as
L2-normalised float32 rows.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
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
        self.model = getattr(transformers, self.model_class).from_pretrained(location).eval()
        self.processor = transformers.AutoProcessor.from_pretrained(location)

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
    from video_extract.models.catalog import ALIASES, CATALOG
    from video_extract.models.runtime import model_threads

    if Path(name).is_dir():
        location = str(Path(name).resolve())
    elif name in CATALOG or name in ALIASES:
        location = str(store.path(name))
    else:
        location = name  # another Hub checkpoint: transformers downloads it
    return store.load((kind, location), lambda: factory(location, model_threads()))
