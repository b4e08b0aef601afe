"""Torch models run on ONNX Runtime: exported once per weights file, checked against torch, kept
in the model cache.

Why: a process that imports torch pays ~0.8 s on 2 cores before its first forward pass (and,
as an import holds the GIL, stalls the other stages that start beside it), plus ~0.3 s of a
slow first call. ONNX Runtime is loaded anyway for the vision models, starts a small session
in tens of milliseconds and runs these encoders at least as fast. The torch modules stay the
reference: an export is kept only when its outputs match theirs on sample input, and they
run wherever an export cannot be made (the ``onnx`` package missing, an exporter error).
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np

from video_extract.fsutil import fingerprint
from video_extract.models import derived

log = logging.getLogger("video_extract")

#: Bump when an export function changes what it writes: older copies are then not reused.
EXPORT_VERSION = 1


class ExportMismatch(RuntimeError):
    """The exported graph does not compute what the torch module does."""


def onnx_copy(cache_dir: Path, name: str, weights: Path, export: Callable[[Path], None]) -> Path | None:
    """The ONNX file for ``name`` exported from ``weights`` (made by ``export(path)`` the first
    time, then reused while the weights are unchanged); None where it cannot be made, so that
    the caller runs the torch module instead.

    Named by where the weights are, then by their version: once a new version's export is in,
    the copies of earlier versions of the same weights file go, with their optimized graphs
    (``ort/``, ``runtime.optimized_once``); a service whose weights are copied anew at every
    deploy would otherwise keep one more export of each model (tens to hundreds of MB) each time."""
    version = hashlib.sha256(f"{EXPORT_VERSION}:{fingerprint(weights)}".encode()).hexdigest()[:8]
    target = cache_dir / "onnx" / f"{_named(name, weights)}{version}.onnx"
    if target.is_file():
        return target
    if importlib.util.find_spec("onnx") is None:
        log.info("%s: the onnx package is not installed; running it on torch", name)
        return None
    try:
        log.info("%s: exporting to ONNX once (%s)", name, target)
        derived.write_with_source(target, weights, export)
    except Exception as exc:  # noqa: BLE001 - any failure to export means "run it on torch"
        log.warning("%s: not exported to ONNX (%s: %s); running it on torch", name, type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "")
        return None
    graphs = _graphs_dropper(cache_dir)
    derived.remove_others(target.parent, _named(name, weights), keep=target, then=graphs)  # earlier versions of these weights
    derived.remove_orphans(target.parent, then=graphs)  # exports of weights no longer there (an earlier release's folder)
    return target


def _named(name: str, weights: Path) -> str:
    """The start of the file name of every export of ``name`` from the weights at ``weights``."""
    return f"{name}-{hashlib.sha256(f'{name}:{weights.resolve()}'.encode()).hexdigest()[:8]}"


def drop_exports(cache_dir: Path, name: str, weights: Path) -> None:
    """Remove every export of ``name`` from ``weights``, with its optimized graphs: for an export
    that others have replaced (CAM++'s ``frames``, now its ``head`` and ``body``)."""
    derived.remove_others(cache_dir / "onnx", _named(name, weights), then=_graphs_dropper(cache_dir))


def _graphs_dropper(cache_dir: Path) -> Callable[[Path], None]:
    """What removes the graphs ONNX Runtime optimized from an export (``runtime.optimized_once``
    names them after it), once the export goes. A process still running one has it loaded already."""
    return lambda export: derived.remove_others(cache_dir / "ort", f"{export.stem}-")


def export_checked(
    module,
    examples: list[tuple],
    path: Path,
    input_names: list[str],
    output_names: list[str],
    dynamic_axes: dict,
    atol: float,
    metadata: dict[str, str] | None = None,
) -> None:
    """``torch.onnx.export`` of ``module`` on ``examples[0]``, then every example run both ways:
    raises ExportMismatch when an output differs from torch's by more than ``atol``.
    ``metadata``: facts the ONNX side needs without torch (read back by ``metadata_of``)."""
    import warnings

    import torch

    from video_extract.models.runtime import onnx_session

    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's deprecation and LSTM batch notes: checked below instead
        torch.onnx.export(
            module, examples[0], str(path), input_names=input_names, output_names=output_names, dynamic_axes=dynamic_axes, opset_version=17, dynamo=False
        )
        if metadata:
            import onnx

            graph = onnx.load(str(path))
            for k, v in metadata.items():
                graph.metadata_props.add(key=k, value=v)
            onnx.save(graph, str(path))
        session = onnx_session(str(path), threads=1, keep_optimized=False)
        for example in examples:
            want = module(*example)
            want = want if isinstance(want, tuple) else (want,)
            got = session.run(None, {n: t.numpy() for n, t in zip(input_names, example)})
            for w, g in zip(want, got):
                if w.shape != g.shape:
                    raise ExportMismatch(f"output shape {tuple(g.shape)}, torch gives {tuple(w.shape)}")
                worst = float(np.max(np.abs(w.numpy() - g))) if g.size else 0.0
                if worst > atol:
                    raise ExportMismatch(f"outputs differ from torch's by up to {worst:.2g} (allowed {atol:g})")


def metadata_of(session) -> dict[str, str]:
    """The ``metadata`` an export was written with."""
    return dict(session.get_modelmeta().custom_metadata_map)
