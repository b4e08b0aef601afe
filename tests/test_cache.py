"""The cache: warm runs, invalidation, interrupted and concurrent writers, eviction."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from video_extract import Client
from video_extract.cache import ENTRY_FILE, Cache
from video_extract.executors import DebugExecutor, Runtime
from video_extract.media import decode_counters
from video_extract.plugins.base import Plugin
from video_extract.registry import Registry

OPS = ["metadata", "audio", "frames", "keyframes", "scenes"]


def output_files(directory: Path) -> dict[str, bytes]:
    return {p.relative_to(directory).as_posix(): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file() and p.name != "summary.json"}


def test_warm_run_returns_identical_outputs_and_runs_no_plugin(scene_clip, tmp_path, monkeypatch):
    cold = Client(cache_dir=tmp_path / "cache", output_dir=tmp_path / "cold").run(scene_clip.path, OPS)
    assert cold.ok and not any(s.cached for s in cold.result.stages)

    def refuse(*args, **kwargs):
        raise AssertionError("a plugin ran on a warm cache")

    monkeypatch.setattr(Plugin, "run", refuse)
    monkeypatch.setattr(Plugin, "stream", refuse)
    decoded_before = decode_counters["frames_decoded"]
    warm = Client(cache_dir=tmp_path / "cache", output_dir=tmp_path / "warm").run(scene_clip.path, OPS)
    assert warm.ok, warm.errors
    assert all(s.cached for s in warm.result.stages)
    assert decode_counters["frames_decoded"] == decoded_before
    assert output_files(cold.output_dir) == output_files(warm.output_dir)


def _registry_with(overrides: dict) -> Registry:
    registry = Registry.discover(entry_points=False)
    for name, changes in overrides.items():
        registry.manifests[name] = registry.manifests[name].model_copy(update=changes)
    return registry


def _run(registry: Registry, clip, cache: Path, out: Path, ops):
    return Client(executor=DebugExecutor(Runtime(cache_dir=cache, registry=registry)), output_dir=out).run(clip, ops)


def test_version_bump_reruns_that_plugin_and_its_dependents_only(scene_clip, tmp_path):
    first = _run(_registry_with({}), scene_clip.path, tmp_path / "c", tmp_path / "o", ["keyframes", "scenes"])
    assert first.ok
    bumped = _registry_with({"scenes": {"version": "999"}})
    second = _run(bumped, scene_clip.path, tmp_path / "c", tmp_path / "o", ["keyframes", "scenes"])
    cached = {s.plugin: s.cached for s in second.result.stages}
    assert cached == {"metadata": True, "keyframes": True, "scenes": False}


def test_invalidate_before_ignores_older_entries(scene_clip, tmp_path):
    _run(_registry_with({}), scene_clip.path, tmp_path / "c", tmp_path / "o", ["keyframes"])
    later = datetime.now(UTC) + timedelta(seconds=1)
    manifest = Registry.discover(entry_points=False).manifests["keyframes"]
    registry = _registry_with({"keyframes": {"cache": manifest.cache.model_copy(update={"invalidate_before": later})}})
    again = _run(registry, scene_clip.path, tmp_path / "c", tmp_path / "o", ["keyframes"])
    assert again.result.stages[0].cached is False


KILLED_WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from video_extract import Client
    from video_extract.plugins import frames

    marker = Path(sys.argv[3])

    def slow_stream(self, ctx, inputs, params):
        (ctx.work_dir / "frames").mkdir()
        (ctx.work_dir / "frames" / "frame_00000.jpg").write_bytes(b"half a jpeg")
        marker.write_text(str(ctx.work_dir))
        time.sleep(600)
        yield {}

    frames.FramesPlugin.stream = slow_stream
    Client(cache_dir=sys.argv[1], output_dir=sys.argv[2]).run(sys.argv[4], ["frames"])
    """
)


def test_a_killed_write_leaves_no_entry_that_is_served(scene_clip, tmp_path):
    cache_dir, marker = tmp_path / "cache", tmp_path / "started"
    script = tmp_path / "writer.py"
    script.write_text(KILLED_WRITER)
    proc = subprocess.Popen([sys.executable, str(script), str(cache_dir), str(tmp_path / "o1"), str(marker), str(scene_clip.path)])
    deadline = time.time() + 60
    while not marker.exists() and time.time() < deadline:
        time.sleep(0.05)
    assert marker.exists(), "the writer never started"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert Path(marker.read_text()).exists()  # its half-written work is still on disk ...
    assert Cache(cache_dir).stats()["entries"] == 0  # ... but it is not an entry

    result = Client(cache_dir=cache_dir, output_dir=tmp_path / "o2").run(scene_clip.path, ["frames"])
    assert result.ok and result.result.stages[0].cached is False
    assert len(result.frames.frames) == 3
    assert all(p.stat().st_size > 1000 for p in (result.output_dir / "frames").glob("*.jpg"))
    assert not Path(marker.read_text()).exists()  # the dead writer's leftovers were swept


