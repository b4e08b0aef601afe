"""Objects, faces, OCR and CLIP embeddings on real photos (scikit-image) and rendered text."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from video_extract import Client
from video_extract.media import decode_counters
from video_extract.testing import media

from .conftest import SHARED_MODELS, VISION_TEXT, needs_shared_models, run_cli

#: The astronaut's face in the 640x360 clip frame (the 512x512 photo scaled to 360x360 and
#: centred), measured once with YuNet at full size and checked by eye: forehead to chin,
#: between the ears.
ASTRONAUT_FACE = [266.6, 43.9, 330.3, 124.0]


def iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    out = tmp_path_factory.mktemp("vision")
    return Client(cache_dir=out / "cache", output_dir=out, models_dir=SHARED_MODELS)


@needs_shared_models
def test_objects_finds_person_cat_and_cup_at_the_right_times(client, vision_clip):
    objects = client.run(vision_clip.path, ["objects"]).objects
    labels_at = {f.time: {d.label for d in f.detections} for f in objects.frames}
    assert sorted(labels_at) == [0, 1, 2, 3, 4, 5, 6, 7]
    for t in (0, 1):
        assert "person" in labels_at[t]
    for t in (2, 3):
        assert "cat" in labels_at[t]
    for t in (4, 5):
        assert "cup" in labels_at[t]
    assert "person" not in labels_at[2] | labels_at[4] and "cat" not in labels_at[0] | labels_at[4]
    person = next(d for d in objects.frames[0].detections if d.label == "person")
    assert iou(person.box, [140, 0, 500, 360]) > 0.5  # the astronaut fills the centred photo
    assert all(0 <= v <= 640 for d in objects.frames[0].detections for v in d.box)
    if __import__("importlib").util.find_spec("pandas"):
        table = objects.to_pandas()  # one row per detection
        assert len(table) == sum(len(f.detections) for f in objects.frames)
        assert set(table[table["label"] == "cat"]["time"]) == {2.0, 3.0}


@needs_shared_models
def test_class_filter_and_unknown_class(client, vision_clip, tmp_path):
    only_cats = client.run(vision_clip.path, ["objects:classes=cat"]).objects
    assert only_cats.labels() == {"cat"}
    proc = run_cli("debug", str(vision_clip.path), "--op", "objects:classes=cat+dgo", "-o", str(tmp_path / "o"))
    assert proc.returncode == 2 and "unknown class 'dgo' (did you mean 'dog'?)" in proc.stderr


@needs_shared_models
def test_faces_finds_the_astronaut_with_landmarks(client, vision_clip):
    faces = client.run(vision_clip.path, ["faces"]).faces
    with_faces = [f for f in faces.frames if f.detections]
    assert [f.time for f in with_faces] == [0, 1]
    face = with_faces[0].detections[0]
    assert iou(face.box, ASTRONAUT_FACE) >= 0.5 and face.confidence > 0.8
    assert len(face.landmarks) == 5
    x1, y1, x2, y2 = face.box
    for x, y in face.landmarks.values():
        assert x1 <= x <= x2 and y1 <= y <= y2
    assert face.landmarks["right_eye"][0] < face.landmarks["left_eye"][0]  # the subject's right is image left


def _face_pictures() -> list[np.ndarray]:
    """BGR pictures with and without faces: photos, two faces side by side (NMS has work),
    odd sizes (padding), and frames of the real footage in ../shared/media when it is here."""
    import cv2
    from skimage import data

    from video_extract.media.video import open_video_stream

    astronaut = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    pictures = [astronaut, cv2.cvtColor(data.chelsea(), cv2.COLOR_RGB2BGR), np.hstack([astronaut, astronaut[:, ::-1]])]
    pictures += [cv2.resize(astronaut, (w, h), interpolation=cv2.INTER_AREA) for w, h in ((333, 301), (97, 130), (640, 360))]
    footage = SHARED_MODELS.parent / "media" / "footage"
    for path in sorted(footage.glob("*")) if footage.is_dir() else ():
        import av

        with av.open(str(path)) as container:
            stream = open_video_stream(container, path)
            for i, frame in enumerate(container.decode(stream)):
                if i % 25 == 0:
                    bgr = frame.to_ndarray(format="bgr24")
                    scale = min(1.0, 640 / max(bgr.shape[:2]))
                    pictures.append(cv2.resize(bgr, (round(bgr.shape[1] * scale), round(bgr.shape[0] * scale)), interpolation=cv2.INTER_AREA))
                if i >= 250:
                    break
    return pictures


@needs_shared_models
def test_yunet_rows_are_opencvs_own_decoding_and_onnx_runtime_finds_the_same_faces(tmp_path):
    """Our decoding of YuNet's outputs, given OpenCV's network outputs, is cv2.FaceDetectorYN's
    result bit for bit; on ONNX Runtime the same faces come out, in the same order, within
    1e-3 (px, score) of OpenCV's."""
    import cv2

    from video_extract.vision.faces import OUTPUTS, FaceDetector, decode, padded_blob

    model = str(SHARED_MODELS / "face_detection_yunet_2026may.onnx")
    net = cv2.dnn.readNet(model)
    ours = FaceDetector(model, 0.6, 0.3, 5000, threads=2, cache_dir=tmp_path)
    pictures, faces, most = _face_pictures(), 0, 0.0
    for bgr in pictures:
        height, width = bgr.shape[:2]
        found = cv2.FaceDetectorYN.create(model, "", (width, height), 0.6, 0.3, 5000).detect(bgr)[1]
        expected = np.zeros((0, 15), np.float32) if found is None else found
        blob = padded_blob(bgr)
        net.setInput(blob)
        decoded = decode(list(net.forward(list(OUTPUTS))), blob.shape[3], 0.6, 0.3, 5000)
        assert decoded.dtype == np.float32 and decoded.shape == expected.shape
        assert np.array_equal(decoded.view(np.uint32), expected.view(np.uint32)), bgr.shape
        rows = ours.rows(bgr)
        assert rows.shape == expected.shape, bgr.shape
        if len(rows):
            most = max(most, float(np.abs(rows - expected).max()))
        faces += len(expected)
    assert faces >= 5 and most < 1e-3, (faces, most)
    two = ours.detect(pictures[2])
    assert len(two) == 2 and two[0]["box"][2] < 512 <= two[1]["box"][0] or two[1]["box"][2] < 512 <= two[0]["box"][0]


