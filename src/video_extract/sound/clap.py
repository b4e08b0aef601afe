"""CLAP audio and text embeddings through Hugging Face transformers (ClapModel + ClapProcessor).

CLAP hears at 48 kHz; each window of audio becomes one L2-normalised vector in the same space
as text, so "dog barking" finds the windows where a dog barks.
"""

from __future__ import annotations

import numpy as np

SAMPLE_RATE = 48000


class ClapEmbedder:
    def __init__(self, location: str, threads: int | None = None):
        import torch
        from transformers import AutoProcessor, ClapModel
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        if threads:
            torch.set_num_threads(threads)
        self.torch = torch
        self.model = ClapModel.from_pretrained(location).eval()
        self.processor = AutoProcessor.from_pretrained(location)

    @staticmethod
    def _normalised(output) -> np.ndarray:
        tensor = output if hasattr(output, "detach") else output.pooler_output
        vectors = tensor.detach().float().cpu().numpy()
        return (vectors / np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-12)).astype(np.float32)

    def embed_audio(self, windows: list[np.ndarray]) -> np.ndarray:
        """Mono float32 windows at 48 kHz -> one row each."""
        features = self.processor.feature_extractor(windows, sampling_rate=SAMPLE_RATE, return_tensors="pt")
        # For windows up to 10 s the feature extractor marks one window of the batch, picked at
        # random, as "longer" (so the fusion branch runs): results would depend on the batch and
        # on chance. Marking all of them gives each window what it gets when embedded alone.
        features["is_longer"] = self.torch.ones_like(features["is_longer"], dtype=self.torch.bool)
        with self.torch.inference_mode():
            return self._normalised(self.model.get_audio_features(**features))

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        inputs = self.processor.tokenizer(texts, return_tensors="pt", padding=True, truncation=True)
        with self.torch.inference_mode():
            return self._normalised(self.model.get_text_features(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]))

    @property
    def dim(self) -> int:
        return int(self.model.config.projection_dim)


def load_clap(store, name: str) -> ClapEmbedder:
    """The embedder for ``name`` (catalog name, Hub id or local directory), once per process."""
    from pathlib import Path

    from video_extract.models.catalog import ALIASES, CATALOG
    from video_extract.vision.runtime import model_threads

    if Path(name).is_dir():
        location = str(Path(name).resolve())
    elif name in CATALOG or name in ALIASES:
        location = str(store.path(name))
    else:
        location = name
    return store.load(("clap", location), lambda: ClapEmbedder(location, model_threads()))


def windows_of(samples: np.ndarray, window_sec: float, hop_sec: float, sample_rate: int = SAMPLE_RATE) -> list[tuple[float, float, np.ndarray]]:
    """(start, end, samples) of each window; the last one is cut at the end of the audio."""
    size, hop = int(window_sec * sample_rate), max(1, int(hop_sec * sample_rate))
    out = []
    for begin in range(0, max(1, len(samples)), hop):
        piece = samples[begin : begin + size]
        if len(piece) < sample_rate // 10 and out:  # a sliver under 0.1 s adds nothing
            break
        out.append((round(begin / sample_rate, 3), round((begin + len(piece)) / sample_rate, 3), piece))
        if begin + size >= len(samples):
            break
    return out
