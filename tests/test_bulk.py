"""Bulk mode: a warm worker pool, failures that do not stop the batch, resume after kill -9, Ray."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from video_extract import Client
from video_extract.cache import Cache
from video_extract.testing import media

from .conftest import install_nap_plugin, needs_espeak, run_cli


def make_clips(folder: Path, n: int, prefix: str = "clip") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    return [media.scene_clip(folder / f"{prefix}{i:02d}.mp4", cuts=(16,), frames=32 + i, width=96, height=64, seed=i).path for i in range(n)]


def nap_env(tmp_path: Path) -> dict:
    site = install_nap_plugin(tmp_path / "site")
    return {"PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}


@pytest.fixture(scope="module")
def batch_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("batch")
    clips = make_clips(folder, 18)
    (folder / "empty.mp4").write_bytes(b"")
    media.truncate(clips[0], folder / "truncated.mp4", 0.5)
    return folder


def test_bulk_records_failures_and_finishes_the_rest(batch_dir, tmp_path):
    out = tmp_path / "out"
    proc = run_cli("bulk", str(batch_dir), "--ops", "metadata,scenes", "-o", str(out), "--cache-dir", str(tmp_path / "c"), "--workers", "2")
    assert proc.returncode == 1
    summary = json.loads((out / "batch_summary.json").read_text())
    assert summary["totals"]["files"] == 20 and summary["totals"]["ok"] == 18 and summary["totals"]["failed"] == 2
    failed = {Path(f["input"]).name: f["error"] for f in summary["files"] if f["status"] == "failed"}
    assert "file is empty" in failed["empty.mp4"] and "truncated" in failed["truncated.mp4"]
    for row in summary["files"]:
        if row["status"] == "ok":
            assert json.loads((Path(row["output_dir"]) / "summary.json").read_text())["status"] == "ok"
            assert json.loads((Path(row["output_dir"]) / "scenes.json").read_text())["cuts"][0]["frame"] == 16
    table = pq.read_table(out / "batch_summary.parquet").to_pylist()
    assert [r["input"] for r in table] == [f["input"] for f in summary["files"]]
    assert sum(r["status"] == "failed" for r in table) == 2
    assert "empty.mp4: file is empty" in proc.stderr and "Traceback" not in proc.stderr


def test_input_list_and_progress_jsonl(batch_dir, tmp_path):
    listing = tmp_path / "inputs.txt"
    files = sorted(batch_dir.glob("clip0*.mp4"))[:3]
    listing.write_text("# three files\n" + "\n".join(map(str, files)) + "\n")
    proc = run_cli(
        "bulk",
        "--input-list",
        str(listing),
        "--ops",
        "metadata",
        "-o",
        str(tmp_path / "o"),
        "--cache-dir",
        str(tmp_path / "c"),
        "--workers",
        "1",
        "--progress",
        "jsonl",
    )
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [line["done"] for line in lines] == [1, 2, 3] and lines[-1]["total"] == 3 and "files_per_second" in lines[-1]


def test_kill_9_midway_then_resume_does_each_file_once(tmp_path):
    inputs = make_clips(tmp_path / "in", 16)
    out, cache = tmp_path / "out", tmp_path / "cache"
    args = [
        sys.executable,
        "-m",
        "video_extract.cli",
        "bulk",
        str(tmp_path / "in"),
        "--op",
        "nap:seconds=0.4",
        "--ops",
        "metadata",
        "-o",
        str(out),
        "--cache-dir",
        str(cache),
        "--workers",
        "1",
    ]
    env = {**os.environ, **nap_env(tmp_path)}
    proc = subprocess.Popen(args, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while len(list(out.glob("*/summary.json"))) < 4 and time.time() < deadline:
        assert proc.poll() is None, proc.stderr.read().decode()
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the batch and its workers, mid-file
    proc.wait()
    finished_before = {p.parent.name for p in out.glob("*/summary.json")}
    assert 4 <= len(finished_before) < 16

    again = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    summary = json.loads((out / "batch_summary.json").read_text())
    statuses = {Path(f["input"]).stem: f["status"] for f in summary["files"]}
    assert {s for s, st in statuses.items() if st == "skipped"} == finished_before
    assert all(st in ("ok", "skipped") for st in statuses.values()) and len(statuses) == 16
    folders = sorted(p.name for p in out.iterdir() if p.is_dir())
    assert folders == sorted(p.stem for p in inputs)  # each file exactly once
    for folder in folders:
        assert json.loads((out / folder / "summary.json").read_text())["status"] == "ok"
        assert (out / folder / "nap.txt").read_text().isdigit()
        assert not [p for p in (out / folder).iterdir() if p.name.endswith((".tmp", ".old"))]
    stats = Cache(cache).stats()
    assert stats["plugins"]["nap"]["entries"] == 16 and stats["plugins"]["metadata"]["entries"] == 16
    assert not list((cache / "v1" / "tmp").iterdir())  # the killed writer's work was swept, never served


def test_hung_and_crashing_workers_are_replaced_and_files_retried(tmp_path):
    folder = tmp_path / "in"
    clips = make_clips(folder, 3)
    # Their own content: a byte copy of another input would be a cache hit, and nothing would run.
    media.scene_clip(folder / "hang.mp4", cuts=(16,), frames=40, width=96, height=64, seed=101)
    media.scene_clip(folder / "crash.mp4", cuts=(16,), frames=41, width=96, height=64, seed=102)
    proc = run_cli(
        "bulk",
        str(folder),
        "--op",
        "nap:seconds=0.1",
        "-o",
        str(tmp_path / "o"),
        "--cache-dir",
        str(tmp_path / "c"),
        "--workers",
        "2",
        "--timeout",
        "4",
        "--retries",
        "1",
        env=nap_env(tmp_path),
    )
    assert proc.returncode == 1
    rows = {Path(f["input"]).name: f for f in json.loads((tmp_path / "o" / "batch_summary.json").read_text())["files"]}
    assert rows["hang.mp4"]["status"] == "failed" and "timed out after 4 s" in rows["hang.mp4"]["error"] and rows["hang.mp4"]["attempts"] == 2
    assert rows["crash.mp4"]["status"] == "failed" and "worker crashed (exit code 3)" in rows["crash.mp4"]["error"] and rows["crash.mp4"]["attempts"] == 2
    assert all(rows[p.name]["status"] == "ok" for p in clips)


@needs_espeak
def test_models_load_once_per_worker(tmp_path):
    import numpy as np

    from video_extract.testing.speech import silence, speak

    folder = tmp_path / "in"
    folder.mkdir()
    for i, sentence in enumerate(
        [
            "Please open the window.",
            "Turn on the light.",
            "I like green music.",
            "The meeting starts at nine.",
            "Send the summary today.",
            "We need more chairs.",
        ]
    ):
        audio = np.concatenate([silence(0.3), speak(sentence, trim=True), silence(0.3)])
        media.slideshow_clip(
            folder / f"talk{i}.mp4", [media.text_image([str(i)], 96, 64)], seconds_each=len(audio) / 16000, fps=5, width=96, height=64, audio=audio
        )
    batch = Client(cache_dir=tmp_path / "c", output_dir=tmp_path / "o").execute_bulk([folder], ["transcription"], workers=2)
    assert batch.failed == 0 and len(batch.rows) == 6
    by_worker: dict[int, list[dict]] = {}
    for row in batch.rows:
        by_worker.setdefault(row.worker.pid, []).append(row)
    assert len(by_worker) == 2 and max(len(rows) for rows in by_worker.values()) >= 2
    for rows in by_worker.values():
        last = max(rows, key=lambda r: r.worker.files)
        whisper = [count for key, count in last.worker.model_loads.items() if "faster-whisper" in key]
        assert whisper == [1], last.worker  # one load, however many files this worker took


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_ray_two_node_cluster_runs_files_on_both_nodes(tmp_path):
    ray_bin = Path(sys.executable).with_name("ray")
    if not ray_bin.exists():
        pytest.skip("the ray command is not installed")
    env = {**os.environ, **nap_env(tmp_path), "RAY_AUTH_MODE": "disabled"}
    port = _free_port()
    start = [str(ray_bin), "start", "--node-ip-address=127.0.0.1", "--num-cpus=1", "--disable-usage-stats"]
    try:
        subprocess.run(start + ["--head", f"--port={port}", "--include-dashboard=false"], env=env, check=True, capture_output=True, timeout=120)
        subprocess.run(start + [f"--address=127.0.0.1:{port}"], env=env, check=True, capture_output=True, timeout=120)
        make_clips(tmp_path / "in", 8)
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "video_extract.cli",
                "bulk",
                str(tmp_path / "in"),
                "--op",
                "nap:seconds=1",
                "--ops",
                "metadata",
                "-o",
                str(tmp_path / "o"),
                "--cache-dir",
                str(tmp_path / "c"),
                "--workers",
                "2",
                "--ray-address",
                f"127.0.0.1:{port}",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        summary = json.loads((tmp_path / "o" / "batch_summary.json").read_text())
        assert summary["totals"]["ok"] == 8 and summary["totals"]["engine"] == "ray"
        nodes = {f["worker"]["node"] for f in summary["files"]}
        assert len(nodes) == 2, nodes
    finally:
        subprocess.run([str(ray_bin), "stop", "--force"], env=env, capture_output=True, timeout=120)


LIST_POOLS = """
import logging, sys, ray
from ray.util import list_named_actors
ray.init(address=sys.argv[1], log_to_driver=False, logging_level=logging.ERROR)
print(sorted(a["name"] for a in list_named_actors(all_namespaces=True) if a["namespace"] == "video-extract"))
"""

POOL_PIDS = """
import json, logging, sys, ray
from ray.util import list_named_actors
ray.init(address=sys.argv[1], log_to_driver=False, logging_level=logging.ERROR)
names = [a["name"] for a in list_named_actors(all_namespaces=True) if a["namespace"] == "video-extract"]
print(json.dumps(sorted(ray.get(ray.get_actor(n, namespace="video-extract").ready.remote())["pid"] for n in names)))
"""


@pytest.mark.slow
def test_ray_workers_kept_between_commands_take_the_next_one_and_end_when_idle(tmp_path):
    """--ray-keep-workers: a second command's files run in the first command's actors (their
    models loaded once), a command with other settings gets actors of its own, a command without
    the flag leaves none behind, and an idle pool ends by itself."""
    ray_bin = Path(sys.executable).with_name("ray")
    if not ray_bin.exists():
        pytest.skip("the ray command is not installed")
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    address = f"127.0.0.1:{_free_port()}"
    # a kept pool holds its actors' CPUs until it ends: room for two pools and a command's own actors
    start = [str(ray_bin), "start", "--head", "--node-ip-address=127.0.0.1", "--num-cpus=6", "--disable-usage-stats"]

    def bulk(out: str, cache: str, *keep: str) -> list[dict]:
        argv = ["bulk", str(tmp_path / "in"), "--ops", "metadata,scenes", "-o", str(tmp_path / out), "--cache-dir", str(tmp_path / cache)]
        proc = run_cli(*argv, "--workers", "2", "--ray-address", address, "--progress", "none", *keep, env=env)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return json.loads((tmp_path / out / "batch_summary.json").read_text())["files"]

    def pools() -> list[str]:
        done = subprocess.run([sys.executable, "-c", LIST_POOLS, address], env=env, capture_output=True, text=True, timeout=120, check=True)
        return json.loads(done.stdout.strip().splitlines()[-1].replace("'", '"'))

    try:
        subprocess.run(start + [f"--port={address.rsplit(':', 1)[1]}", "--include-dashboard=false"], env=env, check=True, capture_output=True, timeout=120)
        make_clips(tmp_path / "in", 4)
        first = bulk("o1", "c", "--ray-keep-workers", "0.4")
        # the pool's actors, asked by name: on a busy machine one actor may have run all 4 files
        # before the other was ready, so the files alone do not name both
        done = subprocess.run([sys.executable, "-c", POOL_PIDS, address], env=env, capture_output=True, text=True, timeout=120, check=True)
        workers = set(json.loads(done.stdout.strip().splitlines()[-1]))
        assert len(workers) == 2 and {r["worker"]["pid"] for r in first} <= workers
        second = bulk("o2", "c", "--ray-keep-workers", "0.4")
        assert {r["worker"]["pid"] for r in second} <= workers
        # an actor's count of files runs on across commands: together, the 4 files of each
        ran = {r["worker"]["pid"]: r["worker"]["files"] for r in sorted(first + second, key=lambda r: r["worker"]["files"])}
        assert sum(ran.values()) == 8
        kept = pools()
        assert len(kept) == 2, kept
        assert not {r["worker"]["pid"] for r in bulk("o3", "c2", "--ray-keep-workers", "0.4")} & workers  # another cache: another pool
        four = set(pools())
        assert len(four) == 4
        bulk("o4", "c")  # no flag: its actors end with it
        assert set(pools()) <= four  # (on a busy machine the first pool may have ended meanwhile)
        deadline = time.monotonic() + 60
        while pools() and time.monotonic() < deadline:  # 24 s idle each
            time.sleep(2)
        assert pools() == []
        refused = run_cli("bulk", str(tmp_path / "in"), "--ops", "metadata", "-o", str(tmp_path / "o5"), "--ray-keep-workers", "5")
        assert refused.returncode == 2 and "--ray-keep-workers" in refused.stderr and "Traceback" not in refused.stderr
    finally:
        subprocess.run([str(ray_bin), "stop", "--force"], env=env, capture_output=True, timeout=120)


@pytest.mark.slow
def test_a_ray_actor_that_dies_hands_back_the_file_queued_behind_its_own(tmp_path):
    """One actor, two files in flight (the one it runs, the next queued): the crashing file
    fails after its retry, and every other file succeeds on its first attempt, though one was
    queued behind the crash (or finished just before it, its row dying with the actor). Inputs
    and outputs given relative to the command's folder."""
    ray_bin = Path(sys.executable).with_name("ray")
    if not ray_bin.exists():
        pytest.skip("the ray command is not installed")
    env = {**os.environ, **nap_env(tmp_path), "RAY_AUTH_MODE": "disabled"}
    port = _free_port()
    ray_folder = tmp_path / "ray"
    ray_folder.mkdir()
    try:
        subprocess.run(
            [
                str(ray_bin),
                "start",
                "--head",
                "--node-ip-address=127.0.0.1",
                "--num-cpus=1",
                "--disable-usage-stats",
                f"--port={port}",
                "--include-dashboard=false",
            ],
            cwd=ray_folder,  # where the cluster, hence its actors, runs
            env=env,
            check=True,
            capture_output=True,
            timeout=120,
        )
        make_clips(tmp_path / "in", 4)
        crash = media.scene_clip(tmp_path / "in" / "crash.mp4", cuts=(16,), frames=41, width=96, height=64, seed=102).path
        # the largest file goes first (longest first), so a file is queued behind it both times
        assert all(crash.stat().st_size > p.stat().st_size for p in (tmp_path / "in").glob("clip*.mp4"))
        argv = [sys.executable, "-m", "video_extract.cli", "bulk", "in", "--op", "nap:seconds=0.2", "-o", "o", "--cache-dir", "c"]
        argv += ["--workers", "1", "--retries", "1", "--ray-address", f"127.0.0.1:{port}", "--progress", "none"]
        proc = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 1, proc.stderr[-3000:]
        rows = {Path(f["input"]).name: f for f in json.loads((tmp_path / "o" / "batch_summary.json").read_text())["files"]}
        assert rows["crash.mp4"]["status"] == "failed" and rows["crash.mp4"]["attempts"] == 2 and "Ray worker died" in rows["crash.mp4"]["error"]
        for name in (f"clip{i:02d}.mp4" for i in range(4)):
            assert rows[name]["status"] == "ok" and rows[name]["attempts"] == 1, rows[name]
            assert rows[name]["input"] == f"in/{name}"  # as given
            assert (tmp_path / "o" / Path(name).stem / "nap.txt").read_text().isdigit()
        assert (tmp_path / "c" / "v1" / "entries").is_dir() and not list(ray_folder.iterdir())  # nothing in the actors' folder
    finally:
        subprocess.run([str(ray_bin), "stop", "--force"], env=env, capture_output=True, timeout=120)


