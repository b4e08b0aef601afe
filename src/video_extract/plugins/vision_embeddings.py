"""vision_embeddings: one CLIP row per analysed frame (or scene), with a sidecar of times."""

from __future__ import annotations

import numpy as np

from video_extract.plugins.base import Artifact, InputSpec, Plugin, StageContext, write_json
from video_extract.spec import VisionEmbeddings
from video_extract.vision.clip import load_clip
from video_extract.vision.frames import frame_source, frames_input, iter_batches


class VisionEmbeddingsPlugin(Plugin):
    def requires(self, params: VisionEmbeddings) -> list[InputSpec]:
        return [frame_source(params.source, params.fps)]

    def run(self, ctx: StageContext, inputs: dict[str, Artifact], params: VisionEmbeddings) -> dict:
        model = load_clip(ctx.models, params.model)
        rows: list[dict] = []
        vectors: list[np.ndarray] = []
        for batch in iter_batches(frames_input(inputs), params.batch_size):
            vectors.append(model.embed_images([item.rgb for item in batch]))
            rows.extend({"frame": item.frame, "time": item.time, **item.extra} for item in batch)
        matrix = np.concatenate(vectors) if vectors else np.zeros((0, model.dim), np.float32)
        folder = ctx.work_dir / "embeddings"
        folder.mkdir()
        np.save(folder / "vision.npy", matrix.astype(np.float32))
        write_json(folder / "vision.json", rows)  # one entry per row of vision.npy
        return {"rows": len(rows), "dim": int(matrix.shape[1]), "model": params.model, "source": params.source}
