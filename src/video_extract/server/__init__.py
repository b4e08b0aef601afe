"""The HTTP service: a thin FastAPI adapter over one long-lived ``Client``.

    video-extract serve --api-keys-file keys.txt --allow-root /data/media -o /srv/video-extract
    curl -H "Authorization: Bearer $KEY" --data-binary @talk.mp4 "localhost:8080/v1/uploads?filename=talk.mp4"
    curl -H "Authorization: Bearer $KEY" --json '{"source": {"upload": "ID"}, "ops": "metadata,scenes"}' localhost:8080/v1/jobs

``settings`` (what the operator decides), ``api`` (request and response bodies), ``jobs``
(jobs, batches, uploads, the worker pool), ``http`` (uvicorn and the limits it lacks), ``app``
(routes, keys, errors), ``metrics`` (Prometheus). ``/docs`` shows the whole API.
"""

from __future__ import annotations

from .app import create_app
from .http import bind, uvicorn_config
from .settings import ServerSettings, check_settings, client_options, load_api_keys

__all__ = ["ServerSettings", "bind", "check_settings", "client_options", "create_app", "load_api_keys", "uvicorn_config"]