def test_sigterm_stops_a_batch_as_ctrl_c_does_and_its_summary_lists_what_finished(tmp_path):
    """A service manager's SIGTERM (systemd, Kubernetes, ``docker stop``) used to end the batch
    on the spot: exit 143 and no batch summary."""
    make_clips(tmp_path / "in", 12)
    out = tmp_path / "out"
    args = [sys.executable, "-m", "video_extract.cli", "bulk", str(tmp_path / "in"), "--op", "nap:seconds=0.4", "--ops", "metadata", "-o", str(out)]
    # a cache of its own: in the machine's shared one, an earlier run's naps were hits, and all
    # 12 files could finish before the signal
    args += ["--cache-dir", str(tmp_path / "cache"), "--workers", "2", "--progress", "none"]
    proc = subprocess.Popen(args, env={**os.environ, **nap_env(tmp_path)}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while len(list(out.glob("*/summary.json"))) < 3 and time.time() < deadline:
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)  # to the command alone, as a service manager sends it
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM and stderr.strip().endswith("terminated"), stderr
    rows = json.loads((out / "batch_summary.json").read_text())["files"]
    assert 3 <= len(rows) < 12 and all(r["status"] == "ok" for r in rows)
    for row in rows:
        assert json.loads((Path(row["output_dir"]) / "summary.json").read_text())["status"] == "ok"


