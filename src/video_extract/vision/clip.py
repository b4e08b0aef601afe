"""CLIP image and text embeddings through Hugging Face transformers.

transformers' CLIPModel + the PIL image processor, not open_clip: open_clip imports
torchvision, and PyPI's torchvision does not load beside the CPU torch build.
"""

from __future__ import annotations

import numpy as np

from video_extract.models.transformers_embedder import TransformersEmbedder, load_embedder


class ClipEmbedder(TransformersEmbedder):
    model_class = "CLIPModel"

    def embed_images(self, images_rgb: list[np.ndarray]) -> np.ndarray:
        from PIL import Image

        # Shrink with OpenCV first (area filter, SIMD): the processor's PIL resize of a full
        # 720p frame to 224 px costs more than the tiny models' inference.
        images = [Image.fromarray(self._shrink(np.ascontiguousarray(im))) for im in images_rgb]
        pixels = self.processor(images=images, return_tensors="pt")["pixel_values"]
        with self.torch.inference_mode():
            return self.normalised(self.model.get_image_features(pixel_values=pixels))

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        inputs = self.processor(
            text=texts, return_tensors="pt", padding=True, truncation=True, max_length=self.model.config.text_config.max_position_embeddings
        )
        with self.torch.inference_mode():
            return self.normalised(self.model.get_text_features(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]))

    def _shrink(self, image: np.ndarray) -> np.ndarray:
        import cv2

        size = getattr(self.processor.image_processor, "size", None) or {}
        target = size.get("shortest_edge") or min(size.get("height", 0), size.get("width", 0)) or 224
        h, w = image.shape[:2]
        if min(h, w) <= target * 1.5:
            return image
        scale = target * 1.5 / min(h, w)  # keep some margin: the processor does the exact resize and crop
        return cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)


def load_clip(store, name: str) -> ClipEmbedder:
    return load_embedder(store, name, "clip", ClipEmbedder)
