"""Exports of a finished bulk batch as datasets people load: Parquet tables and WebDataset shards.

Built after the batch from the per-input outputs read back as typed records (``records``), into
``{out}/export/<format>/``, swapped in whole. Failed inputs are left out and listed in the
export's ``manifest.json``; an export of a resumed batch is the export of the whole batch.

    from video_extract.exports import export_batch
    export_batch(Path("out"), ["parquet", "webdataset"], shard_size=1000)
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from video_extract.errors import UsageError
from video_extract.exports.records import LeftOut, read_batch
from video_extract.outputs import EXPORT_DIR, atomic_write_dir, remove_stale_temporaries

FORMATS = ("parquet", "webdataset")
MANIFEST = "manifest.json"
DEFAULT_SHARD_SIZE = 1000


@dataclass
class ExportResult:
    """One export: where it is, how many inputs it holds, which were left out and why."""

    format: str
    path: Path
    files: int
    left_out: list[LeftOut] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)  # parquet: rows per table; webdataset: shards, samples


def parse_formats(formats: str | Iterable[str] | None) -> list[str]:
    """``"parquet,webdataset"`` or a list of names, checked (a bad name is a usage error before a batch runs)."""
    if formats is None:
        return []
    items = formats.split(",") if isinstance(formats, str) else [part for item in formats for part in str(item).split(",")]
    names = list(dict.fromkeys(item.strip().lower() for item in items if item.strip()))
    unknown = [n for n in names if n not in FORMATS]
    if unknown:
        raise UsageError(f"unknown export format '{unknown[0]}'; valid: {', '.join(FORMATS)}")
    return names


def check_shard_size(shard_size: int) -> int:
    if not isinstance(shard_size, int) or isinstance(shard_size, bool) or shard_size < 1:
        raise UsageError(f"shard size must be a whole number of samples, at least 1 (got {shard_size!r})")
    return shard_size


def export_batch(output_root: Path, formats: Sequence[str], shard_size: int = DEFAULT_SHARD_SIZE, include_audio: bool = False) -> list[ExportResult]:
    """Export the batch in ``output_root`` (its ``batch_summary.json``) in each of ``formats``."""
    formats = parse_formats(formats)
    check_shard_size(shard_size)
    root = output_root / EXPORT_DIR
    root.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(root)  # the hidden folder of an export killed half-way
    results = []
    for fmt in formats:
        result = ExportResult(fmt, root / fmt, 0)
        atomic_write_dir(result.path, partial(_write, output_root, result, shard_size, include_audio))
        results.append(result)
    return results


def _write(output_root: Path, result: ExportResult, shard_size: int, include_audio: bool, folder: Path) -> None:
    """Write one format's dataset and its manifest into ``folder`` (swapped in by the caller)."""
    from video_extract.exports.parquet import write_parquet
    from video_extract.exports.shards import write_shards

    files = read_batch(output_root, result.left_out)
    if result.format == "parquet":
        result.counts = write_parquet(folder, files)
        result.files = result.counts["files"]
        details: dict = {"tables": result.counts}
    else:
        result.counts = write_shards(folder, files, shard_size, include_audio, result.left_out)
        result.files = result.counts["samples"]
        details = {"shard_size": shard_size, **result.counts}
    manifest = {"format": result.format, "files": result.files, "left_out": [{"input": i.input, "reason": i.reason} for i in result.left_out], **details}
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8", errors="backslashreplace")
