"""metadata: what the file holds, from PyAV's probe."""

from __future__ import annotations

from pathlib import Path

from video_extract.media import probe
from video_extract.outputs import atomic_write_json
from video_extract.plugins.base import Artifact, Inputs, Plugin, Source, StageContext
from video_extract.results import MediaInfo
from video_extract.spec import Metadata


class MetadataPlugin(Plugin):
    publishes_from_record = True  # metadata.json is written from the record, with this request's path

    def run(self, ctx: StageContext, inputs: Inputs, params: Metadata) -> None:
        # A still's description is its header's, read once when the request was planned.
        ctx.write(ctx.source.info.model_copy() if ctx.source.info.is_image else probe(ctx.source.path, count_frames=params.count_frames))

    def publish(self, artifact: Artifact, dest: Path, source: Source) -> list[Path]:
        # The cache is keyed by content, so an entry may have been made from a copy of this
        # file under another name: the path written out is always this request's.
        info = artifact.record()
        assert isinstance(info, MediaInfo)
        target = dest / MediaInfo.record_file
        atomic_write_json(target, {**info.model_dump(mode="json"), "path": source.name})
        return [target]
