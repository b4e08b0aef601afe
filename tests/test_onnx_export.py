"""Torch modules run on ONNX Runtime (models/onnx_export.py): exported once and reused while the
weights are unchanged, refused when the export does not compute what torch does, and torch
kept wherever no export can be made."""

from __future__ import annotations

import logging

import pytest

from video_extract.models.onnx_export import ExportMismatch, drop_exports, export_checked, onnx_copy


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


def test_a_new_version_of_the_weights_replaces_the_export_of_the_old_one(tmp_path):
    """Weights copied anew at each deploy (a new mtime) used to leave one more export, and its
    optimized graph, in the cache each time."""
    cache = tmp_path / "cache"
    weights, elsewhere = tmp_path / "a" / "weights.pt", tmp_path / "b" / "weights.pt"
    for path in (weights, elsewhere):
        path.parent.mkdir()
        path.write_bytes(b"first")

    def export(dest):
        dest.write_bytes(b"graph")

    first = onnx_copy(cache, "net", weights, export)
    other_place = onnx_copy(cache, "net", elsewhere, export)  # another models folder sharing the cache
    other_model = onnx_copy(cache, "net2", weights, export)
    (cache / "ort").mkdir()
    optimized = cache / "ort" / f"{first.stem}-0123abcd4567ef89.onnx"  # as runtime.optimized_once names it
    optimized.write_bytes(b"optimized")
    weights.write_bytes(b"retrained")
    second = onnx_copy(cache, "net", weights, export)
    assert second.is_file() and not first.exists() and not optimized.exists()
    assert other_place.is_file() and other_model.is_file()  # not versions of the same weights file
    kept = sorted(p.name for p in (second, other_place, other_model))
    assert sorted(p.name for p in (cache / "onnx").iterdir()) == sorted(kept + [name + ".source" for name in kept])  # each with its sidecar


def _age(path, days: float) -> None:
    import os
    import time

    stamp = time.time() - days * 24 * 3600
    os.utime(path, (stamp, stamp))


def test_exports_of_weights_no_longer_there_go_a_day_later_with_their_graphs(tmp_path):
    """A service deployed into a new folder each release: the export of each earlier release's
    weights (90 MB for MiniLM) and its optimized graphs stayed in the cache for good."""
    cache = tmp_path / "cache"
    releases = [tmp_path / f"release{n}" / "weights.pt" for n in (1, 2, 3)]
    for path in releases:
        path.parent.mkdir()
        path.write_bytes(b"same weights")

    def export(dest):
        dest.write_bytes(b"graph")

    first, second = (onnx_copy(cache, "net", path, export) for path in releases[:2])
    assert (cache / "onnx" / f"{first.name}.source").read_text() == str(releases[0])
    (cache / "ort").mkdir()
    graph = cache / "ort" / f"{first.stem}-0123abcd4567ef89.onnx"  # as runtime.optimized_once names it
    graph.write_bytes(b"optimized")
    import shutil

    shutil.rmtree(releases[0].parent)  # release 1 deleted
    third = onnx_copy(cache, "net", releases[2], export)
    assert first.exists() and graph.exists()  # within the day: a cache shared by machines that mount it elsewhere
    _age(cache / "onnx" / f"{first.name}.source", days=1.1)
    _age(cache / "onnx" / f"{second.name}.source", days=1.1)  # old, but its weights are there
    shutil.rmtree(releases[2].parent)
    releases[2].parent.mkdir()
    releases[2].write_bytes(b"release 3, retrained")
    fourth = onnx_copy(cache, "net", releases[2], export)  # any new export looks
    assert not first.exists() and not (cache / "onnx" / f"{first.name}.source").exists() and not graph.exists()
    assert second.is_file() and fourth.is_file() and not third.exists()  # third: an earlier version at the same path
    assert sorted(p.name for p in (cache / "onnx").iterdir()) == sorted([second.name, fourth.name, f"{second.name}.source", f"{fourth.name}.source"])


