"""A request's size: operations are counted before any is parsed, and parsing is linear.

A server takes requests from anyone; a body naming a million operations must be refused in
the time it takes to read it, and the limit must leave every real request through.
"""

from __future__ import annotations

import json
import time

import pytest

from video_extract import Client
from video_extract.errors import UsageError
from video_extract.spec import DEFAULT_MAX_OPS, OPERATIONS, count_ops, parse_request

MILLION = 1_000_000


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    root = tmp_path_factory.mktemp("limits")
    return Client(cache_dir=root / "c", output_dir=root / "o")


def _refused(call) -> tuple[str, float]:
    started = time.perf_counter()
    with pytest.raises(UsageError) as err:
        call()
    return str(err.value), time.perf_counter() - started


@pytest.mark.parametrize(
    "shape",
    [
        pytest.param(lambda: ",".join(["metadata"] * MILLION), id="comma-string"),
        pytest.param(lambda: ["metadata"] * MILLION, id="list-of-names"),
        pytest.param(lambda: [{"operation": "metadata"}] * MILLION, id="list-of-dicts"),
        pytest.param(lambda: [{"operation": "transcription", "sources": [{"operation": "audio"}] * MILLION}], id="nested-sources"),
    ],
)
def test_a_million_operations_are_refused_in_under_a_second(shape, client):
    ops = shape()
    message, seconds = _refused(lambda: client.request(ops))
    assert seconds < 1.0, seconds
    assert "\n" not in message and f"too many operations in one request: more than {DEFAULT_MAX_OPS}" in message, message


def test_a_million_overrides_are_refused_in_under_a_second(client):
    message, seconds = _refused(lambda: client.request("metadata", overrides=["metadata"] * MILLION))
    assert seconds < 1.0 and "too many operations" in message


def test_ten_thousand_duplicates_meet_the_limit_before_the_duplicate_check(client):
    message, seconds = _refused(lambda: client.request(["scenes:threshold=20"] * 10_000))
    assert seconds < 0.2 and "too many operations" in message and "twice" not in message


def test_a_spec_file_of_a_million_entries_is_counted_before_it_is_parsed(tmp_path):
    spec = tmp_path / "huge.json"
    spec.write_text(json.dumps(["metadata"] * MILLION))
    message, seconds = _refused(lambda: parse_request(spec_file=spec))
    assert seconds < 1.0 and "too many operations" in message


def test_one_operation_with_a_hundred_thousand_parameters_parses_in_linear_time():
    # Continuation pieces (``key=value`` after a comma) were joined onto a growing string:
    # 100 000 of them took 6 s, a million ten minutes. Now it is one pass.
    text = "metadata:" + ",".join(["count_frames=true"] * 100_000)
    started = time.perf_counter()
    request = parse_request(text)
    assert time.perf_counter() - started < 1.0
    assert [str(s.operation) for s in request.specs] == ["metadata:count_frames=true"]


def test_a_request_at_the_limit_works_and_one_more_is_refused(tmp_path):
    client = Client(cache_dir=tmp_path / "c", output_dir=tmp_path / "o", max_ops=3)
    assert [s.operation.name for s in client.request("metadata,scenes:threshold=20,min_scene_len=10,keyframes")] == ["metadata", "scenes", "keyframes"]
    with pytest.raises(UsageError, match="more than 3"):
        client.request("metadata,scenes,keyframes,frames")
    nested = {"operation": "transcription", "sources": [{"operation": "audio", "params": {"sample_rate": 16000}}]}
    assert count_ops([nested, "metadata"]) == 3  # a pinned source is an operation too
    assert [s.operation.name for s in client.request([nested, "metadata"])] == ["transcription", "metadata"]
    with pytest.raises(UsageError, match="more than 3"):
        client.request([nested, "metadata", "scenes"])


def test_the_default_limit_takes_every_operation_and_all(client):
    every = ",".join(sorted(OPERATIONS))
    assert len(OPERATIONS) < DEFAULT_MAX_OPS
    assert {s.operation.name for s in client.request(every)} == set(OPERATIONS)
    assert {s.operation.name for s in client.request("all")} == set(client.runtime.registry.operations())


def test_no_limit_means_none(client):
    ops = ",".join(["metadata"] * 1000)
    with pytest.raises(UsageError, match="requested twice"):
        parse_request(ops, max_ops=None)  # counted no more: the duplicate is what is wrong


def test_a_huge_name_or_value_is_shown_abbreviated_in_a_short_line():
    for text, start in (
        ("x" * 10_000_000, "unknown operation 'xxxx"),
        ("frames:fps=" + "9" * 10_000_000, "frames: fps: Input should be"),
        ("metadata:" + "y" * 10_000_000, "--op 'metadata:yyyy"),
    ):
        message, seconds = _refused(lambda text=text: parse_request(text))
        assert message.startswith(start) and len(message) < 400 and "characters)" in message, message[:200]
        assert seconds < 1.0


def test_a_request_of_another_shape_is_a_usage_error():
    with pytest.raises(UsageError, match="operations are a string, a list, an Operation, an OutputSpec or a dict, got 5"):
        parse_request(5)
    assert [s.operation.name for s in parse_request(op for op in ("metadata", "scenes")).specs] == ["metadata", "scenes"]  # read once
