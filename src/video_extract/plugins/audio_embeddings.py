"""audio_embeddings: one CLAP row per window of the audio track, with a sidecar of times."""

from __future__ import annotations

import numpy as np

from video_extract.errors import UsageError
from video_extract.media import read_wav_as
from video_extract.models.catalog import check_name
from video_extract.plugins.base import Inputs, Plugin, StageContext
from video_extract.results import AudioEmbeddingsResult, AudioResult, TimeSpan
from video_extract.sound.clap import SAMPLE_RATE, load_clap, windows_of
from video_extract.spec import AudioEmbeddings

BATCH = 8


class AudioEmbeddingsPlugin(Plugin):
    def validate(self, params: AudioEmbeddings) -> None:
        check_name(
            "audio_embeddings", params.model, "clap", hub_ids=True, other="another Hugging Face CLAP id such as laion/larger_clap_general, or a local directory"
        )
        if params.window_sec > 10:
            raise UsageError(f"audio_embeddings: window_sec is at most 10 (CLAP's input length), got {params.window_sec:g}")

    def run(self, ctx: StageContext, inputs: Inputs, params: AudioEmbeddings) -> None:
        model = load_clap(ctx.models, params.model)
        audio = inputs[AudioResult]
        windows = windows_of(read_wav_as(audio.path, sample_rate=SAMPLE_RATE).samples, params.window_sec, params.hop_sec)
        vectors = [model.embed_audio([w[2] for w in windows[i : i + BATCH]]) for i in range(0, len(windows), BATCH)]
        matrix = np.concatenate(vectors) if vectors else np.zeros((0, model.dim), np.float32)
        rows = [TimeSpan(start=round(start + audio.start_time, 3), end=round(end + audio.start_time, 3)) for start, end, _ in windows]
        np.save(ctx.path("embeddings/audio.npy"), matrix.astype(np.float32))
        ctx.write(AudioEmbeddingsResult(rows=rows, model=params.model, dim=int(matrix.shape[1])))
