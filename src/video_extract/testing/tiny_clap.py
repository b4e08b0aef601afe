"""A tiny CLAP with random weights, saved like a real checkpoint, for offline tests.

Same architecture family as laion/clap-htsat-fused (HTSAT audio encoder with fusion, RoBERTa
text encoder), a few thousand parameters; its embeddings carry no meaning.
"""

from __future__ import annotations

from pathlib import Path

from video_extract.testing.tiny_clip import _byte_alphabet


def build_tiny_clap(directory: str | Path, seed: int = 0) -> Path:
    import torch
    from transformers import ClapAudioConfig, ClapConfig, ClapFeatureExtractor, ClapModel, ClapProcessor, ClapTextConfig, RobertaTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    directory = Path(directory)
    torch.manual_seed(seed)
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "<mask>": 4}
    for ch in _byte_alphabet():
        vocab.setdefault(ch, len(vocab))
    tokenizer = RobertaTokenizer(vocab=vocab, merges=[])
    text = ClapTextConfig(
        vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, max_position_embeddings=80, projection_dim=16
    )
    audio = ClapAudioConfig(
        spec_size=256,
        num_mel_bins=64,
        window_size=8,
        hidden_size=32,
        patch_embeds_hidden_size=16,
        depths=[1, 1],
        num_attention_heads=[2, 2],
        patch_stride=(4, 4),
        patch_size=4,
        projection_dim=16,
        enable_fusion=True,
    )
    ClapModel(ClapConfig(text_config=text.to_dict(), audio_config=audio.to_dict(), projection_dim=16)).eval().save_pretrained(directory)
    ClapProcessor(feature_extractor=ClapFeatureExtractor(), tokenizer=tokenizer).save_pretrained(directory)
    return directory
