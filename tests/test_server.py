"""The HTTP server: events of a request streamed as JSON Lines, errors as JSON."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from video_extract import Client
from video_extract.server import ExtractServer


@pytest.fixture
def server(tmp_path):
    httpd = ExtractServer(("127.0.0.1", 0), Client(cache_dir=tmp_path / "c", output_dir=tmp_path / "o", executor="perf"))
    httpd.serve_in_background()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", tmp_path / "o"
    httpd.shutdown()
    httpd.server_close()


def _post(url: str, body: dict):
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST")
    return urllib.request.urlopen(request, timeout=60)


def test_run_streams_events_and_writes_outputs(server, scene_clip):
    url, out = server
    with _post(f"{url}/run", {"path": str(scene_clip.path), "ops": ["metadata", "scenes"]}) as response:
        assert response.headers["Content-Type"] == "application/x-ndjson"
        events = [json.loads(line) for line in response.read().decode().splitlines()]
    assert events[-1]["type"] == "done" and events[-1]["status"] == "ok"
    assert {e["op"] for e in events if e["type"] == "complete"} == {"metadata", "scenes"}
    assert (out / "scenes" / "scenes.json").exists()


def test_bad_requests_are_json_errors(server, tmp_path):
    url, _ = server
    with pytest.raises(urllib.error.HTTPError) as err:
        _post(f"{url}/run", {"path": "x.mp4", "ops": ["keyframez"]})
    assert err.value.code == 400 and "unknown operation 'keyframez'" in json.loads(err.value.read())["error"]
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with _post(f"{url}/run", {"path": str(empty), "ops": ["metadata"]}) as response:
        events = [json.loads(line) for line in response.read().decode().splitlines()]
    assert events[0]["type"] == "error" and "file is empty" in events[0]["error"] and events[-1]["status"] == "failed"
    ops = json.loads(urllib.request.urlopen(f"{url}/ops", timeout=30).read())
    assert any(row["name"] == "transcription" and row["available"] for row in ops)
