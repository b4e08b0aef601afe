"""The cache: warm runs, invalidation, interrupted and concurrent writers, eviction."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from video_extract import Client
from video_extract.cache import ENTRY_FILE, Cache
from video_extract.executors import DebugExecutor, Runtime
from video_extract.media import decode_counters
from video_extract.plugins.base import Plugin
from video_extract.registry import Registry

from .conftest import run_cli

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


# -- verified hits ----------------------------------------------------------------------------


def _entry_files(cache_dir: Path, plugin: str) -> list[Path]:
    """The files of the one cached entry of ``plugin`` (its marker left out)."""
    cache = Cache(cache_dir)
    [path] = [row[2] for row in cache._scan() if row[3]["plugin"] == plugin]
    return sorted(p for p in path.rglob("*") if p.is_file() and p.name != ENTRY_FILE)


def _damage(path: Path, how: str) -> None:
    if how == "delete":
        path.unlink()
    elif how == "truncate":
        with open(path, "r+b") as f:
            f.truncate(path.stat().st_size // 2)
    else:  # same size, one byte changed: only a digest sees it
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("plugin", "suffix", "how", "verify"),
    [
        ("scenes", ".json", "truncate", "size"),
        ("audio", ".wav", "truncate", "size"),
        ("keyframes", ".jpg", "delete", "size"),
        ("metadata", ".json", "flip", "size"),  # same size: the record no longer reads back
        ("frames", ".jpg", "flip", "full"),  # same size, binary: only a digest sees it
        ("audio", ".wav", "flip", "full"),
    ],
)
def test_a_damaged_entry_is_recomputed_and_outputs_are_correct(scene_clip, tmp_path, caplog, plugin, suffix, how, verify):
    cache_dir = tmp_path / "cache"
    reference = Client(cache_dir=cache_dir, output_dir=tmp_path / "ref").run(scene_clip.path, OPS)
    assert reference.ok
    victim = next(p for p in _entry_files(cache_dir, plugin) if p.suffix == suffix)
    _damage(victim, how)

    with caplog.at_level("WARNING", logger="video_extract"):
        again = Client(cache_dir=cache_dir, output_dir=tmp_path / "again", cache_verify=verify).run(scene_clip.path, OPS)
    assert again.ok, again.errors
    cached = {s.plugin: s.cached for s in again.result.stages}
    assert cached.pop(plugin) is False  # recomputed ...
    assert all(cached.values())  # ... and only that stage
    warnings = [r.getMessage() for r in caplog.records if "damaged" in r.getMessage()]
    assert len(warnings) == 1 and plugin in warnings[0], warnings
    assert output_files(again.output_dir) == output_files(reference.output_dir)
    # The entry was replaced by a sound one: the next run hits everything, silently.
    caplog.clear()
    third = Client(cache_dir=cache_dir, output_dir=tmp_path / "third", cache_verify="full").run(scene_clip.path, OPS)
    assert all(s.cached for s in third.result.stages)
    assert not [r for r in caplog.records if "damaged" in r.getMessage()]


def test_size_policy_trusts_same_size_binary_files(scene_clip, tmp_path):
    """What the default does not see (and ``full`` does): a same-size change inside a JPEG."""
    cache_dir = tmp_path / "cache"
    assert Client(cache_dir=cache_dir, output_dir=tmp_path / "o1").run(scene_clip.path, ["frames"]).ok
    victim = _entry_files(cache_dir, "frames")[0]
    _damage(victim, "flip")
    sized = Client(cache_dir=cache_dir, output_dir=tmp_path / "o2").run(scene_clip.path, ["frames"])
    assert {s.plugin: s.cached for s in sized.result.stages}["frames"] is True
    full = Client(cache_dir=cache_dir, output_dir=tmp_path / "o3", cache_verify="full").run(scene_clip.path, ["frames"])
    assert full.ok and {s.plugin: s.cached for s in full.result.stages}["frames"] is False


def test_a_damaged_npy_of_embeddings_is_recomputed(speech_clip, tmp_path):
    cache_dir = tmp_path / "cache"
    ops = ["text_embeddings"]
    reference = Client(cache_dir=cache_dir, output_dir=tmp_path / "ref").run(speech_clip[0], ops)
    assert reference.ok, reference.errors
    [victim] = [p for p in _entry_files(cache_dir, "text_embeddings") if p.suffix == ".npy"]
    _damage(victim, "truncate")
    again = Client(cache_dir=cache_dir, output_dir=tmp_path / "again").run(speech_clip[0], ops)
    assert again.ok, again.errors
    assert {s.plugin: s.cached for s in again.result.stages}["text_embeddings"] is False
    assert output_files(again.output_dir) == output_files(reference.output_dir)


def test_an_entry_of_an_older_version_without_digests_is_recomputed(scene_clip, tmp_path):
    cache_dir = tmp_path / "cache"
    assert Client(cache_dir=cache_dir, output_dir=tmp_path / "o1").run(scene_clip.path, ["scenes"]).ok
    cache = Cache(cache_dir)
    [row] = [r for r in cache._scan() if r[3]["plugin"] == "scenes"]
    meta = row[3]
    del meta["files"]
    (row[2] / ENTRY_FILE).write_text(json.dumps(meta))
    again = Client(cache_dir=cache_dir, output_dir=tmp_path / "o2").run(scene_clip.path, ["scenes"])
    assert again.ok and {s.plugin: s.cached for s in again.result.stages}["scenes"] is False


def test_an_entry_record_altered_but_still_json_is_not_served(tmp_path):
    cache = Cache(tmp_path)
    key = "9" * 40
    _put(cache, key, 100)
    marker = cache._entry_dir(key) / ENTRY_FILE
    meta = json.loads(marker.read_text())
    meta["plugin"] = "blub"  # one flipped bit in a name: the JSON still parses
    marker.write_text(json.dumps(meta))
    assert cache.get(key) is None and not cache._entry_dir(key).exists()


# -- leases and the cap ------------------------------------------------------------------------

LEASE_HOLDER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from video_extract.cache import Cache
    lease = Cache(sys.argv[1]).lease(sys.argv[2])
    Path(sys.argv[3]).write_text("held")
    time.sleep(600)
    """
)