def test_names_that_map_to_one_folder_get_separate_folders(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    media.scene_clip(folder / "a b.mp4", cuts=(16,), frames=32, width=96, height=64, seed=1)
    media.scene_clip(folder / "a_b.mp4", cuts=(16,), frames=33, width=96, height=64, seed=2)
    batch = Client(output_dir=tmp_path / "o", use_cache=False).execute_bulk([folder], ["metadata"], workers=2)
    dirs = {row.output_dir for row in batch.rows}
    assert batch.failed == 0 and len(dirs) == 2
    for row in batch.rows:
        assert json.loads((Path(row.output_dir) / "metadata.json").read_text())["path"] == row.input


def test_a_file_named_like_the_batchs_own_files_gets_a_folder_of_its_own(tmp_path):
    """``export.mp4``'s folder was the batch's export folder, and ``batch_summary.json.mp4``'s
    took the summary's name: the whole batch then ended in an internal error."""
    folder = tmp_path / "in"
    folder.mkdir()
    names = ["export.mp4", "batch_summary.json.mp4", "Batch_Summary.parquet.mp4", "clip.mp4"]
    for seed, name in enumerate(names):
        media.scene_clip(folder / name, cuts=(16,), frames=32, width=96, height=64, seed=seed)
    out = tmp_path / "o"
    proc = run_cli("bulk", str(folder), "--ops", "metadata", "-o", str(out), "--workers", "1", "--export", "parquet", "--progress", "none")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "batch_summary.json").read_text())  # a file, as it should be
    rows = {Path(f["input"]).name: f for f in summary["files"]}
    assert all(rows[n]["status"] == "ok" for n in names), rows
    for name in names[:3]:
        own = Path(rows[name]["output_dir"])
        assert own.parent == out and own.name.startswith(name[: -len(".mp4")] + "-"), own  # hashed
        assert json.loads((own / "metadata.json").read_text())["path"] == str(folder / name)
    assert Path(rows["clip.mp4"]["output_dir"]) == out / "clip"
    assert pq.read_table(out / "batch_summary.parquet").num_rows == 4
    export = out / "export"
    assert not (export / ".input").exists() and not (export / "metadata.json").exists()  # nobody's output folder
    assert pq.read_table(export / "parquet" / "files").num_rows == 4
    rerun = run_cli("bulk", str(folder), "--ops", "metadata", "-o", str(out), "--workers", "1", "--progress", "none")
    assert rerun.returncode == 0 and "4 skipped" in rerun.stdout + rerun.stderr, rerun.stderr  # found again