@needs_shared_models
def test_rotated_input_gives_boxes_in_displayed_orientation(tmp_path):
    from skimage import data

    clip = media.slideshow_clip(tmp_path / "portrait.mp4", [data.astronaut()], seconds_each=1.0, fps=5, width=640, height=360, motion=False, rotation=90)
    result = Client(cache_dir=tmp_path / "c", output_dir=tmp_path / "o", models_dir=SHARED_MODELS).run(clip.path, ["faces", "metadata"])
    assert (result.metadata.video.display_width, result.metadata.video.display_height) == (360, 640)
    face = result.faces.frames[0].detections[0]
    x1, y1, x2, y2 = ASTRONAUT_FACE  # stored frame; displayed = turned 90 degrees counter-clockwise
    rotated = [y1, 640 - x2, y2, 640 - x1]
    assert iou(face.box, rotated) >= 0.5, face.box


def test_ocr_reads_the_rendered_sentences_at_the_right_time(client, vision_clip):
    ocr = client.run(vision_clip.path, ["ocr"]).ocr
    texts = {t.text.lower(): t for t in ocr.texts}
    for sentence in VISION_TEXT:
        entry = texts[sentence.lower()]
        assert entry.start == pytest.approx(6.0, abs=0.11) and entry.end == pytest.approx(8.0, abs=0.11)
    analysed = [f.time for f in ocr.frames]
    assert analysed == pytest.approx([0, 2, 4, 6], abs=0.01)  # keyframes (one per shot), not every frame


def test_identical_consecutive_text_is_one_timed_entry(client, vision_clip):
    ocr = client.run(vision_clip.path, ["ocr:source=frames,fps=2"]).ocr
    fox = [t for t in ocr.texts if t.text.lower() == VISION_TEXT[0].lower()]
    assert len(fox) == 1 and fox[0].frames == 4
    assert fox[0].start == pytest.approx(6.0) and fox[0].end == pytest.approx(8.0, abs=0.11)


