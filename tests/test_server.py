"""The HTTP service, against a real uvicorn on 127.0.0.1, as a client sees it (httpx, raw sockets).

Most tests run the app in a thread of this process; those that measure the server's memory or
its command line run ``video-extract serve`` as a separate process.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from video_extract import Client
from video_extract.registry import Registry
from video_extract.server import ServerSettings, bind, client_options, create_app, load_api_keys, uvicorn_config

from .conftest import SHARED_MODELS, install_nap_plugin, needs_shared_models

KEY = "test-key-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {KEY}"}


@dataclass
class Served:
    url: str
    port: int
    settings: ServerSettings

    def http(self, **kwargs) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60, **kwargs)


@contextlib.contextmanager
def running(tmp_path: Path, client: Client | None = None, **overrides):
    """The app on uvicorn in a thread, on a free port of 127.0.0.1, stopped on exit."""
    import uvicorn

    settings = ServerSettings(port=0, output_dir=tmp_path / "srv", **overrides)
    client = client or Client(cache_dir=tmp_path / "cache", output_dir=settings.output_dir, executor="perf", **client_options(settings))
    sock = bind(settings)
    server = uvicorn.Server(uvicorn_config(create_app(settings, client), settings))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.01)
    port = sock.getsockname()[1]
    try:
        yield Served(f"http://127.0.0.1:{port}", port, settings)
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


@pytest.fixture
def nap_client(tmp_path, monkeypatch):
    """A Client that also has the test plugin ``nap`` (sleeps ``seconds``): jobs of a known length."""
    monkeypatch.syspath_prepend(str(install_nap_plugin(tmp_path / "site")))
    yield Client(cache_dir=tmp_path / "cache", output_dir=tmp_path / "srv", executor="perf", registry=Registry.discover(), use_cache=False)
    sys.modules.pop("nap_plugin", None)


def _upload(http: httpx.Client, path: Path, name: str | None = None) -> dict:
    response = http.post("/v1/uploads", params={"filename": name or path.name}, content=path.read_bytes())
    assert response.status_code == 201, response.text
    return response.json()


def _wait(http: httpx.Client, job_id: str, kind: str = "jobs", timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        info = http.get(f"/v1/{kind}/{job_id}").json()
        if info["state"] in ("done", "failed", "cancelled"):
            return info
        assert time.monotonic() < deadline, f"{kind} {job_id} still {info['state']}"
        time.sleep(0.05)


def _raw(port: int, data: bytes, wait: float = 1.5) -> bytes:
    """Bytes sent on one connection as they are; every byte that comes back within ``wait`` s."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(data)
        sock.settimeout(wait)
        received = b""
        with contextlib.suppress(TimeoutError, ConnectionResetError):
            while chunk := sock.recv(65536):
                received += chunk
    return received


def _status(raw: bytes) -> int:
    return int(raw.split(b" ", 2)[1])


# -- the whole path ---------------------------------------------------------------------------


def test_downloaded_outputs_name_the_upload_as_its_client_did_and_no_server_folder(tmp_path, scene_clip):
    """summary.json and metadata.json are written with the server's paths in them (the upload's
    file, the job's folder): served, they carry the client's file name instead, as the API's
    responses do; a picture is sent as it is."""
    with running(tmp_path) as srv, srv.http() as http:
        upload = _upload(http, scene_clip.path, "talk.mp4")
        job = http.post("/v1/jobs", json={"source": {"upload": upload["id"]}, "ops": "metadata,keyframes"}).json()
        assert _wait(http, job["id"])["state"] == "done"
        folder = srv.settings.output_dir / "jobs" / job["id"] / "talk"
        assert str(srv.settings.output_dir) in (folder / "summary.json").read_text()  # what the run wrote
        files = f"/v1/jobs/{job['id']}/files/talk"
        summary = http.get(f"{files}/summary.json")
        assert summary.status_code == 200 and summary.headers["content-type"] == "application/json"
        assert summary.headers["content-disposition"] == 'inline; filename="summary.json"'
        assert summary.headers["content-security-policy"] == "sandbox allow-scripts"
        assert str(srv.settings.output_dir) not in summary.text and str(tmp_path) not in summary.text
        assert summary.json()["input"] == "talk.mp4" and summary.json()["output_dir"] == "talk"
        assert http.get(f"{files}/metadata.json").json()["path"] == "talk.mp4"
        first = sorted((folder / "keyframes").glob("*.jpg"))[0]
        picture = http.get(f"{files}/keyframes/{first.name}")
        assert picture.headers["content-type"] == "image/jpeg" and picture.content == first.read_bytes()