def test_files_with_the_longest_names_get_folders_and_keep_them(tmp_path):
    """A 251-byte stem (255 with ``.mp4``), shared by two files: the hashed folder name was 260
    bytes, and both files failed with an internal error (file name too long)."""
    folder = tmp_path / "in"
    folder.mkdir()
    long_ascii, long_cjk = "b" * 251, "日" * 83  # 251 and 249 bytes
    names = [f"{long_ascii}.mp4", f"{long_ascii}.mov", f"{long_cjk}.mp4"]
    for seed, name in enumerate(names):
        media.scene_clip(folder / name, cuts=(16,), frames=32, width=96, height=64, seed=seed)
    client = Client(output_dir=tmp_path / "o", use_cache=False)
    batch = client.execute_bulk([folder], ["metadata"], workers=1)
    assert batch.failed == 0, [row.error for row in batch.rows]
    dirs = {Path(row.input).name: Path(row.output_dir) for row in batch.rows}
    assert len(set(dirs.values())) == 3 and all(len(d.name.encode()) <= 255 for d in dirs.values())
    assert dirs[names[2]].name == "日" * 82  # cut to whole characters within 246 bytes
    for name, own in dirs.items():
        assert json.loads((own / "metadata.json").read_text())["path"] == str(folder / name)
    assert all(row.status == "skipped" for row in client.execute_bulk([folder], ["metadata"], workers=1).rows)


