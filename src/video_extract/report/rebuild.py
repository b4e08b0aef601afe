"""``video-extract report OUT/STEM``: report.html again, from the outputs in a folder."""

from __future__ import annotations

import logging
from pathlib import Path

from pydantic import ValidationError

from video_extract.errors import InputError, VideoExtractError
from video_extract.outputs import atomic_write_text, read_summary, recorded_input
from video_extract.report.page import media_kind, media_link, page_data, render_report
from video_extract.report.thumbnails import from_files, scene_thumbnails, spread
from video_extract.results import FusionResult, MediaInfo, Output, ReportResult, SceneFramesResult
from video_extract.spec import Report

log = logging.getLogger("video_extract")


def _read(record: type[Output], folder: Path) -> Output | None:
    """A record from its file in ``folder``; None when the file is not there."""
    if not (folder / record.record_file).exists():
        return None
    try:
        return record.load(folder)
    except (OSError, ValueError, ValidationError) as exc:
        raise InputError(f"{record.record_file} cannot be read ({type(exc).__name__}: {str(exc).splitlines()[0]})", folder) from None


def rebuild_report(folder: str | Path, params: Report | None = None) -> Path:
    """Write ``folder/report.html`` from ``fusion.json`` and what lies beside it; returns its path."""
    params = params or Report()
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise InputError("no such output folder (give OUT/STEM, the folder of one input's outputs)", folder)
    fusion = _read(FusionResult, folder)
    if fusion is None:
        raise InputError("no fusion.json here to build a report from; run fusion first (for example --ops scenes,transcription,objects,fusion)", folder)
    info = _read(MediaInfo, folder)
    summary = read_summary(folder) or {}
    source = summary.get("input") or (info.path if info else None)
    recorded = recorded_input(folder)  # a local input named relative to where that run was started
    if recorded and Path(recorded).is_absolute() and Path(recorded).is_file():
        source = recorded
    has_video = info.video is not None if info else any(e.type in ("scene", "object", "face", "text") for e in fusion.timeline)
    kind = media_kind(info) if info else "video" if has_video else "audio"
    thumbnails: dict[int, str] = {}
    if params.thumbnails and fusion.scenes and has_video:
        frames = _read(SceneFramesResult, folder)
        if frames is not None:
            keep = set(spread(len(fusion.scenes), params.max_thumbnails))
            thumbnails = from_files({f.scene: frames.directory / f.file for f in frames.frames if f.scene in keep}, params.thumbnail_size)
        elif source and Path(source).is_file():
            try:
                thumbnails = scene_thumbnails(Path(source), fusion.scenes, limit=params.max_thumbnails, size=params.thumbnail_size)
            except VideoExtractError as exc:
                log.warning("no scene pictures: %s", exc)
    title = Path(source).name if source else folder.name
    data = page_data(fusion, title=title, thumbnails=thumbnails, kind=kind)
    target = folder / ReportResult.files[0]
    atomic_write_text(target, render_report(data, media_link(source, folder)))
    return target
