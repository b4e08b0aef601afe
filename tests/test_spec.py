"""Operations and specs: what the CLI and spec files accept, and the errors for what they do not."""

from __future__ import annotations

import json

import pytest

from video_extract.errors import UsageError
from video_extract.spec import OPERATIONS, Keyframes, ObjectDetection, OutputSpec, Transcription, load_spec_file, parse_op, parse_request, split_ops

DESIGN_OPERATIONS = {
    "metadata",
    "audio",
    "frames",
    "keyframes",
    "scenes",
    "transcription",
    "vad",
    "diarization",
    "objects",
    "faces",
    "ocr",
    "vision_embeddings",
    "text_embeddings",
    "audio_embeddings",
    "fusion",
}


def test_every_design_operation_has_a_model_with_defaults():
    assert DESIGN_OPERATIONS <= set(OPERATIONS)
    assert Transcription().model == "tiny.en" and Transcription().language is None
    assert ObjectDetection().model == "yolox-nano" and ObjectDetection().confidence_threshold == 0.35
    assert ObjectDetection().classes is None


def test_op_syntax_converts_values_to_the_parameter_types():
    op = parse_op("keyframes:max_frames=20,min_interval_sec=1.5")
    assert op == Keyframes(max_frames=20, min_interval_sec=1.5)
    objects = parse_op("objects:confidence_threshold=0.5,classes=person+car")
    assert objects.classes == ["person", "car"] and objects.confidence_threshold == 0.5
    assert parse_op("transcription:language=none").language is None
    assert parse_op("scenes:keyframes_only=true").keyframes_only is True


def test_seed_long_names_are_aliases():
    assert parse_op("object_detection").name == "objects"
    assert parse_op("scene_detection:threshold=30").name == "scenes"
    assert parse_op("speaker-diarization").name == "diarization"


def test_unknown_operation_lists_valid_ones():
    with pytest.raises(UsageError) as err:
        parse_op("keyframez")
    text = str(err.value)
    assert "unknown operation 'keyframez'" in text and "did you mean 'keyframes'" in text
    assert "metadata" in text and "scenes" in text
    assert err.value.exit_code == 2


def test_unknown_parameter_lists_valid_ones():
    with pytest.raises(UsageError) as err:
        parse_op("keyframes:max_frame=3")
    assert "unknown parameter 'max_frame' for keyframes" in str(err.value)
    assert "max_frames" in str(err.value) and "min_interval_sec" in str(err.value)


def test_bad_value_names_the_parameter():
    with pytest.raises(UsageError, match="max_frames"):
        parse_op("keyframes:max_frames=lots")
    with pytest.raises(UsageError, match="fps"):
        parse_op("frames:fps=-1")
    with pytest.raises(UsageError, match="expected key=value"):
        parse_op("frames:fps")


def test_op_overrides_ops_of_the_same_name_and_order_is_kept():
    specs = parse_request(["metadata,keyframes"], overrides=["keyframes:max_frames=5"]).specs
    assert [s.operation.name for s in specs] == ["metadata", "keyframes"]
    assert specs[1].operation.max_frames == 5


def test_a_comma_inside_an_operations_parameters_stays_with_it():
    assert split_ops("metadata,scenes:threshold=20,min_scene_len=10,keyframes") == ["metadata", "scenes:threshold=20,min_scene_len=10", "keyframes"]
    request = parse_request("metadata,scenes:threshold=20,min_scene_len=10")
    assert request.specs[1].operation.threshold == 20 and request.specs[1].operation.min_scene_len == 10


def test_all_is_a_flag_and_twice_is_an_error():
    assert parse_request("all,scenes:threshold=20").everything is True
    with pytest.raises(UsageError, match="requested twice"):
        parse_request(["frames", "frames:fps=2"])


def test_spec_file_yaml_with_nested_sources(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text(
        "outputs:\n"
        "  - operation: keyframes\n"
        "    params: {max_frames: 4}\n"
        "  - operation: transcription\n"
        "    sources:\n"
        "      - operation: audio\n"
        "        params: {sample_rate: 16000}\n"
        "  - scenes\n"
    )
    specs = load_spec_file(path)
    assert specs[0].operation == Keyframes(max_frames=4)
    assert specs[1].sources[0].operation.name == "audio"
    assert specs[2].operation.name == "scenes"


def test_spec_file_json_round_trips(tmp_path):
    original = [OutputSpec.of("keyframes:max_frames=3"), OutputSpec.of("metadata")]
    path = tmp_path / "spec.json"
    path.write_text(json.dumps({"outputs": [s.to_dict() for s in original]}))
    assert load_spec_file(path) == original


def test_a_spec_file_from_a_windows_editor_is_read_and_one_not_in_utf8_is_one_clear_error(tmp_path):
    """A byte-order mark made a JSON spec "malformed"; a Latin-1 YAML one was an internal error."""
    for name, body in (("spec.json", '{"outputs": ["keyframes:max_frames=3"]}'), ("spec.yaml", "outputs: ['keyframes:max_frames=3']\r\n")):
        path = tmp_path / name
        path.write_bytes(b"\xef\xbb\xbf" + body.encode())
        assert load_spec_file(path) == [OutputSpec.of("keyframes:max_frames=3")]
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(b"outputs: [metadata]\ninputs: [caf\xe9.mp4]\n")
    with pytest.raises(UsageError, match=r"latin.yaml: spec file is not UTF-8 text \(byte 0xe9 at offset 32\): save it as UTF-8"):
        load_spec_file(latin)


def test_malformed_spec_file_names_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("outputs: [ {operation: keyframes, params: {max_frames: 2}\n")
    with pytest.raises(UsageError, match="bad.yaml: malformed spec file"):
        load_spec_file(path)
    path.write_text("outputs:\n  - operation: nope\n")
    with pytest.raises(UsageError, match="bad.yaml: unknown operation 'nope'"):
        load_spec_file(path)


def test_canonical_form_ignores_how_params_were_written():
    assert parse_op("keyframes:max_frames=5").canonical() == Keyframes(max_frames=5).canonical()
    assert Keyframes().canonical() != Keyframes(max_frames=5).canonical()


def test_a_request_of_strings_parsed_before_is_the_same_request(monkeypatch):
    """Parsed once (the Request is frozen), while the operations it names are the same classes;
    what is refused is refused every time."""
    first = parse_request("objects:confidence_threshold=0.5,metadata")
    assert parse_request("objects:confidence_threshold=0.5,metadata") is first
    with pytest.raises(UsageError, match="too many operations"):
        parse_request("objects:confidence_threshold=0.5,metadata", max_ops=1)  # the limit is part of the request
    for _ in range(2):
        with pytest.raises(UsageError, match="requested twice"):
            parse_request("metadata,metadata")

    monkeypatch.setitem(OPERATIONS, "objects", ObjectDetection)  # put back after the test

    class Objects(ObjectDetection):  # another plugin's operation now answers to the name (registered as it is defined)
        name = "objects"

    again = parse_request("objects:confidence_threshold=0.5,metadata")
    assert type(again.specs[0].operation) is Objects and again.specs[0].operation.confidence_threshold == 0.5
