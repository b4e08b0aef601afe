"""Sources other than a local path: URLs (a real HTTP server on loopback), S3 (moto in server
mode), bytes and file objects; the policy (private networks, roots, size, time) and its errors."""

from __future__ import annotations

import io
import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from video_extract import Client
from video_extract.cache import file_digest
from video_extract.sources import SourceError, SourcePolicy, Sources, forbidden_address, redact_url

from .conftest import run_cli

# -- a media server on loopback -------------------------------------------------------------------


class MediaServer:
    """Serves ``files`` (path -> bytes) with an ETag; counts the bodies it sends per path.

    Special paths: ``/forbidden.mp4`` (403), ``/stall.mp4`` (sends a little, then stalls),
    ``/chunked/…`` (no Content-Length), ``/redirect/…`` (302 to ``redirects[path]``).
    """

    def __init__(self, host: str = "127.0.0.1"):
        self.files: dict[str, bytes] = {}
        self.etags: dict[str, str | None] = {}
        self.redirects: dict[str, str] = {}
        self.bodies: Counter[str] = Counter()
        self.requests: list[tuple[str, str]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_HEAD(self):  # noqa: N802
                self.respond(body=False)

            def do_GET(self):  # noqa: N802
                self.respond(body=True)

            def respond(self, body: bool) -> None:
                path = self.path.split("?", 1)[0]
                server.requests.append((self.command, path))
                if path.startswith("/redirect/"):
                    self.send_response(302)
                    self.send_header("Location", server.redirects[path])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if path == "/forbidden.mp4":
                    return self.error(403, "Forbidden")
                name = path.removeprefix("/chunked")
                data = server.files.get(name)
                if data is None:
                    return self.error(404, "Not Found")
                self.send_response(200)
                self.send_header("Content-Type", "video/mp4")
                if server.etags.get(name):
                    self.send_header("ETag", server.etags[name])
                if path.startswith("/chunked/"):
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    if body:
                        server.bodies[path] += 1
                        for start in range(0, len(data), 65536):
                            piece = data[start : start + 65536]
                            self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                        self.wfile.write(b"0\r\n\r\n")
                    return
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if not body:
                    return
                server.bodies[path] += 1
                if path == "/stall.mp4":
                    self.wfile.write(data[:1000])
                    self.wfile.flush()
                    time.sleep(4)  # longer than the client's read timeout
                    return
                self.wfile.write(data)

            def error(self, status: int, reason: str) -> None:
                self.send_response(status, reason)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.httpd = ThreadingHTTPServer((host, 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.host = host
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, path: str, host: str | None = None) -> str:
        return f"http://{host or self.host}:{self.port}{path}"

    def body_gets(self) -> int:
        return sum(self.bodies.values())

    def __enter__(self) -> MediaServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def web(scene_clip):
    with MediaServer() as server:
        data = scene_clip.path.read_bytes()
        for name in ("/clip.mp4", "/stall.mp4", "/other.mp4"):
            server.files[name] = data
            server.etags[name] = '"v1"'
        yield server


def _client(tmp_path, **policy) -> Client:
    return Client(cache_dir=tmp_path / "cache", output_dir=tmp_path / "out", source_policy=SourcePolicy(**policy))


def _spool_leftovers(tmp_path) -> list[Path]:
    tmp = tmp_path / "cache" / "v1" / "spool" / "tmp"
    return list(tmp.iterdir()) if tmp.exists() else []


# -- URLs ---------------------------------------------------------------------------------------


def test_a_url_is_processed_like_the_same_file_on_disk(tmp_path, web, scene_clip):
    url = web.url("/clip.mp4")
    result = _client(tmp_path).run(url, "metadata,scenes")
    assert result.ok, result.errors
    assert result.result.input == url
    assert result.output_dir == tmp_path / "out" / "clip"  # named after the URL's last segment
    assert result.result.digest == file_digest(scene_clip.path)  # the cache key is the content
    assert [cut.frame for cut in result.scenes.cuts] == [30, 60]
    assert json.loads((result.output_dir / "metadata.json").read_text())["path"] == url
    assert (result.output_dir / ".input").read_text().strip() == url
    assert web.bodies["/clip.mp4"] == 1


def test_a_url_is_refused_without_private_networks_before_any_request(tmp_path, web):
    url = web.url("/clip.mp4")
    with pytest.raises(SourceError) as caught:
        _client(tmp_path, allow_private_networks=False).run(url, "metadata")
    text = str(caught.value)
    assert text == f"{url}: 127.0.0.1 is a loopback address; private networks are not allowed"
    assert web.requests == []
    assert not (tmp_path / "out").exists()


def test_a_host_name_resolving_to_loopback_is_refused(tmp_path, web):
    client = _client(tmp_path, allow_private_networks=False)
    client.runtime.sources.lookup = lambda host, port, family=0: ["93.184.216.34", "127.0.0.1"]  # one bad address is enough
    url = web.url("/clip.mp4", host="media.example")
    with pytest.raises(SourceError, match=r"media\.example resolves to 127\.0\.0\.1, a loopback address; private networks are not allowed"):
        client.run(url, "metadata")
    assert web.requests == []


@pytest.mark.parametrize(
    ("target", "cause"),
    [
        ("http://127.0.0.1:{port}/clip.mp4", "redirected to 127.0.0.1, a loopback address; private networks are not allowed"),
        ("http://internal.example:{port}/clip.mp4", "internal.example resolves to 127.0.0.1, a loopback address; private networks are not allowed"),
        ("file:///etc/passwd", "redirected to a file URL, which is not allowed"),
    ],
)
def test_a_redirect_from_a_public_host_to_a_private_one_is_refused(tmp_path, web, target, cause):
    """``media.example`` stands for a public host (the test treats 127.0.0.2 as public); it
    redirects to the loopback server, directly or through a name that resolves there."""
    with MediaServer(host="127.0.0.2") as public:
        public.redirects["/redirect/clip.mp4"] = target.format(port=web.port)
        client = _client(tmp_path, allow_private_networks=False)
        sources = client.runtime.sources
        names = {"media.example": ["127.0.0.2"], "internal.example": ["127.0.0.1"]}
        sources.lookup = lambda host, port, family=0: names[host]
        sources.forbidden = lambda ip: None if ip == "127.0.0.2" else forbidden_address(ip)
        url = public.url("/redirect/clip.mp4", host="media.example")
        with pytest.raises(SourceError) as caught:
            client.run(url, "metadata")
        assert str(caught.value) == f"{url}: {cause}"
        assert public.requests  # the public host was asked ...
        assert web.requests == []  # ... the private one never reached


@pytest.mark.parametrize(
    ("path", "policy", "cause"),
    [
        ("/missing.mp4", {}, "HTTP 404 Not Found"),
        ("/forbidden.mp4", {}, "HTTP 403 Forbidden (access denied)"),
        ("/stall.mp4", {"read_timeout": 1}, "timed out: no data for 1 s"),
        ("/clip.mp4", {"max_bytes": 10_000}, "too large: "),
        ("/chunked/clip.mp4", {"max_bytes": 10_000}, "too large: more than the limit of 9.8 KiB (download stopped)"),
    ],
)
def test_a_url_that_cannot_be_fetched_is_one_line_naming_it(tmp_path, web, path, policy, cause):
    url = web.url(path)
    started = time.monotonic()
    with pytest.raises(SourceError) as caught:
        _client(tmp_path, **policy).run(url, "metadata")
    text = str(caught.value)
    assert text.startswith(f"{url}: {cause}"), text
    assert "\n" not in text
    assert time.monotonic() - started < 15
    assert _spool_leftovers(tmp_path) == []  # a partial download is never left behind
    assert not list((tmp_path / "cache" / "v1" / "spool").glob("files/*/*"))


def test_dns_failure_and_refused_connection_are_one_line(tmp_path):
    import socket

    client = _client(tmp_path)

    def no_such_host(host, port, family=0):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    client.runtime.sources.lookup = no_such_host
    with pytest.raises(SourceError) as caught:
        client.run("http://media.invalid/clip.mp4", "metadata")
    assert str(caught.value) == "http://media.invalid/clip.mp4: cannot resolve host media.invalid (Name or service not known)"
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there now
    with pytest.raises(SourceError) as caught:
        _client(tmp_path).run(f"http://127.0.0.1:{port}/clip.mp4", "metadata")
    assert str(caught.value) == f"http://127.0.0.1:{port}/clip.mp4: connection refused by 127.0.0.1:{port}"


def test_s3_access_denied_is_named():
    from botocore.exceptions import ClientError

    from video_extract.sources import explain

    denied = ClientError({"Error": {"Code": "AccessDenied", "Message": "Access Denied"}}, "GetObject")
    try:
        try:
            raise denied
        except ClientError as exc:
            raise PermissionError("Access Denied") from exc  # how s3fs translates it
    except PermissionError as exc:
        assert explain(exc, "s3://bucket/key.mp4", SourcePolicy()) == "access denied"


def test_too_large_by_content_length_stops_before_downloading(tmp_path, web, scene_clip):
    with pytest.raises(SourceError, match=r"too large: .* the limit is 9\.8 KiB"):
        _client(tmp_path, max_bytes=10_000).run(web.url("/clip.mp4"), "metadata")
    assert web.bodies["/clip.mp4"] == 0


def test_credentials_and_query_secrets_never_appear_in_errors_or_results(tmp_path, web):
    url = f"http://alice:hunter22@127.0.0.1:{web.port}/missing.mp4?X-Amz-Signature=s3cr3tsig&part=2"
    with pytest.raises(SourceError) as caught:
        _client(tmp_path).run(url, "metadata")
    text = str(caught.value)
    assert "hunter22" not in text and "alice" not in text and "s3cr3tsig" not in text
    assert text.startswith(f"http://127.0.0.1:{web.port}/missing.mp4?X-Amz-Signature=REDACTED&part=2: HTTP 404")
    result = _client(tmp_path).run(f"http://bob:pw1234@127.0.0.1:{web.port}/clip.mp4?token=abcdef", "metadata")
    assert result.result.input == f"http://127.0.0.1:{web.port}/clip.mp4?token=REDACTED"
    written = "".join(p.read_text() for p in result.output_dir.rglob("*.json"))
    assert "pw1234" not in written and "abcdef" not in written


def test_an_unchanged_url_is_not_downloaded_again_and_a_changed_one_is(tmp_path, web, gop_clip):
    url = web.url("/clip.mp4")
    client = _client(tmp_path)
    first = client.run(url, "metadata")
    second = _client(tmp_path).run(url, "metadata")  # another client, same cache: the fingerprint is on disk
    assert web.bodies["/clip.mp4"] == 1
    assert ("HEAD", "/clip.mp4") in web.requests[2:]  # asked whether it changed, nothing more
    assert second.result.digest == first.result.digest
    assert second.result.ops["metadata"].cached

    web.files["/clip.mp4"] = gop_clip.path.read_bytes()
    web.etags["/clip.mp4"] = '"v2"'
    third = client.run(url, "metadata")
    assert web.bodies["/clip.mp4"] == 2
    assert third.result.digest == file_digest(gop_clip.path)
    assert third.metadata.video.frame_count == 100


def test_a_url_without_etag_or_last_modified_is_downloaded_each_time(tmp_path, web):
    web.etags["/clip.mp4"] = None
    client = _client(tmp_path)
    client.run(web.url("/clip.mp4"), "metadata")
    client.run(web.url("/clip.mp4"), "metadata")
    assert web.bodies["/clip.mp4"] == 2


def test_concurrent_requests_for_one_url_download_it_once(tmp_path, web):
    client = _client(tmp_path)
    results: list = []
    threads = [threading.Thread(target=lambda: results.append(client.run(web.url("/clip.mp4"), "metadata"))) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [r.ok for r in results] == [True, True, True]
    assert web.bodies["/clip.mp4"] == 1
    assert len(list((tmp_path / "cache" / "v1" / "spool").glob("files/*/*"))) == 1


def test_streaming_events_name_the_url(tmp_path, web):
    url = web.url("/clip.mp4")
    events = list(_client(tmp_path).execute_streaming(url, "metadata"))
    assert events[-1].type == "done" and events[-1].input == url and events[-1].status == "ok"


def test_the_spool_keeps_to_its_cap_least_recently_used_first_and_spares_files_in_use(tmp_path, web, scene_clip):
    size = len(web.files["/clip.mp4"])
    web.files["/a.mp4"], web.files["/b.mp4"], web.files["/c.mp4"] = (web.files["/clip.mp4"] + bytes([n]) for n in range(3))
    sources = Sources(spool_dir=tmp_path / "spool", spool_max_bytes=int(2.5 * size))
    held = sources.open(web.url("/a.mp4"))  # in use while the others arrive
    b = sources.open(web.url("/b.mp4"))
    b.release()
    c = sources.open(web.url("/c.mp4"))
    c.release()
    assert held.path.exists()  # the oldest, but held
    assert not b.path.exists()  # least recently used and free: evicted
    assert c.path.exists()
    held.release()
    assert sources.open(web.url("/b.mp4")).downloaded  # gone from the spool: fetched again


def test_a_url_without_a_name_takes_its_format_hint(tmp_path, web):
    web.files["/media"] = web.files["/clip.mp4"]
    result = _client(tmp_path).run(web.url("/media"), "metadata", format_hint="talk.mp4")
    assert result.ok and result.output_dir.name == "talk"


def test_bulk_over_urls_names_them_without_secrets_and_resumes_by_etag(tmp_path, web):
    secret = f"http://u:hunter22@127.0.0.1:{web.port}/other.mp4?token=t0ps3cret"
    urls = [web.url("/clip.mp4"), secret]
    batch = _client(tmp_path).execute_bulk(urls, "metadata", workers=2)
    assert batch.failed == 0
    shown = [web.url("/clip.mp4"), web.url("/other.mp4") + "?token=REDACTED"]
    assert [row.input for row in batch.rows] == shown
    assert sorted(p.name for p in (tmp_path / "out").iterdir() if p.is_dir()) == ["clip", "other"]
    text = batch.summary_path.read_text() + (tmp_path / "out" / "other" / "summary.json").read_text()
    assert "hunter22" not in text and "t0ps3cret" not in text

    web.etags["/other.mp4"] = '"v2"'
    again = _client(tmp_path).execute_bulk(urls, "metadata", workers=2)
    assert [row.status for row in again.rows] == ["skipped", "ok"]  # the changed ETag is done again
    assert web.bodies == Counter({"/clip.mp4": 1, "/other.mp4": 2})


# -- S3 -------------------------------------------------------------------------------------------


def test_an_s3_object_is_processed_and_a_missing_key_or_bucket_is_one_line(tmp_path, s3, scene_clip):
    client, bucket, _ = s3
    client.put_object(Bucket=bucket, Key="in/clip.mp4", Body=scene_clip.path.read_bytes())
    strict = _client(tmp_path, allow_private_networks=False, schemes={"http", "https", "s3"})  # the endpoint is the operator's
    result = strict.run(f"s3://{bucket}/in/clip.mp4", "metadata")
    assert result.ok and result.output_dir.name == "clip"
    assert result.result.input == f"s3://{bucket}/in/clip.mp4"
    assert result.result.digest == file_digest(scene_clip.path)
    with pytest.raises(SourceError) as caught:
        strict.run(f"s3://{bucket}/in/nope.mp4", "metadata")
    assert str(caught.value) == f"s3://{bucket}/in/nope.mp4: no such key"
    with pytest.raises(SourceError) as caught:
        strict.run("s3://no-such-bucket-here/clip.mp4", "metadata")
    assert str(caught.value) == "s3://no-such-bucket-here/clip.mp4: no such bucket"


def test_bulk_over_an_s3_prefix_processes_its_media_and_resumes_by_fingerprint(tmp_path, s3, scene_clip, gop_clip, tone_mp3):
    client, bucket, env = s3
    for key, clip in (("videos/a.mp4", scene_clip.path), ("videos/b.mp4", gop_clip.path), ("videos/sub/c.mp3", tone_mp3.path)):
        client.put_object(Bucket=bucket, Key=key, Body=clip.read_bytes())
    client.put_object(Bucket=bucket, Key="videos/notes.txt", Body=b"not media")
    client.put_object(Bucket=bucket, Key="elsewhere/d.mp4", Body=scene_clip.path.read_bytes())
    args = ("bulk", f"s3://{bucket}/videos/", "--ops", "metadata", "-o", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache"), "--workers", "2")
    proc = run_cli(*args, env=env)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((tmp_path / "out" / "batch_summary.json").read_text())
    assert summary["totals"]["ok"] == 3 and summary["totals"]["not_media"] == 1
    assert sorted(r["input"] for r in summary["files"]) == [f"s3://{bucket}/videos/a.mp4", f"s3://{bucket}/videos/b.mp4", f"s3://{bucket}/videos/sub/c.mp3"]
    assert summary["not_media"] == [f"s3://{bucket}/videos/notes.txt"]
    assert _frames(tmp_path / "out" / "b") == 100
    assert (tmp_path / "out" / "c" / "metadata.json").exists()

    client.put_object(Bucket=bucket, Key="videos/b.mp4", Body=scene_clip.path.read_bytes())  # changed: a new ETag
    again = run_cli(*args, env=env)
    assert again.returncode == 0, again.stderr
    rows = {r["input"].rsplit("/", 1)[-1]: r["status"] for r in json.loads((tmp_path / "out" / "batch_summary.json").read_text())["files"]}
    assert rows == {"a.mp4": "skipped", "b.mp4": "ok", "c.mp3": "skipped"}
    assert _frames(tmp_path / "out" / "b") == 90


def _frames(folder: Path) -> int:
    streams = json.loads((folder / "metadata.json").read_text())["streams"]
    return next(s["frame_count"] for s in streams if s["type"] == "video")


# -- bytes and file objects -----------------------------------------------------------------------


def test_bytes_and_file_objects_are_the_same_content_as_the_file(tmp_path, scene_clip):
    client = _client(tmp_path)
    on_disk = client.run(scene_clip.path, "metadata,scenes")
    assert not on_disk.result.ops["scenes"].cached
    data = scene_clip.path.read_bytes()
    from_bytes = client.run(data, "metadata,scenes", format_hint="mp4")
    assert from_bytes.result.digest == on_disk.result.digest
    assert all(stage.cached for stage in from_bytes.result.stages)  # the same cache keys: a full hit
    assert from_bytes.result.input == "<bytes .mp4>" and from_bytes.output_dir.name == "bytes"
    assert [c.frame for c in from_bytes.scenes.cuts] == [c.frame for c in on_disk.scenes.cuts] == [30, 60]

    from_stream = client.run(io.BytesIO(data), "metadata", format_hint="talk.mp4")
    assert from_stream.ok and from_stream.output_dir.name == "talk" and from_stream.result.input == "<stream talk.mp4>"
    with open(scene_clip.path, "rb") as handle:
        from_file = client.run(handle, "metadata")
    assert from_file.ok and from_file.result.digest == on_disk.result.digest
    assert from_file.output_dir.name == "scenes-" + from_file.output_dir.name.split("-")[-1]  # scenes/ is the file's own
    assert _spool_leftovers(tmp_path) == []


def test_bytes_without_a_cache_leave_no_spool_file(tmp_path, scene_clip):
    client = Client(use_cache=False, output_dir=tmp_path / "out")
    spool = client.runtime.sources.spool_dir
    assert client.run(scene_clip.path.read_bytes(), "metadata", format_hint="mp4").ok
    assert [p for p in spool.rglob("*") if p.is_file()] == []


def test_a_text_stream_or_an_oversized_one_is_refused(tmp_path, scene_clip):
    with pytest.raises(SourceError, match="a text stream: open the file in binary mode"):
        _client(tmp_path).run(io.StringIO("hello"), "metadata")
    with pytest.raises(SourceError, match="too large"):
        _client(tmp_path, max_bytes=1000).run(io.BytesIO(scene_clip.path.read_bytes()), "metadata")
    assert _spool_leftovers(tmp_path) == []


# -- local paths under a policy -------------------------------------------------------------------


def test_allowed_roots_admit_only_paths_that_resolve_under_them(tmp_path, scene_clip):
    root = tmp_path / "media"
    (root / "sub").mkdir(parents=True)
    inside = root / "sub" / "clip.mp4"
    inside.write_bytes(scene_clip.path.read_bytes())
    outside = tmp_path / "private" / "clip.mp4"
    outside.parent.mkdir()
    outside.write_bytes(scene_clip.path.read_bytes())
    (root / "link.mp4").symlink_to(outside)
    (root / "dirlink").symlink_to(outside.parent)
    client = _client(tmp_path, allowed_roots=(root,))

    assert client.run(inside, "metadata").ok
    assert client.run(root / "sub" / ".." / "sub" / "clip.mp4", "metadata").ok
    refused = [
        root / ".." / "private" / "clip.mp4",
        outside,
        root / "link.mp4",
        root / "dirlink" / "clip.mp4",
        tmp_path / "private" / "missing.mp4",  # the same answer whether or not it exists
        "/etc/passwd",
        "file:///etc/passwd",
    ]
    for path in refused:
        with pytest.raises(SourceError) as caught:
            client.run(path, "metadata")
        assert str(caught.value).endswith(": outside the allowed folders"), path
    with pytest.raises(SourceError, match="local paths are not allowed here"):
        _client(tmp_path, allowed_roots=()).run(inside, "metadata")


def test_a_scheme_outside_the_policy_is_refused(tmp_path):
    with pytest.raises(SourceError) as caught:
        _client(tmp_path, schemes={"https"}).run("http://example.org/clip.mp4", "metadata")
    assert str(caught.value) == "http://example.org/clip.mp4: scheme 'http' is not allowed (allowed: https)"
    with pytest.raises(SourceError, match="scheme 'memory' is not allowed"):
        _client(tmp_path).run("memory://clip.mp4", "metadata")


# -- the command line -----------------------------------------------------------------------------


def test_the_cli_takes_a_url(tmp_path, web):
    url = web.url("/clip.mp4")
    proc = run_cli("debug", url, "--ops", "metadata", "-o", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache"), "-q")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"{url} -> {tmp_path / 'out' / 'clip'}/")
    assert json.loads((tmp_path / "out" / "clip" / "metadata.json").read_text())["path"] == url
    missing = run_cli("debug", web.url("/gone.mp4"), "--ops", "metadata", "-o", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache"), "-q")
    assert missing.returncode == 1
    assert missing.stderr.strip() == f"error: {web.url('/gone.mp4')}: HTTP 404 Not Found"


# -- the checks themselves --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ip", "reason"),
    [
        ("127.0.0.1", "a loopback address"),
        ("::1", "a loopback address"),
        ("10.1.2.3", "a private address"),
        ("192.168.0.10", "a private address"),
        ("172.16.5.4", "a private address"),
        ("169.254.169.254", "a cloud metadata address"),
        ("169.254.10.10", "a link-local address"),
        ("100.64.0.1", "a shared (CGNAT) address"),
        ("0.0.0.0", "an unspecified address"),
        ("224.0.0.1", "a multicast address"),
        ("fd12:3456::1", "a private address"),
        ("fe80::1", "a link-local address"),
        ("::ffff:127.0.0.1", "a loopback address (inside an IPv6 address)"),
        ("64:ff9b::a00:1", "a private address (inside an IPv6 address)"),
        ("2002:c0a8:1::1", "a private address (inside an IPv6 address)"),
        ("93.184.216.34", None),
        ("2606:2800:220:1:248:1893:25c8:1946", None),
    ],
)
def test_forbidden_addresses(ip, reason):
    assert forbidden_address(ip) == reason


def test_redact_url():
    assert redact_url("https://u:p@h.example/a/b.mp4?X-Amz-Credential=AK&X-Amz-Date=1&sig=zz") == (
        "https://h.example/a/b.mp4?X-Amz-Credential=REDACTED&X-Amz-Date=1&sig=REDACTED"
    )
    assert redact_url("s3://bucket/key.mp4") == "s3://bucket/key.mp4"


def test_a_spooled_input_is_not_hashed_twice(tmp_path, web, monkeypatch):
    import video_extract.cache as cache

    reads: list = []
    real = cache._blake3_of
    monkeypatch.setattr(cache, "_blake3_of", lambda path, size: reads.append(str(path)) or real(path, size))
    assert _client(tmp_path).run(web.url("/clip.mp4"), "metadata").ok
    assert not [p for p in reads if "/spool/" in p]  # digested while downloading, never read back for it


def test_a_spec_file_may_name_its_inputs(tmp_path, web, scene_clip):
    folder = tmp_path / "job"
    folder.mkdir()
    (folder / "local.mp4").write_bytes(scene_clip.path.read_bytes())
    spec = folder / "spec.yaml"
    spec.write_text(f"inputs:\n  - local.mp4\n  - {web.url('/other.mp4')}\noutputs:\n  - metadata\n  - scenes\n")
    proc = run_cli("debug", "--spec", str(spec), "-o", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache"), "-q", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "out" / "local" / "scenes.json").exists()  # relative to the spec file, not the working directory
    assert (tmp_path / "out" / "other" / "scenes.json").exists()
    named = run_cli("debug", str(folder / "local.mp4"), "--spec", str(spec), "-o", str(tmp_path / "out2"), "--no-cache", "-q")
    assert named.returncode == 0 and sorted(p.name for p in (tmp_path / "out2").iterdir()) == ["local"]  # inputs given win
    spec.write_text("inputs: clip.mp4\noutputs: [metadata]\n")
    bad = run_cli("debug", "--spec", str(spec), "-o", str(tmp_path / "out3"), "-q")
    assert bad.returncode == 2 and bad.stderr.strip() == f"error: {spec}: 'inputs' must be a list of paths or URLs"


def test_an_input_named_by_its_caller_carries_that_name_in_results_rows_and_files(tmp_path, scene_clip):
    """``name``: a temporary copy (or a server's upload) shows as the file its owner knows, in the
    result, summary.json, metadata.json and a batch's rows; its folder is still named from its path."""
    import shutil

    copy = tmp_path / "tmp8f3a.mp4"
    shutil.copy(scene_clip.path, copy)
    client = Client(output_dir=tmp_path / "out", cache_dir=tmp_path / "cache")
    result = client.run(copy, "metadata,scenes", name="interview.mp4")
    assert result.result.input == "interview.mp4" and result.output_dir == tmp_path / "out" / "tmp8f3a"
    assert json.loads((result.output_dir / "summary.json").read_text())["input"] == "interview.mp4"
    assert json.loads((result.output_dir / "metadata.json").read_text())["path"] == "interview.mp4"
    done = [e for e in client.execute_streaming(copy, "metadata", name="interview.mp4") if e.type == "done"]
    assert done[0].input == "interview.mp4"

    batch = Client(output_dir=tmp_path / "bulk", cache_dir=tmp_path / "cache").execute_bulk(
        [copy], "metadata,scenes", workers=1, names={str(copy): "interview.mp4"}
    )
    assert [(r.input, r.status) for r in batch.rows] == [("interview.mp4", "ok")]
    written = json.loads((tmp_path / "bulk" / "batch_summary.json").read_text())["files"]
    assert written[0]["input"] == "interview.mp4"
    assert json.loads((tmp_path / "bulk" / "tmp8f3a" / "metadata.json").read_text())["path"] == "interview.mp4"
    again = Client(output_dir=tmp_path / "bulk", cache_dir=tmp_path / "cache").execute_bulk(
        [copy], "metadata,scenes", workers=1, names={str(copy): "interview.mp4"}
    )
    assert [r.status for r in again.rows] == ["skipped"]  # finished already, under that name
