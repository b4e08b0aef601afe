"""Load test of ``video-extract serve`` on loopback: N small jobs from C concurrent clients.

Starts the server (a separate process, 127.0.0.1 only, an API key, no cache), uploads a tiny
generated clip once, then C clients (each its own httpx connection) submit jobs until N were
accepted: a ``429`` is retried after its ``Retry-After``; an accepted job is followed on its
events stream and then its status must be final. Stops by itself after ``--duration`` seconds.
Targets: 0 connection resets, every response 2xx or 429, no job lost (accepted, never final).

``--varied``: a soak of the models instead, the inputs a service meets: stills of six sizes
(photos with a face and text) for objects, faces and OCR, and clips of real meeting speech of
three lengths for transcription and diarization, in turn. The server's resident memory is
sampled throughout; target: no more than 10 % growth from a fifth of the jobs to the end (a
heap that fragments request after request grows without bound).

    python benchmarks/load_test.py [--jobs 200] [--clients 50] [--duration 300]
    python benchmarks/load_test.py --varied --jobs 300 --clients 4
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from common import SHARED_MODELS
from rich.console import Console
from rich.table import Table

from video_extract.testing import media

#: What a ``--varied`` soak asks of stills and of clips.
STILL_OPS = "objects,faces,ocr"
CLIP_OPS = "transcription,diarization"


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    statuses: Counter = field(default_factory=Counter)
    resets: int = 0  # the connection failed: refused, reset, closed mid-response
    errors: list[str] = field(default_factory=list)
    accepted: list[str] = field(default_factory=list)
    final: dict[str, str] = field(default_factory=dict)
    rss: list[tuple[int, float]] = field(default_factory=list)  # (jobs final so far, server MiB)


def start_server(work: Path, key: str, flags: list[str]) -> tuple[subprocess.Popen, str]:
    """``video-extract serve`` on a free loopback port, cache off, results under ``work/out``;
    ``flags`` are more of its options. Returns the process and its base URL."""
    cmd = [sys.executable, "-m", "video_extract.cli", "serve", "--host", "127.0.0.1", "--port", "0", "-o", str(work / "out"), "--no-cache", *flags]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env={**os.environ, "VIDEO_EXTRACT_API_KEYS": key})
    line = proc.stderr.readline()
    match = re.search(r"serving on (http://\S+)", line)
    if not match:
        proc.kill()
        raise SystemExit(f"the server did not start: {line}{proc.stderr.read()}")
    return proc, match.group(1)


async def request(client: httpx.AsyncClient, tally: Tally, method: str, url: str, **kwargs) -> httpx.Response | None:
    started = time.perf_counter()
    try:
        response = await client.request(method, url, **kwargs)
    except (httpx.ConnectError, httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError) as exc:
        tally.resets += 1
        tally.errors.append(f"{method} {url}: {type(exc).__name__}: {exc}")
        return None
    except httpx.HTTPError as exc:
        tally.errors.append(f"{method} {url}: {type(exc).__name__}: {exc}")
        return None
    tally.latencies.append(time.perf_counter() - started)
    tally.statuses[response.status_code] += 1
    return response


async def client_loop(base: str, key: str, work: list[tuple[str, str]], remaining: list[int], tally: Tally, deadline: float) -> None:
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=120, limits=limits) as client:
        while remaining and time.monotonic() < deadline:
            upload_id, ops = work[remaining.pop() % len(work)]
            while time.monotonic() < deadline:
                response = await request(client, tally, "POST", "/v1/jobs", json={"source": {"upload": upload_id}, "ops": ops})
                if response is None or response.status_code != 429:
                    break
                await asyncio.sleep(min(float(response.headers.get("retry-after", 1)), 2.0))
            if response is None or response.status_code != 202:
                continue
            job = response.json()
            tally.accepted.append(job["id"])
            try:
                async with client.stream("GET", job["links"]["events"]) as events:  # follows the job until it ends
                    tally.statuses[events.status_code] += 1
                    async for _ in events.aiter_lines():
                        pass
            except httpx.HTTPError as exc:
                tally.resets += isinstance(exc, (httpx.ConnectError, httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError))
                tally.errors.append(f"GET events: {type(exc).__name__}: {exc}")
            status = await request(client, tally, "GET", job["links"]["status"])
            if status is not None and status.status_code == 200:
                tally.final[job["id"]] = status.json()["state"]


def warm_up(base: str, key: str, upload_id: str, ops: str) -> None:
    """One job before the clock starts: the server's first job imports the media stack (~1 s)."""
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=60) as client:
        job = client.post("/v1/jobs", json={"source": {"upload": upload_id}, "ops": ops}).json()
        client.get(job["links"]["events"])


async def run(base: str, key: str, work: list[tuple[str, str]], args, pid: int) -> Tally:
    tally = Tally()
    remaining = list(range(args.jobs))
    deadline = time.monotonic() + args.duration

    async def sample() -> None:  # the server's resident memory, against the jobs finished so far
        while True:
            try:
                kib = next(int(line.split()[1]) for line in open(f"/proc/{pid}/status") if line.startswith("VmRSS"))
            except (OSError, StopIteration):
                return
            tally.rss.append((len(tally.final), kib / 1024))
            await asyncio.sleep(0.25)

    sampler = asyncio.create_task(sample())
    await asyncio.gather(*(client_loop(base, key, work, remaining, tally, deadline) for _ in range(args.clients)))
    sampler.cancel()
    return tally


