"""Where media comes from: a local path, a URL (http, https, s3, any installed fsspec protocol),
raw bytes, or a binary file-like object.

A local file is read where it is: nothing is copied. Everything else is streamed once into a
spool file while its BLAKE3 digest is computed in the same pass, so the cache key stays the
content and no object is ever held whole in memory. The spool lives under the cache
(``{cache}/v1/spool/``): files are content-addressed (``{digest}{ext}``), written under a
unique temporary and linked into place, held by a shared ``flock`` while a request reads them,
and evicted least recently used above a size cap. Beside them, a source's fingerprint (its URL
with the ETag / Last-Modified / size its server reports) lets a repeat request skip the
download when the object has not changed. Without a cache, a spool file lives for one request.

A ``SourcePolicy`` says what a caller may name: which URL schemes, whether hosts on private
networks may be reached (checked on every address a host resolves to, at connection time, on
redirects too), which local folders, how large a download may get and how long a stalled one
may wait. The library and CLI default to a permissive policy (a user's own files and LAN);
a server passes a strict one.

Every failure is a ``SourceError``: one line naming the source (with credentials and query
secrets removed) and the cause (DNS failure, connection refused, HTTP 403/404, timeout, too
large, refused by the policy, no such S3 key or bucket).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import functools
import ipaddress
import json
import os
import re
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO, Literal
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import blake3
from pydantic import BaseModel, ConfigDict, field_validator

from video_extract.errors import InputError, missing_package
from video_extract.fsutil import human_size, real_path, writer_is_dead, writer_tag

CHUNK = 1 << 20
#: Schemes every policy may name by default (the server's list); the library and CLI also allow
#: any other installed fsspec protocol that reaches a remote store.
WEB_SCHEMES = frozenset({"http", "https"})
S3_SCHEMES = frozenset({"s3", "s3a"})
SERVER_SCHEMES = frozenset({"http", "https", "s3"})
#: fsspec protocols that read this machine (a path is the way to name a local file, under the
#: policy's roots) or wrap another URL: never a source scheme.
NOT_REMOTE = frozenset(
    "file local asynclocal memory dir blockcache cached filecache simplecache reference zip tar libarchive "
    "generic async_wrapper asyncwrapper jlab jupyter".split()
)
_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+)://")
_SECRET_PARAM = re.compile(r"sig|signature|token|secret|password|passwd|pwd|key|auth|credential|session|access", re.IGNORECASE)
#: Addresses of cloud instance metadata services, named as such in a refusal.
_METADATA = frozenset(ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200", "169.254.170.2"))
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_SHARED = ipaddress.ip_network("100.64.0.0/10")


class SourceError(InputError):
    """A source that cannot be fetched, or that the policy refuses: one line, the source and why."""


class SourcePolicy(BaseModel):
    """What a caller may name as a source.

    ``schemes``: allowed URL schemes (None: http, https, s3 and any other installed remote
    fsspec protocol). ``allow_private_networks``: whether a URL may reach loopback, private,
    link-local, shared (CGNAT), multicast or metadata addresses. ``allowed_roots``: None for
    any local path, folders that local paths must resolve under (symlinks resolved, ``..``
    collapsed), or ``()`` for no local paths at all. ``max_bytes``: the largest download or
    bytes source (None: no limit). ``connect_timeout`` / ``read_timeout``: seconds to connect,
    and the longest wait for the next piece of a download (a stalled server fails, never hangs).

    The default is the library's and the CLI's: a user's own files and LAN. ``strict()`` is
    the server's starting point.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    schemes: frozenset[str] | None = None
    allow_private_networks: bool = True
    allowed_roots: tuple[Path, ...] | None = None
    max_bytes: int | None = None
    connect_timeout: float = 30.0
    read_timeout: float = 60.0

    @field_validator("schemes")
    @classmethod
    def _lower(cls, value: frozenset[str] | None) -> frozenset[str] | None:
        return None if value is None else frozenset(s.lower().removesuffix("://") for s in value)

    @field_validator("max_bytes")
    @classmethod
    def _positive(cls, value: int | None) -> int | None:
        if value is not None and value <= 0:
            raise ValueError("max_bytes must be positive (or None for no limit)")
        return value

    @classmethod
    def strict(cls, **changes: Any) -> SourcePolicy:
        """http, https and s3 only; no private networks; no local paths (unless roots are given)."""
        return cls(**{"schemes": SERVER_SCHEMES, "allow_private_networks": False, "allowed_roots": (), **changes})

    def allows_scheme(self, scheme: str) -> bool:
        if scheme in NOT_REMOTE:
            return False
        if self.schemes is not None:
            return scheme in self.schemes
        if scheme in SERVER_SCHEMES or scheme in S3_SCHEMES:
            return True
        import fsspec

        return scheme in fsspec.available_protocols()

    def shown_schemes(self) -> str:
        return ", ".join(sorted(self.schemes)) if self.schemes is not None else "http, https, s3 and other remote fsspec protocols"


# -- naming a source without touching it --------------------------------------------------------

