"""What an operator decides about a server: where it listens, who may call it, and its limits.

Every limit has a default that is safe on a shared machine: no path sources (``allow_roots``
empty), request bodies of 1 MiB, uploads of 2 GiB, a bounded queue, header and body timeouts.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path

from video_extract.errors import UsageError

KEYS_ENV = "VIDEO_EXTRACT_API_KEYS"


@dataclass
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    output_dir: Path = Path("video_extract_output")  # jobs/, batches/ and uploads/ live under it
    api_keys: tuple[str, ...] = ()  # bearer tokens; empty: no authentication (loopback only, or --insecure)
    insecure: bool = False  # allow a non-loopback bind without keys
    allow_roots: tuple[Path, ...] = ()  # path sources only under these (none: path sources refused)
    allow_private_networks: bool = False  # URL sources may reach loopback/private/link-local hosts
    max_upload_size: int = 2 * 1024**3
    max_body_size: int = 1024**2  # JSON request bodies
    max_ops: int = 64  # operations in one request
    max_sources: int = 10_000  # sources in one batch
    max_concurrent_jobs: int = field(default_factory=lambda: max(1, (os.cpu_count() or 2) // 2))
    max_queue: int = 64  # jobs waiting for a worker; beyond it: 429
    workers: int | None = None  # worker processes of a batch (default: cores)
    job_timeout: float = 3600.0  # a job running longer is stopped at its next stage boundary
    job_ttl: float = 24 * 3600.0  # finished jobs and batches (and their files) are removed after this
    upload_ttl: float = 24 * 3600.0  # uploads no job is using are removed after this
    header_timeout: float = 10.0  # seconds to send a request's headers
    body_timeout: float = 30.0  # seconds without a byte of a request body that is still expected
    keep_alive: float = 5.0  # an idle keep-alive connection is closed after this
    max_connections: int = 1024  # connections (and requests in progress) before uvicorn answers 503
    backlog: int = 2048  # the listen queue: bursts of new connections wait instead of being reset
    max_header_size: int = 16 * 1024
    root_path: str = ""  # the path prefix a reverse proxy serves us under (links include it)
    allowed_models: tuple[str, ...] = ()  # beyond the catalog: model names clients may ask for
    model_memory_budget: int | None = None  # warm models kept loaded (None: the library's default)

    def __post_init__(self) -> None:
        self.output_dir = Path(self.output_dir).expanduser().resolve()
        self.allow_roots = tuple(Path(r).expanduser().resolve() for r in self.allow_roots)
        self.root_path = self.root_path.rstrip("/")


def client_options(settings: ServerSettings) -> dict:
    """The ``Client`` options that make this server's policies: what a client may name as a
    source (http, https and s3; local paths only under ``allow_roots`` and our own uploads;
    private networks only when allowed; downloads held to the upload limit), how many
    operations one request may hold, and which models it may ask for (the catalog and the
    operator's allowlist, never a Hub id or a server path)."""
    from video_extract.sources import SourcePolicy

    options: dict = {
        "source_policy": SourcePolicy.strict(
            allowed_roots=(*settings.allow_roots, settings.output_dir / "uploads"),
            allow_private_networks=settings.allow_private_networks,
            max_bytes=settings.max_upload_size,
        ),
        "max_ops": settings.max_ops,
        "allow_any_model": False,
        "allowed_models": settings.allowed_models,
    }
    if settings.model_memory_budget is not None:
        options["model_memory_budget"] = settings.model_memory_budget
    return options


def load_api_keys(keys_file: str | Path | None = None, env: dict[str, str] | None = None) -> tuple[str, ...]:
    """Keys from a file (one per line, ``#`` comments) or else ``$VIDEO_EXTRACT_API_KEYS`` (comma-separated)."""
    if keys_file is not None:
        path = Path(keys_file).expanduser()
        try:
            lines = path.read_text().splitlines()
        except OSError as exc:
            raise UsageError(f"cannot read the API keys file: {exc.strerror or exc}", path) from None
        keys = [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]
        if not keys:
            raise UsageError("the API keys file holds no key (one key per line)", path)
    else:
        keys = [k.strip() for k in (env if env is not None else os.environ).get(KEYS_ENV, "").split(",") if k.strip()]
    short = [k for k in keys if len(k) < 16]
    if short:
        raise UsageError(
            f"API keys must be at least 16 characters ({len(short)} shorter); make them with: python -c 'import secrets; print(secrets.token_urlsafe(32))'"
        )
    return tuple(keys)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name other than localhost: it may resolve to anything


def check_settings(settings: ServerSettings) -> None:
    """Refuse what would expose the server by accident; one line each."""
    if not settings.api_keys and not settings.insecure and not is_loopback(settings.host):
        raise UsageError(
            f"refusing to listen on {settings.host} without API keys: anyone who can reach it could read files and run jobs; "
            f"give --api-keys-file or ${KEYS_ENV}, listen on 127.0.0.1, or pass --insecure"
        )
    for root in settings.allow_roots:
        if not root.is_dir():
            raise UsageError("--allow-root is not a directory", root)
    for name in ("max_upload_size", "max_body_size", "max_ops", "max_concurrent_jobs", "max_sources"):
        if getattr(settings, name) < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be at least 1")
    if settings.max_queue < 0:
        raise UsageError("--max-queue must be 0 or more")
