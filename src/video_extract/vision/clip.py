"""CLIP image and text embeddings through Hugging Face transformers.

transformers' CLIPModel + the PIL image processor, not open_clip: open_clip imports
torchvision, and PyPI's torchvision does not load beside the CPU torch build. In transformers
5, ``get_image_features`` returns a model output whose ``pooler_output`` is the projection.
"""

from __future__ import annotations

import numpy as np


class ClipEmbedder:
    def __init__(self, location: str, threads: int | None = None):
        import torch
        from transformers import AutoProcessor, CLIPModel
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        if threads:
            torch.set_num_threads(threads)
        self.torch = torch
        self.model = CLIPModel.from_pretrained(location).eval()
        self.processor = AutoProcessor.from_pretrained(location)

    @staticmethod
    def _normalised(output) -> np.ndarray:
        tensor = output if hasattr(output, "detach") else output.pooler_output
        vectors = tensor.detach().float().cpu().numpy()
        return (vectors / np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-12)).astype(np.float32)

    def embed_images(self, images_rgb: list[np.ndarray]) -> np.ndarray:
        from PIL import Image

        # Shrink with OpenCV first (area filter, SIMD): the processor's PIL resize of a full
        # 720p frame to 224 px costs more than the tiny models' inference.
        images = [Image.fromarray(self._shrink(np.ascontiguousarray(im))) for im in images_rgb]
        pixels = self.processor(images=images, return_tensors="pt")["pixel_values"]
        with self.torch.inference_mode():
            return self._normalised(self.model.get_image_features(pixel_values=pixels))

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        inputs = self.processor(text=texts, return_tensors="pt", padding=True, truncation=True, max_length=self.model.config.text_config.max_position_embeddings)
        with self.torch.inference_mode():
            return self._normalised(self.model.get_text_features(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]))

    def _shrink(self, image: np.ndarray) -> np.ndarray:
        import cv2

        size = getattr(self.processor.image_processor, "size", None) or {}
        target = size.get("shortest_edge") or min(size.get("height", 0), size.get("width", 0)) or 224
        h, w = image.shape[:2]
        if min(h, w) <= target * 1.5:
            return image
        scale = target * 1.5 / min(h, w)  # keep some margin: the processor does the exact resize and crop
        return cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)

    @property
    def dim(self) -> int:
        return int(self.model.config.projection_dim)


def load_clip(store, name: str):
    """The embedder for ``name`` (catalog name, Hub id or local directory), once per process."""
    from pathlib import Path

    from video_extract.models.catalog import ALIASES, CATALOG
    from video_extract.vision.runtime import model_threads

    if Path(name).is_dir():
        location = str(Path(name).resolve())
    elif name in CATALOG or name in ALIASES:
        location = str(store.path(name))
    else:
        location = name  # another Hub checkpoint: transformers downloads it
    return store.load(("clip", location), lambda: ClipEmbedder(location, model_threads()))
