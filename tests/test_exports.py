"""Bulk exports load in the tools people use: Parquet tables in pandas, DuckDB and Ray; WebDataset
shards in the ``webdataset`` package; row counts match the per-file outputs."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from video_extract import Client
from video_extract.exports import export_batch
from video_extract.exports.parquet import write_parquet
from video_extract.exports.records import ExportedFile
from video_extract.exports.tables import SCHEMAS, table
from video_extract.results import Entity, FileResult, FusionResult, OpResult, Relationship, SceneDigest, Span
from video_extract.testing import media

from .conftest import SHARED_MODELS, needs_shared_models, run_cli

OPS = "metadata,scenes,keyframes,audio,fusion"
TABLES = ["files", "scenes", "segments", "words", "speakers", "detections", "tracks", "texts", "entities", "relationships"]


@pytest.fixture(scope="module")
def twenty(tmp_path_factory):
    """20 tiny clips (cuts at known frames, every other one with a tone) and one that is not media."""
    folder = tmp_path_factory.mktemp("twenty")
    clips = []
    for n in range(20):
        frames = 24 + (n % 4) * 6
        cuts = [(8 + n % 5)] if n % 3 else [8, 16]
        clips.append(
            media.scene_clip(folder / f"clip{n:02d}.mp4", cuts=cuts, frames=frames, width=64, height=48, fps=24.0, seed=n, tone_hz=330.0 if n % 2 else None)
        )
    (folder / "broken.mp4").write_bytes(b"not a video at all" * 100)
    return folder, clips


@pytest.fixture(scope="module")
def exported(twenty, tmp_path_factory):
    folder, _ = twenty
    work = tmp_path_factory.mktemp("export")
    client = Client(output_dir=work / "out", cache_dir=work / "cache")
    batch = client.execute_bulk([folder], OPS, workers=2, export=["parquet", "webdataset"], shard_size=8, export_audio=True)
    return client, batch, work


def _per_file(out: Path) -> dict[str, dict]:
    """What each finished file's own outputs say, keyed by its output folder."""
    found = {}
    for row in json.loads((out / "batch_summary.json").read_text())["files"]:
        if row["status"] == "failed":
            continue
        folder = Path(row["output_dir"])
        summary = json.loads((folder / "summary.json").read_text())
        found[folder.name] = {
            "digest": summary["digest"],
            "scenes": json.loads((folder / "scenes.json").read_text())["scenes"],
            "keyframes": json.loads((folder / "keyframes" / "index.json").read_text()),
            "audio": (folder / "audio.wav").exists(),
        }
    return found


