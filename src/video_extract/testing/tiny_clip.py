"""A tiny CLIP with random weights, saved like a real checkpoint, for offline tests and benchmarks.

It runs the real loading (``from_pretrained``) and inference path of transformers' CLIPModel
with a PIL image processor and a byte-level BPE tokenizer; its embeddings carry no meaning.
"""

from __future__ import annotations

from pathlib import Path

TEXT_MAX_LEN = 32


def _byte_alphabet() -> list[str]:
    """GPT-2/CLIP's reversible byte -> printable character table."""
    codes = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars = codes[:]
    extra = 0
    for b in range(256):
        if b not in codes:
            codes.append(b)
            chars.append(256 + extra)
            extra += 1
    return [chr(c) for c in chars]


def tiny_tokenizer(words=("a", "photo", "of", "cat", "dog", "person", "cup", "text")):
    from transformers import CLIPTokenizer

    alphabet = _byte_alphabet()
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for ch in alphabet:
        vocab.setdefault(ch, len(vocab))
    for ch in alphabet:
        vocab.setdefault(ch + "</w>", len(vocab))
    merges: list[tuple[str, str]] = []
    for word in words:
        pieces = list(word[:-1]) + [word[-1] + "</w>"]
        current = pieces[0]
        for nxt in pieces[1:]:
            if (current, nxt) not in merges:
                merges.append((current, nxt))
            current += nxt
            vocab.setdefault(current, len(vocab))
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=TEXT_MAX_LEN)


def build_tiny_clip(directory: str | Path, image_size: int = 64, seed: int = 0) -> Path:
    import torch
    from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel, CLIPProcessor
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    directory = Path(directory)
    torch.manual_seed(seed)
    tokenizer = tiny_tokenizer()
    config = CLIPConfig(
        text_config=dict(
            vocab_size=len(tokenizer),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            max_position_embeddings=TEXT_MAX_LEN,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        ),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=image_size, patch_size=8),
        projection_dim=16,
    )
    CLIPModel(config).eval().save_pretrained(directory)
    processor = CLIPImageProcessorPil(size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size})
    CLIPProcessor(image_processor=processor, tokenizer=tokenizer).save_pretrained(directory)
    return directory