def test_upload_job_events_results_and_files_match_a_direct_run(tmp_path, scene_clip):
    direct = Client(cache_dir=tmp_path / "direct-cache", output_dir=tmp_path / "direct").run(scene_clip.path, "metadata,scenes")
    with running(tmp_path) as srv, srv.http() as http:
        upload = _upload(http, scene_clip.path, "talk.mp4")
        assert upload["filename"] == "talk.mp4" and upload["size"] == scene_clip.path.stat().st_size
        created = http.post("/v1/jobs", json={"source": {"upload": upload["id"]}, "ops": "metadata,scenes"})
        assert created.status_code == 202, created.text
        job = created.json()
        assert created.headers["location"] == job["links"]["status"] == f"/v1/jobs/{job['id']}"

        lines = http.get(job["links"]["events"]).text.splitlines()  # follows the job live until it ends
        events = [json.loads(line) for line in lines]
        assert events[-1] == {**events[-1], "type": "done", "status": "ok", "input": "talk.mp4", "ok": ["metadata", "scenes"]}
        assert [e["frame"] for e in (x["data"] for x in events if x["type"] == "partial")] == scene_clip.cuts
        complete = {e["op"]: e["path"] for e in events if e["type"] == "complete"}
        assert complete == {op: f"/v1/jobs/{job['id']}/files/talk/{op}.json" for op in ("metadata", "scenes")}
        assert str(srv.settings.output_dir) not in "".join(lines)  # no server path reaches the client

        sse = http.get(job["links"]["events"], headers={"Accept": "text/event-stream"})
        assert sse.headers["content-type"].startswith("text/event-stream")
        blocks = [b for b in sse.text.split("\n\n") if b.strip()]
        assert [json.loads(b.split("data: ", 1)[1]) for b in blocks] == events  # replayed from the start
        # each block: its position as id, the event's type as SSE event name (metadata's complete
        # and the first scenes partial may come in either order: the stages run side by side)
        assert all(b.startswith(f"id: {i}\nevent: {e['type']}\n") for i, (b, e) in enumerate(zip(blocks, events, strict=True)))

        status = http.get(job["links"]["status"]).json()
        assert status["state"] == "done" and status["seconds"] > 0 and status["source"] == "talk.mp4"
        results = http.get(job["links"]["results"]).json()
        assert results["result"]["status"] == "ok" and results["result"]["input"] == "talk.mp4"
        assert results["result"]["ops"]["scenes"]["data"]["cuts"] == len(scene_clip.cuts)
        scenes = http.get(results["files"]["scenes"][0]["url"])
        assert scenes.status_code == 200 and scenes.headers["content-type"] == "application/json"
        assert scenes.json() == json.loads((direct.output_dir / "scenes.json").read_text())
        metadata = http.get(results["files"]["metadata"][0]["url"]).json()
        assert (
            metadata["duration"] == direct.metadata.duration and metadata["streams"] == json.loads((direct.output_dir / "metadata.json").read_text())["streams"]
        )


@needs_shared_models
def test_fusion_results_hold_entities_and_link_their_crops(tmp_path, vision_clip):
    settings = ServerSettings(port=0, output_dir=tmp_path / "srv")
    client = Client(cache_dir=tmp_path / "cache", output_dir=settings.output_dir, executor="perf", models_dir=SHARED_MODELS, **client_options(settings))
    with running(tmp_path, client) as srv, srv.http() as http:
        upload = _upload(http, vision_clip.path, "talk.mp4")
        job = http.post("/v1/jobs", json={"source": {"upload": upload["id"]}, "ops": "scenes,faces,fusion"}).json()
        assert _wait(http, job["id"])["state"] == "done"
        results = http.get(job["links"]["results"]).json()
        assert results["result"]["ops"]["fusion"]["data"]["entities"] == 1  # counts of the record's lists
        links = {link["path"]: link["url"] for link in results["files"]["fusion"]}
        fusion = http.get(links["talk/fusion.json"]).json()
        face = fusion["entities"][0]
        assert face["kind"] == "face" and {r["type"] for r in fusion["relationships"]} == {"in_scene"}
        crop = http.get(links[f"talk/{face['crop']}"])
        assert crop.status_code == 200 and crop.content[:2] == b"\xff\xd8"


def test_multipart_upload_streams_the_file_part_to_disk(tmp_path, scene_clip):
    with running(tmp_path) as srv, srv.http() as http:
        raw = _upload(http, scene_clip.path)
        form = http.post("/v1/uploads", files={"file": ("../../etc/cut clip.mp4", scene_clip.path.read_bytes(), "video/mp4")}, data={"note": "x"})
        assert form.status_code == 201, form.text
        assert form.json()["blake3"] == raw["blake3"] and form.json()["size"] == raw["size"]
        assert form.json()["filename"] == "cut_clip.mp4"  # one harmless path component
        stored = srv.settings.output_dir / "uploads" / form.json()["id"] / "cut_clip.mp4"
        assert stored.read_bytes() == scene_clip.path.read_bytes()
        missing = http.post("/v1/uploads", files={"other": ("a.mp4", b"123")})
        assert missing.status_code == 400 and "part named 'file'" in missing.json()["error"]
        empty = http.post("/v1/uploads", content=b"")
        assert empty.status_code == 400 and "empty" in empty.json()["error"]


# -- authentication and binding ---------------------------------------------------------------


def test_api_keys_are_required_and_compared(tmp_path):
    with running(tmp_path, api_keys=(KEY,)) as srv, srv.http() as http:
        for headers, why in (
            ({}, "missing API key"),
            ({"Authorization": "Bearer wrong-key-0123456789"}, "invalid API key"),
            ({"Authorization": KEY}, "missing API key"),
        ):
            for method, path in (("POST", "/v1/uploads"), ("POST", "/v1/jobs"), ("GET", "/v1/jobs/abc"), ("GET", "/metrics"), ("GET", "/v1/ops")):
                response = http.request(method, path, headers=headers, content=b"x")
                assert response.status_code == 401, (method, path, response.text)
                assert response.json() == {"error": response.json()["error"], "status": 401} and why in response.json()["error"]
                assert response.headers["www-authenticate"].startswith("Bearer")
        assert http.get("/v1/jobs/abc", headers=AUTH).status_code == 404  # the key is right: now the job is unknown
        assert http.get("/health").json() == {"ok": True} and http.get("/ready").status_code == 200
        assert http.get("/openapi.json").status_code == 200
    assert not (srv.settings.output_dir / "uploads").exists() or not any((srv.settings.output_dir / "uploads").iterdir())


