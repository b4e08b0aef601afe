"""The Python API: ``Client(cache_dir=...).run(path, ops)`` returns typed results.

    from video_extract import Client
    result = Client(output_dir="out").run("talk.mp4", ["metadata", "scenes", "keyframes:max_frames=8"])
    result.metadata.duration, result.scenes.cuts, result.keyframes.paths()
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from video_extract.errors import UsageError
from video_extract.executors.base import Executor, Runtime
from video_extract.results import (
    AudioResult,
    DetectionsResult,
    DiarizationResult,
    EmbeddingsResult,
    FileResult,
    FramesResult,
    MediaInfo,
    ScenesResult,
    TranscriptionResult,
    VadResult,
)
from video_extract.spec import Operation, OutputSpec

OpsLike = str | Operation | OutputSpec | Sequence[str | Operation | OutputSpec | dict]


def _frames_loader(folder: str) -> Callable[[Path, dict], FramesResult]:
    def load(out_dir: Path, data: dict) -> FramesResult:
        import json

        entries = json.loads((out_dir / folder / "index.json").read_text())
        return FramesResult(frames=entries, dir=str(out_dir / folder))

    return load


def _json_loader(model, name: str) -> Callable[[Path, dict], Any]:
    return lambda out, data: model.model_validate_json((out / name).read_text())


def _embeddings_loader(kind: str) -> Callable[[Path, dict], EmbeddingsResult]:
    def load(out_dir: Path, data: dict) -> EmbeddingsResult:
        import json

        import numpy as np

        path = out_dir / "embeddings" / f"{kind}.npy"
        return EmbeddingsResult(np.load(path), json.loads(path.with_suffix(".json").read_text()), str(path))

    return load


#: How each operation's published files are read back into a typed record.
LOADERS: dict[str, Callable[[Path, dict], Any]] = {
    "metadata": _json_loader(MediaInfo, "metadata.json"),
    "audio": lambda out, data: AudioResult(**{**data, "file": str(out / "audio.wav")}),
    "frames": _frames_loader("frames"),
    "keyframes": _frames_loader("keyframes"),
    "scene_frames": _frames_loader("scene_frames"),
    "scenes": _json_loader(ScenesResult, "scenes.json"),
    "transcription": _json_loader(TranscriptionResult, "transcription.json"),
    "vad": _json_loader(VadResult, "vad.json"),
    "diarization": _json_loader(DiarizationResult, "diarization.json"),
    "objects": _json_loader(DetectionsResult, "objects.json"),
    "faces": _json_loader(DetectionsResult, "faces.json"),
    "ocr": _json_loader(DetectionsResult, "ocr.json"),
    "text_embeddings": _embeddings_loader("text"),
    "vision_embeddings": _embeddings_loader("vision"),
    "audio_embeddings": _embeddings_loader("audio"),
}


class Results:
    """One input's results: status per operation, and each output as a typed record."""

    def __init__(self, result: FileResult):
        self.result = result
        self.output_dir = Path(result.output_dir) if result.output_dir else None
        self._loaded: dict[str, Any] = {}

    @property
    def ok(self) -> bool:
        return self.result.ok

    @property
    def errors(self) -> dict[str, str]:
        return self.result.errors()

    def __contains__(self, op: str) -> bool:
        return op in self.result.ops and self.result.ops[op].status == "ok"

    def __getitem__(self, op: str) -> Any:
        if op not in self.result.ops:
            raise KeyError(f"{op} was not requested (requested: {', '.join(self.result.ops)})")
        status = self.result.ops[op]
        if status.status != "ok":
            raise KeyError(f"{op} failed: {status.error}")
        if op not in self._loaded:
            loader = LOADERS.get(op)
            self._loaded[op] = loader(self.output_dir, status.data) if loader else [self.output_dir / f for f in status.files]
        return self._loaded[op]

    def __getattr__(self, op: str) -> Any:
        if op.startswith("_"):
            raise AttributeError(op)
        try:
            return self[op]
        except KeyError as exc:
            raise AttributeError(str(exc)) from None

    def __repr__(self) -> str:
        ops = ", ".join(f"{k}={v.status}" for k, v in self.result.ops.items())
        return f"Results({self.result.input!r}, {ops})"


