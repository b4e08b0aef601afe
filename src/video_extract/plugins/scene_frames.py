"""scene_frames: one representative frame per scene (the frame nearest its middle)."""

from __future__ import annotations

import json
from typing import Iterator

from video_extract.errors import InputError
from video_extract.media import iter_frames
from video_extract.media.image import save_jpeg
from video_extract.media.prefetch import prefetch
from video_extract.plugins.base import Artifact, Plugin, StageContext, write_json
from video_extract.plugins.frames import frame_file
from video_extract.spec import SceneFrames


class SceneFramesPlugin(Plugin):
    def stream(self, ctx: StageContext, inputs: dict[str, Artifact], params: SceneFrames) -> Iterator[dict]:
        scenes = json.loads(inputs["Scenes"].file("scenes.json").read_text())["scenes"]
        targets = [(s["start_frame"] + s["end_frame"] - 1) // 2 for s in scenes]  # middle frame index
        wanted = set(targets)
        folder = ctx.work_dir / "scene_frames"
        folder.mkdir()
        entries = []
        frames = iter_frames(ctx.source.path, max_size=params.max_size, select=lambda f: f.index in wanted, last_index=max(targets, default=0))
        for frame in prefetch(frames, depth=4):
            scene = targets.index(frame.index)
            entry = {"file": frame_file(len(entries)), "frame": frame.index, "time": round(frame.time, 6), "scene": scene, "start": scenes[scene]["start"], "end": scenes[scene]["end"]}
            save_jpeg(folder / entry["file"], frame.image, params.quality)
            entries.append(entry)
            yield entry
        if not entries:
            raise InputError("no scene frame could be decoded", ctx.source.path)
        write_json(folder / "index.json", entries)
        return {"count": len(entries)}