def test_one_file_named_several_ways_runs_once(tmp_path, monkeypatch):
    """Its relative path, its absolute path and a link to it all go to one folder: each used to
    be a file of the batch, and two workers wrote that folder at once."""
    folder = tmp_path / "in"
    clip = make_clips(folder, 1)[0]
    (folder / "zlink.mp4").symlink_to(clip.name)
    monkeypatch.chdir(tmp_path)
    given = Path("in") / clip.name
    (tmp_path / "list.txt").write_text(f"{given}\n{clip}\n{folder}/./{clip.name}\n")
    batch = Client(output_dir=tmp_path / "o", use_cache=False).execute_bulk([given, folder], ["metadata"], workers=2, input_list=tmp_path / "list.txt")
    assert [(row.input, row.status) for row in batch.rows] == [(str(given), "ok")], batch.rows
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["batch_summary.json", "batch_summary.parquet", clip.stem]


@pytest.mark.skipif(sys.platform != "linux", reason="a file name of bytes that are not UTF-8 is a Linux (POSIX) one")
def test_an_input_list_from_a_windows_editor_or_with_latin1_names_is_read(tmp_path):
    """A byte-order mark made the first name "not found"; a Latin-1 name ended the whole command
    in an internal error (UnicodeDecodeError)."""
    folder = tmp_path / "in"
    folder.mkdir()
    latin = os.fsencode(folder) + b"/caf\xe9.mp4"
    media.scene_clip(Path(os.fsdecode(latin)), cuts=(16,), frames=32, width=96, height=64, seed=1)
    plain = make_clips(folder, 1)[0]
    listing = tmp_path / "list.txt"
    listing.write_bytes(b"\xef\xbb\xbf" + os.fsencode(plain) + b"\r\n# a comment\r\n" + latin + b"\r\n")
    batch = Client(output_dir=tmp_path / "o", use_cache=False).execute_bulk([], ["metadata"], workers=1, input_list=listing)
    assert [(os.fsencode(row.input), row.status) for row in batch.rows] == [(os.fsencode(plain), "ok"), (latin, "ok")], batch.rows


