"""Service benchmarks: a URL source against the same file on disk; and requests through
``video-extract serve``, first and once its models are warm (``server_requests``, rows of the
``latency`` section)."""

from __future__ import annotations

import functools
import http.server
import secrets
import statistics
import threading
import time
from pathlib import Path

from common import SHARED_MODELS, Row, clean, clip_720p_60s, fresh_dir

SECTION = "service"


def _job_seconds(http, source: dict, ops: str) -> float:
    """From POST /v1/jobs to the end of its event stream (the job's last event)."""
    started = time.perf_counter()
    created = http.post("/v1/jobs", json={"source": source, "ops": ops})
    assert created.status_code == 202, created.text
    job = created.json()
    with http.stream("GET", job["links"]["events"]) as events:
        for _ in events.iter_lines():
            pass
    elapsed = time.perf_counter() - started
    state = http.get(job["links"]["status"]).json()
    assert state["state"] == "done", state
    return elapsed


def _file_server(folder: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):  # noqa: D401 - silence
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def server_requests(folder: Path, clip: Path, ops: list[str]) -> list[Row]:
    """The first request through ``video-extract serve`` and the later ones, cache off: what
    stays loaded between them (the ``latency`` section's server rows)."""
    import httpx
    from load_test import start_server

    request = ",".join(ops)
    key = secrets.token_hex(16)
    models = ["--models-dir", str(SHARED_MODELS)] if SHARED_MODELS.exists() else []
    proc, base = start_server(folder, key, ["--allow-root", str(folder), *models])
    try:
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=600) as http:
            first = _job_seconds(http, {"path": str(clip)}, request)
            later = [_job_seconds(http, {"path": str(clip)}, request) for _ in range(3)]
    finally:
        proc.terminate()
        proc.wait(30)
    what = f"full pipeline through `video-extract serve` (10 s demo clip, {len(ops)} operations, cache off), from POST to the job's last event"
    return [
        Row("latency", f"{what}: first request (server just started)", first, None, unit="s", target="report"),
        Row(
            "latency",
            f"{what}: second request vs first",
            later[0],
            first,
            unit="s",
            target="report",
            note=f"the difference is what warm models save; third and fourth requests {later[1]:.2f} / {later[2]:.2f} s",
        ),
    ]


def run() -> list[Row]:
    from video_extract import Client

    rows: list[Row] = []
    # A URL source (spooled while hashed) vs the same file named by path: cold cache each time,
    # and a fresh URL each time so every run downloads.
    big = clip_720p_60s()
    served, url_base = _file_server(big.parent)
    light = ["metadata", "scenes", "keyframes", "audio"]
    try:
        Client(cache_dir=fresh_dir("w"), output_dir=fresh_dir("w")).run(big, light)  # imports, page cache
        local, remote = [], []
        for n in range(5):
            for source, times in ((str(big), local), (f"{url_base}/{big.name}?n={n}", remote)):
                cache, out = fresh_dir("c"), fresh_dir("o")
                started = time.perf_counter()
                result = Client(cache_dir=cache, output_dir=out).run(source, light)
                times.append(time.perf_counter() - started)
                assert result.ok, result.errors
                clean(cache, out)
    finally:
        served.shutdown()
    t_url, t_local = statistics.median(remote), statistics.median(local)
    rows.append(
        Row(
            SECTION,
            "URL source (loopback http, downloaded + hashed) vs the same file by path (60 s 720p: metadata, scenes, keyframes, audio)",
            t_url,
            t_local,
            target="<= 1.2x",
            passed=t_url <= 1.2 * t_local,
            note=f"{big.stat().st_size / 1e6:.1f} MB clip, median of 5, cold cache",
        )
    )
    return rows
