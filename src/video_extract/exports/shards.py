"""``--export webdataset``: tar shards in video2dataset's layout, under ``{out}/export/webdataset/``.

Shards are ``00000.tar``, ``00001.tar``, … of ``shard_size`` samples; a sample's key is its
shard number (5 digits) followed by its index in the shard (as many digits as ``shard_size - 1``
has), as video2dataset numbers them. One sample per finished input:

- ``KEY.json``: ``key``, ``source_id``, ``stem``, ``input``, ``frames`` (the jpgs' frame and
  time) and the fused output (``fusion``: ``fusion.json``'s record) when fusion ran, else every
  output's record (``outputs``: operation -> record);
- ``KEY.0.jpg``, ``KEY.1.jpg``, …: the keyframes (else the scene frames) in time order;
- ``KEY.txt``: the transcript's text, when transcribed (video2dataset's caption);
- ``KEY.wav``: the audio track, with ``include_audio`` and the ``audio`` operation.

Members carry no time stamps or owners, so the same batch gives the same bytes.
"""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Iterable
from pathlib import Path

from video_extract.errors import InputError
from video_extract.exports.records import ExportedFile, LeftOut
from video_extract.results import AudioResult, FramesResult, FusionResult, TranscriptionResult


def key_digits(shard_size: int) -> int:
    return max(1, len(str(shard_size - 1)))


def sample(f: ExportedFile, key: str, include_audio: bool) -> dict[str, bytes | Path]:
    """A sample's members: extension -> bytes, or the file to copy (checked to be there, so a
    sample is whole or left out)."""
    members: dict[str, bytes | Path] = {}
    frames = f.first("Keyframes") or f.first("SceneFrames")
    shown = []
    if isinstance(frames, FramesResult):
        for n, entry in enumerate(sorted(frames.frames, key=lambda e: (e.time, e.frame))):
            members[f"{n}.jpg"] = frames.directory / entry.file
            shown.append({"jpg": f"{n}.jpg", "frame": entry.frame, "time": entry.time})
    data: dict = {"key": key, "source_id": f.source_id, "stem": f.stem, "input": f.input, "frames": shown}
    fusion = f.first("Fusion")
    if isinstance(fusion, FusionResult):
        data["fusion"] = fusion.model_dump(mode="json")
    else:
        data["outputs"] = {op: record.model_dump(mode="json") for records in f.outputs.values() for op, record in records}
    members["json"] = json.dumps(data, ensure_ascii=False, indent=1).encode("utf-8", "backslashreplace")  # an odd file name as \\udcXX
    transcript = f.first("Transcription")
    if isinstance(transcript, TranscriptionResult):
        members["txt"] = transcript.text.strip().encode("utf-8")
    audio = f.first("Audio")
    if include_audio and isinstance(audio, AudioResult):
        members["wav"] = audio.path
    for content in members.values():
        if isinstance(content, Path) and not content.is_file():
            raise InputError(f"{content.name} is missing from its outputs", f.folder)
    return dict(sorted(members.items(), key=lambda kv: (kv[0] != "json", kv[0])))


def _add(tar: tarfile.TarFile, name: str, content: bytes | Path) -> None:
    info = tarfile.TarInfo(name)
    info.mode, info.mtime, info.uname, info.gname = 0o444, 0, "", ""
    if isinstance(content, Path):
        info.size = content.stat().st_size
        with content.open("rb") as handle:
            tar.addfile(info, handle)
    else:
        info.size = len(content)
        tar.addfile(info, io.BytesIO(content))


def write_shards(folder: Path, files: Iterable[ExportedFile], shard_size: int, include_audio: bool, left_out: list[LeftOut]) -> dict[str, int]:
    """Write the samples of ``files`` into shards in ``folder``; counts of shards and samples."""
    digits = key_digits(shard_size)
    shards = samples = 0
    tar: tarfile.TarFile | None = None
    try:
        for f in files:
            shard, index = divmod(samples, shard_size)
            key = f"{shard:05d}{index:0{digits}d}"
            try:
                members = sample(f, key, include_audio)
            except InputError as exc:
                left_out.append(LeftOut(f.input, exc.message))
                continue
            if index == 0:
                if tar is not None:
                    tar.close()
                tar = tarfile.open(folder / f"{shard:05d}.tar", "w", format=tarfile.USTAR_FORMAT)
                shards += 1
            for extension, content in members.items():
                _add(tar, f"{key}.{extension}", content)
            samples += 1
    finally:
        if tar is not None:
            tar.close()
    return {"shards": shards, "samples": samples}
