"""CLAP audio and text embeddings through Hugging Face transformers (ClapModel + ClapProcessor).

CLAP hears at 48 kHz; each window of audio becomes one L2-normalised vector in the same space
as text, so "dog barking" finds the windows where a dog barks.
"""

from __future__ import annotations

import numpy as np

from video_extract.models.transformers_embedder import TransformersEmbedder, load_embedder

SAMPLE_RATE = 48000


class ClapEmbedder(TransformersEmbedder):
    model_class = "ClapModel"

    def embed_audio(self, windows: list[np.ndarray]) -> np.ndarray:
        """Mono float32 windows at 48 kHz -> one row each."""
        features = self.processor.feature_extractor(windows, sampling_rate=SAMPLE_RATE, return_tensors="pt")
        # For windows up to 10 s the feature extractor marks one window of the batch, picked at
        # random, as "longer" (so the fusion branch runs): results would depend on the batch and
        # on chance. Marking all of them gives each window what it gets when embedded alone.
        features["is_longer"] = self.torch.ones_like(features["is_longer"], dtype=self.torch.bool)
        with self.torch.inference_mode():
            return self.normalised(self.model.get_audio_features(**features))

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        inputs = self.processor.tokenizer(texts, return_tensors="pt", padding=True, truncation=True)
        with self.torch.inference_mode():
            return self.normalised(self.model.get_text_features(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]))


def load_clap(store, name: str) -> ClapEmbedder:
    return load_embedder(store, name, "clap", ClapEmbedder)


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
