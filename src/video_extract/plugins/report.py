"""report: the fused output as report.html, a page a person opens in a browser.

It reads fusion (which it plans when it was not requested) and the scenes' pictures: the
``scene_frames`` record when that was requested, otherwise a keyframe inside each scene. The
player links the source; where the page's folder is is known only when it is published, so the
link is set then.
"""

from __future__ import annotations

from pathlib import Path

from video_extract.outputs import atomic_write_text
from video_extract.plugins.base import Artifact, Inputs, Plugin, Source, StageContext
from video_extract.report import link_media, media_kind, media_link, page_data, render_report, scene_thumbnails
from video_extract.report.thumbnails import from_files, spread
from video_extract.results import FusionResult, ReportResult, SceneFramesResult
from video_extract.spec import Report


def source_link(source: Source, page_dir: Path) -> str | None:
    """The player's link to a source: the file as the user named it, or its URL."""
    return media_link(source.origin if source.origin is not None else source.path, page_dir)


class ReportPlugin(Plugin):
    def run(self, ctx: StageContext, inputs: Inputs, params: Report) -> None:
        fusion = inputs[FusionResult]
        info = ctx.source.info
        thumbnails: dict[int, str] = {}
        if params.thumbnails and fusion.scenes and info.video is not None:
            if SceneFramesResult in inputs:
                frames = inputs[SceneFramesResult]
                keep = set(spread(len(fusion.scenes), params.max_thumbnails))
                thumbnails = from_files({f.scene: frames.directory / f.file for f in frames.frames if f.scene in keep}, params.thumbnail_size)
            else:
                thumbnails = scene_thumbnails(ctx.source.pixels, fusion.scenes, limit=params.max_thumbnails, size=params.thumbnail_size)
        data = page_data(fusion, title=Path(ctx.source.name).name, thumbnails=thumbnails, kind=media_kind(info))
        atomic_write_text(ctx.path("report.html"), render_report(data))
        ctx.write(
            ReportResult(
                events=sum(len(lane["events"]) for lane in data["lanes"]),
                lanes={lane["id"]: len(lane["events"]) for lane in data["lanes"]},
                segments=len(data["transcript"]),
                entities=len(data["entities"] or []),
                relationships=len(data["relationships"] or []),
                thumbnails=len(thumbnails),
                media=source_link(ctx.source, ctx.work_dir) is not None,
            )
        )

    def publish(self, artifact: Artifact, dest: Path, source: Source) -> list[Path]:
        page = (artifact.path / "report.html").read_text(encoding="utf-8")
        target = dest / "report.html"
        dest.mkdir(parents=True, exist_ok=True)
        atomic_write_text(target, link_media(page, source_link(source, dest), Path(source.name).name))
        return [target]
