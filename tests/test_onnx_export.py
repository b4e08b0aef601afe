"""Torch modules run on ONNX Runtime (models/onnx_export.py): exported once and reused while the
weights are unchanged, refused when the export does not compute what torch does, and torch
kept wherever no export can be made."""

from __future__ import annotations

import logging

import pytest

from video_extract.models.onnx_export import ExportMismatch, export_checked, onnx_copy


def test_an_export_is_made_once_and_made_again_for_new_weights(tmp_path):
    weights = tmp_path / "weights.pt"
    weights.write_bytes(b"first")
    made = []

    def export(dest):
        made.append(dest)
        dest.write_bytes(b"graph %d" % len(made))

    first = onnx_copy(tmp_path / "cache", "net", weights, export)
    assert first is not None and first.read_bytes() == b"graph 1"
    assert onnx_copy(tmp_path / "cache", "net", weights, export) == first and len(made) == 1
    weights.write_bytes(b"retrained")  # new weights at the same path: the old graph is not theirs
    second = onnx_copy(tmp_path / "cache", "net", weights, export)
    assert second != first and second.read_bytes() == b"graph 2"


def test_a_failed_export_leaves_nothing_behind_and_the_caller_runs_torch(tmp_path, caplog):
    weights = tmp_path / "weights.pt"
    weights.write_bytes(b"w")

    def export(dest):
        dest.write_bytes(b"half a graph")
        raise RuntimeError("the exporter does not know this operator")

    with caplog.at_level(logging.WARNING, logger="video_extract"):
        assert onnx_copy(tmp_path / "cache", "net", weights, export) is None
    assert list((tmp_path / "cache" / "onnx").iterdir()) == []
    assert "net: not exported to ONNX (RuntimeError: the exporter does not know this operator); running it on torch" in caplog.text


def test_an_export_that_computes_something_else_than_torch_is_refused(tmp_path):
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")

    class SignDependent(torch.nn.Module):
        def forward(self, x):
            return x if float(x.sum()) > 0 else -x  # tracing freezes the branch the first example takes

    examples = [(torch.ones(3),), (-torch.ones(3),)]
    with pytest.raises(ExportMismatch, match="differ from torch's by up to 2"):
        export_checked(SignDependent(), examples, tmp_path / "net.onnx", ["x"], ["y"], {"x": {0: "n"}}, atol=1e-5)
    weights = tmp_path / "weights.pt"
    weights.write_bytes(b"w")
    export = lambda dest: export_checked(SignDependent(), examples, dest, ["x"], ["y"], {"x": {0: "n"}}, atol=1e-5)  # noqa: E731
    assert onnx_copy(tmp_path / "cache", "net", weights, export) is None
    assert list((tmp_path / "cache" / "onnx").iterdir()) == []
