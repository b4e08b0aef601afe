"""The export's tables: one schema each, and the rows one input contributes to it.

Every row starts with ``source_id`` (the input's BLAKE3 digest) and ``stem`` (its output
folder), and carries its times in seconds on the source timeline (``start``/``end``, or
``time`` for one analysed frame), so tables join on ``source_id`` and line up in time.
Schemas are declared here, not inferred, so a table no input contributed to still has its
columns and types.
"""

from __future__ import annotations

from collections.abc import Callable

import pyarrow as pa

from video_extract.exports.records import ExportedFile
from video_extract.outputs import utf8_text
from video_extract.results import (
    DetectionsResult,
    DiarizationResult,
    Entity,
    FusionResult,
    MediaInfo,
    OcrResult,
    ScenesResult,
    Span,
    TranscriptionResult,
)

_ID = [pa.field("source_id", pa.string(), nullable=False), pa.field("stem", pa.string(), nullable=False)]
_SPAN = pa.struct([pa.field("start", pa.float64()), pa.field("end", pa.float64())])
_BOX = [pa.field(name, pa.float64()) for name in ("x1", "y1", "x2", "y2")]


def _schema(*fields: pa.Field | tuple[str, pa.DataType]) -> pa.Schema:
    return pa.schema(_ID + [f if isinstance(f, pa.Field) else pa.field(*f) for f in fields])


