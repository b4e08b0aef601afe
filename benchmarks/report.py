"""Report benchmarks: fusion + report on a 10-minute input with every operation (their share of
the whole run), and how long Chromium takes to load the page that input gives.

The 10-minute input is the 10 s demo clip (four shots, a face, a cat, a cup, a title card,
speech) repeated 60 times by remuxing, not re-encoding: 240 scenes, 60 spoken passages.
"""

from __future__ import annotations

import os
import re
import statistics
import time
from pathlib import Path

from common import MEDIA, SHARED_MODELS, Row, clean, fresh_dir

SECTION = "report"
LOOPS = 60  # x 10 s
LOADS = 3  # Chromium loads, median


def loop_clip(src: Path, dst: Path, times: int) -> Path:
    """``src`` played ``times`` times in a row, its packets copied with shifted timestamps."""
    import av

    with av.open(str(src)) as probe:  # one period, in seconds: from the earliest dts (negative with B-frames) to the last end
        packets = [
            (float(p.dts * p.time_base), float((p.pts + (p.duration or 0)) * p.time_base)) for p in probe.demux() if p.pts is not None and p.dts is not None
        ]
    period = max(end for _, end in packets) - min(0.0, min(start for start, _ in packets))
    tmp = dst.with_suffix(".tmp" + dst.suffix)
    with av.open(str(tmp), "w") as out:
        with av.open(str(src)) as first:
            copies = {s.index: out.add_stream_from_template(s) for s in first.streams}
        for n in range(times):
            with av.open(str(src)) as clip:
                for packet in clip.demux():
                    if packet.dts is None:
                        continue
                    shift = round(n * period / packet.time_base)
                    packet.pts = None if packet.pts is None else packet.pts + shift
                    packet.dts += shift
                    packet.stream = copies[packet.stream.index]
                    out.mux(packet)
    os.replace(tmp, dst)
    return dst


def ten_minute_clip() -> Path:
    from video_extract.testing.demo import make_demo_clip

    path = MEDIA / "demo-10min.mp4"
    if not path.exists():
        MEDIA.mkdir(parents=True, exist_ok=True)
        short = make_demo_clip(MEDIA / "demo-10s.mp4").path
        loop_clip(short, path, LOOPS)
    return path


def _blank_page(folder: Path) -> Path:
    page = folder / "blank.html"
    page.write_text("<!DOCTYPE html><html><head><meta charset='utf-8'><title>blank</title></head><body><p>blank</p></body></html>\n")
    return page


def run() -> list[Row]:
    from video_extract import Client
    from video_extract.testing.browser import chromium, dump_dom
    from video_extract.testing.demo import runnable_operations

    clip = ten_minute_clip()
    folder = fresh_dir("report")
    models = SHARED_MODELS if SHARED_MODELS.exists() else None
    ops, notes = runnable_operations(models)
    client = Client(use_cache=False, models_dir=models, output_dir=folder / "out")
    started = time.perf_counter()
    result = client.run(clip, ops)
    whole = time.perf_counter() - started
    assert result.ok, result.errors
    seconds = {s.plugin: s.seconds for s in result.result.stages}
    fused = seconds["fusion"] + seconds["report"]
    page = result.report.path
    facts = result.report
    left_out = re.findall(r"skipping (\w+)", " ".join(notes))  # operations whose model is not here
    rows = [
        Row(
            SECTION,
            f"fusion + report vs the whole run (10 min input, {len(ops)} operations, cache off)",
            fused,
            whole,
            target="<= 0.02x",
            passed=fused <= 0.02 * whole,
            note=f"fusion {seconds['fusion']:.2f} s, report {seconds['report']:.2f} s; {facts.events} events, {facts.segments} segments, "
            f"{facts.thumbnails} pictures, page {page.stat().st_size / 1e6:.2f} MB; {os.cpu_count()} cores"
            + (f"; left out (model not on disk): {', '.join(left_out)}" if left_out else ""),
        )
    ]
    if chromium() is None:
        rows.append(Row(SECTION, "report load in Chromium", float("nan"), None, note="skipped: Chromium is not installed (make install)"))
        clean(folder)
        return rows
    loads, blanks, scripts = [], [], []
    blank = _blank_page(folder)
    for _ in range(LOADS):  # interleaved, so load from the rest of the machine falls on both
        dom, wall = dump_dom(page)
        assert re.search(r'data-lane="scenes" data-count="\d+"', dom), "the page's script did not draw its lanes"
        loads.append(wall)
        scripts.append(float(re.search(r'data-render-ms="([\d.]+)"', dom).group(1)) / 1000)
        blanks.append(dump_dom(blank)[1])
    load, empty, script = statistics.median(loads), statistics.median(blanks), statistics.median(scripts)
    rows.append(
        Row(
            SECTION,
            "report load in Chromium (10 min input: --dump-dom, start-up included) vs a blank page",
            load,
            empty,
            target="<= +1.0 s",
            passed=load - empty <= 1.0,
            note=f"median of {LOADS}; the page's own script (parse data, draw lanes, tables) {script * 1000:.0f} ms",
        )
    )
    clean(folder)
    return rows