def test_the_input_list_can_come_from_stdin(tmp_path):
    clips = make_clips(tmp_path / "in", 2)
    argv = [sys.executable, "-m", "video_extract.cli", "bulk", "--input-list", "-", "--ops", "metadata", "-o", str(tmp_path / "o"), "--workers", "1"]
    proc = subprocess.run(
        argv, input="".join(f"{c}\n" for c in clips).encode(), capture_output=True, timeout=300
    )  # `find … | video-extract bulk --input-list -`
    assert proc.returncode == 0, proc.stderr.decode()
    rows = json.loads((tmp_path / "o" / "batch_summary.json").read_text())["files"]
    assert [(r["input"], r["status"]) for r in rows] == [(str(c), "ok") for c in clips]


def test_a_folder_scan_resolves_paths_as_realpath_does(tmp_path, monkeypatch):
    """Each folder is resolved once in a scan (it made ~24 lstat calls a file): the same answers."""
    from video_extract.executors.bulk import _RealPaths

    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "f.mp4").write_bytes(b"")
    (tmp_path / "via").symlink_to(tmp_path / "a")  # a linked folder on the way
    (tmp_path / "a" / "link.mp4").symlink_to(tmp_path / "a" / "b" / "f.mp4")  # a linked file
    (tmp_path / "a" / "loop.mp4").symlink_to("loop.mp4")
    monkeypatch.chdir(tmp_path / "a")
    real = _RealPaths()
    paths = [Path("b/f.mp4"), Path("link.mp4"), Path("loop.mp4"), Path("b/.."), Path("."), Path("missing.mp4")]
    paths += [tmp_path / "via" / "b" / "f.mp4", tmp_path / "via" / "link.mp4", tmp_path / "a" / "b" / "f.mp4"]
    for path in paths * 2:  # the second time from what it remembers
        assert real(path) == os.path.realpath(path), path


