"""Performance mode: concurrent stages, events streamed as they happen, the same files as debug mode."""

from __future__ import annotations

import asyncio
import json
import sys
import time

from video_extract import Client
from video_extract.executors import DebugExecutor, Runtime
from video_extract.executors.perf import PerfExecutor, critical_path
from video_extract.registry import Registry
from video_extract.testing import media

from .conftest import install_nap_plugin, needs_espeak, run_cli


def _events(client, path, ops):
    return list(client.execute_streaming(path, ops))


@needs_espeak
def test_metadata_completes_before_the_slowest_operation_and_partials_precede_complete(speech_clip, tmp_path):
    client = Client(cache_dir=tmp_path / "c", output_dir=tmp_path / "o")
    events = _events(client, speech_clip[0], ["transcription", "metadata", "scenes"])
    kinds = [(e.type, getattr(e, "op", None)) for e in events]
    completes = [op for kind, op in kinds if kind == "complete"]
    assert completes[0] == "metadata" and completes[-1] == "transcription"
    first_partial = kinds.index(("partial", "transcription"))
    assert first_partial < kinds.index(("complete", "transcription"))
    partial = events[first_partial].data
    assert partial["text"] and partial["start"] < partial["end"]
    done = events[-1]
    assert done.type == "done" and done.status == "ok" and done.ok == ["metadata", "scenes", "transcription"]
    meta = next(e for e in events if e.type == "complete" and e.op == "metadata")
    assert meta.path.endswith("metadata.json") and meta.elapsed < done.elapsed


@needs_espeak
def test_the_longest_chain_starts_first(speech_clip, tmp_path):
    # One thread: the order stages run in is the scheduler's choice alone. Transcription (the
    # slowest stage) waits for vad, so vad goes before scenes and metadata, which nothing awaits.
    client = Client(cache_dir=tmp_path / "c", output_dir=tmp_path / "o")
    events = list(client.execute_streaming(speech_clip[0], ["metadata", "scenes", "vad", "transcription"], threads=1))
    assert [e.op for e in events if e.type == "complete"] == ["vad", "transcription", "scenes", "metadata"]


def test_critical_path_ranks_a_stage_by_what_waits_for_it(scene_clip, tmp_path):
    plan = Client(cache_dir=tmp_path / "c").plan(scene_clip.path, "scenes,scene_frames,metadata")
    by_plugin = {stage.plugin: sid for sid, stage in plan.stages.items()}
    rank = critical_path(plan, lambda stage: {"scenes": 1.0, "scene_frames": 2.0, "metadata": 0.5}[stage.plugin])
    assert rank[by_plugin["scene_frames"]] == 2.0
    assert rank[by_plugin["scenes"]] == 3.0  # its own second plus scene_frames, which waits for it
    assert rank[by_plugin["metadata"]] == 0.5


def test_a_failing_operation_is_an_error_event_while_the_others_complete(scene_clip, tmp_path, monkeypatch):
    monkeypatch.setenv("VIDEO_EXTRACT_OFFLINE", "1")
    monkeypatch.setenv("VIDEO_EXTRACT_MODEL_CACHE", str(tmp_path / "m"))
    silent = media.scene_clip(tmp_path / "silent.mp4", cuts=(10,), frames=20)
    (tmp_path / "none").mkdir()  # a models folder without the detector's weights
    client = Client(cache_dir=tmp_path / "c", output_dir=tmp_path / "o", models_dir=tmp_path / "none")
    events = _events(client, silent.path, ["metadata", "transcription", "objects", "scenes"])
    errors = {e.op: e.error for e in events if e.type == "error"}
    assert set(errors) == {"objects"} and "not available offline" in errors["objects"]
    skipped = {e.op: e.reason for e in events if e.type == "skipped"}
    assert skipped == {"transcription": "silent.mp4 has no audio stream"}  # does not apply: not an error
    assert {e.op for e in events if e.type == "complete"} == {"metadata", "scenes"}
    assert events[-1].status == "failed" and events[-1].failed == ["objects"] and events[-1].skipped == ["transcription"]


def test_independent_stages_run_at_the_same_time(scene_clip, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(install_nap_plugin(tmp_path / "site")))
    registry = Registry.discover()
    ops = ["nap:seconds=1", "nap2:seconds=1"]
    started = time.perf_counter()
    result = PerfExecutor(Runtime(cache_dir=tmp_path / "c1", registry=registry)).run_file(scene_clip.path, ops, tmp_path / "o1")
    perf_seconds = time.perf_counter() - started
    started = time.perf_counter()
    DebugExecutor(Runtime(cache_dir=tmp_path / "c2", registry=registry)).run_file(scene_clip.path, ops, tmp_path / "o2")
    debug_seconds = time.perf_counter() - started
    assert result.ok
    assert debug_seconds >= 2.0 and perf_seconds < 1.7  # two 1 s naps overlapped
    sys.modules.pop("nap_plugin", None)