def test_copies_without_a_sidecar_and_lone_sidecars_go_once_a_day_old(tmp_path):
    """Copies made before sidecars name no source: kept a day like any other, then made again
    from their source, with a sidecar, by the next process that wants them."""
    from video_extract.models.derived import remove_orphans

    folder = tmp_path / "ort"
    folder.mkdir()
    old, recent = folder / "old-1234.onnx", folder / "recent-1234.onnx"
    for path in (old, recent):
        path.write_bytes(b"graph")
    _age(old, days=2)
    lone, coming = folder / "gone-1234.onnx.source", folder / "coming-1234.onnx.source"
    for sidecar in (lone, coming):  # coming: its copy is about to be renamed in by another process
        sidecar.write_text(str(tmp_path))
    _age(lone, days=2)
    assert remove_orphans(folder) == [old]
    assert sorted(p.name for p in folder.iterdir()) == [coming.name, recent.name]


def test_a_crashed_writers_temporaries_go_a_live_writers_stay(tmp_path):
    """A process killed while it optimized a graph left a hidden folder of ~90 MB (MiniLM) for good."""
    import os
    import subprocess
    import sys

    from video_extract.fsutil import HOST
    from video_extract.models.derived import remove_orphans

    folder = tmp_path / "ort"
    folder.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True).stdout.strip()
    crashed = folder / f".net-1234.onnx.{HOST}.{dead}.0123abcd.tmp"
    (crashed / "model.onnx.data").parent.mkdir()
    (crashed / "model.onnx.data").write_bytes(b"weights")
    torn_sidecar = folder / f".net-1234.onnx.source.{HOST}.{dead}.4567ef01.tmp"
    torn_sidecar.write_text("/x")
    live = folder / f".net-5678.onnx.{HOST}.{os.getpid()}.89abcdef.tmp"  # this process, still writing
    live.mkdir()
    remove_orphans(folder)
    assert not crashed.exists() and not torn_sidecar.exists() and live.is_dir()


def test_an_export_replaced_by_others_is_dropped_with_its_optimized_graph(tmp_path):
    """CAM++'s single ``frames`` graph, now two: a cache made before holds 28 MB nothing loads."""
    cache = tmp_path / "cache"
    weights = tmp_path / "weights.pt"
    weights.write_bytes(b"w")

    def export(dest):
        dest.write_bytes(b"graph")

    old = onnx_copy(cache, "net-frames", weights, export)
    kept = [onnx_copy(cache, name, weights, export) for name in ("net-head", "net-body", "net-frames-x")]
    (cache / "ort").mkdir()
    optimized = cache / "ort" / f"{old.stem}-0123abcd4567ef89.onnx"
    optimized.write_bytes(b"optimized")
    drop_exports(cache, "net-frames", weights)
    assert not old.exists() and not optimized.exists()
    assert all(path.is_file() for path in kept)
    drop_exports(cache, "net-frames", weights)  # none left: nothing to do


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