Kind = Literal["path", "url", "bytes", "stream"]
#: What ``Client`` accepts as a source.
SourceLike = str | os.PathLike | bytes | bytearray | memoryview | BinaryIO


@dataclass(frozen=True)
class Described:
    """What can be said about a source before reading it."""

    kind: Kind
    display: str  # how messages and results show it (a URL without its secrets)
    stem: str  # what its output folder is called (before collision handling)
    ext: str  # file extension for its spool file ("" when unknown)
    scheme: str | None = None
    path: Path | None = None  # a local file

    @property
    def remote(self) -> bool:
        return self.kind == "url"


def is_url(source: object) -> bool:
    """Whether ``source`` is a ``scheme://…`` string (``file://`` included)."""
    return isinstance(source, str) and _URL.match(source) is not None


def describe(source: object, format_hint: str | None = None) -> Described:
    """Classify a source and name it, without any I/O."""
    hint_name, hint_ext = _hint(format_hint)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return Described("bytes", f"<bytes {hint_name or hint_ext}>" if hint_name or hint_ext else "<bytes>", _stem(hint_name) or "bytes", hint_ext)
    if isinstance(source, str) and is_url(source):
        scheme = source.split("://", 1)[0].lower()
        if scheme == "file":
            return _local(_file_url_path(source), hint_ext)
        display = redact_url(source)
        last = unquote(PurePosixPath(urlsplit(source).path).name)
        ext = _ext(last) or hint_ext
        stem = _stem(hint_name) or _stem(last) or urlsplit(source).hostname or scheme
        return Described("url", display, stem, ext, scheme=scheme)
    if isinstance(source, (str, os.PathLike)):
        return _local(Path(source), hint_ext)
    if hasattr(source, "read"):
        name = getattr(source, "name", None)
        name = Path(name).name if isinstance(name, str) and name else None
        shown = hint_name or name or hint_ext
        return Described("stream", f"<stream {shown}>" if shown else "<stream>", _stem(hint_name or name) or "stream", hint_ext or _ext(name or ""))
    raise SourceError(f"not a source: {type(source).__name__} (give a path, a URL, bytes or a binary file object)")


def display_name(source: object) -> str:
    """How a source is shown in messages and results: a URL without credentials or query secrets."""
    try:
        return describe(source).display
    except SourceError:
        return f"<{type(source).__name__}>"


