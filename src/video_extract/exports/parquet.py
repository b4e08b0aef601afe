"""``--export parquet``: one Parquet dataset per table under ``{out}/export/parquet/<table>/``.

Each table is one file (``part-00000.parquet``) written as the batch's inputs are read, in row
groups of a bounded size, so a big batch is never all in memory. The whole ``parquet/`` folder
is built beside its final name and swapped in: a reader sees the previous export or this one.
The same finished batch (a resumed one included) gives the same bytes.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from video_extract.exports.records import ExportedFile
from video_extract.exports.tables import SCHEMAS, embedding_tables, table

PART = "part-00000.parquet"
ROW_GROUP = 65536  # rows buffered per table before a row group is written


class _TableWriter:
    def __init__(self, path: Path, schema: pa.Schema):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.writer = pq.ParquetWriter(path, schema)
        self.schema = schema
        self.pending: list[pa.Table] = []
        self.buffered = 0
        self.rows = 0

    def add(self, rows: pa.Table) -> None:
        if rows.num_rows == 0:
            return
        self.pending.append(rows)
        self.buffered += rows.num_rows
        self.rows += rows.num_rows
        if self.buffered >= ROW_GROUP:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            self.writer.write_table(pa.concat_tables(self.pending))
        self.pending, self.buffered = [], 0

    def close(self) -> None:
        self.flush()
        self.writer.close()  # an empty table still gets its schema


def write_parquet(folder: Path, files) -> dict[str, int]:
    """Write every table of ``files`` (ExportedFile, one at a time) into ``folder``; rows per table."""
    writers = {name: _TableWriter(folder / name / PART, schema) for name, schema in SCHEMAS.items()}
    f: ExportedFile
    for f in files:
        for name in SCHEMAS:
            writers[name].add(table(name, f))
        for name, rows in embedding_tables(f):
            dim = rows.schema.field("vector").type.list_size
            if name in writers and writers[name].schema != rows.schema:
                name = f"{name}_{dim}"  # another model's width in the same batch: a table of its own
            if name not in writers:
                writers[name] = _TableWriter(folder / name / PART, rows.schema)
            writers[name].add(rows)
    for writer in writers.values():
        writer.close()
    return {name: writer.rows for name, writer in sorted(writers.items())}