def test_keys_come_from_a_file_or_the_environment(tmp_path):
    keys = tmp_path / "keys.txt"
    keys.write_text(f"# team keys\n{KEY}\n\n  other-key-0123456789abc  \n")
    assert load_api_keys(keys) == (KEY, "other-key-0123456789abc")
    assert load_api_keys(None, env={"VIDEO_EXTRACT_API_KEYS": f"{KEY}, other-key-0123456789abc"}) == (KEY, "other-key-0123456789abc")
    assert load_api_keys(None, env={}) == ()


def _serve_cli(tmp_path: Path, *args: str, env: dict | None = None) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "video_extract.cli", "serve", "--port", "0", "-o", str(tmp_path / "srv"), "--cache-dir", str(tmp_path / "cache"), *args]
    return subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env={**os.environ, **(env or {})})


def _started(proc: subprocess.Popen) -> tuple[str, int]:
    """The 'serving on' line a started server prints, and its port."""
    line = proc.stderr.readline()
    match = re.search(r"serving on http://(\S+):(\d+)", line)
    assert match, line + proc.stderr.read() if proc.poll() is not None else line
    return line, int(match.group(2))


def test_a_public_address_needs_keys_or_insecure(tmp_path):
    refused = _serve_cli(tmp_path, "--host", "0.0.0.0")
    _, err = refused.communicate(timeout=60)
    assert refused.returncode == 2 and "refusing to listen on 0.0.0.0 without API keys" in err and "Traceback" not in err
    short = _serve_cli(tmp_path, "--host", "0.0.0.0", env={"VIDEO_EXTRACT_API_KEYS": "short"})
    assert short.wait(60) == 2 and "at least 16 characters" in short.stderr.read()
    for args, env, says in ((["--insecure"], {}, "no API keys"), ([], {"VIDEO_EXTRACT_API_KEYS": KEY}, "1 API key(s)")):
        proc = _serve_cli(tmp_path, "--host", "0.0.0.0", *args, env=env)
        try:
            line, port = _started(proc)
            assert says in line
            assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=10).json() == {"ok": True}
        finally:
            proc.terminate()
            proc.wait(30)


# -- limits -----------------------------------------------------------------------------------


def _vm(pid: int) -> dict[str, int]:
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return {k: int(fields[k].split()[0]) * 1024 for k in ("VmRSS", "VmHWM")}


@pytest.mark.slow
def test_oversized_upload_is_413_with_server_memory_flat(tmp_path):
    proc = _serve_cli(tmp_path, "--max-upload-size", "100M")
    try:
        _, port = _started(proc)
        url = f"http://127.0.0.1:{port}/v1/uploads"

        def stream(mib: int):
            chunk = os.urandom(1 << 20)
            for _ in range(mib):
                yield chunk

        assert httpx.post(url, content=stream(2), timeout=60).status_code == 201  # warm: every code path loaded
        before = _vm(proc.pid)
        over = httpx.post(url, content=stream(200), timeout=120)  # chunked: no length announced
        assert over.status_code == 413 and over.json() == {"error": "upload is over this server's limit of 104857600 bytes", "status": 413}
        fits = httpx.post(url, content=stream(90), timeout=120)
        assert fits.status_code == 201 and fits.json()["size"] == 90 << 20
        after = _vm(proc.pid)
        assert after["VmHWM"] - before["VmHWM"] < 50 << 20, (before, after)
        # An announced length over the limit is refused before a byte of the body is sent.
        head = _raw(port, b"POST /v1/uploads HTTP/1.1\r\nHost: x\r\nContent-Length: 209715200\r\n\r\n", wait=5)
        assert _status(head) == 413 and b"209715200 bytes is over" in head
        uploads = list((tmp_path / "srv" / "uploads").iterdir())
        assert len(uploads) == 2  # the refused upload left nothing behind
    finally:
        proc.terminate()
        proc.wait(30)


def test_a_million_operations_are_refused_in_under_a_second(tmp_path):
    ops = ["metadata"] * 1_000_000
    with running(tmp_path) as srv, srv.http() as http:
        started = time.perf_counter()
        response = http.post("/v1/jobs", json={"source": {"url": "http://example.com/a.mp4"}, "ops": ops})
        assert time.perf_counter() - started < 1.0
        assert response.status_code == 413 and "over this server's limit of 1048576 bytes" in response.json()["error"]
        body = json.dumps({"source": {"url": "http://example.com/a.mp4"}, "ops": ops}).encode()
        chunked = http.post("/v1/jobs", content=(body[i : i + 65536] for i in range(0, len(body), 65536)), headers={"Content-Type": "application/json"})
        assert chunked.status_code == 413 and chunked.json()["error"] == "request body is over this server's limit of 1048576 bytes"
    with running(tmp_path, max_body_size=64 << 20) as srv, srv.http() as http:
        for body in ({"ops": ops}, {"ops": ",".join(ops)}):
            started = time.perf_counter()
            response = http.post("/v1/jobs", json={"source": {"url": "http://example.com/a.mp4"}, **body})
            assert time.perf_counter() - started < 1.0
            assert response.status_code == 422 and response.json()["error"].startswith("ops: too many operations in one request: more than 64")
        twice = http.post("/v1/jobs", json={"source": {"url": "http://example.com/a.mp4"}, "ops": "metadata,scenes:threshold=20,min_scene_len=10,metadata"})
        assert twice.status_code == 422 and "requested twice" in twice.json()["error"]  # parameters are not counted as operations