def redact_url(url: str) -> str:
    """``url`` with its user name and password dropped and secret-looking query values replaced
    (``sig``, ``token``, ``X-Amz-Signature``, ``key``, …), so it can be shown and logged."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url.split("://", 1)[0] + "://<unparsable URL>"
    netloc = parts.netloc.rsplit("@", 1)[-1]
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, "REDACTED" if _SECRET_PARAM.search(k) else v) for k, v in pairs], safe="/:")
    shown = urlunsplit((parts.scheme, netloc, parts.path, query, ""))
    return shown if shown.isprintable() else repr(shown)


def _local(path: Path, ext: str) -> Described:
    return Described("path", str(path), path.stem, path.suffix.lower() or ext, path=path)


def _file_url_path(url: str) -> Path:
    from urllib.request import url2pathname

    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise SourceError("a file:// URL must name a file on this machine", redact_url(url))
    return Path(url2pathname(parts.path))


def _hint(format_hint: str | None) -> tuple[str | None, str]:
    """``"mp4"`` / ``".mp4"`` (an extension) or ``"clip.mp4"`` (a name) -> (name, ext)."""
    if not format_hint:
        return None, ""
    text = format_hint.strip()
    if "." in text.strip(".") or "/" in text:
        name = PurePosixPath(text).name
        return name, _ext(name)
    return None, "." + text.lstrip(".").lower() if text.strip(".") else ""


def _ext(name: str) -> str:
    suffix = PurePosixPath(name).suffix.lower()
    return suffix if re.fullmatch(r"\.[a-z0-9]{1,8}", suffix) else ""


def _stem(name: str | None) -> str:
    return PurePosixPath(name).stem if name else ""


# -- private networks ---------------------------------------------------------------------------


def forbidden_address(ip: str) -> str | None:
    """Why a URL may not reach ``ip`` when private networks are refused (None: a public address)."""
    try:
        addr = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return "an unparsable address"
    if isinstance(addr, ipaddress.IPv6Address):
        embedded = addr.ipv4_mapped or addr.sixtofour or (ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF) if addr in _NAT64 else None)
        if embedded is not None:
            inner = forbidden_address(str(embedded))
            return f"{inner} (inside an IPv6 address)" if inner else None
    if addr in _METADATA:
        return "a cloud metadata address"
    for test, what in (
        ("is_loopback", "a loopback address"),
        ("is_unspecified", "an unspecified address"),
        ("is_link_local", "a link-local address"),
        ("is_multicast", "a multicast address"),
    ):
        if getattr(addr, test):
            return what
    if isinstance(addr, ipaddress.IPv4Address) and addr in _SHARED:
        return "a shared (CGNAT) address"
    if addr.is_private:
        return "a private address"
    if not addr.is_global or addr.is_reserved:
        return "a non-public address"
    return None


class _Refused(OSError):
    """Raised inside the HTTP client (resolver, socket factory, redirect hook): the policy said no.

    An OSError so that aiohttp and aiohappyeyeballs carry it as the cause of their own errors;
    ``explain`` finds it in the chain and shows its message alone."""


def default_lookup(host: str, port: int, family: int = 0) -> list[str]:
    """Every address ``host`` resolves to (the system resolver)."""
    infos = socket.getaddrinfo(host, port, family=family, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


# -- what a fetched source leaves --------------------------------------------------------------


@dataclass
class Opened:
    """A source ready to read: ``path`` is a local file (the source itself, or its spool file)."""

    path: Path
    described: Described
    identity: str  # who owns its output folder: a local file's resolved path, a URL, bytes:{digest}
    digest: str | None = None  # BLAKE3, when computed while spooling
    size: int | None = None
    fingerprint: str | None = None  # the remote object's ETag / Last-Modified / size, when it has them
    downloaded: bool = False  # False: local, or served from the spool by its fingerprint
    _release: Callable[[], None] | None = field(default=None, repr=False)

    @property
    def display(self) -> str:
        return self.described.display

    @property
    def stem(self) -> str:
        return self.described.stem

    @property
    def local(self) -> bool:
        return self.described.kind == "path"

    def release(self) -> None:
        """Let the spool file go (eviction may take it; a one-request spool file is deleted)."""
        release, self._release = self._release, None
        if release is not None:
            release()


class Sources:
    """Opens sources under one policy, spooling what is not a local file.

    ``spool_dir``: where spool files and fingerprints persist (under the cache), or None for a
    private temporary folder whose files live for one request. ``spool_max_bytes``: the LRU cap
    of a persistent spool. ``lookup``: how host names are resolved (a test may map a name).
    """

    def __init__(self, policy: SourcePolicy | None = None, spool_dir: str | Path | None = None, spool_max_bytes: int | None = None):
        self.policy = policy or SourcePolicy()
        self.persistent = spool_dir is not None
        self._spool_dir = Path(spool_dir) if spool_dir is not None else None
        self.spool_max_bytes = spool_max_bytes
        #: Test hooks: how host names resolve, and why an address is refused (None: allowed).
        self.lookup: Callable[..., list[str]] = default_lookup
        self.forbidden: Callable[[str], str | None] = forbidden_address
        self._filesystems: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._temp: tempfile.TemporaryDirectory | None = None

    # -- public -------------------------------------------------------------------------------

    def open(self, source: object, format_hint: str | None = None) -> Opened:
        """Check ``source`` against the policy and make it a local file; raises SourceError (or
        InputError for a local file) naming the source and the cause."""
        described = describe(source, format_hint)
        if described.kind == "path":
            assert described.path is not None
            return self._open_local(described.path, described)
        if described.kind == "bytes":
            return self._open_bytes(source, described)  # type: ignore[arg-type]
        if described.kind == "stream":
            return self._open_stream(source, described)
        return self._open_url(str(source), described)

    def fingerprint(self, url: str) -> str | None:
        """The remote object's fingerprint now (one metadata request), or None when its server
        gives neither ETag nor Last-Modified."""
        described = self._check_url(url, describe(url))
        fs, path = self._filesystem(described.scheme or "", url)
        return fingerprint_of(self._info(fs, path, url, described))

    def is_prefix(self, url: str) -> bool:
        """Whether a URL names a folder of objects (an S3 prefix, a listing page ending in ``/``)."""
        described = describe(url)
        if not url.endswith("/") and (described.scheme in WEB_SCHEMES or described.ext):
            return False  # a web page is only a folder when it says so; a name with an extension is a file
        self._check_url(url, described)
        if url.endswith("/"):
            return True
        fs, path = self._filesystem(described.scheme or "", url)
        try:
            return bool(fs.isdir(path))
        except Exception as exc:  # noqa: BLE001 - mapped to one line
            raise SourceError(explain(exc, url, self.policy), described.display) from None

    def listing(self, prefix: str) -> list[tuple[str, str | None]]:
        """Every object under ``prefix`` (recursively) as (URL, fingerprint), sorted."""
        described = self._check_url(prefix, describe(prefix))
        scheme = described.scheme or ""
        fs, path = self._filesystem(scheme, prefix)
        try:
            found = fs.find(path, detail=True)
        except Exception as exc:  # noqa: BLE001 - mapped to one line
            raise SourceError(explain(exc, prefix, self.policy), described.display) from None
        rows = []
        for name, info in sorted(found.items()):
            if info.get("type", "file") != "file":
                continue
            url = name if is_url(name) else f"{scheme}://{name.lstrip('/')}"
            rows.append((url, fingerprint_of(info)))
        return rows

    def close(self) -> None:
        if self._temp is not None:
            self._temp.cleanup()
            self._temp = None

    # -- local ---------------------------------------------------------------------------------

    def _open_local(self, path: Path, described: Described) -> Opened:
        roots = self.policy.allowed_roots
        if roots is None:
            return Opened(path=path, described=described, identity=str(real_path(path)))
        if not roots:
            raise SourceError("local paths are not allowed here (give a URL or an upload)", path)
        resolved = real_path(path.expanduser())  # a loop stays inside the folder it is in, and opens as nothing
        if not any(resolved.is_relative_to(real_path(Path(root).expanduser())) for root in roots):
            raise SourceError("outside the allowed folders", path)
        return Opened(path=resolved, described=described, identity=str(resolved))

    # -- bytes and streams ---------------------------------------------------------------------

    def _open_bytes(self, data: bytes | bytearray | memoryview, described: Described) -> Opened:
        view = memoryview(data).cast("B")
        self._check_size(view.nbytes, described)
        hasher = blake3.blake3(max_threads=blake3.blake3.AUTO) if view.nbytes >= 1 << 20 else blake3.blake3()
        digest = hasher.update(view).hexdigest()
        held = self._existing(digest, described.ext) if self.persistent else None
        if held is not None and os.fstat(held[1]).st_size == view.nbytes:
            return self._opened(held, described, f"bytes:{digest}", digest, view.nbytes, None, downloaded=False)
        if held is not None:  # damaged (a different size than its name says): replaced
            os.close(held[1])
            held[0].unlink(missing_ok=True)
        tmp = self._new_temporary()
        try:
            with open(tmp, "wb") as out:
                out.write(view)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return self._keep(tmp, described, f"bytes:{digest}", digest, view.nbytes, None)

    def _open_stream(self, stream: Any, described: Described) -> Opened:
        def chunks() -> Iterator[bytes]:
            while True:
                chunk = stream.read(CHUNK)
                if isinstance(chunk, str):
                    raise SourceError("a text stream: open the file in binary mode ('rb')", described.display)
                if not chunk:
                    return
                yield chunk

        tmp, digest, size = self._spool(chunks(), described, expected=None)
        return self._keep(tmp, described, f"stream:{digest}", digest, size, None)

    # -- URLs ----------------------------------------------------------------------------------

    def _check_url(self, url: str, described: Described) -> Described:
        """The policy's checks that need no network: the scheme, a literal address. (A URL never
        goes through fsspec's chaining, ``a::b``: its filesystem is picked by its scheme alone.)"""
        scheme = described.scheme or ""
        if described.kind != "url":
            raise SourceError("not a URL", described.display)
        if not self.policy.allows_scheme(scheme):
            raise SourceError(f"scheme '{scheme}' is not allowed (allowed: {self.policy.shown_schemes()})", described.display)
        if not self.policy.allow_private_networks:
            if scheme in WEB_SCHEMES:
                host = urlsplit(url).hostname or ""
                try:
                    ipaddress.ip_address(host.split("%", 1)[0])
                except ValueError:
                    pass  # a name: checked on every address it resolves to, when connecting
                else:
                    reason = self.forbidden(host)
                    if reason:
                        raise SourceError(f"{host} is {reason}; private networks are not allowed", described.display)
            elif scheme not in S3_SCHEMES:  # S3's endpoint is the operator's configuration, not the caller's
                raise SourceError(
                    f"{scheme}:// cannot be checked for private addresses; with private networks refused only http, https and s3 are accepted",
                    described.display,
                )
        return described

    def _open_url(self, url: str, described: Described) -> Opened:
        self._check_url(url, described)
        fs, path = self._filesystem(described.scheme or "", url)
        key = blake3.blake3(url.encode()).hexdigest()
        with self._url_lock(key):
            info = self._info(fs, path, url, described)
            if info.get("type") == "directory":
                raise SourceError("names a folder of objects, not one file (use bulk to process a prefix)", described.display)
            size = info.get("size")
            self._check_size(size, described)
            fingerprint = fingerprint_of(info)
            if fingerprint and self.persistent:
                reused = self._reuse(key, fingerprint, described)
                if reused is not None:
                    return reused
            tmp, digest, got = self._spool(self._remote_chunks(fs, path, url, described, size), described, expected=size)
            opened = self._keep(tmp, described, described.display, digest, got, fingerprint)
            if fingerprint and self.persistent:
                self._write_record(key, {"source": described.display, "fingerprint": fingerprint, "file": opened.path.name, "digest": digest, "size": got})
        return opened

    def _info(self, fs: Any, path: str, url: str, described: Described) -> dict:
        try:
            return dict(fs.info(path))
        except Exception as exc:  # noqa: BLE001 - every library's failure becomes one line
            raise SourceError(explain(exc, url, self.policy), described.display) from None

    def _remote_chunks(self, fs: Any, path: str, url: str, described: Described, size: int | None) -> Iterator[bytes]:
        try:
            if described.scheme in WEB_SCHEMES:
                from fsspec.implementations.http import HTTPStreamFile

                # One streaming GET (no range requests, no second HEAD); identity: the bytes as stored.
                session = _sync(fs, fs.set_session)
                handle = HTTPStreamFile(fs, path, mode="rb", loop=fs.loop, session=session, headers={"Accept-Encoding": "identity"})
            else:
                handle = fs.open(path, "rb", block_size=8 * CHUNK, cache_type="none", **({"size": size} if size is not None else {}))
            with handle:
                while chunk := handle.read(8 * CHUNK if described.scheme not in WEB_SCHEMES else CHUNK):
                    yield chunk
        except SourceError:
            raise
        except Exception as exc:  # noqa: BLE001 - every library's failure becomes one line
            raise SourceError(explain(exc, url, self.policy), described.display) from None

    def _filesystem(self, scheme: str, url: str) -> tuple[Any, str]:
        """An fsspec filesystem for ``url`` under this policy, and the path within it. http(s)
        and S3 get one each per ``Sources`` (their connection pools reused); another protocol
        gets what its URL configures (a host, a user), through fsspec's own instance cache. The
        filesystem is picked by the scheme alone: a URL never goes through fsspec's chaining."""
        import fsspec

        try:
            if scheme in WEB_SCHEMES or scheme in S3_SCHEMES:
                with self._lock:
                    fs = self._filesystems.get(scheme)
                    if fs is None:
                        fs = self._filesystems[scheme] = self._make_filesystem(scheme)
                return fs, (url if scheme in WEB_SCHEMES else fs._strip_protocol(url))
            cls = fsspec.get_filesystem_class(scheme)
            return cls(**cls._get_kwargs_from_urls(url)), cls._strip_protocol(url)
        except ImportError as exc:
            if scheme in S3_SCHEMES:
                raise SourceError(missing_package("s3fs", f"{scheme}:// sources", "s3"), redact_url(url)) from None
            raise SourceError(f"reading {scheme}:// needs a package that is not installed ({exc})", redact_url(url)) from None
        except ValueError as exc:
            raise SourceError(f"unknown scheme '{scheme}' ({exc})", redact_url(url)) from None

    def _make_filesystem(self, scheme: str) -> Any:
        import fsspec

        policy = self.policy
        if scheme in WEB_SCHEMES:
            from fsspec.implementations.http import HTTPFileSystem

            return HTTPFileSystem(get_client=self._http_client, skip_instance_cache=True)
        fs = fsspec.get_filesystem_class(scheme)(
            use_listings_cache=False,  # an object's ETag is asked fresh each time
            skip_instance_cache=True,
            config_kwargs={"connect_timeout": policy.connect_timeout, "read_timeout": policy.read_timeout, "retries": {"max_attempts": 2}},
        )
        fs.retries = 2  # s3fs's own retries (5 by default) would multiply a stalled read's wait
        return fs

    async def _http_client(self, **kwargs: Any) -> Any:
        """The aiohttp session of the http(s) filesystem: its resolver and socket factory refuse
        private addresses at connection time (every address, on every redirect and re-resolution),
        and a redirect to a scheme the policy does not allow is refused."""
        import aiohttp

        policy = self.policy
        connector = aiohttp.TCPConnector(
            resolver=_guarded_resolver()(self),
            socket_factory=None if policy.allow_private_networks else self._guarded_socket,
        )
        trace = aiohttp.TraceConfig()
        trace.on_request_redirect.append(self._on_redirect)
        timeout = aiohttp.ClientTimeout(total=None, connect=policy.connect_timeout, sock_connect=policy.connect_timeout, sock_read=policy.read_timeout)
        return aiohttp.ClientSession(connector=connector, timeout=timeout, trace_configs=[trace], **kwargs)

    async def _on_redirect(self, session: Any, context: Any, params: Any) -> None:
        from yarl import URL

        location = params.response.headers.get("Location") or ""
        target = params.url.join(URL(location)) if location else params.url
        scheme = (target.scheme or "").lower()
        if scheme not in WEB_SCHEMES or not self.policy.allows_scheme(scheme):
            raise _Refused(f"redirected to a {scheme or 'scheme-less'} URL, which is not allowed")
        if not self.policy.allow_private_networks and target.host:
            with contextlib.suppress(ValueError):
                ipaddress.ip_address(target.host.split("%", 1)[0])
                reason = self.forbidden(target.host)
                if reason:
                    raise _Refused(f"redirected to {target.host}, {reason}; private networks are not allowed")

    def _guarded_socket(self, addr_info: tuple) -> socket.socket:
        """aiohttp's socket factory when private networks are refused: the last check, on the
        very address about to be connected (IP literals and redirects included)."""
        family, type_, proto, _, address = addr_info
        reason = self.forbidden(str(address[0]))
        if reason:
            raise _Refused(errno.EACCES, f"{address[0]} is {reason}; private networks are not allowed")
        return socket.socket(family=family, type=type_, proto=proto)

    # -- the spool -----------------------------------------------------------------------------

    @property
    def spool_dir(self) -> Path:
        if self._spool_dir is not None:
            return self._spool_dir
        with self._lock:
            if self._temp is None:
                self._temp = tempfile.TemporaryDirectory(prefix="video-extract-spool-")
        return Path(self._temp.name)

    def _check_size(self, size: int | None, described: Described) -> None:
        limit = self.policy.max_bytes
        if size is not None and limit is not None and size > limit:
            raise SourceError(f"too large: {human_size(size)}, the limit is {human_size(limit)}", described.display)

    def _new_temporary(self) -> Path:
        folder = self.spool_dir / "tmp"
        folder.mkdir(parents=True, exist_ok=True)
        return folder / f"spool.{writer_tag()}.tmp"  # named for fsutil.writer_is_dead: a dead writer's is swept

    def _spool(self, chunks: Iterator[bytes], described: Described, expected: int | None) -> tuple[Path, str, int]:
        """Write ``chunks`` to a new temporary while hashing them; stops at the size limit. A
        failed or interrupted download leaves nothing behind."""
        limit = self.policy.max_bytes
        hasher = blake3.blake3()
        size = 0
        tmp = self._new_temporary()
        try:
            with open(tmp, "wb") as out:
                for chunk in chunks:
                    size += len(chunk)
                    if limit is not None and size > limit:
                        raise SourceError(f"too large: more than the limit of {human_size(limit)} (download stopped)", described.display)
                    hasher.update(chunk)
                    out.write(chunk)
            if expected is not None and size != expected:
                raise SourceError(f"the download ended after {size} of {expected} bytes", described.display)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return tmp, hasher.hexdigest(), size

    def _file_path(self, digest: str, ext: str) -> Path:
        return self.spool_dir / "files" / digest[:2] / f"{digest}{ext}"

    def _keep(self, tmp: Path, described: Described, identity: str, digest: str, size: int, fingerprint: str | None) -> Opened:
        """Make a finished temporary the spool file of its content (or use the one already there)."""
        if not self.persistent:  # this request's own copy, named with its extension (some formats are probed by it)
            own = self.spool_dir / f"{digest}.{writer_tag()}{described.ext}"
            os.rename(tmp, own)
            return Opened(own, described, identity, digest, size, fingerprint, downloaded=True, _release=lambda: own.unlink(missing_ok=True))
        final = self._file_path(digest, described.ext)
        final.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_RDONLY)
        fcntl.flock(fd, fcntl.LOCK_SH)  # held on the inode: the linked name is leased from its first moment
        try:
            for _ in range(5):
                try:
                    _link_new(tmp, final)  # never replaces: a reader of an existing copy keeps its file
                    break
                except FileExistsError:
                    held = _lease(final)
                    if held is not None:
                        os.close(fd)
                        fd = held
                        break  # the same content is already there (a concurrent download): use it
            else:
                raise SourceError("the spool file keeps disappearing (another process evicting it?)", described.display)
        except BaseException:
            os.close(fd)
            raise
        finally:
            tmp.unlink(missing_ok=True)
        opened = self._opened((final, fd), described, identity, digest, size, fingerprint, downloaded=True)
        self.evict()
        return opened

    def _existing(self, digest: str, ext: str) -> tuple[Path, int] | None:
        final = self._file_path(digest, ext)
        fd = _lease(final)
        return None if fd is None else (final, fd)

    def _opened(self, held: tuple[Path, int], described: Described, identity: str, digest: str, size: int, fingerprint: str | None, downloaded: bool) -> Opened:
        path, fd = held
        with contextlib.suppress(OSError):  # the LRU clock is the access time; mtime (the digest memo's key) stays
            st = os.stat(path)
            os.utime(path, ns=(time.time_ns(), st.st_mtime_ns))
        return Opened(path, described, identity, digest, size, fingerprint, downloaded=downloaded, _release=lambda: os.close(fd))

    def _reuse(self, key: str, fingerprint: str, described: Described) -> Opened | None:
        record = self._read_record(key)
        if not record or record.get("fingerprint") != fingerprint:
            return None
        digest, name = str(record.get("digest", "")), str(record.get("file", ""))
        path = self._file_path(digest, name[len(digest) :]) if name.startswith(digest) and digest else None
        fd = _lease(path) if path is not None else None
        if fd is None:
            return None
        if os.fstat(fd).st_size != record.get("size"):
            os.close(fd)
            return None  # damaged: download again
        return self._opened((path, fd), described, described.display, digest, int(record["size"]), fingerprint, downloaded=False)  # type: ignore[arg-type]

    def _record_path(self, key: str) -> Path:
        return self.spool_dir / "sources" / key[:2] / f"{key}.json"

    def _read_record(self, key: str) -> dict | None:
        try:
            data = json.loads(self._record_path(key).read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def _write_record(self, key: str, record: dict) -> None:
        path = self._record_path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{writer_tag()}.tmp")
        try:
            tmp.write_text(json.dumps(record))
            os.replace(tmp, path)
        except OSError:
            tmp.unlink(missing_ok=True)  # a fingerprint is an optimisation: without it, the next request downloads

    @contextlib.contextmanager
    def _url_lock(self, key: str) -> Iterator[None]:
        """One download of a URL at a time per spool (the second finds the first's spool file)."""
        if not self.persistent:
            yield
            return
        path = self.spool_dir / "locks" / f"{key[:3]}.lock"  # 4096 stripes: a bounded number of lock files
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def evict(self) -> tuple[int, int]:
        """Remove least recently used spool files no request holds until the spool fits its cap,
        leftovers of dead writers, and fingerprints whose file is gone; (files, bytes) removed."""
        if not self.persistent:
            return 0, 0
        for leftover in (self.spool_dir / "tmp").glob("spool.*.tmp"):
            if writer_is_dead(leftover):
                leftover.unlink(missing_ok=True)
        if self.spool_max_bytes is None:
            return 0, 0
        files = []
        for path in (self.spool_dir / "files").glob("*/*"):
            with contextlib.suppress(OSError):
                st = path.stat()
                files.append((st.st_atime_ns, st.st_size, path))
        total = sum(size for _, size, _ in files)
        if total <= self.spool_max_bytes:
            return 0, 0
        removed = freed = 0
        for _, size, path in sorted(files):
            if total <= self.spool_max_bytes * 0.9:
                break
            if _remove_unleased(path):
                total -= size
                removed += 1
                freed += size
        for record in (self.spool_dir / "sources").glob("*/*.json"):
            with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                data = json.loads(record.read_text())
                if not (self.spool_dir / "files" / str(data["digest"])[:2] / str(data["file"])).exists():
                    record.unlink()
        return removed, freed


def _link_new(tmp: Path, final: Path) -> None:
    """Give ``tmp`` the name ``final`` unless that exists (FileExistsError). A hard link where the
    filesystem has them; elsewhere a rename, checked first (a race there only replaces a file
    with the same bytes)."""
    try:
        os.link(tmp, final)
    except FileExistsError:
        raise
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
            raise
        if final.exists():
            raise FileExistsError(errno.EEXIST, "exists", str(final)) from None
        os.rename(tmp, final)


def _lease(path: Path) -> int | None:
    """A shared lock on the spool file at ``path`` (eviction skips it), or None when it is gone."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except (FileNotFoundError, NotADirectoryError):
        return None
    fcntl.flock(fd, fcntl.LOCK_SH)
    try:  # an evictor unlinks while holding the lock exclusively: ours may guard a removed file
        if os.fstat(fd).st_ino == os.stat(path).st_ino:
            return fd
    except FileNotFoundError:
        pass
    os.close(fd)
    return None


def _remove_unleased(path: Path) -> bool:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return False  # a request is reading it
    try:
        path.unlink()
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def fingerprint_of(info: dict) -> str | None:
    """A remote object's identity from its metadata (ETag, Last-Modified, size), or None when the
    store reports neither a tag nor a modification time (the object is then downloaded each time)."""
    lower = {str(k).lower(): v for k, v in info.items()}
    tag = next((lower[k] for k in ("etag", "md5hash", "generation", "version_id", "versionid", "content-md5") if lower.get(k)), None)
    modified = next((lower[k] for k in ("last-modified", "lastmodified", "last_modified", "mtime", "updated", "modified") if lower.get(k)), None)
    if tag is None and modified is None:
        return None
    if isinstance(modified, datetime):  # a listing and a HEAD may give one instant in two time zones
        modified = (modified if modified.tzinfo else modified.replace(tzinfo=UTC)).astimezone(UTC).isoformat()
    return json.dumps({"tag": str(tag) if tag else None, "modified": str(modified) if modified else None, "size": lower.get("size")}, sort_keys=True)


# -- the HTTP client's guards ------------------------------------------------------------------


@functools.cache
def _guarded_resolver() -> type:
    """The resolver class, made on first use: ``aiohttp`` is imported only by a process that fetches a URL."""
    from aiohttp.abc import AbstractResolver

    class GuardedResolver(AbstractResolver):
        """Resolves through ``Sources.lookup`` and refuses a host any of whose addresses is private
        (when the policy says so): the addresses checked are the ones connected to, so a name that
        re-resolves to 127.0.0.1 (DNS rebinding) is caught too."""

        def __init__(self, sources: Sources):
            self.sources = sources

        async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET) -> list[dict]:
            loop = asyncio.get_running_loop()
            addresses = await loop.run_in_executor(None, self.sources.lookup, host, port, family)
            if not self.sources.policy.allow_private_networks:
                for ip in addresses:
                    reason = self.sources.forbidden(ip)
                    if reason:
                        raise _Refused(errno.EACCES, f"{host} resolves to {ip}, {reason}; private networks are not allowed")
            return [
                {
                    "hostname": host,
                    "host": ip,
                    "port": port,
                    "family": socket.AF_INET6 if ":" in ip else socket.AF_INET,
                    "proto": 0,
                    "flags": socket.AI_NUMERICHOST,
                }
                for ip in addresses
            ]

        async def close(self) -> None:
            return None

    return GuardedResolver


def _sync(fs: Any, coroutine_function: Callable) -> Any:
    from fsspec.asyn import sync

    return sync(fs.loop, coroutine_function)


# -- errors as one line --------------------------------------------------------------------------


def explain(exc: BaseException, url: str, policy: SourcePolicy) -> str:
    """One line saying why fetching ``url`` failed, from whatever aiohttp, fsspec or botocore
    raised (the cause chain is searched); never the raw text of a URL with its secrets."""
    chain = list(_chain(exc))
    for item in chain:
        if isinstance(item, _Refused):
            return item.strerror or str(item)
    try:
        import aiohttp
    except ImportError:  # pragma: no cover - aiohttp is a dependency
        aiohttp = None  # type: ignore[assignment]
    host = urlsplit(url).hostname or ""
    for item in chain:
        if aiohttp is not None:
            if isinstance(item, aiohttp.ClientResponseError):
                return _http_status(item.status, item.message)
            if isinstance(item, aiohttp.ClientConnectorDNSError):
                why = item.os_error.strerror if isinstance(item.os_error, OSError) and item.os_error.strerror else "no such host"
                return f"cannot resolve host {host} ({why})"
            if isinstance(item, aiohttp.ClientConnectorError):
                if isinstance(item.os_error, ConnectionRefusedError) or "refused" in str(item.os_error).lower():
                    return f"connection refused by {host}:{item.port}"
                return f"cannot connect to {host}:{item.port} ({_scrub(item.os_error.strerror or str(item.os_error), url)})"
            if isinstance(item, (aiohttp.ServerTimeoutError, aiohttp.ConnectionTimeoutError, aiohttp.SocketTimeoutError)):
                return _timeout(item, policy)
            if isinstance(item, aiohttp.ClientPayloadError):
                return "the connection closed before the whole file arrived"
            if isinstance(item, aiohttp.ServerDisconnectedError):
                return "the server closed the connection"
            if isinstance(item, aiohttp.TooManyRedirects):
                return "too many redirects"
            if isinstance(item, aiohttp.NonHttpUrlRedirectClientError):
                return "redirected to a URL that is not http or https, which is not allowed"
            if isinstance(item, aiohttp.InvalidUrlClientError):
                return "not a valid URL"
        code = _boto_code(item)
        if code:
            return _s3_error(code, item)
        name = type(item).__name__
        if isinstance(item, (TimeoutError, asyncio.TimeoutError)) or name in ("FSTimeoutError", "ReadTimeoutError", "ConnectTimeoutError"):
            return _timeout(item, policy)
        if name == "EndpointConnectionError":
            return "cannot connect to the storage endpoint"
        if name in ("NoCredentialsError", "PartialCredentialsError"):
            return "no credentials for this store (set AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or a profile)"
    first = chain[0]
    for item in chain:  # s3fs's own translations: FileNotFoundError("The specified bucket does not exist")
        if isinstance(item, FileNotFoundError):
            text = str(item.args[0]) if item.args else ""
            if "does not exist" in text:
                return f"not found ({_scrub(text, url)})"
            return "no such key" if url.split("://", 1)[0].lower() in S3_SCHEMES else "not found"
        if isinstance(item, PermissionError):
            return "access denied"
    text = _scrub(str(first).splitlines()[0] if str(first) else "", url)
    return f"{type(first).__name__}: {text}" if text else type(first).__name__


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    item: BaseException | None = exc
    while item is not None and id(item) not in seen:
        seen.add(id(item))
        yield item
        os_error = getattr(item, "os_error", None)
        if isinstance(os_error, BaseException) and id(os_error) not in seen:
            yield os_error
            seen.add(id(os_error))
        item = item.__cause__ or item.__context__


def _http_status(status: int, reason: str | None) -> str:
    meaning = {401: "authentication required", 403: "access denied", 404: "not found", 410: "gone", 429: "too many requests"}.get(status)
    text = f"HTTP {status} {reason}" if reason else f"HTTP {status}"
    return f"{text} ({meaning})" if meaning and meaning.lower() != (reason or "").lower() else text


def _timeout(item: BaseException, policy: SourcePolicy) -> str:
    name = type(item).__name__
    if "Connect" in name:
        return f"timed out connecting (after {policy.connect_timeout:g} s)"
    return f"timed out: no data for {policy.read_timeout:g} s"


def _boto_code(item: BaseException) -> str | None:
    response = getattr(item, "response", None)
    if isinstance(response, dict):
        code = (response.get("Error") or {}).get("Code")
        return str(code) if code else None
    return None


def _s3_error(code: str, item: BaseException) -> str:
    known = {
        "NoSuchKey": "no such key",
        "404": "not found",
        "NoSuchBucket": "no such bucket",
        "AccessDenied": "access denied",
        "403": "access denied",
        "InvalidAccessKeyId": "the access key is not valid",
        "SignatureDoesNotMatch": "the secret key does not match",
        "ExpiredToken": "the credentials have expired",
    }
    return known.get(code) or f"S3 error {code}"


def _scrub(text: str, url: str) -> str:
    """``text`` with ``url`` (and its password and secret query values) replaced by its redacted form."""
    text = " ".join(text.split())
    text = text.replace(url, redact_url(url))
    parts = urlsplit(url)
    secrets = [parts.password or "", parts.username or ""]
    secrets += [v for k, v in parse_qsl(parts.query) if _SECRET_PARAM.search(k)]
    for secret in sorted((s for s in secrets if len(s) >= 3), key=len, reverse=True):
        text = text.replace(secret, "REDACTED")
    return text


__all__ = ["Opened", "SourceError", "SourceLike", "SourcePolicy", "Sources", "describe", "display_name", "is_url", "redact_url"]