def test_a_batch_written_into_its_own_input_folder_takes_the_users_files_and_not_its_own(tmp_path):
    """``bulk . -o .`` found no input at all: the whole output folder was left out of the scan."""
    folder = tmp_path / "videos"
    make_clips(folder, 2)
    make_clips(folder / "raw", 1, prefix="more")  # a folder of the user's own in there
    client = Client(output_dir=folder, use_cache=False)
    first = client.execute_bulk([folder], ["metadata", "keyframes"], workers=1, export="parquet")
    assert sorted(Path(r.input).name for r in first.rows) == ["clip00.mp4", "clip01.mp4", "more00.mp4"] and first.failed == 0
    assert list((folder / "clip00" / "keyframes").glob("*.jpg"))  # pictures it wrote, which a scan must not take
    again = client.execute_bulk([folder], ["metadata", "keyframes"], workers=1, export="parquet")
    assert [r.status for r in again.rows] == ["skipped"] * 3 and again.not_media == []


def test_resume_redoes_a_file_that_changed(tmp_path):
    folder = tmp_path / "in"
    clip = make_clips(folder, 1)[0]
    client = Client(cache_dir=tmp_path / "c", output_dir=tmp_path / "o")
    client.execute_bulk([folder], ["metadata"], workers=1)
    assert client.execute_bulk([folder], ["metadata"], workers=1).rows[0].status == "skipped"
    media.scene_clip(clip, cuts=(16,), frames=60, width=96, height=64, seed=9)  # replaced in place
    rows = client.execute_bulk([folder], ["metadata"], workers=1).rows
    assert rows[0].status == "ok"
    assert json.loads((Path(rows[0].output_dir) / "metadata.json").read_text())["streams"][0]["frame_count"] == 60


def test_a_request_per_file(tmp_path):
    a, b = make_clips(tmp_path / "in", 2)
    batch = Client(output_dir=tmp_path / "o", use_cache=False).execute_bulk([(a, ["metadata"]), {"path": b, "ops": "scenes,keyframes"}], workers=1)
    assert batch.failed == 0
    ops = {Path(r.input).name: set(r.ops) for r in batch.rows}
    assert ops == {a.name: {"metadata"}, b.name: {"metadata", "scenes", "keyframes"}}  # metadata.json for every input