def test_ocr_reads_no_lone_glyph_into_the_coffee_cup_nor_passes_one_to_fusion(client, vision_clip):
    coffee = (4.0, 6.0)  # the coffee photo's shot: its round cup reads as a lone "O"
    unfiltered = client.run(vision_clip.path, ["ocr:min_single_char_confidence=0"]).ocr
    assert any(d.text == "O" for f in unfiltered.frames if coffee[0] <= f.time < coffee[1] for d in f.detections)  # the noise is there to drop
    result = client.run(vision_clip.path, ["scenes", "ocr", "fusion"])
    assert not [d.text for f in result.ocr.frames if coffee[0] <= f.time < coffee[1] for d in f.detections]
    assert all(len(t.text) > 1 for t in result.ocr.texts)
    texts = [e.text for e in result.fusion.timeline if e.type == "text"]
    assert "O" not in texts and {t.lower() for t in texts} >= {t.lower() for t in VISION_TEXT}
    assert all(len(t) > 1 for s in result.fusion.scenes for t in s.texts)


def test_ocr_sessions_start_from_graphs_optimized_once_and_read_as_rapidocrs_own(tmp_path):
    """RapidOCR's three sessions are optimized once into the model cache, then loaded as they
    are, with ONNX Runtime's arena on (RapidOCR turns it off: ``make_engine`` says why); what
    the engine reads (text, boxes, scores) is what RapidOCR's own sessions read, on a text card
    and on frames of the real footage in ../shared/media when it is here, at odd crops."""
    from rapidocr_onnxruntime import RapidOCR

    from video_extract.vision.ocr import make_engine

    card = np.ascontiguousarray(media.text_image(["Chapter 3", "video-extract benchmark"], 960, 540, size=48)[:, :, ::-1])
    rapid = RapidOCR(intra_op_num_threads=1, inter_op_num_threads=1, max_side_len=960, det_limit_type="max", det_limit_side_len=960)
    theirs = rapid(card)[0]
    assert {line[1] for line in theirs} >= {"Chapter 3"}
    cache = tmp_path / "cache"
    engine = make_engine(960, 1, cache)
    first = engine(card)[0]
    kept = sorted(p.name for p in (cache / "ort").glob("*.onnx"))
    assert len(kept) == 3  # detection, angle, recognition
    second = make_engine(960, 1, cache)(card)[0]  # loaded from the copies
    assert sorted(p.name for p in (cache / "ort").glob("*.onnx")) == kept
    assert first == theirs and second == theirs
    for session in (engine.text_det.infer.session, engine.text_cls.infer.session, engine.text_rec.session.session):
        assert session.get_session_options().enable_cpu_mem_arena
    assert not rapid.text_det.infer.session.get_session_options().enable_cpu_mem_arena
    for n, picture in enumerate(_face_pictures()[6::3]):
        crop = np.ascontiguousarray(picture[n % 7 :, n % 5 :])
        assert engine(crop)[0] == rapid(crop)[0]


def test_a_real_single_character_is_still_read(client, tmp_path):
    from PIL import Image, ImageDraw, ImageFont
    from skimage import data

    photo = np.ascontiguousarray(data.coffee()[:360, :640])
    for background, char in ((np.full((360, 640, 3), 250, np.uint8), "7"), (photo, "A")):
        image = Image.fromarray(background)
        ImageDraw.Draw(image).text(
            (320, 180),
            char,
            font=ImageFont.load_default(size=120),
            fill=(255, 255, 255) if background is photo else (10, 10, 10),
            anchor="mm",
            stroke_width=4,
            stroke_fill=(0, 0, 0),
        )
        path = tmp_path / f"glyph_{char}.png"
        image.save(path)
        assert [d.text for f in client.run(path, ["ocr"]).ocr.frames for d in f.detections] == [char]


def test_ocr_language_outside_the_shipped_models_is_refused(vision_clip, tmp_path):
    proc = run_cli("debug", str(vision_clip.path), "--op", "ocr:languages=fr", "-o", str(tmp_path / "o"))
    assert proc.returncode == 2 and "'fr' is not covered" in proc.stderr and "en (english, eng); zh (ch, chinese" in proc.stderr


def test_clip_embeddings_tiny_model(vision_clip, tiny_clip_dir, tmp_path):
    ops = [f"vision_embeddings:model={tiny_clip_dir}", "frames"]
    first = Client(cache_dir=tmp_path / "c1", output_dir=tmp_path / "o1").run(vision_clip.path, ops)
    again = Client(cache_dir=tmp_path / "c2", output_dir=tmp_path / "o2").run(vision_clip.path, ops)
    emb = first.vision_embeddings
    assert emb.vectors.shape == (8, 16) and emb.vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(emb.vectors, axis=1), 1.0, atol=1e-5)
    assert np.array_equal(emb.vectors, again.vision_embeddings.vectors)  # deterministic
    assert [(r.frame, r.time) for r in emb.rows] == [(f.frame, f.time) for f in first.frames.frames]


