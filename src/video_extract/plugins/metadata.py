"""metadata: what the file holds, from PyAV's probe."""

from __future__ import annotations

import json
from pathlib import Path

from video_extract.media import probe
from video_extract.outputs import atomic_write_json
from video_extract.plugins.base import Artifact, Plugin, Source, StageContext, write_json
from video_extract.spec import Metadata


class MetadataPlugin(Plugin):
    def run(self, ctx: StageContext, inputs: dict[str, Artifact], params: Metadata) -> dict:
        info = probe(ctx.source.path, count_frames=params.count_frames)
        write_json(ctx.work_dir / "metadata.json", info)
        return {"duration": info.duration, "streams": len(info.streams)}

    def publish(self, artifact: Artifact, dest: Path, source: Source) -> list[Path]:
        # The cache is keyed by content, so an entry may have been made from a copy of this
        # file under another name: the path written out is always this request's.
        data = json.loads(artifact.file("metadata.json").read_text())
        data["path"] = str(source.path)
        target = dest / "metadata.json"
        atomic_write_json(target, data)
        return [target]