def test_eviction_skips_entries_a_plan_holds_even_in_another_process(tmp_path):
    cache = Cache(tmp_path / "cache")
    for key in ("a" * 40, "b" * 40):
        _put(cache, key, 3000)
    mine = cache.lease("a" * 40)  # this process
    script, marker = tmp_path / "hold.py", tmp_path / "held"
    script.write_text(LEASE_HOLDER)
    other = subprocess.Popen([sys.executable, str(script), str(tmp_path / "cache"), "b" * 40, str(marker)])
    try:
        deadline = time.time() + 60
        while not marker.exists() and time.time() < deadline:
            time.sleep(0.05)
        assert marker.exists()
        assert cache.evict(max_bytes=0) == (0, 0)  # both in use: nothing goes
        assert cache.clear() == (0, 0)
        mine.release()
        removed, _ = cache.evict(max_bytes=0)
        assert removed == 1 and cache.get("a" * 40) is None
        assert cache.get("b" * 40) is not None
    finally:
        other.kill()
        other.wait()
    # The holder died without releasing: the kernel dropped its lock, so nothing is stuck.
    assert cache.evict(max_bytes=0)[0] == 1 and cache.stats()["entries"] == 0


SHARED_CAP_RUN = textwrap.dedent(
    """
    import sys
    from video_extract import Client
    for round in range(3):
        r = Client(cache_dir=sys.argv[1], output_dir=sys.argv[2] + str(round), cache_max_size=sys.argv[4]).run(
            sys.argv[3], ["metadata", "audio", "frames", "keyframes", "scenes", "scene_frames"]
        )
        assert r.ok, r.errors
        for op in r.result.ops.values():
            for name in op.files:
                assert (r.output_dir / name).exists(), name
    """
)