def test_full_queue_is_429_with_retry_after(tmp_path, scene_clip, nap_client):
    with running(tmp_path, client=nap_client, max_concurrent_jobs=1, max_queue=1, allow_roots=(scene_clip.path.parent,)) as srv, srv.http() as http:
        job = {"source": {"path": str(scene_clip.path)}, "ops": "nap:seconds=1.5"}
        first, second, third = (http.post("/v1/jobs", json=job) for _ in range(3))
        assert (first.status_code, second.status_code) == (202, 202)
        assert third.status_code == 429 and third.json()["status"] == 429 and "queue is full" in third.json()["error"]
        assert int(third.headers["retry-after"]) >= 1
        assert http.get("/ready").status_code == 503 and "full" in http.get("/ready").json()["checks"]["queue"]
        assert http.get(f"/v1/jobs/{second.json()['id']}").json()["queue_position"] == 0
        assert _wait(http, first.json()["id"])["state"] == "done"
        assert http.post("/v1/jobs", json=job).status_code == 202  # a slot came free
        assert _wait(http, second.json()["id"])["state"] == "done"


def test_delete_cancels_queued_and_running_jobs(tmp_path, scene_clip, nap_client):
    with running(tmp_path, client=nap_client, max_concurrent_jobs=1, allow_roots=(scene_clip.path.parent,)) as srv, srv.http() as http:
        job = {"source": {"path": str(scene_clip.path)}, "ops": "nap:seconds=1"}
        running_job, queued_job = http.post("/v1/jobs", json=job).json(), http.post("/v1/jobs", json=job).json()
        while http.get(f"/v1/jobs/{running_job['id']}").json()["state"] != "running":
            time.sleep(0.02)
        cancelled = http.delete(f"/v1/jobs/{queued_job['id']}")
        assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
        assert not (srv.settings.output_dir / "jobs" / queued_job["id"]).exists()  # it never ran
        assert http.delete(f"/v1/jobs/{running_job['id']}").status_code == 200
        done = _wait(http, running_job["id"], timeout=10)
        assert done["state"] == "cancelled" and done["error"] == "cancelled"
        events = [json.loads(line) for line in http.get(running_job["links"]["events"]).text.splitlines()]
        assert events[-2:] == [
            {"type": "error", "op": "*", "error": "cancelled", "input": scene_clip.path.as_posix()},
            {"type": "done", "input": scene_clip.path.as_posix(), "status": "failed", "ok": [], "failed": [], "skipped": [], "elapsed": 0.0},
        ]
        queued_events = [json.loads(line) for line in http.get(queued_job["links"]["events"]).text.splitlines()]
        assert [e["type"] for e in queued_events] == ["error", "done"] and queued_events[0]["error"] == "cancelled before it started"


def test_a_job_past_its_time_limit_is_stopped_at_a_stage_boundary(tmp_path, scene_clip, nap_client):
    with running(tmp_path, client=nap_client, job_timeout=0.3, allow_roots=(scene_clip.path.parent,)) as srv, srv.http() as http:
        job = http.post("/v1/jobs", json={"source": {"path": str(scene_clip.path)}, "ops": "metadata,nap:seconds=1"}).json()
        info = _wait(http, job["id"])
        assert info["state"] == "failed" and info["error"] == "stopped after 0.3 s, this server's limit for one job"
        assert [e["type"] for e in map(json.loads, http.get(job["links"]["events"]).text.splitlines())][-2:] == ["error", "done"]


def test_a_listener_that_leaves_does_not_cancel_the_job(tmp_path, scene_clip, nap_client):
    with running(tmp_path, client=nap_client, allow_roots=(scene_clip.path.parent,)) as srv, srv.http() as http:
        job = http.post("/v1/jobs", json={"source": {"path": str(scene_clip.path)}, "ops": "metadata,nap:seconds=1"}).json()
        with http.stream("GET", job["links"]["events"]) as stream:
            first = json.loads(next(stream.iter_lines()))
        assert first["type"] == "complete" and first["op"] == "metadata"
        assert _wait(http, job["id"])["state"] == "done"
        assert [op for op, files in http.get(job["links"]["results"]).json()["files"].items() if files] == ["metadata", "nap"]


# -- sources ----------------------------------------------------------------------------------


def test_path_sources_only_under_allowed_roots(tmp_path, scene_clip):
    root = tmp_path / "media"
    root.mkdir()
    (root / "clip.mp4").write_bytes(scene_clip.path.read_bytes())
    (root / "escape.mp4").symlink_to("/etc/passwd")
    secret = tmp_path / "secret.mp4"
    secret.write_bytes(scene_clip.path.read_bytes())
    with running(tmp_path) as srv, srv.http() as http:  # no --allow-root: no path source at all
        refused = http.post("/v1/jobs", json={"source": {"path": str(root / "clip.mp4")}, "ops": "metadata"})
        assert refused.status_code == 403 and "no --allow-root" in refused.json()["error"]
    with running(tmp_path, allow_roots=(root,)) as srv, srv.http() as http:
        for path, status, says in (
            (f"{root}/../secret.mp4", 403, "outside the directories"),
            (str(secret), 403, "outside the directories"),
            ("/etc/passwd", 403, "outside the directories"),
            (str(root / "escape.mp4"), 403, "outside the directories"),  # a link out of the root
            ("clip.mp4", 422, "must be absolute"),
            (str(root / "missing.mp4"), 422, "file not found"),
            (str(root), 422, "not a regular file"),
        ):
            response = http.post("/v1/jobs", json={"source": {"path": path}, "ops": "metadata"})
            assert response.status_code == status and says in response.json()["error"], (path, response.text)
        ok = http.post("/v1/jobs", json={"source": {"path": f"{root}/./clip.mp4"}, "ops": "metadata"})
        assert ok.status_code == 202 and _wait(http, ok.json()["id"])["state"] == "done"
        assert not list(srv.settings.output_dir.glob("jobs/*/secret"))


