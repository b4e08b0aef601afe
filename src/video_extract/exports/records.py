"""A finished batch read back as typed records: what every export is built from.

An export never re-runs anything: it reads ``batch_summary.json`` (written last by the batch)
for which inputs finished, and each one's ``summary.json`` and output files through the output
type declarations (``results.py``), exactly as ``Client`` reads results back. A failed input,
or one whose outputs cannot be read back whole, is left out with its reason.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from video_extract.errors import InputError
from video_extract.outputs import batch_output_dir, read_batch_rows, read_summary
from video_extract.results import FileResult, Output, output_type


@dataclass
class ExportedFile:
    """One finished input and its outputs, by output type name (``Scenes``, ``Fusion``…)."""

    source_id: str  # the input's BLAKE3 digest: the same file has the same id in every batch
    stem: str  # its output folder's name
    input: str
    folder: Path
    result: FileResult
    outputs: dict[str, list[tuple[str, Output]]] = field(default_factory=dict)  # type -> [(operation, record)]

    def first(self, type_name: str) -> Output | None:
        found = self.outputs.get(type_name)
        return found[0][1] if found else None

    def all(self, type_name: str) -> list[tuple[str, Output]]:
        return self.outputs.get(type_name, [])


@dataclass
class LeftOut:
    input: str
    reason: str


def read_batch(output_root: Path, left_out: list[LeftOut]) -> Iterator[ExportedFile]:
    """Every finished input of the batch, one at a time (a big batch is never all in memory);
    what cannot be exported is appended to ``left_out``."""
    for row in read_batch_rows(output_root):
        shown = row.get("input", "?")
        if row.get("status") == "failed":
            left_out.append(LeftOut(shown, f"failed: {row.get('error') or 'see batch_summary.json'}"))
            continue
        if not row.get("output_dir"):
            left_out.append(LeftOut(shown, "no output folder"))
            continue
        try:
            yield read_file(batch_output_dir(output_root, row))
        except InputError as exc:
            left_out.append(LeftOut(shown, exc.message))


def read_file(folder: Path) -> ExportedFile:
    """One input's finished outputs as records."""
    summary = read_summary(folder)
    if summary is None:
        raise InputError("its summary.json is missing or unreadable", folder)
    try:
        result = FileResult.model_validate(summary)
    except ValidationError:
        raise InputError("its summary.json does not match this version's contract", folder) from None
    if result.status != "ok":
        raise InputError(f"it did not finish ({result.error or 'failed'})", folder)
    exported = ExportedFile(source_id=result.digest or folder.name, stem=folder.name, input=result.input, folder=folder, result=result)
    for op, status in result.ops.items():
        if status.status != "ok" or status.type is None:
            continue
        try:
            record = output_type(status.type).load(folder, status.data)
        except LookupError:
            continue  # a third-party output type whose plugin is not installed here
        except (OSError, ValueError) as exc:  # a file deleted or damaged since (ValidationError is a ValueError)
            raise InputError(f"{op}: its output cannot be read back ({type(exc).__name__})", folder) from None
        exported.outputs.setdefault(status.type, []).append((op, record))
    return exported