def test_search_frames_ranks_by_cosine(vision_clip, tiny_clip_dir, tmp_path):
    client = Client(cache_dir=tmp_path / "c", output_dir=tmp_path / "o")
    result = client.run(vision_clip.path, [f"vision_embeddings:model={tiny_clip_dir},source=scenes"])
    rows = result.vision_embeddings.rows
    assert [r.scene for r in rows] == [0, 1, 2, 3]
    hits = client.search_frames(result, "a photo of a cat", top_k=3)
    assert len(hits) == 3 and hits[0]["score"] >= hits[1]["score"] >= hits[2]["score"]
    from video_extract.vision.clip import load_clip

    query = load_clip(client.runtime.models, str(tiny_clip_dir)).embed_texts(["a photo of a cat"])[0]
    best = int(np.argmax(result.vision_embeddings.vectors @ query))
    assert hits[0]["frame"] == rows[best].frame


@needs_shared_models
def test_all_vision_operations_share_one_decode(vision_clip, tiny_clip_dir, tmp_path):
    client = Client(cache_dir=tmp_path / "c", output_dir=tmp_path / "o", models_dir=SHARED_MODELS)
    before = dict(decode_counters)
    result = client.run(vision_clip.path, ["objects", "faces", "ocr:source=frames", f"vision_embeddings:model={tiny_clip_dir}"])
    assert result.ok, result.errors
    assert decode_counters["video_opens"] - before.get("video_opens", 0) == 1
    assert decode_counters["frames_decoded"] - before.get("frames_decoded", 0) == vision_clip.frames
    stages = [s.plugin for s in result.result.stages]
    assert stages.count("frames") == 1


@needs_shared_models
def test_default_vision_set_decodes_frames_once_and_keyframes_once(vision_clip, tmp_path):
    client = Client(cache_dir=tmp_path / "c", output_dir=tmp_path / "o", models_dir=SHARED_MODELS)
    before = decode_counters["video_opens"]
    result = client.run(vision_clip.path, ["objects", "faces", "ocr"])
    assert result.ok, result.errors
    assert decode_counters["video_opens"] - before == 2  # one fps sampling stage, one keyframe stage
    assert sorted(s.plugin for s in result.result.stages) == ["faces", "frames", "keyframes", "metadata", "objects", "ocr"]


def test_missing_detector_model_is_a_clear_per_operation_error(vision_clip, tmp_path, monkeypatch):
    monkeypatch.setenv("VIDEO_EXTRACT_OFFLINE", "1")
    monkeypatch.setenv("VIDEO_EXTRACT_MODEL_CACHE", str(tmp_path / "models"))
    (tmp_path / "empty").mkdir()
    result = Client(cache_dir=tmp_path / "c", output_dir=tmp_path / "o", models_dir=tmp_path / "empty").run(vision_clip.path, ["objects", "metadata"])
    assert result.result.ops["metadata"].status == "ok"
    assert "model 'yolox-nano' is not available offline; put yolox_nano.onnx in a models directory" in result.errors["objects"]


def test_text_embeddings_of_on_screen_text(vision_clip, tmp_path):
    result = Client(cache_dir=tmp_path / "c", output_dir=tmp_path / "o").run(vision_clip.path, ["ocr", "text_embeddings:source=ocr"])
    rows = result.text_embeddings.rows
    assert {r.text.lower() for r in rows} >= {t.lower() for t in VISION_TEXT}
    assert result.text_embeddings.vectors.shape == (len(rows), 384)
    fox = next(r for r in rows if r.text.lower() == VISION_TEXT[0].lower())
    assert fox.start == pytest.approx(6.0, abs=0.11)


@needs_shared_models
def test_other_weights_under_the_same_path_are_not_a_cache_hit(vision_clip, tmp_path):
    import shutil

    model = tmp_path / "detector.onnx"
    shutil.copy(SHARED_MODELS / "yolox_nano.onnx", model)
    client = Client(cache_dir=tmp_path / "c", output_dir=tmp_path / "o")
    first = client.run(vision_clip.path, [f"objects:model={model}"])
    assert first.ok and not first.result.ops["objects"].cached
    assert client.run(vision_clip.path, [f"objects:model={model}"]).result.ops["objects"].cached
    model.write_bytes(b"not a model")  # replaced
    third = client.run(vision_clip.path, [f"objects:model={model}"])
    assert not third.ok and "objects" in third.errors  # ran again (and failed on the bad file), not served stale