def test_source_and_request_errors_are_4xx_json(tmp_path):
    with running(tmp_path) as srv, srv.http() as http:
        cases = [
            ({"source": {"upload": "nope"}, "ops": "metadata"}, 422, "no upload 'nope'"),
            ({"source": {"url": "file:///etc/passwd"}, "ops": "metadata"}, 422, "not an http(s):// or s3:// URL"),
            ({"source": {"file": "/etc/passwd"}, "ops": "metadata"}, 422, 'source: give one of {"upload": id}'),
            ({"source": {"url": "http://x/a.mp4"}, "ops": "keyframez"}, 422, "unknown operation 'keyframez'"),
            ({"source": {"url": "http://x/a.mp4"}, "ops": "scenes:threshold=banana"}, 422, "threshold"),
            ({"source": {"url": "http://x/a.mp4"}}, 422, "ops: Field required"),
        ]
        for body, status, says in cases:
            response = http.post("/v1/jobs", json=body)
            assert response.status_code == status and says in response.json()["error"], (body, response.text)
            assert set(response.json()) == {"error", "status"}
        malformed = http.post("/v1/jobs", content=b'{"source": ', headers={"Content-Type": "application/json"})
        assert malformed.status_code == 400 and malformed.json()["error"].startswith("malformed JSON")
        form = http.post(
            "/v1/jobs", content=b'{"source": {"url": "http://x/a.mp4"}, "ops": "metadata"}', headers={"Content-Type": "application/x-www-form-urlencoded"}
        )
        assert form.status_code == 422 and "Content-Type: application/json" in form.json()["error"]


def test_an_unreadable_upload_is_a_failed_job_with_a_clear_error(tmp_path):
    with running(tmp_path) as srv, srv.http() as http:
        upload = http.post("/v1/uploads?filename=notes.mp4", content=b"these are not frames").json()
        job = http.post("/v1/jobs", json={"source": {"upload": upload["id"]}, "ops": "metadata"})
        assert job.status_code == 202
        info = _wait(http, job.json()["id"])
        assert info["state"] == "failed" and info["error"].startswith("notes.mp4: ") and str(srv.settings.output_dir) not in info["error"]
        events = [json.loads(line) for line in http.get(job.json()["links"]["events"]).text.splitlines()]
        assert [(e["type"], e.get("op")) for e in events] == [("error", "*"), ("done", None)] and events[0]["error"] == info["error"]
        results = http.get(job.json()["links"]["results"]).json()
        assert results["state"] == "failed" and results["result"] is None and results["error"] == info["error"]


# -- not found, and no way out of a job's folder ----------------------------------------------


