"""audio_embeddings: one CLAP row per window of the audio track, with a sidecar of times."""

from __future__ import annotations

import numpy as np

from video_extract.errors import UsageError
from video_extract.media import read_wav
from video_extract.plugins.base import Artifact, Plugin, StageContext, write_json
from video_extract.sound.clap import load_clap, windows_of
from video_extract.spec import AudioEmbeddings

BATCH = 8


class AudioEmbeddingsPlugin(Plugin):
    def validate(self, params: AudioEmbeddings) -> None:
        if params.window_sec > 10:
            raise UsageError(f"audio_embeddings: window_sec is at most 10 (CLAP's input length), got {params.window_sec:g}")

    def run(self, ctx: StageContext, inputs: dict[str, Artifact], params: AudioEmbeddings) -> dict:
        model = load_clap(ctx.models, params.model)
        audio = inputs["Audio"]
        offset = float(audio.data.get("start_time", 0.0))
        windows = windows_of(read_wav(audio.file("audio.wav")).samples, params.window_sec, params.hop_sec)
        vectors = [model.embed_audio([w[2] for w in windows[i : i + BATCH]]) for i in range(0, len(windows), BATCH)]
        matrix = np.concatenate(vectors) if vectors else np.zeros((0, model.dim), np.float32)
        rows = [{"start": round(start + offset, 3), "end": round(end + offset, 3)} for start, end, _ in windows]
        folder = ctx.work_dir / "embeddings"
        folder.mkdir()
        np.save(folder / "audio.npy", matrix.astype(np.float32))
        write_json(folder / "audio.json", rows)  # one entry per row of audio.npy
        return {"rows": len(rows), "dim": int(matrix.shape[1]), "model": params.model}