def varied_inputs(folder: Path) -> list[tuple[Path, str]]:
    """Stills of six sizes, PNG and JPEG (a face beside a text card), and clips of 6, 15 and 40 s of
    meeting speech (the AMI excerpts beside the checkout, else espeak dialogue)."""
    import cv2
    import numpy as np
    from memory import speech_loop
    from skimage import data

    inputs = []
    photo = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    for n, (w, h) in enumerate(((320, 240), (512, 512), (800, 600), (1024, 576), (1280, 720), (1920, 1080))):
        picture = cv2.resize(photo, (h, h), interpolation=cv2.INTER_AREA)
        card = cv2.cvtColor(media.text_image([f"Request {n}", "video-extract soak"], w - h, h, size=max(16, h // 12)), cv2.COLOR_RGB2BGR) if w > h else None
        still = np.hstack([picture, card]) if card is not None else picture
        path = folder / f"still{n}.{'png' if n % 2 else 'jpg'}"
        cv2.imwrite(str(path), still)
        inputs.append((path, STILL_OPS))
    for seconds in (6, 15, 40):
        path = folder / f"speech{seconds}.mp4"
        media.slideshow_clip(path, [data.astronaut(), data.coffee()], seconds_each=seconds / 2, fps=1, width=160, height=120, audio=speech_loop(seconds))
        inputs.append((path, CLIP_OPS))
    return inputs


def rss_at(tally: Tally, share: float) -> float:
    """The server's resident memory when ``share`` of the jobs had finished (MiB)."""
    wanted = share * max(1, len(tally.final))
    return next((mib for done, mib in tally.rss if done >= wanted), tally.rss[-1][1] if tally.rss else 0.0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--duration", type=float, default=300, help="seconds after which the test stops, finished or not")
    parser.add_argument("--ops", default="metadata")
    parser.add_argument("--max-concurrent-jobs", type=int, default=2)
    parser.add_argument("--max-queue", type=int, default=16)
    parser.add_argument("--varied", action="store_true", help="a soak of the models: stills and speech clips of many sizes, memory sampled")
    args = parser.parse_args()
    console = Console(width=120)
    key = secrets.token_urlsafe(32)
    with tempfile.TemporaryDirectory(prefix="video-extract-load-") as tmp:
        work = Path(tmp)
        if args.varied:
            inputs = varied_inputs(work)
        else:
            inputs = [(media.scene_clip(work / "tiny.mp4", cuts=(10,), frames=20, width=64, height=48).path, args.ops)]
        flags = ["--max-concurrent-jobs", str(args.max_concurrent_jobs), "--max-queue", str(args.max_queue)]
        proc, base = start_server(work, key, flags + (["--models-dir", str(SHARED_MODELS)] if SHARED_MODELS.is_dir() else []))
        try:
            work_items = []
            for path, ops in inputs:
                upload = httpx.post(
                    f"{base}/v1/uploads?filename={path.name}", content=path.read_bytes(), headers={"Authorization": f"Bearer {key}"}, timeout=30
                )
                upload.raise_for_status()
                work_items.append((upload.json()["id"], ops))
            for upload_id, ops in work_items if args.varied else work_items[:1]:
                warm_up(base, key, upload_id, ops)
            started = time.perf_counter()
            tally = asyncio.run(run(base, key, work_items, args, proc.pid))
            wall = time.perf_counter() - started
        finally:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
    ok = sum(n for status, n in tally.statuses.items() if 200 <= status < 300)
    throttled = tally.statuses.get(429, 0)
    other = sum(tally.statuses.values()) - ok - throttled
    lost = [job for job in tally.accepted if tally.final.get(job) not in ("done", "failed", "cancelled")]
    failed = sum(1 for state in tally.final.values() if state != "done")
    lat = sorted(tally.latencies)
    p50 = statistics.median(lat) if lat else 0.0
    p95 = lat[min(len(lat) - 1, int(0.95 * len(lat)))] if lat else 0.0
    what = f"{STILL_OPS} on 6 stills, {CLIP_OPS} on 3 speech clips, in turn" if args.varied else args.ops
    table = Table(
        title=f"load test: {args.jobs} jobs ({what}) from {args.clients} clients, server {args.max_concurrent_jobs} running + {args.max_queue} queued, {wall:.1f} s"
    )
    for column in ("requests", "p50 ms", "p95 ms", "2xx", "429", "other status", "resets", "errors", "jobs accepted", "jobs failed", "jobs lost"):
        table.add_column(column, justify="right")
    requests = sum(tally.statuses.values()) + len(tally.errors)
    table.add_row(
        str(requests),
        f"{p50 * 1000:.1f}",
        f"{p95 * 1000:.1f}",
        str(ok),
        str(throttled),
        str(other),
        str(tally.resets),
        str(len(tally.errors) - tally.resets),
        str(len(tally.accepted)),
        str(failed),
        str(len(lost)),
    )
    console.print(table)
    console.print(
        "(requests: submissions, events streams and status reads; latencies of submissions and status reads, not of the streams, which last as long as their jobs)"
    )
    for error in tally.errors[:10]:
        console.print(f"error: {error}")
    passed = tally.resets == 0 and other == 0 and not tally.errors and not lost and len(tally.accepted) == args.jobs
    if tally.rss:
        fifth, half, end, peak = rss_at(tally, 0.2), rss_at(tally, 0.5), tally.rss[-1][1], max(mib for _, mib in tally.rss)
        flat = end <= 1.10 * fifth
        console.print(
            f"server RSS: {fifth:.0f} MiB at 20 % of the jobs, {half:.0f} at 50 %, {end:.0f} at the end, peak {peak:.0f}; "
            f"growth from 20 % {end / fifth:.3f}x (target <= 1.10x) {'ok' if flat else 'FAIL'}"
        )
        passed = passed and (flat or not args.varied)
    console.print("PASS" if passed else "FAIL", style="bold green" if passed else "bold red")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
