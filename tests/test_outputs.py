"""What an output folder holds: whole files only, and exactly what its summary.json lists.

Also how file names and file kinds a user did not expect are shown: a name with a newline is one
escaped name on one ``error:`` line; a FIFO is refused without ever being opened.
"""

from __future__ import annotations

import errno
import json
import multiprocessing
import os
import shutil
import socket
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from video_extract import Client
from video_extract.errors import InputError, show_path
from video_extract.executors.bulk import BatchRow, collect_inputs, write_batch_summary
from video_extract.media.container import check_readable
from video_extract.outputs import atomic_write_json, publish_path
from video_extract.sources import SourcePolicy
from video_extract.testing import media

from .conftest import run_cli

# -- atomic writes ---------------------------------------------------------------------------


def _rows(writer: int, n: int) -> list[BatchRow]:
    return [BatchRow(input=f"/data/w{writer}/clip{i}.mp4", status="ok", ops={"metadata": "ok"}, seconds=0.1 * i) for i in range(n)]


def _write_summaries(root: str, writer: int, times: int) -> None:
    for k in range(times):
        write_batch_summary(Path(root), _rows(writer, 50 + k % 7), 1.0, "local")


def test_batch_summary_parquet_has_its_rows_in_a_fixed_schema_without_pandas(tmp_path):
    """A fresh process, as the end of a bulk command is: the Parquet rows are the JSON's, every
    column has its type even when no row has a value (no errors), and pandas, which pyarrow
    imports to build columns from Python lists (0.18 s), stays out."""
    import subprocess
    import sys

    code = f"""
import json, sys
from pathlib import Path
import pyarrow.parquet as pq
from video_extract.executors.bulk import BatchRow, write_batch_summary
rows = [BatchRow(input=f"/data/clip{{i}}.mp4", status="ok", ops={{"metadata": "ok", "scenes": "ok"}}, seconds=0.25 * i, attempts=1) for i in range(3)]
rows.append(BatchRow(input="/data/bad.mp4", status="failed", ops={{"scenes": "failed"}}, skipped={{"ocr": "no video"}}, error="scenes: truncated", seconds=2))
root = Path({str(tmp_path)!r})
write_batch_summary(root, rows[:3], 1.0, "local")
assert "pandas" not in sys.modules  # (reading Parquet back may import it)
assert str(pq.read_schema(root / "batch_summary.parquet").field("error").type) == "string"
write_batch_summary(root, rows, 1.0, "local")
table = pq.read_table(root / "batch_summary.parquet").to_pylist()
files = json.loads((root / "batch_summary.json").read_text())["files"]
assert [(r["input"], r["status"], r["seconds"], r["error"], r["attempts"]) for r in table] == [(f["input"], f["status"], f["seconds"], f.get("error"), f["attempts"]) for f in files]
assert table[3]["ops"] == ["scenes"] and table[3]["failed_ops"] == ["scenes"] and table[3]["skipped_ops"] == ["ocr"] and table[0]["ops"] == ["metadata", "scenes"]
write_batch_summary(root, [], 1.0, "local")
assert pq.read_table(root / "batch_summary.parquet").num_rows == 0
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_concurrent_batch_summaries_are_never_torn(tmp_path):
    """Two processes rewrite batch_summary.json and .parquet while a reader parses them."""
    write_batch_summary(tmp_path, _rows(0, 3), 1.0, "local")
    context = multiprocessing.get_context("spawn")
    writers = [context.Process(target=_write_summaries, args=(str(tmp_path), w, 60)) for w in (1, 2)]
    for process in writers:
        process.start()
    reads = 0
    while any(p.is_alive() for p in writers):
        rows = json.loads((tmp_path / "batch_summary.json").read_text())["files"]
        with open(tmp_path / "batch_summary.parquet", "rb") as f:  # read_table(path) looks twice: its own race (README)
            table = pq.read_table(f)
        assert rows and table.num_rows >= 3
        assert len({Path(r["input"]).parent for r in rows}) == 1  # one writer's rows, never a mix
        reads += 1
    for process in writers:
        process.join()
        assert process.exitcode == 0  # neither writer raised (a shared temporary name made one fail)
    assert reads > 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["batch_summary.json", "batch_summary.parquet"]  # no temporaries left


def _publish_many(source: str, out: str, times: int) -> None:
    for k in range(times):
        atomic_write_json(Path(out) / "summary.json", {"writer": source, "k": k, "pad": "x" * 20_000})
        publish_path(Path(source), Path(out) / "keyframes")


def test_concurrent_json_and_folder_publishes(tmp_path):
    """Two processes publish the same folder and summary over and over: neither fails.

    (A folder is swapped whole; a reader that opened the old one sees it emptied as it is
    deleted, so only the files are read back while the writers run.)"""
    sources = []
    for n in range(2):
        folder = tmp_path / f"src{n}"
        folder.mkdir()
        for i in range(20):
            (folder / f"frame_{i:05d}.jpg").write_bytes(bytes([n]) * 2000)
        sources.append(folder)
    out = tmp_path / "out"
    out.mkdir()
    atomic_write_json(out / "summary.json", {"writer": None, "pad": "x"})
    context = multiprocessing.get_context("spawn")
    writers = [context.Process(target=_publish_many, args=(str(source), str(out), 150)) for source in sources]
    for process in writers:
        process.start()
    while any(p.is_alive() for p in writers):
        assert json.loads((out / "summary.json").read_text())["pad"]
    for process in writers:
        process.join()
        assert process.exitcode == 0  # a folder swapped in by the other writer meanwhile made a rename fail
    assert sorted(p.name for p in out.iterdir()) == ["keyframes", "summary.json"]  # no temporaries left
    assert sorted(p.name for p in (out / "keyframes").iterdir()) == [f"frame_{i:05d}.jpg" for i in range(20)]


# -- the folder matches the summary ----------------------------------------------------------


def _listed(summary: dict) -> set[str]:
    return {f.rstrip("/") for op in summary["ops"].values() for f in op["files"]}


def _entries(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


def test_a_failed_rerun_leaves_no_outputs_of_the_failed_operations(tmp_path):
    clip = media.scene_clip(tmp_path / "clip.mp4", cuts=(10,), frames=20)
    client = Client(output_dir=tmp_path / "out", cache_dir=tmp_path / "cache")
    first = client.run(clip.path, "keyframes,frames:fps=5")
    folder = Path(first.output_dir)
    assert first.ok and {"keyframes", "frames"} <= _entries(folder)
    (folder / "notes.txt").write_text("mine\n")  # a user's file in the output folder

    garbled = media.garbled_video(clip.path, tmp_path / "garbled.mp4")
    os.replace(garbled, clip.path)  # the same path now holds a file whose frames cannot be decoded
    again = client.run(clip.path, "keyframes,frames:fps=5")

    summary = json.loads((folder / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["ops"]["keyframes"]["status"] == "failed" and summary["ops"]["frames"]["status"] == "failed"
    assert not again.ok
    assert "keyframes" not in _entries(folder) and "frames" not in _entries(folder)
    assert _entries(folder) == _listed(summary) | {"summary.json", ".input", "notes.txt"}
    assert (folder / "notes.txt").read_text() == "mine\n"


def test_an_input_that_no_longer_opens_leaves_a_failed_summary_and_no_outputs(tmp_path):
    clip = media.scene_clip(tmp_path / "clip.mp4", cuts=(), frames=10)
    out = tmp_path / "out"
    assert run_cli("debug", str(clip.path), "--ops", "keyframes,scenes", "-o", str(out), "--cache-dir", str(tmp_path / "c"), "-q").returncode == 0
    folder = out / "clip"
    (folder / "notes.txt").write_text("mine\n")
    media.truncate(tmp_path / "clip.mp4", tmp_path / "cut.mp4", 0.3)
    os.replace(tmp_path / "cut.mp4", clip.path)

    proc = run_cli("debug", str(clip.path), "--ops", "keyframes,scenes", "-o", str(out), "--cache-dir", str(tmp_path / "c"), "-q")
    assert proc.returncode == 1 and "truncated" in proc.stderr
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["status"] == "failed" and "truncated" in summary["error"] and summary["ops"] == {}
    assert _entries(folder) == {"summary.json", ".input", "notes.txt"}


def test_an_input_that_is_gone_leaves_its_results_alone(tmp_path):
    """Nothing could make them again: a moved or deleted input is an error, not a reason to delete."""
    clip = media.scene_clip(tmp_path / "clip.mp4", cuts=(), frames=10)
    out = tmp_path / "out"
    args = ("--ops", "keyframes", "-o", str(out), "--cache-dir", str(tmp_path / "c"), "-q")
    assert run_cli("debug", str(clip.path), *args).returncode == 0
    before = json.loads((out / "clip" / "summary.json").read_text())
    clip.path.unlink()
    proc = run_cli("debug", str(clip.path), *args)
    assert proc.returncode == 1 and "file not found" in proc.stderr
    assert json.loads((out / "clip" / "summary.json").read_text()) == before and (out / "clip" / "keyframes" / "index.json").exists()


def test_a_rerun_asking_for_less_removes_the_rest(tmp_path, scene_clip):
    client = Client(output_dir=tmp_path / "out", cache_dir=tmp_path / "cache")
    folder = Path(client.run(scene_clip.path, "metadata,keyframes,scenes,audio").output_dir)
    assert {"keyframes", "scenes.json", "audio.wav"} <= _entries(folder)
    (folder / "notes.txt").write_text("mine\n")
    (folder / "embeddings").mkdir()
    (folder / "embeddings" / "mine.npy").write_bytes(b"not ours")  # a user's file inside a folder of ours

    result = client.run(scene_clip.path, "scenes")
    summary = json.loads((folder / "summary.json").read_text())
    assert result.ok and set(summary["ops"]) == {"scenes", "metadata"}
    assert _entries(folder) == _listed(summary) | {"summary.json", ".input", "notes.txt", "embeddings"}
    assert _listed(summary) == {"scenes.json", "scenes.csv", "metadata.json"}
    assert (folder / "embeddings" / "mine.npy").read_bytes() == b"not ours"

    # Asked again, the removed outputs come back (from the cache).
    assert client.run(scene_clip.path, "keyframes,scenes").ok
    assert {"keyframes", "scenes.json"} <= _entries(folder)


def test_intermediates_of_an_earlier_run_go_when_not_saved_again(tmp_path, scene_clip):
    out = tmp_path / "out"
    args = ("-o", str(out), "--cache-dir", str(tmp_path / "c"), "-q")
    assert run_cli("debug", str(scene_clip.path), "--ops", "objects", "--save-intermediates", *args).returncode in (0, 1)
    folder = out / "scenes"
    assert [p.name.split("-")[1] for p in (folder / "intermediates").iterdir()] == ["frames"]  # objects' input, saved
    assert run_cli("debug", str(scene_clip.path), "--ops", "metadata", *args).returncode == 0
    assert _entries(folder) == {"metadata.json", "summary.json", ".input"}


def _published(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file() and p.name not in ("summary.json", ".input")}


def test_a_record_published_from_memory_makes_its_folder_and_replaces_whole(tmp_path):
    from video_extract.outputs import publish_text

    target = tmp_path / "out" / "embeddings" / "text.json"  # a record file inside a folder not made yet
    assert publish_text('{"rows": []}\n', target) == target and target.read_text() == '{"rows": []}\n'
    publish_text("[]\n", target)
    assert target.read_text() == "[]\n" and sorted(p.name for p in target.parent.iterdir()) == ["text.json"]  # no temporary left


def test_a_file_already_holding_the_bytes_is_left_as_it_is_and_any_other_is_replaced(tmp_path):
    from video_extract.outputs import atomic_write_text

    target = tmp_path / "faces.json"
    atomic_write_text(target, '{"frames": []}\n')
    before = target.stat()
    time.sleep(0.01)
    again = atomic_write_text(target, '{"frames": []}\n')
    assert (again.st_ino, again.st_mtime_ns) == (before.st_ino, before.st_mtime_ns) == (target.stat().st_ino, target.stat().st_mtime_ns)
    for text in ('{"frames": [1]}\n', '{"frames": [2]}\n', ""):  # longer, same length, empty
        atomic_write_text(target, text)
        assert target.read_text() == text
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_text("same\n")
    target.unlink()
    target.symlink_to(elsewhere)  # a link holding the same bytes is still replaced by a file of ours
    atomic_write_text(target, "same\n")
    assert not target.is_symlink() and target.read_text() == "same\n" and elsewhere.read_text() == "same\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["elsewhere.json", "faces.json"]  # no temporary left


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2-exchange", "plain-rename"])
def test_a_file_swapped_in_replaces_files_and_links_whole_and_never_a_folder(tmp_path, monkeypatch, exchange):
    """``swap_in`` is ``os.replace`` to anyone looking: the new bytes under the name, no
    temporary left, a link replaced (its target untouched), a folder refused and kept. Where
    the exchange exists, an existing file is swapped without the rename-over (the fast path)."""
    import os

    from video_extract import outputs

    if exchange and outputs._renameat2() is None:
        pytest.skip("no renameat2 here (not Linux glibc)")
    if not exchange:
        monkeypatch.setattr(outputs, "_renameat2", lambda: None)
    renames = []
    real_replace = os.replace
    monkeypatch.setattr(outputs.os, "replace", lambda a, b: (renames.append(b), real_replace(a, b)))

    def put(name: str, text: str):
        tmp = tmp_path / f".{name}.tmp"
        tmp.write_text(text)
        outputs.swap_in(tmp, tmp_path / name)

    put("summary.json", "first\n")  # nothing there yet: a plain rename either way
    old = (tmp_path / "summary.json").stat().st_ino
    put("summary.json", "second, longer\n")
    assert (tmp_path / "summary.json").read_text() == "second, longer\n" and (tmp_path / "summary.json").stat().st_ino != old
    assert len(renames) == (1 if exchange else 2)  # the existing file was exchanged, not renamed over
    elsewhere = tmp_path / "elsewhere.txt"
    elsewhere.write_text("theirs\n")
    (tmp_path / "link.json").symlink_to(elsewhere)
    put("link.json", "ours\n")
    assert not (tmp_path / "link.json").is_symlink() and (tmp_path / "link.json").read_text() == "ours\n"
    assert elsewhere.read_text() == "theirs\n"
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "kept").write_text("kept\n")
    with pytest.raises(OSError):
        put("folder", "not a folder\n")
    assert (tmp_path / "folder" / "kept").read_text() == "kept\n"
    (tmp_path / ".folder.tmp").unlink()  # what atomic_write_text removes when the swap fails
    assert sorted(p.name for p in tmp_path.iterdir()) == ["elsewhere.txt", "folder", "link.json", "summary.json"]


def test_without_a_cache_records_are_published_from_memory_byte_for_byte(tmp_path, scene_clip, still_png, made_temp_dirs):
    """With the cache off, a stage's record goes to its consumers and to the output folder from
    memory: the files are the bytes a cached run publishes (a record file alone, one beside
    other files, one inside a folder of frames), the summary lists the same files, and a stage
    that writes nothing but its record makes no scratch folder at all."""
    ops = "metadata,scenes,frames:fps=2,keyframes"
    cached = Client(output_dir=tmp_path / "cached", cache_dir=tmp_path / "cache")
    uncached = Client(output_dir=tmp_path / "uncached", use_cache=False)
    for path in (scene_clip.path, still_png):
        a, b = cached.run(path, ops), uncached.run(path, ops)
        assert a.ok and b.ok
        assert {op: r.files for op, r in a.result.ops.items()} == {op: r.files for op, r in b.result.ops.items()}
        expected = _published(Path(a.output_dir))
        assert {"metadata.json", "scenes.json", "scenes.csv", "frames/index.json", "keyframes/index.json"} <= set(expected)
        assert _published(Path(b.output_dir)) == expected

    def scratch_folders() -> list[str]:  # besides the writability probe in the output folder
        return [p for p in made_temp_dirs if Path(p).parent != uncached.output_dir]

    made_temp_dirs.clear()
    result = uncached.run(still_png, "metadata")
    assert result.ok and scratch_folders() == []
    assert not list((tmp_path / "scratch").iterdir())
    assert json.loads((Path(result.output_dir) / "metadata.json").read_text())["path"] == str(still_png)
    made_temp_dirs.clear()
    assert uncached.run(still_png, "metadata,scenes").ok  # scenes.csv is written beside its record: a scratch folder
    assert len(scratch_folders()) == 1 and not list((tmp_path / "scratch").iterdir())  # ... gone with the request


def test_a_scratch_stage_s_files_are_handed_over_by_link_and_a_cache_entry_s_are_copied(tmp_path, scene_clip, monkeypatch):
    """Without a cache, a stage's files go from its scratch folder (deleted with the request) to
    the output folder as hard links: no data copied, no new inode. A cache entry's are copies:
    an output edited in place leaves the entry alone, and the next run publishes its bytes."""
    links: list[tuple[str, str]] = []
    real_link = os.link
    monkeypatch.setattr(os, "link", lambda src, dst, **kw: (links.append((str(src), str(dst))), real_link(src, dst, **kw))[1])
    ops = "frames:fps=2,keyframes,scenes"
    uncached = Client(output_dir=tmp_path / "uncached", use_cache=False).run(scene_clip.path, ops)
    assert uncached.ok
    frames = sorted((Path(uncached.output_dir) / "frames").glob("*.jpg"))
    assert len(frames) >= 4
    linked = {Path(src).name for src, _ in links}
    assert {f.name for f in frames} <= linked and "scenes.csv" in linked
    assert all("video-extract-" in src for src, _ in links)  # from the scratch folder
    assert all(f.stat().st_nlink == 1 for f in frames)  # the scratch copy is gone

    links.clear()
    client = Client(output_dir=tmp_path / "cached", cache_dir=tmp_path / "cache")
    first = client.run(scene_clip.path, ops)
    assert first.ok and links == []
    published = Path(first.output_dir) / "frames" / frames[0].name
    original = published.read_bytes()
    with open(published, "r+b") as f:  # an editor that writes in place
        f.write(b"edited")
    again = client.run(scene_clip.path, ops)
    assert again.ok and all(r.cached for op, r in again.result.ops.items() if op != "metadata")
    assert published.read_bytes() == original


def test_a_link_across_file_systems_falls_back_to_a_copy(tmp_path, monkeypatch):
    source = tmp_path / "scratch" / "frames"
    source.mkdir(parents=True)
    (source / "frame_00000.jpg").write_bytes(b"jpeg bytes")
    (tmp_path / "scratch" / "audio.wav").write_bytes(b"wav bytes")

    def cross_device(src, dst, **kw):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", cross_device)
    publish_path(source, tmp_path / "out" / "frames", link=True)
    publish_path(tmp_path / "scratch" / "audio.wav", tmp_path / "out" / "audio.wav", link=True)
    assert (tmp_path / "out" / "frames" / "frame_00000.jpg").read_bytes() == b"jpeg bytes"
    assert (tmp_path / "out" / "audio.wav").read_bytes() == b"wav bytes"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["audio.wav", "frames"]  # no temporaries left


def test_the_writability_probe_is_tried_again_only_when_the_folder_changed(tmp_path, made_temp_dirs):
    from video_extract.errors import UsageError
    from video_extract.outputs import ensure_output_root

    root = tmp_path / "out"
    root.mkdir()

    def probes() -> int:
        return sum(1 for p in made_temp_dirs if Path(p).parent == root)

    ensure_output_root(root)
    ensure_output_root(root)
    assert probes() == 1  # the folder has not changed since a write in it succeeded
    root.chmod(0o700)
    ensure_output_root(root)
    assert probes() == 2  # its mode changed: tried again
    ensure_output_root(root / "a" / "b")  # not made yet: the check is in the nearest folder there is
    assert probes() == 2
    shutil.rmtree(root)
    root.write_text("not a folder")
    with pytest.raises(UsageError, match="is not a directory"):
        ensure_output_root(root)


def test_a_summary_another_writer_replaced_is_read_for_what_it_lists(tmp_path, still_png, monkeypatch):
    """The next run prunes by the summary.json in the folder: the one this process wrote is known
    without reading it; one written since by another process is read."""
    from video_extract import outputs

    reads: list[Path] = []
    read_summary = outputs.read_summary
    monkeypatch.setattr(outputs, "read_summary", lambda folder: reads.append(folder) or read_summary(folder))
    client = Client(output_dir=tmp_path / "out", use_cache=False)
    folder = Path(client.run(still_png, "metadata,frames").output_dir)
    reads.clear()
    assert client.run(still_png, "metadata,frames").ok and reads == []  # its own summary: not parsed again

    summary = json.loads((folder / "summary.json").read_text())
    summary["ops"]["loudness"] = {"status": "ok", "files": ["loudness.json"]}  # a plugin this process does not have
    (folder / "loudness.json").write_text("{}\n")
    (folder / "notes.txt").write_text("mine\n")
    atomic_write_json(folder / "summary.json", summary)  # as another process's run leaves it
    assert client.run(still_png, "metadata").ok and reads == [folder]
    assert _entries(folder) == {"metadata.json", "summary.json", ".input", "notes.txt"}  # frames/ and loudness.json went, the user's file stayed


# -- names and kinds -------------------------------------------------------------------------


def test_show_path_escapes_only_names_that_need_it():
    assert show_path("/data/my clip é.mp4") == "/data/my clip é.mp4"
    assert show_path("/data/a\nb.mp4") == "'/data/a\\nb.mp4'"
    assert show_path("x\x1b[31m.mp4") == "'x\\x1b[31m.mp4'"
    assert str(InputError("file is empty (0 bytes)", "/d/plain.mp4")) == "/d/plain.mp4: file is empty (0 bytes)"
    assert "\n" not in str(InputError("file is empty (0 bytes)", "/d/a\nb.mp4"))


def test_a_fifo_is_refused_without_being_opened(tmp_path):
    fifo = tmp_path / "stream.mp4"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match=r"not a regular file \(FIFO\)"):
        check_readable(fifo)  # opening it for reading would block: the test would hang
    proc = run_cli("debug", str(fifo), "--ops", "metadata", "-o", str(tmp_path / "o"), "--cache-dir", str(tmp_path / "c"), "-q", timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.strip() == f"error: {fifo}: not a regular file (FIFO)"


def test_a_socket_and_a_device_are_refused(tmp_path):
    with pytest.raises(InputError, match=r"not a regular file \(character device\)"):
        check_readable("/dev/null")
    path = tmp_path / "s.sock"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(path))
        with pytest.raises(InputError, match=r"not a regular file \(socket\)"):
            check_readable(path)


def test_a_newline_in_a_name_is_one_escaped_error_line(tmp_path):
    bad = tmp_path / "bad\nname.mp4"
    bad.write_text("not media at all\n" * 20)
    proc = run_cli("debug", str(bad), "--ops", "metadata", "-o", str(tmp_path / "o"), "--cache-dir", str(tmp_path / "c"), "-q")
    assert proc.returncode == 1
    lines = proc.stderr.splitlines()
    assert lines == [f"error: {show_path(bad)}: is a text file, not audio, video or an image"], proc.stderr


def test_a_link_loop_is_one_failed_input_not_a_crashed_batch(tmp_path, scene_clip):
    """A link to itself (``loop.mp4 -> loop.mp4``) made Python's ``Path.resolve()`` raise: the
    folder scan, and then any command naming it, ended in an internal error."""
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(scene_clip.path, folder / "clip.mp4")
    (folder / "loop.mp4").symlink_to("loop.mp4")
    (folder / "a.mp4").symlink_to("b.mp4")
    (folder / "b.mp4").symlink_to("a.mp4")
    found = collect_inputs([folder])
    assert found.media == [folder / "clip.mp4"] and found.not_media == [folder / n for n in ("a.mp4", "b.mp4", "loop.mp4")]
    loop = folder / "loop.mp4"
    proc = run_cli("debug", str(loop), "--ops", "metadata", "-o", str(tmp_path / "o"), "-q")
    assert proc.returncode == 1 and proc.stderr.strip() == f"error: {loop}: cannot read: Too many levels of symbolic links", proc.stderr
    batch = Client(output_dir=tmp_path / "o", use_cache=False).execute_bulk([folder, loop], ["metadata"], workers=1)
    rows = {Path(r.input).name: r for r in batch.rows}
    assert rows["clip.mp4"].status == "ok" and rows["loop.mp4"].status == "failed" and "symbolic links" in rows["loop.mp4"].error
    # where only some folders are allowed (the server), the loop is refused as unreadable, not as a crash
    strict = Client(output_dir=tmp_path / "o2", use_cache=False, source_policy=SourcePolicy(allowed_roots=(folder,)))
    with pytest.raises(InputError, match="symbolic links"):
        strict.run(loop, ["metadata"])


def test_bulk_folder_scan_reports_a_fifo_and_does_not_hang(tmp_path, scene_clip):
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(scene_clip.path, folder / "clip.mp4")
    os.mkfifo(folder / "pipe.mp4")
    (folder / "odd\nname.mp4").write_text("text, not media\n" * 20)
    found = collect_inputs([folder])
    assert found.media == [folder / "clip.mp4", folder / "odd\nname.mp4"] and found.not_media == [folder / "pipe.mp4"]

    started = time.monotonic()
    args = ("--ops", "metadata", "-o", str(tmp_path / "o"), "--cache-dir", str(tmp_path / "c"), "--workers", "1")
    proc = run_cli("bulk", str(folder), *args, timeout=240, env={"COLUMNS": "500"})  # no wrapping of log lines
    assert time.monotonic() - started < 200
    assert proc.returncode == 1
    summary = json.loads((tmp_path / "o" / "batch_summary.json").read_text())
    status = {Path(r["input"]).name: r["status"] for r in summary["files"]}
    assert status == {"clip.mp4": "ok", "odd\nname.mp4": "failed"} and summary["not_media"] == [str(folder / "pipe.mp4")]
    errors = [line for line in proc.stderr.splitlines() if show_path(folder / "odd\nname.mp4") in line]
    assert len(errors) == 1 and "is a text file" in errors[0], proc.stderr
    assert not any(line.lstrip().startswith("name.mp4") for line in proc.stderr.splitlines())  # the name was not split


def test_a_full_output_disk_fails_each_file_with_one_line_and_the_batch_says_why(tmp_path, small_disk):
    """Each file used to fail with "internal error: OSError: [Errno 28]", and the whole command
    with another at its batch summary."""
    disk = small_disk(256 * 1024)
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:  # take every block: the next write anywhere on it fails
        while os.write(fd, b"\0" * 4096):
            pass
    except OSError:
        pass
    finally:
        os.close(fd)
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(3):
        media.scene_clip(folder / f"clip{i}.mp4", cuts=(16,), frames=32, width=96, height=64, seed=i)
    out = disk / "out"
    proc = run_cli("bulk", str(folder), "--ops", "metadata,keyframes", "-o", str(out), "--workers", "1", "--progress", "none", env={"COLUMNS": "500"})
    assert proc.returncode == 1 and "internal error" not in proc.stderr, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == f"error: cannot write {out / 'batch_summary.json'}: No space left on device", proc.stderr
    for i in range(3):
        assert f"clip{i}.mp4: cannot write {out}/clip{i}" in proc.stderr and "No space left on device" in proc.stderr
    assert not [p for p in disk.rglob(".*")]  # no temporary left: nothing half-written
    clip = folder / "clip0.mp4"
    proc = run_cli("debug", str(clip), "--ops", "metadata", "-o", str(out), "-q")
    assert proc.returncode == 1 and proc.stderr.startswith(f"error: {clip}: cannot write {out}/clip0"), proc.stderr
    assert proc.stderr.strip().endswith("No space left on device"), proc.stderr


def _random_json(rng, depth: int = 0):
    """Values records dump to, and the corners of json.dumps: odd floats, escapes, non-str keys."""
    floats = [0.0, -0.0, 1e16, 1.5e-7, 123456789.125, float("nan"), float("inf"), -float("inf"), 2.0**-1074, 0.1 + 0.2]
    strings = ["", "plain", 'quote " and \\ back', "tab\tline\nreturn\r", "\x00\x1f\x7f", "é ß 汉字 🎬", "\udcff name", "\u2028\u2029"]
    kind = rng.randrange(9 if depth < 4 else 6)
    if kind == 0:
        return rng.choice(strings) + str(rng.random())
    if kind == 1:
        return rng.choice([None, True, False])
    if kind == 2:
        return rng.choice([0, -1, 2**70, rng.randrange(-(10**6), 10**6)])
    if kind == 3:
        return rng.choice(floats + [rng.uniform(-1e6, 1e6)])
    if kind in (4, 5):
        return rng.choice(strings)
    if kind == 6:
        return [_random_json(rng, depth + 1) for _ in range(rng.randrange(4))]
    if kind == 7:
        return tuple(_random_json(rng, depth + 1) for _ in range(rng.randrange(3)))
    keys = [rng.choice(strings) + str(n) for n in range(rng.randrange(5))] + rng.sample([1, 2.5, True, False, None, float("nan")], rng.randrange(3))
    return {key: _random_json(rng, depth + 1) for key in keys}


def test_json_text_writes_the_very_characters_json_dumps_does():
    """Every record and summary goes through ``json_text``: its files must be those that
    ``json.dumps(indent=2, ensure_ascii=False)`` wrote before, byte for byte."""
    import random

    from video_extract.jsontext import json_text

    rng = random.Random(12)
    for _ in range(3000):
        value = _random_json(rng)
        assert json_text(value) == json.dumps(value, indent=2, ensure_ascii=False) + "\n"
    # What json.dumps refuses, it still refuses, with its own words.
    for bad in ({"a": {1, 2}}, {(1, 2): 3}, [b"bytes"]):
        with pytest.raises(TypeError) as ours:
            json_text(bad)
        with pytest.raises(TypeError) as theirs:
            json.dumps(bad, indent=2, ensure_ascii=False)
        assert str(ours.value) == str(theirs.value)
    loop: list = []
    loop.append(loop)
    with pytest.raises(ValueError, match="Circular reference"):
        json_text(loop)


def test_an_input_named_with_a_carriage_return_keeps_its_output_folder(tmp_path):
    """The owner file is read as the bytes it holds: a name with ``\\r`` (Linux allows any
    byte but / and NUL) is the same input on the next run, not a stranger with a hashed folder."""
    from video_extract.outputs import claim_output_dir, output_dir_for, owned_by

    clip = tmp_path / "take\r1.png"
    clip.write_bytes(b"not read here")
    folder = output_dir_for(tmp_path / "out", clip)
    claim_output_dir(folder, clip)
    assert owned_by(folder, clip)
    assert output_dir_for(tmp_path / "out", clip) == folder
