"""Sentence embeddings from a sentence-transformers BERT checkpoint, without sentence-transformers.

``import sentence_transformers`` pulls in transformers, scikit-learn and their dependencies:
2-3 s of a cold process on 2 cores, for a 6-layer encoder that is a few lines of torch. A
checkpoint of the plain shape (a BERT ``Transformer`` module, mean ``Pooling``, ``Normalize``:
all-MiniLM-L6-v2, the default) is run here; any other shape goes to sentence-transformers.
Here means ONNX Runtime, on a graph exported once from the torch code below (no torch in the
process either), or that torch code where no export can be made. Either way the vectors
match sentence-transformers' to float32 rounding (tests/test_cold_start.py checks).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from video_extract.models.onnx_export import export_checked, onnx_copy

_MODULES = ["sentence_transformers.models.Transformer", "sentence_transformers.models.Pooling", "sentence_transformers.models.Normalize"]


def supported(folder: Path) -> bool:
    """Whether ``folder`` holds a checkpoint of the shape this module runs."""
    try:
        modules = json.loads((folder / "modules.json").read_text())
        config = json.loads((folder / "config.json").read_text())
        pooling = next(m for m in modules if m["type"].endswith(".Pooling"))
        pool = json.loads((folder / pooling["path"] / "config.json").read_text())
        settings = json.loads((folder / "sentence_bert_config.json").read_text())
    except (OSError, ValueError, KeyError, StopIteration, TypeError):
        return False
    means_only = pool.get("pooling_mode_mean_tokens") and not any(
        v for k, v in pool.items() if k.startswith("pooling_mode_") and k != "pooling_mode_mean_tokens"
    )
    return (
        [m.get("type") for m in modules] == _MODULES
        and modules[0].get("path") == ""
        and config.get("model_type") == "bert"
        and config.get("hidden_act") == "gelu"
        and config.get("position_embedding_type", "absolute") == "absolute"
        and bool(means_only)
        and not settings.get("do_lower_case")  # the tokenizer's own normaliser lower-cases
        and (folder / "tokenizer.json").is_file()
        and (folder / "model.safetensors").is_file()
    )


class BertSentenceEncoder:
    """Tokenise, run the BERT encoder, mean-pool over real tokens, L2-normalise.

    With ``onnx_cache`` (where exports are kept, ``models/onnx_export.py``) the encoder runs on
    ONNX Runtime and torch is not imported; without it, or where no export can be made, on torch.
    """

    def __init__(self, folder: Path, onnx_cache: Path | None = None):
        from tokenizers import Tokenizer

        config = json.loads((folder / "config.json").read_text())
        settings = json.loads((folder / "sentence_bert_config.json").read_text())
        self.dim = int(config["hidden_size"])
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        limit = min(int(settings.get("max_seq_length") or 512), int(config.get("max_position_embeddings", 512)))
        self.tokenizer.enable_truncation(max_length=limit)
        pad = self.tokenizer.token_to_id("[PAD]")
        self.tokenizer.enable_padding(pad_id=int(config.get("pad_token_id", pad if pad is not None else 0)), pad_token="[PAD]")
        self.runtime = "torch"
        exported = onnx_copy(onnx_cache, "bert-sentences", folder / "model.safetensors", lambda dest: _export(folder, dest)) if onnx_cache else None
        if exported is not None:
            from video_extract.models.runtime import model_threads, onnx_session

            session = onnx_session(str(exported), model_threads(), cache_dir=onnx_cache)
            self._run = lambda ids, mask, types: session.run(None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": types})[0]
            self.runtime = "onnx"
        else:
            self._run = TorchBert(folder)

    def encode(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        """One L2-normalised float32 row per text."""
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        rows = []
        for start in range(0, len(texts), batch_size):
            encodings = self.tokenizer.encode_batch(texts[start : start + batch_size])
            ids = np.array([e.ids for e in encodings], dtype=np.int64)
            mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
            types = np.array([e.type_ids for e in encodings], dtype=np.int64)
            rows.append(self._run(ids, mask, types))
        return np.concatenate(rows).astype(np.float32)


class TorchBert:
    """The encoder on torch, from the checkpoint's safetensors: numpy token arrays in, pooled
    and normalised vectors out."""

    def __init__(self, folder: Path):
        import torch
        from safetensors.torch import load_file

        self.torch = torch
        config = json.loads((folder / "config.json").read_text())
        self.heads = int(config["num_attention_heads"])
        self.layers = int(config["num_hidden_layers"])
        self.eps = float(config.get("layer_norm_eps", 1e-12))
        self.dim = int(config["hidden_size"])
        self.weights = {k.removeprefix("bert."): v.float() for k, v in load_file(str(folder / "model.safetensors")).items()}

    def __call__(self, ids: np.ndarray, mask: np.ndarray, types: np.ndarray) -> np.ndarray:
        torch = self.torch
        with torch.inference_mode():
            return self.embed(torch.from_numpy(ids), torch.from_numpy(mask), torch.from_numpy(types)).numpy()

    def embed(self, ids, mask, types):
        torch, F, w = self.torch, self.torch.nn.functional, self.weights
        positions = torch.arange(ids.shape[1])
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][positions]
            + w["embeddings.token_type_embeddings.weight"][types]
        )
        x = F.layer_norm(x, (self.dim,), w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], self.eps)
        batch, length = ids.shape
        head = self.dim // self.heads
        keep = mask[:, None, None, :].bool()  # attend to real tokens only
        for n in range(self.layers):
            p = f"encoder.layer.{n}."

            def linear(t, name, p=p):
                return F.linear(t, w[p + name + ".weight"], w[p + name + ".bias"])

            q, k, v = (linear(x, f"attention.self.{name}").view(batch, length, self.heads, head).transpose(1, 2) for name in ("query", "key", "value"))
            scores = (q @ k.transpose(-1, -2)) / math.sqrt(head)
            scores = scores.masked_fill(~keep, torch.finfo(scores.dtype).min)
            context = (scores.softmax(-1) @ v).transpose(1, 2).reshape(batch, length, self.dim)
            x = F.layer_norm(
                x + linear(context, "attention.output.dense"),
                (self.dim,),
                w[p + "attention.output.LayerNorm.weight"],
                w[p + "attention.output.LayerNorm.bias"],
                self.eps,
            )
            hidden = F.gelu(linear(x, "intermediate.dense"))
            x = F.layer_norm(x + linear(hidden, "output.dense"), (self.dim,), w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"], self.eps)
        weights = mask[:, :, None].to(x.dtype)
        pooled = (x * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
        return F.normalize(pooled, p=2, dim=1)


def _export(folder: Path, dest: Path) -> None:
    import torch

    bert = TorchBert(folder)

    class Graph(torch.nn.Module):
        def forward(self, ids, mask, types):
            return bert.embed(ids, mask, types)

    g = torch.Generator().manual_seed(0)
    vocab = bert.weights["embeddings.word_embeddings.weight"].shape[0]

    def example(batch: int, length: int, real: list[int]):
        ids = torch.randint(1000, vocab, (batch, length), generator=g)
        mask = torch.zeros(batch, length, dtype=torch.long)
        for row, n in enumerate(real):
            mask[row, :n] = 1
        return ids * mask, mask, torch.zeros(batch, length, dtype=torch.long)

    # padded rows (the mask at work), one text, a long one: normalised vectors, so 1e-5 is float32 rounding
    examples = [example(3, 17, [17, 9, 1]), example(1, 5, [5]), example(2, 256, [256, 40])]
    axes = {
        "input_ids": {0: "batch", 1: "tokens"},
        "attention_mask": {0: "batch", 1: "tokens"},
        "token_type_ids": {0: "batch", 1: "tokens"},
        "embeddings": {0: "batch"},
    }
    export_checked(Graph().eval(), examples, dest, ["input_ids", "attention_mask", "token_type_ids"], ["embeddings"], axes, atol=1e-5)
