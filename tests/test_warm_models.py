"""Warm models: loaded once per process and kept across requests, within a memory budget that
drops the least recently used idle model first, and never one a running stage holds."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from video_extract import Client
from video_extract.executors import DebugExecutor, Runtime
from video_extract.executors.perf import PerfExecutor
from video_extract.models.warm import WarmModels, warm_models
from video_extract.registry import Registry

from .conftest import SHARED_MODELS, needs_shared_models

MB = 1024 * 1024

HOLD_MODULE = '''
"""Test plugins holding a model: hold_a loads it in setup and keeps it, hold_b loads it in run."""
import time
from pathlib import Path
from typing import ClassVar

from video_extract.plugins.base import Plugin
from video_extract.results import Output
from video_extract.spec import Operation

EVENTS = []  # (what, plugin): setup, teardown


class HeldResult(Output):
    type_name: ClassVar[str] = "Held"

    size: int


class HoldA(Operation):
    name: ClassVar[str] = "hold_a"
    weights: str = ""
    seconds: float = 0.0


class HoldB(Operation):
    name: ClassVar[str] = "hold_b"
    weights: str = ""
    seconds: float = 0.0
    load_after: float = 0.0


class Toy:
    def __init__(self, path):
        self.weights = Path(path).read_bytes()


class HoldAPlugin(Plugin):
    manifest_path = Path(__file__).with_name("hold_a.yaml")
    model = None
    weights = None

    def setup(self, models):
        EVENTS.append(("setup", "a"))
        self.model = models.load(("toy-a", self.weights), lambda: Toy(self.weights))

    def teardown(self):
        EVENTS.append(("teardown", "a"))
        self.model = None
        super().teardown()

    def run(self, ctx, inputs, params):
        deadline = time.monotonic() + params.seconds
        while True:  # a teardown while this runs would leave it without its model
            if self.model is None:
                raise RuntimeError("hold_a lost its model mid-stage")
            if time.monotonic() >= deadline:
                break
            time.sleep(0.01)
        ctx.write(HeldResult(size=len(self.model.weights)))


class HoldBPlugin(Plugin):
    manifest_path = Path(__file__).with_name("hold_b.yaml")

    def run(self, ctx, inputs, params):
        time.sleep(params.load_after)
        model = ctx.models.load(("toy-b", params.weights), lambda: Toy(params.weights))
        time.sleep(params.seconds)
        ctx.write(HeldResult(size=len(model.weights)))
'''


@pytest.fixture
def budget(monkeypatch):
    """Warm models of this test's own: what it loads and drops leaves the process's alone (other
    tests count loads of the models they use)."""
    from video_extract.models import warm

    pool = WarmModels()
    monkeypatch.setattr(warm, "_pool", pool)
    assert warm_models() is pool
    return pool


@pytest.fixture
def hold(tmp_path, monkeypatch):
    """A registry with the hold_a / hold_b test plugins, and a 1 MiB weights file for each."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "hold_plugin.py").write_text(HOLD_MODULE)
    for name, cls in (("hold_a", "HoldAPlugin"), ("hold_b", "HoldBPlugin")):
        (site / f"{name}.yaml").write_text(f'name: {name}\nversion: "1"\noperation: {name}\nplugin: hold_plugin:{cls}\ninputs:\n  - type: File\noutput: Held\n')
    monkeypatch.syspath_prepend(str(site))
    import hold_plugin

    registry = Registry.discover(entry_points=False)
    registry.add_plugin_class(hold_plugin.HoldAPlugin, source="test")
    registry.add_plugin_class(hold_plugin.HoldBPlugin, source="test")
    weights = {}
    for name in ("a", "b"):
        weights[name] = tmp_path / f"{name}.bin"
        weights[name].write_bytes(bytes([ord(name)]) * MB)
    registry.plugin("hold_a").weights = str(weights["a"])
    yield registry, weights, hold_plugin.EVENTS
    sys.modules.pop("hold_plugin", None)


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory) -> Path:
    """61 s (over ``TRIM_AFTER_SEC``: a one-request process lets its models go only on such
    inputs) of a photo at 1 fps, 160x120."""
    from skimage import data

    from video_extract.testing import media

    return media.slideshow_clip(tmp_path_factory.mktemp("long") / "long.mp4", [data.astronaut()], seconds_each=61.0, fps=1, width=160, height=120).path