class Client:
    def __init__(
        self,
        cache_dir: str | Path | None = None,
        output_dir: str | Path = "video_extract_output",
        use_cache: bool = True,
        models_dir: str | Path | None = None,
        executor: str | Executor = "debug",
        save_intermediates: bool = False,
    ):
        self.output_dir = Path(output_dir).expanduser()
        if isinstance(executor, Executor):
            self.executor = executor
        else:
            runtime = Runtime(cache_dir=cache_dir, use_cache=use_cache, models_dir=models_dir)
            self.executor = make_executor(executor, runtime, save_intermediates=save_intermediates)

    @property
    def runtime(self) -> Runtime:
        return self.executor.runtime

    def run(self, path: str | Path, ops: OpsLike) -> Results:
        """Process one file. Raises InputError for an unreadable file, UsageError for a bad request."""
        return Results(self.executor.run_file(path, to_specs(ops), self.output_dir))

    def search_frames(self, results: Results, text: str, top_k: int = 5) -> list[dict]:
        """Frames of ``results`` ranked by how well they match ``text`` (CLIP cosine similarity).

        Needs ``vision_embeddings`` in the results; the text is embedded with the same model.
        """
        from video_extract.vision.clip import load_clip

        return self._search(results, "vision_embeddings", text, top_k, load_clip)

    def search_audio(self, results: Results, text: str, top_k: int = 5) -> list[dict]:
        """Audio windows of ``results`` ranked by how well they match ``text`` (CLAP), e.g. "applause"."""
        from video_extract.sound.clap import load_clap

        return self._search(results, "audio_embeddings", text, top_k, load_clap)

    def _search(self, results: Results, op: str, text: str, top_k: int, loader) -> list[dict]:
        embeddings = results[op]
        model = results.result.ops[op].data["model"]
        query = loader(self.runtime.models, model).embed_texts([text])[0]
        scores = embeddings.vectors @ query
        order = scores.argsort()[::-1][:top_k]
        return [{**embeddings.rows[i], "score": round(float(scores[i]), 6)} for i in order]

    def execute_streaming(self, path: str | Path, ops: OpsLike, threads: int | None = None) -> Iterator[dict]:
        """Performance mode: events as they happen (partial, complete, error, then done).

        Stages without a dependency between them run at once; the files written are those
        ``run`` writes. The ``done`` event's ``result`` is the FileResult.
        """
        from video_extract.executors.perf import PerfExecutor

        executor = PerfExecutor(self.runtime, threads=threads)
        yield from executor.stream_file(path, to_specs(ops), self.output_dir)

    async def aexecute_streaming(self, path: str | Path, ops: OpsLike, threads: int | None = None):
        """``execute_streaming`` for asyncio: the work runs in a thread, events arrive on the loop."""
        import asyncio

        loop = asyncio.get_running_loop()
        events: asyncio.Queue = asyncio.Queue()
        end = object()

        def produce() -> None:
            try:
                for event in self.execute_streaming(path, ops, threads):
                    loop.call_soon_threadsafe(events.put_nowait, event)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the consumer
                loop.call_soon_threadsafe(events.put_nowait, exc)
            finally:
                loop.call_soon_threadsafe(events.put_nowait, end)

        worker = loop.run_in_executor(None, produce)
        while True:
            event = await events.get()
            if event is end:
                break
            if isinstance(event, BaseException):
                raise event
            yield event
        await worker

    def execute_bulk(
        self,
        requests: Sequence[str | Path | tuple[str | Path, OpsLike] | dict],
        ops: OpsLike | None = None,
        workers: int | None = None,
        engine: str = "local",
        ray_address: str | None = None,
        retries: int = 1,
        timeout: float | None = None,
        progress: str = "none",
    ):
        """Bulk mode: many files through a warm worker pool (or Ray); returns the BatchResult.

        ``requests``: paths or folders with one ``ops`` for all, or ``(path, ops)`` pairs /
        ``{"path": …, "ops": …}`` for a request per file. Writes ``batch_summary.json`` and
        ``batch_summary.parquet`` in the output directory; files already finished for the same
        request are skipped.
        """
        from video_extract.executors.bulk import LocalEngine, Settings, collect_inputs, default_workers, run_batch
        from video_extract.executors.progress import make_progress

        runtime = self.runtime
        settings = Settings(
            cache_dir=str(runtime.cache.root) if runtime.cache else None,
            use_cache=runtime.cache is not None,
            models_dir=str(runtime.models_dir) if runtime.models_dir else None,
        )
        count = workers or default_workers()
        if engine == "ray" or ray_address:
            from video_extract.executors.ray_engine import RayEngine

            runner = RayEngine(count, settings, retries=retries, timeout=timeout, address=ray_address)
        elif engine == "local":
            runner = LocalEngine(count, settings, retries=retries, timeout=timeout)
        else:
            raise UsageError(f"unknown engine '{engine}'; valid: local, ray")
        if ops is not None:
            return run_batch(collect_inputs(requests), to_specs(ops), self.output_dir, runner, progress=make_progress(progress))
        pairs = [(r["path"], r["ops"]) if isinstance(r, dict) else r for r in requests]
        if not all(isinstance(p, tuple) and len(p) == 2 for p in pairs):
            raise UsageError("execute_bulk: give ops for all paths, or (path, ops) pairs / {'path', 'ops'} dicts")
        return run_batch([Path(p) for p, _ in pairs], [to_specs(o) for _, o in pairs], self.output_dir, runner, progress=make_progress(progress))

    def run_many(self, paths: Sequence[str | Path], ops: OpsLike) -> Iterator[Results]:
        """Process several files; an unreadable one yields a failed result instead of raising."""
        for result in self.executor.run_files(paths, to_specs(ops), self.output_dir):
            yield Results(result)


def to_specs(ops: OpsLike) -> list[OutputSpec]:
    if isinstance(ops, (Operation, OutputSpec)):
        return [OutputSpec.of(ops)]
    if isinstance(ops, str):
        return [OutputSpec.of(item) for item in split_ops(ops)]
    specs = [OutputSpec.of(item) for item in ops]
    if not specs:
        raise UsageError("no operations requested")
    return specs


def split_ops(text: str) -> list[str]:
    """'metadata,scenes:threshold=20,min_scene_len=10,keyframes' -> one string per operation.

    A comma starts a new operation unless what follows is a key=value of the one before.
    """
    items: list[str] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        if items and "=" in part and ":" not in part.split("=", 1)[0] and ":" in items[-1]:
            items[-1] += "," + part
        else:
            items.append(part)
    if not items:
        raise UsageError("no operations requested")
    return items


def make_executor(name: str, runtime: Runtime, **kwargs: Any) -> Executor:
    if name == "debug":
        from video_extract.executors.debug import DebugExecutor

        return DebugExecutor(runtime, **kwargs)
    if name == "perf":
        from video_extract.executors.perf import PerfExecutor

        return PerfExecutor(runtime, **kwargs)
    raise UsageError(f"unknown executor '{name}'; valid: debug, perf")