def test_a_ray_actor_raises_itself_from_rays_niceness_where_it_may():
    # Ray starts workers at nice 15; an actor at 15 beside any other load gets a sliver of the CPU.
    probe = (
        "import threading; from video_extract.executors.ray_engine import full_priority; threading.Thread(target=lambda: None).start(); print(full_priority())"
    )
    out = subprocess.run(["nice", "-n", "15", sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60).stdout.strip()
    if os.geteuid() != 0:
        assert out == "15"  # not allowed: the engine starts the actors again with niceness 0 asked of Ray
    else:
        assert out == "0"


def test_a_worker_that_cannot_read_the_request_fails_the_file_with_one_line(tmp_path, monkeypatch):
    """A plugin on the driver's node but not on a worker's (a Ray cluster installed unevenly):
    the worker reports a failed row naming the operation, instead of dying on every file."""
    from video_extract.executors.bulk import FileWorker, Settings
    from video_extract.spec import OPERATIONS

    # as on a worker without the plugin: an earlier test in this process may have loaded nap
    monkeypatch.setattr("video_extract.registry._registry", None)
    monkeypatch.delitem(OPERATIONS, "nap", raising=False)

    clip = make_clips(tmp_path / "in", 1)[0]
    worker = FileWorker(Settings(use_cache=False))
    row = worker.process(str(clip), [{"operation": "nap", "params": {"seconds": 0.1}}], str(tmp_path / "o"), [])
    assert row.status == "failed" and "unknown operation 'nap'" in row.error and "installation" in row.error, row
    assert worker.process(str(clip), [{"operation": "metadata", "params": {}}], str(tmp_path / "o"), []).status == "ok"  # and goes on


@pytest.mark.skipif(sys.platform != "linux", reason="a file name of bytes that are not UTF-8 is a Linux (POSIX) one")
def test_a_file_name_that_is_not_utf8_is_processed_and_named_back_exactly(tmp_path):
    """Linux takes any bytes in a name (an old Latin-1 archive): such a file is processed like
    any other, and every record names it so that ``os.fsencode(json.loads(...))`` gives its bytes
    back, on a strict UTF-8 stdout too (a user's locale), where it failed the file and its batch."""
    folder = tmp_path / "in"
    clip = make_clips(folder, 1)[0]
    odd = os.path.join(os.fsencode(folder), b"caf\xe9 clip.mp4")  # Latin-1 "café"
    os.rename(clip, odd)
    out = tmp_path / "out"
    argv = ["bulk", str(folder), "--ops", "metadata,scenes", "-o", str(out), "--no-cache", "--progress", "jsonl", "--export", "parquet,webdataset"]
    proc = run_cli(*argv, env={"PYTHONIOENCODING": "utf-8:strict"})
    assert proc.returncode == 0, proc.stderr
    assert [os.fsencode(json.loads(line)["input"]) for line in proc.stdout.splitlines()] == [odd]
    row = json.loads((out / "batch_summary.json").read_text(encoding="utf-8"))["files"][0]
    assert row["status"] == "ok" and os.fsencode(row["input"]) == odd
    summary = json.loads((Path(row["output_dir"]) / "summary.json").read_text(encoding="utf-8"))
    assert summary["status"] == "ok" and os.fsencode(summary["input"]) == odd
    assert json.loads((Path(row["output_dir"]) / "scenes.json").read_text(encoding="utf-8"))["cuts"][0]["frame"] == 16
    escaped = [str(folder / "caf\\udce9 clip.mp4")]  # Parquet strings are UTF-8: the odd byte as its escape
    assert pq.read_table(out / "batch_summary.parquet").column("input").to_pylist() == escaped
    assert pq.read_table(out / "export" / "parquet" / "files").column("input").to_pylist() == escaped
    with tarfile.open(next((out / "export" / "webdataset").glob("*.tar"))) as shard:
        sample = json.loads(shard.extractfile(next(m for m in shard.getmembers() if m.name.endswith(".json"))).read())
    assert os.fsencode(sample["input"]) == odd
    again = run_cli("bulk", str(folder), "--ops", "metadata,scenes", "-o", str(out), "--no-cache", "--progress", "none")
    assert again.returncode == 0 and json.loads((out / "batch_summary.json").read_text())["totals"]["skipped"] == 1  # its folder is known as its own
