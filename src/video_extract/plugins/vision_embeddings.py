"""vision_embeddings: one CLIP row per analysed frame (or scene), with a sidecar of times."""

from __future__ import annotations

import numpy as np

from video_extract.models.catalog import check_name
from video_extract.plugins.base import Inputs, InputSpec, Plugin, StageContext
from video_extract.plugins.frame_analysis import frame_source, frames_input
from video_extract.results import FrameRow, VisionEmbeddingsResult
from video_extract.spec import VisionEmbeddings
from video_extract.vision.clip import load_clip
from video_extract.vision.frames import iter_batches


class VisionEmbeddingsPlugin(Plugin):
    def validate(self, params: VisionEmbeddings) -> None:
        check_name(
            "vision_embeddings",
            params.model,
            "clip",
            hub_ids=True,
            other="another Hugging Face CLIP id such as openai/clip-vit-large-patch14, or a local directory",
        )

    def requires(self, params: VisionEmbeddings) -> list[InputSpec]:
        return [frame_source(params.source, params.fps)]

    def run(self, ctx: StageContext, inputs: Inputs, params: VisionEmbeddings) -> None:
        model = load_clip(ctx.models, params.model)
        rows: list[FrameRow] = []
        vectors: list[np.ndarray] = []
        for batch in iter_batches(frames_input(inputs), params.batch_size):
            vectors.append(model.embed_images([item.rgb for item in batch]))
            rows.extend(FrameRow(frame=item.frame, time=item.time, **item.extra) for item in batch)
        matrix = np.concatenate(vectors) if vectors else np.zeros((0, model.dim), np.float32)
        np.save(ctx.path("embeddings/vision.npy"), matrix.astype(np.float32))
        ctx.write(VisionEmbeddingsResult(rows=rows, model=params.model, dim=int(matrix.shape[1]), source=params.source))