def test_two_processes_sharing_a_cache_at_a_tiny_cap_both_finish_with_every_output(scene_clip, tmp_path):
    # 100 KB: each entry fits (audio is the largest, ~97 KB), all of them together do not,
    # so eviction runs on nearly every commit while the other process reads.
    script = tmp_path / "run.py"
    script.write_text(SHARED_CAP_RUN)
    cap = "100K"
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(tmp_path / "cache"), str(tmp_path / f"p{i}-"), str(scene_clip.path), cap], stderr=subprocess.PIPE, text=True
        )
        for i in range(2)
    ]
    outcomes = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    assert [rc for rc, _ in outcomes] == [0, 0], outcomes
    reference = output_files(tmp_path / "p0-0" / "scenes")
    assert all(output_files(tmp_path / f"p{i}-{r}" / "scenes") == reference for i in range(2) for r in range(3))
    cache = Cache(tmp_path / "cache", max_bytes=100 * 1024)
    cache.evict()
    assert cache.stats()["bytes"] <= 100 * 1024  # once no one holds them, the cap holds


def test_an_entry_larger_than_the_cap_is_published_not_kept(scene_clip, tmp_path, caplog):
    with caplog.at_level("WARNING", logger="video_extract"):
        result = Client(cache_dir=tmp_path / "cache", output_dir=tmp_path / "o", cache_max_size="50K").run(scene_clip.path, ["audio", "scenes"])
    assert result.ok, result.errors
    assert (result.output_dir / "audio.wav").stat().st_size > 50 * 1024
    assert result.audio.path.exists()
    stats = Cache(tmp_path / "cache").stats()
    assert "audio" not in stats["plugins"] and stats["plugins"]["scenes"]["entries"] == 1
    assert any("larger than the whole cache" in r.getMessage() and "audio" in r.getMessage() for r in caplog.records)
    assert not list((tmp_path / "cache" / "v1" / "tmp").iterdir())  # nothing left behind


def test_cache_max_size_flag_and_stats(tmp_path, scene_clip):
    done = run_cli("debug", str(scene_clip.path), "--ops", "scenes", "-o", str(tmp_path / "o"), "--cache-dir", str(tmp_path / "c"), "--cache-max-size", "1.5G")
    assert done.returncode == 0, done.stderr
    stats = run_cli("cache", "stats", "--cache-dir", str(tmp_path / "c"), "--cache-max-size", "1.5G")
    assert "cap 1.5 GiB" in stats.stdout, stats.stdout
    as_json = run_cli("cache", "stats", "--json", "--cache-dir", str(tmp_path / "c"), env={"VIDEO_EXTRACT_CACHE_MAX_SIZE": "500M"})
    assert json.loads(as_json.stdout)["max_bytes"] == 500 * 1024**2
    bad = run_cli("cache", "stats", "--cache-dir", str(tmp_path / "c"), "--cache-max-size", "lots")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "not a size" in bad.stderr


def test_parse_size():
    from video_extract.cache import parse_size

    assert parse_size("500M") == 500 * 1024**2
    assert parse_size("1.5GiB") == int(1.5 * 1024**3)
    assert parse_size("2gb") == 2 * 1024**3
    assert parse_size("10000") == 10000
    assert parse_size("none") is None
    with pytest.raises(ValueError):
        parse_size("-1G")


def test_random_faults_never_leave_a_wrong_output(tmp_path):
    """A few trials of benchmarks/fault_injection.py: damaged entries and killed runs, then a re-run
    whose outputs must equal an undisturbed reference run's, byte for byte."""
    from video_extract.testing.faults import run_trials

    tallies = run_trials(tmp_path, trials=10, seed=3, verify="full")
    notes = [note for t in tallies.values() for note in t.notes]
    assert not notes
    corrupt, kill = tallies["corrupt, verify=full"], tallies["kill"]
    assert corrupt.corruptions >= 3 and corrupt.detected == corrupt.corruptions
    assert kill.kills >= 2