@pytest.fixture
def astronaut_png(tmp_path):
    from PIL import Image
    from skimage import data

    path = tmp_path / "astronaut.png"
    Image.fromarray(data.astronaut()).save(path)
    return path


@needs_shared_models
@pytest.mark.parametrize("executor", ["debug", "perf"])
def test_a_still_reaches_the_detectors_in_memory_with_no_jpeg_written_or_read(astronaut_png, tmp_path, executor):
    client = Client(cache_dir=tmp_path / "c", output_dir=tmp_path / "o", models_dir=SHARED_MODELS, executor=executor)
    before = dict(decode_counters)
    result = client.run(astronaut_png, ["objects", "faces", "ocr", "keyframes:max_size=256"])
    assert result.ok
    # Only the published keyframe is a JPEG: the detectors' frame is the decoded picture itself.
    assert decode_counters["jpeg_writes"] - before.get("jpeg_writes", 0) == 1
    assert decode_counters["jpeg_reads"] - before.get("jpeg_reads", 0) == 0
    assert decode_counters["still_decodes"] - before.get("still_decodes", 0) == 1
    assert not list((tmp_path / "o" / "astronaut").glob("frames*")) and not list((tmp_path / "c").rglob("frame_*.jpg"))
    (face,) = result.faces.frames[0].detections
    assert iou(face.box, [178.3, 62.8, 268.2, 176.5]) > 0.9  # forehead to chin in the 512x512 photo
    assert "person" in result.objects.labels()


@needs_shared_models
def test_still_detections_are_the_same_whatever_else_is_asked_and_when_cached(astronaut_png, tmp_path):
    """The detectors see the same pixels whether the frame is also published as JPEG, served
    warm from the cache, or run in perf mode; the published frame is the JPEG it always was."""
    from video_extract.media.image import read_image, save_jpeg

    def run(name, ops, executor="debug", cache="c"):
        out = tmp_path / name
        result = Client(cache_dir=tmp_path / cache, output_dir=out, models_dir=SHARED_MODELS, executor=executor).run(astronaut_png, ops)
        assert result.ok
        return out / "astronaut", result

    alone, first = run("alone", ["objects", "faces"])
    with_frames, _ = run("with_frames", ["objects", "faces", "frames"], cache="c2")
    warm, again = run("warm", ["objects", "faces"])
    perf, _ = run("perf", ["objects", "faces"], executor="perf", cache="c3")
    assert {s.plugin: s.cached for s in again.result.stages if s.plugin in ("objects", "faces")} == {"objects": True, "faces": True}
    for name in ("objects.json", "faces.json"):
        expected = (alone / name).read_bytes()
        assert (with_frames / name).read_bytes() == expected and (warm / name).read_bytes() == expected and (perf / name).read_bytes() == expected
    save_jpeg(tmp_path / "expected.jpg", read_image(astronaut_png), 90)
    assert (with_frames / "frames" / "frame_00000.jpg").read_bytes() == (tmp_path / "expected.jpg").read_bytes()


def test_models_take_every_core_alone_and_share_them_side_by_side(monkeypatch, scene_clip, tmp_path):
    from video_extract.executors.base import Runtime, prepare, side_by_side
    from video_extract.models.runtime import cpu_cores, model_threads

    monkeypatch.delenv("VIDEO_EXTRACT_MODEL_THREADS", raising=False)
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(8)))
    assert cpu_cores() == 8
    assert [model_threads(n) for n in (1, 2, 3, 16)] == [8, 4, 2, 1]
    assert model_threads() == 4  # not known: stages may run side by side
    monkeypatch.setenv("VIDEO_EXTRACT_MODEL_THREADS", "3")  # a bulk worker's share
    assert model_threads(1) == 3

    runtime = Runtime(use_cache=False)
    job = prepare(runtime, scene_clip.path, ["objects", "ocr", "faces", "transcription"], tmp_path / "o")
    stage = {s.plugin: s for s in job.plan.stages.values()}
    assert side_by_side(runtime, job, stage["objects"]) == 1  # one stage at a time: each alone
    job.concurrent = True
    # objects, faces, ocr and vad-then-transcription (each brings a runtime of its own) overlap.
    assert side_by_side(runtime, job, stage["objects"]) == side_by_side(runtime, job, stage["ocr"]) == side_by_side(runtime, job, stage["faces"]) == 4
    assert side_by_side(runtime, job, stage["vad"]) == side_by_side(runtime, job, stage["transcription"]) == 4  # a chain: never both at once
    job.records[stage["transcription"].id] = job.records[stage["vad"].id] = None  # finished: they no longer compete
    assert side_by_side(runtime, job, stage["objects"]) == 3