def _conv_net(path, seed: int = 0):
    """A small conv net (conv+relu, conv, global pool, matmul): graphs ONNX Runtime fuses and
    lays out for the CPU, so the optimized copy differs from the file."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    inits = [
        numpy_helper.from_array(rng.normal(size=(16, 3, 3, 3)).astype(np.float32), "w1"),
        numpy_helper.from_array(rng.normal(size=16).astype(np.float32), "b1"),
        numpy_helper.from_array(rng.normal(size=(32, 16, 3, 3)).astype(np.float32), "w2"),
        numpy_helper.from_array(rng.normal(size=(32, 8)).astype(np.float32), "fc"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2"], ["c2"], pads=[1, 1, 1, 1]),
        helper.make_node("GlobalAveragePool", ["c2"], ["p"]),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("MatMul", ["f", "fc"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "net",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 32, 32])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8])],
        inits,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_a_session_is_optimized_once_and_loaded_as_optimized_with_the_same_outputs(tmp_path):
    import os

    import numpy as np
    import onnxruntime as ort

    from video_extract.models.runtime import onnx_session

    pytest.importorskip("onnx")
    model = _conv_net(tmp_path / "net.onnx")
    x = np.random.default_rng(1).normal(size=(1, 3, 32, 32)).astype(np.float32)
    plain = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    cache = tmp_path / "cache"
    first = onnx_session(str(model), threads=1, cache_dir=cache)
    kept = list((cache / "ort").glob("*.onnx"))
    assert len(kept) == 1 and kept[0].name.startswith("net-") and (kept[0] / "model.onnx").read_bytes() != model.read_bytes()
    # the weights in a file of their own, which ONNX Runtime maps instead of reading into the heap
    assert (kept[0] / "model.onnx.data").stat().st_size > 18 * 1024 > (kept[0] / "model.onnx").stat().st_size
    assert (cache / "ort" / f"{kept[0].name}.source").read_text() == str(model)  # what it was made from
    stamp = (kept[0] / "model.onnx").stat().st_mtime_ns
    second = onnx_session(str(model), threads=1, cache_dir=cache)  # loaded from the copy, not optimized again
    assert (kept[0] / "model.onnx").stat().st_mtime_ns == stamp and list((cache / "ort").glob("*.onnx")) == kept
    for session in (first, second):
        assert np.array_equal(session.run(None, {"x": x})[0], plain)  # the same bits, not merely close

    other = _conv_net(tmp_path / "other" / "net.onnx", seed=3)  # another model of the same name: a copy of its own
    onnx_session(str(other), threads=1, cache_dir=cache)
    assert len(list((cache / "ort").glob("*.onnx"))) == 2 and kept[0].exists()
    stamp = model.stat().st_mtime_ns
    _conv_net(model, seed=2)  # a new version at the same path: its copy replaces the old one
    os.utime(model, ns=(stamp + 10**9, stamp + 10**9))  # same size: a later mtime tells it apart (as a copy or an edit does)
    third = onnx_session(str(model), threads=1, cache_dir=cache)
    moved = tmp_path / "moved" / "net.onnx"  # a model file no longer there: its copy goes a day later
    moved.parent.mkdir()
    other.rename(moved)
    (other_copy,) = [p for p in (cache / "ort").glob("*.onnx") if (cache / "ort" / f"{p.name}.source").read_text() == str(other)]
    _age(cache / "ort" / f"{other_copy.name}.source", days=1.1)
    onnx_session(str(moved), threads=1, cache_dir=cache)  # any new copy looks
    assert not other_copy.exists() and len(list((cache / "ort").glob("*.onnx"))) == 2
    assert len(list((cache / "ort").glob("*.onnx"))) == 2 and not kept[0].exists() and len(list((cache / "ort").iterdir())) == 4
    assert np.array_equal(third.run(None, {"x": x})[0], ort.InferenceSession(str(model), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0])


def test_a_copy_of_the_earlier_layout_one_file_is_replaced_by_a_folder(tmp_path):
    """Copies were one file, weights inside, read into the heap at every load; a cache made then
    holds one per model, which the folder of the same model's place replaces."""
    import shutil

    from video_extract.models.runtime import onnx_session

    pytest.importorskip("onnx")
    model = _conv_net(tmp_path / "net.onnx")
    cache = tmp_path / "cache"
    onnx_session(str(model), threads=1, cache_dir=cache)
    (folder,) = (cache / "ort").glob("*.onnx")
    legacy = folder.with_name(folder.name[: -len("0123abcd.onnx")] + "0123abcd.onnx")  # the same place, another version
    shutil.copy(folder / "model.onnx", legacy)
    shutil.rmtree(folder)
    onnx_session(str(model), threads=1, cache_dir=cache)
    assert (folder / "model.onnx").is_file() and not legacy.exists()


def test_a_damaged_optimized_copy_is_made_again_and_an_unwritable_cache_only_costs_time(tmp_path):
    import numpy as np

    from video_extract.models.runtime import onnx_session

    pytest.importorskip("onnx")
    model = _conv_net(tmp_path / "net.onnx")
    x = np.ones((1, 3, 32, 32), np.float32)
    cache = tmp_path / "cache"
    expected = onnx_session(str(model), threads=1, cache_dir=cache).run(None, {"x": x})[0]
    (folder,) = (cache / "ort").glob("*.onnx")
    copy = folder / "model.onnx.data"
    copy.write_bytes(copy.read_bytes()[:100])  # torn by a full disk
    assert np.array_equal(onnx_session(str(model), threads=1, cache_dir=cache).run(None, {"x": x})[0], expected)
    assert copy.stat().st_size > 100 and not [p for p in (cache / "ort").iterdir() if p.name.startswith(".")]

    blocked = tmp_path / "not-a-folder"  # a cache that cannot be written (even by root)
    blocked.write_bytes(b"")
    assert np.array_equal(onnx_session(str(model), threads=1, cache_dir=blocked / "cache").run(None, {"x": x})[0], expected)