def test_unknown_jobs_and_files_are_404_json_and_paths_cannot_escape(tmp_path, scene_clip):
    with running(tmp_path, allow_roots=(scene_clip.path.parent,)) as srv, srv.http() as http:
        for path in ("/v1/jobs/0000", "/v1/jobs/0000/events", "/v1/jobs/0000/results", "/v1/jobs/0000/files/a.json", "/v1/batches/0000", "/nowhere"):
            response = http.get(path)
            assert response.status_code == 404 and response.json()["status"] == 404, path
        assert http.delete("/v1/jobs/0000").status_code == 404
        assert http.put("/v1/jobs").json() == {"error": "PUT is not allowed on /v1/jobs (see /docs)", "status": 405}

        job = http.post("/v1/jobs", json={"source": {"path": str(scene_clip.path)}, "ops": "metadata"}).json()
        _wait(http, job["id"])
        files = f"/v1/jobs/{job['id']}/files"
        stem = scene_clip.path.stem
        assert http.get(f"{files}/{stem}/metadata.json").status_code == 200
        assert http.get(f"{files}/{stem}/nothing.json").status_code == 404
        assert http.get(f"{files}/{stem}").status_code == 404  # a folder is not a file
        assert http.get(f"{files}/{stem}/.input").status_code == 404  # hidden bookkeeping stays hidden
        (srv.settings.output_dir / "jobs" / job["id"] / stem / "link.json").symlink_to("/etc/passwd")
        assert http.get(f"{files}/{stem}/link.json").status_code == 404  # a link out of the job's folder
        for target in (b"../../../../etc/passwd", b"%2e%2e/%2e%2e/%2e%2e/etc/passwd", b"..%2f..%2fjobs", b"/etc/passwd", b"x/..%5c..%5cetc"):
            raw = _raw(srv.port, b"GET " + files.encode() + b"/" + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert _status(raw) in (400, 404) and b"root:" not in raw, (target, raw)
            assert json.loads(raw.split(b"\r\n\r\n", 1)[1])["status"] in (400, 404)
        http.get(job["links"]["results"]).raise_for_status()


# -- HTTP framing and timeouts ----------------------------------------------------------------


def test_a_request_hidden_in_a_chunked_body_gets_no_response(tmp_path):
    hidden = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
    with running(tmp_path) as srv:
        chunked = b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        chunked += b"%x\r\n" % len(hidden) + hidden + b"\r\n0\r\n\r\n"
        answer = _raw(srv.port, chunked)
        assert answer.count(b"HTTP/1.1 ") == 1 and _status(answer) == 400 and b'"ok"' not in answer
        # Both framings at once (a front proxy may go by Content-Length): refused and closed.
        both = b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + hidden
        answer = _raw(srv.port, both)
        assert answer.count(b"HTTP/1.1 ") == 1 and _status(answer) == 400 and b"Content-Length and Transfer-Encoding" in answer
        bad_length = _raw(srv.port, b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n")
        assert _status(bad_length) == 400 and json.loads(bad_length.split(b"\r\n\r\n", 1)[1])["status"] == 400


def test_slow_headers_and_stalled_bodies_are_cut_off(tmp_path):
    with running(tmp_path, header_timeout=1.0, body_timeout=1.0) as srv:
        started = time.monotonic()
        answer = _raw(srv.port, b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ", wait=10)
        assert _status(answer) == 408 and time.monotonic() - started < 5
        assert b"headers did not arrive within 1 s" in answer
        started = time.monotonic()
        answer = _raw(srv.port, b"", wait=10)  # connects and says nothing
        assert _status(answer) == 408 and time.monotonic() - started < 5
        started = time.monotonic()
        answer = _raw(srv.port, b'POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"source', wait=10)
        assert _status(answer) == 408 and b"no part of the request body arrived for 1 s" in answer and time.monotonic() - started < 5
        # A keep-alive connection that starts a second request and stalls is cut off too.
        with socket.create_connection(("127.0.0.1", srv.port)) as sock:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\nGET /health HTT")
            sock.settimeout(10)
            received = b""
            while chunk := sock.recv(65536):
                received += chunk
        assert received.count(b"HTTP/1.1 200") == 1 and received.count(b"HTTP/1.1 ") == 2 and b"408" in received


def test_fifty_concurrent_connections_are_all_answered(tmp_path):
    with running(tmp_path) as srv:
        results: list[int | str] = []

        def call() -> None:
            try:
                results.append(httpx.get(f"{srv.url}/health", timeout=30).status_code)
            except httpx.HTTPError as exc:
                results.append(type(exc).__name__)

        threads = [threading.Thread(target=call) for _ in range(50)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert results == [200] * 50


# -- batches, metrics, housekeeping, schema ---------------------------------------------------


@pytest.mark.slow
def test_batch_runs_many_sources_with_progress_and_summary(tmp_path, scene_clip, gop_clip):
    with running(tmp_path, api_keys=(KEY,), workers=1) as srv, srv.http(headers=AUTH) as http:
        uploads = [_upload(http, clip.path) for clip in (scene_clip, gop_clip)]
        refused = http.post("/v1/batches", json={"sources": [{"upload": uploads[0]["id"]}, {"upload": "nope"}], "ops": "metadata"})
        assert refused.status_code == 422 and refused.json()["error"].startswith("sources[1]: no upload 'nope'")
        created = http.post("/v1/batches", json={"sources": [{"upload": u["id"]} for u in uploads], "ops": "metadata,scenes"})
        assert created.status_code == 202, created.text
        batch = _wait(http, created.json()["id"], kind="batches", timeout=120)
        assert batch["state"] == "done" and batch["progress"] == {**batch["progress"], "done": 2, "failed": 0, "total": 2}
        rows = batch["summary"]["files"]
        assert [r["input"] for r in rows] == ["scenes.mp4", "gop.mp4"] and {r["status"] for r in rows} == {"ok"}
        assert batch["summary"]["totals"]["ok"] == 2 and str(srv.settings.output_dir) not in json.dumps(batch)
        scenes = http.get(rows[0]["output_dir"] + "/scenes.json")
        assert scenes.status_code == 200 and len(scenes.json()["cuts"]) == len(scene_clip.cuts)
        # the files as downloaded name the uploads and folders as the client knows them
        written = http.get(batch["links"]["files"] + "batch_summary.json").json()["files"]
        assert [(r["input"], r["output_dir"]) for r in written] == [("scenes.mp4", "scenes"), ("gop.mp4", "gop")]
        assert http.get(rows[1]["output_dir"] + "/summary.json").json()["input"] == "gop.mp4"


@pytest.mark.slow
def test_a_batch_exports_its_outputs_as_datasets_to_download(tmp_path, scene_clip, gop_clip):
    """``export`` in a batch request: Parquet tables and WebDataset shards of the finished files,
    each file of them a link the client downloads, names of its own and no server path."""
    import io
    import tarfile

    import pyarrow.parquet as pq

    with running(tmp_path, api_keys=(KEY,), workers=1) as srv, srv.http(headers=AUTH) as http:
        uploads = [_upload(http, clip.path) for clip in (scene_clip, gop_clip)]
        sources = [{"upload": u["id"]} for u in uploads]
        refused = http.post("/v1/batches", json={"sources": sources, "ops": "metadata", "export": ["csv"]})
        assert refused.status_code == 422 and "export" in refused.json()["error"] and "parquet" in refused.json()["error"]
        refused = http.post("/v1/batches", json={"sources": sources, "ops": "metadata", "export": ["parquet"], "shard_size": 0})
        assert refused.status_code == 422 and "shard_size" in refused.json()["error"]

        request = {"sources": sources, "ops": "metadata,scenes", "export": ["parquet", "webdataset", "parquet"], "shard_size": 1}
        created = http.post("/v1/batches", json=request)
        assert created.status_code == 202, created.text
        batch = _wait(http, created.json()["id"], kind="batches", timeout=120)
        assert batch["state"] == "done", batch
        assert str(srv.settings.output_dir) not in json.dumps(batch)
        exports = {e["format"]: e for e in batch["exports"]}
        assert sorted(exports) == ["parquet", "webdataset"] and all(e["files"] == 2 and not e["left_out"] for e in exports.values())

        files_table = next(link for link in exports["parquet"]["links"] if "/parquet/files/" in link)
        table = pq.read_table(io.BytesIO(http.get(files_table).content))
        assert sorted(table.column("input").to_pylist()) == ["gop.mp4", "scenes.mp4"]
        scenes_table = next(link for link in exports["parquet"]["links"] if "/parquet/scenes/" in link)
        assert pq.read_table(io.BytesIO(http.get(scenes_table).content)).num_rows == len(scene_clip.cuts) + 1 + len(gop_clip.cuts) + 1

        shards = [link for link in exports["webdataset"]["links"] if link.endswith(".tar")]
        assert len(shards) == 2 and exports["webdataset"]["counts"] == {"shards": 2, "samples": 2}  # one sample a shard
        members = []
        for link in shards:
            with tarfile.open(fileobj=io.BytesIO(http.get(link).content)) as tar:
                members += [m.name for m in tar.getmembers()]
        assert len([m for m in members if m.endswith(".json")]) == 2
        # the datasets name the uploads as their client did: no server path inside any of their files
        for link in exports["parquet"]["links"] + exports["webdataset"]["links"]:
            assert str(srv.settings.output_dir).encode() not in http.get(link).content, link


def test_metrics_count_jobs_stages_cache_and_uploads(tmp_path, scene_clip):
    with running(tmp_path, api_keys=(KEY,)) as srv, srv.http(headers=AUTH) as http:
        upload = _upload(http, scene_clip.path)
        for _ in range(2):
            job = http.post("/v1/jobs", json={"source": {"upload": upload["id"]}, "ops": "metadata"}).json()
            assert _wait(http, job["id"])["state"] == "done"
        text = http.get("/metrics").text
        values = {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line and not line.startswith("#")}
        assert values['video_extract_tasks_finished_total{kind="job",state="done"}'] == 2
        assert values['video_extract_tasks{state="done"}'] == 2 and values["video_extract_queue_length"] == 0
        assert values['video_extract_cache_lookups_total{result="miss"}'] == 1 and values['video_extract_cache_lookups_total{result="hit"}'] == 1
        assert values['video_extract_stage_seconds_count{cached="false",plugin="metadata"}'] == 1
        assert values["video_extract_upload_bytes_total"] == scene_clip.path.stat().st_size
        assert httpx.get(f"{srv.url}/metrics").status_code == 401


def test_finished_jobs_and_unused_uploads_are_removed_after_their_ttl(tmp_path, scene_clip):
    with running(tmp_path, job_ttl=0.5, upload_ttl=0.5) as srv, srv.http() as http:
        upload = _upload(http, scene_clip.path)
        job = http.post("/v1/jobs", json={"source": {"upload": upload["id"]}, "ops": "metadata"}).json()
        _wait(http, job["id"])
        folder = srv.settings.output_dir / "jobs" / job["id"]
        assert folder.is_dir()
        deadline = time.monotonic() + 10
        while http.get(job["links"]["status"]).status_code != 404:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert not folder.exists() and not (srv.settings.output_dir / "uploads" / upload["id"]).exists()
        gone = http.post("/v1/jobs", json={"source": {"upload": upload["id"]}, "ops": "metadata"})
        assert gone.status_code == 422 and "removed after" in gone.json()["error"]


def test_openapi_documents_every_endpoint(tmp_path):
    with running(tmp_path) as srv, srv.http() as http:
        schema = http.get("/openapi.json").json()
        assert http.get("/docs").status_code == 200
    paths = schema["paths"]
    expected = {
        "/v1/uploads": {"post"},
        "/v1/jobs": {"post"},
        "/v1/jobs/{job_id}": {"get", "delete"},
        "/v1/jobs/{job_id}/events": {"get"},
        "/v1/jobs/{job_id}/results": {"get"},
        "/v1/jobs/{job_id}/files/{path}": {"get"},
        "/v1/batches": {"post"},
        "/v1/batches/{batch_id}": {"get", "delete"},
        "/v1/batches/{batch_id}/files/{path}": {"get"},
        "/health": {"get"},
        "/ready": {"get"},
        "/metrics": {"get"},
    }
    for path, methods in expected.items():
        assert methods <= set(paths[path]), path
    components = schema["components"]["schemas"]
    assert {"JobRequest", "JobInfo", "JobResults", "UploadInfo", "BatchRequest", "BatchInfo", "Error", "FileResult"} <= set(components)
    assert paths["/v1/jobs"]["post"]["responses"]["429"]["content"]["application/json"]["schema"]["$ref"].endswith("/Error")
    assert "HTTPBearer" in schema["components"]["securitySchemes"]


# -- sources and models a client may name -----------------------------------------------------

from .test_sources import MediaServer  # noqa: E402 - the local web server of the source tests


def test_a_url_job_runs_only_when_the_operator_allows_private_networks(tmp_path, scene_clip):
    with MediaServer() as web:
        web.files["/clip.mp4"] = scene_clip.path.read_bytes()
        web.etags["/clip.mp4"] = '"v1"'
        url = web.url("/clip.mp4")
        with running(tmp_path / "open", allow_private_networks=True) as srv, srv.http() as http:
            job = http.post("/v1/jobs", json={"source": {"url": url}, "ops": "metadata,scenes"}).json()
            info = _wait(http, job["id"])
            assert info["state"] == "done", info
            result = http.get(job["links"]["results"]).json()["result"]
            assert result["input"] == url
            cuts = http.get(result["output_dir"] + "/" + result["ops"]["scenes"]["files"][0])
            assert len(cuts.json()["cuts"]) == len(scene_clip.cuts)
        assert web.body_gets() == 1
        with running(tmp_path / "closed") as srv, srv.http() as http:  # the default: no private networks
            job = http.post("/v1/jobs", json={"source": {"url": url}, "ops": "metadata"}).json()
            info = _wait(http, job["id"])
            assert info["state"] == "failed" and "127.0.0.1" in info["error"] and "loopback" in info["error"], info
        assert web.body_gets() == 1  # refused before a byte was asked for


def test_a_url_s_query_secret_reaches_no_output_file(tmp_path, scene_clip):
    """Uploads are named by their file name in the outputs; a URL keeps the Client's own naming,
    which drops what a token in its query would give away: output files, summaries and exports
    get passed on, and a token in them would go along."""
    with MediaServer() as web:
        web.files["/clip.mp4"] = scene_clip.path.read_bytes()
        url = web.url("/clip.mp4") + "?token=hunter2"
        with running(tmp_path, allow_private_networks=True, workers=1) as srv, srv.http() as http:
            job = http.post("/v1/jobs", json={"source": {"url": url}, "ops": "metadata"}).json()
            assert _wait(http, job["id"])["state"] == "done"
            result = http.get(job["links"]["results"]).json()
            batch = http.post("/v1/batches", json={"sources": [{"url": url}], "ops": "metadata", "export": ["parquet"]}).json()
            batch = _wait(http, batch["id"], kind="batches", timeout=120)
            assert batch["state"] == "done", batch
            links = [f["url"] for files in result["files"].values() for f in files] + [batch["links"]["files"] + "batch_summary.json"]
            links += batch["exports"][0]["links"] + [batch["summary"]["files"][0]["output_dir"] + "/summary.json"]
            for link in links:
                assert b"hunter2" not in http.get(link).content, link
            # (the API's answers give the client its own URL back as it gave it: see the test above)
            assert "REDACTED" in http.get(links[-1]).json()["input"]
        assert list(srv.settings.output_dir.rglob("*.json")) and not [p for p in srv.settings.output_dir.rglob("*.json") if "hunter2" in p.read_text()]


def test_an_s3_job_and_a_batch_over_an_s3_prefix(tmp_path, s3, scene_clip, gop_clip):
    client, bucket, _ = s3
    for key, clip in (("in/a.mp4", scene_clip.path), ("in/b.mp4", gop_clip.path)):
        client.put_object(Bucket=bucket, Key=key, Body=clip.read_bytes())
    with running(tmp_path, workers=1) as srv, srv.http() as http:  # the S3 endpoint is the operator's: no private-network flag needed
        job = http.post("/v1/jobs", json={"source": {"url": f"s3://{bucket}/in/a.mp4"}, "ops": "scenes"}).json()
        assert _wait(http, job["id"])["state"] == "done"
        missing = http.post("/v1/jobs", json={"source": {"url": f"s3://{bucket}/in/nope.mp4"}, "ops": "metadata"}).json()
        assert _wait(http, missing["id"])["error"] == f"s3://{bucket}/in/nope.mp4: no such key"
        created = http.post("/v1/batches", json={"sources": [{"url": f"s3://{bucket}/in/"}], "ops": "metadata"})
        assert created.status_code == 202, created.text
        batch = _wait(http, created.json()["id"], kind="batches", timeout=180)
        assert batch["state"] == "done", batch
        rows = batch["summary"]["files"]
        assert sorted(r["input"] for r in rows) == [f"s3://{bucket}/in/a.mp4", f"s3://{bucket}/in/b.mp4"]
        assert {r["status"] for r in rows} == {"ok"}


@pytest.mark.parametrize("model", ["openai/whisper-large-v3", "/etc", "../models/tiny"])
def test_a_model_outside_the_catalog_is_refused_before_any_work(tmp_path, model):
    with running(tmp_path) as srv, srv.http() as http:
        started = time.perf_counter()
        response = http.post("/v1/jobs", json={"source": {"url": "http://example.com/a.mp4"}, "ops": [f"transcription:model={model}"]})
        assert time.perf_counter() - started < 1.0
        assert response.status_code == 422 and "is not allowed on this server" in response.json()["error"], response.text
        allowed = http.post("/v1/jobs", json={"source": {"url": "http://example.com/a.mp4"}, "ops": ["transcription:model=tiny.en"]})
        assert allowed.status_code == 202, allowed.text


def test_served_outputs_are_sandboxed_pages_of_their_own_origin(tmp_path):
    """A report.html (or any output holding text from the media) served by the API cannot act
    in the API's origin: the page is sandboxed (scripts run, same-origin access does not)."""
    from video_extract.server.app import _serve_file

    class Task:  # a job's folder, and what its scrub replaces
        dir = tmp_path

        def scrub(self, text: str) -> str:
            return text.replace(str(tmp_path) + os.sep, "")

    (tmp_path / "talk").mkdir()
    (tmp_path / "talk" / "report.html").write_text("<script>fetch('/v1/jobs')</script>")
    (tmp_path / "talk" / "named.html").write_text(f"<script>fetch('/v1/jobs')</script><p>{tmp_path}/talk/talk.mp4</p>")
    for page in ("report.html", "named.html"):  # sent as it is, or with the server's folder taken out
        response = _serve_file(Task(), f"talk/{page}")
        assert response.headers["content-security-policy"] == "sandbox allow-scripts"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.media_type == "text/html"
    assert response.body == b"<script>fetch('/v1/jobs')</script><p>talk/talk.mp4</p>"


def test_an_upload_onto_a_full_disk_is_507_and_the_server_goes_on(small_disk, scene_clip):
    """It was a 500 "internal error: OSError", with two tracebacks in the log."""
    disk = small_disk(1 << 20)
    with running(disk) as srv, srv.http() as http:
        big = http.post("/v1/uploads", params={"filename": "big.mp4"}, content=os.urandom(3 << 20))
        assert big.status_code == 507 and big.json() == {"error": "the server has no room for this upload now; try again later", "status": 507}
        assert not list((srv.settings.output_dir / "uploads").iterdir())  # nothing half-written kept
        assert _upload(http, scene_clip.path)["size"] == scene_clip.path.stat().st_size  # room again: it takes the next