def test_a_still_reads_into_the_same_pixels_whole_or_band_by_band(tmp_path, monkeypatch):
    from PIL import Image
    from skimage import data

    from video_extract.media import image

    path = tmp_path / "photo.jpg"
    Image.fromarray(data.astronaut()).save(path, quality=90)
    monkeypatch.setattr(image, "_read_alike", lambda *args: None)  # Pillow's decode, whose copy is banded
    whole = image.read_image(path)
    monkeypatch.setattr(image, "LARGE_PIXELS", 0)  # as a picture above the limit is read
    banded = image.read_image(path)
    assert whole.shape == banded.shape == (512, 512, 3) and np.array_equal(whole, banded) and not whole.flags.writeable


def _save_still(kind: str, rgb: np.ndarray, path):
    from PIL import Image

    picture = Image.fromarray(rgb)
    if kind == "jpeg 4:2:0":
        picture.save(path, "JPEG", quality=90)
    elif kind == "jpeg 4:4:4 q100":
        picture.save(path, "JPEG", quality=100, subsampling=0)
    elif kind == "progressive jpeg":
        picture.save(path, "JPEG", quality=75, progressive=True)
    elif kind == "grey jpeg":
        picture.convert("L").save(path, "JPEG", quality=85)
    elif kind == "png":
        picture.save(path, "PNG")
    elif kind == "grey png":
        picture.convert("L").save(path, "PNG")
    elif kind == "rgba png":
        picture.convert("RGBA").save(path, "PNG")


@pytest.mark.parametrize("kind", ["jpeg 4:2:0", "jpeg 4:4:4 q100", "progressive jpeg", "grey jpeg", "png", "grey png", "rgba png"])
@pytest.mark.parametrize("photo", ["astronaut", "coffee"])
def test_a_plain_still_is_decoded_by_opencv_into_the_pixels_pillow_gives(tmp_path, monkeypatch, kind, photo):
    from PIL import Image
    from skimage import data

    from video_extract.media import image

    path = tmp_path / ("still.png" if "png" in kind else "still.jpg")
    _save_still(kind, getattr(data, photo)(), path)
    with Image.open(path) as picture:
        assert image._read_alike(path, picture) is not None  # this kind takes OpenCV's path
    before = decode_counters.get("still_decodes", 0)
    fast = image.read_image(path)
    assert decode_counters["still_decodes"] == before + 1
    held, order = image.decode_image(path)  # what a request holds: BGR, for the detectors
    monkeypatch.setattr(image, "LARGE_PIXELS", 0)
    large, large_order = image.decode_image(path)  # above LARGE_PIXELS: RGB, as the JPEG writer wants it
    monkeypatch.setattr(image, "_read_alike", lambda *args: None)
    pillow = image.read_image(path)
    assert fast.shape == pillow.shape and fast.dtype == pillow.dtype == np.uint8
    assert np.array_equal(fast, pillow) and not fast.flags.writeable
    assert (order, large_order) == (image.BGR, image.RGB)
    assert np.array_equal(held[:, :, ::-1], pillow) and np.array_equal(large, pillow) and not held.flags.writeable