def test_a_cache_whose_disk_is_full_is_passed_by_and_the_outputs_are_the_same(scene_clip, tmp_path, small_disk, caplog):
    """A full cache disk used to fail every operation of every file ("OSError: [Errno 28]"),
    though the outputs had room: a stage that does not fit now runs without the cache."""
    full = small_disk(96 * 1024)  # a few small entries, then full
    with caplog.at_level(logging.WARNING, logger="video_extract"):
        result = Client(cache_dir=full, output_dir=tmp_path / "o").run(scene_clip.path, OPS)
    assert result.ok, {op: r.error for op, r in result.result.ops.items()}
    reference = Client(use_cache=False, output_dir=tmp_path / "ref").run(scene_clip.path, OPS)
    assert output_files(Path(result.result.output_dir)) == output_files(Path(reference.result.output_dir))
    said = [r.getMessage() for r in caplog.records if "has no room" in r.getMessage()]
    assert said == [f"the cache at {full} has no room (No space left on device): stages that do not fit run without it"]
    assert not list((full / "v1" / "tmp").iterdir())  # no half-made entry left behind


def test_an_entry_that_does_not_fit_is_not_kept_and_the_stage_runs_without_it(scene_clip, tmp_path, monkeypatch):
    """The same, where no small disk can be mounted: the cache's disk fills as the entry is committed."""
    import errno

    def full(self, key, work_dir, *args, **kwargs):
        (work_dir / ENTRY_FILE).write_text("{")  # half written, as on a disk that filled up
        raise OSError(errno.ENOSPC, "No space left on device", str(work_dir / ENTRY_FILE))

    monkeypatch.setattr(Cache, "commit", full)
    cache = tmp_path / "c"
    result = Client(cache_dir=cache, output_dir=tmp_path / "o").run(scene_clip.path, OPS)
    assert result.ok, {op: r.error for op, r in result.result.ops.items()}
    reference = Client(use_cache=False, output_dir=tmp_path / "ref").run(scene_clip.path, OPS)
    assert output_files(Path(result.result.output_dir)) == output_files(Path(reference.result.output_dir))
    assert not list((cache / "v1" / "tmp").iterdir()) and not list((cache / "v1" / "entries").rglob(ENTRY_FILE))


def test_a_read_only_cache_serves_its_entries_and_runs_the_rest_without_it(scene_clip, tmp_path, small_disk, caplog):
    """A warm cache shared read-only (a read-only mount, an image layer): every operation failed,
    hits included ("Read-only file system" on its lock files)."""
    disk = small_disk(32 << 20)
    cache = disk / "cache"
    Client(cache_dir=cache, output_dir=tmp_path / "warm").run(scene_clip.path, ["metadata", "keyframes"])
    remount = subprocess.run(["mount", "-o", "remount,ro", str(disk)], capture_output=True, text=True)
    if remount.returncode != 0:
        pytest.skip(f"cannot make the small disk read-only: {remount.stderr.strip()}")
    with caplog.at_level(logging.WARNING, logger="video_extract"):
        result = Client(cache_dir=cache, output_dir=tmp_path / "o").run(scene_clip.path, ["metadata", "keyframes", "scenes"])
    assert result.ok, {op: r.error for op, r in result.result.ops.items()}
    assert {s.label: s.cached for s in result.result.stages} == {"metadata": True, "keyframes": True, "scenes": False}
    reference = Client(use_cache=False, output_dir=tmp_path / "ref").run(scene_clip.path, ["metadata", "keyframes", "scenes"])
    assert output_files(Path(result.result.output_dir)) == output_files(Path(reference.result.output_dir))
    assert [r.getMessage() for r in caplog.records if "read-only" in r.getMessage()] == [
        f"the cache at {cache} is read-only here: its entries are used, new results are not kept"
    ]
    proc = run_cli("cache", "clear", "--cache-dir", str(cache))
    assert proc.returncode == 1 and proc.stderr.strip().endswith(f"error: {cache}: the cache is read-only here: nothing can be removed"), proc.stderr
