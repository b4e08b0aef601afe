"""The connection level: uvicorn's settings, and the timeouts and size limits it lacks.

uvicorn (h11) parses HTTP strictly — a chunked body is read as a body, so a request hidden in
it is never answered; a bad ``Content-Length`` is a 400 — and gives us ``backlog``,
``limit_concurrency`` and a keep-alive timeout. It has no timeout for a client that connects
and sends its headers slowly or never, nor for a body that stops arriving, and it reads (and
drops) the rest of a body we already answered for as long as the client sends it. Here:

- ``TimedH11Protocol``: the request line and headers must arrive within ``header_timeout`` of
  the connection (or of the first byte of a request on a kept-alive one), else ``408`` and
  close; after we answered, a body still being sent is read for ``body_timeout`` at most.
- ``LimitsMiddleware``: a request with both ``Content-Length`` and ``Transfer-Encoding`` is
  refused and its connection closed (the framing a smuggling attempt relies on); a declared ``Content-Length`` over the limit is refused before a byte
  of the body is read; a body is counted as it arrives and refused (``413``) the moment it
  crosses the limit; a body that stalls for ``body_timeout`` is answered ``408``.
"""

from __future__ import annotations

import asyncio
import json
import socket

import h11
import uvicorn
from starlette.exceptions import HTTPException
from uvicorn.protocols.http.h11_impl import H11Protocol

from .settings import ServerSettings

UPLOAD_PATH = "/v1/uploads"
MULTIPART_SLACK = 64 * 1024  # a multipart upload's boundaries and part headers, beyond the file


def error_body(status: int, message: str) -> bytes:
    return json.dumps({"error": message, "status": status}).encode()


def _raw_response(status: int, reason: str, message: str) -> bytes:
    body = error_body(status, message)
    head = f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\nconnection: close\r\n\r\n"
    return head.encode() + body


class TimedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a header timeout, a bound on reading unwanted bodies, and JSON 400s."""

    header_timeout = 10.0
    linger_timeout = 30.0

    def connection_made(self, transport) -> None:  # type: ignore[override]
        self._header_timer: asyncio.TimerHandle | None = None
        self._linger_timer: asyncio.TimerHandle | None = None
        super().connection_made(transport)
        self._arm_header_timer()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.transport.is_closing():
            return
        if self.conn.their_state is h11.IDLE:  # a request has begun but its headers are not complete
            self._arm_header_timer()
        else:
            self._cancel(self._header_timer)
            self._header_timer = None
        if self.conn.our_state in (h11.DONE, h11.MUST_CLOSE) and self.conn.their_state is h11.SEND_BODY and self._linger_timer is None:
            # We answered already (413, 401...) and the client is still sending its body: that is
            # read and dropped, but not forever.
            self._linger_timer = self.loop.call_later(self.linger_timeout, self.transport.close)

    def on_response_complete(self) -> None:
        self._cancel(self._header_timer)
        self._header_timer = None
        super().on_response_complete()
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE and self.conn.trailing_data[0]:
            self._arm_header_timer()  # part of a pipelined request is already here: its headers are due

    def connection_lost(self, exc) -> None:
        self._cancel(self._header_timer)
        self._cancel(self._linger_timer)
        super().connection_lost(exc)

    def send_400_response(self, msg: str) -> None:
        self.transport.write(_raw_response(400, "Bad Request", f"malformed HTTP request: {msg.rstrip('.').lower()}"))
        self.transport.close()

    def _arm_header_timer(self) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            return
        if self.cycle is not None and not self.cycle.response_complete:
            return  # a response is still being written (pipelining): its own timers apply
        self.transport.write(_raw_response(408, "Request Timeout", f"the request headers did not arrive within {self.header_timeout:g} s"))
        self.transport.close()

    @staticmethod
    def _cancel(timer: asyncio.TimerHandle | None) -> None:
        if timer is not None:
            timer.cancel()


class LimitsMiddleware:
    """Body size limits (413) and a per-chunk body read timeout (408), for every request."""

    def __init__(self, app, settings: ServerSettings, on_reject=None):
        self.app = app
        self.settings = settings
        self.on_reject = on_reject or (lambda status: None)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        upload = scope["path"] == self.settings.root_path + UPLOAD_PATH or scope["path"] == UPLOAD_PATH
        limit = self.settings.max_upload_size + MULTIPART_SLACK if upload else self.settings.max_body_size
        shown = self.settings.max_upload_size if upload else limit
        what = "upload" if upload else "request body"
        declared = next((v for k, v in scope["headers"] if k == b"content-length"), None)
        if declared is not None and any(k == b"transfer-encoding" for k, _ in scope["headers"]):
            # Both framings at once: a proxy in front may read the body by the other one, and take
            # what we call the next request for part of this one (RFC 9112 6.1: reject, close).
            self.on_reject(400)
            return await _send_error(send, 400, "Content-Length and Transfer-Encoding in one request; send one of them", close=True)
        if declared is not None and int(declared) > limit:  # h11 has checked it is a number
            self.on_reject(413)
            return await _send_error(send, 413, f"{what} of {int(declared)} bytes is over this server's limit of {shown} bytes")
        received = 0
        finished = False
        timeout = self.settings.body_timeout

        async def limited_receive():
            nonlocal received, finished
            if finished:
                return await receive()  # the body is read: this waits for a disconnect, as long as it takes
            try:
                message = await asyncio.wait_for(receive(), timeout)
            except TimeoutError:
                self.on_reject(408)
                raise HTTPException(408, f"no part of the request body arrived for {timeout:g} s", headers={"connection": "close"}) from None
            if message["type"] != "http.request":
                finished = True
                return message
            received += len(message.get("body", b""))
            if received > limit:
                self.on_reject(413)
                raise HTTPException(413, f"{what} is over this server's limit of {shown} bytes")
            finished = not message.get("more_body", False)
            return message

        await self.app(scope, limited_receive, send)


async def _send_error(send, status: int, message: str, close: bool = False) -> None:
    body = error_body(status, message)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def protocol_for(settings: ServerSettings) -> type[TimedH11Protocol]:
    return type("TimedH11Protocol", (TimedH11Protocol,), {"header_timeout": settings.header_timeout, "linger_timeout": settings.body_timeout})


def uvicorn_config(app, settings: ServerSettings, log_level: str = "warning") -> uvicorn.Config:
    """uvicorn, set up for a shared service: a deep listen queue, a connection cap, timeouts."""
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        http=protocol_for(settings),
        ws="none",
        lifespan="on",
        backlog=settings.backlog,
        limit_concurrency=settings.max_connections,
        timeout_keep_alive=int(max(1, settings.keep_alive)),
        h11_max_incomplete_event_size=settings.max_header_size,
        root_path=settings.root_path,
        server_header=False,
        log_level=log_level,
        access_log=log_level in ("debug", "info"),
        timeout_graceful_shutdown=10,
    )


def bind(settings: ServerSettings) -> socket.socket:
    """The listening socket, bound now (so port 0 becomes a real port before the server starts)."""
    family, kind, proto, _, address = socket.getaddrinfo(settings.host, settings.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    sock.bind(address)
    sock.set_inheritable(True)
    return sock