def test_an_entry_without_its_marker_is_never_served(tmp_path):
    cache = Cache(tmp_path)
    work = cache.new_work_dir("k" * 40)
    (work / "x.json").write_text("{}")
    entry = cache.commit("k" * 40, work, {"n": 1}, {"plugin": "t"})
    (entry.path / ENTRY_FILE).unlink()  # as if the marker never made it to disk
    assert cache.get("k" * 40) is None
    assert not entry.path.exists()


CONCURRENT_WRITER = textwrap.dedent(
    """
    import sys
    from video_extract import Client
    r = Client(cache_dir=sys.argv[1], output_dir=sys.argv[2]).run(sys.argv[3], ["frames", "scenes", "audio"])
    assert r.ok, r.errors
    """
)


def test_two_processes_writing_the_same_keys(scene_clip, tmp_path):
    script = tmp_path / "w.py"
    script.write_text(CONCURRENT_WRITER)
    procs = [subprocess.Popen([sys.executable, str(script), str(tmp_path / "cache"), str(tmp_path / f"o{i}"), str(scene_clip.path)]) for i in range(2)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    stats = Cache(tmp_path / "cache").stats()
    assert stats["entries"] == 4  # frames, scenes, audio and the metadata every input gets
    assert output_files(tmp_path / "o0" / "scenes") == output_files(tmp_path / "o1" / "scenes")
    assert not list((tmp_path / "cache" / "v1" / "tmp").iterdir())


def _put(cache: Cache, key: str, size: int) -> None:
    work = cache.new_work_dir(key)
    (work / "blob").write_bytes(b"x" * size)
    cache.commit(key, work, {}, {"plugin": "blob"})


def test_size_cap_evicts_least_recently_used(tmp_path):
    cache = Cache(tmp_path, max_bytes=10_000_000)
    for i, key in enumerate(["a" * 40, "b" * 40, "c" * 40]):
        _put(cache, key, 3000)
        os.utime(cache._entry_dir(key) / ENTRY_FILE, (1000 + i, 1000 + i))
    assert cache.get("a" * 40) is not None  # a is now the most recently used
    removed, _ = cache.evict(max_bytes=7000)  # over by one entry: evicts to 90 % of the cap
    assert removed == 1
    assert cache.get("b" * 40) is None and cache.get("a" * 40) and cache.get("c" * 40)


def test_stats_and_clear(tmp_path):
    cache = Cache(tmp_path)
    _put(cache, "d" * 40, 100)
    stats = cache.stats()
    assert stats["entries"] == 1 and stats["bytes"] >= 100 and stats["plugins"]["blob"]["entries"] == 1
    assert cache.clear() == (1, stats["bytes"])
    assert cache.stats()["entries"] == 0


def test_invalidated_entry_is_replaced_not_served(tmp_path):
    cache = Cache(tmp_path)
    key = "e" * 40
    work = cache.new_work_dir(key)
    (work / "v.txt").write_text("old")
    cache.commit(key, work, {"v": "old"}, {"plugin": "t"})
    cutoff = datetime.now(UTC) + timedelta(seconds=1)
    assert cache.get(key, cutoff) is None
    work = cache.new_work_dir(key)
    (work / "v.txt").write_text("new")
    time.sleep(1.1)
    entry = cache.commit(key, work, {"v": "new"}, {"plugin": "t"}, cutoff)
    assert entry.data == {"v": "new"} and (entry.path / "v.txt").read_text() == "new"
    assert cache.get(key, cutoff).data == {"v": "new"}


def test_commit_over_a_corrupt_entry_replaces_it(tmp_path):
    cache = Cache(tmp_path)
    key = "f" * 40
    broken = cache._entry_dir(key)
    broken.mkdir(parents=True)
    (broken / ENTRY_FILE).write_text("{not json")
    work = cache.new_work_dir(key)
    (work / "v.txt").write_text("good")
    entry = cache.commit(key, work, {"v": 1}, {"plugin": "t"})
    assert (entry.path / "v.txt").read_text() == "good" and cache.get(key).data == {"v": 1}