def _digest_tree(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_failed_files_are_left_out_and_counted(exported):
    _, batch, work = exported
    assert batch.failed == 1 and len(batch.rows) == 21
    for export in batch.exports:
        assert export.files == 20
        assert [Path(item.input).name for item in export.left_out] == ["broken.mp4"]
        manifest = json.loads((export.path / "manifest.json").read_text())
        assert manifest["files"] == 20 and [Path(i["input"]).name for i in manifest["left_out"]] == ["broken.mp4"]


def test_parquet_tables_load_with_pandas_and_match_the_per_file_outputs(exported):
    _, _, work = exported
    root = work / "out" / "export" / "parquet"
    truth = _per_file(work / "out")
    files = pd.read_parquet(root / "files")
    assert len(files) == 20 and set(files["stem"]) == set(truth)
    assert dict(zip(files["stem"], files["source_id"])) == {stem: t["digest"] for stem, t in truth.items()}
    assert (files["width"] == 64).all() and files["duration"].notna().all()

    scenes = pd.read_parquet(root / "scenes")
    assert len(scenes) == sum(len(t["scenes"]) for t in truth.values())
    for stem, t in truth.items():
        mine = scenes[scenes["stem"] == stem].sort_values("scene")
        assert mine[["start", "end", "start_frame", "end_frame"]].to_dict("records") == t["scenes"]
    assert scenes["source_id"].notna().all() and scenes["start"].notna().all()

    # Tables no operation filled still have their columns and types.
    for name in ("segments", "words", "speakers", "detections", "tracks", "texts", "entities", "relationships"):
        empty = pd.read_parquet(root / name)
        assert len(empty) == 0 and list(empty.columns) == SCHEMAS[name].names, name
        assert pq.read_schema(root / name / "part-00000.parquet").equals(SCHEMAS[name]), name


def test_parquet_tables_load_with_duckdb(exported):
    duckdb = pytest.importorskip("duckdb")
    _, _, work = exported
    root = work / "out" / "export" / "parquet"
    truth = _per_file(work / "out")
    counts = dict(duckdb.sql(f"select stem, count(*) from read_parquet('{root}/scenes/*.parquet') group by stem").fetchall())
    assert counts == {stem: len(t["scenes"]) for stem, t in truth.items()}
    joined = duckdb.sql(
        f"select count(*) from read_parquet('{root}/scenes/*.parquet') s join read_parquet('{root}/files/*.parquet') f using (source_id)"
    ).fetchall()
    assert joined == [(sum(len(t["scenes"]) for t in truth.values()),)]
    for name in TABLES:
        columns = [row[0] for row in duckdb.sql(f"describe select * from read_parquet('{root}/{name}/*.parquet')").fetchall()]
        assert columns == SCHEMAS[name].names, name  # empty tables too


def test_parquet_tables_load_with_ray_data(exported):
    ray = pytest.importorskip("ray")
    _, _, work = exported
    root = work / "out" / "export" / "parquet"
    ray.init(address="local", num_cpus=1, include_dashboard=False, log_to_driver=False)  # its own, never a cluster found on the machine
    try:
        dataset = ray.data.read_parquet(str(root / "scenes"))
        assert dataset.count() == sum(len(t["scenes"]) for t in _per_file(work / "out").values())
        assert {"source_id", "start", "end", "start_frame"} <= set(dataset.schema().names)
    finally:
        ray.shutdown()


def test_webdataset_shards_iterate_with_the_webdataset_package(exported):
    wds = pytest.importorskip("webdataset")
    _, _, work = exported
    root = work / "out" / "export" / "webdataset"
    truth = _per_file(work / "out")
    shards = sorted(p.name for p in root.glob("*.tar"))
    assert shards == ["00000.tar", "00001.tar", "00002.tar"]  # 20 samples, 8 a shard
    samples = list(wds.WebDataset(str(root / "{00000..00002}.tar"), shardshuffle=False).decode("rgb8"))
    assert len(samples) == 20
    assert [s["__key__"] for s in samples] == [f"{n // 8:05d}{n % 8}" for n in range(20)]
    for s in samples:
        info = s["json"]
        t = truth[info["stem"]]
        assert info["source_id"] == t["digest"] and info["key"] == s["__key__"]
        assert [f["frame"] for f in info["frames"]] == [k["frame"] for k in t["keyframes"]]
        jpgs = sorted(k for k in s if k.endswith(".jpg"))
        assert len(jpgs) == len(t["keyframes"]) >= 1
        assert s["0.jpg"].shape == (48, 64, 3) and s["0.jpg"].dtype == np.uint8
        assert [e["type"] for e in info["fusion"]["timeline"]].count("scene") == len(t["scenes"])
        assert ("wav" in s) == t["audio"]


def test_a_resumed_batch_exports_the_same_dataset(exported, twenty):
    client, _, work = exported
    root = work / "out" / "export"
    before = _digest_tree(root)
    # As if the batch had been killed before five files finished: their summaries are gone.
    for stem in sorted(_per_file(work / "out"))[:5]:
        (work / "out" / stem / "summary.json").unlink()
    batch = client.execute_bulk([twenty[0]], OPS, workers=2, export=["parquet", "webdataset"], shard_size=8, export_audio=True)
    statuses = [r.status for r in batch.rows]
    assert statuses.count("ok") == 5 and statuses.count("skipped") == 15 and statuses.count("failed") == 1
    assert _digest_tree(root) == before


def _hand_made() -> ExportedFile:
    """A file whose fusion carries entities and relationships (as the fusion operation writes them)."""
    fusion = FusionResult(
        duration=10.0,
        sources=["Diarization", "Faces", "Objects"],
        timeline=[],
        scenes=[SceneDigest(scene=0, start=0.0, end=10.0, speech="", speakers=["SPEAKER_00"], objects=["cup"], faces=1, texts=[])],
        entities=[
            Entity(
                id="speaker:SPEAKER_00",
                kind="speaker",
                label="SPEAKER_00",
                spans=[Span(start=0, end=2), Span(start=5, end=7)],
                evidence=["diarization"],
                seconds=4.0,
                turns=2,
            ),
            Entity(
                id="face:0",
                kind="face",
                label="face",
                spans=[Span(start=0.5, end=6.5)],
                evidence=["faces"],
                seconds=6.0,
                frames=13,
                confidence=0.9,
                time=1.0,
                box=[1, 2, 30, 40],
                crop="crops/face_0.jpg",
            ),
            Entity(id="object:0", kind="object", label="cup", spans=[Span(start=3, end=4)], evidence=["objects"], seconds=1.0, frames=3, confidence=0.7),
            Entity(id="keyword:0", kind="keyword", label="coffee", spans=[Span(start=1, end=1.5)], evidence=["transcription"], seconds=0.5, score=0.8),
        ],
        relationships=[
            Relationship(type="speaker_face", source="speaker:SPEAKER_00", target="face:0", score=0.95, spans=[Span(start=0.5, end=2), Span(start=5, end=6.5)]),
            Relationship(type="in_scene", source="object:0", target="scene:0", score=1.0, spans=[Span(start=3, end=4)]),
        ],
    )
    result = FileResult(input="talk.mp4", output_dir="out/talk", status="ok", digest="abc123", ops={"fusion": OpResult(status="ok", type="Fusion")})
    return ExportedFile(source_id="abc123", stem="talk", input="talk.mp4", folder=Path("out/talk"), result=result, outputs={"Fusion": [("fusion", fusion)]})


def test_entities_and_relationships_tables_are_written_from_the_fusion_records(tmp_path):
    f = _hand_made()
    entities = table("entities", f).to_pandas()
    assert list(entities["id"]) == ["speaker:SPEAKER_00", "face:0", "object:0", "keyword:0"]
    speaker = entities.iloc[0]
    assert (speaker["start"], speaker["end"], speaker["turns"], list(speaker["evidence"])) == (0.0, 7.0, 2, ["diarization"])
    assert [dict(s) for s in speaker["spans"]] == [{"start": 0.0, "end": 2.0}, {"start": 5.0, "end": 7.0}]
    assert entities.iloc[3]["score"] == 0.8 and (entities["source_id"] == "abc123").all()

    tracks = table("tracks", f).to_pandas()
    assert list(tracks["id"]) == ["face:0", "object:0"]  # faces and objects only
    face = tracks.iloc[0]
    assert (face["x1"], face["y2"], face["frames"], face["crop"], face["time"]) == (1.0, 40.0, 13, "crops/face_0.jpg", 1.0)

    relationships = table("relationships", f).to_pandas()
    assert relationships[["type", "source", "target", "score", "start", "end"]].to_dict("records") == [
        {"type": "speaker_face", "source": "speaker:SPEAKER_00", "target": "face:0", "score": 0.95, "start": 0.5, "end": 6.5},
        {"type": "in_scene", "source": "object:0", "target": "scene:0", "score": 1.0, "start": 3.0, "end": 4.0},
    ]

    counts = write_parquet(tmp_path, [f])
    assert (counts["entities"], counts["tracks"], counts["relationships"], counts["files"]) == (4, 2, 2, 1)
    assert len(pd.read_parquet(tmp_path / "relationships")) == 2


def test_without_entities_the_tables_are_empty_with_their_schema():
    f = _hand_made()
    fusion = f.first("Fusion").model_copy(update={"entities": None, "relationships": None})
    f.outputs["Fusion"] = [("fusion", fusion)]
    for name in ("entities", "tracks", "relationships"):
        rows = table(name, f)
        assert rows.num_rows == 0 and rows.schema.equals(SCHEMAS[name])


def test_the_command_line_exports_and_refuses_bad_export_flags(twenty, tmp_path):
    folder, clips = twenty
    out = tmp_path / "o"
    inputs = [str(c.path) for c in clips[:3]]
    bad = run_cli("bulk", *inputs, "--ops", "metadata", "-o", str(out), "--export", "csv")
    assert bad.returncode == 2 and bad.stderr.strip().splitlines()[-1] == "error: unknown export format 'csv'; valid: parquet, webdataset"
    bad = run_cli("bulk", *inputs, "--ops", "metadata", "-o", str(out), "--export", "webdataset", "--shard-size", "0")
    assert bad.returncode == 2 and "shard size must be a whole number of samples, at least 1" in bad.stderr
    assert not (out / "batch_summary.json").exists()  # refused before any file ran

    proc = run_cli(
        "bulk",
        *inputs,
        "--ops",
        "metadata,keyframes",
        "-o",
        str(out),
        "--cache-dir",
        str(tmp_path / "c"),
        "--export",
        "parquet",
        "--export",
        "webdataset",
        "--shard-size",
        "2",
        "--workers",
        "1",
    )
    assert proc.returncode == 0, proc.stderr
    assert f"export parquet: 3 files -> {out / 'export' / 'parquet'}" in proc.stderr
    assert sorted(p.name for p in (out / "export" / "webdataset").glob("*.tar")) == ["00000.tar", "00001.tar"]
    assert len(pd.read_parquet(out / "export" / "parquet" / "files")) == 3
    assert export_batch(out, ["parquet"])[0].files == 3  # the same export again, from the folder alone


@needs_shared_models
def test_detections_and_embeddings_tables_from_shared_models(vision_clip, tiny_clip_dir, tmp_path):
    client = Client(output_dir=tmp_path / "o", cache_dir=tmp_path / "c", models_dir=SHARED_MODELS)
    ops = ["metadata", "objects", "faces", "ocr", f"vision_embeddings:model={tiny_clip_dir}", "fusion"]
    batch = client.execute_bulk([vision_clip.path], ops, workers=1, export="parquet")
    assert batch.failed == 0
    folder = Path(batch.rows[0].output_dir)
    root = tmp_path / "o" / "export" / "parquet"
    detections = pd.read_parquet(root / "detections")
    for kind in ("objects", "faces", "ocr"):
        frames = json.loads((folder / f"{kind}.json").read_text())["frames"]
        assert (detections["kind"] == kind).sum() == sum(len(f["detections"]) for f in frames), kind
    assert {"person", "cat", "cup"} <= set(detections[detections["kind"] == "objects"]["label"])
    texts = pd.read_parquet(root / "texts")
    assert len(texts) == len(json.loads((folder / "ocr.json").read_text())["texts"]) > 0

    vectors = np.load(folder / "embeddings" / "vision.npy")
    schema = pq.read_schema(root / "vision_embeddings" / "part-00000.parquet")
    vector = schema.field("vector").type
    assert pa.types.is_fixed_size_list(vector) and vector.list_size == vectors.shape[1] and vector.value_type == pa.float32()
    table_ = pd.read_parquet(root / "vision_embeddings")
    assert len(table_) == len(vectors) and np.allclose(np.stack(table_["vector"].to_numpy()), vectors)
    assert table_["time"].notna().all()


def test_speech_tables_match_the_transcript_and_the_diarization(speech_clip, tmp_path):
    """segments, words, speakers and text_embeddings from the offline speech models."""
    client = Client(output_dir=tmp_path / "o", cache_dir=tmp_path / "c")
    batch = client.execute_bulk([speech_clip[0]], "transcription,diarization,text_embeddings", workers=1, export="parquet,webdataset")
    assert batch.failed == 0, batch.rows[0].error
    folder = Path(batch.rows[0].output_dir)
    transcript = json.loads((folder / "transcription.json").read_text())
    root = tmp_path / "o" / "export" / "parquet"
    segments = pd.read_parquet(root / "segments")
    assert list(segments["text"]) == [s["text"] for s in transcript["segments"]] and len(segments) > 0
    assert list(segments["speaker"]) == [s["speaker"] for s in transcript["segments"]]
    words = pd.read_parquet(root / "words")
    assert list(words["word"]) == [w["word"] for s in transcript["segments"] for w in s["words"]]
    assert list(words["start"]) == [w["start"] for s in transcript["segments"] for w in s["words"]]
    turns = json.loads((folder / "diarization.json").read_text())["segments"]
    assert pd.read_parquet(root / "speakers")[["start", "end", "speaker"]].to_dict("records") == turns
    vectors = np.load(folder / "embeddings" / "text.npy")
    embeddings = pd.read_parquet(root / "text_embeddings")
    assert len(embeddings) == len(vectors) and np.array_equal(np.stack(embeddings["vector"].to_numpy()), vectors)
    assert list(embeddings["text"]) == [r["text"] for r in json.loads((folder / "embeddings" / "text.json").read_text())]

    wds = pytest.importorskip("webdataset")
    (only,) = list(wds.WebDataset(str(tmp_path / "o" / "export" / "webdataset" / "00000.tar"), shardshuffle=False))
    assert only["txt"].decode() == transcript["text"].strip()
    assert set(json.loads(only["json"])["outputs"]) == {"metadata", "transcription", "diarization", "text_embeddings"}  # no fusion: every output


def test_a_failed_export_leaves_the_previous_one_whole(tmp_path):
    from video_extract.outputs import atomic_write_dir

    target = tmp_path / "export" / "parquet"
    atomic_write_dir(target, lambda folder: (folder / "manifest.json").write_text("old\n"))

    def broken(folder: Path) -> None:
        (folder / "manifest.json").write_text("new, half-way\n")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write_dir(target, broken)
    assert (target / "manifest.json").read_text() == "old\n"
    assert sorted(p.name for p in target.parent.iterdir()) == ["parquet"]  # no half-written folder beside it
