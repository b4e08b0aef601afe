"""The diarization's two networks behind numpy interfaces: on ONNX Runtime where an export of
them could be made (``models/onnx_export.py``: no torch in the process), else on torch.

- segmentation-3.0 (``pyannet.py``): 10 s windows [batch, 1, 160000] -> log-probabilities of
  the powerset classes [batch, frames, classes];
- CAM++ (``campplus.py``), split at its statistics pooling so that a recording is run once
  (``diarize.frame_embedding_chunks``): ``frames`` maps mean-normalised fbank [1, 80, T] to
  frame-level features [1, C, T/2]; ``dense`` maps pooled statistics [n, 2C] to embeddings.
  On ONNX Runtime ``frames`` is two graphs: the 2-d convolution head, run ``HEAD_SLICE``
  frames at a time, then the rest (its context layers average over the whole chunk).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from video_extract.models.onnx_export import drop_exports, export_checked, metadata_of, onnx_copy
from video_extract.models.runtime import model_threads, onnx_session

SEGMENTATION_SAMPLES = 160_000  # a 10 s window at 16 kHz, the network's input
_CONFIG_KEYS = ("frame_step", "frame_duration", "num_regular_classes", "powerset_max_classes")


# ------------------------------------------------------------------------------ torch modules
def _pyannet(path: str):
    import torch

    from video_extract.speech.pyannet import PyanNet

    payload = torch.load(path, map_location="cpu", weights_only=True)
    cfg = payload["model"]
    model = PyanNet(cfg["output_dim"], cfg.get("sincnet"), cfg.get("lstm"), cfg.get("linear"), cfg["sample_rate"])
    model.load_state_dict(payload["state_dict"], strict=True)
    return model.eval(), {k: cfg[k] for k in _CONFIG_KEYS}


def _campplus(path: str):
    """CAM++ as (frame level: head and x-vector layers before the pooling, the last layer)."""
    import torch

    from video_extract.speech.campplus import CAMPPlus

    model = CAMPPlus(feat_dim=80, embedding_size=192)
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True), strict=True)
    model.eval()
    before = []
    for name, layer in model.xvector.named_children():
        if name == "stats":
            break
        before.append(layer)
    return torch.nn.Sequential(model.head, *before).eval(), model.xvector.dense


class TorchSegmentation:
    def __init__(self, model):
        self.model = model

    def __call__(self, chunks: np.ndarray, last: bool = False) -> np.ndarray:
        import torch

        # 1 thread per stage on 2 cores: two stages or bulk workers at once, each with 2 torch
        # threads, took 7.5-8.4 s on the demo clip (1 thread: 1.47 s)
        torch.set_num_threads(model_threads())
        with torch.inference_mode():
            return self.model(torch.from_numpy(chunks)).numpy()


class TorchEmbedder:
    def __init__(self, frame_level, dense):
        self.frame_level, self.last = frame_level, dense

    def frames(self, feats: np.ndarray) -> np.ndarray:
        import torch

        torch.set_num_threads(model_threads())
        with torch.inference_mode():
            return self.frame_level(torch.from_numpy(feats)).numpy()

    def dense(self, stats: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            return self.last(torch.from_numpy(stats)).numpy()


class OnnxSegmentation:
    """In ONNX Runtime's memory arena, given back after the last batch of a long recording
    (``last``: ``diarize.segment`` says when; a short one's arena is kept for the next).

    Without the arena each run's tensors came from malloc as aligned blocks, and glibc before
    2.38 does not reuse a freed block for an aligned one unless it has room to spare: the heap
    grew by ~10 MB a batch in some runs, to 2.2 GiB on an hour (measured; the same loop of
    aligned 20 MB blocks kept 260 MB where malloc kept 40). The arena takes its blocks once and
    reuses them (~46 MB held on 2-window batches, as fast), and a run with its shrinkage option
    frees them: a recording's peak, not the process's. (It had been left off when it held
    ~200 MB for 8-window batches for the rest of the process.)"""

    def __init__(self, path: Path, cache_dir: Path | None = None):
        import onnxruntime as ort

        self.session = onnx_session(str(path), model_threads(), arena=True, cache_dir=cache_dir)
        self.config = {k: json.loads(v) for k, v in metadata_of(self.session).items() if k in _CONFIG_KEYS}
        self._give_back = ort.RunOptions()
        self._give_back.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")

    def __call__(self, chunks: np.ndarray, last: bool = False) -> np.ndarray:
        return self.session.run(None, {"waveforms": chunks}, self._give_back if last else None)[0]


# CAM++'s graphs run without ONNX Runtime's memory arena, which would keep the largest
# activations it has seen for the rest of the process; a long recording's runs have their large
# blocks mapped instead (``diarize.frame_embedding_chunks``).


#: Fbank frames the CAM++ head runs at a time. Its activations ([1, 32, 80, T] floats) were most
#: of a 30 s chunk's: the chunk's run peaked 62 MB above its start whole, 33 MB in slices of 500.
HEAD_SLICE = 500

#: How far the head sees along time on each side: ten 3x3 convolutions at stride 1 in time. A
#: slice run with this much more on each side gives its frames' outputs to the same bits.
HEAD_REACH = 10


class OnnxEmbedder:
    def __init__(self, head_path: Path, body_path: Path, dense_path: Path, cache_dir: Path | None = None):
        self._head = onnx_session(str(head_path), model_threads(), arena=False, cache_dir=cache_dir)
        self._body = onnx_session(str(body_path), model_threads(), arena=False, cache_dir=cache_dir)
        self._dense = onnx_session(str(dense_path), 1, cache_dir=cache_dir)

    def frames(self, feats: np.ndarray, slice_frames: int = HEAD_SLICE) -> np.ndarray:
        t = feats.shape[2]
        parts = []
        for a in range(0, t, slice_frames):
            b = min(t, a + slice_frames)
            lo, hi = max(0, a - HEAD_REACH), min(t, b + HEAD_REACH)
            out = self._head.run(None, {"fbank": np.ascontiguousarray(feats[:, :, lo:hi])})[0]
            parts.append(out[:, :, a - lo : b - lo])
        return self._body.run(None, {"head": parts[0] if len(parts) == 1 else np.concatenate(parts, axis=2)})[0]

    def dense(self, stats: np.ndarray) -> np.ndarray:
        return self._dense.run(None, {"stats": stats})[0]


# ------------------------------------------------------------------------------ loading
def segmentation(path: str, onnx_cache: Path | None = None) -> tuple[object, dict]:
    """(the network as numpy -> numpy, its frame geometry and powerset sizes)."""
    if onnx_cache is not None:
        exported = onnx_copy(onnx_cache, "pyannote-segmentation-3.0", Path(path), lambda dest: _export_segmentation(path, dest))
        if exported is not None:
            net = OnnxSegmentation(exported, onnx_cache)
            if set(net.config) == set(_CONFIG_KEYS):
                return net, net.config
    model, cfg = _pyannet(path)
    return TorchSegmentation(model), cfg


def embedder(path: str, onnx_cache: Path | None = None):
    """CAM++ with ``frames`` and ``dense`` (see the module's docstring)."""
    if onnx_cache is not None:
        parts = []
        for part in ("head", "body", "dense"):
            parts.append(onnx_copy(onnx_cache, f"campplus-{part}", Path(path), lambda dest, part=part: _export_campplus(path, dest, part)))
            if parts[-1] is None:
                break
        else:
            drop_exports(onnx_cache, "campplus-frames", Path(path))  # the one graph these two replaced (28 MB)
            return OnnxEmbedder(*parts, onnx_cache)
    return TorchEmbedder(*_campplus(path))


def _export_segmentation(path: str, dest: Path) -> None:
    import torch

    model, cfg = _pyannet(path)
    g = torch.Generator().manual_seed(0)
    speech_like = [(torch.randn(n, 1, SEGMENTATION_SAMPLES, generator=g) * scale,) for n, scale in ((2, 0.1), (1, 0.01), (3, 0.5))]
    # log-probabilities: a difference of 1e-3 moves a class probability by 0.1 %
    export_checked(
        model,
        speech_like,
        dest,
        ["waveforms"],
        ["log_probabilities"],
        {"waveforms": {0: "batch"}, "log_probabilities": {0: "batch"}},
        atol=1e-3,
        metadata={k: json.dumps(v) for k, v in cfg.items()},
    )


def _export_campplus(path: str, dest: Path, part: str) -> None:
    import torch

    frame_level, dense = _campplus(path)
    head, body = frame_level[0], torch.nn.Sequential(*list(frame_level)[1:]).eval()
    g = torch.Generator().manual_seed(0)
    # 3000 fbank frames (the chunk diarize runs), a slice with its reach, a tail of odd length, a short one
    fbanks = [torch.randn(1, 80, t, generator=g) for t in (3000, 2 * HEAD_REACH + HEAD_SLICE, 1234, 11)]
    if part == "head":
        export_checked(head, [(f,) for f in fbanks], dest, ["fbank"], ["head"], {"fbank": {2: "time"}, "head": {2: "time"}}, atol=1e-3)
    elif part == "body":
        with torch.no_grad():
            examples = [(head(f),) for f in fbanks]
        export_checked(body, examples, dest, ["head"], ["features"], {"head": {2: "time"}, "features": {2: "time"}}, atol=1e-3)
    else:
        with torch.inference_mode():
            channels = frame_level(torch.randn(1, 80, 20, generator=g)).shape[1]
        examples = [(torch.randn(n, 2 * channels, generator=g).abs(),) for n in (5, 1)]
        export_checked(dense, examples, dest, ["stats"], ["embeddings"], {"stats": {0: "units"}, "embeddings": {0: "units"}}, atol=1e-3)