def _loads(name: str) -> int:
    return sum(count for key, count in warm_models().loads.items() if key[0] == name)


def test_a_second_request_pays_no_model_load(hold, budget, scene_clip, tmp_path):
    registry, weights, events = hold
    executor = DebugExecutor(Runtime(use_cache=False, registry=registry))
    for n in range(2):
        result = executor.run_file(scene_clip.path, [f"hold_a:seconds={n / 10}", f"hold_b:weights={weights['b']}"], tmp_path / "o")
        assert result.status == "ok", result.errors()
    assert events == [("setup", "a")]  # set up once
    assert _loads("toy-a") == 1 and _loads("toy-b") == 1


def test_with_a_small_budget_a_then_b_then_a_reloads_a(hold, budget, scene_clip, tmp_path):
    registry, weights, events = hold
    executor = DebugExecutor(Runtime(use_cache=False, registry=registry, model_memory_budget=int(1.5 * MB)))
    for op in ("hold_a", f"hold_b:weights={weights['b']}", "hold_a:seconds=0.01"):
        assert executor.run_file(scene_clip.path, [op], tmp_path / "o").status == "ok"
    # b's load dropped a (idle, least recently used), tearing hold_a down; a's next stage set it up again.
    assert events == [("setup", "a"), ("teardown", "a"), ("setup", "a")]
    assert _loads("toy-a") == 2 and _loads("toy-b") == 1
    assert [key[0] for key in budget.held()] == ["toy-a"] and budget.used() == MB  # ... dropping b in turn


def test_a_running_stage_keeps_its_models_whatever_others_load(hold, budget, scene_clip, tmp_path):
    """Side by side (perf threads): b loads while a runs; a is over budget but in use, so it stays."""
    registry, weights, events = hold
    executor = PerfExecutor(Runtime(use_cache=False, registry=registry, model_memory_budget=int(1.5 * MB)), threads=4)
    ops = ["hold_a:seconds=0.6", f"hold_b:weights={weights['b']},load_after=0.2,seconds=0.2"]
    result = executor.run_file(scene_clip.path, ops, tmp_path / "o")
    assert result.status == "ok", result.errors()
    a, b = (next(s for s in result.stages if s.plugin == name) for name in ("hold_a", "hold_b"))
    assert a.seconds >= 0.6 and b.seconds >= 0.4 and result.seconds < a.seconds + b.seconds  # side by side: b loaded while a ran
    assert events == [("setup", "a")]  # never torn down under its stage
    assert budget.used() == 2 * MB  # both held, over the budget, while in use
    budget.set_budget(int(1.5 * MB))  # idle now: the least recently used one (b, done first) goes
    assert [key[0] for key in budget.held()] == ["toy-a"] and events == [("setup", "a")]


def test_a_one_request_process_drops_each_model_after_the_last_stage_that_uses_it(hold, budget, scene_clip, long_clip, tmp_path):
    """``keep_models=False`` (the CLI on one input), on an input over a minute: every model is
    gone once no stage left is of a plugin that used it, a set-up one with its plugin torn down;
    the results are those of a process that keeps its models. A short input keeps them."""
    registry, weights, events = hold
    ops = [f"hold_b:weights={weights['b']}", "hold_a"]
    kept = DebugExecutor(Runtime(use_cache=False, registry=registry)).run_file(long_clip, ops, tmp_path / "kept")
    assert kept.status == "ok" and {key[0] for key in budget.held()} == {"toy-a", "toy-b"}
    budget.set_budget(0)  # as a fresh process: both load again below
    events.clear()
    one_request = DebugExecutor(Runtime(use_cache=False, registry=registry, keep_models=False))
    dropped = one_request.run_file(long_clip, ops, tmp_path / "dropped")
    assert dropped.status == "ok", dropped.errors()
    assert _loads("toy-b") == 2 and _loads("toy-a") == 2
    assert budget.held() == {} and events == [("setup", "a"), ("teardown", "a")]
    assert {op: r.data for op, r in dropped.ops.items()} == {op: r.data for op, r in kept.ops.items()}
    assert (tmp_path / "kept" / "long" / "metadata.json").read_bytes() == (tmp_path / "dropped" / "long" / "metadata.json").read_bytes()
    budget.set_budget(None)
    assert one_request.run_file(scene_clip.path, ops, tmp_path / "short").status == "ok"
    assert {key[0] for key in budget.held()} == {"toy-a", "toy-b"}  # 3 s: kept (dropping costs more than it saves)