def test_perf_writes_the_same_files_as_debug_and_shares_the_cache(scene_clip, tmp_path):
    ops = ["metadata", "scenes", "keyframes", "frames"]
    perf = Client(cache_dir=tmp_path / "c", output_dir=tmp_path / "perf", executor="perf").run(scene_clip.path, ops)
    debug = Client(cache_dir=tmp_path / "c", output_dir=tmp_path / "debug").run(scene_clip.path, ops)
    assert all(s.cached for s in debug.result.stages)  # perf filled the cache debug reads
    files = lambda d: {p.relative_to(d).as_posix(): p.read_bytes() for p in d.rglob("*") if p.is_file() and p.name != "summary.json"}
    assert files(perf.output_dir) == files(debug.output_dir)


def test_async_streaming(scene_clip, tmp_path):
    client = Client(cache_dir=tmp_path / "c", output_dir=tmp_path / "o")

    async def collect():
        return [event async for event in client.aexecute_streaming(scene_clip.path, ["metadata", "scenes"])]

    events = asyncio.run(collect())
    assert events[-1].type == "done" and {e.op for e in events if e.type == "complete"} == {"metadata", "scenes"}


def test_cli_streams_json_lines(scene_clip, tmp_path):
    out = tmp_path / "events.jsonl"
    proc = run_cli(
        "perf",
        str(scene_clip.path),
        "--ops",
        "metadata,scenes,keyframes",
        "-o",
        str(tmp_path / "o"),
        "--cache-dir",
        str(tmp_path / "c"),
        "--stream",
        "--output",
        str(out),
    )
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in out.read_text().splitlines()]
    assert events[-1]["type"] == "done" and events[-1]["status"] == "ok"
    assert [e["op"] for e in events if e["type"] == "partial" and e["op"] == "scenes"] == ["scenes", "scenes"]  # the two cuts
    to_stdout = run_cli("perf", str(scene_clip.path), "--ops", "metadata", "-o", str(tmp_path / "o"), "--cache-dir", str(tmp_path / "c"), "--stream")
    assert json.loads(to_stdout.stdout.splitlines()[0])["type"] == "complete"


def test_cli_perf_bad_input_streams_an_error_and_exits_1(tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    proc = run_cli("perf", str(empty), "--ops", "metadata", "-o", str(tmp_path / "o"), "--stream")
    assert proc.returncode == 1
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    assert events[0]["type"] == "error" and "file is empty" in events[0]["error"] and events[-1]["type"] == "done"
    assert "Traceback" not in proc.stderr


def test_a_consumer_that_stops_listening_ends_the_request_cleanly(scene_clip, tmp_path, monkeypatch):
    import tempfile
    import threading

    scratch = tmp_path / "scratch"  # this request's scratch folders only, not other processes'
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    client = Client(output_dir=tmp_path / "o", use_cache=False)
    before = {t.name for t in threading.enumerate()}
    stream = client.execute_streaming(scene_clip.path, ["metadata", "scenes", "frames", "keyframes"])
    first = next(stream)
    assert first.type in ("complete", "partial")
    stream.close()
    leftover = [t.name for t in threading.enumerate() if t.name not in before and t.name.startswith("video-extract")]
    assert leftover == []
    summary = json.loads((tmp_path / "o" / "scenes" / "summary.json").read_text())
    assert summary["input"] == str(scene_clip.path)  # the folder is finished, not half written
    assert not list(scratch.iterdir())


@needs_espeak
def test_transcript_segments_stream_even_when_speakers_are_attributed(dialogue_clip, tmp_path):
    client = Client(cache_dir=tmp_path / "c", output_dir=tmp_path / "o")
    events = _events(client, dialogue_clip[0], ["transcription", "diarization"])
    kinds = [(e.type, getattr(e, "op", None)) for e in events]
    assert ("partial", "transcription") in kinds
    assert kinds.index(("partial", "transcription")) < kinds.index(("complete", "transcription"))


def test_blas_runs_on_the_calling_thread_inside_and_is_put_back_however_callers_overlap():
    """Whisper's mel product runs inside this: OpenBLAS's second thread would spin a core away."""
    import threading

    import threadpoolctl

    from video_extract.models.runtime import blas_on_calling_thread

    def counts() -> set[int]:
        """numpy's BLAS (a library loaded later, such as scipy's, is not known to the helper)."""
        return {i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas" and "numpy" in i["filepath"]}

    with threadpoolctl.threadpool_limits(2, user_api="blas"):
        assert counts() == {2}
        with blas_on_calling_thread():
            assert counts() == {1}
        assert counts() == {2}
        for helper_leaves_first in (True, False):
            inside, leave = threading.Event(), threading.Event()

            def other(inside: threading.Event, leave: threading.Event) -> None:
                with blas_on_calling_thread():
                    inside.set()
                    leave.wait(10)

            helper = threading.Thread(target=other, args=(inside, leave))
            with blas_on_calling_thread():
                helper.start()
                assert inside.wait(10)
                assert counts() == {1}
                if helper_leaves_first:
                    leave.set()
                    helper.join(10)
                    assert counts() == {1}
            leave.set()
            helper.join(10)
            assert counts() == {2}, helper_leaves_first
