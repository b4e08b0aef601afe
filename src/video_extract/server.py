"""An optional HTTP front to ``Client.execute_streaming`` (standard library only).

    video-extract serve --port 8080 --output-dir /data/out
    curl -N -X POST localhost:8080/run -d '{"path": "/data/in/talk.mp4", "ops": ["metadata", "transcription"]}'

``POST /run`` streams the same JSON Lines events as ``perf --stream`` (chunked, one event per
line, flushed as it happens); ``GET /ops`` lists operations and parameters; ``GET /health``
answers ``{"ok": true}``. Inputs are paths on the server's filesystem: put this behind your
own authentication and upload service; it has neither.
"""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from video_extract.errors import VideoExtractError

log = logging.getLogger("video_extract")


class _Handler(BaseHTTPRequestHandler):
    server: ExtractServer
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # route through our logger, not stderr prints
        log.info("%s %s", self.address_string(), fmt % args)

    def _json(self, status: int, body) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):  # noqa: N802 - http.server's naming
        if self.path == "/health":
            self._json(200, {"ok": True})
        elif self.path == "/ops":
            self._json(200, json.loads(json.dumps(self.server.client.operations(), default=str)))
        else:
            self._json(404, {"error": f"no such endpoint: {self.path}; try GET /ops, GET /health, POST /run"})

    def do_POST(self):  # noqa: N802
        from video_extract.events import input_failed

        if self.path != "/run":
            self._json(404, {"error": f"no such endpoint: {self.path}"})
            return
        try:
            request = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
            path, ops = request["path"], request["ops"]
        except (ValueError, KeyError, TypeError):
            self._json(400, {"error": 'send JSON like {"path": "/data/clip.mp4", "ops": ["metadata", "scenes"]}'})
            return
        client = self.server.client
        try:
            specs = client.request(ops)
        except VideoExtractError as exc:
            self._json(400, {"error": str(exc)})
            return
        except Exception:  # noqa: BLE001 - any other shape of "ops" is a malformed request
            self._json(400, {"error": f"'ops' must be a list of operations or a comma-separated string, got {ops!r}"})
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for event in client.execute_streaming(path, specs):
                self._chunk(event.line() + "\n")
        except (BrokenPipeError, ConnectionResetError):
            return  # the client left; closing the stream ended the request
        except Exception as exc:  # noqa: BLE001 - report it in the stream, end the body properly
            message = str(exc) if isinstance(exc, VideoExtractError) else f"internal error: {type(exc).__name__}: {exc}"
            for event in input_failed(str(path), message):
                self._chunk(event.line() + "\n")
        self.wfile.write(b"0\r\n\r\n")

    def _chunk(self, text: str) -> None:
        data = text.encode()
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()


class ExtractServer(ThreadingHTTPServer):
    """One Client for the server's life: models stay loaded across requests."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], client):
        super().__init__(address, _Handler)
        self.client = client

    def serve_in_background(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve_forever, name="video-extract-server", daemon=True)
        thread.start()
        return thread