def test_side_by_side_a_model_is_dropped_when_its_stage_ends_not_under_a_running_one(hold, budget, long_clip, tmp_path):
    """Perf threads, ``keep_models=False``: hold_b's model goes when its stage ends, while hold_a
    still runs on its own (which is not torn down under it); hold_a's goes after."""
    registry, weights, events = hold
    executor = PerfExecutor(Runtime(use_cache=False, registry=registry, keep_models=False), threads=4)
    result = executor.run_file(long_clip, ["hold_a:seconds=0.6", f"hold_b:weights={weights['b']},seconds=0.1"], tmp_path / "o")
    assert result.status == "ok", result.errors()
    assert events == [("setup", "a"), ("teardown", "a")] and budget.held() == {}
    assert budget.evictions == {key: 1 for key in budget.loads}


@needs_shared_models
def test_the_cli_on_one_input_lets_models_go_and_on_two_keeps_them(budget, long_clip, tmp_path):
    from video_extract.cli import main

    argv = ["debug", "--ops", "objects", "--no-cache", "-q", "--models-dir", str(SHARED_MODELS)]
    assert main([*argv, str(long_clip), "-o", str(tmp_path / "one")]) == 0
    assert _loads("yolox") == 1 and budget.held() == {}
    assert main([*argv, str(long_clip), str(long_clip), "-o", str(tmp_path / "two")]) == 0
    assert _loads("yolox") == 2 and [key[0] for key in budget.held()] == ["yolox"]  # loaded once for both inputs


RESIDENT_GROWTH = """
import numpy as np
from video_extract.models.warm import WarmModels
pool = WarmModels(budget=100 * 2**20)
pool.load(("no-path-model",), lambda: np.ones(40 * 2**20 // 8))  # 40 MiB touched
print(pool.held()[("no-path-model",)])
"""


def test_the_budget_counts_model_files_or_resident_memory(tmp_path):
    pool = WarmModels(budget=100 * MB)
    weights = tmp_path / "w.bin"
    weights.write_bytes(b"\0" * (3 * MB))
    pool.load(("file-model", str(weights)), object)
    assert pool.held() == {("file-model", str(weights)): 3 * MB}
    # Resident growth is measured in a process of its own: in the test session other threads
    # free memory while a model loads, which makes the growth there meaningless.
    done = subprocess.run([sys.executable, "-c", RESIDENT_GROWTH], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert 30 * MB <= int(done.stdout) <= 60 * MB
    pool.set_budget(1 * MB)  # an idle model over a lowered budget goes at once
    assert pool.held() == {} and pool.evictions == {("file-model", str(weights)): 1}


def test_a_model_held_by_a_stage_is_kept_and_dropped_once_the_stage_ends(tmp_path):
    pool = WarmModels(budget=int(1.5 * MB))
    x, y, z = (tmp_path / f"{name}.bin" for name in "xyz")
    for path, size in ((x, MB), (y, MB), (z, MB // 4)):
        path.write_bytes(b"\0" * size)
    scope = pool.enter()
    first = pool.load(("x", str(x)), lambda: ["x"], scope)
    pool.load(("y", str(y)), lambda: ["y"])  # no room, and x is in use: loaded over the budget
    assert pool.held() == {("x", str(x)): MB, ("y", str(y)): MB}
    assert pool.load(("x", str(x)), lambda: ["again"]) is first and pool.loads[("x", str(x))] == 1
    pool.leave(scope)
    pool.load(("z", str(z)), lambda: ["z"])  # room for z: y, the least recently used, goes; x fits
    assert pool.held() == {("x", str(x)): MB, ("z", str(z)): MB // 4}


@needs_shared_models
def test_real_detectors_stay_warm_and_a_small_budget_reloads(budget, still_png, tmp_path):
    client = Client(use_cache=False, output_dir=tmp_path / "o", models_dir=SHARED_MODELS)
    for _ in range(2):
        assert client.run(still_png, "objects").ok
    assert _loads("yolox") == 1  # the second request loaded nothing
    small = Client(use_cache=False, output_dir=tmp_path / "o", models_dir=SHARED_MODELS, model_memory_budget=MB)
    for op in ("faces", "objects"):
        assert small.run(still_png, op).ok
    assert _loads("yolox") == 2 and _loads("yunet") == 1  # faces' load dropped YOLOX (3.6 MB, over a 1 MiB budget)
