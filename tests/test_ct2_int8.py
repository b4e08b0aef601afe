"""Whisper's weights quantized once into an int8 copy: the same model, loaded without the work.

Transcripts through the copy are held to plain faster-whisper on the model itself, on espeak
and real AMI speech, by ``test_memory``'s ``test_transcription_from_the_file_with_windowed_mel_matches_faster_whisper``."""

from __future__ import annotations

import logging
import os
import shutil
import struct

import numpy as np
import pytest

from video_extract.models import ModelStore
from video_extract.models.ct2_int8 import BINARY_VERSION, int8_copy


@pytest.fixture(scope="module")
def tiny():
    return ModelStore().checkpoint("tiny.en")


@pytest.fixture
def logged():
    """What video_extract's logger says during the test, whatever an earlier in-process CLI
    test left it set to (a level, no propagation to pytest's capture)."""
    messages: list[str] = []
    handler = logging.Handler(logging.INFO)
    handler.emit = lambda record: messages.append(record.getMessage())
    logger = logging.getLogger("video_extract")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield messages
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def _outputs(folder, rng_seed: int = 0):
    """The encoder's output and the decoder's best tokens and score for two random inputs: any
    weight that differs shows in them."""
    import ctranslate2

    model = ctranslate2.models.Whisper(str(folder), device="cpu", compute_type="int8", intra_threads=1)
    rng = np.random.default_rng(rng_seed)
    found = []
    for _ in range(2):
        features = rng.standard_normal((1, 80, 3000)).astype(np.float32)
        encoded = np.array(model.encode(ctranslate2.StorageView.from_array(features), to_cpu=True))
        result = model.generate(ctranslate2.StorageView.from_array(features), [[50257, 50362]], max_length=24, return_scores=True)[0]
        found.append((encoded, result.sequences_ids, result.scores))
    return found


def test_the_int8_copy_holds_the_weights_loading_would_make(tiny, tmp_path):
    """Loaded at int8, the float16 model (quantized as it loads) and its int8 copy compute the
    same bits; the copy is about half the file, made once, with its sidecar."""
    copy = int8_copy(tiny, tmp_path)
    assert copy != tiny and copy.parent == tmp_path / "ct2"
    assert (copy.parent / (copy.name + ".source")).read_bytes() == os.fsencode(tiny / "model.bin")
    assert (copy / "model.bin").stat().st_size < 0.6 * (tiny / "model.bin").stat().st_size
    assert {p.name for p in copy.iterdir()} == {p.name for p in tiny.iterdir() if p.is_file()}
    made = (copy / "model.bin").stat().st_mtime_ns
    assert int8_copy(tiny, tmp_path) == copy and (copy / "model.bin").stat().st_mtime_ns == made
    for (enc_a, ids_a, scores_a), (enc_b, ids_b, scores_b) in zip(_outputs(tiny), _outputs(copy), strict=True):
        assert np.array_equal(enc_a, enc_b)
        assert ids_a == ids_b and scores_a == scores_b


def test_where_no_copy_serves_the_model_is_loaded_as_it_is(tiny, tmp_path):
    # already int8: nothing to quantize
    copy = int8_copy(tiny, tmp_path / "a")
    assert int8_copy(copy, tmp_path / "b") == copy and not (tmp_path / "b").exists()
    # a model.bin of another layout version
    other = tmp_path / "other"
    shutil.copytree(tiny, other)
    with open(other / "model.bin", "r+b") as f:
        f.write(struct.pack("<I", BINARY_VERSION + 1))
    assert int8_copy(other, tmp_path / "c") == other
    # a variable of a type this does not know
    unknown = tmp_path / "unknown"
    unknown.mkdir()
    name, variable = b"WhisperSpec", b"decoder/x/weight"
    header = struct.pack("<IH", BINARY_VERSION, len(name) + 1) + name + b"\0" + struct.pack("<II", 3, 1)
    body = struct.pack("<H", len(variable) + 1) + variable + b"\0" + struct.pack("<B2IBI", 2, 2, 2, 99, 8) + bytes(8) + struct.pack("<I", 0)
    (unknown / "model.bin").write_bytes(header + body)
    assert int8_copy(unknown, tmp_path / "e") == unknown
    # a torn model.bin
    torn = tmp_path / "torn"
    torn.mkdir()
    (torn / "model.bin").write_bytes((tiny / "model.bin").read_bytes()[:5000])
    assert int8_copy(torn, tmp_path / "d") == torn


def test_a_model_cache_it_cannot_write_to_loads_the_model_itself(tiny, tmp_path, logged):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "ct2").write_text("a file where the copies' folder would be")  # fails as a read-only cache does, as root too
    assert int8_copy(tiny, cache) == tiny
    assert any("weights quantized at every load" in m for m in logged) and not list(cache.glob("**/*.tmp"))


def test_a_damaged_copy_gives_way_to_the_model_and_is_made_again(tiny, tmp_path, logged):
    from video_extract.speech.whisper import open_whisper

    copy = int8_copy(tiny, tmp_path)
    assert copy != tiny  # the copy is damaged below, not the model
    data = (copy / "model.bin").read_bytes()
    (copy / "model.bin").write_bytes(data[: len(data) // 2])
    model = open_whisper(tiny, tmp_path, "cpu", "int8", 1)
    assert model is not None and any("the int8 copy does not load" in m for m in logged)
    assert not copy.exists()
    again = int8_copy(tiny, tmp_path)
    assert again == copy and (again / "model.bin").read_bytes() == data


def test_another_version_of_the_model_replaces_its_copy(tiny, tmp_path):
    model = tmp_path / "m" / "tiny"
    shutil.copytree(tiny, model)
    first = int8_copy(model, tmp_path / "cache")
    os.utime(model / "model.bin", ns=(1, 1))  # new weights at the same place
    second = int8_copy(model, tmp_path / "cache")
    assert second != first and second.exists() and not first.exists()