def test_what_opencv_would_read_otherwise_is_left_to_pillow(tmp_path):
    """A truncated JPEG is refused as truncated (libjpeg alone would fill it in grey), an EXIF
    orientation is applied as Pillow applies it (mirrors too), a palette or 16-bit PNG is Pillow's."""
    from PIL import Image
    from skimage import data

    from video_extract.errors import InputError
    from video_extract.media import image

    rgb = data.astronaut()[:, :400]
    whole = tmp_path / "whole.jpg"
    Image.fromarray(rgb).save(whole, quality=90)
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size * 3 // 4])
    with pytest.raises(InputError, match="truncated"):
        image.read_image(cut)

    for orientation in (2, 6):  # mirrored; turned a quarter
        turned = tmp_path / f"exif{orientation}.jpg"
        exif = Image.Exif()
        exif[0x0112] = orientation
        Image.fromarray(rgb).save(turned, quality=90, exif=exif)
        with Image.open(turned) as picture:
            assert image._read_alike(turned, picture) is None
        expected = np.asarray(Image.open(whole).transpose(Image.Transpose.FLIP_LEFT_RIGHT if orientation == 2 else Image.Transpose.ROTATE_270))
        assert np.array_equal(image.read_image(turned), expected)

    palette = tmp_path / "palette.png"
    Image.fromarray(rgb).convert("P").save(palette)
    deep = tmp_path / "deep.png"
    import cv2

    cv2.imwrite(str(deep), (rgb[:, :, ::-1].astype(np.uint16) * 257))
    for path in (palette, deep):
        with Image.open(path) as picture:
            assert image._read_alike(path, picture) is None
        assert image.read_image(path).shape == (512, 400, 3)


@needs_shared_models
def test_detectors_on_a_still_without_a_cache_make_no_scratch_folder(astronaut_png, tmp_path, made_temp_dirs):
    """Cache off, objects and faces on a still: the frame, the records and metadata.json travel
    in memory; the folder holds the same files as with a cache, and nothing is made in the temp dir."""
    client = Client(use_cache=False, output_dir=tmp_path / "o", models_dir=SHARED_MODELS)
    result = client.run(astronaut_png, ["objects", "faces"])
    assert (
        result.ok and [p for p in made_temp_dirs if not Path(p).name.startswith(".video-extract-probe-")] == [] and not list((tmp_path / "scratch").iterdir())
    )
    folder = tmp_path / "o" / "astronaut"
    assert sorted(p.name for p in folder.iterdir()) == [".input", "faces.json", "metadata.json", "objects.json", "summary.json"]
    cached = Client(cache_dir=tmp_path / "c", output_dir=tmp_path / "with_cache", models_dir=SHARED_MODELS).run(astronaut_png, ["objects", "faces"])
    for name in ("objects.json", "faces.json", "metadata.json"):
        assert (folder / name).read_bytes() == (Path(cached.output_dir) / name).read_bytes()


def _without_timings(value):
    if isinstance(value, dict):
        return {k: _without_timings(v) for k, v in value.items() if k != "seconds"}
    if isinstance(value, list):
        return [_without_timings(v) for v in value]
    return value


@needs_shared_models
def test_a_still_asked_again_gives_the_same_bytes_and_a_changed_one_is_read_again(astronaut_png, tmp_path):
    """Requests after the first reuse what it learnt of the file (digest, header, plan) and of the
    folder (its summary, its writability): the files are the bytes the first wrote, summary.json
    apart from its timings. The same file changed in place is read again."""
    import json

    from PIL import Image
    from skimage import data

    from video_extract.cache import file_digest

    client = Client(use_cache=False, output_dir=tmp_path / "o", models_dir=SHARED_MODELS)
    folder = tmp_path / "o" / "astronaut"

    def snapshot() -> dict:
        files = {p.name: p.read_bytes() for p in sorted(folder.iterdir())}
        return {**files, "summary.json": _without_timings(json.loads(files["summary.json"]))}

    first = client.run(astronaut_png, ["objects", "faces"])
    cold = snapshot()
    assert first.ok and sorted(cold) == [".input", "faces.json", "metadata.json", "objects.json", "summary.json"]
    for _ in range(2):
        assert client.run(astronaut_png, ["objects", "faces"]).ok
        assert snapshot() == cold

    Image.fromarray(data.astronaut()[:256, :384]).save(astronaut_png)  # rewritten in place: the same inode
    changed = client.run(astronaut_png, ["objects", "faces"])
    stream = json.loads((folder / "metadata.json").read_text())["streams"][0]
    assert changed.ok and (stream["width"], stream["height"]) == (384, 256)
    assert changed.result.digest == file_digest(astronaut_png) != first.result.digest