SCHEMAS: dict[str, pa.Schema] = {
    "files": _schema(
        ("input", pa.string()),
        ("start", pa.float64()),
        ("end", pa.float64()),
        ("duration", pa.float64()),
        ("size_bytes", pa.int64()),
        ("container", pa.string()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("fps", pa.float64()),
        ("frame_count", pa.int64()),
        ("audio_streams", pa.int32()),
        ("ops", pa.list_(pa.string())),
    ),
    "scenes": _schema(("scene", pa.int32()), ("start", pa.float64()), ("end", pa.float64()), ("start_frame", pa.int64()), ("end_frame", pa.int64())),
    "segments": _schema(
        ("segment", pa.int32()),
        ("start", pa.float64()),
        ("end", pa.float64()),
        ("text", pa.string()),
        ("speaker", pa.string()),
        ("language", pa.string()),
        ("avg_logprob", pa.float64()),
        ("no_speech_prob", pa.float64()),
    ),
    "words": _schema(
        ("segment", pa.int32()),
        ("start", pa.float64()),
        ("end", pa.float64()),
        ("word", pa.string()),
        ("probability", pa.float64()),
        ("speaker", pa.string()),
    ),
    "speakers": _schema(("speaker", pa.string()), ("start", pa.float64()), ("end", pa.float64())),
    "detections": _schema(
        ("kind", pa.string()),  # objects | faces | ocr (the operation)
        ("frame", pa.int64()),
        ("time", pa.float64()),
        ("label", pa.string()),
        ("confidence", pa.float64()),
        *_BOX,
        ("text", pa.string()),
    ),
    "tracks": _schema(
        ("id", pa.string()),
        ("kind", pa.string()),  # face | object
        ("label", pa.string()),
        ("start", pa.float64()),
        ("end", pa.float64()),
        ("seconds", pa.float64()),
        ("frames", pa.int64()),
        ("confidence", pa.float64()),
        ("time", pa.float64()),  # the representative frame's
        *_BOX,
        ("crop", pa.string()),
        ("spans", pa.list_(_SPAN)),
    ),
    "texts": _schema(
        ("text", pa.string()),
        ("start", pa.float64()),
        ("end", pa.float64()),
        ("first_frame", pa.int64()),
        ("last_frame", pa.int64()),
        ("frames", pa.int64()),
        ("confidence", pa.float64()),
        *_BOX,
    ),
    "entities": _schema(
        ("id", pa.string()),
        ("kind", pa.string()),
        ("label", pa.string()),
        ("start", pa.float64()),
        ("end", pa.float64()),
        ("seconds", pa.float64()),
        ("turns", pa.int64()),
        ("frames", pa.int64()),
        ("confidence", pa.float64()),
        ("score", pa.float64()),
        ("evidence", pa.list_(pa.string())),
        ("spans", pa.list_(_SPAN)),
    ),
    "relationships": _schema(
        ("type", pa.string()),
        ("source", pa.string()),  # entity id
        ("target", pa.string()),  # entity id, or scene:<n>
        ("score", pa.float64()),
        ("start", pa.float64()),
        ("end", pa.float64()),
        ("spans", pa.list_(_SPAN)),
    ),
}

#: The embeddings tables (one per kind, vectors as fixed_size_list<float32>[dim]): their
#: columns before ``vector``.
EMBEDDING_KINDS = {"TextEmbeddings": "text", "VisionEmbeddings": "vision", "AudioEmbeddings": "audio"}
EMBEDDING_COLUMNS = [
    ("row", pa.int32()),
    ("start", pa.float64()),
    ("end", pa.float64()),
    ("time", pa.float64()),
    ("frame", pa.int64()),
    ("scene", pa.int32()),
    ("text", pa.string()),
    ("speaker", pa.string()),
    ("model", pa.string()),
]


def embeddings_schema(dim: int) -> pa.Schema:
    return _schema(*EMBEDDING_COLUMNS, ("vector", pa.list_(pa.float32(), dim)))


def _box(box: list[float] | None) -> dict:
    return dict(zip(("x1", "y1", "x2", "y2"), box)) if box and len(box) == 4 else {}


def _spans(spans: list[Span]) -> list[dict]:
    return [{"start": s.start, "end": s.end} for s in spans]


def _extent(spans: list[Span]) -> dict:
    return {"start": min(s.start for s in spans), "end": max(s.end for s in spans)} if spans else {}


def _files(f: ExportedFile) -> list[dict]:
    info = f.first("Metadata")
    row: dict = {"input": utf8_text(f.input), "ops": sorted(op for op, s in f.result.ops.items() if s.status == "ok")}
    if isinstance(info, MediaInfo):
        video = info.video
        row |= {
            "start": info.start_time,
            "end": info.start_time + info.duration if info.duration is not None else None,
            "duration": info.duration,
            "size_bytes": info.size_bytes,
            "container": info.container,
            "audio_streams": len(info.audio),
        }
        if video is not None:
            row |= {"width": video.display_width, "height": video.display_height, "fps": video.fps, "frame_count": video.frame_count}
    return [row]


def _scenes(f: ExportedFile) -> list[dict]:
    scenes = f.first("Scenes")
    return [{"scene": n, **s.model_dump()} for n, s in enumerate(scenes.scenes)] if isinstance(scenes, ScenesResult) else []


def _segments(f: ExportedFile) -> list[dict]:
    t = f.first("Transcription")
    if not isinstance(t, TranscriptionResult):
        return []
    return [{"segment": n, "language": t.language, **s.model_dump(exclude={"words"})} for n, s in enumerate(t.segments)]


def _words(f: ExportedFile) -> list[dict]:
    t = f.first("Transcription")
    if not isinstance(t, TranscriptionResult):
        return []
    return [{"segment": n, **w.model_dump()} for n, s in enumerate(t.segments) for w in s.words]


def _speakers(f: ExportedFile) -> list[dict]:
    d = f.first("Diarization")
    return [s.model_dump() for s in d.segments] if isinstance(d, DiarizationResult) else []


def _detections(f: ExportedFile) -> list[dict]:
    rows = []
    for type_name in ("Objects", "Faces", "OCR"):
        for op, record in f.all(type_name):
            if not isinstance(record, DetectionsResult):
                continue
            for frame in record.frames:
                for d in frame.detections:
                    rows.append(
                        {"kind": op, "frame": frame.frame, "time": frame.time, "label": d.label, "confidence": d.confidence, "text": d.text, **_box(d.box)}
                    )
    return rows


def _fusion(f: ExportedFile) -> FusionResult | None:
    fusion = f.first("Fusion")
    return fusion if isinstance(fusion, FusionResult) else None


def _entity(e: Entity) -> dict:
    return {
        **e.model_dump(exclude={"spans", "box", "time", "crop"}),
        **_extent(e.spans),
        "spans": _spans(e.spans),
    }


def _tracks(f: ExportedFile) -> list[dict]:
    fusion = _fusion(f)
    entities = (fusion.entities or []) if fusion else []
    return [
        {
            **e.model_dump(include={"id", "kind", "label", "seconds", "frames", "confidence", "time", "crop"}),
            **_extent(e.spans),
            **_box(e.box),
            "spans": _spans(e.spans),
        }
        for e in entities
        if e.kind in ("face", "object")
    ]


def _texts(f: ExportedFile) -> list[dict]:
    rows = []
    for _, record in f.all("OCR"):
        if isinstance(record, OcrResult):
            rows += [{**t.model_dump(exclude={"box"}), **_box(t.box)} for t in record.texts]
    return rows


def _entities(f: ExportedFile) -> list[dict]:
    fusion = _fusion(f)
    return [_entity(e) for e in (fusion.entities or [])] if fusion else []


def _relationships(f: ExportedFile) -> list[dict]:
    fusion = _fusion(f)
    if fusion is None:
        return []
    return [{**r.model_dump(exclude={"spans"}), **_extent(r.spans), "spans": _spans(r.spans)} for r in fusion.relationships or []]


ROWS: dict[str, Callable[[ExportedFile], list[dict]]] = {
    "files": _files,
    "scenes": _scenes,
    "segments": _segments,
    "words": _words,
    "speakers": _speakers,
    "detections": _detections,
    "tracks": _tracks,
    "texts": _texts,
    "entities": _entities,
    "relationships": _relationships,
}
assert ROWS.keys() == SCHEMAS.keys()


def table(name: str, f: ExportedFile) -> pa.Table:
    """The rows one input contributes to table ``name``, in that table's schema."""
    schema = SCHEMAS[name]
    rows = [{"source_id": f.source_id, "stem": f.stem, **row} for row in ROWS[name](f)]
    return pa.Table.from_pylist([{k: r.get(k) for k in schema.names} for r in rows], schema=schema)


def embedding_tables(f: ExportedFile) -> list[tuple[str, pa.Table]]:
    """(table name, rows) for each embeddings output of this input: ``text_embeddings`` …"""
    import numpy as np

    out = []
    for type_name, kind in EMBEDDING_KINDS.items():
        for _, record in f.all(type_name):
            vectors = np.asarray(record.vectors, dtype=np.float32)  # type: ignore[attr-defined]
            rows = record.rows  # type: ignore[attr-defined]
            if vectors.ndim != 2 or len(vectors) != len(rows):
                continue
            dim = int(vectors.shape[1])
            schema = embeddings_schema(dim)
            columns: dict[str, list] = {name: [] for name, _ in EMBEDDING_COLUMNS}
            for n, row in enumerate(rows):
                data = row.model_dump()
                time = data.get("time", data.get("start"))
                values = {"row": n, "time": time, "model": record.model, **data}  # type: ignore[attr-defined]
                for name in columns:
                    columns[name].append(values.get(name))
            arrays = [pa.array([f.source_id] * len(rows), pa.string()), pa.array([f.stem] * len(rows), pa.string())]
            arrays += [pa.array(columns[name], type) for name, type in EMBEDDING_COLUMNS]
            arrays.append(pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1), pa.float32()), dim))
            out.append((f"{kind}_embeddings", pa.Table.from_arrays(arrays, schema=schema)))
    return out