@needs_shared_models
def test_detections_on_a_still_are_the_same_from_either_decoder(tmp_path, monkeypatch):
    """objects.json and faces.json of a JPEG and a PNG still, byte for byte, whether OpenCV or
    Pillow decoded the picture."""
    import cv2
    from skimage import data

    from video_extract.media import image

    photo = tmp_path / "photo.jpg"
    big = cv2.resize(cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR), (1080, 1080), interpolation=cv2.INTER_CUBIC)
    cv2.imwrite(str(photo), cv2.copyMakeBorder(big, 0, 0, 420, 420, cv2.BORDER_REFLECT), [cv2.IMWRITE_JPEG_QUALITY, 92])
    png = tmp_path / "astro.png"
    cv2.imwrite(str(png), cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))

    def outputs(folder):
        client = Client(use_cache=False, output_dir=tmp_path / folder, models_dir=SHARED_MODELS)
        for path in (photo, png):
            assert client.run(path, ["objects", "faces"]).ok
        return {f"{p.parent.name}/{p.name}": p.read_bytes() for p in sorted((tmp_path / folder).glob("*/*.json")) if p.name != "summary.json"}

    fast = outputs("opencv")
    monkeypatch.setattr(image, "_read_alike", lambda *args: None)
    pillow = outputs("pillow")
    assert sorted(fast) == ["astro/faces.json", "astro/metadata.json", "astro/objects.json", "photo/faces.json", "photo/metadata.json", "photo/objects.json"]
    assert fast == pillow
    assert b"person" in fast["photo/objects.json"] and b'"face"' in fast["photo/faces.json"]


def _photos() -> list[np.ndarray]:
    """BGR photos of several shapes: square, wide, tall, tiny, and a video-sized frame."""
    import cv2
    from skimage import data

    bgr = [cv2.cvtColor(image, cv2.COLOR_RGB2BGR) for image in (data.astronaut(), data.chelsea(), data.coffee(), data.rocket())]
    wide = cv2.resize(bgr[0], (1920, 1080), interpolation=cv2.INTER_CUBIC)
    tall = np.ascontiguousarray(bgr[2].transpose(1, 0, 2))
    return [*bgr, wide, tall, bgr[1][:3, :5].copy(), bgr[3][:417, :1].copy()]


@pytest.mark.parametrize("size", [416, 640])
def test_yolox_blob_is_the_one_yoloxs_own_preproc_makes_and_a_kept_blob_carries_nothing_over(size):
    """The detector fills one kept blob plane by plane; each image must give exactly the blob a
    fresh padded-transposed-cast makes, whatever shape the image before it had (a wide frame's
    pixels must not stay in a tall one's padding)."""
    from video_extract.testing import yolox_reference
    from video_extract.vision.yolox import preprocess

    kept = np.full((1, 3, size, size), -1.0, dtype=np.float32)
    for bgr in _photos() + _photos()[::-1]:
        want, want_ratio = yolox_reference.preprocess(bgr, size)
        got, ratio = preprocess(bgr, size, kept)
        assert got is kept and ratio == want_ratio
        assert got.dtype == want.dtype and np.array_equal(got, want)
        assert np.array_equal(preprocess(bgr, size)[0], want)


@needs_shared_models
def test_yolox_detections_are_those_of_scoring_every_row():
    """Rows whose objectness is under the threshold are set aside before the class argmax; the
    detections must be those of scoring every row, at low and high thresholds and with a class
    filter, on real photos' real model outputs."""
    from video_extract.testing import yolox_reference
    from video_extract.vision.yolox import YoloxDetector, postprocess

    detector = YoloxDetector(str(SHARED_MODELS / "yolox_nano.onnx"), 1)
    found = 0
    for bgr in _photos():
        blob, ratio = yolox_reference.preprocess(bgr, detector.size)
        raw = detector.session.run(None, {detector.input_name: blob})[0][0]
        h, w = bgr.shape[:2]
        for confidence in (0.01, 0.1, 0.35, 0.7):
            want = yolox_reference.postprocess(raw, ratio, h, w, detector.size, confidence, 0.45)
            assert postprocess(raw, ratio, h, w, detector.size, confidence, 0.45) == want
            assert postprocess(raw, ratio, h, w, detector.size, confidence, 0.45, {0, 15, 41}) == [d for d in want if d[0] in {0, 15, 41}]
            found += len(want)
        assert detector.detect(bgr, 0.1) == yolox_reference.postprocess(raw, ratio, h, w, detector.size, 0.1, 0.45)
    assert found > 50  # the low thresholds leave many boxes to compare, not a few empty lists
